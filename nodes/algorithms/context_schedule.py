"""Context-window scheduling and temporal co-denoising (pure layer, issue 4).

Papers
------
- ZoLA (``zola.txt``), section 4.3: sliding windows (Eq. 5), random start per denoising step (Eq. 6),
  random frame skip (Eq. 7), merge weights decaying from the window centre (Eq. 4).
- Gen-L-Video (``gen-l-video.txt``), section 3.2 and supplementary III: clips of M frames at stride S,
  fused by the least-squares optimum ``v_j = sum_i W_ij^2 v_ij / sum_i W_ij^2``.
- StreamingT2V (``streamingt2v.txt``), section 4.3, Eq. 8: randomized blending - two consecutive chunks
  overlapping by O frames are joined at a random cut ``f_thr ~ U{0..O}``.
- Parity schedules (own code, behaviour as described in /work/shared/research/anchors.md): ``static``,
  ``shifted`` (uniform windows shifted every step by the bit-reversal "ordered halving" sequence),
  ``looped`` (windows wrap around the end) and ``batched`` (no overlap).

Conventions
-----------
A *window* is a ``list[int]`` of absolute frame indices in temporal order (may be strided; for the
``looped`` schedule the order is loop order and may wrap, e.g. ``[14, 15, 0, 1]``). A schedule is a
``list[list[int]]``. Every schedule covers every frame ``0..num_frames-1`` at every step, and
``num_frames <= length`` always gives exactly one window ``[0..num_frames-1]``.

Randomness: every random function takes an explicit CPU ``torch.Generator``; :func:`step_generator`
derives one from ``(seed, step, stream)``. Nothing here touches the global RNG.

Tensors: the frame axis is a parameter (``frame_axis``: 0 for ``[T, C, H, W]``, 2 for
``[B, C, T, H, W]``). Fusion memory is two buffers (numerator like ``x``, denominator ``[T]``) plus one
batch of window outputs, independent of the number of windows.
"""

from __future__ import annotations

import colorsys
import logging
import math
from collections.abc import Callable, Sequence

import torch

logger = logging.getLogger(__name__)

SCHEDULES = ("uniform", "zola", "static", "looped", "shifted", "batched")
WEIGHT_METHODS = ("flat", "least_squares", "zola", "pyramid", "overlap_linear")
BLEND_VARIANTS = ("paper", "official")

#: ``stream`` values for :func:`step_generator`: windows and blend cuts draw from independent streams
#: so that the ZoLA start ``k`` and the blend cuts of the same step are not correlated.
STREAM_WINDOWS = 0
STREAM_BLEND = 1

_MASK64 = (1 << 64) - 1


# ----------------------------------------------------------------------------------------------------
# Randomness helpers
# ----------------------------------------------------------------------------------------------------


