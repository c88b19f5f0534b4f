"""ComfyUI glue of the attention patches (issue 6): ZS² momentum, Gen-L cross-frame, ZoLA expansion.

Part of the single ComfyUI adapter; merged into comfy_adapter.py by the lead.

Hooks (same on ComfyUI 0.3.75 and current ComfyUI, chosen by feature detection):

* UNet (SD1.5/SDXL, frames in the batch): ``ModelPatcher.set_model_attn1_patch``. The patch receives the
  post-norm hidden states ``n`` ``[B, N, C]`` of every ``BasicTransformerBlock`` before ``to_q/to_k/to_v`` and
  returns ``(n, context, value)``; only the K/V *sources* change, so the host's attention backend (sdpa, xformers,
  split, sage...) keeps running. ``to_k``/``to_v`` have no bias, so a per-frame combination of hidden states is
  the same combination of K and V (ZS² Eq. 2 exactly).
* Wan (native video DiT): ``transformer_options["optimized_attention_override"]`` (called by ``wrap_attn`` around
  every attention backend) plus a ``DIFFUSION_MODEL`` wrapper that records the token grid (T', H', W') on hosts
  whose Wan does not publish ``grid_sizes`` (0.3.75).

Keys: wrapper ``LongAnim.attention_expansion``; transformer_options ``LongAnim.attention_grid``.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import comfy.patcher_extension
import torch

from .algorithms import attention as att

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
