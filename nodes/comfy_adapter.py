"""The one module that touches ComfyUI internals.

Everything the pack needs from ComfyUI (model patcher wrappers, the context-handler slot, attention patches,
KSAMPLER, progress and cancel) goes through here, with feature detection instead of version checks, so the
node classes stay thin and ``nodes/algorithms`` stays pure. Works on ComfyUI 0.3.75 and current ComfyUI.

Keys the pack writes into ``model_options`` / ``transformer_options`` and wrapper keys are namespaced
``LongAnim.*``.
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import io
import logging
import math
import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import comfy.lora
import comfy.model_management
import comfy.model_sampling
import comfy.patcher_extension
import comfy.sample
import comfy.samplers
import comfy.utils
import folder_paths
import numpy as np
import torch
import torch.nn.functional as F

from .algorithms import adapter_weights as aw
from .algorithms import attention as att
from .algorithms import context_schedule as cs
from .algorithms import inversion as inv
from .algorithms import noise_travel as nt
from .algorithms import phased as ph
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


def check_finite_latent(latent_image) -> None:
    """A latent with NaN/inf would silently give an all-NaN video: refuse it before sampling."""
    if isinstance(latent_image, torch.Tensor) and latent_image.is_floating_point() \
            and not bool(torch.isfinite(latent_image).all()):
        raise ValueError("latent_image: it contains NaN or infinite values; check the node that made the latent "
                         "(e.g. a multiply by NaN) before sampling")


class _NoiseReplaceWrapper:
    """SAMPLER_SAMPLE wrapper: replace the sampler's initial noise by a recipe seeded from the sampler's seed.

    Leaves all-zero noise alone (KSamplerAdvanced ``add_noise: disable`` / DisableNoise).
    """

    def __init__(self, recipe: NoiseRecipe):
        self.recipe = recipe

    def __call__(self, executor, guider, sigmas, extra_args, callback, noise, *args, **kwargs):
        check_finite_latent(args[0] if args else kwargs.get("latent_image"))
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
        if self.max_batch < 0:
            raise ValueError(f"max_windows_per_batch must be >= 0 (0 = auto), got {self.max_batch}")

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


AUTO_BATCH_CAP = 16  # most windows per model call in auto mode (tiny Wan, CPU: 1 -> 16 windows per call = 2.2x)
AUTO_BATCH_SHARE = 0.25  # auto mode lets one batch of windows use this share of the device's total memory


def auto_windows_per_call(base_model, x_shape: Sequence[int], axis: int, length: int, device) -> int:
    """Windows per model call for ``max_windows_per_batch = 0``.

    As many windows as fit, by ComfyUI's own activation-memory estimate (``BaseModel.memory_required``, cond and
    uncond together), in a quarter of the device's TOTAL memory, at most 16. Total, not free, memory: the choice must
    not change between runs on one machine, or batched float sums would make a seed's output wobble in the last bits.
    The sampler's memory estimate (``_PrepareSamplingWrapper``) reserves the same batch, so ComfyUI offloads weights
    to make room on small GPUs.
    """
    shape = list(x_shape)
    if axis == 0:
        shape[0] = length * 2
    else:
        shape[axis] = min(shape[axis], length)
        shape[0] = shape[0] * 2
    try:
        per_window = float(base_model.memory_required(shape))
        total = float(comfy.model_management.get_total_memory(torch.device(device)))
    except Exception:  # pragma: no cover - a model without an estimate: stay safe
        return 1
    if per_window <= 0:
        return 1
    return max(1, min(AUTO_BATCH_CAP, int(total * AUTO_BATCH_SHARE // per_window)))


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
    """What other packs read from ``transformer_options["context_window"]``.

    An own object with the attributes core's ``IndexListContextWindow`` documents (``index_list``,
    ``context_length``, ``context_overlap``, ``dim``, ``total_frames``, ``center_ratio``, ``get_tensor``), so no
    core constructor signature is assumed.
    """

    def __init__(self, index_list: list[int], dim: int, total: int):
        self.index_list = index_list
        self.context_length = len(index_list)
        self.context_overlap = 0
        self.dim = dim
        self.total_frames = total
        self.center_ratio = (min(index_list) + max(index_list)) / (2 * max(total, 1))
        self.modality_windows = None

    def get_tensor(self, full: torch.Tensor, device=None, dim=None, retain_index_list=()) -> torch.Tensor:
        dim = self.dim if dim is None else dim
        if dim == 0 and full.shape[dim] == 1:
            return full if device is None else full.to(device)
        out = full.index_select(dim, torch.tensor(self.index_list, device=full.device))
        return out if device is None else out.to(device)

    def add_window(self, full: torch.Tensor, to_add: torch.Tensor, dim=None) -> torch.Tensor:
        dim = self.dim if dim is None else dim
        full.index_add_(dim, torch.tensor(self.index_list, device=full.device), to_add)
        return full


def _window_view(index_list: list[int], dim: int, total: int) -> _WindowView:
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


WINDOWS_KEY = "longanim_windows"  # LATENT key: windows (index lists) of the last step that produced it
RECORD_KEY = "LongAnim.schedule_record"  # transformer_options: the ScheduleRecord of the running sample


class ScheduleRecord:
    """The windows of the last sampling step of one run (a few kB whatever the step count)."""

    def __init__(self):
        self.step = -1
        self.windows: list[list[int]] | None = None

    def note(self, step: int, windows: list[list[int]]) -> None:
        if step >= self.step:  # noise travel repeats steps: keep the latest evaluation of the last step
            self.step, self.windows = step, [list(w) for w in windows]

    def file_under(self, samples) -> None:
        if self.windows is not None and isinstance(samples, torch.Tensor):
            _RECORDS[_fingerprint(samples)] = self.windows
            while len(_RECORDS) > _MAX_RECORDS:
                _RECORDS.popitem(last=False)


_RECORDS: OrderedDict[tuple, list[list[int]]] = OrderedDict()
_MAX_RECORDS = 16  # the last sampling runs of this server; a record is a few kB


def _fingerprint(samples: torch.Tensor) -> tuple:
    data = samples.detach().to("cpu", torch.float32).contiguous().reshape(-1).view(torch.uint8).numpy()
    return tuple(samples.shape), hashlib.blake2b(memoryview(data), digest_size=16).hexdigest()  # no byte copy


def recorded_windows(samples) -> list[list[int]] | None:
    """The last step's windows of the LongAnim sampling run whose output is ``samples`` (same values), if this
    server ran it. Core KSampler / SamplerCustomAdvanced copy their input LATENT dict, so the pack cannot put the
    schedule into their output; the window loop files it under the output's content instead (bounded, newest 16)."""
    if not isinstance(samples, torch.Tensor):
        return None
    return _RECORDS.get(_fingerprint(samples))


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
        self._auto_batch: dict[tuple, int] = {}  # (latent shape, device) -> windows per call, for max_batch = 0

    # -- ContextHandlerABC ---------------------------------------------------------------------
    def should_use_context(self, model, conds, x_in, timestep, model_options) -> bool:
        axis = frame_axis_of(x_in)
        return x_in.shape[axis] > self.options.length or _has_tags(conds)

    def get_resized_cond(self, cond_in, x_in, window, device=None):
        axis = frame_axis_of(x_in)
        return self._resize_cond(cond_in, [list(window.index_list)], x_in.shape[axis], axis)

    def _auto_windows(self, model, x_in: torch.Tensor, axis: int) -> int:
        """Auto batch size, computed once per latent shape (the same answer every step of a run)."""
        key = (tuple(x_in.shape), str(x_in.device))
        if key not in self._auto_batch:
            self._auto_batch[key] = auto_windows_per_call(model, x_in.shape, axis, self.options.length, x_in.device)
        return self._auto_batch[key]

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
        record = model_options.get("transformer_options", {}).get(RECORD_KEY)
        if isinstance(record, ScheduleRecord):
            record.note(step, windows)
        # a private copy of the options: the window keys published below never outlive this call
        model_options = dict(model_options)
        t_opts = model_options["transformer_options"] = dict(model_options.get("transformer_options", {}))
        ade = ade_run_state(t_opts)
        if ade is not None:  # ADE's own sliding loop must not run inside LongAnim's windows
            _drop_ade_sliding_loop(t_opts)
        # windows with their own prompts, their own adapter weights or an ADE motion module (one video length per
        # call) are evaluated one per call
        if _has_tags(conds) or t_opts.get(WINDOW_CALLBACKS) or ade is not None:
            max_batch = 1
        else:
            max_batch = opts.max_batch or self._auto_windows(model, x_in, axis)
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
            if ade is not None:
                cleanups.append(_ade_set_window(ade, batch[0], num_frames))
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
        fused = cs.co_denoise(stacked, windows, axis + 1, evaluate, weights=weights, blend_masks=masks,
                              max_batch=max_batch, check_interrupt=check_interrupt)
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
        check_finite_latent(args[0] if args else kwargs.get("latent_image"))
        mo = extra_args["model_options"]
        t_opts = mo.setdefault("transformer_options", {})
        state = dict(t_opts.get(RUN_STATE_KEY, {}))
        state.setdefault("pass", 0)
        state["seed"] = int(extra_args.get("seed") or 0)
        t_opts[RUN_STATE_KEY] = state
        if self.check_handler and not isinstance(mo.get("context_handler"), LongAnimContextHandler):
            raise ValueError("model: another context-window node (core Context Windows or AnimateDiff context "
                             "options) replaced LongAnim's windows on this MODEL; use only one of them")
        patcher = getattr(guider, "model_patcher", None)
        other = foreign_context(patcher) if self.check_handler and patcher is not None else None
        if other and "core Context Windows" not in other:
            raise ValueError(f"model: LongAnim windows cannot run together with {other}; remove one of them")
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
            batch = self.max_batch or auto_windows_per_call(model.model, shape, axis, self.length, model.load_device)
            shape[axis] = min(shape[axis], self.length * (batch if axis == 0 else 1))
            if axis == 2:
                shape[0] = shape[0] * batch
        return executor(model, shape, *args, **kwargs)


ADE_KEY = "ADE"  # AnimateDiff-Evolved's wrapper / additional-models key
ADE_PARAMS = "ADE_params"  # AnimateDiff-Evolved's InjectionParams attachment on the ModelPatcher
ADE_STATE = "ADGS"  # AnimateDiff-Evolved's per-run global state in transformer_options
WRAPPER_OUTER = "LongAnim.outer_sample"


# ---------------------------------------------------------------------------------------------- AnimateDiff-Evolved
# LongAnim windows drive AnimateDiff-Evolved's motion module (ADE >= 1.5, wrapper-based; checked by hand with ADE
# 1.5.7, tests/tools/ade_interop_notes.md). ADE is never imported: everything below is duck-typed on the objects ADE
# leaves on the ModelPatcher, and every branch is a no-op when ADE is absent.
#
# * Outside sampling, ADE refuses more frames than the motion module's positional encoding (24/32) unless its own
#   context options give a context length. LongAnim's OUTER_SAMPLE wrapper (first in the chain, so it runs before
#   ADE's) hands ADE, for this run only, a copy of its params whose context length is LongAnim's window length. ADE
#   then sizes the motion module, its group-norm hack and its memory estimate for one window, as it does for its
#   own windows.
# * Inside sampling, LongAnim's window loop drops ADE's sliding-window CALC_COND_BATCH wrapper from its private copy of
#   the options (one window loop only) and, per window, does what ADE's own loop does: motion models'
#   ``set_sub_idxs`` / ``set_video_length`` and ``ADGS.params.sub_idxs``; ``ad_params`` is published as always.
def _ade_params(model):
    get = getattr(model, "get_attachment", None)
    return get(ADE_PARAMS) if get is not None else None


def _ade_context_length(params) -> int | None:
    try:
        return params.context_options.context_length
    except AttributeError:
        return None


