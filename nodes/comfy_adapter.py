"""The one module that touches ComfyUI internals.

Everything the pack needs from ComfyUI (model patcher wrappers, the context-handler slot, attention patches,
KSAMPLER, progress and cancel) goes through here, with feature detection instead of version checks, so the
node classes stay thin and ``nodes/algorithms`` stays pure. Works on ComfyUI 0.3.75 and current ComfyUI.

Keys the pack writes into ``model_options`` / ``transformer_options`` and wrapper keys are namespaced
``LongAnim.*``.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import comfy.model_management
import comfy.patcher_extension
import comfy.samplers
import comfy.utils
import torch

from .algorithms import context_schedule as cs
from .algorithms import prompt_schedule as ps
from .algorithms.noise import NoiseRecipe

log = logging.getLogger("LongAnim")

WRAPPER_NOISE = "LongAnim.noise"
WRAPPER_RUN_STATE = "LongAnim.run_state"
RUN_STATE_KEY = "LongAnim.run"  # transformer_options key holding {"seed": int, "pass": int}


# ---------------------------------------------------------------------------------------------- basics
def check_interrupt() -> None:
    """Raise ComfyUI's interrupt exception if the user pressed Cancel."""
    comfy.model_management.throw_exception_if_processing_interrupted()


class Progress:
    """A ComfyUI progress bar (node-level, shown on the canvas)."""

    def __init__(self, total: int):
        self.bar = comfy.utils.ProgressBar(max(1, int(total)))

    def __call__(self, done: int, total: int | None = None) -> None:
        self.bar.update_absolute(done, total)


def frame_axis_of(samples: torch.Tensor, input_name: str = "latent") -> int:
    """Frame axis of a ComfyUI latent: 0 for SD/AnimateDiff ``[T, C, H, W]``, 2 for video ``[B, C, T, H, W]``."""
    if samples.ndim == 4:
        return 0
    if samples.ndim == 5:
        return 2
    raise ValueError(f"{input_name}: expected a video latent [frames, C, H, W] (SD/AnimateDiff) or "
                     f"[B, C, frames, H, W] (Wan and other video models), got shape {list(samples.shape)}")


def num_frames_of(samples: torch.Tensor, input_name: str = "latent") -> int:
    return int(samples.shape[frame_axis_of(samples, input_name)])


# ---------------------------------------------------------------------------------------------- noise
class LongAnimNoise:
    """A ComfyUI ``NOISE`` (for SamplerCustomAdvanced) drawing a LongAnim recipe.

    Duck-typed like core's ``Noise_RandomNoise``: ``.seed`` and ``generate_noise(input_latent) -> Tensor`` on CPU
    shaped like ``input_latent["samples"]``. The frame axis comes from the latent's layout.
    """

    def __init__(self, recipe: NoiseRecipe, seed: int):
        self.recipe = recipe
        self.seed = int(seed)

    def generate_noise(self, input_latent: dict) -> torch.Tensor:
        samples = input_latent["samples"]
        axis = frame_axis_of(samples)
        self.recipe.validate(num_frames=samples.shape[axis])
        noise = self.recipe.draw(tuple(samples.shape), axis, self.seed)
        return noise.to(dtype=samples.dtype if samples.dtype.is_floating_point else torch.float32)


class _NoiseReplaceWrapper:
    """SAMPLER_SAMPLE wrapper: replace the sampler's initial noise by a recipe seeded from the sampler's seed.

    Leaves all-zero noise alone (KSamplerAdvanced ``add_noise: disable`` / DisableNoise).
    """

    def __init__(self, recipe: NoiseRecipe):
        self.recipe = recipe

    def __call__(self, executor, guider, sigmas, extra_args, callback, noise, *args, **kwargs):
        if noise is not None and torch.count_nonzero(noise) > 0:
            axis = frame_axis_of(noise)
            seed = int(extra_args.get("seed") or 0)
            new = self.recipe.draw(tuple(noise.shape), axis, seed)
            noise = new.to(device=noise.device, dtype=noise.dtype)
        return executor(guider, sigmas, extra_args, callback, noise, *args, **kwargs)


def patch_model_noise(model, recipe: NoiseRecipe):
    """Clone ``model`` and make plain KSampler/KSamplerAdvanced draw ``recipe`` as the initial noise."""
    m = model.clone()
    m.remove_wrappers_with_key(comfy.patcher_extension.WrappersMP.SAMPLER_SAMPLE, WRAPPER_NOISE)
    m.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.SAMPLER_SAMPLE, WRAPPER_NOISE,
                           _NoiseReplaceWrapper(recipe))
    return m


