"""Object-level metrics for videos of coloured objects: counts, identity, tracks, motion continuity, drift.

These judge a generated video against what a world of rigid objects must satisfy (used with the synthetic
world of the test tools, whose truth is known, but nothing here depends on it). A video is first turned into
per-colour *maps* ``[T, K, H, W]`` (object ``k``'s amplitude at each pixel, about 1 inside an object and 0 on the
background), from latents by projection on known colour codes (:func:`code_maps`) or from RGB frames by the
nearest palette colour (:func:`palette_maps`). Then:

- :func:`detect_blobs`: connected regions above a threshold per colour and frame (count, centroid, peak, size).
- the right objects by colour and number (:func:`count_accuracy`), identity persistence over the whole video
  (:func:`identity_persistence`: the same set of colours in every frame, each as exactly one object),
  tracks lasting the whole video (:func:`track_persistence`),
- trajectory continuity: accelerations away from bounces (:func:`accelerations`), and per-frame displacement at
  window borders vs inside windows (:func:`border_jumps`),
- drift of object look between the first and the last window (:func:`window_drift`),
- long-range scene consistency: the set of colours each window shows (:func:`window_colour_sets`) and whether the
  video keeps one set from its first window to its last (:func:`scene_consistency`),
- :func:`world_report` gathers them in one dict.

Positions are ``(y, x)`` in map pixels. Nothing here is random.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = [
    "accelerations",
    "border_jumps",
    "code_maps",
    "connected_components",
    "count_accuracy",
    "detect_blobs",
    "identity_persistence",
    "palette_maps",
    "scene_consistency",
    "track_persistence",
    "window_colour_sets",
    "window_drift",
    "world_report",
]


def _check_maps(maps: torch.Tensor, name: str = "maps") -> None:
    if not isinstance(maps, torch.Tensor) or maps.ndim != 4:
        shape = tuple(maps.shape) if isinstance(maps, torch.Tensor) else type(maps).__name__
        raise ValueError(f"{name} must be per-colour maps [T, K, H, W], got {shape}; build them with code_maps() "
                         "from latents or palette_maps() from RGB frames")


def code_maps(latent: torch.Tensor, codes: torch.Tensor, channel_axis: int = 0) -> torch.Tensor:
    """Per-colour amplitude maps ``[T, K, H, W]`` of a latent by least squares on the colour codes.

    ``latent`` is ``[C, T, H, W]`` (``channel_axis=0``, Wan layout without batch) or ``[T, C, H, W]``
    (``channel_axis=1``); ``codes`` is ``[K, C]``: an object of colour ``k`` with amplitude ``m`` adds ``m * codes[k]``
    to the latent. Solves ``min_a |z - a @ codes|`` per pixel (exact projection when the codes are orthogonal).
    """
    if latent.ndim != 4 or channel_axis not in (0, 1):
        raise ValueError(f"latent must be 4-D [C, T, H, W] (channel_axis=0) or [T, C, H, W] (channel_axis=1), "
                         f"got {tuple(latent.shape)} with channel_axis={channel_axis}")
    if codes.ndim != 2 or codes.shape[1] != latent.shape[channel_axis]:
        raise ValueError(f"codes must be [K, C] with C = {latent.shape[channel_axis]} latent channels, "
                         f"got {tuple(codes.shape)}")
    z = latent.float() if channel_axis == 1 else latent.float().movedim(0, 1)
    pinv = torch.linalg.pinv(codes.double()).float()  # [C, K]
    return torch.einsum("tchw,ck->tkhw", z, pinv)


def palette_maps(frames: torch.Tensor, palette: torch.Tensor, background: torch.Tensor,
                 min_similarity: float = 0.9) -> torch.Tensor:
    """Per-colour amplitude maps ``[T, K, H, W]`` of RGB frames ``[T, H, W, 3]``.

    Each pixel's offset from the background, ``d = rgb - background``, is given to the palette colour whose offset
    ``o_k = palette[k] - background`` it points along best (cosine similarity at least ``min_similarity``), with
    amplitude ``<d, o_k> / |o_k|^2``; the other colours get 0 there.
    """
    if frames.ndim != 4 or frames.shape[-1] != palette.shape[-1]:
        raise ValueError(f"frames must be an IMAGE batch [T, H, W, {palette.shape[-1]}], got {tuple(frames.shape)}")
    d = frames.float() - background.float()
    off = (palette.float() - background.float())  # [K, 3]
    amp = torch.einsum("thwc,kc->tkhw", d, off / (off * off).sum(1, keepdim=True))
    cos = torch.einsum("thwc,kc->tkhw", d, F.normalize(off, dim=1)) / d.norm(dim=-1).clamp_min(1e-8).unsqueeze(1)
    best = cos.argmax(1, keepdim=True)
    keep = torch.zeros_like(amp, dtype=torch.bool).scatter_(1, best, True) & (cos >= min_similarity)
    return torch.where(keep, amp, torch.zeros_like(amp))


def connected_components(mask: torch.Tensor) -> torch.Tensor:
    """Labels ``[N, H, W]`` (int64, 0 = background) of the 8-connected regions of a bool mask ``[N, H, W]``.

    Label propagation: every foreground pixel starts with its own index + 1 and takes the maximum over its 3x3
    neighbourhood inside the mask until nothing changes (at most ``H * W`` rounds). Labels are not consecutive.
    """
    n, h, w = mask.shape
    idx = torch.arange(1, h * w + 1, dtype=torch.float32).view(1, h, w).expand(n, h, w)
    lab = torch.where(mask, idx, torch.zeros_like(idx))
    for _ in range(h * w):
        new = F.max_pool2d(lab.unsqueeze(1), 3, stride=1, padding=1).squeeze(1)
        new = torch.where(mask, new, torch.zeros_like(new))
        if torch.equal(new, lab):
            break
        lab = new
    return lab.long()


def _subpixel_peak(masked: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """``[N, 2]`` sub-pixel position of the maximum of ``masked [N, H, W]``.

    Along each axis the log of the three values around the peak pixel is fitted by a parabola, whose vertex is
    exact for a Gaussian blob: ``offset = (l[-1] - l[+1]) / (2 (l[-1] - 2 l[0] + l[+1]))``. Where a neighbour is
    off the grid or not positive the offset is 0 (the pixel centre); offsets are clamped to half a pixel.
    """
    n, h, w = masked.shape
    arg = masked.reshape(n, -1).argmax(1)
    py, px = arg // w, arg % w
    ar = torch.arange(n)
    out = []
    for p, size, get in ((py, h, lambda a, b: values[ar, a, px]), (px, w, lambda a, b: values[ar, py, a])):
        lo, hi = (p - 1).clamp(0, size - 1), (p + 1).clamp(0, size - 1)
        fm, f0, fp = get(lo, None), get(p, None), get(hi, None)
        ok = (p > 0) & (p < size - 1) & (fm > 0) & (f0 > 0) & (fp > 0)
        lm, l0, lp = (torch.log(v.clamp_min(1e-12)) for v in (fm, f0, fp))
        den = 2 * (lm - 2 * l0 + lp)
        off = torch.where(ok & (den < 0), (lm - lp) / den.where(den != 0, torch.ones_like(den)), torch.zeros_like(den))
        out.append(p.float() + off.clamp(-0.5, 0.5))
    return torch.stack(out, -1)


def detect_blobs(maps: torch.Tensor, threshold: float = 0.5, min_pixels: int = 1) -> dict:
    """Objects per colour and frame in ``maps [T, K, H, W]``.

    An object is an 8-connected region where the map exceeds ``threshold`` with at least ``min_pixels`` pixels.
    Returns a dict of tensors: ``count [T, K]`` (regions per colour), ``centroid [T, K, 2]`` (amplitude-weighted
    centre of the largest region grown by one pixel, NaN when the colour is absent), ``peak [T, K]`` (its
    maximum), ``size [T, K]`` (its pixel count above threshold).
    """
    _check_maps(maps)
    t, k, h, w = maps.shape
    flat = maps.float().reshape(t * k, h, w)
    lab = connected_components(flat > threshold)
    sizes = torch.zeros(t * k, h * w + 1)
    sizes.scatter_add_(1, lab.view(t * k, -1), torch.ones(t * k, h * w))
    sizes[:, 0] = 0
    count = (sizes >= max(1, min_pixels)).sum(1)
    biggest = sizes.argmax(1)
    size = sizes.gather(1, biggest.view(-1, 1)).squeeze(1)
    region = (lab == biggest.view(-1, 1, 1)) & (size.view(-1, 1, 1) >= max(1, min_pixels))
    pos = _subpixel_peak(torch.where(region, flat, torch.full_like(flat, -math.inf)), flat)
    cy, cx = pos[:, 0], pos[:, 1]
    present = count > 0
    centroid = torch.stack([cy, cx], -1)
    centroid = torch.where(present.view(-1, 1), centroid, torch.full_like(centroid, math.nan))
    peak = torch.where(region, flat, torch.full_like(flat, -math.inf)).amax((1, 2))
    peak = torch.where(present, peak, torch.zeros_like(peak))
    return dict(count=count.view(t, k), centroid=centroid.view(t, k, 2), peak=peak.view(t, k),
                size=torch.where(present, size, torch.zeros_like(size)).view(t, k))


def _expected_mask(expected: Sequence[int] | torch.Tensor, k: int, t: int) -> torch.Tensor:
    """``[T, K]`` bool: which colours should be in each frame (a list of colour indices, or a [T, K] mask)."""
    if isinstance(expected, torch.Tensor) and expected.ndim == 2:
        if tuple(expected.shape) != (t, k):
            raise ValueError(f"expected mask must be [T, K] = [{t}, {k}], got {tuple(expected.shape)}")
        return expected.bool()
    idx = [int(i) for i in expected]
    bad = [i for i in idx if not 0 <= i < k]
    if bad:
        raise ValueError(f"expected colours must be indices in [0, {k - 1}], got {bad}")
    m = torch.zeros(t, k, dtype=torch.bool)
    m[:, idx] = True
    return m


def _expected_counts(expected: Sequence[int] | torch.Tensor, k: int, t: int) -> torch.Tensor:
    """``[T, K]`` int64: how many objects of each colour should be in each frame. A list of colour indices names
    each object once (``[0, 0, 2]``: two of colour 0 and one of colour 2); a ``[T, K]`` tensor gives the counts
    (a bool mask: one object per marked colour)."""
    if isinstance(expected, torch.Tensor) and expected.ndim == 2:
        if tuple(expected.shape) != (t, k):
            raise ValueError(f"expected counts must be [T, K] = [{t}, {k}], got {tuple(expected.shape)}")
        return expected.long()
    idx = [int(i) for i in expected]
    bad = [i for i in idx if not 0 <= i < k]
    if bad:
        raise ValueError(f"expected colours must be indices in [0, {k - 1}], got {bad}")
    return torch.bincount(torch.tensor(idx, dtype=torch.long), minlength=k).view(1, k).expand(t, k)


def count_accuracy(count: torch.Tensor, expected) -> float:
    """Fraction of frames with the objects the prompt names, by colour and number (``count [T, K]`` from
    detect_blobs): every colour is there exactly as many times as it is named, and unnamed colours are absent.
    A frame with the right number of objects in the wrong colours does not count."""
    t, k = count.shape
    exp = _expected_counts(expected, k, t)
    return float((count.long() == exp).all(1).float().mean())


def identity_persistence(count: torch.Tensor, expected) -> float:
    """Fraction of frames in which exactly the expected colours are present, each as exactly one object."""
    t, k = count.shape
    exp = _expected_mask(expected, k, t)
    return float(((count == exp.long()).all(1)).float().mean())


def track_persistence(det: dict, expected, max_step: float = 1.5) -> float:
    """Fraction of expected colours whose track lasts the whole video.

    A colour's track lasts when, in every frame it is expected, it is exactly one object and its centroid moves
    at most ``max_step`` pixels from the previous frame (a larger step is a jump, not motion).
    """
    count, cen = det["count"], det["centroid"]
    t, k = count.shape
    exp = _expected_mask(expected, k, t)
    cols = [c for c in range(k) if exp[:, c].any()]
    if not cols:
        raise ValueError("expected names no colour; give at least one colour index")
    ok = 0
    for c in cols:
        frames = exp[:, c]
        single = bool((count[frames, c] == 1).all())
        steps = (cen[1:, c] - cen[:-1, c]).norm(dim=-1)[frames[1:] & frames[:-1]]
        ok += int(single and bool((steps <= max_step).all()))
    return ok / len(cols)


def accelerations(centroid: torch.Tensor, exclude_bounces: bool = True, min_speed: float = 0.05) -> torch.Tensor:
    """Acceleration magnitudes ``|p[t+1] - 2 p[t] + p[t-1]|`` of all tracks ``centroid [T, K, 2]`` (flattened).

    Frames where a track is missing (NaN) are left out. With ``exclude_bounces``, a frame is left out when a
    velocity component reverses there or at a neighbouring frame (``v[t-1]`` and ``v[t]`` of opposite signs, one of
    them faster than ``min_speed``; a reflection inside a frame step shows as a short step between two reversed ones):
    an elastic bounce is a legitimate velocity change, everything else in a world of constant-velocity objects is
    an error of the video.
    """
    if centroid.ndim != 3 or centroid.shape[-1] != 2:
        raise ValueError(f"centroid must be [T, K, 2], got {tuple(centroid.shape)}")
    if centroid.shape[0] < 3:
        return torch.zeros(0)
    v = centroid[1:] - centroid[:-1]  # [T-1, K, 2]
    a = (v[1:] - v[:-1]).norm(dim=-1)  # [T-2, K], centred on frames 1..T-2
    keep = torch.isfinite(a)
    if exclude_bounces:
        rev = ((v[1:] * v[:-1]) < 0) & (torch.maximum(v[1:].abs(), v[:-1].abs()) > min_speed)
        rev = rev.any(-1).float()  # [T-2, K]; a reflection inside a frame step spreads over two steps
        near = F.max_pool1d(rev.T.unsqueeze(1), 3, stride=1, padding=1).squeeze(1).T > 0
        keep &= ~near
    return a[keep]


def border_jumps(centroid: torch.Tensor, borders: Sequence[int]) -> dict:
    """Median per-frame displacement of the tracks at window borders vs inside windows.

    A border ``b`` is the transition from frame ``b - 1`` to ``b`` (the first frame of a new window). Returns
    ``{"border": median at borders, "inside": median elsewhere, "ratio": border / inside}`` (NaN where empty).
    """
    t = centroid.shape[0]
    step = (centroid[1:] - centroid[:-1]).norm(dim=-1)  # [T-1, K]: entry b-1 = transition into frame b
    at = torch.zeros(t - 1, dtype=torch.bool)
    for b in borders:
        if not 1 <= int(b) <= t - 1:
            raise ValueError(f"borders must be frame indices in [1, {t - 1}], got {b}")
        at[int(b) - 1] = True
    bvals = step[at][torch.isfinite(step[at])]
    ivals = step[~at][torch.isfinite(step[~at])]
    border = float(bvals.median()) if bvals.numel() else math.nan
    inside = float(ivals.median()) if ivals.numel() else math.nan
    ratio = border / inside if inside and math.isfinite(inside) and inside > 0 else math.nan
    return dict(border=border, inside=inside, ratio=ratio)


def window_drift(det: dict, window: int) -> dict:
    """Change of object look between the first and the last ``window`` frames.

    Compares the mean peak amplitude and mean size of the detected objects (colours present in both windows):
    ``{"peak": |last - first| / first, "size": |last - first| / first}`` (0 when unchanged, NaN without objects).
    """
    t = det["count"].shape[0]
    if not 1 <= window <= t:
        raise ValueError(f"window must be in [1, {t}] frames, got {window}")
    first, last = slice(0, window), slice(t - window, t)
    out = {}
    for key in ("peak", "size"):
        v = det[key].float()
        pres = det["count"] > 0
        a = v[first][pres[first]]
        b = v[last][pres[last]]
        if a.numel() == 0 or b.numel() == 0 or float(a.mean()) == 0:
            out[key] = math.nan
        else:
            out[key] = abs(float(b.mean()) - float(a.mean())) / float(a.mean())
    return out


def world_report(maps: torch.Tensor, expected, borders: Sequence[int] = (), window: int | None = None,
                 threshold: float = 0.5, max_step: float = 1.5) -> dict:
    """All object-level figures of one video in a flat dict (see the module docstring)."""
    det = detect_blobs(maps, threshold)
    acc = accelerations(det["centroid"])
    out = dict(
        count_accuracy=count_accuracy(det["count"], expected),
        identity=identity_persistence(det["count"], expected),
        tracks=track_persistence(det, expected, max_step),
        accel_p50=float(acc.quantile(0.5)) if acc.numel() else math.nan,
        accel_p90=float(acc.quantile(0.9)) if acc.numel() else math.nan,
    )
    if borders:
        j = border_jumps(det["centroid"], borders)
        out.update(jump_border=j["border"], jump_inside=j["inside"], jump_ratio=j["ratio"])
    if window:
        d = window_drift(det, window)
        out.update(drift_peak=d["peak"], drift_size=d["size"])
    return out


def window_colour_sets(count: torch.Tensor, window: int, min_share: float = 0.5) -> list[frozenset]:
    """The scene of each ``window``-frame block of a video: the colours present in at least ``min_share`` of its
    frames.

    ``count [T, K]`` is :func:`detect_blobs`' count; a colour is present in a frame when it has at least one object
    there. Blocks are consecutive and do not overlap (frames ``[0, window)``, ``[window, 2 window)``, ...); a last
    block shorter than ``window`` is left out. Returns one ``frozenset`` of colour indices per block (empty when no
    colour holds for ``min_share`` of the block).
    """
    if count.ndim != 2:
        raise ValueError(f"count must be [T, K] from detect_blobs, got {tuple(count.shape)}")
    t = count.shape[0]
    if not 1 <= window <= t:
        raise ValueError(f"window must be in [1, {t}] frames, got {window}")
    if not 0.0 < min_share <= 1.0:
        raise ValueError(f"min_share must be in (0, 1], got {min_share}")
    present = (count > 0).float()
    out = []
    for s in range(0, t - window + 1, window):
        share = present[s:s + window].mean(0)
        out.append(frozenset(int(k) for k in torch.nonzero(share >= min_share - 1e-9).flatten()))
    return out


def scene_consistency(sets: Sequence[frozenset]) -> dict:
    """Does a video keep the scene its first window chose? Figures of the per-block colour sets
    (:func:`window_colour_sets`):

    - ``agreement``: share of the later non-empty blocks whose set equals the first non-empty block's
      (1 = every block shows the same colours; 0 when fewer than two blocks are non-empty, so an empty or
      one-block video never scores as consistent),
    - ``distinct``: number of different non-empty sets (1 = one scene; 0 for an all-empty video),
    - ``last_equals_first``: 1.0 when the last block's set is non-empty and equals the first non-empty block's,
    - ``empty``: share of blocks with an empty set (a video that loses its objects is not a consistent one).
    """
    sets = [frozenset(s) for s in sets]
    if not sets:
        raise ValueError("sets is empty: give at least one block (window_colour_sets of a video)")
    full = [s for s in sets if s]
    empty = (len(sets) - len(full)) / len(sets)
    if len(full) < 2:
        return dict(agreement=0.0, distinct=float(len(full)), last_equals_first=0.0, empty=empty)
    first = full[0]
    agreement = sum(s == first for s in full[1:]) / (len(full) - 1)
    return dict(agreement=agreement, distinct=float(len(set(full))),
                last_equals_first=float(bool(sets[-1]) and sets[-1] == first), empty=empty)
