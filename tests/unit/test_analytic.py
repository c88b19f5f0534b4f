"""Tests for nodes/algorithms/analytic.py (Gaussian video prior with exact denoisers; issue 9B)."""

from __future__ import annotations

import math

import pytest
import torch
from longanim.nodes.algorithms import analytic as A

T, W = 48, 16  # video length, window length (correlation length 24 > window)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # small float64 matmuls are dominated by thread hand-off on a loaded 2-core box; restore afterwards
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def prior() -> A.GaussianVideoPrior:
    return A.GaussianVideoPrior(T, 16, length_scale=24.0, period=40.0, periodic_weight=0.3)


def noise_distance(cov: torch.Tensor, n_eff: int) -> float:
    """Expected relative Frobenius distance of an empirical covariance from N_eff independent
    columns: E||C - K||_F^2 = (||K||_F^2 + tr(K)^2) / N_eff (Wishart variance)."""
    fro2 = float((cov**2).sum())
    return math.sqrt((fro2 + float(torch.trace(cov)) ** 2) / n_eff / fro2)


def test_covariance_is_the_kernel(prior):
    k = prior.covariance()
    assert k.shape == (T, T) and k.dtype == torch.float64
    torch.testing.assert_close(k, k.T)
    assert float(torch.diagonal(k).sub(1.0).abs().max()) <= 1e-6 + 1e-12  # unit variance + jitter
    assert float(torch.linalg.eigvalsh(k).min()) > 0
    # stationary: K[s, t] depends on s - t only; periodic part makes lag 40 more correlated than lag 30
    lag5 = torch.full((T - 5,), float(k[0, 5]), dtype=torch.float64)
    torch.testing.assert_close(torch.diagonal(k, 5), lag5)
    assert float(k[0, 40]) > float(k[0, 30])


def test_sample_covariance_matches(prior):
    x = prior.sample(600, generator=0)
    assert x.shape == (600, T, 16)
    n_eff = 600 * 16
    expected = noise_distance(prior.covariance(), n_eff)
    dist = A.covariance_distance(A.temporal_covariance(x), prior.covariance())
    # the distance concentrates: over 20 seeds mean 1.0x, std 0.28x the expected value, so 2.5x is
    # ~5 sigma; a wrong kernel is far outside it
    assert dist < 2.5 * expected
    other = A.GaussianVideoPrior(T, 16, length_scale=8.0, period=40.0).covariance()
    assert A.covariance_distance(A.temporal_covariance(x), other) > 5.0 * expected


def test_sample_seeding(prior):
    a = prior.sample(3, generator=7)
    g = torch.Generator().manual_seed(7)
    torch.testing.assert_close(a, prior.sample(3, generator=g), rtol=0, atol=0)
    assert not torch.equal(a, prior.sample(3, generator=8))
    with pytest.raises(ValueError, match="n must"):
        prior.sample(0, generator=1)


def test_window_denoiser_is_the_wiener_filter(prior):
    idx = list(range(10, 10 + W))
    sigma = 0.7
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, W, 5, generator=g, dtype=torch.float64)
    k_ss = prior.covariance()[10 : 10 + W, 10 : 10 + W]
    want = k_ss @ torch.linalg.solve(k_ss + sigma**2 * torch.eye(W, dtype=torch.float64), x)
    torch.testing.assert_close(prior.window_denoiser(idx)(x, sigma), want, rtol=1e-6, atol=1e-7)
    # stationary cache: a shifted window shares the matrix; sigma as a batch tensor is accepted
    shifted = prior.window_denoiser(range(0, W))(x, torch.full((2,), sigma))
    torch.testing.assert_close(shifted, want, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(prior.window_denoiser(idx)(x, 0.0), x)
    assert float(prior.window_denoiser(idx)(x, 1e4).abs().max()) < 1e-4
    with pytest.raises(ValueError, match="indices"):
        prior.window_denoiser([0, T])
    with pytest.raises(ValueError, match="x must"):
        prior.window_denoiser(idx)(x[:, :3], sigma)


def test_denoiser_mse_is_the_posterior_variance(prior):
    # Monte Carlo check that D is the posterior mean: its MSE equals tr(K - A K) / T per element and
    # the residual is uncorrelated with the input (orthogonality principle).
    sigma = 1.0
    x0 = prior.sample(400, generator=2)
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(3)).double()
    xs = x0 + sigma * eps
    est = prior.full_denoiser()(xs, sigma)
    k = prior.covariance()
    a = prior.filter_matrix(range(T), sigma)
    want = float(torch.trace(k - a @ k)) / T
    mse = float(((est - x0) ** 2).mean())
    # 400*16 columns; per-element squared errors are chi^2-like with rel. std sqrt(2); the errors
    # of a column span few effective frames, so rel. std <= sqrt(2 / 6400) = 0.018 (measured 0.007
    # over 10 seeds); 4 % is > 5 sigma of the measured spread
    assert mse == pytest.approx(want, rel=0.04)
    worse = float(((0.8 * est - x0) ** 2).mean())
    assert worse > mse * 1.1
    cross = torch.einsum("nsd,ntd->st", est - x0, xs) / (400 * 16)
    # entries have std <= sqrt(mse * (1 + sigma^2) / 6400) ~ 0.01; 0.06 is > 5 sigma
    assert float(cross.abs().max()) < 0.06


