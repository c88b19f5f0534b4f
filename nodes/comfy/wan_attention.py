"""ZoLA attention expansion (Eqs. 3-4) on Wan video DiTs: windows of frames inside one self-attention.

Owns :class:`ExpansionOverride`, the ``optimized_attention_override`` that runs Wan's self-attention as overlapping
windows of frames (``nodes/algorithms/attention.py: expanded_attention``), optionally blended by temporal frequency
band with attention over all frames of the call (FreeLong / FreeLong++, ``nodes/algorithms/spectral_attention.py``),
:class:`GridRecorder`, which tells it
the token grid (T', H', W') of the call, and :func:`patch_attention_expansion`, which installs both on a MODEL clone
and chains an override already there.

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
from .basics import set_wrapper

WRAPPER_EXPANSION_GRID = "LongAnim.attention_expansion"
GRID_KEY = "LongAnim.attention_grid"
OVERRIDE_KEY = "optimized_attention_override"


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

        if self.blend != "off":
            return spa.spectral_attention(q, k, v, heads, frames, hh * ww, self.base, self.stride, self.blend,
                                          self.cutoff, attn_fn=attn_fn,
                                          max_windows_per_batch=self.max_windows_per_batch)
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


def patch_attention_expansion(model, base: int, stride: int, max_windows_per_batch: int | None = None,
                              blend: str = "off", cutoff: float = 1.0):
    """Clone ``model`` with ZoLA attention expansion in every self-attention of its Wan transformer (with
    ``blend`` "freelong" / "freelong++": spectrally blended with attention over all frames of the call).

    An override already on the model (another pack's, or core's ``set_model_optimized_attention``) is chained:
    it is called instead of the bare kernel, for pass-through calls and for each window. A previous LongAnim
    expansion is replaced, not stacked.
    """
    m = model.clone()
    to = m.model_options.setdefault("transformer_options", {})
    previous = to.get(OVERRIDE_KEY)
    while isinstance(previous, ExpansionOverride):
        previous = previous.previous
    to[OVERRIDE_KEY] = ExpansionOverride(base, stride, max_windows_per_batch, previous, blend, cutoff)
    set_wrapper(m, comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, WRAPPER_EXPANSION_GRID, GridRecorder())
    return m

