"""LongAnim's window loop: the context handler in core's ``model_options["context_handler"]`` slot.

Owns the loop every LongAnim window node, refinement and inversion run through: per model evaluation it draws this
step's windows (``nodes/algorithms/context_schedule.py``: ZoLA re-drawn windows, Gen-L co-denoising, the anchors'
schedules), slices the per-frame conditioning, ControlNet hints and timesteps to them, evaluates them (several per
model call when allowed, across core's multi-GPU clones with ``multigpu.py``), fuses the predictions with
``co_denoise`` and returns one output per cond, as core's ``_calc_cond_batch`` does. Also owns the wrappers
that set a run up (the sampler's seed, the memory estimate of one batch of windows, the record of the last
step's windows), the window view published to other packs (``transformer_options["context_window"]`` /
``["ad_params"]``) and the per-window callbacks other features
register (``WINDOW_CALLBACKS``: Window LoRA). What one window's call receives (the window view, sliced conds and
hints, the reference frame, LTX-Video guides, interpolated prompts) is built by ``window_conds.py``.

Core hooks used: ``comfy.context_windows.ContextHandlerABC`` (subclassed, see :class:`LongAnimContextHandler`);
``comfy.patcher_extension.WrappersMP`` ``SAMPLER_SAMPLE``, ``PREPARE_SAMPLING`` and ``OUTER_SAMPLE`` wrappers on the
ModelPatcher; ``BaseModel.memory_required`` and ``comfy.model_management.get_total_memory`` for the automatic
batch; ``transformer_options["sample_sigmas"]`` for the step index; core ControlNet objects' ``cond_hint_original``.
The AnimateDiff-Evolved side of the loop is ``animatediff.py``.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence

import comfy.model_management
import comfy.patcher_extension
import torch

from ..algorithms import context_schedule as cs
from ..algorithms import prompt_schedule as ps
from . import animatediff as ade
from . import multigpu as mg
from . import scene_noise
from . import step_cache as sc
from .basics import (
    RUN_STATE_KEY,
    check_finite_latent,
    check_frames_for_windows,
    check_interrupt,
    check_latent_fits_model,
    frame_axis_of,
    run_state,
    set_wrapper,
    temporal_compression,
)
from .run_record import (  # noqa: F401
    RECORD_KEY,
    ScheduleRecord,
    _fingerprint,
    continued_run,
    note_finished_run,
    recorded_run,
    recorded_windows,
)
from .window_conds import (  # noqa: F401  (read by the nodes as windows.*)
    TAG_KEY,
    TAG_SOURCE_KEY,
    TAG_UNIT_KEY,
    _FrameLayout,
    _HintSlicer,
    _interpolate_entries,
    _slice_value,
    _warn_once,
    _window_view,
    check_control_hints,
    resolve_frame_tags,
)
from .window_options import WindowOptions

logger = logging.getLogger(__name__)

try:  # feature detection: core context windows exist since 2025-08 (0.3.5x); duck typing otherwise
    import comfy.context_windows as _core_cw

    _HandlerBase = _core_cw.ContextHandlerABC
except (ImportError, AttributeError):  # pragma: no cover - very old hosts
    _core_cw = None
    _HandlerBase = object

WRAPPER_RUN_STATE = "LongAnim.run_state"
WRAPPER_PREPARE = "LongAnim.windows_prepare_sampling"
WRAPPER_OUTER = "LongAnim.outer_sample"
WINDOW_CALLBACKS = "LongAnim.window_callbacks"  # transformer_options list: cb(windows, T, model, mo) -> undo|None


AUTO_BATCH_CAP = 16  # most windows per model call in auto mode (tiny Wan, CPU: 1 -> 16 windows per call = 2.2x)
AUTO_BATCH_SHARE = 0.25  # auto mode lets one batch of windows use this share of the device's total memory


def auto_windows_per_call(base_model, x_shape: Sequence[int], axis: int, length: int, device, log=None) -> int:
    """Windows per model call for ``max_windows_per_batch = 0``.

    As many windows as fit, by ComfyUI's own activation-memory estimate (``BaseModel.memory_required``, cond and
    uncond together), in a quarter of the device's TOTAL memory, at most 16. Total, not free, memory: the choice must
    not change between runs on one machine, or batched float sums would make a seed's output wobble in the last bits.
    The sampler's memory estimate (``_PrepareSamplingWrapper``) reserves the same batch, so ComfyUI offloads weights
    to make room on small GPUs. If the estimate fails, 1, and ``log`` (a logger) says why: the sampler's memory
    estimate passes it, once per run.
    """
    shape = list(x_shape)
    if axis == 0:
        shape[0] = length * 2
    else:
        shape[axis] = min(shape[axis], length)
        shape[0] = shape[0] * 2
    try:
        per_window = float(base_model.memory_required(input_shape=shape))
        total = float(comfy.model_management.get_total_memory(dev=torch.device(device)))
    except Exception as e:  # a model without an estimate: stay safe, and say so (once per run: the caller's log)
        if log is not None:
            log.warning("LongAnim windows: max_windows_per_batch = 0 (auto) could not size the batch (ComfyUI's memory "
                        "estimate failed: %s: %s), so each window runs in its own model call (slower); set "
                        "max_windows_per_batch to a number to choose", type(e).__name__, e)
        return 1
    if per_window <= 0:
        return 1
    return max(1, min(AUTO_BATCH_CAP, int(total * AUTO_BATCH_SHARE // per_window)))


def step_index(timestep: torch.Tensor, model_options: dict) -> int:
    """Sampling step of this model call: the index of ``timestep`` in ``sample_sigmas``.

    Substep evaluations (Heun, DPM-2, SDE midpoints) whose sigma is not in the schedule belong to the last step
    whose sigma is above theirs, so they see that step's windows. A run that continues another (see
    :func:`continued_run`) counts on from that run's last step: the global step.
    """
    t_opts = model_options.get("transformer_options", {})
    sample_sigmas = t_opts.get("sample_sigmas")
    offset = int(t_opts.get(RUN_STATE_KEY, {}).get("step_offset", 0))
    if sample_sigmas is None:
        return offset
    sig = float(timestep.reshape(-1)[0])
    ss = sample_sigmas.detach().float().cpu()
    close = torch.nonzero(torch.isclose(ss, torch.tensor(sig), rtol=1e-4, atol=1e-7)).flatten()
    if close.numel():
        return offset + int(close[0])
    return offset + max(0, int((ss > sig).sum()) - 1)


def _has_tags(conds) -> bool:
    return any(c is not None and any(TAG_KEY in e for e in c) for c in conds)


WINDOWS_KEY = "longanim_windows"  # LATENT key: windows (index lists) of the last step that produced it
class LongAnimContextHandler(_HandlerBase):
    """Context-window handler in ComfyUI's ``model_options["context_handler"]`` slot.

    ``samplers.calc_cond_batch`` calls ``should_use_context`` then ``execute`` for every model evaluation, for plain
    KSampler, SamplerCustom(Advanced) and any guider. ``execute`` owns the window loop: it draws this step's windows
    (``nodes/algorithms/context_schedule.py``), evaluates them (several per model call when allowed), fuses them
    with ``co_denoise`` and returns one output per cond, like ``_calc_cond_batch``.

    Subclassing ``comfy.context_windows.ContextHandlerABC`` is safe: it is an ABC whose contract is its three
    abstract methods (``should_use_context``, ``get_resized_cond``, ``execute``, called by core with the arguments
    ``manifest.py`` checks), with a constructor that takes and sets nothing, so this class calls no base code. Being
    an instance of it keeps the slot's declared type for other packs; a new abstract method on a newer host is a
    manifest mismatch, not a silent ``TypeError`` at the first sample.
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
        layout = _FrameLayout(conds, x_in, axis, self.options.keep_first_frame)
        return layout.video > self.options.length or _has_tags(conds)

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
        if not any(iv.start <= f <= iv.end for f in window for iv in intervals):
            names = sorted({e.get(TAG_SOURCE_KEY) or "a LongAnim frame range" for e in tagged})
            raise ValueError(f"start_frame / end_frame: no tagged conditioning covers latent frames {window[0]}.."
                             f"{window[-1]} of a window; every frame needs one. Tagged: {'; '.join(names)}. Widen a "
                             "range or add one for these frames")
        if self.options.prompt_rule == "genl":
            weights = ps.genl_prompt_weights(window, intervals)
            mixed, why = _interpolate_entries([(tagged[i], w) for i, w in weights])
            if mixed is not None:
                return plain + [mixed]
            _warn_once(f"prompt_rule 'genl': {why}; windows between these prompts use the prompt covering most of "
                       "their frames (the 'zola' rule) instead")
        return plain + [tagged[ps.zola_prompt_for_window(window, intervals)]]

    def _resize_cond(self, cond_in, windows, num_frames, axis, layout: _FrameLayout | None = None):
        """The conds of a batch of windows: per-frame tensors sliced to each window's model frames (see
        :class:`_FrameLayout`) and joined on the batch axis; LTX-Video guide conds rebuilt per window;
        HunyuanVideo's ``guiding_frame_index`` (the model's clean first frame) dropped from windows whose first
        frame is not frame 0."""
        if cond_in is None:
            return None
        if len(windows) == 1:
            cond_in = self._select_prompts(cond_in, windows[0])
        frames = [layout.model_frames(w) for w in windows] if layout is not None else [list(w) for w in windows]
        idx = [torch.tensor(f, dtype=torch.long) for f in frames]
        out = []
        for entry in cond_in:
            new = dict(entry)
            for key, value in entry.items():
                if key == "model_conds" and isinstance(value, dict):
                    mc = dict(value)
                    for ck, cv in value.items():
                        tensor = cv if isinstance(cv, torch.Tensor) else getattr(cv, "cond", None)
                        if layout is not None and layout.targets and ck in ("keyframe_idxs",
                                                                              "guide_attention_entries"):
                            self._resize_guides(mc, ck, cv, tensor, windows, layout)
                            continue
                        if ck == "guiding_frame_index" and any(f[0] != 0 for f in frames):
                            del mc[ck]
                            continue
                        sliced = _slice_value(tensor, axis, num_frames, idx, 0)
                        if sliced is not None:
                            mc[ck] = sliced if isinstance(cv, torch.Tensor) else cv._copy_with(cond=sliced)
                    new[key] = mc
                elif key != "control":
                    sliced = _slice_value(value, axis, num_frames, idx, 0)
                    if sliced is not None:
                        new[key] = sliced
            out.append(new)
        return out

    @staticmethod
    def _resize_guides(mc: dict, key: str, cv, tensor, windows, layout: _FrameLayout) -> None:
        """keyframe_idxs / guide_attention_entries of the batch's windows (all hold the same guides: one group)."""
        if key == "keyframe_idxs":
            hw = tensor.shape[2] // len(layout.targets)
            parts = [layout.keyframe_idxs(tensor, w, hw) for w in windows]
            if parts[0] is None:
                del mc[key]
                return
            joined = torch.cat(parts, dim=0) if len(parts) > 1 else parts[0]
            mc[key] = joined if isinstance(cv, torch.Tensor) else cv._copy_with(cond=joined)
            return
        entries = getattr(cv, "cond", cv)
        if not isinstance(entries, list):
            return
        kept = layout.guide_entries(entries, windows[0])
        if not kept:
            del mc[key]
        else:
            mc[key] = cv._copy_with(cond=kept) if hasattr(cv, "_copy_with") else kept

    # -- the loop ---------------------------------------------------------------------------------
    def _step(self, timestep, model_options, state) -> int:
        """The (global) sampling step of this evaluation. Randomized blending (StreamingT2V Eq. 8: one random cut
        per denoising step) on a sampler with several evaluations per step (Heun, DPM-2, ...) numbers evaluations
        by the run's :class:`~context_schedule.SamplerStepClock`, so a step's evaluations share one cut and one
        set of windows; otherwise by :func:`step_index` (noise level)."""
        clock = state.get("clock")
        if clock is not None and self.options.fusion == "randomized_blend":
            return int(state.get("step_offset", 0)) + clock(float(timestep.reshape(-1)[0]))
        return step_index(timestep, model_options)

    def execute(self, calc_cond_batch, model, conds, x_in, timestep, model_options):
        opts = self.options
        axis = frame_axis_of(x_in)
        num_frames = x_in.shape[axis]
        self.dim = axis
        layout = _FrameLayout(conds, x_in, axis, opts.keep_first_frame)
        video = layout.video
        state = run_state(model_options)
        step = self._step(timestep, model_options, state)
        seed = opts.step_seed(state.get("seed", 0), state.get("pass", 0))
        windows = opts.windows(video, step, seed, num_steps=state.get("num_steps"))
        masks = opts.blend_masks(windows, video, step, seed)
        record = model_options.get("transformer_options", {}).get(RECORD_KEY)
        if isinstance(record, ScheduleRecord):
            record.note(step, windows)
        else:
            record = None
        # a private copy of the options: the window keys published below never outlive this call
        model_options = dict(model_options)
        t_opts = model_options["transformer_options"] = dict(model_options.get("transformer_options", {}))
        ade_state = ade.ade_run_state(t_opts)
        if ade_state is not None:  # ADE's own sliding loop must not run inside LongAnim's windows
            ade.drop_sliding_loop(t_opts)
        # windows with their own prompts, their own adapter weights or an ADE motion module that reads per-window
        # frame indices (one sub_idxs per call) are evaluated one per call; otherwise equal-length windows share a
        # call with ADE too (one video length per call; co_denoise batches by length)
        if _has_tags(conds) or t_opts.get(WINDOW_CALLBACKS) or \
                (ade_state is not None and not ade.windows_share_call(ade_state)):
            max_batch = 1
        else:
            max_batch = opts.max_batch or mg.auto_cap(model_options, ade_state, len(windows),
                                                      self._auto_windows(model, x_in, axis))
        slicer = _HintSlicer(conds, num_frames) if axis == 0 else None
        per_frame_t = timestep.ndim == 1 and timestep.shape[0] == num_frames and axis == 0
        guide_sum = guide_count = None
        if layout.targets:
            guide_sum = [torch.zeros_like(x_in.narrow(axis, video, len(layout.targets))) for _ in conds]
            guide_count = [0] * len(layout.targets)

        n_live = max(1, sum(c is not None for c in conds))
        main = mg.Device(None, model, model_options, slicer)

        def call(batch: list[list[int]], live=None, dev: mg.Device | None = None) -> list[torch.Tensor]:
            """One model call on windows sharing one frame layout, for the conds ``live`` marks (all if None; a
            step cache answers the others), on ``dev`` (``multigpu.py``) or this thread; per window, the outputs
            of its model frames."""
            dev = dev or main
            frames = [layout.model_frames(w) for w in batch]
            idx = [torch.tensor(f, dtype=torch.long, device=x_in.device) for f in frames]
            x_b = torch.cat([x_in.index_select(axis, i) for i in idx], dim=0)
            if per_frame_t:
                t_b = torch.cat([timestep.index_select(0, i.to(timestep.device)) for i in idx])
            else:
                t_b = torch.cat([timestep] * len(batch))
            sub_conds = [self._resize_cond(c, batch, num_frames, axis, layout) if live is None or live[i] else None
                         for i, c in enumerate(conds)]
            if record is not None:  # the cost as run: model frames times the share of the conds evaluated
                record.count(sum(map(len, frames)) * sum(c is not None for c in sub_conds) / n_live, video)
            x_b, t_b, sub_conds = dev.place(x_b, t_b, sub_conds)
            view_frames = [layout.prefix(w) + list(w) for w in batch]  # the video frames of the call
            view = _window_view(view_frames[0], axis, num_frames)
            if not layout.plain:
                view.total_frames = video
                view.causal_anchor_index = 0 if layout.prefix(batch[0]) else None
                view.guide_frames_indices = [video + j for j in layout.guides(batch[0])]
                view.guide_kf_local_positions = [p for _, p in layout.guide_positions(batch[0])]
            dev.t_opts["context_window"] = view
            dev.t_opts["ad_params"] = {"sub_idxs": list(view_frames[0]), "full_length": num_frames,
                                       "context_length": len(view_frames[0]), "sub_idxs_batch": view_frames}
            if dev.slicer is not None:
                dev.slicer.set(frames)
            cleanups = [cb(view_frames, num_frames, dev.model, dev.model_options)
                        for cb in dev.t_opts.get(WINDOW_CALLBACKS, [])]
            if ade_state is not None:
                cleanups.append(ade.set_window(ade_state, view_frames, num_frames))
            try:
                outs = calc_cond_batch(model=dev.model, conds=sub_conds, x_in=x_b, timestep=t_b,
                                       model_options=dev.model_options)
            finally:
                for undo in reversed(cleanups):
                    if undo is not None:
                        undo()
                if dev.slicer is not None:
                    dev.slicer.restore()
            per_cond = [o.to(x_in.device).chunk(len(batch), dim=0) for o in outs]
            return [torch.stack([pc[i] for pc in per_cond], dim=0) for i in range(len(batch))]

        def compute(batch: list[list[int]], live=None, dev: mg.Device | None = None) -> list[torch.Tensor]:
            """Per window of ``batch``, in order, the outputs of its model frames (one call per frame layout)."""
            groups: dict[tuple, list[int]] = {}
            for i, w in enumerate(batch):
                groups.setdefault(layout.group_key(w), []).append(i)
            outs = {i: o for g in groups.values() for i, o in zip(g, call([batch[i] for i in g], live, dev),
                                                                   strict=True)}
            return [outs[i] for i in range(len(batch))]

        def finish(batch: list[list[int]], outs: list[torch.Tensor]) -> list[torch.Tensor]:
            """On the sampling thread, in schedule order: guide outputs summed, each window's own frames kept."""
            results = []
            for w, o in zip(batch, outs, strict=True):
                start = len(layout.prefix(w))
                for k, j in enumerate(layout.guides(w)):  # guide outputs: averaged over the windows holding it
                    pos = start + len(w) + k
                    for ci in range(len(conds)):
                        guide_sum[ci].narrow(axis, j, 1).add_(o[ci].narrow(axis, pos, 1))
                    guide_count[j] += 1
                results.append(o.narrow(axis + 1, start, len(w)))  # the window's own frames only
            return results

        def evaluate(batch: list[list[int]], live=None) -> list[torch.Tensor]:
            return finish(batch, compute(batch, live))

        x_video = x_in if not layout.targets else x_in.narrow(axis, 0, video)
        stacked = x_video.unsqueeze(0).expand(len(conds), *x_video.shape)
        fusion = dict(weights=None if masks is not None else opts.fusion, blend_masks=masks, max_batch=max_batch,
                      check_interrupt=check_interrupt)
        cache = sc.run_cache(t_opts)
        with mg.WindowSplit(model, model_options, conds, layout, axis, ade_state, compute, finish) as spread:
            if cache is None:  # spread over core's multi-GPU clones where the run has them (multigpu.py)
                fused = cs.co_denoise(stacked, windows, axis + 1, evaluate, evaluate_batches=spread, **fusion)
            else:  # the Window Step Cache evaluates only the windows it cannot answer (guides: all conds together)
                sigma = timestep.narrow(0, 0, video) if per_frame_t else timestep.reshape(-1)[:1]
                fused = cache.co_denoise(stacked, windows, axis + 1, evaluate, sigma=sigma, step=step,
                                         num_steps=state.get("num_steps"), live=[c is not None for c in conds],
                                         per_cond=not layout.targets, **fusion)
        if not layout.targets:
            return [fused[i] for i in range(len(conds))]
        result = []
        for ci in range(len(conds)):
            guides = x_in.narrow(axis, video, len(layout.targets)).clone()
            for j, n in enumerate(guide_count):
                if n:  # a guide no window held keeps its latent (its noise mask holds it to the guide anyway)
                    guides.narrow(axis, j, 1).copy_(guide_sum[ci].narrow(axis, j, 1) / n)
            result.append(torch.cat([fused[ci], guides.to(fused.dtype)], dim=axis))
        return result