def _has_ade_motion(model) -> bool:
    return bool((getattr(model, "additional_models", {}) or {}).get(ADE_KEY))


_BRIDGED: set[int] = set()  # ids of ADE params copies LongAnim made for a running sample (not the user's options)


def _ade_params_for_windows(params, length: int):
    """A copy of ADE's InjectionParams whose (single, default) context has LongAnim's window length."""
    clone = params.clone()
    group = clone.context_options
    if len(group.contexts) != 1:
        return None
    first = group.contexts[0]
    ctx = first.clone() if hasattr(first, "clone") else copy.copy(first)
    ctx.context_length = length
    new_group = type(group)()
    new_group.extras = group.extras
    new_group.add(ctx)
    clone.set_context(new_group)
    return clone


class _OuterSampleWrapper:
    """OUTER_SAMPLE wrapper, first in the chain: the run's window record, and ADE's context length for this run.

    * Records the windows of the run's last step and files them under the output latent (:func:`recorded_windows`),
      so the Video Metrics node marks the borders the run really had.
    * AnimateDiff-Evolved: see the section above; ADE sees LongAnim's window length for this run only.
    """

    def __init__(self, length: int):
        self.length = length

    def __call__(self, executor, noise, latent_image, *args, **kwargs):
        guider = executor.class_obj
        patcher = getattr(guider, "model_patcher", None)
        record = ScheduleRecord()
        orig_options = guider.model_options
        guider.model_options = dict(orig_options)
        guider.model_options["transformer_options"] = dict(orig_options.get("transformer_options", {}))
        guider.model_options["transformer_options"][RECORD_KEY] = record
        params = _ade_params(patcher) if patcher is not None else None
        bridged = None
        if params is not None and _has_ade_motion(patcher) and _ade_context_length(params) is None \
                and isinstance(latent_image, torch.Tensor) and latent_image.ndim == 4 \
                and latent_image.shape[0] > self.length:  # ADE: SD-family frames in the batch
            bridged = _ade_params_for_windows(params, self.length)
        if bridged is not None:
            patcher.set_attachments(ADE_PARAMS, bridged)
            _BRIDGED.add(id(bridged))
        try:
            out = executor(noise, latent_image, *args, **kwargs)
        finally:
            guider.model_options = orig_options
            if bridged is not None:
                _BRIDGED.discard(id(bridged))
                patcher.set_attachments(ADE_PARAMS, params)
        record.file_under(out)
        return out


def ade_run_state(t_opts: dict):
    """ADE's per-run state when an ADE motion module takes part in this sampling run, else None."""
    state = t_opts.get(ADE_STATE)
    if state is None or getattr(state, "motion_models", None) is None:
        return None
    return state


def _drop_ade_sliding_loop(t_opts: dict) -> None:
    wrappers = t_opts.get("wrappers")
    ccb = comfy.patcher_extension.WrappersMP.CALC_COND_BATCH
    if wrappers and ADE_KEY in wrappers.get(ccb, {}):
        t_opts["wrappers"] = dict(wrappers)
        t_opts["wrappers"][ccb] = {k: v for k, v in wrappers[ccb].items() if k != ADE_KEY}


def _ade_set_window(state, window: list[int], num_frames: int) -> Callable[[], None]:
    """What ADE's own window loop does per window: motion modules see this window's frames and length."""
    groups = list((getattr(state, "motion_models_devices", None) or {}).values()) or [state.motion_models]
    idxs = list(window)
    for g in groups:
        g.set_sub_idxs(idxs)
        g.set_video_length(len(idxs), num_frames)
    params = getattr(state, "params", None)
    if params is not None:
        params.sub_idxs = idxs

    def undo() -> None:
        length = _ade_context_length(params) or num_frames
        for g in groups:
            g.set_sub_idxs(None)
            g.set_video_length(length, num_frames)
        if params is not None:
            params.sub_idxs = None

    return undo


def foreign_context(model) -> str | None:
    """Name of a window mechanism on ``model`` that LongAnim's window loop cannot share the model with, else None.

    Core Context Windows sit in the same ``context_handler`` slot; AnimateDiff-Evolved's context options run ADE's
    own window loop (a hand check, tests/tools/ade_interop_notes.md, showed it fails inside LongAnim's windows).
    Only one window loop can own a model, so both are refused with a message. An ADE motion module *without* ADE
    context options is fine: LongAnim drives it (see the AnimateDiff-Evolved section above).
    """
    handler = model.model_options.get("context_handler")
    if handler is not None and not isinstance(handler, LongAnimContextHandler):
        return f"{type(handler).__name__} (core Context Windows)"
    params = _ade_params(model)
    if params is not None and id(params) not in _BRIDGED and _ade_context_length(params) is not None:
        return "AnimateDiff-Evolved context options"
    return None


def _first_wrapper(model, wrapper_type: str, key: str, wrapper) -> None:
    """Install ``wrapper`` as the outermost of its type on ``model`` (a fresh clone's own dict)."""
    current = {k: v for k, v in model.wrappers.get(wrapper_type, {}).items() if k != key}
    model.wrappers[wrapper_type] = {key: [wrapper], **current}


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
    _first_wrapper(m, WP.OUTER_SAMPLE, WRAPPER_OUTER, _OuterSampleWrapper(options.length))
    return m


# ==============================================================================================================
# attention: ComfyUI glue of the attention patches (issue 6): ZS² momentum, Gen-L cross-frame, ZoLA expansion.
# ==============================================================================================================
# ComfyUI glue of the attention patches (issue 6): ZS² momentum, Gen-L cross-frame, ZoLA expansion.
#
# Part of the single ComfyUI adapter; merged into comfy_adapter.py by the lead.
#
# Hooks (same on ComfyUI 0.3.75 and current ComfyUI, chosen by feature detection):
#
# * UNet (SD1.5/SDXL, frames in the batch): ``ModelPatcher.set_model_attn1_patch``. The patch receives the
#   post-norm hidden states ``n`` ``[B, N, C]`` of every ``BasicTransformerBlock`` before ``to_q/to_k/to_v`` and
#   returns ``(n, context, value)``; only the K/V *sources* change, so the host's attention backend (sdpa, xformers,
#   split, sage...) keeps running. ``to_k``/``to_v`` have no bias, so a per-frame combination of hidden states is
#   the same combination of K and V (ZS² Eq. 2 exactly).
# * Wan (native video DiT): ``transformer_options["optimized_attention_override"]`` (called by ``wrap_attn`` around
#   every attention backend) plus a ``DIFFUSION_MODEL`` wrapper that records the token grid (T', H', W') on hosts
#   whose Wan does not publish ``grid_sizes`` (0.3.75).
#
# Keys: wrapper ``LongAnim.attention_expansion``; transformer_options ``LongAnim.attention_grid``.

log = logging.getLogger("LongAnim")

WRAPPER_EXPANSION_GRID = "LongAnim.attention_expansion"
GRID_KEY = "LongAnim.attention_grid"
OVERRIDE_KEY = "optimized_attention_override"

BLOCK_CHOICES: dict[str, tuple[str, ...]] = {
    "all": ("input", "middle", "output"),
    "input": ("input",),
    "middle": ("middle",),
    "output": ("output",),
    "input+middle": ("input", "middle"),
    "middle+output": ("middle", "output"),
    "input+output": ("input", "output"),
}

try:  # feature detection of the model classes (both exist in 0.3.75 and current ComfyUI)
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel as _UNetModel
except ImportError:  # pragma: no cover - layout drift
    _UNetModel = None
try:
    from comfy.ldm.wan.model import WanModel as _WanModel
except ImportError:  # pragma: no cover - very old hosts
    _WanModel = None


# ---------------------------------------------------------------------------------------------- model family
def _diffusion_model(model) -> Any:
    return getattr(getattr(model, "model", None), "diffusion_model", None)


def model_family(model) -> str:
    """``"unet"`` (SD1.5/SDXL-style UNet, frames in the batch), ``"wan"`` (Wan 2.x DiT) or ``"other"``."""
    dm = _diffusion_model(model)
    if _UNetModel is not None and isinstance(dm, _UNetModel):
        return "unet"
    if _WanModel is not None and isinstance(dm, _WanModel):
        return "wan"
    name = type(dm).__name__
    if name == "UNetModel":
        return "unet"
    if name.startswith("Wan") or "wan" in type(dm).__module__.split("."):
        return "wan"
    return "other"


def family_label(model) -> str:
    """Human-readable name of the model family, e.g. ``WAN21 (WanModel)``."""
    base = type(getattr(model, "model", None)).__name__
    return f"{base} ({type(_diffusion_model(model)).__name__})"


def require_unet(model, node: str) -> None:
    """Frame-in-batch attention patches work on UNet models only; refuse others with a clear message."""
    family = model_family(model)
    if family == "unet":
        return
    hint = ("use LongAnim: Attention Expansion (ZoLA) for Wan models" if family == "wan"
            else "it needs an SD1.5/SDXL-style UNet whose latent holds the frames in the batch")
    raise ValueError(f"model: {node} supports SD1.5/SDXL UNet models (frames in the batch), got "
                     f"{family_label(model)}; {hint}")


def require_video_dit(model, node: str) -> None:
    """Attention expansion works on Wan-family video DiTs; refuse UNets (and unknown families) clearly."""
    family = model_family(model)
    if family == "wan":
        return
    if family == "unet":
        raise ValueError(f"model: {node} is for native video models (Wan family) that attend over all frames "
                         f"at once, got the UNet {family_label(model)}, whose frames never attend to each other; "
                         "use LongAnim: Temporal Momentum Attention or Cross-Frame Attention instead")
    raise ValueError(f"model: {node} supports Wan-family video models (Wan 2.1/2.2), got {family_label(model)}")


def sigma_range(model, start_percent: float, end_percent: float) -> tuple[float, float]:
    """(sigma_high, sigma_low) of a [start_percent, end_percent] range of the sampling schedule."""
    for name, value in (("start_percent", start_percent), ("end_percent", end_percent)):
        if not 0.0 <= float(value) <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {value}")
    if start_percent > end_percent:
        raise ValueError(f"start_percent ({start_percent}) must be <= end_percent ({end_percent}); the patch is "
                         "active from start_percent (early, noisy steps) to end_percent (late steps)")
    ms = model.get_model_object("model_sampling")
    return float(ms.percent_to_sigma(float(start_percent))), float(ms.percent_to_sigma(float(end_percent)))


# ---------------------------------------------------------------------------------------------- UNet patch
def _segments(extra_options: dict, frames: int) -> tuple[list[list[int]], int, bool]:
    """Windows of frames inside one cond chunk: (absolute frame ids per window, total frames, ids known).

    LongAnim windows publish every window of a batched call in ``ad_params["sub_idxs_batch"]``; core context
    windows publish ``context_window.index_list``; AnimateDiff-Evolved ``ad_params["sub_idxs"]``. Without any
    of them the chunk is one sequence of ``frames`` frames.
    """
    ad = extra_options.get("ad_params") or {}
    batch = ad.get("sub_idxs_batch")
    total = ad.get("full_length")
    if batch and sum(len(w) for w in batch) == frames:
        return [list(w) for w in batch], int(total or frames), True
    cw = extra_options.get("context_window")
    idx = getattr(cw, "index_list", None)
    if idx is not None and len(idx) == frames:
        return [list(idx)], int(getattr(cw, "total_frames", None) or total or frames), True
    sub = ad.get("sub_idxs")
    if sub is not None and len(sub) == frames:
        return [list(sub)], int(total or frames), True
    return [list(range(frames))], frames, False


