"""Frame statistics and the preview picture of a noise tensor (pure): frame correlation, per-frame mean / std,
and the IMAGE the Noise Preview node shows.

Part of the noise package whose public face is :mod:`.noise` (every public name is importable from there).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from .noise_spec import _canonical

__all__ = ["frame_correlation", "frame_stats", "render_noise_preview"]

_CHUNK_ELEMENTS = 1 << 22


def _frame_chunks(noise: torch.Tensor, frame_axis: int) -> Iterator[torch.Tensor]:
    """Yield float64 ``[T, n_k]`` blocks covering all non-frame elements, each about 4M elements."""
    _, axis = _canonical(noise.shape, frame_axis)
    x = noise.detach().movedim(axis, 0)
    t = x.shape[0]
    if x.dim() == 1:
        yield x.reshape(t, 1).double()
        return
    if x.is_contiguous():
        flat = x.reshape(t, -1)
        cols = max(1, _CHUNK_ELEMENTS // t)
        for s in range(0, flat.shape[1], cols):
            yield flat[:, s : s + cols].double()
        return
    d = max(range(1, x.dim()), key=lambda k: x.shape[k])
    per_index = x.numel() // x.shape[d]
    step = max(1, _CHUNK_ELEMENTS // max(per_index, 1))
    for s in range(0, x.shape[d], step):
        yield x.narrow(d, s, min(step, x.shape[d] - s)).reshape(t, -1).double()


def frame_correlation(noise: torch.Tensor, frame_axis: int) -> torch.Tensor:
    """Pearson correlation ``[T, T]`` (float32) between frames over all non-frame elements.

    Accumulated chunk-wise in float64 (Gram matrix plus sums), so the only large temporaries are ~4M
    element blocks; ``O(T^2 * elements)`` time. Entries involving a constant frame are 0; the diagonal
    of a non-constant frame is 1.
    """
    t = noise.shape[frame_axis]
    gram = torch.zeros((t, t), dtype=torch.float64)
    total = torch.zeros(t, dtype=torch.float64)
    count = 0
    for block in _frame_chunks(noise, frame_axis):
        gram += block @ block.T
        total += block.sum(dim=1)
        count += block.shape[1]
    mean = total / count
    cov = gram / count - torch.outer(mean, mean)
    var = cov.diagonal().clamp_min(0.0)
    denom = torch.sqrt(torch.outer(var, var))
    corr = torch.where(denom > 0, cov / denom.clamp_min(1e-300), torch.zeros_like(cov)).clamp(-1.0, 1.0)
    corr.diagonal().copy_((var > 0).double())
    return corr.float()


def frame_stats(noise: torch.Tensor, frame_axis: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-frame mean and (population) std over all non-frame elements: ``(mean[T], std[T])`` float32."""
    t = noise.shape[frame_axis]
    total = torch.zeros(t, dtype=torch.float64)
    squares = torch.zeros(t, dtype=torch.float64)
    count = 0
    for block in _frame_chunks(noise, frame_axis):
        total += block.sum(dim=1)
        squares += (block * block).sum(dim=1)
        count += block.shape[1]
    mean = total / count
    var = (squares / count - mean * mean).clamp_min(0.0)
    return mean.float(), var.sqrt().float()


def _correlation_colors(corr: torch.Tensor) -> torch.Tensor:
    """Diverging map: -1 blue (0, 0, 1), 0 white, +1 red (1, 0, 0). Returns ``[..., 3]``."""
    c = corr.clamp(-1.0, 1.0)
    red = torch.where(c < 0, 1.0 + c, torch.ones_like(c))
    green = 1.0 - c.abs()
    blue = torch.where(c > 0, 1.0 - c, torch.ones_like(c))
    return torch.stack((red, green, blue), dim=-1)


def render_noise_preview(noise: torch.Tensor, frame_axis: int, size: int = 512) -> torch.Tensor:
    """ComfyUI IMAGE ``[1, H, W, 3]`` float32 in [0, 1] summarising the frame structure of ``noise``.

    Top: ``size x size`` heatmap of :func:`frame_correlation` (blue -1, white 0, red +1), frame 0 at the
    top-left, nearest-neighbour upsampling. Below (``max(16, size // 4)`` rows, light grey): upper half,
    per-frame mean as green bars around a grey zero line (full half-height = |mean| 1); lower half,
    per-frame std as a black trace on a scale 0 (bottom) .. 2 (top) with a grey reference line at std 1.
    No text. Pure torch. With more frames than ``size`` only the ``size`` frames drawn are measured, so the cost
    does not grow with the square of the video's length.
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 16:
        raise ValueError(f"size must be an int >= 16, got {size!r}")
    t = noise.shape[frame_axis]
    idx = (torch.arange(size) * t) // size  # the frame drawn in each pixel column / row
    if t > size:  # statistics of the drawn frames only: O(size^2) work, not O(frames^2); same values per pair
        noise, idx = noise.index_select(frame_axis, idx), torch.arange(size)
    corr = frame_correlation(noise, frame_axis)
    mean, std = frame_stats(noise, frame_axis)
    heat = _correlation_colors(corr[idx][:, idx])

    strip_h = max(16, size // 4)
    half = strip_h // 2
    strip = torch.full((strip_h, size, 3), 0.92)
    rows = torch.arange(strip_h, dtype=torch.float32)[:, None]
    col_mean = mean[idx][None, :].clamp(-1.0, 1.0)
    col_std = std[idx][None, :]

    zero_row = (half - 1) / 2.0
    bar_end = zero_row - col_mean * zero_row
    lo = bar_end.clamp(max=zero_row)
    hi = bar_end.clamp(min=zero_row)
    in_upper = rows < half
    bars = in_upper & (rows >= lo.floor()) & (rows <= hi.ceil())
    strip[(in_upper & ((rows - zero_row).abs() < 0.5)).expand(strip_h, size)] = torch.tensor([0.6, 0.6, 0.6])
    strip[bars] = torch.tensor([0.1, 0.6, 0.2])

    lower_h = strip_h - half
    std_row = half + (1.0 - (col_std / 2.0).clamp(0.0, 1.0)) * (lower_h - 1)
    ref_row = half + 0.5 * (lower_h - 1)
    in_lower = rows >= half
    strip[(in_lower & ((rows - ref_row).abs() < 0.5)).expand(strip_h, size)] = torch.tensor([0.6, 0.6, 0.6])
    strip[in_lower & ((rows - std_row).abs() <= 1.0)] = torch.tensor([0.0, 0.0, 0.0])
    strip[:2] = 0.3  # separator under the heatmap

    image = torch.cat((heat, strip), dim=0).clamp(0.0, 1.0)
    return image.unsqueeze(0).float().contiguous()
