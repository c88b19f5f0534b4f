"""Picture of a window schedule over the sampling steps (pure torch drawing, pure layer).

Part of :mod:`context_schedule` (import names from there). Text (frame numbers, step labels, the legend) is drawn
with a built-in 3x5 pixel font, so nothing beyond torch is needed.
"""

from __future__ import annotations

import colorsys
import math
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
    *,
    axes: bool = False,
    lanes: bool = False,
    max_width: int | None = None,
    max_height: int | None = None,
    step_labels: Sequence[int] | None = None,
) -> torch.Tensor:
    """Picture of a schedule over sampling steps -> ComfyUI IMAGE ``float32 [1, H, W, 3]`` in [0, 1].

    Columns are frames (``cell`` pixels each); each step is a horizontal band with one sub-row (``cell``
    pixels) per window, bands separated by a 1-pixel light line. In a sub-row, the window's frames are
    drawn in the window's colour (golden-ratio hues by window index); frames inside the window's span
    that it skips are drawn faint grey (skips visible as gaps); other frames are background. With
    ``blend_masks`` (per step a list of per-window masks, or ``None`` for a step) owned frames are
    bright and frames the window holds but does not own are dimmed to 30 %, so the random cuts show.
    With ``cell >= 3`` the last pixel row/column of each cell is left as background (grid).
    Size: ``W = num_frames*cell``, ``H = sum_steps(len(windows)*cell) + steps - 1``.

    Keywords (all off by default, which gives exactly the picture above):

    - ``lanes``: windows whose frame ranges do not overlap share a sub-row (greedy, in order of first frame), so a
      step needs as many sub-rows as windows overlap at one frame (2 for stride ``length/2``), not one per window.
    - ``axes``: a left margin with the step numbers (``step_labels``, default ``0, 1, ...``; every band's label
      when there is room, else evenly thinned), a frame axis below with ticks and frame numbers at a round spacing
      that keeps the numbers apart, and a legend (window colours, skipped frame, and with masks the frame a window
      holds but does not own).
    - ``max_width`` / ``max_height`` (pixels of the whole picture): the drawn size is bounded - ``cell`` shrinks
      (first columns, then rows, down to 1 pixel), then frames are binned (one column = the mean colour of
      ``ceil`` consecutive frames) and, if the bands are still too tall, only evenly spaced steps are drawn (the
      first and the last always; their labels stay their true step numbers). Text is drawn at twice the font size
      when the picture is at least 400 pixels wide (and ``max_height``, if given, at least 300).
    """
    if not (axes or lanes or max_width is not None or max_height is not None or step_labels is not None):
        return _render_rows(steps_windows, num_frames, blend_masks, cell)
    return _render_framed(steps_windows, num_frames, blend_masks, cell, axes=axes, lanes=lanes, max_width=max_width,
                          max_height=max_height, step_labels=step_labels)


def _check_picture_args(steps_windows, num_frames: int, blend_masks, cell: int) -> None:
    """``ValueError`` naming the argument for the checks both picture layouts share."""
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if cell < 1:
        raise ValueError(f"cell must be >= 1, got {cell}")
    if blend_masks is not None and len(blend_masks) != len(steps_windows):
        raise ValueError(
            f"blend_masks must have one entry per step ({len(steps_windows)}), got {len(blend_masks)}"
        )


def _render_rows(steps_windows, num_frames, blend_masks, cell) -> torch.Tensor:
    """The plain picture (one sub-row per window, ``cell`` pixels per frame), as documented above."""
    _check_picture_args(steps_windows, num_frames, blend_masks, cell)
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



# ----------------------------------------------------------------------------------------------------
# Framed picture: lanes, axes, legend, bounded size
# ----------------------------------------------------------------------------------------------------

_BG = (0.06, 0.06, 0.07)
_GAP = (0.22, 0.22, 0.24)
_SEP = (0.55, 0.55, 0.55)
_TEXT = (0.88, 0.88, 0.88)
_DIM = 0.3

