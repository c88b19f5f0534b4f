"""ZoLA attention expansion (Eqs. 3-4) on video DiTs (Wan, LTX-Video, HunyuanVideo): windows of frames inside one
self-attention.

Owns :class:`ExpansionOverride`, the ``optimized_attention_override`` that runs Wan's self-attention as overlapping
windows of frames (``nodes/algorithms/attention.py: expanded_attention``), optionally blended by temporal frequency
band with attention over all frames of the call (FreeLong / FreeLong++, ``nodes/algorithms/spectral_attention.py``),
:class:`GridRecorder`, which tells it
the token grid (T', H', W') of a Wan call (the other families' layouts: ``dit_attention.py``), and
:func:`patch_attention_expansion`, which installs both on a MODEL clone and chains an override already there.

Core hooks used: ``transformer_options["optimized_attention_override"]``, called by ``wrap_attn`` around every
attention backend as ``override(func, q, k, v, heads, mask, ...)`` (``comfy/ldm/modules/attention.py``); a
``DIFFUSION_MODEL`` wrapper (``comfy.patcher_extension.WrappersMP``) that records the token grid on hosts whose Wan
does not publish ``transformer_options["grid_sizes"]`` (0.3.75). Wrapper key ``LongAnim.attention_expansion``,
transformer_options key ``LongAnim.attention_grid``.
"""
from __future__ import annotations

import comfy.patcher_extension
import torch

from ..algorithms import attention as att
from ..algorithms import spectral_attention as spa
from . import dit_attention as dit
from .basics import set_wrapper, video_dit_family
from .dit_attention import GRID_KEY, JOINT_BLOCKS

WRAPPER_EXPANSION_GRID = "LongAnim.attention_expansion"
OVERRIDE_KEY = "optimized_attention_override"


def _call_attention(func, previous, args, kwargs):
    if previous is not None:
        return previous(func, *args, **kwargs)
    return func(*args, **kwargs)


