"""Unit tests of nodes/algorithms/noise.py (issue 3): ZoLA Eq. 8, ZS^2 section 3 / Algorithm 1 / Listing 1,
PYoCo mixed / progressive, FreeNoise.

Statistical tolerances are 5 sigma of the estimator, derived from the number of independent positions
(non-frame elements) in the sample; each assertion says which estimator it uses.
"""

from __future__ import annotations

import dataclasses
import inspect
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from longanim.nodes.algorithms import noise as nz
from longanim.nodes.algorithms import noise_dependency, noise_preview

ALGORITHMS = ["iid", "repeat_mask", "dependency", "mixed", "progressive", "freenoise"]


@pytest.fixture(autouse=True, scope="module")
def _one_intra_op_thread():
    # The tests issue thousands of tiny ops; on a loaded 2-core box every parallel region waits for a
    # descheduled worker (10x slower). Results do not depend on the thread count.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def gen(seed: int) -> torch.Generator:
    return torch.Generator(device="cpu").manual_seed(seed)


def assert_close(actual, expected, atol: float = 1e-6, rtol: float = 0.0) -> None:
    """|actual - expected| <= atol + rtol * |expected| elementwise (torch.testing's first import costs
    ~3 s on a loaded box)."""
    actual, expected = torch.as_tensor(actual), torch.as_tensor(expected)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    diff = (actual.double() - expected.double()).abs()
    bound = atol + rtol * expected.double().abs()
    assert bool((diff <= bound).all()), f"max abs diff {float(diff.max())}"


def frames_first(x: torch.Tensor, axis: int) -> torch.Tensor:
    return x.movedim(axis, 0).reshape(x.shape[axis], -1)


def diag_mean(corr: torch.Tensor, k: int) -> float:
    return float(torch.diagonal(corr, k).mean())


# --------------------------------------------------------------------------------------------------
# registry
# --------------------------------------------------------------------------------------------------


def test_registry_names_and_signatures():
    assert set(nz.NOISE_ALGORITHMS) == set(ALGORITHMS)
    for name, spec in nz.NOISE_ALGORITHMS.items():
        sig = inspect.signature(spec.fn)
        assert list(sig.parameters)[:3] == ["shape", "frame_axis", "generator"], name
        assert set(spec.param_names) == set(list(sig.parameters)[3:]), name
        for p in spec.param_names:  # registry defaults are the function defaults
            assert sig.parameters[p].default == spec.defaults[p], (name, p)
        assert nz.validate_noise_params(name, {}) == spec.defaults
        assert set(spec.ranges) == set(spec.param_names)


# --------------------------------------------------------------------------------------------------
# common properties: marginals, determinism, layouts
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_marginals_standard_normal(algorithm):
    # 16 frames x 4096 positions. Worst case for the estimators: all frames identical, i.e. only the
    # 4096 positions are independent: SE(mean) = 1/64, SE(var) = sqrt(2/4096) = 0.022 -> 5 sigma.
    x = nz.NoiseRecipe(algorithm, {}).draw((16, 4, 32, 32), 0, seed=7)
    n_pos = 4 * 32 * 32
    assert abs(float(x.mean())) < 5 / math.sqrt(n_pos)
    assert abs(float(x.var()) - 1.0) < 5 * math.sqrt(2 / n_pos)
    # the last frame alone (no averaging over frames): same bounds
    last = x[-1]
    assert abs(float(last.mean())) < 5 / math.sqrt(n_pos)
    assert abs(float(last.var()) - 1.0) < 5 * math.sqrt(2 / n_pos)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("shape,axis", [((20, 3, 6, 5), 0), ((2, 3, 20, 6, 5), 2)])
def test_seed_determinism_dtype_and_shape(algorithm, shape, axis):
    recipe = nz.NoiseRecipe(algorithm, {"window_length": 8} if algorithm == "freenoise" else {})
    a = recipe.draw(shape, axis, seed=3)
    b = recipe.draw(shape, axis, seed=3)
    c = recipe.draw(shape, axis, seed=4)
    assert a.shape == torch.Size(shape) and a.dtype == torch.float32 and a.device.type == "cpu"
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert torch.isfinite(a).all()
    # negative frame_axis is the same axis
    assert torch.equal(recipe.draw(shape, axis - len(shape), seed=3), a)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_batch_items_are_independent_positions(algorithm):
    # 5-D latent with B = 2: the two batch items must not be copies of each other.
    x = nz.NoiseRecipe(algorithm, {}).draw((2, 4, 24, 8, 8), 2, seed=11)
    assert not torch.equal(x[0], x[1])
    # Pearson correlation of batch 0 and batch 1 over 4*24*64 values; if they were independent draws
    # the estimate is ~N(0, 1/n_eff) with n_eff >= 256 positions (worst case: frames identical).
    r = torch.corrcoef(torch.stack([x[0].flatten(), x[1].flatten()]))[0, 1]
    assert abs(float(r)) < 5 / math.sqrt(256)


