"""Per-window conditioning for the window loop (``windows.py``): what one window's model call receives.

Owns the window view published to other packs (``transformer_options["context_window"]``, an own object with the
attributes of core's ``IndexListContextWindow``), the slicing of per-frame conds and core ControlNet hints to a
window, the frame layout of one evaluation (video frames, the reference frame ``keep_first_frame`` prepends,
LTX-Video keyframe guides with their time coordinate re-based to the window), and Gen-L condition interpolation
between prompts (Gen-L-Video sec. 3.2).

Core hooks used: core ControlNet objects' ``cond_hint_original`` / ``cond_hint`` (sliced per window and restored),
``CONDRegular._copy_with`` for sliced model conds.
"""
from __future__ import annotations

import logging

import torch

from ..algorithms import prompt_schedule as ps

logger = logging.getLogger(__name__)


class _WindowView:
    """What other packs read from ``transformer_options["context_window"]``.

    An own object with the attributes and methods of core's ``IndexListContextWindow`` (``index_list``,
    ``context_length``, ``context_overlap``, ``dim``, ``total_frames``, ``center_ratio``, ``modality_windows``, the
    guide-frame lists, ``get_tensor``, ``add_window``, ``get_region_index``, ``get_window_for_modality``), so no
    core constructor signature is assumed; ``tests/comfy/test_core_manifest.py`` checks the host's window has no
    attribute this one lacks.
    """

    def __init__(self, index_list: list[int], dim: int, total: int):
        self.index_list = index_list
        self.context_length = len(index_list)
        self.context_overlap = 0
        self.dim = dim
        self.total_frames = total
        self.center_ratio = (min(index_list) + max(index_list)) / (2 * max(total, 1))
        self.modality_windows = None
        self.guide_frames_indices: list[int] = []
        self.guide_overlap_info: list[tuple[int, int]] = []
        self.guide_kf_local_positions: list[int] = []
        self.guide_downscale_factors: list[int] = []
        self.causal_anchor_index: int | None = None  # 0 when frame 0 was prepended as the reference frame

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

    def get_region_index(self, num_regions: int) -> int:
        """Which of ``num_regions`` equal parts of the video this window's centre falls in."""
        return min(max(int(self.center_ratio * num_regions), 0), num_regions - 1)

    def get_window_for_modality(self, modality_idx: int):
        """The window of one modality (0 = the latent itself; LongAnim windows carry no other modality)."""
        if modality_idx == 0:
            return self
        return self.modality_windows[modality_idx]


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


TAG_KEY = "longanim_frames"  # conditioning entries tagged with an inclusive frame range (start, end)
TAG_SOURCE_KEY = "longanim_frames_source"  # the node (and its inputs) that tagged the entry, for error messages
TAG_UNIT_KEY = "longanim_frames_unit"  # "video frames": the range is converted with the model's ratio per run
DEFAULT_TAG_SOURCE = "a LongAnim frame range"


def resolve_frame_tags(conds, num_frames: int, ratio: int) -> None:
    """Make every tagged entry of this run's ``conds`` a latent-frame range of a ``num_frames``-frame latent.

    A range typed in video frames is converted with the model's temporal compression ``ratio``
    (``prompt_schedule.video_range_to_latent``). A range starting past the last latent frame would leave the tagged
    prompt unused (or fail later naming a window, not the node): it is refused naming the node and inputs that
    tagged it. ``conds`` are the sampler's per-run copies (``guider.conds``), so the saved conditioning is untouched.
    """
    last = int(num_frames) - 1
    for entries in (conds or {}).values() if isinstance(conds, dict) else ():
        for entry in entries or []:
            if not isinstance(entry, dict) or TAG_KEY not in entry:
                continue
            start, end = (int(v) for v in entry[TAG_KEY])
            source = entry.get(TAG_SOURCE_KEY) or DEFAULT_TAG_SOURCE
            unit = entry.get(TAG_UNIT_KEY, "latent frames")
            if unit == "video frames":
                try:
                    start, end = ps.video_range_to_latent(start, end, ratio, source)
                except ValueError as e:
                    raise ValueError(f"start_frame / end_frame: {e}") from None
                entry[TAG_KEY] = (start, end)
                entry[TAG_UNIT_KEY] = "latent frames"
            if start > last:
                seen = f" (latent frames {start}-{end} at the model's {ratio} video frames per latent frame)" \
                    if unit == "video frames" else ""
                raise ValueError(f"start_frame / end_frame: {source} starts past the last latent frame ({last}) of "
                                 f"this {num_frames}-latent-frame video{seen}; frames are latent frames in [0, {last}]"
                                 " (with frame_unit = video frames: the frames you typed in the latent node); lower "
                                 "the range or make the video longer")