class FrameAttentionPatch:
    """``attn1_patch`` replacing the self-attention K/V source of every frame (UNet, frames in the batch).

    ``kind`` is ``"momentum"`` (ZS² Eq. 2 with ``mu`` or the per-frame ``mu_list``) or a cross-frame mode of
    :data:`attention.CROSS_FRAME_MODES`. The batch is ``G`` cond chunks (``len(cond_or_uncond)``) of ``F`` frames
    each; chunks never mix. Inside a chunk the frames are split into the context windows of this call (if any)
    and each window is processed on its own, in window order: the momentum recurrence starts at the window's
    first frame (K''_1 = K_1 there) and the Gen-L anchor is the window's middle frame.

    Plain attributes only: deep-copyable (0.3.75 deep-copies ``model_options`` on clone), no ``.to``.
    """

    def __init__(self, kind: str, mu: float = att.DEFAULT_MU, mu_list: Sequence[float] | None = None,
                 sigma_high: float = math.inf, sigma_low: float = 0.0,
                 blocks: Sequence[str] = ("input", "middle", "output")):
        self.kind = kind
        self.mu = float(mu)
        self.mu_list = None if mu_list is None else [float(v) for v in mu_list]
        self.sigma_high = float(sigma_high)
        self.sigma_low = float(sigma_low)
        self.blocks = tuple(blocks)

    # -- gates ------------------------------------------------------------------------------------------
    def active(self, n: torch.Tensor, extra_options: dict) -> bool:
        shape = extra_options.get("original_shape")
        if shape is not None and len(shape) == 5:
            raise ValueError("model: LongAnim frame attention patches need an SD-style latent with the frames in "
                             f"the batch [frames, C, H, W], got a 5-D latent {list(shape)} (a native video "
                             "model); use LongAnim: Attention Expansion (ZoLA) for Wan models")
        block = extra_options.get("block")
        if block is not None and block[0] not in self.blocks:
            return False
        sigmas = extra_options.get("sigmas")
        if isinstance(sigmas, torch.Tensor) and sigmas.numel():
            sigma = float(sigmas.detach().float().max())
            if sigma > self.sigma_high * (1 + 1e-5) or sigma < self.sigma_low * (1 - 1e-5):
                return False
        # blocks whose batch is not the frames (e.g. temporal blocks of a video UNet) are left alone
        return not (shape is not None and n.shape[0] != shape[0])

    def _mus(self, ids: list[int], total: int, window_len: int, known: bool) -> float | list[float]:
        if self.mu_list is None:
            return self.mu
        if known and len(self.mu_list) == total:
            return [self.mu_list[i] for i in ids]
        if len(self.mu_list) == window_len:
            return list(self.mu_list)
        where = (f"the video has {total} latent frames and this context window {window_len}" if total != window_len
                 else f"the latent has {total} frames")
        raise ValueError(f"momentum_per_frame has {len(self.mu_list)} values but {where}; give one value per "
                         "latent frame (the first one is unused) or leave it empty to use momentum everywhere")

    # -- the transform ---------------------------------------------------------------------------------
    def _transform(self, x: torch.Tensor, extra_options: dict) -> torch.Tensor:
        g = max(1, len(extra_options.get("cond_or_uncond") or [0]))
        b, tokens, ch = x.shape
        f = b // g
        x4 = x.reshape(g, f, tokens, ch)
        segments, total, known = _segments(extra_options, f)
        lengths = [len(s) for s in segments]
        if self.kind != "momentum" or self.mu_list is None:
            if len(set(lengths)) == 1 and len(segments) > 1:  # equal windows: one batched call
                xs = x4.reshape(g * len(segments), lengths[0], tokens, ch)
                return self._apply(xs, self.mu).reshape(b, -1, ch)
        parts, start = [], 0
        for ids in segments:
            seg = x4[:, start:start + len(ids)]
            mu = self._mus(ids, total, len(ids), known) if self.kind == "momentum" else self.mu
            parts.append(self._apply(seg, mu))
            start += len(ids)
        out = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
        return out.reshape(b, -1, ch)

    def _apply(self, x: torch.Tensor, mu) -> torch.Tensor:
        if self.kind == "momentum":
            return att.momentum_scan(x, mu, frame_dim=1)
        return att.cross_frame_context(x, self.kind, frame_dim=1)

    def __call__(self, n, context_attn1, value_attn1, extra_options):
        if not self.active(n, extra_options):
            return n, context_attn1, value_attn1
        if context_attn1 is None:
            context_attn1 = n
        if value_attn1 is None:
            value_attn1 = context_attn1
        if context_attn1.shape[0] != n.shape[0] or value_attn1.shape[0] != n.shape[0]:
            return n, context_attn1, value_attn1
        new_context = self._transform(context_attn1, extra_options)
        new_value = new_context if value_attn1 is context_attn1 else self._transform(value_attn1, extra_options)
        return n, new_context, new_value


def _is_frame_patch(p) -> bool:
    return isinstance(p, FrameAttentionPatch) or type(p).__name__ == "FrameAttentionPatch"


def patch_frame_attention(model, patch: FrameAttentionPatch | None):
    """Clone ``model`` with ``patch`` as its LongAnim frame-attention ``attn1_patch``.

    An earlier LongAnim frame-attention patch on the model is replaced (applying the node twice does not stack);
    other packs' ``attn1_patch`` entries are kept, in order. ``patch=None`` only removes LongAnim's patch.
    """
    m = model.clone()
    to = m.model_options.setdefault("transformer_options", {})
    patches = dict(to.get("patches", {}))
    kept = [p for p in patches.get("attn1_patch", []) if not _is_frame_patch(p)]
    if patch is not None:
        kept.append(patch)
    if kept:
        patches["attn1_patch"] = kept
    else:
        patches.pop("attn1_patch", None)
    to["patches"] = patches
    return m


# ---------------------------------------------------------------------------------------------- Wan expansion
def _call_attention(func, previous, args, kwargs):
    if previous is not None:
        return previous(func, *args, **kwargs)
    return func(*args, **kwargs)


class ExpansionOverride:
    """``optimized_attention_override`` applying ZoLA attention expansion (Eqs. 3-4) to Wan self-attention.

    Self-attention is recognised by ``q``, ``k``, ``v`` of shape ``[B, L, heads*d]`` with the same L and
    L = T'·H'·W' (the token grid of this call, from ``grid_sizes`` on current ComfyUI or the grid recorded by
    :class:`GridRecorder`). Everything else (cross-attention to text or image tokens, masked or pre-reshaped
    calls, sequences with reference tokens) goes to the host kernel unchanged. The windows call the host kernel
    too (``attn_fn`` = the backend ``wrap_attn`` chose), or the override that was on the model before (chained).
    """

    def __init__(self, base: int, stride: int, max_windows_per_batch: int | None = None, previous=None):
        self.base = int(base)
        self.stride = int(stride)
        self.max_windows_per_batch = max_windows_per_batch
        self.previous = previous

    @staticmethod
    def _grid(t_opts: dict):
        grid = t_opts.get("grid_sizes")
        if grid is None:
            grid = t_opts.get(GRID_KEY)
        if grid is None or len(grid) != 3:
            return None
        return tuple(int(v) for v in grid)

    def __call__(self, func, *args, **kwargs):
        t_opts = kwargs.get("transformer_options") or {}
        grid = self._grid(t_opts)
        if grid is None or len(args) < 3 or kwargs.get("skip_reshape") or kwargs.get("mask") is not None:
            return _call_attention(func, self.previous, args, kwargs)
        q, k, v = args[:3]
        frames, hh, ww = grid
        length = frames * hh * ww
        if (q.ndim != 3 or k.shape[:2] != q.shape[:2] or v.shape[:2] != q.shape[:2] or q.shape[1] != length
                or self.base >= frames or (len(args) > 4 and args[4] is not None)):
            return _call_attention(func, self.previous, args, kwargs)
        heads = args[3] if len(args) > 3 else kwargs.get("heads")
        rest = args[3:]

        def attn_fn(q_, k_, v_, _heads):
            return _call_attention(func, self.previous, (q_, k_, v_, *rest), kwargs)

        return att.expanded_attention(q, k, v, heads, frames, hh * ww, self.base, self.stride, attn_fn=attn_fn,
                                      max_windows_per_batch=self.max_windows_per_batch)


