"""Spectral blending of attention over temporal frequency bands (FreeLong, FreeLong++).

Papers and sections implemented here:

* FreeLong (arXiv 2407.19918), section 3.3 "SpectralBlend Temporal Attention": two attention branches over the
  same frames, a global one (every frame attends to every frame) and a local one (attention inside windows of the
  model's trained length). The global branch keeps what the whole video is (low temporal frequencies); the local
  one keeps the detail and motion a short-video model produces (high frequencies). They are fused in the
  frequency domain:  x = IFFT( P_low * FFT(x_global) + (1 - P_low) * FFT(x_local) )   (FreeLong Eqs. 5-7).
* FreeLong++ (arXiv 2507.00162), "Multi-band SpectralFusion": K+1 branches with windows W_0 < W_1 < ... <
  W_K = the whole video; branch k supplies the band of frequencies its window resolves and the next shorter window
  does not:  x = IFFT( sum_k B_k * FFT(x_k) )  with band masks B_k that partition unity.
  -> :func:`band_windows`, :func:`band_masks`, :func:`spectral_fuse`, :func:`spectral_attention`.

Choices the papers leave open (or where this module departs from them):

* Axis. FreeLong filters with a 3-D FFT (time, height, width); here the FFT runs along the FRAME axis only, so
  every spatial frequency of a frame's static content comes from the global branch, and only how it moves in
  time is split. The branches differ only in which frames a token attends to, i.e. in time; splitting space as
  well would take static fine detail from the local branch without a reason in how the branches differ.
* Cutoffs. A window of W frames sees periods up to W frames, so it is trusted for temporal frequencies
  nu >= c / W cycles per frame (``cutoff`` c, default 1). Band k holds c/W_k <= nu < c/W_{k-1}; the shortest
  window gets everything above c/W_0, the global branch everything below c/W_{K-1}. On T frames the rfft bin m
  has nu = m / T, so band edges are bins ceil(c * T / W). Masks are ideal (0/1): they partition unity exactly.
* Exactness. The fuse is evaluated as a telescoping sum,
      x = x_0 + IFFT( sum_{k=1..K} L_k * FFT(x_k - x_{k-1}) ),   L_k = B_k + ... + B_K (a nested low-pass),
  which equals  IFFT(sum_k B_k FFT(x_k))  in exact arithmetic and returns the branches bit-exactly when they
  agree (their differences are exactly 0). Nothing of size frames x frames is built: the FFT is O(T log T) per
  token and channel, and the attention branches run through the caller's kernel (``attn_fn``).

Nothing here imports ComfyUI; everything is pure torch and deterministic.
"""
from __future__ import annotations

import math

import torch

from . import attention as att

__all__ = ["BLEND_MODES", "validate_blend", "band_windows", "band_edges", "band_masks", "lowpass_mask",
           "spectral_fuse", "spectral_attention"]

BLEND_MODES = ("off", "freelong", "freelong++")
"""``off``: no global branch; ``freelong``: two bands (windows of ``base`` + the whole video, FreeLong);
``freelong++``: windows base, 2 base, 4 base, ... shorter than the video, + the whole video (FreeLong++)."""


def validate_blend(mode: str, cutoff: float = 1.0) -> None:
    """Check the blend ``mode`` (one of :data:`BLEND_MODES`) and the band ``cutoff`` scale (> 0, finite)."""
    if mode not in BLEND_MODES:
        raise ValueError(f"global blend must be one of {list(BLEND_MODES)}, got {mode!r}")
    if isinstance(cutoff, bool) or not isinstance(cutoff, int | float) or not math.isfinite(cutoff) or cutoff <= 0:
        raise ValueError(f"spectral cutoff must be a finite number > 0 (1 = a window of W frames supplies "
                         f"frequencies from 1/W cycles per frame up), got {cutoff!r}")


def band_windows(num_frames: int, base: int, mode: str) -> list[int]:
    """Window lengths of the local branches, shortest first; the global branch (all frames) is implicit.

    ``freelong``: ``[base]``. ``freelong++``: ``base * 2**i`` for every i with a window shorter than the video.
    ``off``, or a video not longer than ``base``: ``[]`` (the global branch alone is plain attention).
    """
    validate_blend(mode)
    if mode == "off" or base >= num_frames:
        return []
    if mode == "freelong":
        return [base]
    out, w = [], base
    while w < num_frames:
        out.append(w)
        w *= 2
    return out


def band_edges(num_frames: int, windows: list[int], cutoff: float = 1.0) -> list[int]:
    """rfft bin where each window's band starts: ``ceil(cutoff * T / W)`` clamped to [1, T // 2 + 1].

    Bins >= edge[0] belong to the shortest window, [edge[k], edge[k-1]) to window k, [0, edge[-1]) to the global
    branch (so the DC bin, the frames' mean, always comes from the global branch). Non-increasing by construction.
    """
    validate_blend("off", cutoff)
    nbins = num_frames // 2 + 1
    return [min(nbins, max(1, math.ceil(cutoff * num_frames / w - 1e-9))) for w in windows]