@settings(max_examples=15, deadline=None)
@given(
    dims=st.lists(st.integers(1, 5), min_size=1, max_size=4),
    frames=st.integers(1, 20),
    where=st.integers(0, 4),
    seed=st.integers(0, 2**63 - 1),
    algorithm=st.sampled_from(ALGORITHMS),
)
def test_any_shape_and_axis(dims, frames, where, seed, algorithm):
    axis = where % (len(dims) + 1)
    shape = tuple(dims[:axis]) + (frames,) + tuple(dims[axis:])
    x = nz.NoiseRecipe(algorithm, {}).draw(shape, axis, seed)
    assert x.shape == torch.Size(shape) and x.dtype == torch.float32
    assert torch.isfinite(x).all()
    assert torch.equal(x, nz.NoiseRecipe(algorithm, {}).draw(shape, axis, seed))


def test_iid_matches_plain_randn():
    # ComfyUI's prepare_noise is torch.randn(shape, generator=torch.manual_seed(seed)).
    shape = (1, 4, 9, 6, 7)
    assert torch.equal(nz.iid_noise(shape, 2, gen(5)), torch.randn(shape, generator=gen(5)))
    assert torch.equal(nz.NoiseRecipe.iid().draw(shape, 2, 5), torch.randn(shape, generator=gen(5)))


# --------------------------------------------------------------------------------------------------
# PYoCo mixed / progressive (ZS^2 section 3)
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("alpha", [0.2, 0.5, 0.9])
@pytest.mark.parametrize("shape,axis", [((8, 4, 32, 32), 0), ((1, 4, 8, 32, 32), 2)])
def test_mixed_correlation_is_alpha(alpha, shape, axis):
    x = nz.mixed_noise(shape, axis, gen(1), alpha=alpha)
    corr = nz.frame_correlation(x, axis)
    off = corr[~torch.eye(8, dtype=torch.bool)]
    # Pearson estimate over n = 4096 positions: SE ~ (1 - rho^2) / sqrt(n); the mean of the pairs is
    # no noisier than one pair.
    tol = 5 * (1 - alpha**2) / math.sqrt(4096)
    assert abs(float(off.mean()) - alpha) < tol


def test_mixed_extremes():
    iid = nz.iid_noise((6, 2, 4, 4), 0, gen(2))
    assert torch.equal(nz.mixed_noise((6, 2, 4, 4), 0, gen(2), alpha=0.0), iid)
    x = nz.mixed_noise((6, 2, 4, 4), 0, gen(2), alpha=1.0)
    assert all(torch.equal(x[0], x[i]) for i in range(6))


@pytest.mark.parametrize("alpha", [0.3, 0.8])
@pytest.mark.parametrize("shape,axis", [((12, 4, 32, 32), 0), ((1, 4, 12, 32, 32), 2)])
def test_progressive_lag_correlation(alpha, shape, axis):
    x = nz.progressive_noise(shape, axis, gen(2), alpha=alpha)
    corr = nz.frame_correlation(x, axis)
    for k in range(1, 5):
        rho = math.sqrt(alpha) ** k
        # SE of one Pearson estimate over 4096 positions ~ (1 - rho^2)/64, plus 1/64 slack for rho ~ 0
        tol = 5 * (1 - rho**2) / math.sqrt(4096) + 1 / 64
        assert abs(diag_mean(corr, k) - rho) < tol, k


def test_progressive_alpha_zero_is_iid():
    iid = nz.iid_noise((5, 3, 4), 0, gen(9))
    assert torch.equal(nz.progressive_noise((5, 3, 4), 0, gen(9), alpha=0.0), iid)


# --------------------------------------------------------------------------------------------------
# ZoLA repeat-mask (section 4.4, Eq. 8)
# --------------------------------------------------------------------------------------------------


def _replay_repeat_mask(shape, axis, seed, base_length, ratio, periodic=True):
    g = gen(seed)
    eps = torch.randn(shape, generator=g)
    t = shape[axis]
    base_shape = list(shape)
    base_shape[axis] = min(base_length, t)
    base = torch.randn(base_shape, generator=g)
    masked = nz.repeat_mask_frames(t, base_length, ratio, g, periodic=periodic)
    return eps, base, masked


@pytest.mark.parametrize("ratio", [0.0, 0.3, 0.5, 1.0])
@pytest.mark.parametrize("shape,axis", [((40, 2, 4, 4), 0), ((1, 2, 40, 4, 4), 2)])
@pytest.mark.parametrize("periodic", [True, False])
def test_repeat_mask_is_eq8(ratio, shape, axis, periodic):
    f = 16
    x = nz.repeat_mask_noise(shape, axis, gen(4), base_length=f, ratio=ratio, periodic_mask=periodic)
    eps, base, masked = _replay_repeat_mask(shape, axis, 4, f, ratio, periodic)
    t = shape[axis]
    if periodic:  # floor(ratio * f + 0.5) phases of the period, every frame of those phases
        phases = set((masked % f).tolist())
        assert len(phases) == math.floor(ratio * f + 0.5)
        assert masked.tolist() == [j for j in range(t) if j % f in phases]
    else:  # exact count over all frames, no Bernoulli variance
        assert masked.numel() == math.floor(ratio * t + 0.5)
    xf, ef, bf = frames_first(x, axis), frames_first(eps, axis), frames_first(base, axis)
    is_masked = torch.zeros(t, dtype=torch.bool)
    is_masked[masked] = True
    for j in range(t):  # v = (1 - m) eps'' + m repeat(eps), frame by frame
        assert torch.equal(xf[j], bf[j % f] if is_masked[j] else ef[j]), j
    # black-box view: frame pairs (j, j + f) are equal iff both are masked
    equal_pairs = sum(torch.equal(xf[j], xf[j + f]) for j in range(t - f))
    assert equal_pairs == sum(bool(is_masked[j] and is_masked[j + f]) for j in range(t - f))