def run_state(model_options: dict) -> dict[str, Any]:
    """Per-run state the pack's wrappers publish to its window loop (seed, noise-travel pass)."""
    return model_options.get("transformer_options", {}).get(RUN_STATE_KEY, {"seed": 0, "pass": 0})


# ---------------------------------------------------------------------------------------------- context windows
try:  # feature detection: core context windows exist since 2025-08 (0.3.5x); duck typing otherwise
    import comfy.context_windows as _core_cw

    _HandlerBase = _core_cw.ContextHandlerABC
except (ImportError, AttributeError):  # pragma: no cover - very old hosts
    _core_cw = None
    _HandlerBase = object

WRAPPER_PREPARE = "LongAnim.windows_prepare_sampling"
WINDOW_CALLBACKS = "LongAnim.window_callbacks"  # transformer_options list: cb(windows, T, model, mo) -> undo|None
TAG_KEY = "longanim_frames"  # conditioning entries tagged with an inclusive frame range (start, end)
FUSIONS = (*cs.WEIGHT_METHODS, "randomized_blend")


@dataclass(frozen=True)
class WindowOptions:
    """Everything the window loop needs; plain values only (deep-copied with the model on 0.3.75)."""

    schedule: str = "zola"
    length: int = 16
    stride: int = 8
    overlap: int = 4
    max_skip: int = 1
    closed_loop: bool = False
    fusion: str = "zola"
    blend_variant: str = "paper"
    seed: int = 0
    max_batch: int = 1
    prompt_rule: str = "zola"
    extra: dict = field(default_factory=dict)

    def _params(self) -> dict:
        """The inputs this schedule uses; the others are neutralised so a hidden default cannot fail validation."""
        uses_overlap = self.schedule in ("static", "shifted", "looped")
        return dict(length=self.length,
                    stride=self.stride if self.schedule in ("zola", "uniform") else self.length,
                    overlap=self.overlap if uses_overlap else 0,
                    max_skip=self.max_skip if self.schedule == "zola" else 1)

    def validate(self) -> None:
        p = self._params()
        cs.validate_window_params(p["length"], stride=p["stride"], overlap=p["overlap"], max_skip=p["max_skip"],
                                  schedule=self.schedule)
        if self.fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {list(FUSIONS)}, got {self.fusion!r}")
        if self.blend_variant not in cs.BLEND_VARIANTS:
            raise ValueError(f"blend_variant must be one of {list(cs.BLEND_VARIANTS)}, got {self.blend_variant!r}")
        if self.prompt_rule not in ("zola", "genl"):
            raise ValueError(f"prompt_rule must be 'zola' or 'genl', got {self.prompt_rule!r}")
        if self.max_batch < 1:
            raise ValueError(f"max_windows_per_batch must be >= 1, got {self.max_batch}")

    def windows(self, num_frames: int, step: int, seed: int) -> list[list[int]]:
        return cs.make_windows(self.schedule, num_frames, step, seed, closed_loop=self.closed_loop, **self._params())

    def blend_masks(self, windows, num_frames: int, step: int, seed: int):
        if self.fusion != "randomized_blend":
            return None
        gen = cs.step_generator(seed, step, cs.STREAM_BLEND)
        return cs.randomized_blend_masks(windows, num_frames, gen, variant=self.blend_variant)

    def step_seed(self, run_seed: int, travel_pass: int) -> int:
        """The seed of this run's window draws: the node's seed mixed with the sampler's seed and the pass."""
        return cs.mix_seed(self.seed, run_seed, 1000 + int(travel_pass))


def step_index(timestep: torch.Tensor, model_options: dict) -> int:
    """Sampling step of this model call: the index of ``timestep`` in ``sample_sigmas``.

    Substep evaluations (Heun, DPM-2, SDE midpoints) whose sigma is not in the schedule belong to the last step
    whose sigma is above theirs, so they see that step's windows.
    """
    sample_sigmas = model_options.get("transformer_options", {}).get("sample_sigmas")
    if sample_sigmas is None:
        return 0
    sig = float(timestep.reshape(-1)[0])
    ss = sample_sigmas.detach().float().cpu()
    close = torch.nonzero(torch.isclose(ss, torch.tensor(sig), rtol=1e-4, atol=1e-7)).flatten()
    if close.numel():
        return int(close[0])
    return max(0, int((ss > sig).sum()) - 1)


def _has_tags(conds) -> bool:
    return any(c is not None and any(TAG_KEY in e for e in c) for c in conds)