class _RunStateWrapper:
    """SAMPLER_SAMPLE wrapper: publish the sampler's seed and step offset to the window loop, check the setup before
    sampling (one window loop per model, ControlNet hint lengths), and note the finished run
    so a run continuing it (the second Wan 2.2 expert) continues its schedule."""

    def __init__(self, check_handler: bool):
        self.check_handler = check_handler

    def __call__(self, executor, guider, sigmas, extra_args, callback, noise, *args, **kwargs):
        check_finite_latent(args[0] if args else kwargs.get("latent_image"))
        mo = extra_args["model_options"]
        t_opts = mo.setdefault("transformer_options", {})
        state = dict(t_opts.get(RUN_STATE_KEY, {}))
        state.setdefault("pass", 0)
        state["seed"] = int(extra_args.get("seed") or 0)
        patcher = getattr(guider, "model_patcher", None)
        record = t_opts.get(RECORD_KEY)
        record = record if isinstance(record, ScheduleRecord) else None
        cont = continued_run(record.latent_key if record else None, sigmas, noise)
        if cont is not None:
            state["seed"], state["step_offset"] = cont
        else:
            state["step_offset"] = 0
        steps = int(sigmas.numel()) - 1 if isinstance(sigmas, torch.Tensor) else 0
        if isinstance(t_opts.get(RECORD_KEY), ScheduleRecord):
            t_opts[RECORD_KEY].steps += steps
        # the skip phase of `skip_until` is a share of the steps of this run and the runs it continues
        state["num_steps"] = max(1, state["step_offset"] + steps)
        sampler_fn = getattr(getattr(executor, "class_obj", None), "sampler_function", None)
        state["clock"] = None
        if steps > 0 and cs.is_multi_call_sampler(getattr(sampler_fn, "__name__", "")):
            state["clock"] = cs.SamplerStepClock(sigmas.detach().float().cpu().tolist(), multi_call=True)
        t_opts[RUN_STATE_KEY] = state
        if self.check_handler and not isinstance(mo.get("context_handler"), LongAnimContextHandler):
            raise ValueError("model: another context-window node (core Context Windows or AnimateDiff context "
                             "options) replaced LongAnim's windows on this MODEL; use only one of them")
        other = foreign_context(patcher) if self.check_handler and patcher is not None else None
        if other and "core Context Windows" not in other:
            raise ValueError(f"model: LongAnim windows cannot run together with {other}; remove one of them")
        conds = getattr(guider, "conds", {}) or {}
        latent = args[0] if args else kwargs.get("latent_image")
        if isinstance(latent, torch.Tensor) and latent.ndim in (4, 5):
            resolve_frame_tags(conds, latent.shape[frame_axis_of(latent)], temporal_compression(patcher))
        if noise is not None and noise.ndim == 4:
            check_control_hints(list(conds.values()), noise.shape[0])
        out = executor(guider, sigmas, extra_args, callback, noise, *args, **kwargs)
        if record is not None and steps > 0:  # filed under the output latent by _OuterSampleWrapper
            record.finished = (float(sigmas.reshape(-1)[-1]), state["seed"], state["step_offset"] + steps)
        return out