def lowpass_mask(num_frames: int, edge: int, dtype: torch.dtype = torch.float32,
                 device: torch.device | str | None = None) -> torch.Tensor:
    """Ideal temporal low-pass over rfft bins: 1 for bins ``m < edge``, else 0; shape ``[T // 2 + 1]``."""
    m = torch.arange(num_frames // 2 + 1, device=device)
    return (m < edge).to(dtype)


def band_masks(num_frames: int, windows: list[int], cutoff: float = 1.0) -> torch.Tensor:
    """Band masks B_k of FreeLong++ over rfft bins, ``[len(windows) + 1, T // 2 + 1]``, rows shortest window
    first and the global branch last. Each bin is 1 in exactly one row: the masks partition unity."""
    edges = band_edges(num_frames, windows, cutoff)
    nbins = num_frames // 2 + 1
    lows = [torch.ones(nbins)] + [lowpass_mask(num_frames, e) for e in edges] + [torch.zeros(nbins)]
    return torch.stack([lows[k] - lows[k + 1] for k in range(len(windows) + 1)])


def spectral_fuse(branches: list[torch.Tensor], edges: list[int], frame_dim: int = 1) -> torch.Tensor:
    """Fuse branch outputs by temporal frequency band (FreeLong Eq. 7, FreeLong++ multi-band fusion).

    ``branches``: K+1 tensors of one shape, shortest window first, the global branch last; ``edges``: K band
    edges (:func:`band_edges`). Returns x_0 + IFFT(sum_k L_k FFT(x_k - x_{k-1})) along ``frame_dim`` with
    L_k = bins below ``edges[k-1]``, which is IFFT(sum_k B_k FFT(x_k)). Computed in float32 at least (the FFT of
    half tensors is not portable), returned in the branches' dtype. Equal branches come back bit-exactly.
    """
    if len(branches) != len(edges) + 1:
        raise ValueError(f"spectral fuse needs one more branch than band edges, got {len(branches)} branches "
                         f"and {len(edges)} edges")
    x0 = branches[0]
    if not edges:
        return x0
    dim = frame_dim % x0.ndim
    t = x0.shape[dim]
    work = torch.promote_types(x0.dtype, torch.float32)
    shape = [1] * x0.ndim
    shape[dim] = t // 2 + 1
    spec = None
    for k in range(1, len(branches)):
        diff = branches[k].to(work) - branches[k - 1].to(work)
        f = torch.fft.rfft(diff, dim=dim) * lowpass_mask(t, edges[k - 1], work, x0.device).view(shape)
        spec = f if spec is None else spec.add_(f)
        del diff, f
    return (x0.to(work) + torch.fft.irfft(spec, n=t, dim=dim)).to(x0.dtype)


def spectral_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    heads: int,
    num_frames: int,
    tokens_per_frame: int,
    base: int,
    stride: int | None = None,
    mode: str = "freelong",
    cutoff: float = 1.0,
    attn_fn: att.AttnFn | None = None,
    max_windows_per_batch: int | None = None,
    extra_k: torch.Tensor | None = None,
    extra_v: torch.Tensor | None = None,
) -> torch.Tensor:
    """Self-attention whose temporal frequency bands come from attention windows of several lengths.

    ``q``, ``k``, ``v``: ``[B, L, heads*d]`` with L = num_frames * tokens_per_frame, frame-major (as
    :func:`attention.expanded_attention`). Branch 0 is ZoLA's attention expansion with windows of ``base`` at
    ``stride`` (section 4.3, Eqs. 3-4); FreeLong++ adds expansions with windows 2 base, 4 base, ... at
    proportional strides; the last branch is plain attention over all frames (one ``attn_fn`` call: the host's
    kernel, so no [L, L] matrix is built here). The outputs are fused by :func:`spectral_fuse` along the frame
    axis. ``mode`` "off" or ``base >= num_frames`` is exactly :func:`attention.expanded_attention`.

    ``extra_k``, ``extra_v``: keys/values outside the frame grid that every video query attends to in every branch
    (text tokens of a joint image+text attention); see :func:`attention.expanded_attention`. ``tokens_per_frame``
    1 is pure temporal attention (AnimateDiff's motion module: one sequence of frames per spatial position).

    Memory: the branches are computed one after the other; at most two branch outputs, one difference and one
    spectrum (all O(B * L * C)) are alive at once, plus what ``attn_fn`` needs for one call.
    """
    validate_blend(mode, cutoff)
    base, stride = att.validate_expansion(base, stride)
    attn = att.attention if attn_fn is None else attn_fn
    windows = band_windows(num_frames, base, mode)
    xkv = {"extra_k": extra_k, "extra_v": extra_v}
    local = att.expanded_attention(q, k, v, heads, num_frames, tokens_per_frame, base, stride, attn_fn=attn,
                                   max_windows_per_batch=max_windows_per_batch, **xkv)
    if not windows:
        return local
    edges = band_edges(num_frames, windows, cutoff)
    b, length, _ = q.shape
    work = torch.promote_types(q.dtype, torch.float32)
    shape = (b, num_frames, tokens_per_frame, -1)
    spec = None
    prev = local
    for i in range(1, len(windows) + 1):
        if i < len(windows):
            w = windows[i]
            cur = att.expanded_attention(q, k, v, heads, num_frames, tokens_per_frame, w,
                                         max(1, stride * w // base), attn_fn=attn,
                                         max_windows_per_batch=max_windows_per_batch, **xkv)
        elif extra_k is not None:
            cur = attn(q, torch.cat([k, extra_k], 1), torch.cat([v, extra_v], 1), heads)
        else:
            cur = attn(q, k, v, heads)
        diff = (cur.to(work) - prev.to(work)).view(shape)
        f = torch.fft.rfft(diff, dim=1) * lowpass_mask(num_frames, edges[i - 1], work, q.device).view(1, -1, 1, 1)
        spec = f if spec is None else spec.add_(f)
        del diff, f
        if prev is not local:
            del prev
        prev = cur
    del prev
    out = local.to(work).view(shape) + torch.fft.irfft(spec, n=num_frames, dim=1)
    return out.reshape(b, length, -1).to(q.dtype)