def test_repeat_mask_default_is_the_periodic_mask():
    shape = (40, 2, 4, 4)
    assert nz.NOISE_ALGORITHMS["repeat_mask"].defaults["periodic_mask"] is True
    assert torch.equal(nz.repeat_mask_noise(shape, 0, gen(2)),
                       nz.repeat_mask_noise(shape, 0, gen(2), periodic_mask=True))
    assert not torch.equal(nz.repeat_mask_noise(shape, 0, gen(2)),
                           nz.repeat_mask_noise(shape, 0, gen(2), periodic_mask=False))


def test_repeat_mask_lag_f_correlation():
    # ZoLA Eq. 8 with one mask tiled per period: half the phases repeat exactly, so the mean lag-f frame
    # correlation is 0.5; a mask over all T frames shares noise at lag f only when both frames are masked:
    # n (n - 1) / (T (T - 1)) = 0.249 for n = 128 of T = 256.
    t, f = 256, 16
    shape = (t, 4, 16, 16)  # 1024 positions: SE of one Pearson estimate of independent frames 1/32
    lag = torch.diagonal(nz.frame_correlation(nz.repeat_mask_noise(shape, 0, gen(1), base_length=f), 0), f)
    # 240 pairs, 120 of them exactly 1, the other 120 independent: SE of their mean 1/(32 sqrt(120)) = 0.0029,
    # halved in the overall mean -> 5 SE = 0.007
    assert abs(float(lag.mean()) - 0.5) < 0.007
    # all-frames mask: the share of both-masked pairs varies with the mask, SE ~ sqrt(0.25 * 0.75 / 240) = 0.028
    # per draw; 20 draws -> 0.0063, 5 SE = 0.032
    values = [
        float(torch.diagonal(nz.frame_correlation(
            nz.repeat_mask_noise(shape, 0, gen(s), base_length=f, periodic_mask=False), 0), f).mean())
        for s in range(20)
    ]
    assert abs(sum(values) / 20 - 128 * 127 / (256 * 255)) < 0.032


def test_repeat_mask_ratio_zero_is_iid_and_one_is_periodic():
    shape = (50, 2, 4, 4)
    assert torch.equal(nz.repeat_mask_noise(shape, 0, gen(8), ratio=0.0), nz.iid_noise(shape, 0, gen(8)))
    x = nz.repeat_mask_noise(shape, 0, gen(8), base_length=12, ratio=1.0)
    assert all(torch.equal(x[j], x[j + 12]) for j in range(50 - 12))
    assert not torch.equal(x[0], x[1])  # period exactly 12, not smaller


def test_repeat_mask_uniform_mask():
    # Each frame's (all-frames mask) or phase's (periodic mask) inclusion frequency over 400 seeds:
    # Binomial(400, 0.5)/400 -> SE 0.025, 5 sigma.
    counts = torch.zeros(20)
    phases = torch.zeros(8)
    for seed in range(400):
        counts[nz.repeat_mask_frames(20, 8, 0.5, gen(seed), periodic=False)] += 1
        phases[nz.repeat_mask_frames(8, 8, 0.5, gen(seed))] += 1
    assert ((counts / 400 - 0.5).abs() < 5 * 0.025).all()
    assert ((phases / 400 - 0.5).abs() < 5 * 0.025).all()


def test_repeat_mask_periodic_mask():
    f, t = 8, 30
    x = nz.repeat_mask_noise((t, 2, 3, 3), 0, gen(3), base_length=f, ratio=0.5, periodic_mask=True)
    eps, base, masked = _replay_repeat_mask((t, 2, 3, 3), 0, 3, f, 0.5, periodic=True)
    phases = set((masked % f).tolist())
    assert len(phases) == 4  # floor(0.5 * 8 + 0.5) phases of the base period
    assert masked.tolist() == [j for j in range(t) if j % f in phases]
    for j in range(t):
        assert torch.equal(x[j], base[j % f] if j % f in phases else eps[j])


def test_repeat_mask_fewer_frames_than_base_length():
    x = nz.repeat_mask_noise((5, 4, 8, 8), 0, gen(1), base_length=16, ratio=1.0)
    assert x.shape == (5, 4, 8, 8)
    _, base, _ = _replay_repeat_mask((5, 4, 8, 8), 0, 1, 16, 1.0)
    assert torch.equal(x, base)  # all frames from the base draw, still all distinct (degenerate case)
    assert len({tuple(x[j].flatten()[:4].tolist()) for j in range(5)}) == 5
    y = nz.NoiseRecipe("repeat_mask", {"base_length": 16}).draw((1, 4, 5, 8, 8), 2, seed=1)
    assert y.shape == (1, 4, 5, 8, 8)


# --------------------------------------------------------------------------------------------------
# ZS^2 dependency noise (section 3.1, Algorithm 1, Listing 1)
# --------------------------------------------------------------------------------------------------


