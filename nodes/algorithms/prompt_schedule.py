"""Frame-interval prompt schedules and per-window prompt choice (pure layer).

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

Interpolating the conditions themselves (Gen-L ``c = sum_k w_k c_k``): :func:`interpolate_conditioning` for
cross-attention conditioning ``[B, L_k, C]`` whose token lengths ``L_k`` differ (prompts of more than one
75-token chunk), padded the way the host pads conds it batches together -- ComfyUI ``comfy/conds.py``
``CONDCrossAttn.concat``: every cond repeated along the token axis to the least common multiple of the lengths,
which leaves softmax cross-attention unchanged (each key/value pair appears ``lcm / L_k`` times, the weights
renormalise) -- and :func:`interpolate_pooled` for pooled text embeddings (SDXL's ``pooled_output``, or the
model's ``y`` vector that carries it), which have one shape for every prompt.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from typing import NamedTuple

import torch

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


#: Largest factor a cond's token axis may be repeated by to reach the common length, as the host allows when it
#: batches conds (``CONDCrossAttn.can_concat``: "arbitrary limit on the padding", 4).
MAX_TOKEN_REPEAT = 4


def common_token_length(lengths: Sequence[int], max_repeat: int = MAX_TOKEN_REPEAT) -> int:
    """The token length conds of token lengths ``lengths`` are padded to: their least common multiple (ComfyUI
    ``CONDCrossAttn.concat``). Raises ``ValueError`` if a length is not a positive int, or if some cond would have
    to be repeated more than ``max_repeat`` times (the host refuses to batch those, ``can_concat``; an lcm of
    unrelated lengths can be enormous, e.g. 77 and 78 -> 6006)."""
    values = list(lengths)
    if not values or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in values):
        raise ValueError(f"token lengths must be positive ints, got {values}")
    if isinstance(max_repeat, bool) or not isinstance(max_repeat, int) or max_repeat < 1:
        raise ValueError(f"max_repeat must be an int >= 1, got {max_repeat!r}")
    common = math.lcm(*values)
    if common // min(values) > max_repeat:
        raise ValueError(
            f"prompts of token lengths {sorted(set(values))} cannot be interpolated: padding them to a common "
            f"length (their least common multiple, {common}) repeats the shortest {common // min(values)} times, "
            f"more than {max_repeat}; give the prompts closer token lengths (e.g. the same number of 75-token "
            "chunks: shorten the longest prompt or lengthen the shortest)"
        )
    return common


def pad_tokens(cond: torch.Tensor, length: int) -> torch.Tensor:
    """``cond [B, L, C]`` repeated along the token axis to ``length`` tokens (a multiple of ``L``), as ComfyUI
    pads cross-attention conds of different lengths; returns ``cond`` itself when ``L == length``."""
    if cond.ndim != 3:
        raise ValueError(f"cond must be a [batch, tokens, channels] tensor, got shape {tuple(cond.shape)}")
    n = cond.shape[1]
    if n < 1 or length % n:
        raise ValueError(f"length must be a multiple of the cond's {n} tokens, got {length}")
    return cond if length == n else cond.repeat(1, length // n, 1)


def _check_weights(weights: Sequence[float], count: int) -> list[float]:
    values = [float(w) for w in weights]
    if len(values) != count:
        raise ValueError(f"weights has {len(values)} values for {count} conds; give one weight per cond")
    if any(not math.isfinite(w) or w < 0 for w in values) or sum(values) <= 0:
        raise ValueError(f"weights must be finite, >= 0 and not all 0, got {values}")
    total = sum(values)
    return [w / total for w in values]


def _weighted_sum(tensors: Sequence[torch.Tensor], weights: list[float]) -> torch.Tensor:
    """``sum_k w_k t_k`` accumulated in float32 (float64 if any input is), returned in the first tensor's dtype."""
    acc_dtype = torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32
    out = torch.zeros(tensors[0].shape, dtype=acc_dtype, device=tensors[0].device)
    for t, w in zip(tensors, weights):
        if w:
            out.add_(t.to(acc_dtype), alpha=w)
    return out.to(tensors[0].dtype)


def _check_same(tensors: Sequence[torch.Tensor], what: str) -> None:
    if not tensors:
        raise ValueError(f"{what}: give at least one tensor")
    for i, t in enumerate(tensors):
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            raise ValueError(f"{what}[{i}] must be a floating-point tensor, got {type(t).__name__} "
                             f"{getattr(t, 'dtype', '')}")
        if t.device != tensors[0].device:
            raise ValueError(f"{what}[{i}] is on {t.device} but {what}[0] is on {tensors[0].device}; "
                             "move them to one device")


def interpolate_conditioning(
    conds: Sequence[torch.Tensor], weights: Sequence[float], max_repeat: int = MAX_TOKEN_REPEAT
) -> torch.Tensor:
    """Gen-L-Video condition interpolation (sec. 3.2) of cross-attention conditioning of any token lengths.

    ``conds``: ``[B, L_k, C]`` tensors (same ``B`` and ``C``, token lengths ``L_k`` may differ); ``weights``: one
    per cond, ``>= 0`` (normalised to sum 1, e.g. :func:`genl_prompt_weights`). Every cond is first padded to the
    common length :func:`common_token_length` by repetition along the token axis (:func:`pad_tokens`, the host's
    ``CONDCrossAttn.concat`` padding), then ``c = sum_k w_k pad(c_k)``. The padding does not change what a cond
    does to softmax cross-attention, so a weight of 1 on one prompt reproduces that prompt's attention exactly;
    in between, the mix is Gen-L's linear interpolation token by token, the shorter prompt's tokens aligned with
    every chunk of the longer one. Accumulated in float32 (float64 if an input is), returned in the dtype of
    ``conds[0]``, shape ``[B, lcm(L_k), C]``. Raises ``ValueError`` naming the problem for mismatched batch or
    channel sizes, devices, weights, or lengths the host would not pad (more than ``max_repeat`` repeats).
    """
    conds = list(conds)
    _check_same(conds, "conds")
    w = _check_weights(weights, len(conds))
    for i, c in enumerate(conds):
        if c.ndim != 3:
            raise ValueError(f"conds[{i}] must be a [batch, tokens, channels] tensor, got shape {tuple(c.shape)}")
        if c.shape[0] != conds[0].shape[0] or c.shape[2] != conds[0].shape[2]:
            raise ValueError(
                f"conds[{i}] has shape {tuple(c.shape)} but conds[0] has {tuple(conds[0].shape)}: batch and channel "
                "sizes must match (prompts from the same text encoder, same batch)"
            )
    length = common_token_length([c.shape[1] for c in conds], max_repeat)
    return _weighted_sum([pad_tokens(c, length) for c in conds], w)