def test_window_equals_full_when_window_is_all_frames(prior):
    g = torch.Generator().manual_seed(4)
    x = torch.randn(3, T, 16, generator=g, dtype=torch.float64) * 5
    for sigma in (0.01, 1.0, 30.0):
        torch.testing.assert_close(
            prior.window_denoiser(list(range(T)))(x, sigma), prior.full_denoiser()(x, sigma), rtol=0, atol=0
        )


def test_karras_sigmas():
    s = A.karras_sigmas(10, 0.002, 80.0)
    assert s.shape == (11,) and float(s[-1]) == 0.0
    assert float(s[0]) == pytest.approx(80.0) and float(s[-2]) == pytest.approx(0.002)
    assert bool((s[1:] < s[:-1]).all())
    with pytest.raises(ValueError, match="sigma_min"):
        A.karras_sigmas(10, 1.0, 0.5)


def _isolated(prior, sigmas):
    def run(x):
        outs = [
            A.euler_sample(prior.window_denoiser(range(s, s + W)), x[..., s : s + W, :], sigmas)
            for s in range(0, T, W)
        ]
        return torch.cat(outs, dim=-2)

    return run


def test_full_denoiser_euler_reproduces_k_and_isolated_windows_do_not(prior):
    sigmas = A.karras_sigmas(100, 0.002, 80.0)
    k = prior.covariance()
    full = prior.full_denoiser()
    # exact output covariance of the (linear, deterministic) samplers: no sampling noise
    c_full = A.linear_output_covariance(lambda x: A.euler_sample(full, x, sigmas), T, 80.0)
    c_iso = A.linear_output_covariance(_isolated(prior, sigmas), T, 80.0)
    d_full = A.covariance_distance(c_full, k)
    d_iso = A.covariance_distance(c_iso, k)
    assert d_full < 0.06  # Euler discretisation error, ~4/steps (measured 0.045 at 100 steps)
    assert d_iso > 0.4 and d_iso > 5 * d_full  # measured ~0.7: cross-window correlation is lost
    assert float(c_iso[:W, W:].abs().max()) < 1e-12  # isolated windows are independent
    c_heun = A.linear_output_covariance(lambda x: A.heun_sample(full, x, sigmas), T, 80.0)
    # Heun leaves only the N(0, sigma_max^2 I) vs N(0, K + sigma_max^2 I) start mismatch, ~K/80^2
    assert A.covariance_distance(c_heun, k) < 0.015

    # the same with real samples
    n = 200
    z = torch.randn(n, T, 16, generator=torch.Generator().manual_seed(5)).double() * 80.0
    samples = A.euler_sample(full, z, sigmas)
    d_samples = A.covariance_distance(A.temporal_covariance(samples), k)
    tol = noise_distance(k, n * 16)
    assert d_samples < d_full + 2.5 * tol  # 2.5x expected noise: ~5 sigma (see test above)
    iso = _isolated(prior, sigmas)(z)
    assert A.covariance_distance(A.temporal_covariance(iso), k) > d_samples + 0.2


def test_euler_callback_and_validation(prior):
    seen = []
    x = torch.zeros(T, 2, dtype=torch.float64)
    A.euler_sample(prior.full_denoiser(), x, A.karras_sigmas(5), callback=lambda i, x, d: seen.append(i))
    assert seen == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="sigmas"):
        A.euler_sample(prior.full_denoiser(), x, [1.0, 2.0])


def test_repetition_score(prior):
    x = prior.sample(400, generator=6)
    k = prior.covariance()
    for lag in (5, 20, 40):
        want = A.covariance_repetition_score(k, lag)
        got = A.repetition_score(x, lag)
        # correlation estimate over 400*16 columns; measured |error| <= 0.016 over 10 seeds (std
        # ~0.007), 0.04 is ~5 sigma
        assert got == pytest.approx(want, abs=0.04)
    # periodic component: lag 40 (the period) correlates more than lag 30
    assert A.covariance_repetition_score(k, 40) > A.covariance_repetition_score(k, 30)
    with pytest.raises(ValueError, match="lag"):
        A.repetition_score(x, T)