# 3x5 pixel font: digits, upper-case letters and a few signs; '#' = ink. Lower case is drawn as upper case.
_FONT = {
    "0": "###|#.#|#.#|#.#|###", "1": ".#.|##.|.#.|.#.|###", "2": "###|..#|###|#..|###", "3": "###|..#|.##|..#|###",
    "4": "#.#|#.#|###|..#|..#", "5": "###|#..|###|..#|###", "6": "###|#..|###|#.#|###", "7": "###|..#|.#.|.#.|.#.",
    "8": "###|#.#|###|#.#|###", "9": "###|#.#|###|..#|###", "A": ".#.|#.#|###|#.#|#.#", "B": "##.|#.#|##.|#.#|##.",
    "C": ".##|#..|#..|#..|.##", "D": "##.|#.#|#.#|#.#|##.", "E": "###|#..|##.|#..|###", "F": "###|#..|##.|#..|#..",
    "G": ".##|#..|#.#|#.#|.##", "H": "#.#|#.#|###|#.#|#.#", "I": "###|.#.|.#.|.#.|###", "J": "..#|..#|..#|#.#|.#.",
    "K": "#.#|#.#|##.|#.#|#.#", "L": "#..|#..|#..|#..|###", "M": "#.#|###|###|#.#|#.#", "N": "##.|#.#|#.#|#.#|#.#",
    "O": ".#.|#.#|#.#|#.#|.#.", "P": "##.|#.#|##.|#..|#..", "Q": ".#.|#.#|#.#|##.|.##", "R": "##.|#.#|##.|#.#|#.#",
    "S": ".##|#..|.#.|..#|##.", "T": "###|.#.|.#.|.#.|.#.", "U": "#.#|#.#|#.#|#.#|###", "V": "#.#|#.#|#.#|#.#|.#.",
    "W": "#.#|#.#|###|###|#.#", "X": "#.#|#.#|.#.|#.#|#.#", "Y": "#.#|#.#|.#.|.#.|.#.", "Z": "###|..#|.#.|#..|###",
    " ": "...|...|...|...|...", "-": "...|...|###|...|...", ".": "...|...|...|...|.#.", ",": "...|...|...|.#.|#..",
    ":": "...|.#.|...|.#.|...", "/": "..#|..#|.#.|#..|#..", "(": ".#.|#..|#..|#..|.#.", ")": ".#.|..#|..#|..#|.#.",
    "=": "...|###|...|###|...", "+": "...|.#.|###|.#.|...", "%": "#.#|..#|.#.|#..|#.#", ">": "#..|.#.|..#|.#.|#..",
}
_GLYPH_W, _GLYPH_H = 3, 5


def _glyph(ch: str) -> torch.Tensor:
    rows = _FONT.get(ch.upper(), _FONT[" "]).split("|")
    return torch.tensor([[c == "#" for c in r] for r in rows], dtype=torch.bool)


def text_width(text: str, scale: int = 1) -> int:
    """Pixel width of ``text`` in the built-in font (3 pixels per glyph + 1 of spacing, times ``scale``)."""
    return max(0, len(text) * (_GLYPH_W + 1) - 1) * scale


def draw_text(img: torch.Tensor, x: int, y: int, text: str, colour=_TEXT, scale: int = 1) -> None:
    """Draw ``text`` into ``img`` ``[H, W, 3]`` in place with its top-left corner at ``(x, y)``; clipped."""
    col = torch.tensor(colour, dtype=img.dtype)
    h, w = img.shape[0], img.shape[1]
    for k, ch in enumerate(text):
        g = _glyph(ch).repeat_interleave(scale, 0).repeat_interleave(scale, 1)
        gx = x + k * (_GLYPH_W + 1) * scale
        y0, y1, x0, x1 = max(y, 0), min(y + g.shape[0], h), max(gx, 0), min(gx + g.shape[1], w)
        if y0 >= y1 or x0 >= x1:
            continue
        sub = g[y0 - y : y1 - y, x0 - gx : x1 - gx]
        img[y0:y1, x0:x1][sub] = col


def _lane_rows(windows: Sequence[Sequence[int]], lanes: bool) -> list[int]:
    """Sub-row of each window: its index, or with ``lanes`` the first lane whose windows end before it starts."""
    if not lanes:
        return list(range(len(windows)))
    ends: list[int] = []
    row = [0] * len(windows)
    for i in sorted(range(len(windows)), key=lambda i: (min(windows[i]), i)):
        lo = min(windows[i])
        for lane, end in enumerate(ends):
            if end < lo:
                ends[lane] = max(windows[i])
                row[i] = lane
                break
        else:
            ends.append(max(windows[i]))
            row[i] = len(ends) - 1
    return row


def _band_grid(windows, masks, num_frames: int, lanes: bool) -> torch.Tensor:
    """One step at one pixel per frame and per sub-row -> ``[rows, T, 3]``."""
    rows = _lane_rows(windows, lanes)
    grid = torch.tensor(_BG).repeat(max(1, max(rows, default=0) + 1), num_frames, 1)
    gap = torch.tensor(_GAP)
    for i, w in enumerate(windows):
        colour = torch.tensor(_palette(i))
        wl = list(w)
        r = rows[i]
        for a, b in zip(wl[:-1], wl[1:], strict=False):
            if b > a + 1:
                grid[r, a + 1 : b] = gap
        idx = torch.as_tensor(wl, dtype=torch.long)
        if masks is not None:
            m = torch.as_tensor(masks[i], dtype=torch.float32).reshape(-1, 1)
            grid[r, idx] = colour * (_DIM + (1 - _DIM) * m)
        else:
            grid[r, idx] = colour
    return grid