class ExpansionOverride:
    """``optimized_attention_override`` applying ZoLA attention expansion (Eqs. 3-4) to video DiT self-attention.

    The token layout of the call comes from ``transformer_options``: ``grid_sizes`` (Wan on current ComfyUI) or
    :data:`GRID_KEY` (``dit_attention``: Wan on 0.3.75, LTX-Video, HunyuanVideo). A video-only self-attention is
    ``q``, ``k``, ``v`` of shape ``[B, L, heads*d]`` with L = T'·H'·W'. A joint attention (HunyuanVideo, layout
    ``(T', H', W', side)``, only inside its ``double`` / ``single`` blocks) holds the video's tokens and text
    tokens in one sequence, ``[B, heads, L, d]`` with ``skip_reshape`` and an optional key mask over the text:
    the video queries attend inside their windows plus to every text token, the text queries to everything
    (one call of their own). Everything else (cross-attention to text or image tokens, masks over the video,
    sequences with reference tokens) goes to the host kernel unchanged. Windows and branches call the host kernel
    too (``attn_fn`` = the backend ``wrap_attn`` chose), or the override that was on the model before (chained).

    ``blend`` other than ``"off"`` adds the global branch (and for ``"freelong++"`` windows of 2, 4, ... times
    ``base``): each branch is one more pass through the same kernel, fused by temporal frequency band
    (``spectral_attention``). The global branch spans the frames of this call: the whole video without context
    windows, one context window (longer than ``base``) inside LongAnim's window loop.
    """

    def __init__(self, base: int, stride: int, max_windows_per_batch: int | None = None, previous=None,
                 blend: str = "off", cutoff: float = 1.0):
        spa.validate_blend(blend, cutoff)
        self.base = int(base)
        self.stride = int(stride)
        self.max_windows_per_batch = max_windows_per_batch
        self.previous = previous
        self.blend = blend
        self.cutoff = float(cutoff)

    @staticmethod
    def _layout(t_opts: dict):
        """(frames, H', W', side): side None for a video-only call, "after" / "before" for a joint one."""
        grid = t_opts.get("grid_sizes")
        if grid is None:
            grid = t_opts.get(GRID_KEY)
        if grid is None or len(grid) not in (3, 4):
            return None
        side = grid[3] if len(grid) == 4 else None
        if side is not None and (side not in ("after", "before") or t_opts.get("block_type") not in JOINT_BLOCKS):
            return None
        return int(grid[0]), int(grid[1]), int(grid[2]), side

    def _branches(self, q, k, v, heads, frames, per_frame, attn_fn, extra_k=None, extra_v=None):
        if self.blend != "off":
            return spa.spectral_attention(q, k, v, heads, frames, per_frame, self.base, self.stride, self.blend,
                                          self.cutoff, attn_fn=attn_fn,
                                          max_windows_per_batch=self.max_windows_per_batch,
                                          extra_k=extra_k, extra_v=extra_v)
        return att.expanded_attention(q, k, v, heads, frames, per_frame, self.base, self.stride, attn_fn=attn_fn,
                                      max_windows_per_batch=self.max_windows_per_batch, extra_k=extra_k,
                                      extra_v=extra_v)

    def __call__(self, func, *args, **kwargs):
        t_opts = kwargs.get("transformer_options") or {}
        layout = self._layout(t_opts)
        if layout is None or len(args) < 3 or self.base >= layout[0]:
            return _call_attention(func, self.previous, args, kwargs)
        if layout[3] is not None:
            return self._joint(func, layout, args, kwargs)
        q, k, v = args[:3]
        frames, hh, ww = layout[:3]
        if (kwargs.get("skip_reshape") or kwargs.get("mask") is not None or q.ndim != 3
                or k.shape[:2] != q.shape[:2] or v.shape[:2] != q.shape[:2] or q.shape[1] != frames * hh * ww
                or (len(args) > 4 and args[4] is not None)):
            return _call_attention(func, self.previous, args, kwargs)
        heads = args[3] if len(args) > 3 else kwargs.get("heads")
        rest = args[3:]

        def attn_fn(q_, k_, v_, _heads):
            return _call_attention(func, self.previous, (q_, k_, v_, *rest), kwargs)

        return self._branches(q, k, v, heads, frames, hh * ww, attn_fn)

    def _joint(self, func, layout, args, kwargs):
        """Joint video + text attention (HunyuanVideo): ``[B, heads, L, d]`` with ``skip_reshape``, video tokens
        on ``side`` of the text tokens, an optional additive key mask ``[..., L]`` that must leave the video
        tokens unmasked. Returns ``[B, L, heads*d]`` as the host kernel does."""
        frames, hh, ww, side = layout
        q, k, v = args[:3]
        mask = kwargs.get("mask")
        n_vid = frames * hh * ww
        if (not kwargs.get("skip_reshape") or kwargs.get("skip_output_reshape") or q.ndim != 4
                or k.shape != q.shape or v.shape != q.shape or q.shape[2] <= n_vid or len(args) > 4):
            return _call_attention(func, self.previous, args, kwargs)
        b, heads, length, dh = q.shape
        vid = slice(0, n_vid) if side == "after" else slice(length - n_vid, length)
        txt = slice(n_vid, length) if side == "after" else slice(0, length - n_vid)
        mask_txt = None
        if mask is not None:
            if mask.numel() != length or mask.shape[-1] != length or bool(mask[..., vid].ne(0).any()):
                return _call_attention(func, self.previous, args, kwargs)
            mask_txt = mask[..., txt]

        def flat(t):  # [B, heads, n, d] -> [B, n, heads*d]
            return t.transpose(1, 2).reshape(b, t.shape[2], heads * dh)

        def attn_fn(q_, k_, v_, _heads):
            unflat = [t.reshape(t.shape[0], t.shape[1], heads, dh).transpose(1, 2) for t in (q_, k_, v_)]
            kw = dict(kwargs)
            if mask_txt is not None:  # video keys first, then the text keys (the algorithm's order)
                pad = mask_txt.new_zeros((*mask_txt.shape[:-1], k_.shape[1] - mask_txt.shape[-1]))
                kw["mask"] = torch.cat([pad, mask_txt], -1)
            return _call_attention(func, self.previous, tuple(unflat) + (heads,), kw)

        out_vid = self._branches(flat(q[:, :, vid]), flat(k[:, :, vid]), flat(v[:, :, vid]), heads, frames,
                                 hh * ww, attn_fn, extra_k=flat(k[:, :, txt]), extra_v=flat(v[:, :, txt]))
        out_txt = _call_attention(func, self.previous, (q[:, :, txt], k, v, heads), kwargs)
        parts = (out_vid, out_txt.to(out_vid.dtype)) if side == "after" else (out_txt.to(out_vid.dtype), out_vid)
        return torch.cat(parts, 1)


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


def patch_attention_expansion(model, base: int, stride: int, max_windows_per_batch: int | None = None,
                              blend: str = "off", cutoff: float = 1.0):
    """Clone ``model`` with ZoLA attention expansion in every self-attention of its video transformer (Wan,
    LTX-Video, HunyuanVideo; with ``blend`` "freelong" / "freelong++": spectrally blended with attention over all
    frames of the call).

    An override already on the model (another pack's, or core's ``set_model_optimized_attention``) is chained:
    it is called instead of the bare kernel, for pass-through calls and for each window. A previous LongAnim
    expansion is replaced, not stacked.
    """
    family = video_dit_family(model) or "wan"
    m = model.clone()
    to = m.model_options.setdefault("transformer_options", {})
    previous = to.get(OVERRIDE_KEY)
    while isinstance(previous, ExpansionOverride):
        previous = previous.previous
    to[OVERRIDE_KEY] = ExpansionOverride(base, stride, max_windows_per_batch, previous, blend, cutoff)
    recorder = GridRecorder() if family == "wan" else dit.grid_recorder(family)
    set_wrapper(m, comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, WRAPPER_EXPANSION_GRID, recorder)
    return m