def _reference_dependency(shape_ff, seed, lam, candidates, iterations, variant, normalize, drift_guard):
    """Tensor-level re-implementation: every divergence from torch.kl_div on full tensors (Listing 1),
    same draws, same guard/acceptance rules as documented. Frames-first layout ``[T, ...]``."""
    g = gen(seed)
    t = shape_ff[0]
    n = math.prod(shape_ff[1:])

    def standardize(x):
        return (x - x.mean()) / x.std(correction=0) if normalize else x

    def div(x, prev):
        return float(torch.kl_div(x, prev, log_target=True).mean())

    out = [standardize(torch.randn(n, generator=g))]
    for _ in range(1, t):
        prev = out[-1]
        cands = torch.randn((candidates, n), generator=g)
        d0 = [div(standardize(c), prev) for c in cands]
        if drift_guard and min(d0) > lam:  # no candidate reaches lam: fresh draw orthogonal to exp(p), 1, p
            v = torch.stack([prev.exp(), torch.ones(n), prev]).double()
            fresh = torch.randn(n, generator=g).double()
            cand = (fresh - v.T @ torch.linalg.solve(v @ v.T, v @ fresh)).float()
            best = abs(div(standardize(cand), prev) - lam)
        else:
            errs = [abs(d - lam) for d in d0]
            cand = cands[min(range(candidates), key=errs.__getitem__)]
            best = min(errs)

        def compose(a, prev=prev, cand=cand):
            return standardize(math.sqrt(a) * prev + math.sqrt(1 - a) * cand)

        best_a, step = 0.0, 0.1
        for _ in range(iterations):
            trial = best_a + step
            ok = False
            if trial <= nz.DEPENDENCY_ALPHA_MAX:
                e = abs(div(compose(trial), prev) - lam)
                ok = e <= best if variant == "fifth_step" else e < best
            if ok:
                best_a, best = trial, e
            else:
                step *= 0.2 if variant == "fifth_step" else 0.5
        out.append(compose(best_a))
    return torch.stack(out).reshape(shape_ff)


@pytest.mark.parametrize("variant", ["halve_step", "fifth_step"])
@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("drift_guard", [True, False])
def test_dependency_matches_tensor_level_reference(variant, normalize, drift_guard):
    shape = (6, 2, 8, 8)
    x = nz.dependency_noise(shape, 0, gen(21), variant=variant, normalize=normalize, full_candidates=True,
                            drift_guard=drift_guard)
    ref = _reference_dependency(shape, 21, 0.01, 10, 15, variant, normalize, drift_guard)
    # float32 sums in a different order: errors ~1e-6 per step, compounding over 5 frames
    assert_close(x, ref, atol=2e-4)


@pytest.mark.parametrize("variant", ["halve_step", "fifth_step"])
@pytest.mark.parametrize("full", [False, True])
@pytest.mark.parametrize("drift_guard", [True, False])
def test_dependency_search_diagnostics(variant, full, drift_guard):
    shape = (24, 4, 16, 16)  # 1024 elements per frame: the sufficient-statistics path unless full
    x, stats = nz.dependency_noise_with_stats(shape, 0, gen(5), variant=variant, full_candidates=full,
                                              drift_guard=drift_guard)
    rnd, fin, trace = stats["random_error"], stats["final_error"], stats["error_trace"]
    assert trace.shape == (23, 16) and stats["candidate_errors"].shape == (23, 10)
    # lam 0.01 is far below every independent candidate's divergence (~1.65): the guard takes over everywhere
    assert bool((stats["searched"] != drift_guard).all())
    best_candidate = stats["candidate_errors"].min(dim=1).values
    if drift_guard:  # the guard's innovation is orthogonal to exp(p): its divergence at alpha 0 is mean(p e^p)
        assert_close(rnd, (stats["exp_moment"] - stats["lam"]).abs(), atol=1e-4, rtol=1e-4)
        assert (rnd >= best_candidate).all()
    else:
        assert_close(rnd, best_candidate)
    assert (fin <= rnd).all()  # error after linear search <= the innovation's at alpha 0
    assert (trace[:, 1:] <= trace[:, :-1]).all()  # best-so-far error never increases (Fig. 17)
    # and it really decreases: from ~1.65 (independent candidate) to a few 1e-3 (Fig. 17)
    assert float(fin.median()) < 0.05 * float(rnd.median())
    assert ((stats["alpha"] >= 0) & (stats["alpha"] < 1)).all()
    # the reported divergence is what the returned noise achieves (torch.kl_div, Listing 1)
    kl = torch.stack([torch.kl_div(x[i], x[i - 1], log_target=True).mean() for i in range(1, 24)])
    assert_close(kl, stats["divergence"], atol=1e-4, rtol=1e-4)
    assert_close((kl - stats["lam"]).abs(), fin, atol=1e-4, rtol=1e-4)