def check_control_hints(conds, num_frames: int) -> None:
    """A per-frame ControlNet hint must have 1 frame or as many frames as the latent."""
    for control in _control_chain(conds):
        hint = getattr(control, "cond_hint_original", None)
        if isinstance(hint, torch.Tensor) and hint.ndim == 4 and hint.shape[0] not in (1, num_frames):
            raise ValueError(
                f"ControlNet image: it has {hint.shape[0]} frames but the latent has {num_frames}; give one image "
                f"(used for every frame) or exactly {num_frames} (one per frame)")


class _HintSlicer:
    """Give ComfyUI's own ControlNet objects the hint frames of the windows being evaluated, then restore.

    With ``clones`` the per-device copies core's multi-GPU engine made of each ControlNet (``multigpu_clones``)
    get them too, for a call whose conds the host spreads over the devices."""

    def __init__(self, conds, num_frames: int, clones: bool = True):
        self.items = []
        for control in _control_chain(conds):
            copies = list(getattr(control, "multigpu_clones", {}).values()) if clones else []
            for c in [control] + copies:
                hint = getattr(c, "cond_hint_original", None)
                if _is_core_control(c) and isinstance(hint, torch.Tensor) and hint.ndim == 4 \
                        and hint.shape[0] == num_frames and num_frames > 1:
                    self.items.append((c, hint))

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


LTXV_TIME_SCALE = 8  # LTX-Video: pixel time coordinate of latent frame p is 8 p (its VAE's temporal ratio)


def _cond_value(conds, key: str):
    """The first ``model_conds[key]`` tensor of any cond entry (raw tensor or a CONDRegular's ``.cond``)."""
    for cond in conds:
        for entry in cond or []:
            mc = entry.get("model_conds")
            if isinstance(mc, dict) and key in mc:
                value = mc[key]
                return value if isinstance(value, torch.Tensor) else getattr(value, "cond", None)
    return None