def test_validation():
    with pytest.raises(ValueError, match="num_frames"):
        A.GaussianVideoPrior(0, 4)
    with pytest.raises(ValueError, match="length_scale"):
        A.GaussianVideoPrior(8, 4, length_scale=-1.0)
    with pytest.raises(ValueError, match="periodic_weight"):
        A.GaussianVideoPrior(8, 4, periodic_weight=1.5)
    with pytest.raises(ValueError, match="generator"):
        A.GaussianVideoPrior(8, 4).sample(1, generator="x")


# ---------------------------------------------------------------------------------------------------
# Hard case: short correlation + a global content value; seam (jump profile) and drift metrics
# ---------------------------------------------------------------------------------------------------


def test_global_weight_adds_a_constant_to_the_kernel():
    hard = A.GaussianVideoPrior(T, 4, length_scale=6.0, periodic_weight=0.0, global_weight=0.7, jitter=0.0)
    lag = torch.arange(T, dtype=torch.float64)
    torch.testing.assert_close(hard.covariance()[0], 0.3 * torch.exp(-0.5 * (lag / 6.0) ** 2) + 0.7)
    mixed = A.GaussianVideoPrior(T, 4, periodic_weight=0.2, global_weight=0.5, jitter=0.0)
    per = torch.exp(-2.0 * torch.sin(math.pi * lag / 40.0) ** 2)
    torch.testing.assert_close(mixed.covariance()[0], 0.3 * torch.exp(-0.5 * (lag / 24.0) ** 2) + 0.2 * per + 0.5)
    with pytest.raises(ValueError, match="global_weight"):
        A.GaussianVideoPrior(8, 4, periodic_weight=0.5, global_weight=0.6)
    with pytest.raises(ValueError, match="global_weight"):
        A.GaussianVideoPrior(8, 4, global_weight=-0.1)


def test_jump_profile_matches_its_population_value():
    hard = A.GaussianVideoPrior(T, 32, length_scale=6.0, periodic_weight=0.0, global_weight=0.7)
    x = hard.sample(400, generator=3)
    emp = A.jump_profile(x)
    pop = A.covariance_jump_profile(hard.covariance())
    assert emp.shape == (T - 1,) and pop.shape == (T - 1,)
    # a squared Gaussian difference has relative standard deviation sqrt(2); mean of N = 400 * 32 columns: 5 sigma
    rel = 5 * math.sqrt(2.0 / (400 * 32))
    assert float(((emp - pop).abs() / pop).max()) < rel
    # the constant cancels: the jump depends on the short-range part only, 2 * 0.3 * (1 - exp(-1/72))
    torch.testing.assert_close(pop, torch.full_like(pop, 2 * 0.3 * (1 - math.exp(-1 / 72))), rtol=1e-4, atol=3e-6)
    with pytest.raises(ValueError, match="videos"):
        A.jump_profile(torch.zeros(3, 1, 2))


def test_content_drift_matches_sheppard_and_the_extremes():
    hard = A.GaussianVideoPrior(T, 32, length_scale=6.0, periodic_weight=0.0, global_weight=0.7)
    k = hard.covariance()
    want = A.covariance_content_drift(k, W)
    # population: the two window means' correlation rho, P(signs differ) = arccos(rho) / pi
    a, b = slice(0, W), slice(T - W, T)
    rho = float(k[a, b].sum() / torch.sqrt(k[a, a].sum() * k[b, b].sum()))
    assert want == pytest.approx(math.acos(rho) / math.pi, abs=1e-12)
    assert 0.1 < want < 0.3
    x = hard.sample(500, generator=5)
    n = 500 * 32
    got = A.content_drift(x, W)
    assert abs(got - want) < 5 * math.sqrt(want * (1 - want) / n)  # binomial, 5 sigma
    # independent ends (block-diagonal covariance) give exactly 0.5; identical ends give 0
    iso = k.clone()
    iso[:W, W:] = 0
    iso[W:, :W] = 0
    assert A.covariance_content_drift(iso, W) == pytest.approx(0.5, abs=1e-12)
    assert A.covariance_content_drift(torch.ones(T, T, dtype=torch.float64), W) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="window"):
        A.content_drift(x, 0)
    with pytest.raises(ValueError, match="window"):
        A.covariance_content_drift(k, T + 1)