def test_dependency_guard_keeps_the_search_where_a_candidate_reaches_lam():
    # lam 1.66 ~ mean(p e^p) of a Gaussian frame: some of the 10 candidates land on either side of it, so the
    # random search is used (alpha ~ 0: near-independent frames, Algorithm 1 as written); lam 0.01 never is.
    shape = (12, 4, 16, 16)
    x, stats = nz.dependency_noise_with_stats(shape, 0, gen(4), lam=1.66)
    assert bool(stats["searched"].any())
    d0 = stats["candidate_errors"]  # |D_k - lam| at alpha 0; searched rows pick the closest candidate
    rows = stats["searched"]
    assert_close(stats["random_error"][rows], d0[rows].min(dim=1).values)
    # with the search used on every transition, guard on and off are the same draws, bit for bit
    y, st_y = nz.dependency_noise_with_stats(shape, 0, gen(4), lam=5.0)
    z, st_z = nz.dependency_noise_with_stats(shape, 0, gen(4), lam=5.0, drift_guard=False)
    assert bool(st_y["searched"].all()) and torch.equal(y, z)
    assert not bool(nz.dependency_noise_with_stats(shape, 0, gen(4), lam=0.01)[1]["searched"].any())


def test_sufficient_candidates_have_the_law_of_full_candidates():
    # s = V c for c ~ N(0, I_N) must be N(0, G), G = V V^T; |c|^2 - s^T G^-1 s ~ chi2(N - 3).
    n, k = 2048, 4000
    p = torch.randn(n, generator=gen(1))
    cols = torch.stack([p.exp(), torch.ones(n), p])
    draw = noise_dependency._SufficientCandidates.draw(cols, k, gen(2))
    s = torch.tensor([draw.b, draw.m, draw.r], dtype=torch.float64).T * n  # [K, 3]
    gram = draw.gram
    emp = s.T @ s / k
    # SE of an empirical covariance entry from K draws: sqrt((G_ii G_jj + G_ij^2) / K)
    se = torch.sqrt((torch.outer(gram.diagonal(), gram.diagonal()) + gram**2) / k)
    assert bool(((emp - gram).abs() < 5 * se).all())
    assert bool((s.mean(0).abs() < 5 * torch.sqrt(gram.diagonal() / k)).all())
    chi2 = torch.tensor(draw.chi2, dtype=torch.float64)
    nu = n - 3  # mean nu, variance 2 nu; SE of the sample mean sqrt(2 nu / K)
    assert abs(float(chi2.mean()) - nu) < 5 * math.sqrt(2 * nu / k)
    assert abs(float(chi2.var()) / (2 * nu) - 1) < 5 * math.sqrt(2 / k)
    # the realized winner has exactly the sampled statistics
    out = torch.empty(n)
    draw.compose(7, 0.0, 1.0, 0.0, cols, gen(3), torch.empty(n), out=out)
    v_out = cols.double() @ out.double()
    assert_close(v_out, s[7], atol=1e-3 * n**0.5, rtol=1e-4)
    assert abs(float(out.double().square().sum()) / n - draw.q[7]) < 1e-4


def _kurtosis(z: torch.Tensor) -> float:
    z = z.flatten().double()
    return float(((z - z.mean()) / z.std(correction=0)).pow(4).mean())


@pytest.mark.parametrize("hw,full", [(64, False), (32, False), (32, True)])  # full: same law, 10x the draws
def test_dependency_long_runs_stay_gaussian_and_meet_lambda(hw, full, caplog):
    # 256 frames with the paper's settings (lam 0.01, 10 candidates, 15 iterations). Targets: every transition
    # within 0.01 of lam (the divergence recomputed with torch.kl_div on the output: black box), kurtosis of the
    # last frame 3 +- 0.3 (the sample kurtosis of N Gaussian values has SE sqrt(24 / N): 0.038 for 4x64x64, 0.077
    # for 4x32x32, so 0.3 is >= 3.9 SE), no value beyond 6 sigma (P(|z| > 6) * 256 * 16384 = 0.008 for Gaussian
    # frames; the paper's search grows a 15-sigma spike).
    shape = (256, 4, hw, hw)
    with caplog.at_level("WARNING", logger=noise_dependency.__name__):
        x, stats = nz.dependency_noise_with_stats(shape, 0, gen(0), full_candidates=full)
    kl = torch.stack([torch.kl_div(x[i], x[i - 1], log_target=True).mean() for i in range(1, 256)])
    assert float((kl - 0.01).abs().max()) <= 0.01
    assert abs(_kurtosis(x[-1]) - 3) < 0.3
    assert float(x.abs().max()) < 6.0
    # exp_moment = mean(p exp p) = e^0.5 for Gaussian frames; SE over 4096 values ~ 5.8/64
    assert abs(float(stats["exp_moment"][-1]) - math.exp(0.5)) < 5 * 5.8 / 64
    assert "drifted from N(0, 1)" not in caplog.text


