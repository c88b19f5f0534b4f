"""Fusion of window outputs: weights, StreamingT2V randomized blending, the co-denoising executor (pure layer).

Part of :mod:`context_schedule` (import names from there). Papers: ZoLA (``zola.txt``) Eq. 4; Gen-L-Video
(``gen-l-video.txt``) section 3.2 and supplementary III; StreamingT2V (``streamingt2v.txt``) section 4.3, Eq. 8.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import torch

from .window_schedules import _randint

WEIGHT_METHODS = ("flat", "least_squares", "zola", "pyramid", "overlap_linear")
BLEND_VARIANTS = ("paper", "official")




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

    Papers and defaults: ZoLA sec. 4.3 merges the denoising-path windows by plain averaging ("will be averaged",
    i.e. ``flat``) and uses Eq. 4 only inside the attention expansion; the ZoLA nodes' default is ``flat`` too
    (``window_defaults.WINDOW_DEFAULTS``), chosen by measurement on the exact Gaussian window model
    (``tests/benchmarks/bench_schedules.py``, its "Default fusion" table): with fixed windows the weights matter
    (Gen-L stride f/2: worst seam 1.53 with ``least_squares``, 4.22 with ``flat``); with windows re-drawn every step
    they hardly do, and for the default windows (cut at the ends, stride 3f/4, no skip phase) ``flat`` is lowest:
    1.71, ``least_squares`` 1.76, ``zola`` 1.86 (hard case; the same order at 256 frames and on the easy kernel).
    With the spanning skip phase ``zola`` is lowest (``skip_until`` 0.55: 0.91 vs 0.93 and 1.00).
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
    group_of: Callable[[int], object] | None = None,
    observe: Callable[[int, list[int], torch.Tensor, torch.Tensor], None] | None = None,
    evaluate_batches: Callable[[list[list[list[int]]]], Iterator[list[torch.Tensor]]] | None = None,
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
    ``group_of(i)``: windows are batched only with windows of the same length AND the same ``group_of`` value
    (a step cache keeps windows it evaluates apart from windows it answers from its cache); ``observe(i, window,
    out, weight)`` sees each window's output and fusion weight as it is added.
    ``evaluate_batches(batches)``, if given, replaces ``evaluate``: it gets every batch of the step at once and
    yields their outputs in that order (it may compute them elsewhere, e.g. on several devices); the fusion is
    the same sums in the same order, so the result equals the one of ``evaluate`` bit for bit.
    Returns a tensor like ``x`` (same dtype, device, shape).
    """
    axis = _norm_axis(x, frame_axis)
    num_frames = x.shape[axis]
    _check_windows(windows, num_frames)
    if max_batch < 1:
        raise ValueError(f"max_batch must be >= 1, got {max_batch}")
    wts = _window_weight_list(windows, weights, blend_masks)
    active = [i for i in range(len(windows)) if bool((wts[i] > 0).any())]
    groups: dict[object, list[int]] = {}
    for i in active:
        groups.setdefault(len(windows[i]) if group_of is None else (len(windows[i]), group_of(i)), []).append(i)
    batches = [ids[s : s + max_batch] for ids in groups.values() for s in range(0, len(ids), max_batch)]
    batches.sort(key=lambda b: b[0])  # keep schedule order as far as possible
    acc = _Accumulator(x, axis)
    total = len(active)
    done = 0
    stream = evaluate_batches([[list(windows[i]) for i in b] for b in batches]) if evaluate_batches else None
    for batch in batches:
        if check_interrupt is not None:
            check_interrupt()
        bw = [list(windows[i]) for i in batch]
        outs = next(stream) if stream is not None else evaluate(bw)
        if len(outs) != len(batch):
            raise ValueError(f"evaluate returned {len(outs)} outputs for a batch of {len(batch)} windows")
        for i, w, out in zip(batch, bw, outs, strict=True):
            acc.add(w, out, wts[i])
            if observe is not None:
                observe(i, w, out, wts[i])
        del outs
        done += len(batch)
        if progress is not None:
            progress(done, total)
    return acc.result()
