"""Tests for the step-dependent window schedules of nodes/algorithms/window_schedules.py (via context_schedule):
windows cut at the video ends (no pinned border), spanning skip windows for the first ``skip_until`` share of the
steps, the per-transition edge statistic and the sampler-step clock (one schedule and one randomized-blend cut per
sampler step, StreamingT2V Eq. 8, also for two-call samplers)."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from longanim.nodes.algorithms import analytic
from longanim.nodes.algorithms import context_schedule as cs

HYP = settings(max_examples=100, deadline=None)


def _coverage(windows, num_frames):
    cov = [0] * num_frames
    for w in windows:
        for f in w:
            cov[f] += 1
    return cov


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


# ---------------------------------------------------------------------------------------------------
# Defaults keep today's schedules
# ---------------------------------------------------------------------------------------------------


@HYP
@given(p=window_params(), schedule=st.sampled_from(cs.SCHEDULES), num_steps=st.integers(1, 60))
def test_default_keywords_give_the_same_windows(p, schedule, num_steps):
    kw = dict(length=p["length"], stride=p["stride"], overlap=p["overlap"], max_skip=p["max_skip"],
              closed_loop=p["closed_loop"])
    base = cs.make_windows(schedule, p["num_frames"], p["step"], p["seed"], **kw)
    same = cs.make_windows(schedule, p["num_frames"], p["step"], p["seed"], ends="truncate", skip_until=0.0,
                           num_steps=num_steps, **kw)
    assert same == base, "defaults: ends = truncate (WINDOW_DEFAULTS), no skip phase"
    if schedule != "zola":  # ends only changes zola
        assert cs.make_windows(schedule, p["num_frames"], p["step"], p["seed"], ends="shift", **kw) == base


# ---------------------------------------------------------------------------------------------------
# Windows cut at the ends
# ---------------------------------------------------------------------------------------------------


def test_tiled_windows_cut_at_both_ends():
    # offset 5, stride 12, length 16 on 40 frames: starts -7, 5, 17, 29 -> [0, 9), [5, 21), [17, 33), [29, 40)
    assert cs.tiled_windows(40, 16, 12, 5) == [list(range(0, 9)), list(range(5, 21)), list(range(17, 33)),
                                               list(range(29, 40))]
    # offset 0: the first window is whole; offset taken modulo the stride
    assert cs.tiled_windows(40, 16, 12, 0)[0] == list(range(16))
    assert cs.tiled_windows(40, 16, 12, 17) == cs.tiled_windows(40, 16, 12, 5)
    assert cs.tiled_windows(10, 16, 4, 3) == [list(range(10))]


@HYP
@given(T=st.integers(2, 120), L=st.integers(1, 20), data=st.data())
def test_tiled_windows_cover_once_per_stride_with_cut_ends(T, L, data):
    s = data.draw(st.integers(1, L))
    off = data.draw(st.integers(0, 100))
    ws = cs.tiled_windows(T, L, s, off)
    if T <= L:
        assert ws == [list(range(T))]
        return
    assert all(c >= 1 for c in _coverage(ws, T))
    for w in ws:
        assert w == list(range(w[0], w[-1] + 1)) and 1 <= len(w) <= L
    inner = ws[1:-1]
    assert all(len(w) == L for w in inner), "only the two end windows are cut"
    assert ws[0][0] == 0 and ws[-1][-1] == T - 1
    assert len(ws[0]) > L - s and len(ws[-1]) > L - s
    starts = [w[0] for w in ws[1:]]
    assert all(b - a == s for a, b in zip(starts[:-1], starts[1:], strict=False)), "stride kept"
    assert all(st_ % s == off % s for st_ in starts), "starts on the offset's lattice, never shifted"


@HYP
@given(p=window_params())
def test_truncated_zola_covers_with_constant_spacing(p):
    T, L = p["num_frames"], p["length"]
    ws = cs.make_windows("zola", T, p["step"], p["seed"], length=L, stride=p["stride"], overlap=p["overlap"],
                         max_skip=p["max_skip"], ends="truncate")
    if T <= L:
        assert ws == [list(range(T))]
        return
    assert all(c >= 1 for c in _coverage(ws, T))
    r_max = max(1, min(p["max_skip"], (T - 1) // max(L - 1, 1))) if L > 1 else p["max_skip"]
    gaps = {b - a for w in ws for a, b in zip(w[:-1], w[1:], strict=False)}
    assert len(gaps) <= 1 and all(1 <= g <= r_max for g in gaps), "one skip r per step, within Eq. 7's cap"
    assert all(1 <= len(w) <= L and len(set(w)) == len(w) for w in ws)


def test_truncated_zola_draws_r_then_one_offset_per_class():
    T, L, S, R = 96, 16, 12, 3
    for seed in range(40):
        g = torch.Generator().manual_seed(seed)
        ws = cs.zola_truncated_windows(T, L, S, R, torch.Generator().manual_seed(seed))
        r = int(torch.randint(1, R + 1, (1,), generator=g))
        offs = [int(torch.randint(0, S, (1,), generator=g)) for _ in range(r)]
        assert ws == cs.lattice_windows(T, L, S, r, offs, L // 2, g), "then the floor's sizes, from the same stream"
        # every residue class is one sub-video tiled like tiled_windows; only an end window cut below the floor
        # (half the length) differs: it grows inward, to at most L frames, still ending at its video end
        for rho in range(r):
            cls = [w for w in ws if w[0] % r == rho]
            pos = [[(f - rho) // r for f in w] for w in cls]
            n = len(range(rho, T, r))
            plain = cs.tiled_windows(n, L, S, offs[rho])
            assert pos[1:-1] == plain[1:-1] and len(pos) == len(plain)
            for got, cut in ((pos[0], plain[0]), (pos[-1], plain[-1])):
                assert got == cut if len(cut) >= L // 2 else L // 2 <= len(got) <= L
                assert got[0] == cut[0] if cut[0] == 0 else got[-1] == n - 1


# ---------------------------------------------------------------------------------------------------
# No pinned border (edge statistics)
# ---------------------------------------------------------------------------------------------------


def _shares(T, L, S, ends, n_steps, max_skip=1, seed=7):
    steps = [cs.make_windows("zola", T, k, seed, length=L, stride=S, overlap=0, max_skip=max_skip, ends=ends)
             for k in range(n_steps)]
    return cs.edge_shares(steps, T)


def test_shifted_zola_pins_the_borders_at_length_and_t_minus_length():
    # ZoLA stride 16, skip 1 on 64 frames: [0..15] (frames before k) and the end-aligned last window [48..63]
    sh = _shares(64, 16, 16, "shift", 2000)
    assert sh[16 - 1] >= 0.9 and sh[48 - 1] >= 0.9
    assert float(sh.mean()) < 0.15


@pytest.mark.parametrize("T,L,S", [(64, 16, 16), (96, 16, 12), (96, 16, 8), (50, 12, 5)])
def test_truncated_zola_edges_are_even_ends_included(T, L, S):
    n = 4000
    sh = _shares(T, L, S, "truncate", n)
    # expected share of transition b (between frames b - 1 and b), enumerated: offsets uniform on {0..S-1}; windows
    # [a, a + L) on the lattice, cut to the video; an end window cut below the floor F = L/2 (half the length,
    # rounded up) takes each size F..L with equal probability instead, from its own video end
    floor = (L + 1) // 2
    want = torch.zeros(T - 1, dtype=torch.float64)
    for off in range(S):
        a = off - S if off else 0
        spans = []
        while True:
            spans.append((max(a, 0), min(a + L, T)))
            if a + L >= T:
                break
            a += S
        first, last = spans[0][1], T - spans[-1][0]
        firsts = [first] if first >= floor else list(range(floor, L + 1))
        lasts = [last] if last >= floor else list(range(floor, L + 1))
        for e in firsts:
            for s0 in lasts:
                edges = {e, T - s0} | {x for lo, hi in spans[1:-1] for x in (lo, hi)}
                for x in edges - {0, T}:
                    want[x - 1] += 1.0 / (S * len(firsts) * len(lasts))
    sigma = torch.sqrt(want * (1 - want) / n)  # binomial standard error of a share from n independent steps
    assert bool(((sh - want).abs() <= 5 * sigma + 1e-12).all()), (sh - want).abs().max()
    # no pinned border: far from the ends (where the floor's longer windows add edges) no transition is an edge
    # more often than 2/S; near an end at most the floor's spread share more
    inner = sh[L:T - L - 1]
    assert float(inner.max()) <= 2.0 / S + 5 * float(sigma.max())
    spread = max(0, floor - (L - S + 1)) / (S * (L - floor + 1))
    assert float(sh.max()) <= 2.0 / S + spread + 5 * float(sigma.max())


def test_edge_shares_definition():
    steps = [[[0, 1, 2, 3], [2, 3, 4, 5]], [[0, 1, 2], [3, 4, 5]]]
    # step 0: starts 0, 2 and ends 4, 6 -> transitions 2, 4; step 1: starts 0, 3 / ends 3, 6 -> transition 3
    assert cs.edge_shares(steps, 6).tolist() == [0.0, 0.5, 0.5, 0.5, 0.0]
    assert cs.edge_shares([[[0]]], 1).numel() == 0
    with pytest.raises(ValueError, match="steps_windows"):
        cs.edge_shares([], 5)


# ---------------------------------------------------------------------------------------------------
# Spanning skip phase (skip_until)
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("T,L", [(96, 16), (97, 16), (256, 16), (20, 16), (40, 7)])
def test_spanning_windows_span_the_video_once_per_frame(T, L):
    ws = cs.spanning_windows(T, L)
    r = math.ceil(T / L)
    assert len(ws) == r and _coverage(ws, T) == [1] * T, "each frame exactly once (cost 1)"
    for rho, w in enumerate(ws):
        assert w[0] == rho and w[-1] >= T - r and len(w) <= L
        assert all(b - a == r for a, b in zip(w[:-1], w[1:], strict=False))
    assert cs.spanning_windows(16, 16) == [list(range(16))]


def test_skip_until_replaces_the_first_steps_whatever_the_schedule():
    T, L, N = 96, 16, 20
    kw = dict(length=L, stride=12, overlap=4, max_skip=1)
    # steps whose position step / (N - 1) on the noise schedule is below skip_until
    assert cs.skip_phase_steps(0.55, N) == 11 and cs.skip_phase_steps(0.5, N) == 10
    assert cs.skip_phase_steps(0.55, 12) == 7 and cs.skip_phase_steps(0.55, 10) == 5
    assert cs.skip_phase_steps(0.0, N) == 0 and cs.skip_phase_steps(1.0, N) == N - 1
    assert cs.skip_phase_steps(0.3, 1) == 1 and cs.skip_phase_steps(0.0, 1) == 0
    for schedule in cs.SCHEDULES:
        for step in range(N):
            got = cs.make_windows(schedule, T, step, 3, skip_until=0.55, num_steps=N, **kw)
            if step < 11:
                assert got == cs.spanning_windows(T, L)
            else:
                assert got == cs.make_windows(schedule, T, step, 3, **kw), "later steps: the schedule itself"
    # the later steps' draws do not depend on skip_until (each step has its own generator)
    late = [cs.make_windows("zola", T, s, 3, ends="truncate", skip_until=0.3, num_steps=N, **kw) for s in (15, 19)]
    assert late == [cs.make_windows("zola", T, s, 3, ends="truncate", **kw) for s in (15, 19)]


def test_skip_until_validation_names_the_input():
    kw = dict(length=16, stride=8, overlap=4, max_skip=1)
    with pytest.raises(ValueError, match="num_steps"):
        cs.make_windows("zola", 96, 0, 0, skip_until=0.5, **kw)
    with pytest.raises(ValueError, match="skip_until"):
        cs.make_windows("zola", 96, 0, 0, skip_until=1.5, num_steps=20, **kw)
    with pytest.raises(ValueError, match="skip_until"):
        cs.make_windows("zola", 96, 0, 0, skip_until=-0.1, **kw)
    with pytest.raises(ValueError, match="ends"):
        cs.make_windows("zola", 96, 0, 0, ends="wrap", **kw)
    with pytest.raises(ValueError, match="num_steps"):
        cs.skip_phase_steps(0.5, 0)


# ---------------------------------------------------------------------------------------------------
# Sampler steps of model calls: one schedule (and one blend cut) per sampler step
# ---------------------------------------------------------------------------------------------------


def _heun_calls(n_steps):
    """The sigmas at which analytic.heun_sample (EDM Alg. 1, k-diffusion sample_heun) calls the model."""
    sigmas = analytic.karras_sigmas(n_steps)
    calls = []

    def den(x, s):
        calls.append(float(s))
        return x * 0.5

    analytic.heun_sample(den, torch.zeros(1, 4, 1), sigmas)
    return sigmas, calls


def test_heun_corrector_shares_its_step_with_the_clock():
    sigmas, calls = _heun_calls(8)
    assert len(calls) == 2 * 8 - 1
    clock = cs.SamplerStepClock(sigmas.tolist(), multi_call=True)
    steps = [clock(s) for s in calls]
    assert steps == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7]
    # keyed on the sigma alone, every corrector call lands on the next step: the bug the clock fixes
    stateless = [cs.step_of_sigma(s, sigmas.tolist()) for s in calls]
    assert stateless == [0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7]


def test_clock_for_one_call_and_midpoint_samplers():
    sig = analytic.karras_sigmas(6).tolist()
    euler = [sig[i] for i in range(6)]
    assert [cs.SamplerStepClock(sig, multi_call=False)(s) for s in euler] == list(range(6))
    # the multi-call rule would merge Euler's steps: that is why it needs the sampler's name
    merged = cs.SamplerStepClock(sig, multi_call=True)
    assert [merged(s) for s in euler] == [0] * 6
    # DPM-2: second call at the log midpoint; DPM-2 ancestral (eta 1): at sqrt(sigma_i * sigma_down) = sigma_{i+1}
    # up to float rounding (either side)
    for second in (lambda i: math.sqrt(sig[i] * sig[i + 1]),
                   lambda i: sig[i + 1] * (1 + 3e-7), lambda i: sig[i + 1] * (1 - 3e-7)):
        seq = []
        for i in range(5):
            seq += [sig[i], second(i)]
        clock = cs.SamplerStepClock(sig, multi_call=True)
        assert [clock(s) for s in seq] == [i for i in range(5) for _ in (0, 1)]
    # Heun++ (three calls: sigma_i, sigma_{i+1}, sigma_{i+2})
    seq = [v for i in range(4) for v in (sig[i], sig[i + 1], sig[i + 2])]
    clock = cs.SamplerStepClock(sig, multi_call=True)
    assert [clock(s) for s in seq] == [i for i in range(4) for _ in range(3)]


def test_multi_call_sampler_names():
    assert cs.is_multi_call_sampler("sample_heun") and cs.is_multi_call_sampler("dpm_2_ancestral")
    assert cs.is_multi_call_sampler("heunpp2") and cs.is_multi_call_sampler("dpmpp_2s_ancestral")
    assert not cs.is_multi_call_sampler("sample_euler") and not cs.is_multi_call_sampler("dpmpp_2m")
    assert not cs.is_multi_call_sampler("euler_ancestral") and not cs.is_multi_call_sampler("lcm")


def test_two_call_sampler_draws_one_blend_cut_per_step():
    """StreamingT2V Eq. 8 is one random cut per denoising step: both Heun evaluations of a step fuse with it."""
    T, n = 64, 10
    sigmas, calls = _heun_calls(n)
    windows = cs.uniform_windows(T, 16, 8)
    seed = 123

    def masks_for(step):
        return cs.randomized_blend_masks(windows, T, cs.step_generator(seed, step, cs.STREAM_BLEND))

    def per_call(step_fn):
        steps = [step_fn(s) for s in calls]  # once per model evaluation, in order
        return [(k, masks_for(k)) for k in steps]

    clock = cs.SamplerStepClock(sigmas.tolist(), multi_call=True)
    got = per_call(clock)
    for i in range(0, len(got) - 1, 2):  # calls 2i and 2i+1 are step i's predictor and corrector
        (a, ma), (b, mb) = got[i], got[i + 1]
        assert a == b == i // 2
        assert all(torch.equal(x, y) for x, y in zip(ma, mb, strict=True))
    # the cuts do change between steps, and sigma-keyed draws give the corrector another step's cut
    assert any(not all(torch.equal(x, y) for x, y in zip(got[0][1], g[1], strict=True)) for g in got[2:])
    stateless = per_call(lambda s: cs.step_of_sigma(s, sigmas.tolist()))
    differ = sum(not all(torch.equal(x, y) for x, y in zip(stateless[i][1], stateless[i + 1][1], strict=True))
                 for i in range(0, len(stateless) - 1, 2))
    assert differ >= 5, "sigma-keyed cuts differ inside most Heun steps"


def test_step_of_sigma_matches_the_index_rule():
    sig = [14.6, 7.0, 3.0, 1.0, 0.3, 0.0]
    assert [cs.step_of_sigma(s, sig) for s in sig[:-1]] == [0, 1, 2, 3, 4]
    assert cs.step_of_sigma(5.0, sig) == 1 and cs.step_of_sigma(20.0, sig) == 0
    assert cs.step_of_sigma(7.0 * (1 + 5e-5), sig) == 1  # rtol 1e-4
    assert cs.step_of_sigma(1.0, []) == 0