class _WindowView:
    """What other packs read from ``transformer_options["context_window"]`` (core's IndexListContextWindow API)."""

    def __init__(self, index_list: list[int], dim: int, total: int):
        self.index_list = index_list
        self.context_length = len(index_list)
        self.dim = dim
        self.total_frames = total

    def get_tensor(self, full: torch.Tensor, device=None, dim=None) -> torch.Tensor:
        dim = self.dim if dim is None else dim
        out = full.index_select(dim, torch.tensor(self.index_list, device=full.device))
        return out if device is None else out.to(device)


def _window_view(index_list: list[int], dim: int, total: int):
    if _core_cw is not None:
        try:
            view = _core_cw.IndexListContextWindow(index_list, dim=dim)
            view.total_frames = total
            return view
        except TypeError:  # pragma: no cover - signature drift
            pass
    return _WindowView(index_list, dim, total)


def _is_core_control(control) -> bool:
    return type(control).__module__.startswith("comfy.")


def _control_chain(conds):
    seen = {}
    for cond in conds:
        for entry in cond or []:
            c = entry.get("control")
            while c is not None:
                seen.setdefault(id(c), c)
                c = getattr(c, "previous_controlnet", None)
    return list(seen.values())


def _invalidate_hint_cache(control) -> None:
    for attr in ("cond_hint", "control_input"):
        if hasattr(control, attr):
            setattr(control, attr, None)
    for attr in ("cond_hints", "control_inputs"):
        cache = getattr(control, attr, None)
        if isinstance(cache, dict):
            cache.clear()


def check_control_hints(conds, num_frames: int) -> None:
    """A per-frame ControlNet hint must have 1 frame or as many frames as the latent."""
    for control in _control_chain(conds):
        hint = getattr(control, "cond_hint_original", None)
        if isinstance(hint, torch.Tensor) and hint.ndim == 4 and hint.shape[0] not in (1, num_frames):
            raise ValueError(
                f"ControlNet image: it has {hint.shape[0]} frames but the latent has {num_frames}; give one image "
                f"(used for every frame) or exactly {num_frames} (one per frame)")


class _HintSlicer:
    """Give ComfyUI's own ControlNet objects the hint frames of the windows being evaluated, then restore."""

    def __init__(self, conds, num_frames: int):
        self.items = []
        for control in _control_chain(conds):
            hint = getattr(control, "cond_hint_original", None)
            if _is_core_control(control) and isinstance(hint, torch.Tensor) and hint.ndim == 4 \
                    and hint.shape[0] == num_frames and num_frames > 1:
                self.items.append((control, hint))

    def set(self, windows: list[list[int]]) -> None:
        for control, hint in self.items:
            idx = torch.tensor([f for w in windows for f in w], device=hint.device)
            control.cond_hint_original = hint.index_select(0, idx)
            _invalidate_hint_cache(control)

    def restore(self) -> None:
        for control, hint in self.items:
            control.cond_hint_original = hint
            _invalidate_hint_cache(control)


def _slice_value(value, axis: int, num_frames: int, idx_list: list[torch.Tensor], batch_axis_cat: int):
    """Slice a per-frame tensor (frames on ``axis``) to the windows and join the windows on the batch axis."""
    if isinstance(value, torch.Tensor) and value.ndim > axis and value.shape[axis] == num_frames and num_frames > 1:
        parts = [value.index_select(axis, i.to(value.device)) for i in idx_list]
        return torch.cat(parts, dim=batch_axis_cat) if len(parts) > 1 else parts[0]
    return None