def test_dependency_paper_search_drifts_and_is_reported(caplog):
    # The paper's random search (drift_guard=False): the candidate most aligned with exp(previous frame) is kept
    # every frame and the bias accumulates into one static spike. Same bounds as above, now far exceeded.
    # candidates=1 (no selection) stays Gaussian: kurtosis of 4096 values has SE 0.077 -> 5 SE.
    shape = (256, 4, 32, 32)
    x = nz.dependency_noise(shape, 0, gen(0), candidates=1, drift_guard=False)
    assert abs(_kurtosis(x[-1]) - 3) < 5 * math.sqrt(24 / 4096)
    with caplog.at_level("WARNING", logger=noise_dependency.__name__):
        y, stats = nz.dependency_noise_with_stats(shape, 0, gen(0), drift_guard=False)
    assert _kurtosis(y[-1]) > 6 and float(y.abs().max()) > 10
    j = int(y[-1].abs().argmax())
    assert all(int(y[f].abs().argmax()) == j for f in range(200, 256, 8))  # the same element: a static spot
    assert float(stats["final_error"][-64:].median()) > 0.1  # and the search no longer meets lam
    assert float(stats["exp_moment"].max()) > 2 * math.exp(0.5)
    assert "drifted from N(0, 1)" in caplog.text


def test_dependency_lambda_extremes():
    shape = (10, 4, 32, 32)
    x, stats = nz.dependency_noise_with_stats(shape, 0, gen(2), lam=0.0)
    # lam -> 0: near-identical frames (alpha reaches 0.9875 with the defaults, correlation ~0.994)
    assert diag_mean(nz.frame_correlation(x, 0), 1) > 0.99
    y, stats = nz.dependency_noise_with_stats(shape, 0, gen(2), lam=50.0)
    # lam >> mean(p exp p) ~ 1.65: alpha = 0, frames are independent candidates; the lag-1 Pearson
    # estimate over 4096 positions has SE 1/64 -> 5 sigma
    assert (stats["alpha"] == 0).all()
    assert abs(diag_mean(nz.frame_correlation(y, 0), 1)) < 5 / 64
    # monotone in lam: larger target divergence -> smaller alpha
    a_small = nz.dependency_noise_with_stats(shape, 0, gen(2), lam=0.05)[1]["alpha"].mean()
    a_large = nz.dependency_noise_with_stats(shape, 0, gen(2), lam=0.5)[1]["alpha"].mean()
    assert 0 < a_large < a_small < 1


@pytest.mark.parametrize("variant", ["halve_step", "fifth_step"])
@pytest.mark.parametrize("normalize", [True, False])
def test_dependency_512_frames_no_nan(variant, normalize):
    x, stats = nz.dependency_noise_with_stats((512, 4, 8, 8), 0, gen(0), variant=variant, normalize=normalize)
    assert torch.isfinite(x).all()
    assert ((stats["alpha"] >= 0) & (stats["alpha"] < 1)).all()
    if normalize:  # every frame standardized over its 256 elements
        mean, std = nz.frame_stats(x, 0)
        assert float(mean.abs().max()) < 1e-4 and float((std - 1).abs().max()) < 1e-4


def test_dependency_literal_recursion_drifts_without_the_guard():
    # Without standardization (normalize=False, the paper-literal recursion) the paper's search inflates the
    # variance on small frames; the guard's innovation is orthogonal to p and 1, so the variance tends to
    # 1 - 3/N instead. Per-frame std over 256 elements has SE ~ 1/sqrt(512) = 0.044 (one frame); the mean of
    # the last 64 (strongly correlated) frames is no noisier than one frame.
    literal = nz.dependency_noise((512, 4, 8, 8), 0, gen(0), normalize=False, drift_guard=False)
    _, std = nz.frame_stats(literal[-64:], 0)
    assert float(std.mean()) > 1 + 5 * 0.044
    guarded = nz.dependency_noise((512, 4, 8, 8), 0, gen(0), normalize=False)
    mean, std = nz.frame_stats(guarded[-64:], 0)
    assert abs(float(std.mean()) - math.sqrt(1 - 3 / 256)) < 5 * 0.044
    assert float(mean.abs().max()) < 5 / 16  # SE of a frame mean over 256 values: 1/16


def test_dependency_per_frame_lambda():
    t = 9
    lams = [0.01, 5.0] * 4  # T - 1 values: alternate near-static / independent transitions
    x, stats = nz.dependency_noise_with_stats((t, 2, 16, 16), 0, gen(3), lam=lams)
    assert_close(stats["lam"], torch.tensor(lams))
    assert (stats["alpha"][0::2] > 0.9).all() and (stats["alpha"][1::2] == 0).all()
    # T values: the first is ignored
    y = nz.dependency_noise((t, 2, 16, 16), 0, gen(3), lam=[123.0] + lams)
    assert torch.equal(x, y)
    with pytest.raises(ValueError, match="lam has 3 values"):
        nz.dependency_noise((t, 2, 16, 16), 0, gen(3), lam=[0.1, 0.2, 0.3])


def test_dependency_frame_axis_two():
    x, stats = nz.dependency_noise_with_stats((1, 4, 12, 16, 16), 2, gen(6), lam=0.05)
    corr = nz.frame_correlation(x, 2)
    # alpha ~0.95 -> lag-1 correlation ~sqrt(0.95); 5 sigma of a 1024-position Pearson estimate
    expected = float(stats["alpha"].sqrt().mean())
    assert abs(diag_mean(corr, 1) - expected) < 5 / 32
    kl = torch.kl_div(x[:, :, 1], x[:, :, 0], log_target=True).mean()
    assert abs(float(kl) - float(stats["divergence"][0])) < 1e-4


# --------------------------------------------------------------------------------------------------
# FreeNoise
# --------------------------------------------------------------------------------------------------