class _FrameLayout:
    """Which latent frames of one model evaluation are video and which are LTX-Video keyframe guides, and which
    extra frames each window carries.

    ``LTXVAddGuide`` appends G guide latents after the V video frames (``T = V + G``) and gives the model their
    pixel coordinates in ``keyframe_idxs`` ([B, 3, G·h·w] on 0.3.75, [B, 3, G·h·w, 2] start/end on newer hosts),
    guide frame j owning tokens ``j·h·w .. (j+1)·h·w - 1``; its target latent frame is ``ceil(t / 8)`` of its first
    time coordinate (``LTXVAddGuide.get_latent_index``). Windows are drawn over the V video frames; each window's
    model frames are ``[0]`` (with ``keep_first_frame``, when the window lacks frame 0) + the window + the guide
    latents whose target frame is in the window. Without guides and ``keep_first_frame`` the model frames are the
    window itself (the plain loop, bit for bit).
    """

    def __init__(self, conds, x_in: torch.Tensor, axis: int, keep_first: bool):
        total = x_in.shape[axis]
        self.total = total
        self.keep_first = keep_first
        self.targets: list[int] = []
        kf = _cond_value(conds, "keyframe_idxs") if axis == 2 else None
        if isinstance(kf, torch.Tensor) and kf.ndim >= 3 and kf.shape[2] > 0:
            hw = x_in.shape[-1] * x_in.shape[-2]
            guides = kf.shape[2] // hw
            if guides * hw != kf.shape[2] or not 0 < guides < total:
                raise ValueError(f"positive/negative: keyframe_idxs holds {kf.shape[2]} guide tokens, not a whole "
                                 f"number of {hw}-token latent frames of this {list(x_in.shape)} latent; use "
                                 "LTXVAddGuide on the latent you sample, and LTXVCropGuides only after sampling")
            times = kf[0, 0].reshape(guides, hw, -1).amin(dim=(1, 2)).tolist()
            video = total - guides
            self.targets = [min(video - 1, max(0, (int(t) + LTXV_TIME_SCALE - 1) // LTXV_TIME_SCALE))
                            for t in times]
        self.video = total - len(self.targets)

    @property
    def plain(self) -> bool:
        return not self.keep_first and not self.targets

    def prefix(self, window: list[int]) -> list[int]:
        return [0] if self.keep_first and 0 not in window else []

    def guides(self, window: list[int]) -> list[int]:
        """Guide indices j (0..G-1) whose target frame is in ``window``."""
        held = set(window)
        return [j for j, g in enumerate(self.targets) if g in held]

    def model_frames(self, window: list[int]) -> list[int]:
        return self.prefix(window) + list(window) + [self.video + j for j in self.guides(window)]

    def group_key(self, window: list[int]) -> tuple:
        return len(self.prefix(window)), tuple(self.guides(window)) if self.targets else ()

    def guide_positions(self, window: list[int]) -> list[tuple[int, int]]:
        """(guide j, position of its target frame among the window's model frames) for the window's guides."""
        frames = self.prefix(window) + list(window)
        return [(j, frames.index(self.targets[j])) for j in self.guides(window)]

    def keyframe_idxs(self, kf: torch.Tensor, window: list[int], hw: int) -> torch.Tensor | None:
        """The window's guides' tokens of ``keyframe_idxs`` with the time coordinate re-based to the window:
        ``t_new = t_old + 8 (p - g)`` for a guide targeting latent frame g sitting at window position p."""
        parts = []
        for j, pos in self.guide_positions(window):
            part = kf[:, :, j * hw:(j + 1) * hw].clone()
            part[:, 0] += LTXV_TIME_SCALE * (pos - self.targets[j])
            parts.append(part)
        return torch.cat(parts, dim=2) if parts else None

    def guide_entries(self, entries, window: list[int]):
        """0.28.0's ``guide_attention_entries`` (one per LTXVAddGuide call, ``latent_shape[0]`` frames each) of the
        window's guides: whole entries kept, partly held ones cut to the frames held."""
        held, out, start = set(self.guides(window)), [], 0
        for entry in entries:
            n = int(entry["latent_shape"][0])
            k = sum(1 for j in range(start, start + n) if j in held)
            if k:
                e = dict(entry)
                if k != n:
                    h, w = entry["latent_shape"][1:]
                    e["latent_shape"] = [k, h, w]
                    e["pre_filter_count"] = k * h * w
                out.append(e)
            start += n
        return out


def _interpolate_entries(weighted: list[tuple[dict, float]]) -> tuple[dict | None, str]:
    """Gen-L condition interpolation (Gen-L-Video sec. 3.2): one entry whose model conds are ``sum_i w_i c_i``.

    Cross-attention conds of different token lengths are padded as the host pads conds it batches
    (``prompt_schedule.interpolate_conditioning``: repetition to the lcm, at most 4x); every other model cond that
    differs between the prompts -- SDXL's ``y``, which carries the pooled output, Flux's pooled ``y`` -- is
    interpolated when all prompts give it one shape (``prompt_schedule.interpolate_pooled``); conds equal in every
    prompt are kept. Returns ``(entry, "")``, or ``(None, reason)`` when the prompts cannot be interpolated (a cond
    present in only some prompts, token lengths the host would not pad, a differing cond that is not a
    floating-point tensor of one shape); the caller then falls back to the majority prompt.
    """
    if len(weighted) == 1:
        return weighted[0][0], ""
    weights = [w for _, w in weighted]
    model_conds = [entry.get("model_conds") for entry, _ in weighted]
    if not all(isinstance(mc, dict) for mc in model_conds):
        return None, "a prompt's conditioning has no model conds"
    keys = set(model_conds[0])
    if any(set(mc) != keys for mc in model_conds):
        return None, "the prompts' conditionings carry different model inputs"
    mixed = {}
    for key, first in model_conds[0].items():
        values = [mc[key] for mc in model_conds]
        tensors = [getattr(v, "cond", v) for v in values]
        if all(isinstance(t, torch.Tensor) for t in tensors):
            if all(t.shape == tensors[0].shape and torch.equal(t, tensors[0]) for t in tensors[1:]):
                mixed[key] = first
                continue
            try:
                if key == "c_crossattn":
                    mix = ps.interpolate_conditioning(tensors, weights)
                else:
                    mix = ps.interpolate_pooled(tensors, weights)
            except ValueError as exc:
                return None, f"model cond {key!r}: {exc}"
            mixed[key] = mix if isinstance(first, torch.Tensor) else first._copy_with(cond=mix)
        elif _same_values(values, tensors):
            mixed[key] = first
        else:
            return None, f"model cond {key!r} differs between the prompts and is not a tensor"
    base = dict(weighted[0][0])
    base["model_conds"] = mixed
    return base, ""


def _same_values(values: list, raw: list) -> bool:
    """Non-tensor model conds (``CONDConstant``, ``CONDList``, ...) equal in every prompt."""
    try:
        return all(v is values[0] or (type(v) is type(values[0]) and bool(r == raw[0]))
                   for v, r in zip(values[1:], raw[1:]))
    except (RuntimeError, TypeError, ValueError):  # e.g. lists of tensors: no plain equality
        return False


_WARNED: set[str] = set()


def _warn_once(message: str) -> None:
    """Log ``message`` once per server process (the window loop would repeat it every window and step)."""
    if message not in _WARNED:
        _WARNED.add(message)
        logger.warning("LongAnim: %s", message)