class LongAnimContextHandler(_HandlerBase):
    """Context-window handler in ComfyUI's ``model_options["context_handler"]`` slot.

    ``samplers.calc_cond_batch`` calls ``should_use_context`` then ``execute`` for every model evaluation, for plain
    KSampler, SamplerCustom(Advanced) and any guider. ``execute`` owns the window loop: it draws this step's windows
    (``nodes/algorithms/context_schedule.py``), evaluates them (several per model call when allowed), fuses them
    with ``co_denoise`` and returns one output per cond, like ``_calc_cond_batch``.
    """

    def __init__(self, options: WindowOptions):
        self.options = options
        # attributes core's helpers read (create_prepare_sampling_wrapper): set per call
        self.context_length = options.length
        self.dim = 0

    # -- ContextHandlerABC ---------------------------------------------------------------------
    def should_use_context(self, model, conds, x_in, timestep, model_options) -> bool:
        axis = frame_axis_of(x_in)
        return x_in.shape[axis] > self.options.length or _has_tags(conds)

    def get_resized_cond(self, cond_in, x_in, window, device=None):
        axis = frame_axis_of(x_in)
        return self._resize_cond(cond_in, [list(window.index_list)], x_in.shape[axis], axis)

    # -- per-window conditioning ---------------------------------------------------------------
    def _select_prompts(self, cond_in: list[dict], window: list[int]) -> list[dict]:
        tagged = [e for e in cond_in if TAG_KEY in e]
        if not tagged:
            return cond_in
        plain = [e for e in cond_in if TAG_KEY not in e]
        intervals = [ps.PromptInterval(int(e[TAG_KEY][0]), int(e[TAG_KEY][1]), "") for e in tagged]
        if self.options.prompt_rule == "genl":
            weights = ps.genl_prompt_weights(window, intervals)
            mixed = _interpolate_entries([(tagged[i], w) for i, w in weights])
            if mixed is not None:
                return plain + [mixed]
        return plain + [tagged[ps.zola_prompt_for_window(window, intervals)]]

    def _resize_cond(self, cond_in, windows, num_frames, axis):
        if cond_in is None:
            return None
        if len(windows) == 1:
            cond_in = self._select_prompts(cond_in, windows[0])
        idx = [torch.tensor(w, dtype=torch.long) for w in windows]
        out = []
        for entry in cond_in:
            new = dict(entry)
            for key, value in entry.items():
                if key == "model_conds" and isinstance(value, dict):
                    mc = dict(value)
                    for ck, cv in value.items():
                        tensor = cv if isinstance(cv, torch.Tensor) else getattr(cv, "cond", None)
                        sliced = _slice_value(tensor, axis, num_frames, idx, 0)
                        if sliced is not None:
                            mc[ck] = sliced if isinstance(cv, torch.Tensor) else cv._copy_with(sliced)
                    new[key] = mc
                elif key != "control":
                    sliced = _slice_value(value, axis, num_frames, idx, 0)
                    if sliced is not None:
                        new[key] = sliced
            out.append(new)
        return out

    # -- the loop ---------------------------------------------------------------------------------
    def execute(self, calc_cond_batch, model, conds, x_in, timestep, model_options):
        opts = self.options
        axis = frame_axis_of(x_in)
        num_frames = x_in.shape[axis]
        self.dim = axis
        state = run_state(model_options)
        step = step_index(timestep, model_options)
        seed = opts.step_seed(state.get("seed", 0), state.get("pass", 0))
        windows = opts.windows(num_frames, step, seed)
        masks = opts.blend_masks(windows, num_frames, step, seed)
        t_opts = model_options.setdefault("transformer_options", {})
        # windows with their own prompts or their own adapter weights are evaluated one per call
        max_batch = 1 if _has_tags(conds) or t_opts.get(WINDOW_CALLBACKS) else opts.max_batch
        slicer = _HintSlicer(conds, num_frames) if axis == 0 else None
        per_frame_t = timestep.ndim == 1 and timestep.shape[0] == num_frames and axis == 0

        def evaluate(batch: list[list[int]]) -> list[torch.Tensor]:
            idx = [torch.tensor(w, dtype=torch.long, device=x_in.device) for w in batch]
            x_b = torch.cat([x_in.index_select(axis, i) for i in idx], dim=0)
            if per_frame_t:
                t_b = torch.cat([timestep.index_select(0, i.to(timestep.device)) for i in idx])
            else:
                t_b = torch.cat([timestep] * len(batch))
            sub_conds = [self._resize_cond(c, batch, num_frames, axis) for c in conds]
            t_opts["context_window"] = _window_view(batch[0], axis, num_frames)
            t_opts["ad_params"] = {"sub_idxs": list(batch[0]), "full_length": num_frames,
                                   "context_length": len(batch[0]), "sub_idxs_batch": [list(w) for w in batch]}
            if slicer is not None:
                slicer.set(batch)
            cleanups = [cb(batch, num_frames, model, model_options) for cb in t_opts.get(WINDOW_CALLBACKS, [])]
            try:
                outs = calc_cond_batch(model, sub_conds, x_b, t_b, model_options)
            finally:
                for undo in reversed(cleanups):
                    if undo is not None:
                        undo()
                if slicer is not None:
                    slicer.restore()
            per_cond = [o.chunk(len(batch), dim=0) for o in outs]
            return [torch.stack([pc[i] for pc in per_cond], dim=0) for i in range(len(batch))]

        stacked = x_in.unsqueeze(0).expand(len(conds), *x_in.shape)
        weights = None if masks is not None else opts.fusion
        try:
            fused = cs.co_denoise(stacked, windows, axis + 1, evaluate, weights=weights, blend_masks=masks,
                                  max_batch=max_batch, check_interrupt=check_interrupt)
        finally:
            t_opts.pop("context_window", None)
            t_opts.pop("ad_params", None)
        return [fused[i] for i in range(len(conds))]