def _nice_spacing(min_frames: float) -> int:
    """Smallest of 1, 2, 5, 10, 20, 50, ... frames that is at least ``min_frames``."""
    base = 1
    while True:
        for m in (1, 2, 5):
            if m * base >= min_frames:
                return m * base
        base *= 10


def _render_framed(steps_windows, num_frames: int, blend_masks, cell: int, *, axes: bool, lanes: bool,
                   max_width: int | None, max_height: int | None, step_labels) -> torch.Tensor:
    _check_picture_args(steps_windows, num_frames, blend_masks, cell)
    n_steps = len(steps_windows)
    labels = list(range(n_steps)) if step_labels is None else [int(v) for v in step_labels]
    if len(labels) != n_steps:
        raise ValueError(f"step_labels must have one label per step ({n_steps}), got {len(labels)}")
    for name, v in (("max_width", max_width), ("max_height", max_height)):
        if v is not None and v < 16:
            raise ValueError(f"{name} must be >= 16 pixels (or None for no bound), got {v}")
    grids = [_band_grid(w, None if blend_masks is None else blend_masks[s], num_frames, lanes)
             for s, w in enumerate(steps_windows)] or [torch.tensor(_BG).repeat(1, num_frames, 1)]
    has_masks = blend_masks is not None and any(m is not None for m in blend_masks)
    has_gaps = any(b > a + 1 for ws in steps_windows for w in ws for a, b in zip(list(w)[:-1], list(w)[1:],
                                                                                   strict=False))

    # -- horizontal layout: text scale, left margin, pixels per frame or frames per column
    width_budget = max_width if max_width is not None else None
    scale = 1
    margin_l = 0
    if axes:
        scale = 2 if (width_budget or num_frames * cell) >= 400 and (max_height is None or max_height >= 300) else 1
        margin_l = text_width(str(max(labels, default=0)), scale) + 4 * scale + 2
    avail_w = None if width_budget is None else width_budget - margin_l - 2 * scale
    if avail_w is not None and avail_w < 4:
        raise ValueError(f"max_width={max_width} leaves no room for the frames; raise it")
    ppf, fpc = cell, 1  # pixels per frame, frames per column
    if avail_w is not None and num_frames * ppf > avail_w:
        ppf = max(1, avail_w // num_frames)
        if num_frames > avail_w:
            ppf, fpc = 1, math.ceil(num_frames / avail_w)
    cols = math.ceil(num_frames / fpc)
    plot_w = cols * ppf

    # -- vertical layout: axis + legend height, row pixels, steps shown
    line_h = (_GLYPH_H + 2) * scale
    axis_h = (3 * scale + line_h + line_h) if axes else 0  # ticks, numbers, "frame" title
    total_w = margin_l + plot_w + 2 * scale
    legend_lines = _legend_layout(has_gaps, has_masks, scale, total_w - 2) if axes else []
    legend_h = (len(legend_lines) * line_h + 2 * scale) if axes else 0
    top = (line_h + scale) if axes else 0  # "step" title above the step numbers
    rows_per = [g.shape[0] for g in grids]
    avail_h = None if max_height is None else max_height - axis_h - legend_h - top
    if avail_h is not None and avail_h < 4:
        raise ValueError(f"max_height={max_height} leaves no room for the steps; raise it")
    rpx = cell
    shown = list(range(len(grids)))

    def height(rp: int, idx: list[int]) -> int:
        return sum(rows_per[i] * rp for i in idx) + max(0, len(idx) - 1)

    if avail_h is not None and height(rpx, shown) > avail_h:
        rpx = max(1, (avail_h - max(0, len(shown) - 1)) // max(1, sum(rows_per)))
        n_keep = len(grids)
        while height(rpx, shown) > avail_h and n_keep > 1:  # evenly spaced steps, first and last kept
            n_keep -= 1
            shown = sorted({round(j * (len(grids) - 1) / max(1, n_keep - 1)) for j in range(n_keep)})

    grid_lines = fpc == 1 and ppf >= 3 and rpx >= 3
    bands: list[torch.Tensor] = []
    band_pos: list[tuple[int, int, int]] = []  # (label, y0, y1) in plot coordinates
    y = 0
    bg = torch.tensor(_BG)
    for n, i in enumerate(shown):
        g = grids[i]
        if fpc > 1:  # bin frames: one column = the mean colour of fpc consecutive frames
            pad = cols * fpc - num_frames
            gp = torch.cat([g, bg.repeat(g.shape[0], pad, 1)], 1) if pad else g
            g = gp.reshape(g.shape[0], cols, fpc, 3).mean(2)
        img = g.repeat_interleave(rpx, 0).repeat_interleave(ppf, 1)
        if grid_lines:
            img[rpx - 1 :: rpx, :, :] = bg
            img[:, ppf - 1 :: ppf, :] = bg
        bands.append(img)
        band_pos.append((labels[i], y, y + img.shape[0]))
        y += img.shape[0]
        if n + 1 < len(shown):
            bands.append(torch.tensor(_SEP).repeat(1, plot_w, 1))
            y += 1
    plot = torch.cat(bands, 0)
    if avail_h is not None:
        plot = plot[:avail_h]  # one step with more sub-rows than fit: its lowest rows are cut
    if not axes:
        return plot.unsqueeze(0).clamp_(0.0, 1.0)

    # -- frame: margins, step labels, frame axis, legend
    total_h = top + plot.shape[0] + axis_h + legend_h
    out = torch.tensor(_BG).repeat(total_h, total_w, 1)
    out[top : top + plot.shape[0], margin_l : margin_l + plot_w] = plot
    draw_text(out, 1, 1, "STEP", scale=scale)
    # step labels at band centres, thinned so they never overlap
    last_bottom = -10**9
    for label, y0, y1 in band_pos:
        cy = top + (y0 + y1) // 2 - (_GLYPH_H * scale) // 2
        if cy < last_bottom + scale:
            continue
        txt = str(label)
        draw_text(out, margin_l - 3 * scale - text_width(txt, scale), cy, txt, scale=scale)
        last_bottom = cy + _GLYPH_H * scale
    # frame axis: line, ticks and numbers at a round spacing wide enough for the numbers
    ay = top + plot.shape[0] + scale
    out[ay : ay + scale, margin_l : margin_l + plot_w] = torch.tensor(_TEXT)
    px_per_frame = ppf / fpc
    need = (text_width(str(num_frames - 1), scale) + 4 * scale) / px_per_frame
    spacing = _nice_spacing(max(1.0, need))
    for f in range(0, num_frames, spacing):
        x = margin_l + int((f + 0.5) * px_per_frame)
        out[ay : ay + 3 * scale, x : x + scale] = torch.tensor(_TEXT)
        txt = str(f)
        tx = min(max(0, x - text_width(txt, scale) // 2), total_w - text_width(txt, scale))
        draw_text(out, tx, ay + 3 * scale + scale, txt, scale=scale)
    draw_text(out, margin_l, ay + 3 * scale + line_h + scale, f"FRAME (0-{num_frames - 1})", scale=scale)
    for k, line in enumerate(legend_lines):
        _draw_legend(out, 1, total_h - legend_h + scale + k * line_h, line, scale)
    return out.unsqueeze(0).clamp_(0.0, 1.0)


def _legend_items(has_gaps: bool, has_masks: bool) -> list[tuple[list[tuple[float, float, float]], str]]:
    items = [([_palette(0), _palette(1), _palette(2)], "WINDOWS, ONE COLOUR EACH")]
    if has_gaps:
        items.append(([_GAP], "SKIPPED FRAME"))
    if has_masks:
        items.append(([tuple(c * _DIM for c in _palette(0))], "HELD, NOT OWNED (BLEND CUT)"))
    return items


def _item_width(item, scale: int) -> int:
    colours, txt = item
    return 6 * scale * len(colours) + text_width(txt, scale) + 8 * scale


def _legend_layout(has_gaps: bool, has_masks: bool, scale: int, width: int) -> list[list]:
    """Legend items wrapped into lines of at most ``width`` pixels (an item wider than a line gets its own)."""
    lines: list[list] = [[]]
    used = 0
    for item in _legend_items(has_gaps, has_masks):
        w = _item_width(item, scale)
        if lines[-1] and used + w > width:
            lines.append([])
            used = 0
        lines[-1].append(item)
        used += w
    return lines


def _draw_legend(img: torch.Tensor, x: int, y: int, items, scale: int) -> None:
    for colours, txt in items:
        for colour in colours:
            img[y : y + _GLYPH_H * scale, x : x + 5 * scale] = torch.tensor(colour)
            x += 6 * scale
        draw_text(img, x, y, txt, scale=scale)
        x += text_width(txt, scale) + 8 * scale
