"""Temporal-consistency metrics for long videos.

Paper: StreamingT2V (Henschel et al.), section 5.1 (metrics: SCuts, MAWE) and appendix 12 (MAWE
definition, Eqs. 13/14). SCuts counts scene cuts found by PySceneDetect's ``AdaptiveDetector`` with
default parameters; MAWE = W(V) / OFS(V) with W the mean warp error of Lai et al. (their [19]) and OFS
the mean squared optical-flow magnitude. The paper uses a learned flow network; this module is pure
torch and uses a classical pyramidal Lucas-Kanade flow instead (see :func:`optical_flow`).

Length: about 780 lines, above the pack's 600-line guide, because the optical flow, warping and occlusion mask are
used only by MAWE here and are validated together with it; a split into metric vs flow modules is the next step
once a second user of the flow appears.

Extra diagnostics for the window-based samplers of the pack (ZoLA, Gen-L-Video, StreamingT2V):
adjacent-frame change profiles (:func:`frame_jumps`), seam visibility at window borders
(:func:`seam_ratio`, :func:`window_borders`), long-range drift, lag correlation (repetition) and a plain
torch bar plot of the change profile (:func:`render_metrics_plot`).

Layouts. ``IMAGE`` means a ComfyUI image batch ``[T, H, W, C]`` (``C = 3`` RGB, values in [0, 1]).
Functions that take ``frame_axis`` also accept latents: ``frame_axis=0`` for ``[T, C, H, W]`` and
``frame_axis=2`` for ``[B, C, T, H, W]``. Flow fields are channel-last ``[N, H, W, 2]`` holding
``(dx, dy)`` in pixels. Nothing here is random.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

logger = logging.getLogger(__name__)

_CHUNK = 32  # frames per block in the streaming reductions

__all__ = [
    "content_scores",
    "frame_jumps",
    "lag_correlation",
    "long_range_drift",
    "mawe",
    "occlusion_mask",
    "optical_flow",
    "render_metrics_plot",
    "rgb_to_gray",
    "rgb_to_hsv",
    "scene_cuts",
    "seam_ratio",
    "to_image_layout",
    "validate_borders",
    "validate_scene_cut_params",
    "warp",
    "warp_error_and_flow_score",
    "window_borders",
]

# --------------------------------------------------------------------------------------------------
# validation helpers (cheap, callable by node glue before any work starts)
# --------------------------------------------------------------------------------------------------


def _frames_first(video: torch.Tensor, frame_axis: int) -> torch.Tensor:
    """Move ``frame_axis`` to the front; validates the axis."""
    if not isinstance(video, torch.Tensor):
        raise ValueError(f"video must be a torch.Tensor, got {type(video).__name__}")
    if not -video.ndim <= frame_axis < video.ndim:
        raise ValueError(
            f"frame_axis must be in [{-video.ndim}, {video.ndim - 1}] for a {video.ndim}-D tensor, "
            f"got {frame_axis}; use 0 for [T, C, H, W] / [T, H, W, C] and 2 for [B, C, T, H, W]"
        )
    return torch.movedim(video, frame_axis, 0)


def _check_image(video: torch.Tensor, name: str = "video", min_frames: int = 2) -> None:
    if not isinstance(video, torch.Tensor) or video.ndim != 4:
        shape = tuple(video.shape) if isinstance(video, torch.Tensor) else type(video).__name__
        raise ValueError(
            f"{name} must be an IMAGE batch [T, H, W, C], got {shape}; convert latents with "
            "to_image_layout(latent, frame_axis)"
        )
    if video.shape[0] < min_frames:
        raise ValueError(f"{name} must have at least {min_frames} frames, got {video.shape[0]}")


def validate_borders(borders: Sequence[int], num_transitions: int) -> list[int]:
    """Check window-border frame indices against a change profile of ``num_transitions`` entries.

    A border ``b`` denotes the transition between frame ``b - 1`` and frame ``b`` (the first frame of
    a new window), i.e. entry ``b - 1`` of :func:`frame_jumps`. Valid borders are ``1 .. T - 1`` with
    ``T = num_transitions + 1``. Returns the sorted, de-duplicated list.
    """
    out = sorted({int(b) for b in borders})
    bad = [b for b in out if not 1 <= b <= num_transitions]
    if bad:
        raise ValueError(
            f"borders must be frame indices in [1, {num_transitions}] (border b = transition between "
            f"frame b-1 and b), got {bad}; drop borders at the video ends (0 and T)"
        )
    return out


def validate_scene_cut_params(
    threshold: float, min_content_val: float, window_width: int, min_scene_len: int
) -> None:
    """Validate :func:`scene_cuts` parameters (raises ``ValueError`` naming the parameter)."""
    if not (isinstance(threshold, (int, float)) and threshold > 0 and math.isfinite(threshold)):
        raise ValueError(f"threshold must be a finite number > 0 (default 3.0), got {threshold}")
    if not (isinstance(min_content_val, (int, float)) and 0 <= min_content_val <= 255):
        raise ValueError(f"min_content_val must be in [0, 255] (default 15.0), got {min_content_val}")
    if not (isinstance(window_width, int) and window_width >= 1):
        raise ValueError(f"window_width must be an integer >= 1 (default 2), got {window_width}")
    if not (isinstance(min_scene_len, int) and min_scene_len >= 0):
        raise ValueError(f"min_scene_len must be an integer >= 0 (default 15), got {min_scene_len}")


# --------------------------------------------------------------------------------------------------
# adjacent-frame change profile and seams
# --------------------------------------------------------------------------------------------------


def frame_jumps(video: torch.Tensor, frame_axis: int = 0) -> torch.Tensor:
    """Mean absolute change between adjacent frames.

    ``jumps[i] = mean |x_{i+1} - x_i|`` over every non-frame axis (channels, pixels, batch). Not a paper
    equation: a cheap seam diagnostic for window-based samplers (StreamingT2V section 4.3 motivates
    it: chunk borders show up as jumps in the adjacent-frame change).

    Args:
        video: IMAGE ``[T, H, W, C]`` or latent; ``frame_axis`` selects the time axis.
        frame_axis: 0 for ``[T, ...]``, 2 for ``[B, C, T, H, W]``.
    Returns:
        float32 tensor ``[T - 1]``; entry ``i`` is the transition from frame ``i`` to ``i + 1``.
    """
    x = _frames_first(video, frame_axis)
    if x.shape[0] < 2:
        raise ValueError(f"video must have at least 2 frames along frame_axis, got {x.shape[0]}")
    x = x.reshape(x.shape[0], -1)
    out = []
    for start in range(0, x.shape[0] - 1, _CHUNK):  # bounded temporaries for long videos
        blk = x[start : start + _CHUNK + 1].float()
        out.append((blk[1:] - blk[:-1]).abs().mean(dim=1))
    return torch.cat(out)


def window_borders(windows: Sequence[Sequence[int]], num_frames: int | None = None) -> list[int]:
    """Frame indices where a window starts or ends, for marking seams.

    A window given as a list of frame indices starts at ``min(w)`` and ends after ``max(w)``; both
    ``min(w)`` and ``max(w) + 1`` are borders in the :func:`seam_ratio` sense (border ``b`` = the
    transition between frames ``b - 1`` and ``b``). For frame-skipping windows (ZoLA, r > 1) only the
    outer extent counts. The video ends (0 and ``num_frames``) are not transitions and are dropped.

    Args:
        windows: list of index lists (as produced by the window schedulers).
        num_frames: video length T; default ``max index + 1``.
    Returns:
        sorted unique borders in ``[1, T - 1]``.
    """
    nonempty = [list(map(int, w)) for w in windows if len(w) > 0]
    if not nonempty:
        return []
    total = max(max(w) for w in nonempty) + 1 if num_frames is None else int(num_frames)
    if total < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    edges = {min(w) for w in nonempty} | {max(w) + 1 for w in nonempty}
    return sorted(b for b in edges if 0 < b < total)


def seam_ratio(jumps: torch.Tensor, borders: Sequence[int]) -> float:
    """Mean adjacent-frame change at window borders divided by the mean change elsewhere.

    ``border b`` is the transition between frame ``b - 1`` and frame ``b`` (``jumps[b - 1]``). 1.0 means
    the borders are invisible; >> 1 means visible seams. Not a paper equation (a direct measure of
    the chunk inconsistency StreamingT2V section 4.3 and Fig. 12 talk about).

    Edge cases (chosen so the value is always defined): no borders -> 1.0; zero change elsewhere ->
    ``inf`` if the borders change, else 1.0.

    Args:
        jumps: ``[T - 1]`` from :func:`frame_jumps`.
        borders: frame indices in ``[1, T - 1]`` (see :func:`window_borders`).
    """
    jumps = jumps.detach().reshape(-1).double().cpu()
    valid = validate_borders(borders, jumps.numel())
    if not valid:
        return 1.0
    mask = torch.zeros(jumps.numel(), dtype=torch.bool)
    mask[torch.tensor(valid) - 1] = True
    at = jumps[mask].mean()
    if bool(mask.all()):
        logger.warning("seam_ratio: every transition is a border; returning 1.0")
        return 1.0
    elsewhere = jumps[~mask].mean()
    if float(elsewhere) <= 0.0:
        return math.inf if float(at) > 0.0 else 1.0
    return float(at / elsewhere)


# --------------------------------------------------------------------------------------------------
# colour helpers and layout conversion
# --------------------------------------------------------------------------------------------------


def to_image_layout(latent: torch.Tensor, frame_axis: int, batch_index: int = 0) -> torch.Tensor:
    """Turn a latent into a channel-last frame stack ``[T, H, W, C]`` for the image-based metrics.

    ``[T, C, H, W]`` (``frame_axis=0``) is permuted; ``[B, C, T, H, W]`` (``frame_axis=2``) takes batch
    element ``batch_index``. Values are not rescaled: MAWE on latents is in latent units.
    """
    if latent.ndim == 4 and frame_axis == 0:
        return latent.permute(0, 2, 3, 1)
    if latent.ndim == 5 and frame_axis == 2:
        if not 0 <= batch_index < latent.shape[0]:
            raise ValueError(f"batch_index must be in [0, {latent.shape[0] - 1}], got {batch_index}")
        return latent[batch_index].permute(1, 2, 3, 0)
    raise ValueError(
        f"frame_axis={frame_axis} with a {latent.ndim}-D latent is not supported; use frame_axis=0 for "
        "[T, C, H, W] or frame_axis=2 for [B, C, T, H, W]"
    )


def rgb_to_gray(frames: torch.Tensor) -> torch.Tensor:
    """``[N, H, W, C]`` -> ``[N, 1, H, W]`` float32. RGB uses Rec.601 luma (0.299, 0.587, 0.114) as
    OpenCV does; any other channel count is averaged."""
    x = frames.float()
    if x.shape[-1] == 3:
        w = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype, device=x.device)
        g = (x * w).sum(-1)
    else:
        g = x.mean(-1)
    return g.unsqueeze(1)


def rgb_to_hsv(frames: torch.Tensor) -> torch.Tensor:
    """RGB in [0, 1] ``[..., 3]`` -> HSV in OpenCV's 8-bit scale ``[..., 3]``: H in [0, 180), S and V in
    [0, 255] (what PySceneDetect's content detector compares). No uint8 rounding (float result)."""
    x = frames.float().clamp(0.0, 1.0)
    r, g, b = x.unbind(-1)
    vmax, _ = x.max(-1)
    vmin, _ = x.min(-1)
    delta = vmax - vmin
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    hue = torch.where(
        vmax == r,
        60.0 * (g - b) / safe,
        torch.where(vmax == g, 120.0 + 60.0 * (b - r) / safe, 240.0 + 60.0 * (r - g) / safe),
    )
    hue = torch.where(delta > 0, torch.remainder(hue, 360.0), torch.zeros_like(hue)) / 2.0
    sat = torch.where(vmax > 0, delta / torch.where(vmax > 0, vmax, torch.ones_like(vmax)), vmax) * 255.0
    return torch.stack([hue, sat, vmax * 255.0], dim=-1)


# --------------------------------------------------------------------------------------------------
# optical flow (classical, no weights)
# --------------------------------------------------------------------------------------------------


def _gaussian_blur(img: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``[N, C, H, W]`` with replicate padding."""
    if sigma <= 0:
        return img
    radius = max(1, int(math.ceil(3.0 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=img.dtype, device=img.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = img.shape[1]
    kx = k.view(1, 1, 1, -1).repeat(c, 1, 1, 1)
    ky = k.view(1, 1, -1, 1).repeat(c, 1, 1, 1)
    out = F.conv2d(F.pad(img, (radius, radius, 0, 0), mode="replicate"), kx, groups=c)
    return F.conv2d(F.pad(out, (0, 0, radius, radius), mode="replicate"), ky, groups=c)


def _gradients(img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Central differences of ``[N, 1, H, W]`` (replicate border)."""
    p = F.pad(img, (1, 1, 1, 1), mode="replicate")
    gx = 0.5 * (p[:, :, 1:-1, 2:] - p[:, :, 1:-1, :-2])
    gy = 0.5 * (p[:, :, 2:, 1:-1] - p[:, :, :-2, 1:-1])
    return gx, gy


def _warp_nchw(img: torch.Tensor, flow: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """Sample ``img [N, C, H, W]`` at ``x + flow(x)``; ``flow [N, 2, H, W]`` in pixels."""
    n, _, h, w = img.shape
    ys = torch.arange(h, dtype=flow.dtype, device=flow.device).view(1, h, 1)
    xs = torch.arange(w, dtype=flow.dtype, device=flow.device).view(1, 1, w)
    gx = (xs + flow[:, 0]) * (2.0 / max(w - 1, 1)) - 1.0
    gy = (ys + flow[:, 1]) * (2.0 / max(h - 1, 1)) - 1.0
    grid = torch.stack([gx, gy], dim=-1)
    return F.grid_sample(img, grid.to(img.dtype), mode=mode, padding_mode="border", align_corners=True)


def warp(frame: torch.Tensor, flow: torch.Tensor, mode: str = "bicubic") -> torch.Tensor:
    """Backward-warp ``frame`` by ``flow``: ``out(x) = frame(x + flow(x))`` via ``grid_sample``.

    ``mode`` is ``"bicubic"`` (default: half the interpolation error of bilinear on fine texture, which
    would otherwise count as warp error) or ``"bilinear"`` / ``"nearest"``.

    With ``flow = optical_flow(a, b)``, ``warp(b, flow)`` reconstructs ``a``. Samples outside the frame
    take the nearest border value (use :func:`occlusion_mask` to exclude them).

    Args:
        frame: ``[N, H, W, C]`` (IMAGE layout).
        flow: ``[N, H, W, 2]`` ``(dx, dy)`` in pixels.
    Returns:
        ``[N, H, W, C]`` in ``frame``'s dtype.
    """
    if frame.ndim != 4 or flow.ndim != 4 or flow.shape[-1] != 2 or flow.shape[:3] != frame.shape[:3]:
        raise ValueError(
            f"warp expects frame [N, H, W, C] and flow [N, H, W, 2] with matching N, H, W, got "
            f"{tuple(frame.shape)} and {tuple(flow.shape)}"
        )
    if mode not in ("bicubic", "bilinear", "nearest"):
        raise ValueError(f"mode must be 'bicubic', 'bilinear' or 'nearest', got {mode!r}")
    out = _warp_nchw(frame.permute(0, 3, 1, 2).float(), flow.permute(0, 3, 1, 2).float(), mode)
    return out.permute(0, 2, 3, 1).to(frame.dtype)


def _flow_gray(
    i0: torch.Tensor,
    i1: torch.Tensor,
    levels: int | None,
    iterations: int,
    window_sigma: float,
    regularization: float,
    interp: str = "bilinear",
) -> torch.Tensor:
    """Pyramidal dense Lucas-Kanade on grayscale ``[N, 1, H, W]``; returns ``[N, 2, H, W]``."""
    h, w = i0.shape[-2:]
    max_levels = 1
    while min(h, w) / (2**max_levels) >= 16 and max_levels < 6:
        max_levels += 1
    n_levels = max_levels if levels is None else max(1, min(int(levels), max_levels))
    pyr0, pyr1 = [i0], [i1]
    for _ in range(n_levels - 1):
        pyr0.append(F.avg_pool2d(_gaussian_blur(pyr0[-1], 1.0), 2, ceil_mode=True))
        pyr1.append(F.avg_pool2d(_gaussian_blur(pyr1[-1], 1.0), 2, ceil_mode=True))
    flow: torch.Tensor | None = None
    for a, b in zip(reversed(pyr0), reversed(pyr1), strict=True):
        lh, lw = a.shape[-2:]
        if flow is None:
            flow = a.new_zeros(a.shape[0], 2, lh, lw)
        else:
            scale = torch.tensor([lw / flow.shape[-1], lh / flow.shape[-2]], dtype=a.dtype, device=a.device)
            flow = F.interpolate(flow, size=(lh, lw), mode="bilinear", align_corners=False)
            flow = flow * scale.view(1, 2, 1, 1)
        for _ in range(iterations):
            # symmetric warping: both frames are resampled half-way, so the interpolation low-pass
            # hits both equally and cancels (one-sided warping biases sub-pixel flow by ~15 %).
            aw = _warp_nchw(a, -0.5 * flow, interp)
            bw = _warp_nchw(b, 0.5 * flow, interp)
            it = bw - aw
            gx, gy = _gradients(0.5 * (aw + bw))
            prods = torch.cat([gx * gx, gx * gy, gy * gy, -gx * it, -gy * it], dim=1)
            a11, a12, a22, b1, b2 = _gaussian_blur(prods, window_sigma).unbind(1)
            # Tikhonov term relative to the mean structure-tensor trace: textureless pixels get ~0 update.
            lam = regularization * (a11 + a22).mean(dim=(1, 2), keepdim=True) + 1e-12
            a11 = a11 + lam
            a22 = a22 + lam
            det = a11 * a22 - a12 * a12
            du = (a22 * b1 - a12 * b2) / det
            dv = (a11 * b2 - a12 * b1) / det
            step = torch.stack([du, dv], dim=1).clamp(-2.0, 2.0)  # per-level step limit for stability
            flow = flow + step
    assert flow is not None
    return flow


def optical_flow(
    src: torch.Tensor,
    dst: torch.Tensor,
    levels: int | None = None,
    iterations: int = 4,
    window_sigma: float = 2.0,
    regularization: float = 0.01,
) -> torch.Tensor:
    """Dense optical flow from ``src`` to ``dst`` by pyramidal (coarse-to-fine) Lucas-Kanade.

    Method: grayscale (Rec.601 luma); Gaussian pyramid (blur sigma 1, 2x average pooling) down to ~16 px;
    at every level ``iterations`` Gauss-Newton updates solving the 2x2 Lucas-Kanade normal equations
    per pixel with a Gaussian window (``window_sigma`` px), plus a Tikhonov term
    ``regularization * mean(trace)`` so flat regions stay near 0; each update is clamped to 2 px.
    Symmetric warping: ``src`` is resampled at ``x - f/2`` and ``dst`` at ``x + f/2`` (bilinear), so the
    interpolation low-pass affects both alike; one-sided warping biased sub-pixel flow by ~15 % in
    tests. The flow is therefore anchored half-way between the frames (identical for smooth motion).
    Convention: ``src(x) ~= dst(x + flow(x))``, i.e. ``warp(dst, flow) ~= src``.

    Stand-in for the learned flow StreamingT2V uses (appendix 12 does not name one); not a paper
    equation. Limits: large motions are found only as far as the coarse levels still see the texture
    (~2 px per level and iteration budget; fine texture moving > ~3 px is lost); textureless regions
    and the aperture problem give near-zero / edge-normal flow; brightness changes are read as
    motion; the window smooths motion boundaries; pixels whose content enters through the frame border
    get wrong flow (a few px). Measured on band-limited texture: median error ~0.01 px for shifts
    up to 2 px.

    Args:
        src, dst: ``[N, H, W, C]`` frames (IMAGE layout), same shape.
        levels: pyramid levels (default: as many as keep the coarsest side >= 16 px, at most 6).
        iterations: warping iterations per level (>= 1).
        window_sigma: Gaussian LK window (> 0, px at every level).
        regularization: relative Tikhonov weight (>= 0).
    Returns:
        ``[N, H, W, 2]`` float32 ``(dx, dy)`` in pixels.
    """
    if src.shape != dst.shape or src.ndim != 4:
        raise ValueError(
            f"src and dst must be [N, H, W, C] of equal shape, got {tuple(src.shape)} and {tuple(dst.shape)}"
        )
    if not (isinstance(iterations, int) and iterations >= 1):
        raise ValueError(f"iterations must be an integer >= 1, got {iterations}")
    if not window_sigma > 0:
        raise ValueError(f"window_sigma must be > 0 px, got {window_sigma}")
    if not regularization >= 0:
        raise ValueError(f"regularization must be >= 0, got {regularization}")
    if levels is not None and not (isinstance(levels, int) and levels >= 1):
        raise ValueError(f"levels must be an integer >= 1 or None (auto), got {levels}")
    flow = _flow_gray(rgb_to_gray(src), rgb_to_gray(dst), levels, iterations, window_sigma, regularization)
    return flow.permute(0, 2, 3, 1).contiguous()


def occlusion_mask(flow_fw: torch.Tensor, flow_bw: torch.Tensor) -> torch.Tensor:
    """Non-occlusion mask by forward-backward consistency (Sundaram et al. 2010, as used by Ruder et al.
    and the warp error of Lai et al. [19]).

    A pixel ``x`` with forward flow ``w = fw(x)`` and ``w_hat = bw(x + w)`` is visible iff
    ``|w + w_hat|^2 <= 0.01 (|w|^2 + |w_hat|^2) + 0.5`` and ``x + w`` lies inside the frame. The
    motion-boundary test of Ruder et al. is omitted (choice: LK flow is smooth, it rarely fires).

    Args:
        flow_fw: ``[N, H, W, 2]`` flow from frame t to t+1; flow_bw: flow from t+1 to t.
    Returns:
        bool ``[N, H, W]``, True = visible (used in the warp error).
    """
    fw = flow_fw.permute(0, 3, 1, 2).float()
    bw_at = _warp_nchw(flow_bw.permute(0, 3, 1, 2).float(), fw)
    diff = ((fw + bw_at) ** 2).sum(1)
    bound = 0.01 * ((fw**2).sum(1) + (bw_at**2).sum(1)) + 0.5
    n, _, h, w = fw.shape
    xs = torch.arange(w, dtype=fw.dtype, device=fw.device).view(1, 1, w) + fw[:, 0]
    ys = torch.arange(h, dtype=fw.dtype, device=fw.device).view(1, h, 1) + fw[:, 1]
    inside = (xs >= 0) & (xs <= w - 1) & (ys >= 0) & (ys <= h - 1)
    return (diff <= bound) & inside


# --------------------------------------------------------------------------------------------------
# MAWE (StreamingT2V appendix 12)
# --------------------------------------------------------------------------------------------------


def _resize_frames(video: torch.Tensor, resolution: int | tuple[int, int] | None) -> torch.Tensor:
    if resolution is None:
        return video.float()
    size = (resolution, resolution) if isinstance(resolution, int) else tuple(resolution)
    if len(size) != 2 or min(size) < 8:
        raise ValueError(f"resolution must be an int or (H, W) with sides >= 8, or None, got {resolution}")
    x = video.float().permute(0, 3, 1, 2)
    x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
    return x.permute(0, 2, 3, 1)


def warp_error_and_flow_score(
    video: torch.Tensor,
    resolution: int | tuple[int, int] | None = None,
    pixel_scale: float = 255.0,
    chunk: int = 8,
    **flow_kwargs: float,
) -> tuple[float, float]:
    """The two parts of MAWE (StreamingT2V appendix 12, Eq. 13): ``(W(V), OFS(V))``.

    ``W``: mean warp error of Lai et al. [19]: for each consecutive pair ``(V_t, V_{t+1})`` with flow
    ``f = optical_flow(V_t, V_{t+1})`` the mean over visible pixels (:func:`occlusion_mask`) of
    ``||V_t(x) - V_{t+1}(x + f(x))||_2^2`` (squared L2 over the channels), averaged over pairs.
    Choice: pixel values are multiplied by ``pixel_scale`` (default 255, the 8-bit range) before the
    error is taken; the paper does not state the range, but its Table 1 magnitudes (MAWE ~ 40-180) are
    only plausible with 8-bit values. A pair with no visible pixel uses all pixels (a broken flow must
    not hide the error).
    ``OFS``: mean of ``|f(x)|^2`` (pixels^2) over all flow vectors of all consecutive pairs.

    Args:
        video: IMAGE ``[T, H, W, C]``, T >= 2 (use :func:`to_image_layout` for latents).
        resolution: resize frames first (the paper uses 720 -> 720 x 720); None keeps the input size.
            OFS scales with resolution^2, so compare only numbers taken at the same resolution.
        pixel_scale: multiplier on pixel values for W (> 0); use 1.0 for latents (latent units).
        chunk: frame pairs per batch (bounds memory; >= 1).
        flow_kwargs: forwarded to :func:`optical_flow`.
    Returns:
        ``(W, OFS)`` as floats.
    """
    _check_image(video)
    if not pixel_scale > 0:
        raise ValueError(f"pixel_scale must be > 0 (255 for 8-bit units), got {pixel_scale}")
    if not (isinstance(chunk, int) and chunk >= 1):
        raise ValueError(f"chunk must be an integer >= 1, got {chunk}")
    if resolution is not None:
        _resize_frames(video[:1], resolution)  # validate before any work
    t = video.shape[0]
    warp_errors: list[torch.Tensor] = []
    flow_sq_sum = 0.0
    flow_count = 0
    for start in range(0, t - 1, chunk):  # resize per chunk: memory bounded by `chunk`, not T
        stop = min(start + chunk, t - 1)
        frames = _resize_frames(video[start : stop + 1], resolution)
        a, b = frames[:-1], frames[1:]
        fw = optical_flow(a, b, **flow_kwargs)
        bw = optical_flow(b, a, **flow_kwargs)
        visible = occlusion_mask(fw, bw).float()
        err = ((a - warp(b, fw)) ** 2).sum(-1) * (pixel_scale * pixel_scale)  # [n, H, W]
        count = visible.sum(dim=(1, 2))
        masked = (err * visible).sum(dim=(1, 2)) / count.clamp_min(1.0)
        per_pair = torch.where(count > 0, masked, err.mean(dim=(1, 2)))
        warp_errors.append(per_pair.double())
        flow_sq_sum += float((fw.double() ** 2).sum())
        flow_count += fw.shape[0] * fw.shape[1] * fw.shape[2]
    w_err = float(torch.cat(warp_errors).mean())
    ofs = flow_sq_sum / max(flow_count, 1)
    return w_err, ofs


def mawe(
    video: torch.Tensor,
    resolution: int | tuple[int, int] | None = None,
    pixel_scale: float = 255.0,
    chunk: int = 8,
    eps: float = 1e-2,
    **flow_kwargs: float,
) -> float:
    """Motion-aware warp error, StreamingT2V appendix 12 Eq. 13/14: ``MAWE(V) = W(V) / OFS(V)``.

    Low = consistent *and* moving. The paper's definition has no extra constant; deviations here:
    classical LK flow instead of a learned one, ``OFS`` clamped below by ``eps`` (default 0.01 px^2, i.e.
    0.1 px RMS motion, below what the flow resolves: a perfectly static video with ``W = 0`` gives 0
    instead of 0/0, a static-but-flickering one a huge value), and
    the frame resolution is the caller's choice (the paper resizes to 720 x 720, pass
    ``resolution=720``). See :func:`warp_error_and_flow_score` for ``W``/``OFS`` and the pixel scale.
    Caveat (of the definition, sharpened by a classical flow): across a hard cut the flow is garbage
    and large, which inflates OFS and partly offsets the large W, so read MAWE together with
    :func:`scene_cuts`, as the paper does. Measured on 40x40 textures: smooth 1.6 px/frame
    translation ~1.6-3, random jumps to unrelated positions ~26-60.

    Args:
        video: IMAGE ``[T, H, W, C]`` in [0, 1], T >= 2.
    Returns:
        MAWE as a float (lower is better).
    """
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    w_err, ofs = warp_error_and_flow_score(video, resolution, pixel_scale, chunk, **flow_kwargs)
    return w_err / max(ofs, eps)


# --------------------------------------------------------------------------------------------------
# SCuts: PySceneDetect AdaptiveDetector in torch
# --------------------------------------------------------------------------------------------------


def content_scores(video: torch.Tensor) -> torch.Tensor:
    """PySceneDetect ``ContentDetector`` frame scores (default weights: hue, saturation, value; no edges).

    ``score[0] = 0``; ``score[t] = (mean|dH| + mean|dS| + mean|dV|) / 3`` between frames ``t-1`` and ``t``
    in OpenCV 8-bit HSV units (see :func:`rgb_to_hsv`). Hue difference is linear, not circular, as in
    PySceneDetect. Float, not uint8-rounded (choice: tiny differences vs. the reference tool).

    Args:
        video: IMAGE ``[T, H, W, 3]`` RGB in [0, 1].
    Returns:
        float32 ``[T]``.
    """
    _check_image(video, min_frames=1)
    if video.shape[-1] != 3:
        raise ValueError(f"video must be RGB with 3 channels for scene_cuts, got {video.shape[-1]}")
    parts = [torch.zeros(1, dtype=torch.float32, device=video.device)]
    for start in range(0, video.shape[0] - 1, _CHUNK):  # bounded temporaries for long videos
        hsv = rgb_to_hsv(video[start : start + _CHUNK + 1])
        parts.append((hsv[1:] - hsv[:-1]).abs().mean(dim=(1, 2)).mean(-1))
    return torch.cat(parts)


def scene_cuts(
    video: torch.Tensor,
    threshold: float = 3.0,
    min_content_val: float = 15.0,
    window_width: int = 2,
    min_scene_len: int = 15,
) -> list[int]:
    """Scene cuts (SCuts of StreamingT2V section 5.1 = ``len(scene_cuts(video))``).

    Re-implementation of PySceneDetect's ``AdaptiveDetector`` with its defaults (the paper: "using the
    AdaptiveDetector with default parameters"). With content scores ``s`` (:func:`content_scores`), frame
    ``t`` is a cut iff ``s[t] / mean(s[t-w..t+w] without s[t]) >= threshold`` and
    ``s[t] >= min_content_val``, and ``t + w - last_cut >= min_scene_len`` (PySceneDetect measures the
    scene length from the last cut to the newest frame read, which is ``w`` frames ahead; the first
    ``last_cut`` is frame 0). A zero neighbour mean counts as ratio 255. Consequences of the defaults:
    cuts in the first ``min_scene_len - w`` frames and in the last ``w`` frames are not reported, and
    of two cuts closer than ~``min_scene_len`` frames only the first is.

    Args:
        video: IMAGE ``[T, H, W, 3]`` RGB in [0, 1].
        threshold: adaptive ratio threshold (PySceneDetect ``adaptive_threshold``, default 3.0, > 0).
        min_content_val: minimum content score of a cut, 8-bit HSV units (default 15.0).
        window_width: neighbours on each side in the rolling mean (default 2, >= 1).
        min_scene_len: minimum scene length in frames (default 15, >= 0).
    Returns:
        sorted frame indices ``t`` where a new scene starts (the cut is between ``t - 1`` and ``t``).
    """
    validate_scene_cut_params(threshold, min_content_val, window_width, min_scene_len)
    s = content_scores(video).double()
    t_total, w = s.numel(), window_width
    if t_total < 2 * w + 1:
        return []
    win = s.unfold(0, 2 * w + 1, 1)  # [T - 2w, 2w + 1], centre at column w
    centre = win[:, w]
    avg = (win.sum(1) - centre) / (2.0 * w)
    zero = avg.abs() < 1e-5
    ratio = torch.where(zero, torch.zeros_like(avg), (centre / torch.where(zero, 1.0, avg)).clamp(max=255.0))
    ratio = torch.where(zero & (centre >= min_content_val), torch.full_like(avg, 255.0), ratio)
    met = (ratio >= threshold) & (centre >= min_content_val)
    cuts: list[int] = []
    last_cut = 0
    for k in torch.nonzero(met).flatten().tolist():
        t = k + w
        if t + w - last_cut >= min_scene_len:
            cuts.append(t)
            last_cut = t
    return cuts


# --------------------------------------------------------------------------------------------------
# long-range diagnostics
# --------------------------------------------------------------------------------------------------


def _default_channel_axis(video: torch.Tensor) -> int:
    if video.ndim == 4 and video.shape[-1] <= 4 < video.shape[1]:
        return video.ndim - 1  # IMAGE [T, H, W, C]
    return 1  # [T, C, H, W] and [B, C, T, H, W]


def long_range_drift(
    video: torch.Tensor, window: int, frame_axis: int = 0, channel_axis: int | None = None
) -> float:
    """Distribution drift between the first and the last ``window`` frames.

    Choice (no paper equation): fit a per-channel Gaussian (mean, std over frames, pixels and batch) to
    each end and take the 2-Wasserstein distance between the diagonal Gaussians, each channel
    normalised by that channel's std over the whole video:
    ``sqrt(mean_c ((mu_a - mu_b)^2 + (sd_a - sd_b)^2) / sd_c^2)``. 0 = same colour/latent statistics at
    both ends; ~1 = the ends differ by about the whole video's spread. Dimensionless, so latents and
    images are comparable. Insensitive to layout changes that keep the statistics (by design: it
    measures colour/brightness drift and degradation, not content identity).

    Args:
        video: IMAGE ``[T, H, W, C]`` or latent.
        window: frames at each end, in ``[1, T]`` (ends overlap when ``2 * window > T``).
        frame_axis: time axis.
        channel_axis: channel axis; default -1 for IMAGE-like ``[T, H, W, C<=4]``, else 1.
    """
    t = _frames_first(video, frame_axis).shape[0]
    if not (isinstance(window, int) and 1 <= window <= t):
        raise ValueError(f"window must be an integer in [1, {t}] (frames at each end), got {window}")
    ch = _default_channel_axis(video) if channel_axis is None else channel_axis % video.ndim
    fa = frame_axis % video.ndim
    if ch == fa:
        raise ValueError(f"channel_axis must differ from frame_axis ({frame_axis}), got {channel_axis}")
    x = torch.movedim(video, (fa, ch), (0, 1))
    x = x.reshape(x.shape[0], x.shape[1], -1)  # [T, C, P] (a view when possible)

    def moments(frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # streaming per-channel mean/std in float64: temporaries bounded by _CHUNK frames
        n, s1, s2 = 0, 0.0, 0.0
        for start in range(0, frames.shape[0], _CHUNK):
            blk = frames[start : start + _CHUNK].double()
            n += blk.shape[0] * blk.shape[2]
            s1 = s1 + blk.sum(dim=(0, 2))
            s2 = s2 + (blk * blk).sum(dim=(0, 2))
        mean = s1 / n
        return mean, (s2 / n - mean * mean).clamp_min(0.0).sqrt()

    mu_a, sd_a = moments(x[:window])
    mu_b, sd_b = moments(x[-window:])
    sd = moments(x)[1].clamp_min(1e-8)
    return float(torch.sqrt((((mu_a - mu_b) ** 2 + (sd_a - sd_b) ** 2) / sd**2).mean()))


def lag_correlation(video: torch.Tensor, frame_axis: int = 0, lag: int = 1) -> float:
    """Normalised temporal autocorrelation of the video at ``lag`` frames (repetition diagnostic).

    ``y_t = x_t - mean_t x_t`` (per element, removes the static part), then
    ``r(lag) = sum_t <y_t, y_{t+lag}> / sqrt(sum_t |y_t|^2 * sum_t |y_{t+lag}|^2)`` in [-1, 1]. A video
    that repeats with period p has ``r(p) ~ 1`` (ZoLA section 4.4 repeat-mask noise / looped windows show
    up this way). No temporal variation at all returns 0.0 (choice: nothing to correlate).

    Args:
        video: IMAGE ``[T, H, W, C]`` or latent; frame_axis: time axis; lag: in ``[1, T - 1]``.
    """
    x = _frames_first(video, frame_axis)
    t = x.shape[0]
    if not (isinstance(lag, int) and 1 <= lag <= t - 1):
        raise ValueError(f"lag must be an integer in [1, {t - 1}] frames, got {lag}")
    x = x.reshape(t, -1)
    mean = sum(x[s : s + _CHUNK].double().sum(0) for s in range(0, t, _CHUNK)) / t
    saa = sbb = sab = 0.0
    for start in range(0, t - lag, _CHUNK):  # streaming: temporaries bounded by 2 * _CHUNK frames
        stop = min(start + _CHUNK, t - lag)
        a = x[start:stop].double() - mean
        b = x[start + lag : stop + lag].double() - mean
        saa, sbb, sab = saa + float((a * a).sum()), sbb + float((b * b).sum()), sab + float((a * b).sum())
    den = math.sqrt(saa * sbb)
    if den <= 0.0:
        return 0.0
    return sab / den


# --------------------------------------------------------------------------------------------------
# plot (plain torch drawing)
# --------------------------------------------------------------------------------------------------

_BG = (0.08, 0.08, 0.10)
_BAR = (0.30, 0.62, 1.00)
_BORDER_BAR = (1.00, 0.35, 0.20)
_BORDER_LINE = (0.45, 0.16, 0.10)
_MEAN_LINE = (0.65, 0.65, 0.65)


def render_metrics_plot(
    jumps: torch.Tensor, borders: Sequence[int] = (), size: tuple[int, int] = (256, 512)
) -> torch.Tensor:
    """Bar plot of the adjacent-frame change profile with window borders marked, as an IMAGE.

    Bar ``i`` is ``jumps[i]`` (transition frame i -> i+1), scaled to the tallest bar. Border ``b`` (see
    :func:`seam_ratio`) colours bar ``b - 1`` orange-red and draws a dark-red full-height band behind it,
    so borders stay visible even when their jump is tiny. A grey horizontal line marks the mean jump
    over the non-border transitions (the denominator of :func:`seam_ratio`). Blue bars = other
    transitions. Pure torch, no fonts/axes.

    Args:
        jumps: ``[N]`` (N = T - 1) from :func:`frame_jumps`.
        borders: frame indices in ``[1, N]``.
        size: ``(H, W)`` of the image, each >= 16.
    Returns:
        float32 IMAGE ``[1, H, W, 3]`` in [0, 1].
    """
    h, w = int(size[0]), int(size[1])
    if h < 16 or w < 16:
        raise ValueError(f"size must be (H, W) with both >= 16 px, got {tuple(size)}")
    jumps = jumps.detach().reshape(-1).double().cpu()
    n = jumps.numel()
    if n < 1:
        raise ValueError("jumps must have at least 1 entry (a video of >= 2 frames)")
    valid = validate_borders(borders, n)
    is_border = torch.zeros(n, dtype=torch.bool)
    if valid:
        is_border[torch.tensor(valid) - 1] = True
    pad = 4
    ph, pw = h - 2 * pad, w - 2 * pad
    peak = float(jumps.max())
    heights = jumps / peak if peak > 0 else torch.zeros_like(jumps)
    img = torch.tensor(_BG, dtype=torch.float32).view(1, 1, 3).expand(h, w, 3).clone()
    cols = torch.arange(pw)
    bar_idx = (cols * n) // pw  # bar under every plot column
    # gap of 1 px between bars when they are >= 4 px wide
    bar_w = pw / n
    in_gap = ((cols + 1) * n // pw != bar_idx) & (bar_w >= 4)
    rows = torch.arange(ph).view(-1, 1)
    level = ((1.0 - heights[bar_idx]) * (ph - 1)).round().long().view(1, -1)
    filled = (rows >= level) & (heights[bar_idx] > 0).view(1, -1) & ~in_gap.view(1, -1)
    border_col = is_border[bar_idx].view(1, -1)
    region = img[pad : pad + ph, pad : pad + pw]
    colour = {
        k: torch.tensor(v, dtype=torch.float32)
        for k, v in {"bar": _BAR, "bb": _BORDER_BAR, "bl": _BORDER_LINE, "mean": _MEAN_LINE}.items()
    }
    band = border_col.expand(ph, pw)
    region[band] = colour["bl"]
    region[filled & ~border_col] = colour["bar"]
    region[filled & border_col] = colour["bb"]
    others = jumps[~is_border]
    if others.numel() > 0 and peak > 0:
        y = int(round((1.0 - float(others.mean()) / peak) * (ph - 1)))
        region[y, :] = colour["mean"]
    return img.clamp(0.0, 1.0).unsqueeze(0)