def _interpolate_entries(weighted: list[tuple[dict, float]]):
    """Gen-L condition interpolation: one entry whose cross-attention is Σ w_i c_i (same shapes only)."""
    if len(weighted) == 1:
        return weighted[0][0]
    tensors = []
    for entry, _ in weighted:
        c = entry.get("model_conds", {}).get("c_crossattn")
        if c is None or not isinstance(getattr(c, "cond", None), torch.Tensor):
            return None
        tensors.append(c.cond)
    if any(t.shape != tensors[0].shape for t in tensors):
        return None  # prompts of different token lengths: fall back to ZoLA's majority rule
    mix = sum(w * t for (_, w), t in zip(weighted, tensors))
    base = dict(weighted[0][0])
    base["model_conds"] = dict(base["model_conds"])
    base["model_conds"]["c_crossattn"] = base["model_conds"]["c_crossattn"]._copy_with(mix)
    return base


class _RunStateWrapper:
    """SAMPLER_SAMPLE wrapper: publish the sampler's seed to the window loop and check the setup before sampling."""

    def __init__(self, check_handler: bool):
        self.check_handler = check_handler

    def __call__(self, executor, guider, sigmas, extra_args, callback, noise, *args, **kwargs):
        mo = extra_args["model_options"]
        t_opts = mo.setdefault("transformer_options", {})
        state = dict(t_opts.get(RUN_STATE_KEY, {}))
        state.setdefault("pass", 0)
        state["seed"] = int(extra_args.get("seed") or 0)
        t_opts[RUN_STATE_KEY] = state
        if self.check_handler and not isinstance(mo.get("context_handler"), LongAnimContextHandler):
            raise ValueError("model: another context-window node (core Context Windows or AnimateDiff context "
                             "options) replaced LongAnim's windows on this MODEL; use only one of them")
        conds = getattr(guider, "conds", {}) or {}
        if noise is not None and noise.ndim == 4:
            check_control_hints(list(conds.values()), noise.shape[0])
        return executor(guider, sigmas, extra_args, callback, noise, *args, **kwargs)


class _PrepareSamplingWrapper:
    """Memory estimation sees one batch of windows, not the whole video (like core's context windows)."""

    def __init__(self, length: int, max_batch: int):
        self.length = length
        self.max_batch = max_batch

    def __call__(self, executor, model, noise_shape, *args, **kwargs):
        shape = list(noise_shape)
        if len(shape) in (4, 5):
            axis = 0 if len(shape) == 4 else 2
            shape[axis] = min(shape[axis], self.length * (self.max_batch if axis == 0 else 1))
            if axis == 2:
                shape[0] = shape[0] * self.max_batch
        return executor(model, shape, *args, **kwargs)


def foreign_context(model) -> str | None:
    """Name of a context-window mechanism already on ``model`` that is not LongAnim's, else None."""
    handler = model.model_options.get("context_handler")
    if handler is not None and not isinstance(handler, LongAnimContextHandler):
        return f"{type(handler).__name__} (core Context Windows)"
    return None


def patch_model_windows(model, options: WindowOptions):
    """Clone ``model`` with LongAnim context windows installed."""
    options.validate()
    other = foreign_context(model)
    if other:
        raise ValueError(f"model: it already has context windows from {other}; LongAnim owns the window loop, "
                         "so remove the other context-window node (or this one)")
    m = model.clone()
    m.model_options["context_handler"] = LongAnimContextHandler(options)
    WP = comfy.patcher_extension.WrappersMP
    m.remove_wrappers_with_key(WP.SAMPLER_SAMPLE, WRAPPER_RUN_STATE)
    m.add_wrapper_with_key(WP.SAMPLER_SAMPLE, WRAPPER_RUN_STATE, _RunStateWrapper(check_handler=True))
    m.remove_wrappers_with_key(WP.PREPARE_SAMPLING, WRAPPER_PREPARE)
    m.add_wrapper_with_key(WP.PREPARE_SAMPLING, WRAPPER_PREPARE, _PrepareSamplingWrapper(options.length,
                                                                                           options.max_batch))
    return m