class GridRecorder:
    """``DIFFUSION_MODEL`` wrapper (Wan): publish the token grid (T', H', W') of this call to the attention.

    Wan's forward is ``(x, timestep, context, clip_fea, time_dim_concat, transformer_options, **kw)`` with
    ``x`` ``[B, C, T, H, W]`` padded to the patch size; the grid is ceil((T + T_concat)/p_t), ceil(H/p_h),
    ceil(W/p_w). A shallow copy of ``transformer_options`` carries it, so nothing leaks between calls.
    """

    def __call__(self, executor, x, *args, **kwargs):
        if isinstance(x, torch.Tensor) and x.ndim == 5:
            patch = tuple(getattr(executor.class_obj, "patch_size", (1, 2, 2)))
            t = x.shape[2]
            tdc = args[3] if len(args) > 3 else kwargs.get("time_dim_concat")
            if isinstance(tdc, torch.Tensor) and tdc.ndim == 5:
                t += -(-tdc.shape[2] // patch[0]) * patch[0]
            grid = (-(-t // patch[0]), -(-x.shape[3] // patch[1]), -(-x.shape[4] // patch[2]))
            if "transformer_options" in kwargs:
                kwargs["transformer_options"] = {**(kwargs["transformer_options"] or {}), GRID_KEY: grid}
            elif len(args) > 4:
                args = (*args[:4], {**(args[4] or {}), GRID_KEY: grid}, *args[5:])
        return executor(x, *args, **kwargs)


def patch_attention_expansion(model, base: int, stride: int, max_windows_per_batch: int | None = None):
    """Clone ``model`` with ZoLA attention expansion in every self-attention of its Wan transformer.

    An override already on the model (another pack's, or core's ``set_model_optimized_attention``) is chained:
    it is called instead of the bare kernel, for pass-through calls and for each window. A previous LongAnim
    expansion is replaced, not stacked.
    """
    m = model.clone()
    to = m.model_options.setdefault("transformer_options", {})
    previous = to.get(OVERRIDE_KEY)
    while isinstance(previous, ExpansionOverride):
        previous = previous.previous
    to[OVERRIDE_KEY] = ExpansionOverride(base, stride, max_windows_per_batch, previous)
    WP = comfy.patcher_extension.WrappersMP
    m.remove_wrappers_with_key(WP.DIFFUSION_MODEL, WRAPPER_EXPANSION_GRID)
    m.add_wrapper_with_key(WP.DIFFUSION_MODEL, WRAPPER_EXPANSION_GRID, GridRecorder())
    return m


# ==============================================================================================================
# travel: Noise travel (ZoLA section 4.4, Eq. 9) on ComfyUI's sampler objects.
# ==============================================================================================================
# Noise travel (ZoLA section 4.4, Eq. 9) on ComfyUI's sampler objects.
#
# Part of the single ComfyUI adapter; merged into comfy_adapter.py by the lead.
#
# Two ways in, one implementation:
#
# * :class:`TravelKSampler` -- a ``comfy.samplers.KSAMPLER`` (output of ``LongAnimNoiseTravel``, for
#   SamplerCustom / SamplerCustomAdvanced) whose ``sampler_function`` (:class:`TravelFunction`) runs
#   ``noise_travel.sample_with_travel`` with the wrapped sampler's own ``sampler_function`` + ``extra_options``
#   as ``inner``.
# * :func:`patch_model_travel` -- a MODEL clone with a ``SAMPLER_SAMPLE`` wrapper (key ``LongAnim.noise_travel``)
#   that swaps the sampler of that one call (``executor.class_obj``, the KSAMPLER plain KSampler built from
#   ``sampler_name``) for a :class:`TravelKSampler` wrapping it; the rest of the wrapper chain runs unchanged.
#
# Choices:
#
# * Only k-diffusion samplers (objects with ``sampler_function``: every core sampler node and ``KSAMPLER``s of
#   other packs) can be travelled; other ``SAMPLER`` objects are refused with an error naming the input, since
#   their ``.sample()`` re-applies ``noise_scaling`` to its inputs and owns its own loop, so it cannot be run
#   segment by segment without guessing its internals.
# * Re-noising follows the model's forward process, read from its ``model_sampling``: models that inherit
#   core's ``EPS.noise_scaling`` (eps, v-prediction, EDM, x0: sigma space) -> ``"eps"``; ``CONST`` models that
#   inherit ``CONST.noise_scaling`` (rectified flow: Wan, Hunyuan, LTX, Flux) -> ``"flow"``; anything else
#   (image-to-image types, Cosmos RFlow, new types with their own noising rule) is refused. Current ComfyUI's
#   ``model_sampling.noise_scale`` multiplies the re-noising noise, as it multiplies the initial noise.
# * Before every segment the travel pass (segment index, added to any pass already published) is written to
#   ``transformer_options["LongAnim.run"]["pass"]`` so LongAnim context windows re-draw their windows for the
#   repeated steps; the sampler's own per-step noise (ancestral / SDE samplers) uses a seed mixed with the
#   segment index for segments after the first, so a repeated block does not replay the same ancestral noise.
# * The progress callback sees a global step index and the true total of steps run
#   (``noise_travel.count_model_calls``), so the bar reaches 100 % after the extra model calls.

log = logging.getLogger("LongAnim")

WRAPPER_TRAVEL = "LongAnim.noise_travel"
_SEGMENT_SEED_STREAM = 0x54524156  # "TRAV": sampler-noise seed of segment k > 0


# ---------------------------------------------------------------------------------------------- settings
def steps_in_range(num_steps: int, start: float, end: float) -> int:
    """Sampling steps ``i`` with ``start * n <= i < end * n`` (the travel range of ``noise_travel.travel_plan``)."""
    eps = 1e-9  # same guard as travel_plan
    first = max(0, math.ceil(start * num_steps - eps))
    stop = min(num_steps, math.ceil(end * num_steps - eps))
    return max(0, stop - first)


@dataclasses.dataclass(frozen=True)
class TravelSettings:
    """The node inputs of noise travel; plain values only (deep-copied with the model on ComfyUI 0.3.75).

    ``jump = 0`` means automatic: ``noise_travel.default_jump(steps)`` capped to the steps in the range.
    ``start == end`` (an empty range) or ``repeats = 0`` means no travel: plain sampling.
    """

    jump: int = 0
    start: float = nt.DEFAULT_START
    end: float = nt.DEFAULT_END
    repeats: int = nt.DEFAULT_REPEATS
    seed: int = 0
    recipe: NoiseRecipe | None = None

    def validate(self) -> None:
        """Cheap step-independent checks; ``ValueError`` naming the input (jump, start, end, repeats, seed, recipe)."""
        nt.validate_travel(1, self.jump, self.start, self.end, self.repeats)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}")
        if self.recipe is not None:
            if not isinstance(self.recipe, NoiseRecipe):
                raise ValueError(f"recipe: expected a LONGANIM_NOISE recipe from a LongAnim noise node, got "
                                 f"{type(self.recipe).__name__}; connect e.g. LongAnim: Repeat-Mask Noise")
            self.recipe.validate()

    def jump_for(self, num_steps: int) -> int:
        """The jump length ``L`` used for ``num_steps`` (0 = no travel); raises if an explicit L does not fit."""
        self.validate()
        nt.validate_travel(num_steps, self.jump, self.start, self.end, self.repeats)
        if self.repeats == 0 or self.start == self.end:
            return 0
        in_range = steps_in_range(num_steps, self.start, self.end)
        if self.jump == 0:
            return min(nt.default_jump(num_steps), in_range)
        if self.jump > in_range:
            raise ValueError(
                f"jump must be <= the {in_range} sampling steps in the travel range [start={self.start}, "
                f"end={self.end}) of {num_steps} steps, got jump={self.jump}; lower jump, widen start/end, use "
                "more steps, or set jump = 0 (automatic)")
        return self.jump

    def plan(self, num_steps: int) -> list[nt.Segment]:
        """``noise_travel.travel_plan`` for ``num_steps`` steps (a single segment when travel is off)."""
        length = self.jump_for(num_steps)
        if length == 0:
            return [nt.Segment(0, num_steps)]
        return nt.travel_plan(num_steps, length, self.start, self.end, self.repeats)


# ---------------------------------------------------------------------------------------------- model type
def travel_parameterization(model_sampling) -> tuple[str, float]:
    """``("eps" | "flow", noise_scale)`` for a ComfyUI ``model_sampling`` object; ``ValueError`` if unsupported.

    Decided by the forward (noising) rule the model's sampling uses, not by its name: inheriting core's
    ``EPS.noise_scaling`` is sigma space, ``CONST.noise_scaling`` is rectified flow; a type that overrides
    ``noise_scaling`` or is an image-to-image type has a noising rule we do not know, so it is refused.
    """
    cls = type(model_sampling)
    names = [c.__name__ for c in cls.__mro__]
    ns = getattr(cls, "noise_scaling", None)
    eps_cls = getattr(comfy.model_sampling, "EPS", None)
    const_cls = getattr(comfy.model_sampling, "CONST", None)
    kind = None
    if not any(n.startswith("IMG_TO_IMG") for n in names):
        if const_cls is not None and isinstance(model_sampling, const_cls) and ns is const_cls.noise_scaling:
            kind = "flow"
        elif eps_cls is not None and isinstance(model_sampling, eps_cls) and ns is eps_cls.noise_scaling:
            kind = "eps"
    if kind is None:
        mixins = [n for n in names if n.isupper()] or names[:2]
        raise ValueError(
            f"model: noise travel supports epsilon / v-prediction models (SD1.5, SDXL, AnimateDiff, SVD) and "
            f"rectified-flow models (Wan, Hunyuan, LTX, Flux); this model's sampling type ({', '.join(mixins)}) "
            "noises latents by its own rule, so it cannot be re-noised correctly; remove the noise travel node")
    scale = getattr(model_sampling, "noise_scale", 1.0)
    return kind, float(scale) if scale is not None else 1.0


def model_sampling_of(model) -> Any:
    """``model_sampling`` seen from a k-diffusion model (``KSamplerX0Inpaint`` -> guider -> BaseModel)."""
    guider = getattr(model, "inner_model", None)
    base = getattr(guider, "inner_model", None)
    ms = getattr(base, "model_sampling", None)
    if ms is None:
        patcher = getattr(guider, "model_patcher", None)
        if patcher is not None and hasattr(patcher, "get_model_object"):
            ms = patcher.get_model_object("model_sampling")
    if ms is None:
        raise ValueError("sampler: noise travel could not find the model's sampling type (model.inner_model."
                         "inner_model.model_sampling); run it through a core guider (CFGGuider, BasicGuider) or "
                         "KSampler")
    return ms


# ---------------------------------------------------------------------------------------------- sampler
def _frame_axis(x: torch.Tensor) -> int:
    return frame_axis_of(x, "latent")


def make_noise_fn(recipe: NoiseRecipe | None, seed: int, x: torch.Tensor, scale: float = 1.0):
    """``noise_fn(jump_index, shape)`` for ``sample_with_travel``: the recipe (default i.i.d.) drawn on CPU with a
    seed derived from ``(seed, jump_index)``, moved to ``x``'s device/dtype and multiplied by ``scale``."""
    if recipe is None:
        base = nt.iid_noise_fn(seed)
        axis = None
    else:
        base = None
        axis = _frame_axis(x)

    def noise_fn(jump_index: int, shape: tuple[int, ...]) -> torch.Tensor:
        if base is not None:
            noise = base(jump_index, shape)
        else:  # same (seed, jump) -> seed rule as iid_noise_fn, so recipe "iid" == the default
            noise = recipe.draw(shape, axis, nt._jump_seed(seed, jump_index))
        noise = noise.to(device=x.device, dtype=x.dtype)
        return noise * scale if scale != 1.0 else noise

    return noise_fn


class TravelFunction:
    """k-diffusion ``sampler_function`` running ``inner_function`` with noise travel (ZoLA Eq. 9).

    Plain attributes only, so it deep-copies and can be introspected/nested like any KSAMPLER function.
    """

    def __init__(self, inner_function, inner_options: dict, settings: TravelSettings):
        self.inner_function = inner_function
        self.inner_options = dict(inner_options or {})
        self.settings = settings

    def __call__(self, model, x, sigmas, extra_args=None, callback=None, disable=None, **kwargs):
        extra_args = {} if extra_args is None else extra_args
        options = {**self.inner_options, **kwargs}
        if int(sigmas.shape[-1]) < 2:  # no step to run (e.g. a 1-entry SplitSigmas): the inner sampler decides
            return self.inner_function(model, x, sigmas, extra_args=extra_args, callback=callback, disable=disable,
                                       **options)
        plan = self.settings.plan(int(sigmas.shape[-1]) - 1)
        kind, scale = travel_parameterization(model_sampling_of(model))
        recipe = self.settings.recipe
        if recipe is not None:
            recipe.validate(num_frames=int(x.shape[_frame_axis(x)]))
        noise_fn = make_noise_fn(recipe, self.settings.seed, x, scale)

        t_opts = extra_args.setdefault("model_options", {}).setdefault("transformer_options", {})
        had_state = RUN_STATE_KEY in t_opts
        saved = t_opts.get(RUN_STATE_KEY)
        base_state = dict(saved or {})
        base_state.setdefault("seed", int(extra_args.get("seed") or 0))
        base_pass = int(base_state.get("pass", 0) or 0)
        run_seed = extra_args.get("seed")
        inner = self.inner_function
        segment = [0]

        def run_segment(m, xs, sig, extra_args=None, callback=None, disable=None, **opts):
            k = segment[0]
            segment[0] += 1
            t_opts[RUN_STATE_KEY] = {**base_state, "pass": base_pass + k}
            args = extra_args
            if k > 0 and run_seed is not None and extra_args is not None:
                args = {**extra_args, "seed": cs.mix_seed(int(run_seed), k, _SEGMENT_SEED_STREAM)}
            return inner(m, xs, sig, extra_args=args, callback=callback, disable=disable, **opts)

        if len(plan) > 1:
            log.debug("LongAnim noise travel: %d segments, %d jumps, %s steps run (%s)", len(plan),
                      nt.num_jumps(plan), nt.count_model_calls(plan), kind)
        try:
            return nt.sample_with_travel(model, x, sigmas, extra_args, callback, disable, inner=run_segment,
                                         inner_options=options, plan=plan, noise_fn=noise_fn,
                                         parameterization=kind, check_interrupt=check_interrupt)
        finally:
            if had_state:
                t_opts[RUN_STATE_KEY] = saved
            else:
                t_opts.pop(RUN_STATE_KEY, None)


class _TotalCallback:
    """ComfyUI sampler callback ``(step, x0, x, total)`` with ``total`` replaced by the steps travel runs."""

    def __init__(self, callback, total: int):
        self.callback = callback
        self.total = total

    def __call__(self, step, x0, x, total_steps, *args, **kwargs):
        return self.callback(step, x0, x, self.total, *args, **kwargs)


def check_sampler(sampler, input_name: str = "sampler") -> None:
    """``ValueError`` naming ``input_name`` unless ``sampler`` is a k-diffusion SAMPLER that travel can wrap."""
    if sampler is None or not callable(getattr(sampler, "sample", None)):
        raise ValueError(f"{input_name}: expected a SAMPLER (from KSamplerSelect or another sampler node), got "
                         f"{type(sampler).__name__}")
    if not callable(getattr(sampler, "sampler_function", None)):
        raise ValueError(
            f"{input_name}: noise travel runs a k-diffusion sampler in segments and needs its sampler_function; "
            f"the connected sampler ({type(sampler).__name__}) has none (it comes from another pack and owns its "
            "own loop). Use a ComfyUI sampler node (KSamplerSelect, SamplerEulerAncestral, SamplerDPMPP_2M_SDE, "
            "...) instead")


class TravelKSampler(comfy.samplers.KSAMPLER):
    """A ``KSAMPLER`` that runs ``inner`` (another KSAMPLER) with noise travel."""

    def __init__(self, inner, settings: TravelSettings):
        check_sampler(inner)
        settings.validate()
        self.inner = inner
        self.settings = settings
        super().__init__(TravelFunction(inner.sampler_function, getattr(inner, "extra_options", None) or {},
                                        settings),
                         extra_options={}, inpaint_options=dict(getattr(inner, "inpaint_options", None) or {}))

    def sample(self, model_wrap, sigmas, extra_args, callback, noise, *args, **kwargs):
        if callback is not None and int(sigmas.shape[-1]) >= 2:
            total = int(math.ceil(nt.count_model_calls(self.settings.plan(int(sigmas.shape[-1]) - 1))))
            callback = _TotalCallback(callback, total)
        return super().sample(model_wrap, sigmas, extra_args, callback, noise, *args, **kwargs)


def travel_sampler(sampler, settings: TravelSettings, input_name: str = "sampler") -> TravelKSampler:
    """The SAMPLER for ``LongAnimNoiseTravel``: ``sampler`` run with noise travel."""
    check_sampler(sampler, input_name)
    return TravelKSampler(sampler, settings)


# ---------------------------------------------------------------------------------------------- model patch
class _TravelSamplerWrapper:
    """SAMPLER_SAMPLE wrapper: run this call's sampler (``executor.class_obj``) with noise travel."""

    def __init__(self, settings: TravelSettings):
        self.settings = settings

    def __call__(self, executor, guider, sigmas, extra_args, callback, noise, *args, **kwargs):
        sampler = executor.class_obj
        if isinstance(sampler, TravelKSampler):  # a LongAnimNoiseTravel sampler already travels: not twice
            log.info("LongAnim: the sampler already runs noise travel; the MODEL's noise travel is skipped")
            return executor(guider, sigmas, extra_args, callback, noise, *args, **kwargs)
        try:
            check_sampler(sampler, "model")
        except ValueError as e:
            raise ValueError(f"{e} (LongAnim: Noise Travel (model) on this MODEL)") from None
        travel = TravelKSampler(sampler, self.settings)
        wrappers = getattr(executor, "wrappers", None)
        idx = getattr(executor, "idx", None)
        if wrappers is not None and isinstance(idx, int):
            nxt = comfy.patcher_extension.WrapperExecutor.new_class_executor(travel.sample, travel, wrappers,
                                                                             idx + 1)
            return nxt.execute(guider, sigmas, extra_args, callback, noise, *args, **kwargs)
        log.warning("LongAnim: unknown wrapper executor; noise travel calls the sampler directly")  # pragma: no cover
        return travel.sample(guider, sigmas, extra_args, callback, noise, *args, **kwargs)  # pragma: no cover


def patch_model_travel(model, settings: TravelSettings):
    """Clone ``model`` so that its plain KSampler / KSamplerAdvanced sampling runs with noise travel."""
    settings.validate()
    m = model.clone()
    wp = comfy.patcher_extension.WrappersMP
    m.remove_wrappers_with_key(wp.SAMPLER_SAMPLE, WRAPPER_TRAVEL)
    m.add_wrapper_with_key(wp.SAMPLER_SAMPLE, WRAPPER_TRAVEL, _TravelSamplerWrapper(settings))
    return m


# ==============================================================================================================
# refine: ComfyUI glue for randomized-blend refinement (StreamingT2V sec. 4.3) and phased inference (CLIA sec. 3.4).
# ==============================================================================================================
# ComfyUI glue for randomized-blend refinement (StreamingT2V sec. 4.3) and phased inference (CLIA sec. 3.4).
#
# Part of the single ComfyUI adapter; merged into comfy_adapter.py by the lead.
#
# Refinement reuses the pack's one window loop: the model is cloned with ``comfy_adapter.patch_model_windows``
# (uniform chunks of ``chunk_length`` at stride ``chunk_length - overlap``, the last chunk shifted to end at the last
# frame) and the whole long latent is sampled once with ComfyUI's own ``comfy.sample.sample`` (KSampler with
# ``denoise`` = SDEdit strength). Phased inference drives ``algorithms.phased.phased_sample`` as the
# ``sampler_function`` of a ``comfy.samplers.KSAMPLER`` run by core's ``CFGGuider``.

log = logging.getLogger("LongAnim")

try:  # the canvas preview + progress bar KSampler uses (top-level ComfyUI module)
    import latent_preview as _latent_preview
except ImportError:  # pragma: no cover - outside a ComfyUI process
    _latent_preview = None

REFINE_MODES = ("randomized_blend", "shared_noise_only", "naive")
#: fusion of the overlapping chunks' predictions per mode (naive does not use windows)
MODE_FUSION = {"randomized_blend": "randomized_blend", "shared_noise_only": "flat"}
_SEED_MASK = 0xFFFFFFFFFFFFFFFF


# ---------------------------------------------------------------------------------------------- helpers
def progress_callback(model, total: int) -> Callable:
    """KSampler-style ``callback(step, x0, x, total_steps)``: canvas progress (+ latent preview) out of ``total``.

    ``total`` replaces the sampler's ``total_steps`` so that several sampler runs (naive chunks) or extra model
    calls (phased clips) fill one bar.
    """
    if _latent_preview is not None:
        try:
            inner = _latent_preview.prepare_callback(model, total)
        except Exception:  # pragma: no cover - previewer unavailable (odd latent formats)
            inner = None
        if inner is not None:
            return lambda step, x0, x, _total: inner(min(step, total - 1), x0, x, total)
    bar = Progress(total)
    return lambda step, x0, x, _total: bar(min(step + 1, total), total)


def _pbar_disabled() -> bool:
    return not getattr(comfy.utils, "PROGRESS_BAR_ENABLED", True)


def iid_noise(shape: tuple[int, ...], seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """ComfyUI's KSampler noise (``comfy.sample.prepare_noise``), bit-identical, from a private CPU generator."""
    gen = torch.Generator(device="cpu").manual_seed(int(seed) & _SEED_MASK)
    return torch.randn(shape, dtype=dtype, generator=gen, device="cpu")


def draw_noise(samples: torch.Tensor, seed: int, recipe: NoiseRecipe | None) -> torch.Tensor:
    """SDEdit / initial noise for ``samples``: i.i.d. like KSampler, or a LongAnim recipe over the frame axis."""
    dtype = samples.dtype if samples.dtype.is_floating_point else torch.float32
    if recipe is None:
        return iid_noise(tuple(samples.shape), seed, dtype)
    axis = frame_axis_of(samples)
    recipe.validate(num_frames=samples.shape[axis])
    return recipe.draw(tuple(samples.shape), axis, int(seed) & _SEED_MASK).to(dtype)


def _slice_frames(t: torch.Tensor, axis: int, frames: list[int]) -> torch.Tensor:
    return t.index_select(axis, torch.tensor(frames, dtype=torch.long, device=t.device))


# ---------------------------------------------------------------------------------------------- refinement
def validate_refine(*, denoise: float, chunk_length: int, overlap: int, steps: int, mode: str) -> None:
    """Cheap input checks before anything is loaded; ``ValueError`` names the input, its range and the fix."""
    if mode not in REFINE_MODES:
        raise ValueError(f"mode must be one of {list(REFINE_MODES)}, got {mode!r}")
    if not isinstance(denoise, (int, float)) or not math.isfinite(denoise) or not 0.0 < denoise <= 1.0:
        raise ValueError(f"denoise must be in (0, 1], got {denoise!r}; it is the SDEdit strength (StreamingT2V "
                         "re-noises to T' = 600 of 1000 steps, about 0.6); 1 re-generates from pure noise")
    if chunk_length < 1:
        raise ValueError(f"chunk_length must be >= 1, got {chunk_length}")
    if overlap < 0 or overlap >= chunk_length:
        raise ValueError(f"overlap must be in [0, chunk_length - 1 = {chunk_length - 1}], got {overlap}; chunks "
                         "must advance by at least one frame: lower overlap or raise chunk_length (paper: 24 / 8)")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")


def refine_chunks(num_frames: int, chunk_length: int, overlap: int) -> list[list[int]]:
    """The refinement chunks: ``context_schedule.uniform_windows`` at stride ``chunk_length - overlap``.

    The last chunk is shifted left to end at the last frame (so it may overlap its neighbour by more than
    ``overlap``); ``chunk_length >= num_frames`` gives one chunk holding the whole video.
    """
    return cs.uniform_windows(num_frames, chunk_length, chunk_length - overlap)


def refine_window_options(mode: str, chunk_length: int, overlap: int, seed: int,
                          blend_variant: str = "paper", max_batch: int = 1) -> WindowOptions:
    """Window options of a windowed refinement mode (``randomized_blend`` or ``shared_noise_only``)."""
    return WindowOptions(schedule="uniform", length=int(chunk_length), stride=int(chunk_length - overlap),
                            overlap=int(overlap), max_skip=1, fusion=MODE_FUSION[mode],
                            blend_variant=blend_variant, seed=int(seed), max_batch=int(max_batch))


def naive_keep(chunks: list[list[int]]) -> list[list[int]]:
    """Frames each naive chunk contributes: the ones no earlier chunk holds (later chunks' overlaps dropped)."""
    seen: set[int] = set()
    out = []
    for c in chunks:
        out.append([f for f in c if f not in seen])
        seen.update(c)
    return out


def chunk_seed(seed: int, index: int) -> int:
    """Seed of naive chunk ``index``: ``seed + index`` (mod 2^64), so chunk 0 equals a KSampler run with ``seed``."""
    return (int(seed) + int(index)) & _SEED_MASK


def _sdedit(model, noise, samples, *, steps, cfg, sampler_name, scheduler, positive, negative, denoise, seed,
            noise_mask, callback) -> torch.Tensor:
    """One KSampler run (``comfy.sample.sample``) from ``samples`` re-noised to the start sigma of ``denoise``."""
    return comfy.sample.sample(model, noise, steps, cfg, sampler_name, scheduler, positive, negative, samples,
                               denoise=denoise, noise_mask=noise_mask, callback=callback,
                               disable_pbar=_pbar_disabled(), seed=seed)


def refine_video(model, positive, negative, latent: dict, *, denoise: float, steps: int, cfg: float,
                 sampler_name: str, scheduler: str, chunk_length: int, overlap: int, seed: int, mode: str,
                 recipe: NoiseRecipe | None = None, blend_variant: str = "paper", max_batch: int = 1) -> dict:
    """StreamingT2V streaming refinement (sec. 4.3, Eqs. 7-8) of a long latent; returns a new LATENT dict.

    ``randomized_blend`` / ``shared_noise_only``: ONE sampler run over the whole video on a windowed clone of
    ``model`` (chunks = :func:`refine_chunks`). The SDEdit noise is one tensor for the whole video, so chunks
    slice the same noise on their overlaps (Eq. 7), and stochastic samplers draw their per-step noise for the
    whole latent too. After every model evaluation the chunks' denoised predictions are fused: one random cut
    per overlap per step (Eq. 8) or a plain average. ``naive``: every chunk is refined by its own KSampler run
    with its own noise (``seed + i``) and the chunks are concatenated, each frame taken from the first chunk
    holding it (later chunks' overlaps dropped).
    """
    validate_refine(denoise=denoise, chunk_length=chunk_length, overlap=overlap, steps=steps, mode=mode)
    samples = comfy.sample.fix_empty_latent_channels(model, latent["samples"])
    axis = frame_axis_of(samples, "latent")
    num_frames = samples.shape[axis]
    noise_mask = latent.get("noise_mask")
    common = dict(steps=steps, cfg=cfg, sampler_name=sampler_name, scheduler=scheduler, positive=positive,
                  negative=negative, denoise=denoise)
    if mode != "naive":
        windowed = patch_model_windows(model, refine_window_options(mode, chunk_length, overlap, seed,
                                                                      blend_variant, max_batch))
        noise = draw_noise(samples, seed, recipe)
        out = _sdedit(windowed, noise, samples, seed=seed, noise_mask=noise_mask,
                      callback=progress_callback(model, steps), **common)
    else:
        chunks = refine_chunks(num_frames, chunk_length, overlap)
        keep = naive_keep(chunks)
        out = torch.empty(samples.shape, dtype=torch.float32)
        cb = progress_callback(model, steps * len(chunks))
        for i, (chunk, own) in enumerate(zip(chunks, keep, strict=True)):
            check_interrupt()
            if not own:
                continue
            part = _slice_frames(samples, axis, chunk)
            mask = noise_mask
            if isinstance(mask, torch.Tensor) and mask.ndim == samples.ndim and mask.shape[axis] == num_frames:
                mask = _slice_frames(mask, axis, chunk)
            refined = _sdedit(model, draw_noise(part, chunk_seed(seed, i), recipe), part, seed=chunk_seed(seed, i),
                              noise_mask=mask, callback=lambda s, x0, x, t, o=i * steps: cb(s + o, x0, x, t),
                              **common)
            pos = [chunk.index(f) for f in own]
            out.index_copy_(axis, torch.tensor(own, dtype=torch.long),
                            _slice_frames(refined.detach().cpu().float(), axis, pos))
        out = out.to(device=comfy.model_management.intermediate_device(),
                     dtype=samples.dtype if samples.dtype.is_floating_point else torch.float32)
    result = {k: v for k, v in latent.items() if k not in ("samples", WINDOWS_KEY)}
    result["samples"] = out
    result[WINDOWS_KEY] = refine_chunks(num_frames, chunk_length, overlap)
    return result


def upscale_encode(images: torch.Tensor, vae, scale: float) -> dict:
    """Bilinear upscale of an IMAGE batch ``[N, H, W, C]`` by ``scale`` (sizes rounded to multiples of 8), then
    ``vae.encode`` (StreamingT2V sec. 4.3 upscales bilinearly before encoding for the refiner)."""
    if not isinstance(scale, (int, float)) or not math.isfinite(scale) or scale <= 0:
        raise ValueError(f"scale must be > 0, got {scale!r}; 1 keeps the size, 2 doubles width and height")
    if images.ndim != 4:
        raise ValueError(f"images: expected an IMAGE batch [frames, H, W, C], got shape {list(images.shape)}")
    h, w = images.shape[1], images.shape[2]
    th, tw = max(8, int(round(h * scale / 8)) * 8), max(8, int(round(w * scale / 8)) * 8)
    pixels = images[..., :3]
    if (th, tw) != (h, w):
        pixels = comfy.utils.common_upscale(pixels.movedim(-1, 1), tw, th, "bilinear", "disabled").movedim(1, -1)
    return {"samples": vae.encode(pixels)}


# ---------------------------------------------------------------------------------------------- phased
def phased_parameterization(model) -> str:
    """``"flow"`` for rectified-flow (CONST) models, ``"eps"`` for sigma-space models (EPS, V_PREDICTION, EDM)."""
    ms = model.get_model_object("model_sampling")
    refused = tuple(t for t in (getattr(comfy.model_sampling, n, None) for n in
                                ("IMG_TO_IMG", "IMG_TO_IMG_FLOW", "IMG_TO_IMG_VELOCITY", "V_PREDICTION_DDPM"))
                    if isinstance(t, type))
    if refused and isinstance(ms, refused):
        raise ValueError(f"model: phased inference does not support {type(ms).__name__} models; use a "
                         "text-to-video or image-to-video model with eps, v or flow prediction")
    return "flow" if isinstance(ms, comfy.model_sampling.CONST) else "eps"


class PhasedSamplerFunction:
    """``sampler_function`` for ``KSAMPLER``: runs :func:`phased.phased_sample` and keeps its stats."""

    def __init__(self, num_clips: int, gamma: float, omega: float, seed: int, parameterization: str,
                 frame_axis: int):
        self.kw = dict(num_clips=int(num_clips), gamma=float(gamma), omega=float(omega), seed=int(seed),
                       parameterization=parameterization, frame_axis=int(frame_axis))
        self.stats: dict[str, int] = {}

    def __call__(self, model, x, sigmas, extra_args=None, callback=None, disable=None, **_):
        out, self.stats = ph.phased_sample(model, x, sigmas, extra_args, callback, disable,
                                           check_interrupt=check_interrupt, **self.kw)
        return out


class PhasedKSampler(comfy.samplers.KSAMPLER):
    """A KSAMPLER that samples ``K`` clips although the guider was given one.

    The guider processes the conditioning for ONE clip (image-to-video concat latents, per-frame conds and the
    memory estimate are then right for every clip, since each model call evaluates one clip); ``sample``
    concatenates clip 1's noise (the guider's) with the pre-drawn noise of clips 2..K on the frame axis and runs
    :class:`PhasedSamplerFunction` on all of them.
    """

    def __init__(self, function: PhasedSamplerFunction, extra_noise: list[torch.Tensor], frame_axis: int):
        super().__init__(function)
        self.function = function
        self.extra_noise = extra_noise
        self.frame_axis = frame_axis

    def sample(self, model_wrap, sigmas, extra_args, callback, noise, latent_image=None, denoise_mask=None,
               disable_pbar=False):
        axis = self.frame_axis
        k = 1 + len(self.extra_noise)
        noise = torch.cat([noise] + [n.to(device=noise.device, dtype=noise.dtype) for n in self.extra_noise],
                          dim=axis)
        if latent_image is not None:
            latent_image = torch.cat([latent_image] * k, dim=axis)
        return super().sample(model_wrap, sigmas, extra_args, callback, noise, latent_image, None, disable_pbar)


def phased_animation(model, positive, negative, latent: dict, *, num_clips: int, steps: int, cfg: float,
                     scheduler: str, gamma: float, omega: float, seed: int) -> tuple[dict, dict[str, int]]:
    """Phased inference (CLIA Eq. 9) with shared noise reschedule (Eqs. 10-12) through core's CFGGuider.

    ``latent`` holds ONE clip (its shape is the clip shape). Clip ``k`` (0-based) starts from KSampler noise of
    seed ``seed + k``, so clip 1 is exactly a plain Euler KSampler run with ``seed`` (for any gamma) and with
    ``gamma = 0`` clip ``k`` is a plain Euler run with ``seed + k``. Returns the K clips concatenated on the frame
    axis and ``phased_sample``'s stats (model calls, full-sampling calls, saved, split step).
    """
    ph.validate_phased(int(num_clips), float(gamma), float(omega))
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    param = phased_parameterization(model)
    samples = comfy.sample.fix_empty_latent_channels(model, latent["samples"])
    axis = frame_axis_of(samples, "latent")
    dtype = samples.dtype if samples.dtype.is_floating_point else torch.float32
    noises = [iid_noise(tuple(samples.shape), chunk_seed(seed, k), dtype) for k in range(num_clips)]
    function = PhasedSamplerFunction(num_clips, gamma, omega, seed, param, axis)
    sampler = PhasedKSampler(function, noises[1:], axis)
    guider = comfy.samplers.CFGGuider(model)  # given ONE clip: conds and memory estimate are per clip
    guider.set_conds(positive, negative)
    guider.set_cfg(cfg)
    sigmas = comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), scheduler, steps).cpu()
    split = ph.phased_split(int(steps), float(gamma))
    expected = num_clips * steps if split == 0 else steps + (num_clips - 1) * (steps - split)
    cb = progress_callback(model, max(1, expected))
    out = guider.sample(noises[0], samples, sampler, sigmas, callback=cb, disable_pbar=_pbar_disabled(),
                        seed=int(seed))
    out = out.to(comfy.model_management.intermediate_device())
    return {"samples": out}, dict(function.stats)


# ==============================================================================================================
# creative: Per-window LoRA weights (ZoLA 4.5) and windowed DDIM inversion (Gen-L 3.1): the ComfyUI side.
# ==============================================================================================================
# Per-window LoRA weights (ZoLA 4.5) and windowed DDIM inversion (Gen-L 3.1): the ComfyUI side.
#
# Part of the single ComfyUI adapter; merged into comfy_adapter.py by the lead.
#
# Per-window LoRA mechanism (measured, see ``tests/tools/tiny_lora.py --bench`` and the report)
# ------------------------------------------------------------------------------------------------
# ComfyUI applies a LoRA by adding it to ``ModelPatcher.patches`` and baking ``W + s*dW`` into the weights when the
# model is loaded (``patch_weight_to_device`` -> ``comfy.lora.calculate_weight``); hooks (``comfy/hooks.py``) re-bake
# weights when a conditioning's hook group changes. Neither can change the strength per context window. Two exact
# ways to do it were implemented and timed:
#
# - ``"forward"`` (default): while a window is evaluated, a torch forward hook on each LoRA-targeted Linear/Conv
#   adds ``w * scale * up(down(x))`` (low-rank, for plain LoRA) or ``w * (x * dW)`` (dense dW at strength 1, for
#   other adapters that are linear in the strength: LoCon mid, LoHa, LoKr, full diffs) to the layer's output.
#   ``x W^T + w x dW^T == x (W + w dW)^T``: equal to core's baked LoRA within float rounding. A window switch only
#   registers/removes hooks (no weight traffic), weights stay untouched, works with lowvram/offloaded weights.
# - ``"patch"``: before a window, ``W <- calculate_weight(W, patches at w)`` in place (core's own maths, so exact
#   for every adapter type incl. DoRA/OFT/BOFT/GLoRA whose effect is not linear in the strength), restored after.
#   Used automatically when an adapter is not linear in the strength.
# Adapter-free windows (all weights 0) install nothing. Measured (tiny SD UNet, CPU, 1 thread, 4 frames 4x4, best of
# 5): plain window 168 ms; forward: switch 2.0 ms, window 175 ms; patch: switch 34 ms, window 231 ms.

log = logging.getLogger("LongAnim")

SPEC_KEY = "LongAnim.window_lora"  # transformer_options: tuple of WindowAdapter (chained nodes append)
ACTIVE_KEY = "LongAnim.window_lora_active"  # transformer_options flag while the window callback has installed
WRAPPER_LORA = "LongAnim.window_lora"
MODES = ("forward", "patch")


# ---------------------------------------------------------------------------------------------- loading
@dataclass(eq=False)
class _KeyPatch:
    module: str  # module path inside the BaseModel, e.g. "diffusion_model.input_blocks.1.1.proj_in"
    param: str  # "weight" or "bias"
    key: str  # the state-dict key, for core's calculate_weight
    patch: object  # what core's load_lora produced (an adapter object or a ("diff", ...) tuple)
    kind: str = "nonlinear"  # "lowrank" | "dense" | "nonlinear"
    tensors: tuple = ()  # lowrank: (down, up, scale); dense: (delta,)


@dataclass(eq=False)
class WindowAdapter:
    """One LoRA of a Window LoRA node: its patches, its scale alpha and its frame tags (immutable after build)."""

    name: str
    scale: float
    intervals: tuple
    patches: list = field(default_factory=list)
    mode: str = "forward"
    _cache: dict = field(default_factory=dict)

    def __deepcopy__(self, memo):  # shared, immutable: never duplicate LoRA tensors on ModelPatcher.clone()
        return self

    def cast(self, device, dtype) -> dict:
        """The forward-mode tensors on ``device``/``dtype`` (one cached copy, replaced when either changes)."""
        key = (str(device), dtype)
        if key not in self._cache:
            self._cache.clear()
            self._cache[key] = {id(p): tuple(t.to(device=device, dtype=dtype) if isinstance(t, torch.Tensor) else t
                                             for t in p.tensors) for p in self.patches if p.kind != "nonlinear"}
        return self._cache[key]


_FILE_CACHE: dict = {}


def _load_file(path: str) -> dict:
    stamp = (path, os.path.getmtime(path))
    if stamp not in _FILE_CACHE:
        if len(_FILE_CACHE) >= 4:
            _FILE_CACHE.pop(next(iter(_FILE_CACHE)))
        _FILE_CACHE[stamp] = comfy.utils.load_torch_file(path, safe_load=True)
    return _FILE_CACHE[stamp]


def _classify(kp: _KeyPatch, module: torch.nn.Module, weight: torch.Tensor) -> None:
    """Decide how the forward hook applies one patch (low-rank, dense dW, or only by weight patching)."""
    is_linear = isinstance(module, torch.nn.Linear)
    is_conv = isinstance(module, (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d))
    if not (is_linear or is_conv) or (is_conv and getattr(module, "padding_mode", "zeros") != "zeros"):
        return
    p = kp.patch
    name = getattr(p, "name", None)
    if kp.param == "bias":
        if isinstance(p, tuple) and p[0] == "diff":
            kp.kind, kp.tensors = "dense", (p[1][0].float(),)
        return
    if isinstance(p, tuple):
        if p[0] == "diff" and p[1][0].shape == weight.shape:
            kp.kind, kp.tensors = "dense", (p[1][0].float(),)
        return
    v = getattr(p, "weights", None)
    if name == "lora" and v is not None and v[4] is None and v[5] is None:
        up, down, alpha, mid = v[0], v[1], v[2], v[3]
        scale = (float(alpha) / down.shape[0]) if alpha is not None else 1.0
        if mid is None and up.shape[0] == weight.shape[0] and math.prod(up.shape[2:]) == 1 and \
                (is_linear or getattr(module, "groups", 1) == 1) and down.ndim == weight.ndim:
            kp.kind, kp.tensors = "lowrank", (down.float(), up.float(), scale)
            return
    dora = None if v is None or not v else (v[4] if name == "lora" else v[-1])
    reshape = v[5] if name == "lora" and v is not None else None
    if name in ("lora", "loha", "lokr") and dora is None and reshape is None:
        # linear in the strength without DoRA: dW = calculate_weight(0, strength 1)
        zero = torch.zeros(weight.shape, dtype=torch.float32)
        delta = comfy.lora.calculate_weight([(1.0, p, 1.0, None, None)], zero, kp.key)
        kp.kind, kp.tensors = "dense", (delta,)


def load_window_lora(model, lora_name: str, strength: float, frame_intervals: str,
                     mode: str | None = None) -> WindowAdapter:
    """Load ``loras/<lora_name>`` for ``model`` (a ModelPatcher) as a per-window adapter.

    Raises ``ValueError`` naming ``lora_name`` when the file is missing or none of its keys match the model.
    """
    intervals = tuple(aw.parse_intervals(frame_intervals, "frame_intervals"))
    aw.validate_scale(strength)
    if mode is not None and mode not in MODES:
        raise ValueError(f"mode must be one of {list(MODES)}, got {mode!r}")
    path = folder_paths.get_full_path("loras", lora_name)
    if path is None:
        raise ValueError(f"lora_name: {lora_name!r} is not in the loras folder; put the file in models/loras and "
                         "refresh the page")
    lora = _load_file(path)
    try:
        import comfy.lora_convert

        lora = comfy.lora_convert.convert_lora(lora)
    except (ImportError, AttributeError):  # pragma: no cover - older hosts
        pass
    base = model.model
    key_map = comfy.lora.model_lora_keys_unet(base, {})
    try:
        loaded = comfy.lora.load_lora(lora, key_map, log_missing=False)
    except TypeError:  # pragma: no cover - signature drift
        loaded = comfy.lora.load_lora(lora, key_map)
    sd = base.state_dict()
    adapter = WindowAdapter(name=lora_name, scale=float(strength), intervals=intervals)
    for key, patch in loaded.items():
        if not isinstance(key, str) or key not in sd:
            continue  # offset/function keys (fused qkv) are left to weight patching below
        module_path, _, param = key.rpartition(".")
        try:
            module = base.get_submodule(module_path)
        except AttributeError:
            continue
        kp = _KeyPatch(module_path, param, key, patch)
        _classify(kp, module, sd[key])
        adapter.patches.append(kp)
    if not adapter.patches:
        sample = ", ".join(list(lora)[:3])
        raise ValueError(f"lora_name: none of the {len(lora)} tensors of {lora_name!r} match this model (first keys: "
                         f"{sample}); it is a LoRA for another model family, pick one made for this model")
    linear = all(p.kind != "nonlinear" for p in adapter.patches)
    adapter.mode = mode or ("forward" if linear else "patch")
    if adapter.mode == "forward" and not linear:
        raise ValueError(f"lora_name: {lora_name!r} has adapter types whose effect is not linear in the strength "
                         "(DoRA/OFT/...); they can only be applied by weight patching (mode 'patch')")
    log.info("LongAnim: window LoRA %s: %d patched tensors, mode %s", lora_name, len(adapter.patches), adapter.mode)
    return adapter


# ---------------------------------------------------------------------------------------------- applying
def _conv(ndim: int):
    return {3: F.conv1d, 4: F.conv2d, 5: F.conv3d}[ndim]


def _make_hook(items: list):
    """One forward hook per module: output += sum_i w_i * delta_i(x). ``items``: (kind, param, tensors, w)."""

    def hook(module, args, output):
        x = args[0]
        extra = None
        for kind, param, tensors, w in items:
            if kind == "lowrank":
                down, up, scale = tensors
                if down.ndim == 2:
                    d = F.linear(F.linear(x, down.to(x.device, x.dtype)), up.to(x.device, x.dtype))
                else:
                    conv = _conv(down.ndim)
                    h = conv(x, down.to(x.device, x.dtype), None, module.stride, module.padding, module.dilation, 1)
                    d = conv(h, up.to(x.device, x.dtype))
                d = d * (scale * w)
            elif param == "bias":
                (db,) = tensors
                shape = [1] * output.ndim
                shape[-1 if isinstance(module, torch.nn.Linear) else 1] = -1
                d = (db.to(output.device, output.dtype) * w).view(shape)
            else:
                (dw,) = tensors
                if dw.ndim == 2:
                    d = F.linear(x, dw.to(x.device, x.dtype)) * w
                else:
                    conv = _conv(dw.ndim)
                    d = conv(x, dw.to(x.device, x.dtype), None, module.stride, module.padding, module.dilation,
                             module.groups) * w
            extra = d if extra is None else extra + d
        return output if extra is None else output + extra.to(output.dtype)

    return hook


def install(base_model, weighted: list, mode: str | None = None):
    """Apply ``[(WindowAdapter, weight)]`` to ``base_model`` (a BaseModel) now; return ``undo()``.

    ``mode``: force "forward" or "patch" (default: each adapter's own mode). Zero weights install nothing.
    """
    weighted = [(a, float(w)) for a, w in weighted if float(w) != 0.0]
    handles, backups = [], []
    per_module: dict[str, list] = {}
    patch_keys: dict[str, list] = {}
    for adapter, w in weighted:
        m = mode or adapter.mode
        if m == "forward":
            ref = comfy.utils.get_attr(base_model, adapter.patches[0].key)
            cast = adapter.cast(ref.device, torch.float32)
            for kp in adapter.patches:
                per_module.setdefault(kp.module, []).append((kp.kind, kp.param, cast[id(kp)], w))
        else:
            for kp in adapter.patches:
                patch_keys.setdefault(kp.key, []).append((w, kp.patch, 1.0, None, None))
    try:
        for module_path, items in per_module.items():
            handles.append(base_model.get_submodule(module_path).register_forward_hook(_make_hook(items)))
        with torch.no_grad():
            for key, patches in patch_keys.items():
                param = comfy.utils.get_attr(base_model, key)
                backups.append((param, param.detach().clone()))
                new = comfy.lora.calculate_weight(patches, param.detach().to(torch.float32, copy=True), key)
                param.data.copy_(new.to(param.dtype))
    except Exception:
        _undo(handles, backups)
        raise

    def undo():
        _undo(handles, backups)

    return undo


def _undo(handles, backups):
    for h in handles:
        h.remove()
    handles.clear()
    with torch.no_grad():
        for param, old in reversed(backups):
            param.data.copy_(old)
    backups.clear()


def _weights(spec: tuple, frames: list[int], num_frames: int | None) -> list:
    adapters = [(a.scale, a.intervals) for a in spec]
    return list(zip(spec, aw.window_adapter_weights(frames, adapters, num_frames)))


class _WindowCallback:
    """LongAnim window-loop callback: install the ZoLA Eq. 4.5 weights of the window being evaluated."""

    def __init__(self, spec: tuple):
        self.spec = spec

    def __deepcopy__(self, memo):
        return self

    def __call__(self, windows, num_frames, model, model_options):
        frames = [f for w in windows for f in w]
        undo = install(model, _weights(self.spec, frames, num_frames))
        t_opts = model_options.setdefault("transformer_options", {})
        t_opts[ACTIVE_KEY] = True

        def done():
            t_opts.pop(ACTIVE_KEY, None)
            undo()

        return done


class _ApplyModelWrapper:
    """APPLY_MODEL wrapper for model calls the LongAnim window loop did not announce.

    - core Context Windows (or another handler setting ``transformer_options["context_window"]``): that window;
    - no windows at all (latent shorter than a window, or no window node): one window = every frame, so the
      constant weight is alpha x (fraction of the video's frames tagged).
    """

    def __init__(self, spec: tuple):
        self.spec = spec

    def __deepcopy__(self, memo):
        return self

    def __call__(self, executor, x, t, c_concat=None, c_crossattn=None, control=None, transformer_options=None,
                 **kwargs):
        t_opts = transformer_options if transformer_options is not None else {}
        if t_opts.get(ACTIVE_KEY):
            return executor(x, t, c_concat, c_crossattn, control, transformer_options, **kwargs)
        window = t_opts.get("context_window")
        if window is not None and getattr(window, "index_list", None):
            frames = list(window.index_list)
            total = getattr(window, "total_frames", None)
        else:
            if x.ndim == 5:
                num = x.shape[2]
            else:
                num = max(1, x.shape[0] // max(1, len(t_opts.get("cond_or_uncond", [0]))))
            frames, total = list(range(num)), num
        undo = install(executor.class_obj, _weights(self.spec, frames, total))
        try:
            return executor(x, t, c_concat, c_crossattn, control, transformer_options, **kwargs)
        finally:
            undo()


def patch_model_window_lora(model, lora_name: str, strength: float, frame_intervals: str,
                            mode: str | None = None):
    """Clone ``model`` with one more per-window LoRA (chained nodes add adapters)."""
    adapter = load_window_lora(model, lora_name, strength, frame_intervals, mode)
    m = model.clone()
    t_opts = m.model_options.setdefault("transformer_options", {})
    spec = tuple(t_opts.get(SPEC_KEY, ())) + (adapter,)
    t_opts[SPEC_KEY] = spec
    callbacks = [cb for cb in t_opts.get(WINDOW_CALLBACKS, []) if not isinstance(cb, _WindowCallback)]
    t_opts[WINDOW_CALLBACKS] = callbacks + [_WindowCallback(spec)]
    WP = comfy.patcher_extension.WrappersMP
    m.remove_wrappers_with_key(WP.APPLY_MODEL, WRAPPER_LORA)
    m.add_wrapper_with_key(WP.APPLY_MODEL, WRAPPER_LORA, _ApplyModelWrapper(spec))
    return m


# ---------------------------------------------------------------------------------------------- inversion
class _InvertSampler(comfy.samplers.Sampler):
    """A ComfyUI SAMPLER that runs Euler/DDIM inversion instead of sampling (used through CFGGuider.sample).

    Going through the guider means the MODEL's context handler (LongAnim or core windows), wrappers, ControlNets
    and the sampler seed all apply exactly as in sampling. ``sigmas`` are the sampler's DESCENDING schedule so
    the window loop finds the same step index (and draws the same windows) as the sampling that follows.
    """

    def __init__(self, fixed_point_iters: int, progress=None):
        self.fixed_point_iters = fixed_point_iters
        self.progress = progress
        self.raw = None  # x at sigma_max in model space
        self.latent_scale = None

    def sample(self, model_wrap, sigmas, extra_args, callback, noise, latent_image=None, denoise_mask=None,
               disable_pbar=False):
        x0 = latent_image if latent_image is not None else torch.zeros_like(noise)
        ms = model_wrap.inner_model.model_sampling
        ones = x0.new_ones([x0.shape[0]])

        def denoise(x, sigma):
            return model_wrap(x, ones * sigma, **extra_args)

        def on_step(i, total, x):
            if self.progress is not None:
                self.progress(i, total)
            if callback is not None:
                k = total - i
                callback({"x": x, "i": k, "sigma": sigmas[k], "sigma_hat": sigmas[k], "denoised": x})

        asc = inv.inversion_sigmas(sigmas.float())
        x = inv.euler_invert(denoise, x0.float(), asc.to(x0.device), self.fixed_point_iters,
                             callback=on_step, check_interrupt=check_interrupt)
        self.raw = x
        # KSamplerAdvanced(add_noise=disable) starts from noise_scaling(s_max, 0, latent) = a * latent
        top = asc[-1:].to(x.device)
        a = float(ms.noise_scaling(top, torch.zeros(1, 1, device=x.device), torch.ones(1, 1, device=x.device))
                  .flatten()[0])
        self.latent_scale = a
        return x / a if abs(a) > 1e-6 else x


class InvertedNoise:
    """NOISE for SamplerCustomAdvanced that makes the sampler start exactly at the inverted x(sigma_max).

    ``generate_noise`` returns eps with ``noise_scaling(sigma_max, eps, latent_in) == x`` for whatever latent the
    sampler gets (the source video or an empty one); needed for flow models whose schedule starts at sigma = 1,
    where ``add_noise = disable`` would start from ``(1 - 1) * latent = 0``.
    """

    def __init__(self, raw: torch.Tensor, sigma_max: float, max_denoise: bool, model_sampling, latent_format,
                 seed: int = 0):
        self.raw = raw.detach().float().cpu()
        self.sigma_max = float(sigma_max)
        self.max_denoise = bool(max_denoise)
        self.model_sampling = model_sampling
        self.latent_format = latent_format
        self.seed = int(seed)

    def __deepcopy__(self, memo):
        return self

    def generate_noise(self, input_latent: dict) -> torch.Tensor:
        latent = input_latent["samples"].float()
        if tuple(latent.shape) != tuple(self.raw.shape):
            raise ValueError(f"latent_image: the inverted noise has shape {list(self.raw.shape)} but the sampler's "
                             f"latent has {list(latent.shape)}; sample the same latent that was inverted")
        lat_in = self.latent_format.process_in(latent) if torch.count_nonzero(latent) > 0 else latent
        sig = torch.tensor([self.sigma_max])
        base = self.model_sampling.noise_scaling(sig, torch.zeros_like(lat_in), lat_in.clone(), self.max_denoise)
        gain = self.model_sampling.noise_scaling(sig, torch.ones_like(lat_in), torch.zeros_like(lat_in),
                                                 self.max_denoise)
        return (self.raw - base) / gain


def invert_latent(model, positive, negative, latent: dict, steps: int, scheduler: str, cfg: float = 1.0,
                  seed: int = 0, fixed_point_iters: int = 0):
    """Invert ``latent`` with the MODEL (and its windows) through core's CFGGuider. Returns (LATENT, NOISE, sigmas).

    The LATENT is in latent space, scaled so that KSamplerAdvanced(add_noise=disable) over the same steps and
    scheduler starts from the inverted x(sigma_max); the NOISE does the same for SamplerCustomAdvanced.
    """
    inv.validate_steps(steps, fixed_point_iters)
    if scheduler not in comfy.samplers.SCHEDULER_NAMES:
        raise ValueError(f"scheduler must be one of {comfy.samplers.SCHEDULER_NAMES}, got {scheduler!r}")
    samples = latent["samples"]
    frame_axis_of(samples, "latent")
    ms = model.get_model_object("model_sampling")
    sigmas = comfy.samplers.calculate_sigmas(ms, scheduler, steps).cpu()
    guider = comfy.samplers.CFGGuider(model)
    guider.set_conds(positive, negative if negative is not None else positive)
    guider.set_cfg(cfg)
    progress = Progress(steps)
    sampler = _InvertSampler(fixed_point_iters, progress)
    latent_image = comfy.sample.fix_empty_latent_channels(model, samples)
    noise = torch.zeros_like(latent_image, dtype=torch.float32)
    out = guider.sample(noise, latent_image, sampler, sigmas, seed=seed)
    out_latent = dict(latent)
    out_latent["samples"] = out.cpu()
    out_latent.pop("noise_mask", None)
    max_sigma = float(ms.sigma_max)
    top = float(sigmas[0])
    max_denoise = math.isclose(max_sigma, top, rel_tol=1e-05) or top > max_sigma
    if sampler.latent_scale is not None and abs(sampler.latent_scale) <= 1e-6:
        log.warning("LongAnim Invert: this model's schedule starts at sigma = %.3f where add_noise = disable "
                    "ignores the latent; use the noise output with SamplerCustomAdvanced", top)
    noise_out = InvertedNoise(sampler.raw, top, max_denoise, ms, model.get_model_object("latent_format"), seed)
    return out_latent, noise_out, sigmas


# ==============================================================================================================
# routes: HTTP route for the canvas schedule preview (issue 8).
# ==============================================================================================================
# HTTP route for the canvas schedule preview (issue 8).
#
# Part of the single ComfyUI adapter; merged into comfy_adapter.py by the lead.
#
# ``GET /longanim/schedule_preview?node=<NodeId>&<input>=<value>...&frames=N&steps=S`` returns a PNG of the windows
# each sampling step uses for the widget values of a context-window node, drawn by
# ``window_nodes.schedule_picture`` (the code the sampler and the Preview Schedule node use: one source of truth,
# no JavaScript port). Bad values answer ``400`` with the node's own ``ValueError`` text, which the canvas shows.
# The frontend extension is ``js/longanim.schedule_preview.js``.

log = logging.getLogger("LongAnim")

ROUTE = "/longanim/schedule_preview"
MAX_PREVIEW_FRAMES = 1024  # keeps one request in the tens of milliseconds
MAX_PREVIEW_STEPS = 16
PREVIEW_NODES = ("LongAnimZoLAWindows", "LongAnimWanZoLAWindows", "LongAnimGenLWindows", "LongAnimContextWindows",
                 "LongAnimPreviewSchedule")


def _int(params, name: str, default: int) -> int:
    raw = params.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(float(raw))
    except ValueError as e:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from e


def _bool(params, name: str, default: bool = False) -> bool:
    raw = params.get(name)
    if raw in (None, ""):
        return default
    return str(raw).lower() in ("1", "true", "yes", "on")


def _wan_latent(n: int) -> int:
    """Video frames -> Wan latent frames, as ``LongAnimWanZoLAWindows.run`` converts them."""
    return max(1, (int(n) - 1) // 4 + 1)


def preview_request(params) -> tuple[WindowOptions, int, int, int]:
    """Query parameters (the node's widget values) -> ``(WindowOptions, latent frames, steps, sampler_seed)``.

    Mirrors each node's ``run``: ZoLA nodes use schedule ``zola``, Gen-L ``uniform``, the all-schedules nodes
    their ``context_schedule`` widget; the Wan node's lengths (and ``frames``) are video frames. Raises
    ``ValueError`` naming the input for anything the node itself would refuse.
    """
    node = params.get("node", "LongAnimContextWindows")
    if node not in PREVIEW_NODES:
        raise ValueError(f"node must be one of {list(PREVIEW_NODES)}, got {node!r}")
    length = _int(params, "context_length", 16)
    stride = _int(params, "stride", 8)
    frames = _int(params, "frames", 64)
    kw = dict(fusion=params.get("fusion") or "zola", seed=_int(params, "seed", 0) & 0xFFFFFFFFFFFFFFFF,
              max_skip=_int(params, "max_skip", 1), blend_variant=params.get("blend_variant") or "paper")
    if node in ("LongAnimZoLAWindows", "LongAnimWanZoLAWindows"):
        schedule = "zola"
        if node == "LongAnimWanZoLAWindows":
            length = _wan_latent(length)
            stride = max(1, min(length, _wan_latent(stride)))
            frames = _wan_latent(frames)
    elif node == "LongAnimGenLWindows":
        schedule = "uniform"
    else:
        schedule = params.get("context_schedule") or "zola"
        if schedule not in cs.SCHEDULES:
            raise ValueError(f"context_schedule must be one of {list(cs.SCHEDULES)}, got {schedule!r}")
        kw.update(overlap=_int(params, "overlap", 4), closed_loop=_bool(params, "closed_loop"))
    if not 1 <= frames <= MAX_PREVIEW_FRAMES:
        raise ValueError(f"frames must be in [1, {MAX_PREVIEW_FRAMES}] for the preview, got {frames}")
    steps = _int(params, "steps", 6)
    if not 1 <= steps <= MAX_PREVIEW_STEPS:
        raise ValueError(f"steps must be in [1, {MAX_PREVIEW_STEPS}] for the preview, got {steps}")
    opts = WindowOptions(schedule=schedule, length=length, stride=stride, **kw)
    opts.validate()
    return opts, frames, steps, _int(params, "sampler_seed", 0) & 0xFFFFFFFFFFFFFFFF


def preview_png(params) -> bytes:
    """The PNG bytes of the schedule picture for ``params`` (see :func:`preview_request`)."""
    from PIL import Image

    from .window_nodes import schedule_picture

    opts, frames, steps, sampler_seed = preview_request(params)
    image = schedule_picture(opts, frames, steps, sampler_seed)
    arr = (image[0].clamp(0, 1).numpy() * 255).round().astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


async def _handle_preview(request):
    import asyncio

    from aiohttp import web

    params = dict(request.rel_url.query)
    try:
        png = await asyncio.get_running_loop().run_in_executor(None, preview_png, params)
    except ValueError as e:
        return web.Response(status=400, text=str(e), headers={"Cache-Control": "no-store"})
    return web.Response(body=png, content_type="image/png", headers={"Cache-Control": "max-age=3600"})


_registered = False


def register_routes() -> bool:
    """Add the preview route to ComfyUI's server, once; False where no server runs (tests, tools)."""
    global _registered
    if _registered:
        return True
    try:
        import server  # ComfyUI's module; absent outside ComfyUI
    except ImportError:
        return False
    instance = getattr(getattr(server, "PromptServer", None), "instance", None)
    routes = getattr(instance, "routes", None)
    if routes is None:
        return False
    routes.get(ROUTE)(_handle_preview)
    _registered = True
    log.debug("LongAnim: registered %s", ROUTE)
    return True
