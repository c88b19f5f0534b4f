"""Window schedules: which frames each model window holds at each sampling step (pure layer).

Part of :mod:`context_schedule` (import names from there). Papers: ZoLA (``zola.txt``) section 4.3, Eqs. 5-7;
Gen-L-Video (``gen-l-video.txt``) section 3.2; parity schedules with the published anchors. Conventions
(windows, seeds, frame axis) are in the :mod:`context_schedule` docstring.

Length: a little over 600 lines because every schedule (uniform, static, batched, looped, shifted, ZoLA with
shifted or truncated ends, spanning skip phase) shares the same draw and validation helpers; splitting them would
scatter one concern over several files.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .window_defaults import WINDOW_DEFAULTS

SCHEDULES = ("uniform", "zola", "static", "looped", "shifted", "batched")

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
            f"context_overlap must be in [0, context_length-1={context_length - 1}], got {overlap}; "
            "lower context_overlap or raise context_length"
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

    Choice: ``ceil(num_frames / length)`` windows of near-equal size (sizes differ by at most one frame, the
    longer ones first) rather than full windows plus a short remainder, so no frame is evaluated twice (the
    point of the schedule) and no window is shorter than :func:`min_window_length`: with ``n >= 2`` windows,
    ``num_frames >= (n - 1) * length + 1`` gives a size of at least ``ceil(length / 2)``. A remainder window of
    ``num_frames % length`` frames could hold a single frame (for Wan one latent frame, a still image). When
    ``length`` divides ``num_frames`` the windows are the plain consecutive ones. :func:`co_denoise` batches the
    two sizes separately.
    """
    _check_basic(num_frames, length)
    if num_frames <= length:
        return _single(num_frames)
    n = -(-num_frames // length)
    size, extra = divmod(num_frames, n)
    out, start = [], 0
    for i in range(n):
        end = start + size + (1 if i < extra else 0)
        out.append(list(range(start, end)))
        start = end
    return out


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
    ``[0, num_frames)`` and constant spacing (``r``, or 1 for a fallback repair window). The left shift and the
    repair window ``[0..L-1]`` make the borders at ``L`` and ``T - L`` window edges at nearly every step (pinned
    seams); :func:`zola_truncated_windows` (``make_windows(..., ends="truncate")``) does not.
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


# ----------------------------------------------------------------------------------------------------
# Windows cut at the video ends (no pinned borders) and spanning skip windows
# ----------------------------------------------------------------------------------------------------

#: How a window that runs past a video end is handled. ``shift``: moved inside (ZoLA "left shifted"; a
#: window of ``length`` frames always covers frame 0, so the border at ``length`` is a window edge at almost
#: every step). ``truncate``: cut to the frames inside the video (shorter window, never moved).
ENDS = ("shift", "truncate")


def min_window_length(length: int) -> int:
    """Shortest window ``ends="truncate"`` leaves: half the window length, rounded up (own choice, no paper value).

    Why half: a window cut at a video end holds ``length - stride + 1 .. length`` frames, so with the stride the
    nodes offer for "no overlap" (``stride = length``) it can hold 1 frame - for Wan one latent frame, a still
    image the model denoises without any temporal context; AnimateDiff motion modules see 1-2 frames as no motion.
    Half the length keeps every window at least half the temporal context the model was trained on, while the
    lengths it replaces can still be spread evenly over ``floor .. length`` (:func:`tiled_windows`), so the floor
    adds at most ``1/stride`` to any transition's edge share instead of pinning one border.
    """
    return max(1, (int(length) + 1) // 2)


def _floored(size: int, lo: int, floor: int, length: int, generator: torch.Generator | None) -> int:
    """A cut window's size (``lo .. length``, each equally likely) with a size below ``floor`` replaced: drawn
    ``U{floor..length}`` from ``generator``, or without one spread evenly over ``floor .. length`` (one-to-one
    while ``floor - lo <= length - floor + 1``, true for the half floor)."""
    if size >= floor:
        return size
    if generator is not None:
        return _randint(generator, floor, length)
    return floor + ((size - lo) * (length - floor + 1)) // (floor - lo)


def tiled_windows(
    num_frames: int, length: int, stride: int, offset: int, min_length: int = 1,
    generator: torch.Generator | None = None,
) -> list[list[int]]:
    """Contiguous windows ``[a, a + length)`` for ``a = offset + stride*i``, every integer ``i``, cut to the video.

    Windows are intersected with ``[0, num_frames)``; a cut window whose frames lie inside another window is
    dropped, so exactly one cut window remains at each end: the first holds ``[0, a_0 + length)`` with
    ``a_0`` the largest start ``<= 0`` (``length - stride < a_0 + length <= length`` frames), the last
    ``[a_n, num_frames)``. With ``offset`` uniform on ``{0..stride-1}`` every transition between two frames is a
    window start with probability ``1/stride`` (none of the last ``length - stride``) and a window end with
    probability ``1/stride`` (none of the first ``length - stride``), so no transition is an edge more often than
    ``2/stride``, the video ends included (:func:`edge_shares`; ``1/stride`` everywhere when ``stride`` divides
    ``length``). ``offset`` is taken modulo ``stride``. ``num_frames <= length`` gives one window. Returns windows
    sorted by first frame.

    ``min_length`` (the floor, see :func:`min_window_length`): an end window cut shorter than it grows inward, into
    its neighbour, to a size drawn ``U{min_length..length}`` from ``generator`` (without one: spread evenly over
    that range; :func:`_floored`), never past ``length`` and never off its video end. So no window is shorter than
    ``min(min_length, num_frames)``, and the edge share the short sizes held is spread over ``min_length ..
    length`` instead of pinning one border. ``min_length = 1``: the plain cut.
    """
    _check_basic(num_frames, length)
    validate_window_params(length, stride=stride)
    if num_frames <= length:
        return _single(num_frames)
    off = int(offset) % stride
    a = off - stride if off > 0 else 0
    out = []
    while True:
        out.append(list(range(max(a, 0), min(a + length, num_frames))))
        if a + length >= num_frames:
            break
        a += stride
    floor, lo = min(int(min_length), length), max(1, length - stride + 1)
    if floor > 1:
        first = _floored(len(out[0]), lo, floor, length, generator)
        last = _floored(len(out[-1]), lo, floor, length, generator)
        out[0] = list(range(first))
        out[-1] = list(range(num_frames - last, num_frames))
    return out


def lattice_windows(
    num_frames: int, length: int, stride: int, skip: int, offsets: Sequence[int], min_length: int = 1,
    generator: torch.Generator | None = None,
) -> list[list[int]]:
    """Windows of frames ``skip`` apart: each residue class ``rho, rho + skip, rho + 2*skip, ...`` (``rho < skip``)
    is a sub-video tiled by :func:`tiled_windows` with ``length``, ``stride`` (counted in the class's frames, i.e.
    window positions) and ``offsets[rho]``.

    Every frame is in exactly one class, so every frame is covered; ``skip = 1`` is :func:`tiled_windows`. Windows
    have constant spacing ``skip`` and are sorted by (first frame, last frame). ``min_length``: the floor of
    :func:`tiled_windows`, in window positions (sizes drawn from ``generator`` when given).
    """
    _check_basic(num_frames, length)
    validate_window_params(length, stride=stride, max_skip=skip)
    if len(offsets) != skip:
        raise ValueError(f"offsets must hold one offset per residue class ({skip}), got {len(offsets)}")
    out = []
    for rho in range(min(skip, num_frames)):
        frames = list(range(rho, num_frames, skip))
        tiles = tiled_windows(len(frames), length, stride, offsets[rho], min_length, generator)
        out.extend([frames[j] for j in w] for w in tiles)
    out.sort(key=lambda w: (w[0], w[-1]))
    return out


def spanning_windows(num_frames: int, length: int) -> list[list[int]]:
    """The smallest frame skip ``r = ceil(num_frames / length)`` at which one window spans the whole video, and its
    ``r`` windows ``[rho, rho + r, rho + 2r, ...]`` (each frame once, ``ceil`` or ``floor(num_frames / r)`` frames
    each, so at most ``length``). Own schedule, no paper equation: ZoLA Eq. 7 with the largest skip, as a cover
    without overlap. Deterministic. ``num_frames <= length`` gives one window.
    """
    _check_basic(num_frames, length)
    if num_frames <= length:
        return _single(num_frames)
    r = math.ceil(num_frames / length)
    return [list(range(rho, num_frames, r)) for rho in range(r)]


def zola_truncated_windows(
    num_frames: int, length: int, stride: int, max_skip: int, generator: torch.Generator, align: int = 1
) -> list[list[int]]:
    """ZoLA re-drawn windows (sec. 4.3, Eqs. 6-7) cut at the video ends instead of shifted (``ends="truncate"``).

    Draws (in this order, from ``generator``): ``r ~ U{1..r_max}`` with ``r_max`` as in :func:`zola_windows`
    (Eq. 7), then one offset ``k_rho ~ U{0..stride-1}`` per residue class ``rho = 0..r-1`` (Eq. 6); the windows are
    :func:`lattice_windows` ``(num_frames, length, stride, r, k)``.

    Departures from the paper, and why: (1) windows past an end are cut, not "left shifted" - a shifted window of
    ``length`` frames always covers ``[0..length-1]``, which makes the border at ``length`` (and ``T - length``)
    a window edge at nearly every step, a seam re-drawing never moves; cut windows make every transition an edge
    with the same probability. (2) ``k`` is uniform on ``{0..stride-1}`` rather than ``{0..length-1}``: with windows
    extending past both ends the two give the same sets of windows, and only the former is uniform modulo the
    stride. (3) With ``r > 1`` the stride counts positions inside a window (frames of one residue class), so the
    overlap - and the cost - does not depend on ``r``; Eq. 7 counts it in absolute frames, which leaves whole
    residue classes uncovered when ``r`` divides the stride. (4) Cut windows are shorter than ``length`` but never
    shorter than :func:`min_window_length` (half the length; cut alone they can hold ``length - stride + 1``
    frames, 1 with ``stride = length``): a shorter end window grows inward into its neighbour.
    With ``r > 1`` the first window of class ``rho`` starts at frame ``rho``, so transitions ``1..r-1`` are edges
    at every such step (true of any cover by windows of spacing ``r``: each of frames ``0..r-1`` starts one).
    ``num_frames <= length`` gives ``[[0..num_frames-1]]`` and draws nothing.

    ``align > 1`` draws the offsets from the multiples of ``align`` in ``{0..stride-1}`` (``align * U{0..(stride -
    1) // align}``): every window then starts on a chunk of FreeNoise-structured initial noise (chunks of ``align``
    frames, ``scene_noise``), so it holds whole chunks, i.e. the first window's noise frames, whatever offset is
    drawn. Measured on the trained toy world (``tests/benchmarks/bench_consistency.py``): with FreeNoise noise the
    scene the first window picks holds far more often than with offsets that cut chunks. ``align = 1`` draws
    exactly what the unaligned rule draws.
    """
    _check_basic(num_frames, length)
    validate_window_params(length, stride=stride, max_skip=max_skip)
    if int(align) < 1:
        raise ValueError(f"align must be >= 1 frame, got {align}")
    if num_frames <= length:
        return _single(num_frames)
    r_max = max_skip if length == 1 else max(1, min(max_skip, (num_frames - 1) // (length - 1)))
    r = _randint(generator, 1, r_max)
    a = int(align)
    offsets = [a * _randint(generator, 0, (stride - 1) // a) for _ in range(r)]
    return lattice_windows(num_frames, length, stride, r, offsets, min_window_length(length), generator)


def skip_phase_steps(skip_until: float, num_steps: int) -> int:
    """Number of leading steps that use :func:`spanning_windows`: the steps ``i`` whose position ``i / (num_steps - 1)``
    on the noise schedule is below ``skip_until`` (``ceil(skip_until * (num_steps - 1))``, float error of ``1e-9``
    forgiven; a single step counts as position 0). The position of step ``i`` is the ramp coordinate of its noise
    level in ramp-built schedules (Karras, exponential, ``simple``), so one ``skip_until`` switches at about the same
    noise level whatever the step count: 0.55 x 19 gives 11 of 20 steps, 0.55 x 11 gives 7 of 12. ``skip_until`` in
    [0, 1]; 1 = every step but the last."""
    if not 0.0 <= float(skip_until) <= 1.0:
        raise ValueError(f"skip_until must be a share of the steps in [0, 1] (0 = off), got {skip_until!r}")
    if not (isinstance(num_steps, int) and num_steps >= 1):
        raise ValueError(f"num_steps must be the number of sampling steps (an integer >= 1), got {num_steps!r}")
    return min(num_steps, math.ceil(float(skip_until) * max(num_steps - 1, 1) - 1e-9))


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
    ends: str = WINDOW_DEFAULTS["ends"],
    skip_until: float = 0.0,
    num_steps: int | None = None,
    align: int = 1,
    align_until: float = 1.0,
) -> list[list[int]]:
    """Dispatch to a schedule in :data:`SCHEDULES` for sampling step ``step``.

    Randomness (only ``zola``) comes from ``step_generator(seed, step, STREAM_WINDOWS)`` (see
    :func:`mix_seed`): same ``(seed, step)`` => same windows. Parameters used per schedule:
    ``uniform``: length, stride; ``zola``: length, stride, max_skip, ends; ``static``: length, overlap;
    ``shifted``: length, overlap, step; ``looped``: length, overlap, step, closed_loop;
    ``batched``: length. Unused parameters are still validated (cheap, catches UI mistakes early),
    ``closed_loop`` only affects ``looped`` and ``ends`` only ``zola``.

    Step-dependent schedules (own, measured on the exact Gaussian window model; no paper equation):

    - ``ends``: ``"truncate"`` (default, ``WINDOW_DEFAULTS``: :func:`zola_truncated_windows`, windows cut at the
      ends, none shorter than half the length, no border pinned; ``align``: offsets on multiples of ``align``
      frames, the chunks of FreeNoise-structured initial noise) or ``"shift"`` (ZoLA's left shift:
      :func:`zola_windows`).
    - ``skip_until``: share of the steps, from the first, that use :func:`spanning_windows` whatever the
      schedule - frames ``ceil(T/length)`` apart, one window across the whole video per residue class, each frame
      once (cost 1). While the noise is high a window that spans the video decides the content every frame
      shares; the later steps' windows (``schedule``) then denoise the detail between neighbouring frames.
      ``0`` (default) = off, i.e. today's schedules at every step. ``skip_until > 0`` needs ``num_steps`` (the
      sampler's step count); steps ``0 .. skip_phase_steps(skip_until, num_steps) - 1`` (those whose position
      ``step / (num_steps - 1)`` on the noise schedule is below ``skip_until``) are the skip phase.

    - ``align_until``: share of the steps, from the first, whose ZoLA offsets fall on multiples of ``align`` (the
      steps :func:`skip_phase_steps` counts); the later steps draw them from all of ``0..stride-1`` (as
      ``align = 1``). ``1`` (default) or ``num_steps = None``: every step aligned. With FreeNoise-structured noise
      the scene is decided in the early, high-noise steps, where windows holding whole chunks keep it; in the
      late steps, offsets on a 4-frame grid would leave the window edges on 3 of 12 transitions (seams at chunk
      borders) and make the period border of the repeated noise a window edge at a third of the steps.

    ``skip_until=0`` (default) gives exactly the windows of the schedule alone, and draws the same random numbers.
    Measured best on the exact window model (``tests/benchmarks/bench_schedules.py``: cost
    1.13 model evaluations per frame-step, worst seam 1.42 vs Gen-L's 1.53 at cost 1.83, drift 0.28 vs 0.50, at 96
    frames and 20 Euler steps): ``schedule="zola", ends="truncate", skip_until=0.6, stride=3*length//4,
    max_skip=1`` with least-squares fusion; it departs from ZoLA sec. 4.3 in the ends, the offset range and the
    skip phase (see :func:`zola_truncated_windows` and :func:`spanning_windows`).
    """
    validate_window_params(
        length, stride=stride, overlap=overlap, max_skip=max_skip, num_frames=num_frames, schedule=schedule
    )
    if ends not in ENDS:
        raise ValueError(f"ends must be one of {ENDS}, got {ends!r}")
    if skip_until:
        if num_steps is None:
            raise ValueError("num_steps: skip_until > 0 needs the sampler's number of steps (num_steps), got None")
        if step < skip_phase_steps(skip_until, num_steps):
            return spanning_windows(num_frames, length)
    elif not 0.0 <= float(skip_until) <= 1.0:
        raise ValueError(f"skip_until must be a share of the steps in [0, 1] (0 = off), got {skip_until!r}")
    if schedule == "uniform":
        return uniform_windows(num_frames, length, stride)
    if not 0.0 <= float(align_until) <= 1.0:
        raise ValueError(f"align_until must be a share of the steps in [0, 1], got {align_until!r}")
    if align > 1 and float(align_until) < 1.0 and num_steps is not None \
            and step >= skip_phase_steps(align_until, num_steps):
        align = 1
    if schedule == "zola":
        gen = step_generator(seed, step, STREAM_WINDOWS)
        if ends == "truncate":
            return zola_truncated_windows(num_frames, length, stride, max_skip, gen, align=align)
        return zola_windows(num_frames, length, stride, max_skip, gen)
    if schedule == "static":
        return static_windows(num_frames, length, overlap)
    if schedule == "looped":
        return looped_windows(num_frames, length, overlap, step, closed_loop=closed_loop)
    if schedule == "shifted":
        return shifted_uniform_windows(num_frames, length, overlap, step)
    return batched_windows(num_frames, length)


# ----------------------------------------------------------------------------------------------------
# Schedule statistics
# ----------------------------------------------------------------------------------------------------


def edge_shares(steps_windows: Sequence[Sequence[Sequence[int]]], num_frames: int) -> torch.Tensor:
    """Per transition, the share of steps at which it is a window edge -> ``float64 [num_frames - 1]``.

    Entry ``b - 1`` is transition ``b`` (between frames ``b - 1`` and ``b``). At one step, ``b`` is an edge if some
    window starts at ``b`` (``min(w) == b``) or ends just before it (``max(w) + 1 == b``) - the rule of
    ``metrics.window_borders``; the video ends are not transitions. A border that sits at the same frames at
    (nearly) every step is a seam that re-drawing the windows never moves: a schedule without pinned borders keeps
    every entry near the mean, ends included. ``num_frames = 1`` gives an empty tensor.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    counts = torch.zeros(max(num_frames - 1, 0), dtype=torch.float64)
    if not steps_windows:
        raise ValueError("steps_windows must hold at least one step's windows, got none")
    for windows in steps_windows:
        edges = {min(w) for w in windows if len(w)} | {max(w) + 1 for w in windows if len(w)}
        for b in edges:
            if 0 < b < num_frames:
                counts[b - 1] += 1
    return counts / len(steps_windows)


# ----------------------------------------------------------------------------------------------------
# Sampler steps of model calls
# ----------------------------------------------------------------------------------------------------

#: k-diffusion samplers (ComfyUI names, ``sample_`` prefix dropped) that evaluate the model more than once per
#: step, later evaluations at a lower noise level than the step's first one - some exactly at the next step's
#: sigma: Heun's corrector at ``sigma_{i+1}``; Heun++ at ``sigma_{i+1}`` and ``sigma_{i+2}``; DPM-2 ancestral and
#: DPM++ 2S ancestral at ``sqrt(sigma_i * sigma_down)``, which is ``sigma_{i+1}`` for ``eta = 1``; DPM-2, DPM++
#: SDE and SEEDS at a midpoint.
MULTI_CALL_SAMPLERS = frozenset({
    "heun", "heunpp2", "dpm_2", "dpm_2_ancestral", "dpm_2_ancestral_RF", "dpmpp_2s_ancestral",
    "dpmpp_2s_ancestral_RF", "dpmpp_2s_ancestral_cfg_pp", "dpmpp_sde", "dpmpp_sde_gpu", "seeds_2", "seeds_3",
})


def is_multi_call_sampler(name: str) -> bool:
    """Whether ``name`` (``"heun"`` or a k-diffusion function name ``"sample_heun"``) is in
    :data:`MULTI_CALL_SAMPLERS`."""
    name = str(name)
    return (name[len("sample_"):] if name.startswith("sample_") else name) in MULTI_CALL_SAMPLERS


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-7 + 1e-4 * abs(b)


def _exact_index(sigma: float, sample_sigmas: Sequence[float]) -> int | None:
    for i, v in enumerate(sample_sigmas):
        if _close(sigma, v):
            return i
    return None


def step_of_sigma(sigma: float, sample_sigmas: Sequence[float]) -> int:
    """Sampling step of one model call from its noise level alone: the index of the first entry of
    ``sample_sigmas`` within ``rtol 1e-4, atol 1e-7`` of ``sigma``; otherwise the last step whose sigma is above
    it (a midpoint evaluation belongs to the step it is inside). Empty ``sample_sigmas`` gives 0.

    Correct for one call per step and for midpoints; a second call of a step *at* the next step's sigma (Heun's
    corrector) gets the next step - :class:`SamplerStepClock` handles those samplers.
    """
    ss = [float(v) for v in sample_sigmas]
    sig = float(sigma)
    exact = _exact_index(sig, ss)
    if exact is not None:
        return exact
    return max(0, sum(1 for v in ss if v > sig) - 1)


class SamplerStepClock:
    """Sampler step of each model evaluation of ONE sampler run, so a step's evaluations share one schedule.

    Heun evaluates step ``i`` at ``sigma_i`` and again at ``sigma_{i+1}``; keyed on the call's sigma
    (:func:`step_of_sigma`) the corrector would draw step ``i+1``'s windows and randomized-blend cuts, while
    StreamingT2V Eq. 8 is one cut per denoising step. With ``multi_call=True`` (see :func:`is_multi_call_sampler`)
    an evaluation belongs to the current step ``i`` when it is

    - at ``sigma_{i+1}`` right after step ``i``'s first evaluation (Heun's corrector; DPM-2 / DPM++ 2S ancestral,
      whose second evaluation is at ``sigma_{i+1}`` for ``eta = 1``),
    - at ``sigma_{i+2}`` or further below, lower than the previous evaluation (Heun++'s third evaluation), or
    - at a noise level between two schedule entries that :func:`step_of_sigma` puts in step ``i`` (midpoints:
      DPM-2, DPM++ SDE, SEEDS);

    any other evaluation starts a step, numbered :func:`step_of_sigma` (``sigma_{i+1}`` after a later evaluation of
    step ``i`` is step ``i+1``'s first). With ``multi_call=False`` every evaluation is numbered
    :func:`step_of_sigma` - right for one evaluation per step (Euler, DPM++ 2M, ...), where the rule above would
    merge consecutive steps, so the sampler's kind must be known.

    Call once per model evaluation, in the sampler's order; a guider that splits one evaluation into several calls
    at the same sigma must call it once (a repeated first evaluation is harmless, a repeated corrector starts the
    next step). Same sequence of sigmas => same steps.
    """

    def __init__(self, sample_sigmas: Sequence[float], multi_call: bool) -> None:
        self.sample_sigmas = [float(v) for v in sample_sigmas]
        self.multi_call = bool(multi_call)
        self._last: float | None = None
        self._step = 0
        self._after_first = False  # the previous evaluation was the current step's first

    def __call__(self, sigma: float) -> int:
        sig = float(sigma)
        last, self._last = self._last, sig
        if not self.multi_call:
            self._step = step_of_sigma(sig, self.sample_sigmas)
            return self._step
        after_first, self._after_first = self._after_first, False
        if last is not None:
            exact = _exact_index(sig, self.sample_sigmas)
            if exact is not None:
                if (exact == self._step + 1 and after_first) or (exact >= self._step + 2 and sig < last):
                    return self._step
            elif step_of_sigma(sig, self.sample_sigmas) == self._step:
                return self._step
        self._step = step_of_sigma(sig, self.sample_sigmas)
        self._after_first = True
        return self._step