class _PrepareSamplingWrapper:
    """Memory estimation sees one batch of windows, not the whole video (like core's context windows): a window's
    frames plus what the loop adds to it - frame 0 with ``keep_first_frame`` and, for LTX-Video, the keyframe guide
    latents (all of them: they may all target one window)."""

    def __init__(self, length: int, max_batch: int, keep_first: bool = False):
        self.length = length
        self.max_batch = max_batch
        self.keep_first = keep_first

    @staticmethod
    def _guide_frames(conds, shape) -> int:
        """Guide latents ``LTXVAddGuide`` appended (its ``keyframe_idxs`` hold h·w tokens per guide frame)."""
        hw = shape[-1] * shape[-2]
        for entries in (conds or {}).values() if isinstance(conds, dict) else ():
            for entry in entries or []:
                kf = entry.get("keyframe_idxs") if isinstance(entry, dict) else None
                if isinstance(kf, torch.Tensor) and kf.ndim >= 3 and hw:
                    return int(kf.shape[2]) // hw
        return 0

    def __call__(self, executor, model, noise_shape, *args, **kwargs):
        shape = list(noise_shape)
        if len(shape) in (4, 5):
            axis = 0 if len(shape) == 4 else 2
            conds = kwargs.get("conds", args[0] if args else None)
            frames = self.length + int(self.keep_first) + (self._guide_frames(conds, shape) if axis == 2 else 0)
            batch = self.max_batch or auto_windows_per_call(model.model, shape, axis, self.length, model.load_device,
                                                            log=logger)
            shape[axis] = min(shape[axis], frames * (batch if axis == 0 else 1))
            if axis == 2:
                shape[0] = shape[0] * batch
        return executor(model, shape, *args, **kwargs)


