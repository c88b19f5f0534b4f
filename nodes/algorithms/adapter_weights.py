"""Per-window adapter (LoRA) weights for motion customization / alternation (pure layer).

Paper
-----
ZoLA (``zola.txt``), sec. 4.5 "Motion customization/alternation": several motion adapters (LoRAs) are
pre-loaded, the user tags frame intervals with the adapter to use there, and "the insertion weights" of each
adapter are adjusted "depending on the set of frames selected for denoising": when a window holds half of its
frames tagged 'left' and half tagged 'up', both adapters get weight alpha/2. Written as an equation
(the paper gives it only by example; we call it Eq. 4.5)::

    w_a(window) = alpha_a * |{f in window : f tagged with a}| / |window|                       (Eq. 4.5)

Choices the paper leaves open (stated here, tested in ``tests/unit/test_adapter_weights.py``):

- A window is a list of latent-frame indices (ZoLA windows may skip frames); ``|window|`` counts its entries, so
  a frame listed twice counts twice (the pack's schedules never list a frame twice).
- Tags of one adapter may overlap each other: a frame is tagged or not (union of the adapter's intervals).
  Tags of different adapters may overlap: each adapter's weight is computed on its own, so a frame tagged with two
  adapters counts for both (weights are not normalised to sum to alpha; the paper's example has disjoint tags).
- Frames with no tag get no adapter (weight 0 contributions): the adapter-free model.
- Out-of-range intervals: an interval's END past the last frame is clamped (``"64-999"`` and the open
  ``"64-"`` both mean "to the end"); an interval whose START is past the last frame is refused with a
  ``ValueError`` (almost always a unit mistake, e.g. video frames given for a Wan latent, 4 video frames per
  latent frame).

Interval text: comma/semicolon/newline separated items ``a-b`` (inclusive), ``a-`` (a to the end) or ``a``
(one frame), 0-based latent frames, e.g. ``"0-31, 64-95"``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import NamedTuple

logger = logging.getLogger(__name__)

_ITEM = re.compile(r"^(\d+)\s*(?:(-)\s*(\d+)?)?$")


class FrameInterval(NamedTuple):
    """Latent frames ``start..end`` inclusive; ``end=None`` means "to the last frame"."""

    start: int
    end: int | None


def parse_intervals(text: str, name: str = "frames") -> list[FrameInterval]:
    """Parse ``"0-31, 64-95, 120-"`` into :class:`FrameInterval` s (text order).

    Items are separated by commas, semicolons or newlines; each is ``a-b``, ``a-`` or ``a`` with non-negative
    integers. Raises ``ValueError`` naming ``name`` for an empty text, an item that does not parse, or
    ``start > end``. The frame count is not known here: see :func:`resolve_intervals`.
    """
    items = [s.strip() for s in re.split(r"[,;\n]", text or "") if s.strip()]
    if not items:
        raise ValueError(f"{name}: no frame interval given; write latent frame ranges like '0-31, 64-95' "
                         "('64-' = from 64 to the end)")
    out: list[FrameInterval] = []
    for item in items:
        m = _ITEM.match(item)
        if m is None:
            raise ValueError(f"{name}: cannot read {item!r}; write ranges of latent frames like '0-31', '64-' "
                             "(to the end) or '7' (one frame), separated by commas")
        start = int(m.group(1))
        end = start if m.group(2) is None else (None if m.group(3) is None else int(m.group(3)))
        if end is not None and end < start:
            raise ValueError(f"{name}: in {item!r} the end {end} is before the start {start}; write start-end "
                             "with start <= end")
        out.append(FrameInterval(start, end))
    return out


def resolve_intervals(intervals: Sequence[FrameInterval], num_frames: int,
                      name: str = "frames") -> list[tuple[int, int]]:
    """Clamp intervals to a video of ``num_frames`` latent frames: inclusive ``(start, end)`` pairs.

    Ends past the last frame (and open ends) become ``num_frames - 1``; a start past the last frame raises
    ``ValueError`` naming ``name``, the allowed range and the fix.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    last = num_frames - 1
    out = []
    for iv in intervals:
        if iv.start > last:
            raise ValueError(f"{name}: the interval starting at frame {iv.start} is past the last latent frame "
                             f"({last}) of this {num_frames}-frame video; frames are latent frames in "
                             f"[0, {last}] (Wan: (video_frame - 1) // 4 + 1)")
        end = last if iv.end is None else min(iv.end, last)
        out.append((int(iv.start), int(end)))
    return out


def tag_mask(intervals: Sequence[FrameInterval], num_frames: int, name: str = "frames") -> list[bool]:
    """Per-frame tag of one adapter (union of its clamped intervals), length ``num_frames``."""
    mask = [False] * num_frames
    for start, end in resolve_intervals(intervals, num_frames, name):
        for f in range(start, end + 1):
            mask[f] = True
    return mask


def validate_scale(scale: float, name: str = "strength") -> None:
    """An adapter scale alpha must be finite (negative values invert a LoRA, allowed as in core's loader)."""
    if scale != scale or abs(scale) == float("inf"):
        raise ValueError(f"{name} must be a finite number, got {scale}")


def window_adapter_weights(window: Sequence[int],
                           adapters: Sequence[tuple[float, Sequence[FrameInterval]]],
                           num_frames: int | None = None) -> list[float]:
    """ZoLA Eq. 4.5: ``w_a = alpha_a * |window ∩ tagged_a| / |window|`` for every adapter ``a``.

    ``window``: latent-frame indices of the frames denoised together (any order, may skip frames).
    ``adapters``: ``(alpha, intervals)`` per adapter, intervals as from :func:`parse_intervals`.
    ``num_frames``: the video's latent frame count, for clamping (default: ``max(window) + 1``, which never
    refuses an interval; pass it to get the out-of-range check). Returns one weight per adapter, in order.
    """
    if len(window) == 0:
        raise ValueError("window must hold at least one frame")
    if min(window) < 0:
        raise ValueError(f"window frame indices must be >= 0, got {min(window)}")
    total = int(num_frames) if num_frames is not None else max(window) + 1
    if max(window) >= total:
        raise ValueError(f"window frame {max(window)} is outside a video of {total} frames")
    weights = []
    for i, (scale, intervals) in enumerate(adapters):
        validate_scale(scale)
        if num_frames is None:  # clamp silently: intervals past the window's frames simply cover nothing
            spans = [(iv.start, total - 1 if iv.end is None else iv.end) for iv in intervals]
        else:
            spans = resolve_intervals(intervals, total, f"adapter {i + 1} frames")
        hits = sum(1 for f in window if any(a <= f <= b for a, b in spans))
        weights.append(float(scale) * hits / len(window))
    return weights


def describe_weights(windows: Sequence[Sequence[int]], adapters: Sequence[tuple[float, Sequence[FrameInterval]]],
                     num_frames: int) -> list[list[float]]:
    """Eq. 4.5 for several windows: ``[window][adapter]`` weights (for previews and logs)."""
    return [window_adapter_weights(w, adapters, num_frames) for w in windows]