def _core_freenoise(noise, dim, context_length, context_overlap, seed):
    """The loop of ComfyUI core / AnimateDiff-Evolved apply_freenoise (in place on a clone)."""
    noise = noise.clone()
    g = gen(seed)
    length = noise.shape[dim]
    delta = context_length - context_overlap
    for start in range(0, length - context_length, delta):
        place = start + context_length
        d = min(delta, length - place)
        if d <= 0:
            break
        idx = torch.randperm(d, generator=g) + start
        src = [slice(None)] * noise.ndim
        src[dim] = idx
        dst = [slice(None)] * noise.ndim
        dst[dim] = slice(place, place + d)
        noise[tuple(dst)] = noise[tuple(src)]
    return noise


def _frame_ids(x: torch.Tensor, axis: int, reference: torch.Tensor) -> list[int]:
    """Index into ``reference`` frames ([F, n]) of every frame of x (exact equality), -1 if none."""
    xf = frames_first(x, axis)
    ids = []
    for row in xf:
        hits = [k for k in range(reference.shape[0]) if torch.equal(row, reference[k])]
        ids.append(hits[0] if len(hits) == 1 else -1)
    return ids


@pytest.mark.parametrize("t,w,s", [(40, 16, 4), (38, 16, 4), (33, 8, 8), (30, 12, 5), (10, 16, 4)])
@pytest.mark.parametrize("shape_of,axis", [(lambda t: (t, 2, 3, 3), 0), (lambda t: (1, 2, t, 3, 3), 2)])
def test_freenoise_permutation_property(t, w, s, shape_of, axis):
    shape = shape_of(t)
    x = nz.freenoise_shuffle(shape, axis, gen(17), window_length=w, stride=s)
    iid = nz.iid_noise(shape, axis, gen(17))
    first = frames_first(iid, axis)[: min(w, t)]
    ids = _frame_ids(x, axis, first)
    assert -1 not in ids  # every frame is a copy of one of the first window's frames
    assert ids[: min(w, t)] == list(range(min(w, t)))  # first window untouched (i.i.d.)
    # chunk [w + c*s, w + (c+1)*s) is a permutation of the frames window_length earlier
    for place in range(w, t, s):
        d = min(s, t - place)
        assert sorted(ids[place : place + d]) == sorted(ids[place - w : place - w + d])
    # every later window starting at a multiple of s is a permutation of the first window
    if w % s == 0:
        for start in range(s, t - w + 1, s):
            assert sorted(ids[start : start + w]) == list(range(w))
    # parity with ComfyUI core / AnimateDiff-Evolved: permutations seeded with the same seed
    assert_close(x, _core_freenoise(iid, axis, w, w - s, 17), atol=0)
    assert_close(nz.apply_freenoise(iid, axis, w, s, 17), x, atol=0)
    recipe = nz.NoiseRecipe("freenoise", {"window_length": w, "stride": s})
    assert torch.equal(recipe.draw(shape, axis, 17), x)


def test_freenoise_permutations_are_random():
    a = nz.freenoise_source_indices(64, 16, 4, gen(1))
    b = nz.freenoise_source_indices(64, 16, 4, gen(2))
    assert not torch.equal(a, b)
    assert not torch.equal(a[16:], torch.arange(16).repeat(3))  # not the identity tiling


# --------------------------------------------------------------------------------------------------
# validation and recipe
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "algorithm,params,num_frames,match",
    [
        ("mixed", {"alpha": 1.2}, None, r"alpha must be in \[0, 1\], got 1.2"),
        ("progressive", {"alpha": -0.1}, None, r"alpha must be in \[0, 1\], got -0.1"),
        ("mixed", {"alpha": float("nan")}, None, r"alpha must be in \[0, 1\], got nan"),
        ("repeat_mask", {"ratio": 1.5}, None, r"ratio must be in \[0, 1\], got 1.5"),
        ("repeat_mask", {"base_length": 0}, None, r"base_length must be in \[1, 4096\], got 0"),
        ("repeat_mask", {"base_length": 2.5}, None, r"base_length must be a whole number"),
        ("repeat_mask", {"periodic_mask": 1}, None, r"periodic_mask must be True or False"),
        ("dependency", {"lam": -1}, None, r"lam must be >= 0, got -1"),
        ("dependency", {"lam": [0.1, -2]}, None, r"lam\[1\] must be >= 0, got -2"),
        ("dependency", {"lam": [0.1, 0.2]}, 10, r"lam has 2 values but the latent has 10 frames"),
        ("dependency", {"candidates": 0}, None, r"candidates must be in \[1, 1000\], got 0"),
        ("dependency", {"candidates": True}, None, r"candidates must be a number"),
        ("dependency", {"iterations": -1}, None, r"iterations must be in \[0, 1000\], got -1"),
        ("dependency", {"variant": "paper"}, None, r"variant must be one of \['halve_step', 'fifth_step'\]"),
        ("freenoise", {"window_length": 0}, None, r"window_length must be in \[1, 4096\], got 0"),
        ("freenoise", {"stride": 0}, None, r"stride must be in \[1, 4096\], got 0"),
        ("freenoise", {"window_length": 8, "stride": 9}, None, r"stride must be in \[1, window_length=8\]"),
        ("mixed", {"ratio": 0.5}, None, r"ratio is not a parameter of noise algorithm 'mixed'"),
        ("pink", {}, None, r"algorithm must be one of"),
    ],
)
def test_validation_names_the_parameter(algorithm, params, num_frames, match):
    with pytest.raises(ValueError, match=match):
        nz.validate_noise_params(algorithm, params, num_frames=num_frames)
    if algorithm in nz.NOISE_ALGORITHMS:
        with pytest.raises(ValueError, match=match):
            nz.NoiseRecipe(algorithm, params).draw((num_frames or 4, 2, 3, 3), 0, seed=0)


