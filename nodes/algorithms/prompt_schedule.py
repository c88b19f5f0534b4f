"""Frame-interval prompt schedules and per-window prompt choice (pure layer, issue 4).

Papers
------
- ZoLA (``zola.txt``), sec. 4.5 "Multi-prompt transition": each local prompt has a frame interval; a
  selected set of frames (a window) is denoised with the prompt of the interval containing most of
  its frames (no embedding interpolation). The same frame-count proportion is what ZoLA uses for
  motion-adapter weights ("half the frames tagged 'left' => weight alpha/2").
- Gen-L-Video (``gen-l-video.txt``), sec. 3.2 "Condition interpolation" and supplementary "Multi-text
  long video": clips straddling differently labelled segments get an interpolated condition.

Text format (one interval per line, inclusive frame ranges)::

    # comment
    0-63: a cat walks
    64-: a cat sleeps        (64 to the last frame)
    10: a single frame

Blank lines and lines starting with ``#`` are ignored. Overlapping intervals are allowed: a frame in
several intervals belongs to all of them (ZoLA's majority rule then counts it for each; Gen-L weights
count it for each, then normalise).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import NamedTuple

logger = logging.getLogger(__name__)

_LINE = re.compile(r"^\s*(\d+)\s*(?:(-)\s*(\d+)?)?\s*:(.*)$")


class PromptInterval(NamedTuple):
    """Frames ``start..end`` (inclusive, 0-based) use ``prompt``."""

    start: int
    end: int
    prompt: str


def _ranges_text(frames: Sequence[int]) -> str:
    parts: list[str] = []
    i = 0
    while i < len(frames):
        j = i
        while j + 1 < len(frames) and frames[j + 1] == frames[j] + 1:
            j += 1
        parts.append(str(frames[i]) if i == j else f"{frames[i]}-{frames[j]}")
        i = j + 1
    return ", ".join(parts)


def parse_prompt_schedule(text: str, num_frames: int) -> list[PromptInterval]:
    """Parse ``start-end: prompt`` lines into :class:`PromptInterval` s (in text order).

    Accepted per line: ``a-b: p`` (frames a..b inclusive), ``a-: p`` (a to ``num_frames-1``), ``a: p``
    (frame a only); blank lines and ``#`` comment lines are skipped; the prompt is stripped and must
    be non-empty. Raises ``ValueError`` naming the line number for a line that does not parse, an
    empty prompt, ``start > end``, or a range outside ``[0, num_frames)``; and, after all lines, listing
    the uncovered frame ranges if some frames have no prompt. Overlapping intervals are allowed.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    intervals: list[PromptInterval] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _LINE.match(line)
        if m is None:
            raise ValueError(
                f"prompt schedule line {lineno}: cannot parse {line!r}; expected 'start-end: prompt', "
                "'start-: prompt' or 'frame: prompt' with non-negative integer frames"
            )
        start = int(m.group(1))
        dash, end_s, prompt = m.group(2), m.group(3), m.group(4).strip()
        end = start if dash is None else (num_frames - 1 if end_s is None else int(end_s))
        if not prompt:
            raise ValueError(f"prompt schedule line {lineno}: empty prompt after ':'")
        if start >= num_frames:
            raise ValueError(
                f"prompt schedule line {lineno}: start frame {start} is outside [0, {num_frames}) "
                f"(the video has {num_frames} frames, last frame {num_frames - 1})"
            )
        if end >= num_frames:
            raise ValueError(
                f"prompt schedule line {lineno}: range {start}-{end} is outside [0, {num_frames}) "
                f"(the video has {num_frames} frames, last frame {num_frames - 1}; "
                f"write '{start}-:' to run to the end)"
            )
        if start > end:
            raise ValueError(
                f"prompt schedule line {lineno}: start {start} is after end {end}; "
                "write the range as low-high"
            )
        intervals.append(PromptInterval(start, end, prompt))
    if not intervals:
        raise ValueError("prompt schedule is empty: give at least one line 'start-end: prompt'")
    covered = bytearray(num_frames)
    for iv in intervals:
        covered[iv.start : iv.end + 1] = b"\x01" * (iv.end - iv.start + 1)
    missing = [f for f in range(num_frames) if not covered[f]]
    if missing:
        raise ValueError(
            f"prompt schedule leaves frames without a prompt: {_ranges_text(missing)}; "
            "extend a range or add lines for them"
        )
    return intervals


def _overlaps(window: Sequence[int], intervals: Sequence[PromptInterval]) -> list[int]:
    return [sum(1 for f in window if iv.start <= f <= iv.end) for iv in intervals]


def zola_prompt_for_window(window: Sequence[int], intervals: Sequence[PromptInterval]) -> int:
    """Index of the interval holding most of ``window``'s frames (ZoLA sec. 4.5 multi-prompt).

    Tie rule (the paper leaves it open): among the tied intervals, the one containing the window's
    middle frame ``window[len(window)//2]`` (Gen-L's anchor frame); if none or several do, the lowest
    index (earliest line). Raises ``ValueError`` if no interval holds any frame of the window.
    """
    if not window:
        raise ValueError("window must contain at least one frame")
    counts = _overlaps(window, intervals)
    best = max(counts, default=0)
    if best == 0:
        raise ValueError(f"no prompt interval covers any frame of window {list(window)[:4]}...")
    tied = [i for i, c in enumerate(counts) if c == best]
    if len(tied) > 1:
        mid = window[len(window) // 2]
        holding = [i for i in tied if intervals[i].start <= mid <= intervals[i].end]
        if holding:
            return holding[0]
    return tied[0]


def genl_prompt_weights(
    window: Sequence[int], intervals: Sequence[PromptInterval]
) -> list[tuple[int, float]]:
    """Gen-L-Video condition interpolation weights for one window: ``[(interval index, weight), ...]``.

    ``weight_k = |window ∩ interval_k| / sum_m |window ∩ interval_m|`` (frame counts), so the weights sum
    to 1 and the window's condition is ``c = sum_k weight_k c_k``. This is the frame-count form of
    Gen-L's linear interpolation ``c = (k-j)/k c_a + j/k c_b`` between labelled clips: a window sliding
    from segment a into b moves its weight linearly with the number of frames in b. Only intervals
    with nonzero overlap are listed, sorted by index. Raises ``ValueError`` if none overlaps.
    """
    if not window:
        raise ValueError("window must contain at least one frame")
    counts = _overlaps(window, intervals)
    total = sum(counts)
    if total == 0:
        raise ValueError(f"no prompt interval covers any frame of window {list(window)[:4]}...")
    return [(i, c / total) for i, c in enumerate(counts) if c]
