"""Picture of a window schedule over the sampling steps (pure torch drawing, pure layer).

Part of :mod:`context_schedule` (import names from there).
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence

import torch


def _palette(i: int) -> tuple[float, float, float]:
    hue = (i * 0.618033988749895) % 1.0
    return colorsys.hsv_to_rgb(hue, 0.75, 0.95)


def render_schedule_preview(
    steps_windows: Sequence[Sequence[Sequence[int]]],
    num_frames: int,
    blend_masks: Sequence[Sequence[torch.Tensor] | None] | None = None,
    cell: int = 4,
) -> torch.Tensor:
    """Picture of a schedule over sampling steps -> ComfyUI IMAGE ``float32 [1, H, W, 3]`` in [0, 1].

    Columns are frames (``cell`` pixels each); each step is a horizontal band with one sub-row (``cell``
    pixels) per window, bands separated by a 1-pixel light line. In a sub-row, the window's frames are
    drawn in the window's colour (golden-ratio hues by window index); frames inside the window's span
    that it skips are drawn faint grey (skips visible as gaps); other frames are background. With
    ``blend_masks`` (per step a list of per-window masks, or ``None`` for a step) owned frames are
    bright and frames the window holds but does not own are dimmed to 30 %, so the random cuts show.
    With ``cell >= 3`` the last pixel row/column of each cell is left as background (grid).
    Size: ``W = num_frames*cell``, ``H = sum_steps(len(windows)*cell) + steps - 1`` - choose ``cell`` to
    keep the image reasonable for long videos.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if cell < 1:
        raise ValueError(f"cell must be >= 1, got {cell}")
    if blend_masks is not None and len(blend_masks) != len(steps_windows):
        raise ValueError(
            f"blend_masks must have one entry per step ({len(steps_windows)}), got {len(blend_masks)}"
        )
    bg = torch.tensor([0.06, 0.06, 0.07])
    gap = torch.tensor([0.22, 0.22, 0.24])
    sep = torch.tensor([0.55, 0.55, 0.55])
    bands: list[torch.Tensor] = []
    for s, windows in enumerate(steps_windows):
        masks = blend_masks[s] if blend_masks is not None else None
        grid = bg.repeat(max(1, len(windows)), num_frames, 1)  # [rows, T, 3]
        for i, w in enumerate(windows):
            colour = torch.tensor(_palette(i))
            wl = list(w)
            for a, b in zip(wl[:-1], wl[1:], strict=False):
                if b > a + 1:
                    grid[i, a + 1 : b] = gap
            idx = torch.as_tensor(wl, dtype=torch.long)
            if masks is not None:
                m = torch.as_tensor(masks[i], dtype=torch.float32).reshape(-1, 1)
                grid[i, idx] = colour * (0.3 + 0.7 * m)
            else:
                grid[i, idx] = colour
        img = grid.repeat_interleave(cell, 0).repeat_interleave(cell, 1)
        if cell >= 3:
            img[cell - 1 :: cell, :, :] = bg
            img[:, cell - 1 :: cell, :] = bg
        bands.append(img)
        if s + 1 < len(steps_windows):
            bands.append(sep.repeat(1, num_frames * cell, 1))
    if not bands:
        bands.append(bg.repeat(cell, num_frames * cell, 1))
    return torch.cat(bands, 0).unsqueeze(0).clamp_(0.0, 1.0)