def test_validation_accepts_good_lists_and_bad_shapes():
    assert nz.validate_noise_params("dependency", {"lam": [0.1] * 9}, num_frames=10)["lam"] == (0.1,) * 9
    assert nz.validate_noise_params("dependency", {"lam": [0.1] * 10}, num_frames=10)["lam"] == (0.1,) * 10
    assert nz.validate_noise_params("repeat_mask", {"base_length": 16.0})["base_length"] == 16
    with pytest.raises(ValueError, match="frame_axis must be"):
        nz.iid_noise((4, 3), 2, gen(0))
    with pytest.raises(ValueError, match="shape must be"):
        nz.iid_noise((4, 0, 3), 0, gen(0))
    with pytest.raises(ValueError, match="generator must be"):
        nz.iid_noise((4, 3), 0, 7)
    with pytest.raises(ValueError, match="alpha must be"):
        nz.mixed_noise((4, 3), 0, gen(0), alpha=2.0)  # the functions validate too


def test_noise_recipe_value_semantics():
    lam = [0.01, 0.02, 0.03]
    a = nz.NoiseRecipe("dependency", {"lam": lam, "candidates": 4})
    b = nz.NoiseRecipe("dependency", {"candidates": 4, "lam": (0.01, 0.02, 0.03)})
    assert a == b and hash(a) == hash(b)
    assert len({a, b, nz.NoiseRecipe.iid()}) == 2
    lam.append(9.0)  # the recipe copied its parameters
    assert a.params["lam"] == (0.01, 0.02, 0.03)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.algorithm = "iid"  # type: ignore[misc]
    assert a.validate(num_frames=4)["iterations"] == 15
    with pytest.raises(ValueError, match="lam has 3 values"):
        a.validate(num_frames=10)
    assert a.draw((4, 2, 3, 3), 0, seed=1).shape == (4, 2, 3, 3)


# --------------------------------------------------------------------------------------------------
# preview helpers
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape,axis", [((7, 3, 5, 4), 0), ((2, 3, 7, 5, 4), 2)])
@pytest.mark.parametrize("chunk", [1 << 22, 50])
def test_frame_correlation_and_stats_match_naive(shape, axis, chunk, monkeypatch):
    monkeypatch.setattr(noise_preview, "_CHUNK_ELEMENTS", chunk)  # 50 forces the chunked path
    x = nz.progressive_noise(shape, axis, gen(3), alpha=0.6) * 2.0 + 0.5
    ff = frames_first(x, axis).double()
    assert_close(nz.frame_correlation(x, axis), torch.corrcoef(ff).float(), atol=1e-5)
    mean, std = nz.frame_stats(x, axis)
    assert_close(mean, ff.mean(1).float(), atol=1e-5)
    assert_close(std, ff.std(1, correction=0).float(), atol=1e-5)


def test_frame_correlation_constant_frame_is_zero_not_nan():
    x = torch.randn(4, 10, generator=gen(0))
    x[2] = 3.0
    corr = nz.frame_correlation(x, 0)
    assert torch.isfinite(corr).all()
    assert float(corr[2].abs().sum()) == 0.0 and float(corr[0, 0]) == 1.0


def test_render_noise_preview():
    img = nz.render_noise_preview(nz.mixed_noise((8, 2, 8, 8), 0, gen(1), alpha=1.0), 0, size=64)
    assert img.shape == (1, 64 + 16, 64, 3) and img.dtype == torch.float32
    assert float(img.min()) >= 0.0 and float(img.max()) <= 1.0
    # all frames identical -> correlation +1 everywhere -> pure red heatmap
    assert_close(img[0, :64], torch.tensor([1.0, 0.0, 0.0]).expand(64, 64, 3))
    iid = nz.render_noise_preview(nz.iid_noise((1, 2, 16, 32, 32), 2, gen(1)), 2, size=128)
    assert iid.shape == (1, 128 + 32, 128, 3)
    heat = iid[0, :128]
    # diagonal red; off-diagonal near white (|r| < 5/sqrt(2048) -> channel deviation < 0.12)
    assert_close(heat[0, 0], torch.tensor([1.0, 0.0, 0.0]))
    assert float((1 - heat[0, 64:]).abs().max()) < 0.12
    anti = torch.randn(2, 4, 4, generator=gen(2))
    anti[1] = -anti[0]
    neg = nz.render_noise_preview(anti, 0, size=16)
    assert_close(neg[0, 0, 15], torch.tensor([0.0, 0.0, 1.0]))  # -1 -> blue
    with pytest.raises(ValueError, match="size must be"):
        nz.render_noise_preview(anti, 0, size=4)