def interpolate_pooled(pooled: Sequence[torch.Tensor], weights: Sequence[float]) -> torch.Tensor:
    """Gen-L condition interpolation of pooled text embeddings: ``sum_k w_k p_k`` (weights normalised to sum 1).

    For SDXL's ``pooled_output`` ``[B, 1280]`` and any same-shape per-prompt vector, e.g. the model's ``y`` (ADM)
    conditioning, which for SDXL is the pooled output followed by the size embeddings (identical for prompts of
    one image size, so they pass through unchanged). All tensors must have one shape and device; float32
    accumulation, result in the dtype of ``pooled[0]``.
    """
    pooled = list(pooled)
    _check_same(pooled, "pooled")
    w = _check_weights(weights, len(pooled))
    for i, p in enumerate(pooled):
        if p.shape != pooled[0].shape:
            raise ValueError(
                f"pooled[{i}] has shape {tuple(p.shape)} but pooled[0] has {tuple(pooled[0].shape)}: pooled outputs "
                "of different prompts must come from the same text encoder and batch"
            )
    return _weighted_sum(pooled, w)


def latent_first_video_frame(k: int, ratio: int) -> int:
    """First video frame held by latent frame ``k`` under a causal video VAE of temporal ratio ``ratio`` (Wan,
    HunyuanVideo: 4; LTX-Video: 8): latent 0 holds video frame 0 alone, latent ``k >= 1`` frames
    ``r(k-1)+1 .. rk``; ``ratio = 1`` is the identity (SD / AnimateDiff)."""
    return 0 if k == 0 else ratio * (k - 1) + 1


def video_range_to_latent(start: int, end: int | None, ratio: int, name: str = "frames") -> tuple[int, int | None]:
    """An inclusive range of video frames (``end=None``: to the last frame) in latent frames, by the rule of
    :func:`video_intervals_to_latent`: a latent frame belongs to the range when its first video frame
    (:func:`latent_first_video_frame`) does, so ``start`` -> the first latent frame starting at or after it and
    ``end`` -> the last latent frame starting at or before it. ``ratio = 1`` is the identity. Raises ``ValueError``
    naming ``name`` for a range that starts no latent frame (it lies inside one latent frame, after its first video
    frame)."""
    r = int(ratio)
    if r < 1:
        raise ValueError(f"ratio must be >= 1, got {ratio}")
    lo = 0 if start <= 0 else (int(start) + r - 2) // r + 1
    if end is None:
        return lo, None
    hi = 0 if end <= 0 else (int(end) - 1) // r + 1
    if lo > hi:
        raise ValueError(f"{name}: video frames {start}-{end} start no latent frame (the model compresses {r} video "
                         f"frames into one latent frame, latent k >= 1 = video frames {r}(k-1)+1 .. {r}k); start the "
                         f"range at a frame 1 + {r}k (1, {1 + r}, {1 + 2 * r}, ...) or widen it")
    return lo, hi


def video_intervals_to_latent(
    intervals: Sequence[PromptInterval], ratio: int, num_video_frames: int
) -> list[PromptInterval]:
    """The same schedule in latent frames: a latent frame takes the prompts of the intervals that hold its first
    video frame, i.e. ``start`` -> the first latent frame starting at or after it, ``end`` -> the last latent frame
    starting at or before it. Adjacent video ranges (``a-b``, ``b+1-c``) give adjacent latent ranges, so a schedule
    that covers every video frame covers every latent frame. Raises ``ValueError`` for an interval that starts no
    latent frame (narrower than one, inside another interval's first latent frame), naming it and the latent
    frame's video frames.
    """
    r = int(ratio)
    if r < 1:
        raise ValueError(f"ratio must be >= 1, got {ratio}")
    latents = (int(num_video_frames) - 1) // r + 1
    first = [latent_first_video_frame(k, r) for k in range(latents)]
    out: list[PromptInterval] = []
    for iv in intervals:
        start = next((k for k, f in enumerate(first) if f >= iv.start), latents)
        end = max((k for k, f in enumerate(first) if f <= iv.end), default=-1)
        if start > end:
            k = end if end >= 0 else 0
            lo, hi = first[k], (first[k + 1] - 1 if k + 1 < latents else num_video_frames - 1)
            raise ValueError(
                f"prompt schedule range {iv.start}-{iv.end} ({iv.prompt!r}) starts no latent frame: video frames "
                f"{lo}-{hi} are latent frame {k} (the model compresses {r} frames into one); start the range at "
                f"a frame 1 + {r}k (1, {1 + r}, {1 + 2 * r}, ...) or widen it"
            )
        out.append(PromptInterval(start, end, iv.prompt))
    return out
