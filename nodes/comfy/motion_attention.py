"""ZoLA attention expansion and the FreeLong / FreeLong++ global blend inside AnimateDiff's temporal attention.

Owns :class:`TemporalExpansion`, the attention function put in place of the motion module's own kernel for one model
call: the temporal self-attention of each spatial position over the frames of the call (one sequence of
frames per row, ``tokens_per_frame`` 1) runs as windows of ``base`` frames merged with ZoLA's weights
(``nodes/algorithms/attention.py: expanded_attention``), optionally blended by temporal frequency band with
attention over all frames of the call (``nodes/algorithms/spectral_attention.py``). Every branch calls the motion
module's own kernel. :class:`MotionAttentionWrapper` installs it for each model call and restores the kernel after
(also when the call fails or is cancelled); :func:`patch_motion_attention` puts the wrapper on a MODEL clone.

AnimateDiff-Evolved (ADE) is never imported; the objects are duck-typed as ADE 1.5.7 leaves them
(``tests/comfy/ade_standin.py`` mirrors the contract): the per-run state ``transformer_options["ADGS"]`` holds
``motion_models.models`` (and ``motion_models_devices[device].models`` for multi-GPU clones), motion-model patchers
whose ``model`` is the motion module tree. Its temporal
self-attention modules (``VersatileAttention``: ``attention_mode == "Temporal"``, not ``is_cross_attention``) call
``self.actual_attention(q, k, v, self.heads, mask)`` with ``q`` ``[(b·h·w), frames, C]`` after adding their
positional encoding ``pe[:frames]``; ADE resets ``actual_attention`` itself only when it cleans up after a run. The
number of frames one call holds is ADE's ``video_length``: the whole video without context windows (at most the
motion module's encoding length, 24 or 32), one context window inside LongAnim's window loop.

Core hooks used: an ``APPLY_MODEL`` wrapper (``comfy.patcher_extension.WrappersMP``), order
``(x, t, c_concat, c_crossattn, control, transformer_options)``. Wrapper key ``LongAnim.motion_attention``.
"""
from __future__ import annotations

import comfy.patcher_extension
import torch

from ..algorithms import attention as att
from ..algorithms import spectral_attention as spa
from .basics import set_wrapper

WRAPPER_KEY = "LongAnim.motion_attention"
ADE_STATE = "ADGS"  # AnimateDiff-Evolved's per-run state in transformer_options (see animatediff.py)


def temporal_attention_modules(transformer_options: dict, device=None) -> list:
    """ADE's temporal self-attention modules of the motion models active in this run (empty without ADE): those of
    ``device`` when ADE keeps one motion-model group per device (multi-GPU), else the run's group."""
    state = (transformer_options or {}).get(ADE_STATE)
    group = getattr(state, "motion_models", None)
    per_device = getattr(state, "motion_models_devices", None)
    if isinstance(per_device, dict) and device is not None and per_device.get(device) is not None:
        group = per_device[device]
    models = getattr(group, "models", None) or []
    found = []
    for patcher in models:
        tree = getattr(patcher, "model", None)
        if not isinstance(tree, torch.nn.Module):
            continue
        for mod in tree.modules():
            if getattr(mod, "attention_mode", None) == "Temporal" and not getattr(mod, "is_cross_attention", True) \
                    and callable(getattr(mod, "actual_attention", None)):
                found.append(mod)
    return found


class TemporalExpansion:
    """Stands in for a temporal attention module's ``actual_attention(q, k, v, heads, mask)`` for one call.

    ``q``, ``k``, ``v`` ``[rows, frames, heads*d]``: every row is one spatial position's sequence of frames. Frames
    not more than ``base``, a mask, or anything else unexpected go to ``kernel`` unchanged (bit-exact)."""

    def __init__(self, kernel, base: int, stride: int, max_windows_per_batch: int | None, blend: str, cutoff: float):
        self.kernel = kernel
        self.base, self.stride = base, stride
        self.max_windows_per_batch = max_windows_per_batch
        self.blend, self.cutoff = blend, cutoff

    def __call__(self, q, k, v, heads, mask=None, *args, **kwargs):
        if (mask is not None or args or kwargs or q.ndim != 3 or k.shape != q.shape or v.shape != q.shape
                or q.shape[1] <= self.base):
            return self.kernel(q, k, v, heads, mask, *args, **kwargs)
        frames = q.shape[1]

        def attn_fn(q_, k_, v_, h):
            return self.kernel(q_, k_, v_, h, None)

        return spa.spectral_attention(q, k, v, heads, frames, 1, self.base, self.stride, self.blend, self.cutoff,
                                      attn_fn=attn_fn, max_windows_per_batch=self.max_windows_per_batch)


class MotionAttentionWrapper:
    """``APPLY_MODEL`` wrapper: for the duration of one model call, every ADE temporal self-attention module of the
    run computes its attention with :class:`TemporalExpansion` around its own kernel; restored in ``finally``."""

    def __init__(self, node: str, base: int, stride: int, max_windows_per_batch: int | None = None,
                 blend: str = "off", cutoff: float = 1.0):
        spa.validate_blend(blend, cutoff)
        self.node = node
        self.base, self.stride = att.validate_expansion(base, stride)
        self.max_windows_per_batch = max_windows_per_batch
        self.blend, self.cutoff = blend, float(cutoff)

    def __deepcopy__(self, memo):
        return self

    def __call__(self, executor, x, t, c_concat=None, c_crossattn=None, control=None, transformer_options=None,
                 **kwargs):
        mods = temporal_attention_modules(transformer_options, getattr(x, "device", None))
        if not mods:
            raise ValueError(f"{self.node}: the MODEL has no AnimateDiff motion model with temporal attention in "
                             "this run; apply AnimateDiff-Evolved's motion model (e.g. 'Apply AnimateDiff Model' + "
                             "'Use Evolved Sampling') to the same MODEL, or remove this node")
        saved = [(m, m.actual_attention) for m in mods]
        try:
            for m, kernel in saved:
                while isinstance(kernel, TemporalExpansion):  # a failed run never restored: use the real kernel
                    kernel = kernel.kernel
                m.actual_attention = TemporalExpansion(kernel, self.base, self.stride, self.max_windows_per_batch,
                                                       self.blend, self.cutoff)
            return executor(x, t, c_concat, c_crossattn, control, transformer_options, **kwargs)
        finally:
            for m, kernel in saved:
                m.actual_attention = kernel


def patch_motion_attention(model, node: str, base: int, stride: int, max_windows_per_batch: int | None = None,
                           blend: str = "off", cutoff: float = 1.0):
    """Clone ``model`` (SD1.5/SDXL UNet + an AnimateDiff-Evolved motion model, applied before or after) with ZoLA
    attention expansion, optionally FreeLong-blended, in the motion module's temporal attention."""
    m = model.clone()
    set_wrapper(m, comfy.patcher_extension.WrappersMP.APPLY_MODEL, WRAPPER_KEY,
                MotionAttentionWrapper(node, base, stride, max_windows_per_batch, blend, cutoff))
    return m