class _OuterSampleWrapper:
    """OUTER_SAMPLE wrapper, first in the chain: the run's window record, and ADE's context length for this run.

    * Records the windows of the run's last step and files them under the output latent (:func:`recorded_windows`),
      so the Video Metrics node marks the borders the run really had.
    * Refuses a latent whose layout does not fit the model family (:func:`basics.check_latent_fits_model`) and a
      step cache that would run inside the windows (:func:`step_cache.check_no_foreign_cache`).
    * AnimateDiff-Evolved: ADE sees LongAnim's window length for this run only
      (:func:`animatediff.bridge_window_length`).
    """

    def __init__(self, length: int):
        self.length = length

    def __call__(self, executor, noise, latent_image, *args, **kwargs):
        guider = executor.class_obj
        patcher = getattr(guider, "model_patcher", None)
        if patcher is not None:  # before the latent format's process_latent_in, which would fail on a mismatch
            check_latent_fits_model(patcher, latent_image)
            sc.check_no_foreign_cache(patcher, guider.model_options)
        check_frames_for_windows(latent_image)
        record = ScheduleRecord(_fingerprint(latent_image) if isinstance(latent_image, torch.Tensor) else None)
        orig_options = guider.model_options
        guider.model_options = dict(orig_options)
        guider.model_options["transformer_options"] = dict(orig_options.get("transformer_options", {}))
        guider.model_options["transformer_options"][RECORD_KEY] = record
        undo_bridge = ade.bridge_window_length(patcher, latent_image, self.length)
        try:
            out = executor(noise, latent_image, *args, **kwargs)
        finally:
            guider.model_options = orig_options
            if undo_bridge is not None:
                undo_bridge()
        record.file_under(out)
        return out


