"""Tests for nodes/algorithms/context_schedule.py (ZoLA sec. 4.3, Gen-L-Video sec. 3.2/supp. III,
StreamingT2V Eq. 8, parity schedules)."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from longanim.nodes.algorithms import context_schedule as cs

HYP = settings(max_examples=100, deadline=None)


def _coverage(windows, num_frames):
    cov = [0] * num_frames
    for w in windows:
        for f in w:
            cov[f] += 1
    return cov


# ---------------------------------------------------------------------------------------------------
# Schedules: structural properties for every schedule
# ---------------------------------------------------------------------------------------------------


@st.composite
def window_params(draw):
    length = draw(st.integers(1, 20))
    return dict(
        num_frames=draw(st.integers(1, 90)),
        length=length,
        stride=draw(st.integers(1, length)),
        overlap=draw(st.integers(0, length - 1)),
        max_skip=draw(st.integers(1, 6)),
        seed=draw(st.integers(0, 2**64 - 1)),
        step=draw(st.integers(0, 1000)),
        closed_loop=draw(st.booleans()),
    )


@HYP
@given(p=window_params(), schedule=st.sampled_from(cs.SCHEDULES))
def test_every_schedule_covers_every_frame(p, schedule):
    T, L = p["num_frames"], p["length"]
    # ZoLA's own ends (windows shifted inside, all of full length); ends="truncate": tests/unit/test_schedule_phases.py
    ws = cs.make_windows(schedule, T, p["step"], p["seed"], length=L, stride=p["stride"],
                         overlap=p["overlap"], max_skip=p["max_skip"], closed_loop=p["closed_loop"], ends="shift")
    if T <= L:
        assert ws == [list(range(T))]
        return
    assert all(c >= 1 for c in _coverage(ws, T)), "a frame is not covered"
    for w in ws:
        assert len(set(w)) == len(w), "duplicate frame in a window"
        assert all(0 <= f < T for f in w)
        if schedule == "batched":
            assert 1 <= len(w) <= L
        else:
            assert len(w) == L
        if schedule == "looped":
            assert all((b - a) % T == 1 for a, b in zip(w[:-1], w[1:], strict=False))
        else:
            gaps = {b - a for a, b in zip(w[:-1], w[1:], strict=False)}
            assert len(gaps) <= 1, "a window must have constant spacing"
            if gaps:
                g = gaps.pop()
                assert 1 <= g <= (p["max_skip"] if schedule == "zola" else 1)
    if schedule == "batched":
        assert all(c == 1 for c in _coverage(ws, T)), "batched windows must not overlap"


@pytest.mark.parametrize("schedule", cs.SCHEDULES)
@pytest.mark.parametrize("T", [1, 7, 16])
def test_short_video_single_window(schedule, T):
    ws = cs.make_windows(schedule, T, 3, 5, length=16, stride=4, overlap=4, max_skip=3, closed_loop=True)
    assert ws == [list(range(T))]


def test_uniform_windows_gen_l_grid_and_left_shift():
    assert cs.uniform_windows(40, 16, 8) == [list(range(s, s + 16)) for s in (0, 8, 16, 24)]
    # 45 frames: grid 0, 8, 16, 24 then 32 would run past the end -> shifted to end at frame 44
    assert [w[0] for w in cs.uniform_windows(45, 16, 8)] == [0, 8, 16, 24, 29]
    assert cs.uniform_windows(45, 16, 8)[-1][-1] == 44


def test_static_and_batched():
    assert [w[0] for w in cs.static_windows(40, 16, 4)] == [0, 12, 24]
    assert cs.static_windows(30, 16, 4)[-1] == list(range(14, 30))
    assert cs.batched_windows(40, 16) == [list(range(0, 14)), list(range(14, 27)), list(range(27, 40))]


def test_ordered_halving_and_shifted():
    assert [cs.ordered_halving(s) for s in range(5)] == [0.0, 0.5, 0.25, 0.75, 0.125]
    for T, L, ov in [(40, 16, 4), (64, 16, 8), (33, 8, 2)]:
        assert cs.shifted_uniform_windows(T, L, ov, 0) == cs.static_windows(T, L, ov)
    # step 1: shift = round(40 * 0.5) = 20 -> circle starts 20, 32(wraps), 4 -> {0, 4, 20, 24}
    assert [w[0] for w in cs.shifted_uniform_windows(40, 16, 4, 1)] == [0, 4, 20, 24]
    seams = {tuple(w[0] for w in cs.shifted_uniform_windows(64, 16, 4, s)) for s in range(8)}
    assert len(seams) == 8, "the seams must move from step to step"


def test_looped_windows_wrap_and_closed_loop_seam():
    ws = cs.looped_windows(40, 16, 4, step=0, closed_loop=True)
    assert [w[0] for w in ws] == [0, 12, 24, 36]
    assert ws[-1] == [36, 37, 38, 39] + list(range(0, 12))
    # closed loop: every seam, including the wrap seam, overlaps by >= overlap frames
    assert len(set(ws[-1]) & set(ws[0])) >= 4
    open_ws = cs.looped_windows(40, 16, 4, step=0, closed_loop=False)
    assert len(open_ws) == math.ceil((40 - 4) / 12) == 3
    # step 1: shift = 20 -> circle starts 20, 32, 44 % 40 = 4, 16 (returned sorted by first frame)
    assert [w[0] for w in cs.looped_windows(40, 16, 4, step=1)] == [4, 16, 20, 32]


# ---------------------------------------------------------------------------------------------------
# ZoLA Eqs. 6-7
# ---------------------------------------------------------------------------------------------------


def _replay_draws(seed, L, T, max_skip):
    g = torch.Generator().manual_seed(seed)
    k = int(torch.randint(0, L, (1,), generator=g))
    r_max = max(1, min(max_skip, (T - 1) // (L - 1)))
    r = int(torch.randint(1, r_max + 1, (1,), generator=g))
    return k, r, r_max


@HYP
@given(T=st.integers(2, 120), L=st.integers(2, 16), data=st.data(), seed=st.integers(0, 2**31))
def test_zola_main_windows_follow_eq7(T, L, data, seed):
    if T <= L:
        return
    S = data.draw(st.integers(1, L))
    R = data.draw(st.integers(1, 6))
    ws = cs.zola_windows(T, L, S, R, torch.Generator().manual_seed(seed))
    k, r, r_max = _replay_draws(seed, L, T, R)
    assert 1 <= r <= R and (L - 1) * r + 1 <= T
    span = (L - 1) * r + 1
    last = T - span
    got = {tuple(w) for w in ws}
    i = 0
    while k + S * i < last:  # Eq. 7 windows k + s*i + j*r that fit
        assert tuple(k + S * i + j * r for j in range(L)) in got
        i += 1
    # the first window passing the end is left-shifted to end exactly at the last frame
    assert tuple(last + j * r for j in range(L)) in got
    assert all(c >= 1 for c in _coverage(ws, T))
    # extra (repair) windows are only there for frames the Eq. 7 windows miss
    main = {tuple(k + S * n + j * r for j in range(L)) for n in range(i)}
    main.add(tuple(last + j * r for j in range(L)))
    main_cov = set().union(*map(set, main))
    missed = set(range(T)) - main_cov
    extra = [w for w in ws if tuple(w) not in main]
    assert len(extra) <= len(missed)
    assert all(set(w) & missed for w in extra), "redundant extra window"


def test_zola_r1_adds_at_most_one_window_for_frames_before_k():
    for seed in range(200):
        ws = cs.zola_windows(64, 16, 8, 1, torch.Generator().manual_seed(seed))
        k, _, _ = _replay_draws(seed, 16, 64, 1)
        n_main = len(range(k, 48, 8)) + 1  # Eq. 6 windows k + 8i below 48, then the one shifted to 48
        assert len(ws) == n_main + (1 if k > 0 else 0)
        if k > 0:
            assert ws[0] == list(range(16))


def test_zola_skip_is_capped_to_fit_and_uniform():
    # T=20, L=8: a window with skip r spans 7r+1 frames, so r <= 2 although max_skip = 10
    spacings = set()
    for seed in range(100):
        for w in cs.zola_windows(20, 8, 4, 10, torch.Generator().manual_seed(seed)):
            spacings.add(w[1] - w[0])
    assert spacings == {1, 2}
    # r ~ U{1..R}: frequencies within 5 sigma of 1/R (binomial std sqrt(p(1-p)/N))
    N, R = 3000, 3
    counts = [0] * (R + 1)
    for seed in range(N):
        counts[_replay_draws(seed, 16, 200, R)[1]] += 1
    p = 1 / R
    sigma = math.sqrt(p * (1 - p) / N)
    for r in range(1, R + 1):
        assert abs(counts[r] / N - p) < 5 * sigma
    # and the schedule really uses that r: the Eq. 7 window spacing equals the replayed r
    for seed in range(50):
        ws = cs.zola_windows(200, 16, 8, R, torch.Generator().manual_seed(seed))
        k, r, _ = _replay_draws(seed, 16, 200, R)
        assert [k + j * r for j in range(16)] in ws


def test_make_windows_determinism_and_variation():
    kw = dict(length=12, stride=6, overlap=3, max_skip=3)
    a = cs.make_windows("zola", 100, 5, 42, **kw)
    assert a == cs.make_windows("zola", 100, 5, 42, **kw)
    per_step = {tuple(map(tuple, cs.make_windows("zola", 100, s, 42, **kw))) for s in range(20)}
    assert len(per_step) >= 10, "different steps must give different windows"
    per_seed = {tuple(map(tuple, cs.make_windows("zola", 100, 5, s, **kw))) for s in range(20)}
    assert len(per_seed) >= 10
    # seeds differing only above bit 32 must still differ (torch's CPU generator ignores high bits)
    assert cs.mix_seed(7, 0) != cs.mix_seed(7 + 2**32, 0)
    assert cs.mix_seed(7, 0, cs.STREAM_WINDOWS) != cs.mix_seed(7, 0, cs.STREAM_BLEND)
    hi = {tuple(map(tuple, cs.make_windows("zola", 100, 0, 7 + (j << 40), **kw))) for j in range(10)}
    assert len(hi) >= 5


def test_validate_window_params_names_inputs():
    with pytest.raises(ValueError, match="context_length"):
        cs.validate_window_params(0)
    with pytest.raises(ValueError, match="stride"):
        cs.validate_window_params(16, stride=0)
    with pytest.raises(ValueError, match="stride"):
        cs.validate_window_params(16, stride=17)
    with pytest.raises(ValueError, match="overlap"):
        cs.validate_window_params(16, overlap=16)
    with pytest.raises(ValueError, match="max_skip"):
        cs.validate_window_params(16, max_skip=0)
    with pytest.raises(ValueError, match="context_schedule"):
        cs.make_windows("spiral", 40, 0, 0, length=16, stride=4, overlap=4, max_skip=1)
    cs.validate_window_params(16, stride=16, overlap=15, max_skip=1, num_frames=1, schedule="zola")


# ---------------------------------------------------------------------------------------------------
# Fusion weights
# ---------------------------------------------------------------------------------------------------


def test_weight_values():
    w = cs.window_weights("zola", 16)  # Eq. 4: exp(-0.5 |j - f//2|)
    expected = torch.tensor([math.exp(-0.5 * abs(j - 8)) for j in range(16)])
    torch.testing.assert_close(w, expected)
    assert w[8] == 1.0 and w.argmax() == 8
    odd = torch.tensor([math.exp(-0.5 * abs(j - 2)) for j in range(5)])
    torch.testing.assert_close(cs.window_weights("zola", 5), odd)
    assert cs.window_weights("pyramid", 4).tolist() == [1, 2, 2, 1]
    assert cs.window_weights("pyramid", 5).tolist() == [1, 2, 3, 2, 1]
    assert cs.window_weights("least_squares", 5).tolist() == [1, 4, 9, 4, 1]
    assert cs.window_weights("flat", 3).tolist() == [1, 1, 1]
    ol = cs.window_weights("overlap_linear", 8, lead_overlap=3, tail_overlap=2)
    torch.testing.assert_close(ol, torch.tensor([0.25, 0.5, 0.75, 1, 1, 1, 2 / 3, 1 / 3]))
    with pytest.raises(ValueError, match="fuse_method"):
        cs.window_weights("cosine", 4)


def test_overlap_linear_is_a_crossfade():
    ws = cs.static_windows(52, 16, 4)  # starts 0, 12, 24, 36 - every overlap is 4 frames
    wts = cs.weights_for_windows("overlap_linear", ws)
    assert wts[0][:12].tolist() == [1.0] * 12 and wts[-1][-12:].tolist() == [1.0] * 12
    for a in range(len(ws) - 1):
        tail, lead = wts[a][-4:], wts[a + 1][:4]
        torch.testing.assert_close(tail + lead, torch.ones(4))
        assert (torch.diff(lead) > 0).all()
    # looped: the wrap seam is cross-faded too (neighbours are circular)
    loop = cs.looped_windows(40, 16, 4, step=0, closed_loop=True)  # starts 0, 12, 24, 36
    lw = cs.weights_for_windows("overlap_linear", loop)
    assert lw[0][0] < 1 and lw[-1][-1] < 1
    # last window [36..39, 0..11] overlaps window 0 on frames 0..11 (12 frames)
    torch.testing.assert_close(lw[-1][-12:] + lw[0][:12], torch.ones(12))


def test_least_squares_fusion_equals_closed_form_minimiser():
    """Gen-L supp. III: argmin_v sum_i ||W_i (F_i(v) - v_i)||^2, solved numerically, equals the fusion."""
    g = torch.Generator().manual_seed(0)
    T, C = 30, 3
    ws = cs.uniform_windows(T, 12, 5) + [[1, 4, 7, 10, 13]]  # include a strided window of another length
    outs = [torch.randn(len(w), C, generator=g, dtype=torch.float64) for w in ws]
    fused = cs.fuse_outputs(outs, ws, T, 0, weights="least_squares")
    rows, rhs = [], []
    for w, out in zip(ws, outs, strict=True):
        base = torch.minimum(torch.arange(len(w)) + 1, len(w) - torch.arange(len(w))).double()  # pyramid W
        for j, f in enumerate(w):
            row = torch.zeros(T, dtype=torch.float64)
            row[f] = base[j]
            rows.append(row)
            rhs.append(base[j] * out[j])
    solution = torch.linalg.lstsq(torch.stack(rows), torch.stack(rhs)).solution
    torch.testing.assert_close(fused, solution, atol=1e-9, rtol=1e-9)


# ---------------------------------------------------------------------------------------------------
# Randomized blending (StreamingT2V Eq. 8)
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["paper", "official"])
def test_randomized_blend_frequencies(variant):
    ws = cs.uniform_windows(40, 16, 12)  # overlaps: frames 12..15 (O=4) and 24..27 (O=4)
    ov, N = 4, 3000
    g = torch.Generator().manual_seed(123)
    left = torch.zeros(2, ov)
    for _ in range(N):
        m = [mk.tolist() for mk in cs.randomized_blend_masks(ws, 40, g, variant)]
        total = [0.0] * 40
        for w, mk in zip(ws, m, strict=True):
            for f, v in zip(w, mk, strict=True):
                total[f] += v
        assert total == [1.0] * 40, "each frame must have exactly one owner"
        left[0] += torch.tensor(m[0][12:16])
        left[1] += torch.tensor(m[1][12:16])
        assert all(m[0][:12]) and all(m[2][4:]), "non-overlapping frames belong to their window"
    f = torch.arange(1, ov + 1, dtype=torch.float64)
    p = 1 - f / (ov + 1) if variant == "paper" else 1 - f / ov
    freq = left.double() / N
    # binomial standard error of a frequency from N draws; 3 sigma (p = 0 for the last official frame)
    sigma = torch.sqrt(p * (1 - p) / N)
    for o in range(2):
        assert ((freq[o] - p).abs() <= 3 * sigma + 1e-12).all(), (freq[o], p)
    if variant == "official":
        assert left[:, -1].eq(0).all()


@HYP
@given(p=window_params(), schedule=st.sampled_from(cs.SCHEDULES), variant=st.sampled_from(cs.BLEND_VARIANTS))
def test_blend_masks_have_exactly_one_owner(p, schedule, variant):
    T = p["num_frames"]
    ws = cs.make_windows(schedule, T, p["step"], p["seed"], length=p["length"], stride=p["stride"],
                         overlap=p["overlap"], max_skip=p["max_skip"], closed_loop=p["closed_loop"])
    g = cs.step_generator(p["seed"], p["step"], cs.STREAM_BLEND)
    masks = cs.randomized_blend_masks(ws, T, g, variant)
    total = torch.zeros(T)
    for w, m in zip(ws, masks, strict=True):
        assert set(m.tolist()) <= {0.0, 1.0}
        total[w] += m
    assert torch.equal(total, torch.ones(T))


def test_blend_masks_deterministic_per_generator():
    ws = cs.uniform_windows(64, 16, 8)
    a = cs.randomized_blend_masks(ws, 64, cs.step_generator(3, 4, cs.STREAM_BLEND))
    b = cs.randomized_blend_masks(ws, 64, cs.step_generator(3, 4, cs.STREAM_BLEND))
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    others = [cs.randomized_blend_masks(ws, 64, cs.step_generator(3, s, 1)) for s in range(5, 9)]
    assert any(not all(torch.equal(x, y) for x, y in zip(a, o, strict=True)) for o in others)
    with pytest.raises(ValueError, match="blend_variant"):
        cs.randomized_blend_masks(ws, 64, torch.Generator(), "middle")


# ---------------------------------------------------------------------------------------------------
# co_denoise
# ---------------------------------------------------------------------------------------------------


def _known(x, frame_axis):
    """An elementwise, frame-dependent function: the exact answer for any convex fusion."""
    T = x.shape[frame_axis]
    shape = [1] * x.dim()
    shape[frame_axis] = T
    return torch.sin(x) * 2 + torch.arange(T, dtype=x.dtype).view(shape) * 0.1


def _toy_evaluate(x, frame_axis, log=None):
    def evaluate(batch):
        if log is not None:
            log.append([list(w) for w in batch])
        full = _known(x, frame_axis)
        return [full.index_select(frame_axis, torch.tensor(w)) for w in batch]

    return evaluate


@pytest.mark.parametrize("frame_axis,shape", [(0, (50, 2, 3, 3)), (2, (1, 2, 50, 2, 2))])
@pytest.mark.parametrize("schedule", cs.SCHEDULES)
def test_co_denoise_reproduces_known_answer(frame_axis, shape, schedule):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    want = _known(x, frame_axis)
    for step in (1,):  # step 1: shifted/looped schedules are shifted, zola draws
        ws = cs.make_windows(schedule, 50, step, 9, length=12, stride=5, overlap=3, max_skip=3,
                             closed_loop=True)
        for method in cs.WEIGHT_METHODS:
            got = cs.co_denoise(x, ws, frame_axis, _toy_evaluate(x, frame_axis), weights=method, max_batch=2)
            torch.testing.assert_close(got, want)
        masks = cs.randomized_blend_masks(ws, 50, cs.step_generator(9, step, cs.STREAM_BLEND))
        got = cs.co_denoise(x, ws, frame_axis, _toy_evaluate(x, frame_axis), weights=None, blend_masks=masks)
        torch.testing.assert_close(got, want)


def test_co_denoise_weighted_average_and_batching_equivalence():
    T = 37
    x = torch.randn(2, 3, T, 2, generator=torch.Generator().manual_seed(2))
    ws = cs.make_windows("zola", T, 3, 1, length=8, stride=3, overlap=0, max_skip=3)
    ws += cs.batched_windows(T, 10)
    ws += [[0, 2, 3, 7], [35, 36, 0, 1]]  # irregular and wrapping windows take the index_add_ path

    def evaluate(batch):  # window-dependent outputs: the fusion is a genuine weighted average
        return [x.index_select(2, torch.tensor(w)) * (1 + w[0]) + len(w) for w in batch]

    outs = evaluate(ws)
    for method in cs.WEIGHT_METHODS:
        one = cs.co_denoise(x, ws, 2, evaluate, weights=method, max_batch=1)
        log = []

        def logged(batch, log=log):
            log.append(batch)
            return evaluate(batch)

        many = cs.co_denoise(x, ws, 2, logged, weights=method, max_batch=3)
        torch.testing.assert_close(many, one, rtol=1e-6, atol=1e-6)
        assert all(1 <= len(b) <= 3 and len({len(w) for w in b}) == 1 for b in log)
        assert sum(len(b) for b in log) == len(ws)
        # explicit weighted average, frame by frame
        wts = cs.weights_for_windows(method, ws)
        num = torch.zeros_like(x)
        den = torch.zeros(T)
        for w, o, wt in zip(ws, outs, wts, strict=True):
            num[:, :, w] += o * wt.view(1, 1, -1, 1)
            den[w] += wt
        torch.testing.assert_close(one, num / den.view(1, 1, -1, 1), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(cs.fuse_outputs(outs, ws, T, 2, weights=method), one)


def test_co_denoise_interrupt_and_progress():
    x = torch.randn(40, 2)
    ws = cs.uniform_windows(40, 10, 5)  # 7 windows
    calls, prog = [], []
    cs.co_denoise(x, ws, 0, _toy_evaluate(x, 0), max_batch=3,
                  check_interrupt=lambda: calls.append(1), progress=lambda d, t: prog.append((d, t)))
    assert len(calls) == 3 and prog == [(3, 7), (6, 7), (7, 7)]

    class Stop(Exception):
        pass

    evaluated = []

    def interrupt():
        if len(evaluated) >= 2:
            raise Stop

    with pytest.raises(Stop):
        cs.co_denoise(x, ws, 0, _toy_evaluate(x, 0, evaluated), check_interrupt=interrupt)
    assert len(evaluated) == 2


def test_co_denoise_uncovered_frames_raise():
    x = torch.randn(10, 3)
    with pytest.raises(ValueError, match="frame 4 not covered"):
        cs.co_denoise(x, [[0, 1, 2, 3], [5, 6, 7, 8, 9]], 0, _toy_evaluate(x, 0))
    # zero total weight through the blend masks is also "not covered", never NaN
    with pytest.raises(ValueError, match="frame 2 not covered"):
        cs.co_denoise(x, [[0, 1, 2], [2, 3, 4, 5, 6, 7, 8, 9]], 0, _toy_evaluate(x, 0), weights=None,
                      blend_masks=[torch.tensor([1.0, 1, 0]), torch.tensor([0.0, 1, 1, 1, 1, 1, 1, 1])])
    with pytest.raises(ValueError, match="twice"):
        cs.co_denoise(x, [[0, 1, 1]], 0, _toy_evaluate(x, 0))
    with pytest.raises(ValueError, match="frame_axis"):
        cs.co_denoise(x, [[0]], 2, _toy_evaluate(x, 0))


def test_co_denoise_half_precision_keeps_dtype_and_skips_empty_windows():
    x = torch.randn(20, 4).half()
    ws = [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [5, 6, 7], list(range(10, 20))]
    masks = [torch.ones(11), torch.zeros(3), torch.tensor([0.0] + [1.0] * 9)]
    log = []
    out = cs.co_denoise(x, ws, 0, _toy_evaluate(x, 0, log), weights="pyramid", blend_masks=masks)
    assert out.dtype == torch.float16
    assert [5, 6, 7] not in [w for b in log for w in b]
    torch.testing.assert_close(out, _known(x, 0))


# ---------------------------------------------------------------------------------------------------
# Preview
# ---------------------------------------------------------------------------------------------------


def test_render_schedule_preview():
    steps = [cs.make_windows("zola", 30, s, 2, length=6, stride=3, overlap=0, max_skip=3) for s in range(3)]
    masks = [cs.randomized_blend_masks(w, 30, cs.step_generator(2, s, cs.STREAM_BLEND))
             for s, w in enumerate(steps)]
    cell = 4
    img = cs.render_schedule_preview(steps, 30, masks, cell=cell)
    rows = sum(len(w) for w in steps)
    assert img.shape == (1, rows * cell + len(steps) - 1, 30 * cell, 3)
    assert img.min() >= 0 and img.max() <= 1
    plain = cs.render_schedule_preview(steps, 30, cell=cell)
    # first window of step 0: its first frame is drawn (bright), a skipped frame inside its span is grey
    w0 = steps[0][0]
    pix = plain[0, 0, w0[0] * cell]
    assert pix.max() > 0.5
    for i, w in enumerate(steps[0]):
        if len(w) > 1 and w[1] - w[0] > 1:
            gap_pix = plain[0, i * cell, (w[0] + 1) * cell]
            bg_pix = plain[0, i * cell, (w[-1] + 1) * cell] if w[-1] + 1 < 30 else None
            assert torch.allclose(gap_pix, torch.tensor([0.22, 0.22, 0.24]))
            if bg_pix is not None:
                assert not torch.allclose(gap_pix, bg_pix)
    # owned frames bright, held-but-not-owned frames dimmed
    for i, (w, m) in enumerate(zip(steps[0], masks[0], strict=True)):
        for j, f in enumerate(w):
            a = img[0, i * cell, f * cell]
            b = plain[0, i * cell, f * cell]
            if m[j] == 1:
                torch.testing.assert_close(a, b)
            else:
                assert a.sum() < 0.5 * b.sum()