def _splitmix64(z: int) -> int:
    z = (z + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def mix_seed(seed: int, step: int, stream: int = STREAM_WINDOWS) -> int:
    """Mix ``(seed, step, stream)`` into one 32-bit generator seed.

    ``h = splitmix64(splitmix64(splitmix64(seed mod 2^64) ^ (step mod 2^64)) ^ (stream mod 2^64))``,
    then folded to 32 bits as ``(h ^ (h >> 32)) & 0xFFFFFFFF``. The fold matters: torch's CPU
    generator (mt19937) only uses the low 32 bits of ``manual_seed``, so seeds that differ only in
    their high bits would otherwise give identical streams. Same inputs => same value; distinct inputs
    collide with probability ~2^-32 per pair.
    """
    h = _splitmix64(int(seed) & _MASK64)
    h = _splitmix64(h ^ (int(step) & _MASK64))
    h = _splitmix64(h ^ (int(stream) & _MASK64))
    return (h ^ (h >> 32)) & 0xFFFFFFFF


def step_generator(seed: int, step: int, stream: int = STREAM_WINDOWS) -> torch.Generator:
    """CPU ``torch.Generator`` seeded with :func:`mix_seed` ``(seed, step, stream)``.

    Use ``stream=STREAM_WINDOWS`` for window draws (what :func:`make_windows` uses) and
    ``stream=STREAM_BLEND`` for :func:`randomized_blend_masks` of the same step.
    """
    g = torch.Generator(device="cpu")
    g.manual_seed(mix_seed(seed, step, stream))
    return g


def _randint(generator: torch.Generator, low: int, high_inclusive: int) -> int:
    """One integer uniform on ``{low..high_inclusive}`` from ``generator`` (CPU)."""
    return int(torch.randint(low, high_inclusive + 1, (1,), generator=generator).item())


# ----------------------------------------------------------------------------------------------------
# Validation
# ----------------------------------------------------------------------------------------------------


def validate_window_params(
    context_length: int,
    stride: int | None = None,
    overlap: int | None = None,
    max_skip: int | None = None,
    num_frames: int | None = None,
    schedule: str | None = None,
) -> None:
    """Cheap checks of the user-facing window inputs; raise ``ValueError`` naming the input.

    Rules: ``context_length >= 1``; ``1 <= stride <= context_length`` (Gen-L/ZoLA require s <= f so
    consecutive windows touch or overlap); ``0 <= overlap < context_length``; ``max_skip >= 1``;
    ``num_frames >= 1``; ``schedule`` in :data:`SCHEDULES`. ``None`` skips a check.
    """
    if schedule is not None and schedule not in SCHEDULES:
        raise ValueError(f"context_schedule must be one of {SCHEDULES}, got {schedule!r}")
    if not isinstance(context_length, int) or context_length < 1:
        raise ValueError(f"context_length must be an integer >= 1, got {context_length!r}")
    if stride is not None and (stride < 1 or stride > context_length):
        raise ValueError(
            f"stride must be in [1, context_length={context_length}], got {stride}; "
            "use a stride no larger than the window so consecutive windows overlap or touch"
        )
    if overlap is not None and (overlap < 0 or overlap >= context_length):
        raise ValueError(
            f"overlap must be in [0, context_length-1={context_length - 1}], got {overlap}; "
            "lower the overlap or raise context_length"
        )
    if max_skip is not None and max_skip < 1:
        raise ValueError(f"max_skip must be >= 1 (1 = no frame skipping), got {max_skip}")
    if num_frames is not None and num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")


def _check_basic(num_frames: int, length: int) -> None:
    validate_window_params(length, num_frames=num_frames)


# ----------------------------------------------------------------------------------------------------
# Schedules
# ----------------------------------------------------------------------------------------------------


def _single(num_frames: int) -> list[list[int]]:
    return [list(range(num_frames))]


def uniform_windows(num_frames: int, length: int, stride: int) -> list[list[int]]:
    """Gen-L-Video temporal co-denoising clips (sec. 3.2, ``F_i(v) = v[S*i : S*i+M]``; ZoLA Eq. 5).

    Windows of ``length`` contiguous frames start at ``0, stride, 2*stride, ...``; the first window
    that would run past the end is shifted left to end at the last frame (Gen-L's grid requires
    ``T = S*N + M``; the shift lets any ``T`` be used). Since ``stride <= length`` every frame is
    covered. ``num_frames <= length`` gives one window ``[0..num_frames-1]``.
    """
    _check_basic(num_frames, length)
    validate_window_params(length, stride=stride)
    if num_frames <= length:
        return _single(num_frames)
    starts = list(range(0, num_frames - length, stride)) + [num_frames - length]
    return [list(range(s, s + length)) for s in starts]


def static_windows(num_frames: int, length: int, overlap: int) -> list[list[int]]:
    """Parity schedule "static": fixed windows overlapping by ``overlap``; the last one is shifted back.

    Identical to :func:`uniform_windows` with ``stride = length - overlap`` (the same at every step).
    """
    _check_basic(num_frames, length)
    validate_window_params(length, overlap=overlap)
    return uniform_windows(num_frames, length, length - overlap)


def batched_windows(num_frames: int, length: int) -> list[list[int]]:
    """Parity schedule "batched": consecutive windows with no overlap.

    Choice: the last window is *shorter* (``num_frames % length`` frames) rather than shifted back,
    so no frame is evaluated twice (the point of the schedule). :func:`co_denoise` batches it
    separately because its length differs.
    """
    _check_basic(num_frames, length)
    if num_frames <= length:
        return _single(num_frames)
    return [list(range(s, min(s + length, num_frames))) for s in range(0, num_frames, length)]


def ordered_halving(step: int) -> float:
    """Bit-reversal ("ordered halving") sequence in [0, 1): 0, 1/2, 1/4, 3/4, 1/8, 5/8, ...

    The 64-bit binary digits of ``step`` are mirrored around the binary point: it visits the
    coarsest offsets first and never repeats, which is how the anchors shift windows per step.
    """
    s = int(step) & _MASK64
    rev = int(f"{s:064b}"[::-1], 2)
    return rev / float(1 << 64)


def _circle_starts(num_frames: int, length: int, overlap: int, step: int, closed_loop: bool) -> list[int]:
    delta = length - overlap
    shift = int(round(num_frames * ordered_halving(step))) % num_frames
    # Minimum count so that windows of `length` spaced `delta` apart cover the circle of
    # num_frames: (count-1)*delta >= num_frames - length  <=  count = ceil((num_frames-overlap)/delta).
    # closed_loop: ceil(num_frames/delta) so the wrap seam also overlaps by >= overlap frames.
    span = num_frames if closed_loop else num_frames - overlap
    count = max(1, math.ceil(span / delta))
    return [(shift + m * delta) % num_frames for m in range(count)]


def looped_windows(
    num_frames: int, length: int, overlap: int, step: int = 0, closed_loop: bool = True
) -> list[list[int]]:
    """Parity schedule "looped": windows on a circle of ``num_frames`` frames, wrapping past the end.

    Window starts are ``shift + m*(length-overlap) (mod num_frames)`` with
    ``shift = round(num_frames * ordered_halving(step))`` (the anchors' deterministic per-step shift;
    ``step=0`` gives no shift). A window is ``[(c + j) % num_frames for j in range(length)]`` in loop
    order, so the last frames are denoised together with the first ones (seamless loop).
    ``closed_loop=True`` uses ``ceil(T/(L-O))`` windows so the wrap seam overlaps by at least
    ``overlap`` frames like every other seam; ``False`` uses the minimum ``ceil((T-O)/(L-O))`` that still
    covers the circle (the wrap seam may overlap less). Windows are returned sorted by first frame.
    """
    _check_basic(num_frames, length)
    validate_window_params(length, overlap=overlap)
    if num_frames <= length:
        return _single(num_frames)
    starts = sorted(set(_circle_starts(num_frames, length, overlap, step, closed_loop)))
    return [[(c + j) % num_frames for j in range(length)] for c in starts]


def shifted_uniform_windows(num_frames: int, length: int, overlap: int, step: int) -> list[list[int]]:
    """Parity schedule "shifted": uniform windows whose seams move every step (ordered halving).

    Take the circle windows of :func:`looped_windows` (``closed_loop=False``) for this ``step``;
    each window that would wrap past the end is replaced by the window ending at the last frame
    ``[T-L..T-1]`` plus the window starting at frame 0 ``[0..L-1]``; duplicates are removed and the
    result is sorted by start. Deterministic in ``step`` (no seed). ``step=0`` equals
    :func:`static_windows`.
    """
    _check_basic(num_frames, length)
    validate_window_params(length, overlap=overlap)
    if num_frames <= length:
        return _single(num_frames)
    starts: set[int] = set()
    for c in _circle_starts(num_frames, length, overlap, step, closed_loop=False):
        if c + length <= num_frames:
            starts.add(c)
        else:
            starts.update((num_frames - length, 0))
    return [list(range(s, s + length)) for s in sorted(starts)]


def _skip_window(start: int, length: int, skip: int) -> list[int]:
    return [start + j * skip for j in range(length)]


def zola_windows(
    num_frames: int, length: int, stride: int, max_skip: int, generator: torch.Generator
) -> list[list[int]]:
    """ZoLA denoising-path expansion with random start and frame skip (sec. 4.3, Eqs. 6-7).

    One call = one sampling step. Draws (in this order, from ``generator``):
    ``k ~ U{0..length-1}`` (Eq. 6) and ``r ~ U{1..r_max}`` with
    ``r_max = min(max_skip, (num_frames-1)//(length-1))`` (Eq. 7). Choice: ``r`` is capped so that a
    window of ``length`` frames with skip ``r`` - spanning ``(length-1)*r + 1`` frames - fits in the
    video; otherwise it could not hold ``length`` distinct frames.

    Main windows (Eq. 7, stride in *absolute frames* as in ``v[k+s*i : k+s*i+f'*r : r]``):
    window ``i`` is ``k + stride*i + j*r`` for ``j = 0..length-1``, for ``i = 0, 1, ...`` until a window
    reaches the last frame. The first window whose indices pass the end is left-shifted as a whole so
    that it ends exactly at frame ``num_frames-1`` (spacing ``r`` kept; later windows would be identical
    after the shift and are dropped).

    Repair (the set-cover completion the paper requires, "until all frames are denoised"): the frames
    before ``k`` and the residues mod ``r`` the main windows miss (when ``gcd(stride, r) > 1``) are
    covered greedily: take the smallest uncovered frame ``u``; among the skip-``r`` windows that contain
    ``u`` and lie inside ``[0, num_frames)`` pick the one containing the most uncovered frames (ties:
    the one starting latest, i.e. with ``u`` earliest in it); if none exists (``u``'s residue class has
    fewer than ``length`` frames) use the contiguous window ``[min(u, T-L) .. +L-1]``. Repeat until all
    frames are covered. Each repair window contains ``u``, so the loop ends; with ``r = 1`` at most one
    repair window (``[0..L-1]``, for the frames before ``k``) is added.

    Returns windows sorted by first frame, each with ``length`` distinct increasing frames in
    ``[0, num_frames)`` and constant spacing (``r``, or 1 for a fallback repair window).
    ``num_frames <= length`` gives ``[[0..num_frames-1]]`` and draws nothing.
    """
    _check_basic(num_frames, length)
    validate_window_params(length, stride=stride, max_skip=max_skip)
    if num_frames <= length:
        return _single(num_frames)
    k = _randint(generator, 0, length - 1)
    r_max = max_skip if length == 1 else max(1, min(max_skip, (num_frames - 1) // (length - 1)))
    r = _randint(generator, 1, r_max)
    span = (length - 1) * r + 1
    last_start = num_frames - span

    starts: list[int] = []
    i = 0
    while True:
        s = k + stride * i
        if s >= last_start:
            starts.append(last_start)
            break
        starts.append(s)
        i += 1
    windows = [_skip_window(s, length, r) for s in dict.fromkeys(starts)]

    covered = bytearray(num_frames)
    for w in windows:
        for f in w:
            covered[f] = 1
    u = covered.find(0)
    while u != -1:
        best: list[int] | None = None
        best_count = -1
        for pos in range(length):
            s = u - pos * r
            if s < 0:
                break
            if s > last_start:
                continue
            cand = _skip_window(s, length, r)
            cnt = sum(1 for f in cand if not covered[f])
            if cnt > best_count:  # positions scanned from latest start => ties keep the latest start
                best, best_count = cand, cnt
        if best is None:
            s = min(u, num_frames - length)
            best = list(range(s, s + length))
        windows.append(best)
        for f in best:
            covered[f] = 1
        u = covered.find(0, u + 1)
    windows.sort(key=lambda w: (w[0], w[-1]))
    return windows


def make_windows(
    schedule: str,
    num_frames: int,
    step: int,
    seed: int,
    *,
    length: int,
    stride: int,
    overlap: int,
    max_skip: int,
    closed_loop: bool = False,
) -> list[list[int]]:
    """Dispatch to a schedule in :data:`SCHEDULES` for sampling step ``step``.

    Randomness (only ``zola``) comes from ``step_generator(seed, step, STREAM_WINDOWS)`` (see
    :func:`mix_seed`): same ``(seed, step)`` => same windows. Parameters used per schedule:
    ``uniform``: length, stride; ``zola``: length, stride, max_skip; ``static``: length, overlap;
    ``shifted``: length, overlap, step; ``looped``: length, overlap, step, closed_loop;
    ``batched``: length. Unused parameters are still validated (cheap, catches UI mistakes early),
    and ``closed_loop`` only affects ``looped``.
    """
    validate_window_params(
        length, stride=stride, overlap=overlap, max_skip=max_skip, num_frames=num_frames, schedule=schedule
    )
    if schedule == "uniform":
        return uniform_windows(num_frames, length, stride)
    if schedule == "zola":
        return zola_windows(num_frames, length, stride, max_skip, step_generator(seed, step, STREAM_WINDOWS))
    if schedule == "static":
        return static_windows(num_frames, length, overlap)
    if schedule == "looped":
        return looped_windows(num_frames, length, overlap, step, closed_loop=closed_loop)
    if schedule == "shifted":
        return shifted_uniform_windows(num_frames, length, overlap, step)
    return batched_windows(num_frames, length)


# ----------------------------------------------------------------------------------------------------
# Fusion weights
# ----------------------------------------------------------------------------------------------------


def _pyramid(n: int) -> torch.Tensor:
    j = torch.arange(n, dtype=torch.float32)
    return torch.minimum(j + 1, n - j)


def window_weights(
    method: str, n: int, *, lead_overlap: int = 0, tail_overlap: int = 0
) -> torch.Tensor:
    """Per-position fusion weight ``w[j]``, ``j = 0..n-1``, for a window of ``n`` frames -> ``float32 [n]``.

    - ``flat``: 1 (Gen-L-Video's uniform ``value/count`` average).
    - ``zola``: ``exp(-0.5 * |j - n//2|)`` (ZoLA Eq. 4).
    - ``pyramid``: ``min(j+1, n-j)`` (1..n/2..1, FreeNoise/anchor parity).
    - ``least_squares``: ``W[j]^2`` with base weights ``W = pyramid``. Gen-L supp. III: the minimiser of
      ``sum_i ||W_i (F_i(v) - v_i)||^2`` is ``v_j = sum_i W_ij^2 v_ij / sum_i W_ij^2``, i.e. a weighted
      average with the *squared* base weights. Choice of ``W``: flat would make this identical to
      ``flat`` and Eq. 4 would give ``exp(-|j - n//2|)`` (a sharper ``zola``); pyramid gives a distinct,
      centre-heavy quadratic ramp.
    - ``overlap_linear``: 1 except linear ramps over the overlaps: position ``j < lead_overlap`` gets
      ``(j+1)/(lead_overlap+1)``, position ``j >= n - tail_overlap`` gets ``(n-j)/(tail_overlap+1)``
      (the minimum of both if they meet). For two windows overlapping by ``O`` the left tail and right
      lead weights sum to 1 on every overlap frame (a linear cross-fade). First/last windows pass 0.
    All weights are > 0, so a covered frame never has zero total weight.
    """
    if method not in WEIGHT_METHODS:
        raise ValueError(f"fuse_method must be one of {WEIGHT_METHODS}, got {method!r}")
    if n < 1:
        raise ValueError(f"window length must be >= 1, got {n}")
    j = torch.arange(n, dtype=torch.float32)
    if method == "flat":
        return torch.ones(n, dtype=torch.float32)
    if method == "zola":
        return torch.exp(-0.5 * (j - n // 2).abs())
    if method == "pyramid":
        return _pyramid(n)
    if method == "least_squares":
        return _pyramid(n) ** 2
    w = torch.ones(n, dtype=torch.float32)
    a = max(0, min(int(lead_overlap), n))
    b = max(0, min(int(tail_overlap), n))
    if a:
        w = torch.minimum(w, torch.where(j < a, (j + 1) / (a + 1), torch.ones_like(j)))
    if b:
        w = torch.minimum(w, torch.where(j >= n - b, (n - j) / (b + 1), torch.ones_like(j)))
    return w


def _order_by_start(windows: Sequence[Sequence[int]]) -> list[int]:
    return sorted(range(len(windows)), key=lambda i: (windows[i][0], i))


def _prefix_in(window: Sequence[int], other: set[int]) -> int:
    n = 0
    for f in window:
        if f not in other:
            break
        n += 1
    return n


def weights_for_windows(method: str, windows: Sequence[Sequence[int]]) -> list[torch.Tensor]:
    """:func:`window_weights` for every window of a schedule (``list`` of ``float32 [len(w)]``).

    Only ``overlap_linear`` depends on the neighbours: windows are ordered by first frame; a window's
    ``lead_overlap`` is the length of its leading run of frames contained in the previous window and
    its ``tail_overlap`` the length of its trailing run contained in the next window (contiguous
    windows: exactly the overlaps; first/last window get no ramp on the outer side). For skip windows
    this is a documented generalisation (runs are measured in window positions).
    """
    if method not in WEIGHT_METHODS:
        raise ValueError(f"fuse_method must be one of {WEIGHT_METHODS}, got {method!r}")
    if method != "overlap_linear":
        cache: dict[int, torch.Tensor] = {}
        return [cache.setdefault(len(w), window_weights(method, len(w))) for w in windows]
    order = _order_by_start(windows)
    out: list[torch.Tensor] = [torch.empty(0)] * len(windows)
    sets = [set(w) for w in windows]
    circular = any(b < a for w in windows for a, b in zip(w[:-1], w[1:], strict=False))
    m = len(order)
    for rank, i in enumerate(order):
        w = list(windows[i])
        has_prev = circular or rank > 0
        has_next = circular or rank + 1 < m
        lead = _prefix_in(w, sets[order[(rank - 1) % m]]) if has_prev and m > 1 else 0
        tail = _prefix_in(w[::-1], sets[order[(rank + 1) % m]]) if has_next and m > 1 else 0
        out[i] = window_weights("overlap_linear", len(w), lead_overlap=lead, tail_overlap=tail)
    return out


# ----------------------------------------------------------------------------------------------------
# Randomized blending (StreamingT2V Eq. 8)
# ----------------------------------------------------------------------------------------------------


def _draw_cut(generator: torch.Generator, overlap: int, variant: str) -> int:
    """Number of overlap frames (counted from the overlap's start) kept by the LEFT window."""
    if variant == "paper":
        # f_thr ~ U{0..O}; x_LR = [x_L^{1:F-f_thr}, x_R^{f_thr+1:F}] => left keeps O - f_thr overlap frames.
        f_thr = _randint(generator, 0, overlap)
        return overlap - f_thr
    # official code: r ~ U{0..O-1}; the right chunk overwrites from overlap position r on.
    return _randint(generator, 0, overlap - 1)


def randomized_blend_masks(
    windows: Sequence[Sequence[int]],
    num_frames: int,
    generator: torch.Generator,
    variant: str = "paper",
) -> list[torch.Tensor]:
    """StreamingT2V randomized blending (sec. 4.3, Eq. 8) as one-hot per-frame weights per window.

    Returns one ``float32 [len(window)]`` 0/1 mask per window (same order as ``windows``); every frame
    ``0..num_frames-1`` covered by the schedule is owned by exactly one window. Call once per sampling
    step with that step's generator (e.g. ``step_generator(seed, step, STREAM_BLEND)``).

    Contiguous windows: for two consecutive windows overlapping by ``O`` frames one cut is drawn per
    overlap per call. ``variant="paper"``: ``f_thr ~ U{0..O}``; overlap frame ``f`` (1-based) comes from
    the left window with probability ``1 - f/(O+1)``. ``variant="official"`` (the authors' code):
    ``r ~ U{0..O-1}``, the right window overwrites from overlap position ``r``; frame ``f`` comes from the
    left window with probability ``1 - f/O`` (the last overlap frame always from the right).

    Generalisation to any windows (deep overlaps, ZoLA skip windows, looped wrap-around): windows are
    processed in order of first frame (ties: list order). Frames of the current window not yet owned
    become its own. Frames already owned by earlier windows are split, in the current window's
    position order, into maximal runs of consecutive positions. A run starting at position 0 is an
    overlap where the current window is on the right: a cut ``c`` (the left's share, drawn as above
    with ``O`` = run length) keeps the first ``c`` frames with their current owners and gives the rest
    to the current window. Any other run (the current window's tail or middle overlapping frames an
    earlier-starting window also holds - e.g. the loop seam) treats the current window as the left one:
    it takes the first ``c`` frames and the rest keep their owners. For contiguous windows with at
    most two windows per frame this is exactly the rule above. Draws: one per run with ``O >= 1``.
    """
    if variant not in BLEND_VARIANTS:
        raise ValueError(f"blend_variant must be one of {BLEND_VARIANTS}, got {variant!r}")
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    owner = [-1] * num_frames
    for i in _order_by_start(windows):
        w = windows[i]
        runs: list[tuple[int, int]] = []  # (first position, length) of already-owned runs
        pos = 0
        n = len(w)
        while pos < n:
            f = w[pos]
            if not 0 <= f < num_frames:
                raise ValueError(f"window {i} has frame {f} outside [0, {num_frames})")
            if owner[f] < 0:
                owner[f] = i
                pos += 1
                continue
            start = pos
            while pos < n and owner[w[pos]] >= 0:
                pos += 1
            runs.append((start, pos - start))
        for start, length in runs:
            c = _draw_cut(generator, length, variant)
            frames = w[start : start + length]
            if start == 0:
                for f in frames[c:]:
                    owner[f] = i
            else:
                for f in frames[:c]:
                    owner[f] = i
    return [torch.tensor([1.0 if owner[f] == i else 0.0 for f in w], dtype=torch.float32)
            for i, w in enumerate(windows)]


# ----------------------------------------------------------------------------------------------------
# Co-denoising executor
# ----------------------------------------------------------------------------------------------------


def _norm_axis(x: torch.Tensor, frame_axis: int) -> int:
    if not -x.dim() <= frame_axis < x.dim():
        raise ValueError(
            f"frame_axis must be in [{-x.dim()}, {x.dim() - 1}] for a {x.dim()}-D tensor, got {frame_axis}"
        )
    return frame_axis % x.dim()


def _acc_dtype(dtype: torch.dtype) -> torch.dtype:
    return dtype if dtype in (torch.float32, torch.float64) else torch.float32


def _window_weight_list(
    windows: Sequence[Sequence[int]], weights: str | None, blend_masks: Sequence[torch.Tensor] | None
) -> list[torch.Tensor]:
    if weights is None and blend_masks is None:
        raise ValueError("fuse_method: give weights (a method name) or blend_masks, got neither")
    ws = (weights_for_windows(weights, windows) if weights is not None
          else [torch.ones(len(w), dtype=torch.float32) for w in windows])
    if blend_masks is not None:
        if len(blend_masks) != len(windows):
            raise ValueError(
                f"blend_masks must have one mask per window ({len(windows)}), got {len(blend_masks)}"
            )
        out = []
        for i, (w, m) in enumerate(zip(ws, blend_masks, strict=True)):
            m = torch.as_tensor(m, dtype=torch.float32).reshape(-1)
            if m.numel() != w.numel():
                raise ValueError(
                    f"blend_masks[{i}] has {m.numel()} entries, window {i} has {w.numel()} frames"
                )
            out.append(w * m)
        ws = out
    return ws


class _Accumulator:
    """``num += w * out`` (like ``x``) and ``den += w`` (``[T]``) along the frame axis."""

    def __init__(self, like: torch.Tensor, frame_axis: int) -> None:
        self.axis = frame_axis
        self.dtype = like.dtype
        self.num = torch.zeros(like.shape, dtype=_acc_dtype(like.dtype), device=like.device)
        self.den = torch.zeros(like.shape[frame_axis], dtype=self.num.dtype, device=like.device)
        self.view = [1] * like.dim()

    def add(self, window: Sequence[int], out: torch.Tensor, w: torch.Tensor) -> None:
        n = len(window)
        expected = list(self.num.shape)
        expected[self.axis] = n
        if list(out.shape) != expected:
            raise ValueError(f"window output has shape {tuple(out.shape)}, expected {tuple(expected)}")
        shape = list(self.view)
        shape[self.axis] = n
        wd = w.to(device=self.num.device, dtype=self.num.dtype)
        out = out.to(device=self.num.device, dtype=self.num.dtype)
        step = window[1] - window[0] if n > 1 else 1
        if step > 0 and all(b - a == step for a, b in zip(window[:-1], window[1:], strict=False)):
            # arithmetic progression (every schedule except wrapping looped windows): strided view,
            # in-place fused multiply-add - ~10x faster than index_add_ on CPU and deterministic on GPU
            sl = slice(window[0], window[-1] + 1, step)
            self.num[(slice(None),) * self.axis + (sl,)].addcmul_(out, wd.view(shape))
            self.den[sl].add_(wd)
        else:
            idx = torch.as_tensor(list(window), dtype=torch.long, device=self.num.device)
            self.num.index_add_(self.axis, idx, out * wd.view(shape))
            self.den.index_add_(0, idx, wd)

    def result(self) -> torch.Tensor:
        zero = (self.den <= 0).nonzero()
        if zero.numel():
            first = int(zero[0, 0])
            raise ValueError(
                f"frame {first} not covered by any window with positive weight "
                f"({zero.numel()} uncovered frame(s)); the schedule must cover every frame"
            )
        shape = list(self.view)
        shape[self.axis] = self.den.numel()
        # in place: the fused result reuses the numerator's memory (one latent-sized buffer less per call);
        # the accumulator is spent afterwards
        return self.num.div_(self.den.view(shape)).to(self.dtype)


def _check_windows(windows: Sequence[Sequence[int]], num_frames: int) -> None:
    if len(windows) == 0:
        raise ValueError("windows must contain at least one window, got none")
    for i, w in enumerate(windows):
        if len(w) == 0:
            raise ValueError(f"window {i} is empty")
        if min(w) < 0 or max(w) >= num_frames:
            raise ValueError(f"window {i} has frames outside [0, {num_frames})")
        if len(set(w)) != len(w):
            raise ValueError(f"window {i} lists a frame twice")


def fuse_outputs(
    outputs: Sequence[torch.Tensor],
    windows: Sequence[Sequence[int]],
    num_frames: int,
    frame_axis: int,
    *,
    weights: str | None = "flat",
    blend_masks: Sequence[torch.Tensor] | None = None,
) -> torch.Tensor:
    """Weighted average of precomputed window outputs (Gen-L sec. 3.2 / supp. III, ZoLA Eq. 4 merge).

    ``outputs[i]`` is shaped like the full tensor with ``len(windows[i])`` frames on ``frame_axis``;
    frame ``f`` of the result is ``sum_i w_i(f) out_i(f) / sum_i w_i(f)`` over windows holding ``f``
    (``w`` from :func:`weights_for_windows`, times ``blend_masks`` if given). Frames with zero total
    weight raise ``ValueError("frame i not covered ...")``.
    """
    if len(outputs) != len(windows):
        raise ValueError(f"outputs must have one tensor per window ({len(windows)}), got {len(outputs)}")
    _check_windows(windows, num_frames)
    like_shape = list(outputs[0].shape)
    axis = _norm_axis(outputs[0], frame_axis)
    like_shape[axis] = num_frames
    like = torch.empty(like_shape, dtype=outputs[0].dtype, device=outputs[0].device)
    acc = _Accumulator(like, axis)
    for w, out, wt in zip(windows, outputs, _window_weight_list(windows, weights, blend_masks), strict=True):
        acc.add(list(w), out, wt)
    return acc.result()


def co_denoise(
    x: torch.Tensor,
    windows: Sequence[Sequence[int]],
    frame_axis: int,
    evaluate: Callable[[list[list[int]]], list[torch.Tensor]],
    *,
    weights: str | None = "flat",
    blend_masks: Sequence[torch.Tensor] | None = None,
    max_batch: int = 1,
    check_interrupt: Callable[[], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """Temporal co-denoising: evaluate every window and fuse (Gen-L sec. 3.2, ZoLA Eqs. 4-7, ST2V Eq. 8).

    ``x``: the full tensor (``[T, C, H, W]`` with ``frame_axis=0``, ``[B, C, T, H, W]`` with 2, ...).
    ``evaluate(batch)`` gets a list of windows and returns one tensor per window shaped like
    ``x.index_select(frame_axis, window)``; it must treat windows independently (the executor relies on
    this: batched results equal one-by-one results). Windows are grouped, in schedule order, by
    length into batches of at most ``max_batch`` windows.

    Fusion: ``result[f] = sum_i w_i(f) out_i(f) / sum_i w_i(f)`` with ``w`` = :func:`weights_for_windows`
    (``weights``) times ``blend_masks[i]`` if given (one-hot masks => the owner's output; with both the
    product equals the mask result since each frame has one owner). ``weights=None`` with masks uses the
    masks alone. Windows whose weights are all zero (a blend mask owning nothing) are not evaluated.
    Memory: a numerator like ``x`` (float32 if ``x`` is half precision) and a ``[T]`` denominator plus
    one batch of outputs, whatever the number of windows. Windows with constant positive spacing
    (all schedules except wrapping ``looped`` windows) accumulate through strided views with
    ``addcmul_`` (no index tensors, deterministic on GPU); others through ``index_add_``.
    A frame with zero total weight raises ``ValueError("frame i not covered ...")`` (never NaN).

    ``check_interrupt()`` is called before each batch (it may raise to abort);
    ``progress(done, total)`` after each batch, counted in windows evaluated / to evaluate.
    Returns a tensor like ``x`` (same dtype, device, shape).
    """
    axis = _norm_axis(x, frame_axis)
    num_frames = x.shape[axis]
    _check_windows(windows, num_frames)
    if max_batch < 1:
        raise ValueError(f"max_batch must be >= 1, got {max_batch}")
    wts = _window_weight_list(windows, weights, blend_masks)
    active = [i for i in range(len(windows)) if bool((wts[i] > 0).any())]
    groups: dict[int, list[int]] = {}
    for i in active:
        groups.setdefault(len(windows[i]), []).append(i)
    batches = [ids[s : s + max_batch] for ids in groups.values() for s in range(0, len(ids), max_batch)]
    batches.sort(key=lambda b: b[0])  # keep schedule order as far as possible
    acc = _Accumulator(x, axis)
    total = len(active)
    done = 0
    for batch in batches:
        if check_interrupt is not None:
            check_interrupt()
        bw = [list(windows[i]) for i in batch]
        outs = evaluate(bw)
        if len(outs) != len(batch):
            raise ValueError(f"evaluate returned {len(outs)} outputs for a batch of {len(batch)} windows")
        for i, w, out in zip(batch, bw, outs, strict=True):
            acc.add(w, out, wts[i])
        del outs
        done += len(batch)
        if progress is not None:
            progress(done, total)
    return acc.result()


# ----------------------------------------------------------------------------------------------------
# Preview
# ----------------------------------------------------------------------------------------------------


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