def foreign_context(model) -> str | None:
    """Name of a window mechanism on ``model`` that LongAnim's window loop cannot share the model with, else None.

    Core Context Windows sit in the same ``context_handler`` slot; AnimateDiff-Evolved's context options run ADE's
    own window loop (a hand check, tests/tools/ade_interop_notes.md, showed it fails inside LongAnim's windows).
    Only one window loop can own a model, so both are refused with a message. An ADE motion module *without* ADE
    context options is fine: LongAnim drives it (``animatediff.py``).
    """
    handler = model.model_options.get("context_handler")
    if handler is not None and not isinstance(handler, LongAnimContextHandler):
        return f"{type(handler).__name__} (core Context Windows)"
    if ade.has_context_options(model):
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
    sc.check_no_foreign_cache(model)
    m = model.clone()
    m.model_options["context_handler"] = LongAnimContextHandler(options)
    set_wrapper(m, comfy.patcher_extension.WrappersMP.SAMPLER_SAMPLE, WRAPPER_RUN_STATE,
                _RunStateWrapper(check_handler=True))
    set_wrapper(m, comfy.patcher_extension.WrappersMP.PREPARE_SAMPLING, WRAPPER_PREPARE,
                _PrepareSamplingWrapper(options.length, options.max_batch, options.keep_first_frame))
    _first_wrapper(m, comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, WRAPPER_OUTER,
                   _OuterSampleWrapper(options.length))
    scene_noise.install(m, options.scene_noise, options.length, options.scene_share)
    return m

