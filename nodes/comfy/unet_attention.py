"""Frame attention on UNet models (frames in the batch): ZS² temporal momentum and Gen-L-Video cross-frame attention.

Owns :class:`FrameAttentionPatch`, the ``attn1_patch`` that replaces the self-attention K/V *source* of every frame
(``nodes/algorithms/attention.py``: ZS² Eq. 2 momentum scan, Gen-L cross-frame modes), and
:func:`patch_frame_attention`, which installs it on a MODEL clone without stacking and keeps other packs' patches.

Core hooks used: ``transformer_options["patches"]["attn1_patch"]`` (what ``ModelPatcher.set_model_attn1_patch``
fills). UNet ``BasicTransformerBlock.forward`` calls each patch as ``p(n, context_attn1, value_attn1, extra_options)``
with the post-norm hidden states ``n`` ``[B, N, C]`` before ``to_q/to_k/to_v`` and takes ``(n, context, value)``
back; only the K/V sources change, so the host's attention backend (sdpa, xformers, split, sage...) keeps running.
``to_k``/``to_v`` have no bias, so a per-frame combination of hidden states is the same combination of K and V (ZS²
Eq. 2 exactly). ``extra_options`` keys read: ``original_shape``, ``block``, ``sigmas``, ``cond_or_uncond``, and the
window of the call (``ad_params`` from LongAnim or AnimateDiff-Evolved, ``context_window`` from core).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ..algorithms import attention as att

BLOCK_CHOICES: dict[str, tuple[str, ...]] = {
    "all": ("input", "middle", "output"),
    "input": ("input",),
    "middle": ("middle",),
    "output": ("output",),
    "input+middle": ("input", "middle"),
    "middle+output": ("middle", "output"),
    "input+output": ("input", "output"),
}


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

