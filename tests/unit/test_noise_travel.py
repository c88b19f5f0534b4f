"""Tests for noise travel (ZoLA section 4.4, Eq. 9): plan, re-noising maths and the sampler wrapper."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from longanim.nodes.algorithms import noise_travel as nt
from longanim.nodes.algorithms.noise_travel import Segment

# --------------------------------------------------------------------------------------------------
# Toy samplers and models (k-diffusion contract)
# --------------------------------------------------------------------------------------------------


def euler(model, x, sigmas, extra_args=None, callback=None, disable=None):
    """k-diffusion Euler ODE sampler (valid for eps and for flow/CONST models alike)."""
    extra_args = {} if extra_args is None else extra_args
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        if callback is not None:
            callback({"x": x, "i": i, "sigma": sigmas[i], "sigma_hat": sigmas[i], "denoised": denoised})
        x = x + (x - denoised) / sigmas[i] * (sigmas[i + 1] - sigmas[i])
    return x


def heun(model, x, sigmas, extra_args=None, callback=None, disable=None):
    """k-diffusion Heun (2nd order) ODE sampler; last step to sigma 0 is Euler."""
    extra_args = {} if extra_args is None else extra_args
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        d = (x - model(x, sigmas[i] * s_in, **extra_args)) / sigmas[i]
        dt = sigmas[i + 1] - sigmas[i]
        if sigmas[i + 1] == 0:
            x = x + d * dt
        else:
            x2 = x + d * dt
            d2 = (x2 - model(x2, sigmas[i + 1] * s_in, **extra_args)) / sigmas[i + 1]
            x = x + (d + d2) / 2 * dt
    return x


class CountingModel:
    """Toy denoiser that records every sigma it is called with."""

    def __init__(self) -> None:
        self.sigmas: list[float] = []

    def __call__(self, x, sigma, **kwargs):
        self.sigmas.append(float(sigma[0]))
        return 0.9 * x


M_DATA, S_DATA = 0.5, 0.7  # data x0 ~ N(m, s^2) elementwise


def _bcast(sigma, x):
    return sigma.view(-1, *([1] * (x.ndim - 1))).to(x.dtype)


def gaussian_denoiser_eps(x, sigma, **kwargs):
    """Exact E[x0 | x] for x = x0 + sigma*eps, x0 ~ N(m, s^2): (s^2 x + sigma^2 m) / (s^2 + sigma^2)."""
    sig = _bcast(sigma, x)
    return (S_DATA**2 * x + sig**2 * M_DATA) / (S_DATA**2 + sig**2)


def gaussian_denoiser_flow(x, sigma, **kwargs):
    """Exact E[x0 | x] for x = (1-sigma) x0 + sigma*eps.

    x ~ N((1-sigma) m, (1-sigma)^2 s^2 + sigma^2) and Cov(x0, x) = (1-sigma) s^2, so
    D = m + (1-sigma) s^2 / ((1-sigma)^2 s^2 + sigma^2) * (x - (1-sigma) m)   (D = m at sigma = 1).
    """
    sig = _bcast(sigma, x)
    a = 1 - sig
    return M_DATA + a * S_DATA**2 / (a**2 * S_DATA**2 + sig**2) * (x - a * M_DATA)


def karras(n: int, smin: float = 0.01, smax: float = 14.6, rho: float = 7.0) -> torch.Tensor:
    r = torch.linspace(0, 1, n, dtype=torch.float64)
    s = (smax ** (1 / rho) + r * (smin ** (1 / rho) - smax ** (1 / rho))) ** rho
    return torch.cat([s, torch.zeros(1, dtype=torch.float64)])


def flow_sigmas(n: int) -> torch.Tensor:
    return torch.cat(
        [torch.linspace(1.0, 1.0 / n, n, dtype=torch.float64), torch.zeros(1, dtype=torch.float64)]
    )


def _assert_close(a: torch.Tensor, b: torch.Tensor, atol: float) -> None:
    assert a.shape == b.shape and (a - b).abs().max().item() <= atol


def _gen(seed: int) -> torch.Generator:
    return torch.Generator(device="cpu").manual_seed(seed)


# --------------------------------------------------------------------------------------------------
# Plan
# --------------------------------------------------------------------------------------------------


def test_plan_worked_example():
    plan = nt.travel_plan(10, jump=2, start=0.0, end=0.4, repeats=1)
    assert plan == [Segment(0, 2, 0, 0), Segment(0, 4, 2, 1), Segment(2, 10)]
    assert nt.visited_steps(plan) == [0, 1, 0, 1, 2, 3, 2, 3, 4, 5, 6, 7, 8, 9]
    assert nt.count_model_calls(plan) == 10 + 2 * 2 * 1
    assert nt.count_model_calls(plan, calls_per_step=2) == 28


def test_plan_repeats_and_offset_range():
    plan = nt.travel_plan(10, jump=1, start=0.5, end=0.8, repeats=2)
    # range steps 5, 6, 7; each single-step block run 1 + 2 times
    assert nt.visited_steps(plan) == [0, 1, 2, 3, 4, 5, 5, 5, 6, 6, 6, 7, 7, 7, 8, 9]
    assert nt.num_jumps(plan) == 6
    assert nt.count_model_calls(plan) == 10 + 3 * 1 * 2


def test_plan_defaults_documented():
    # L = max(1, round(0.1 n)); range [0, 0.3): 20 steps -> L = 2, blocks [0,2), [2,4), [4,6)
    assert nt.default_jump(20) == 2 and nt.default_jump(3) == 1 and nt.default_jump(30) == 3
    plan = nt.travel_plan(20)
    assert nt.num_jumps(plan) == 3
    assert nt.count_model_calls(plan) == 20 + 3 * 2
    # float guard: 0.3 * 10 = 3.0000000000000004 must not admit step 3
    plan10 = nt.travel_plan(10, jump=1, start=0.0, end=0.3)
    assert [s.renoise_to for s in plan10[:-1]] == [0, 1, 2]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"jump": 0},
        {"jump": 3, "start": 0.5, "end": 0.5},
        {"jump": 3, "start": 0.0, "end": 0.2},  # range holds 2 steps < L
        {"jump": 2, "repeats": 0},
    ],
)
def test_plan_disabled_is_plain(kwargs):
    assert nt.travel_plan(10, **kwargs) == [Segment(0, 10)]


@settings(max_examples=100, deadline=None)
@given(
    n=st.integers(1, 60),
    jump=st.integers(0, 12),
    start=st.floats(0, 1),
    width=st.floats(0, 1),
    repeats=st.integers(0, 3),
)
def test_plan_invariants(n, jump, start, width, repeats):
    end = min(1.0, start + width)
    plan = nt.travel_plan(n, jump=jump, start=start, end=end, repeats=repeats)
    nt._validate_plan(plan, n)  # chains, starts at 0, ends at n
    jumps = nt.num_jumps(plan)
    assert nt.count_model_calls(plan) == n + jumps * jump  # jumps already counts repeats
    assert jumps % max(repeats, 1) == 0
    for seg in plan[:-1]:
        a, b = seg.renoise_to, seg.stop
        assert b - a == jump
        # the whole travelled block lies in [start*n, end*n)
        assert a >= start * n - 1e-9 and b - 1 < end * n + 1e-9
    # first visit of every step happens in order; the steps visited more than once are inside the range
    visited = nt.visited_steps(plan)
    repeated = {i for i in visited if visited.count(i) > 1}
    assert all(start * n - 1e-9 <= i < end * n + 1e-9 for i in repeated)
    assert sorted(set(visited)) == list(range(n))


# --------------------------------------------------------------------------------------------------
# Re-noising maths
# --------------------------------------------------------------------------------------------------

N_STAT = 100_000  # samples for distribution checks


@pytest.mark.parametrize("param", ["eps", "flow"])
@pytest.mark.parametrize("sigma", [0.3, 0.8])
def test_renoise_clean_matches_forward_noising(param, sigma):
    x0 = torch.rand(N_STAT, generator=_gen(0), dtype=torch.float64) * 2 - 1
    eps = torch.randn(N_STAT, generator=_gen(1), dtype=torch.float64)
    out = nt.renoise(x0, 0.0, sigma, eps, param)
    signal = x0 if param == "eps" else (1 - sigma) * x0
    _assert_close(out, signal + sigma * eps, 1e-12)
    # distribution of the residual: mean 0, variance sigma^2; 5 standard errors of each estimator
    r = out - signal
    assert abs(r.mean().item()) < 5 * sigma / math.sqrt(N_STAT)
    assert abs(r.var().item() - sigma**2) < 5 * sigma**2 * math.sqrt(2 / N_STAT)


@pytest.mark.parametrize(
    ("param", "lo", "mid", "hi"), [("eps", 0.2, 1.5, 6.0), ("flow", 0.1, 0.45, 0.9), ("flow", 0.0, 0.5, 1.0)]
)
def test_renoise_composition_matches_direct(param, lo, mid, hi):
    x_lo = torch.full((N_STAT,), 0.7, dtype=torch.float64)
    e1, e2, e3 = (torch.randn(N_STAT, generator=_gen(s), dtype=torch.float64) for s in (11, 12, 13))
    two = nt.renoise(nt.renoise(x_lo, lo, mid, e1, param), mid, hi, e2, param)
    one = nt.renoise(x_lo, lo, hi, e3, param)
    scale, std = nt.renoise_coefficients(lo, hi, param)
    for out in (two, one):
        # mean scale*x_lo, var std^2: 5 standard errors of mean / variance estimators
        assert abs(out.mean().item() - scale * 0.7) < 5 * std / math.sqrt(N_STAT)
        assert abs(out.var().item() - std**2) < 5 * std**2 * math.sqrt(2 / N_STAT)
    # the two independent estimates agree: 5 * sqrt(2) standard errors of a difference
    assert abs(two.mean().item() - one.mean().item()) < 5 * math.sqrt(2) * std / math.sqrt(N_STAT)
    assert abs(two.var().item() - one.var().item()) < 5 * math.sqrt(2) * std**2 * math.sqrt(2 / N_STAT)


def test_renoise_coefficients_closed_form():
    assert nt.renoise_coefficients(3.0, 5.0, "eps") == (1.0, 4.0)
    scale, std = nt.renoise_coefficients(0.2, 0.6, "flow")
    assert scale == pytest.approx(0.4 / 0.8)
    assert std == pytest.approx(math.sqrt(0.36 - (0.2 * 0.5) ** 2))


def test_renoise_edge_cases():
    x = torch.randn(2, 3, 4, generator=_gen(2))
    e = torch.randn(2, 3, 4, generator=_gen(3))
    for param in ("eps", "flow"):
        same = nt.renoise(x, 0.5, 0.5, e, param)
        assert torch.equal(same, x) and same is not x
    assert torch.equal(nt.renoise(x, 0.3, 1.0, e, "flow"), e)  # sigma_hi = 1: pure noise
    assert torch.equal(nt.renoise(x, 1.0, 1.0, e, "flow"), x)  # sigma_lo = 1 = sigma_hi: identity
    half = nt.renoise(x.half(), 0.0, 2.0, e, "eps")
    assert half.dtype == torch.float16
    with pytest.raises(ValueError, match="sigma_hi must be >= sigma_lo"):
        nt.renoise(x, 0.6, 0.5, e, "eps")
    with pytest.raises(ValueError, match=r"sigma_hi must be in \[0, 1\]"):
        nt.renoise(x, 0.5, 2.0, e, "flow")
    with pytest.raises(ValueError, match="parameterization"):
        nt.renoise(x, 0.1, 0.5, e, "v")
    with pytest.raises(ValueError, match="noise must have the shape"):
        nt.renoise(x, 0.1, 0.5, e[:1], "eps")


# --------------------------------------------------------------------------------------------------
# Sampler wrapper
# --------------------------------------------------------------------------------------------------


def test_visited_sigmas_and_call_count():
    sigmas = karras(12)
    for plan in (
        nt.travel_plan(12, jump=2, start=0.0, end=0.5, repeats=1),
        nt.travel_plan(12, jump=3, start=0.25, end=1.0, repeats=2),
        nt.travel_plan(12),
    ):
        model = CountingModel()
        x = torch.randn(3, 2, 4, 4, generator=_gen(4), dtype=torch.float64) * sigmas[0]
        nt.sample_with_travel(model, x, sigmas, inner=euler, plan=plan, seed=1)
        expected = [float(sigmas[i]) for i in nt.visited_steps(plan)]
        assert model.sigmas == expected
        assert (
            len(model.sigmas)
            == nt.count_model_calls(plan)
            == 12 + nt.num_jumps(plan) * (plan[0].stop - plan[0].renoise_to)
        )


@pytest.mark.parametrize("plan_kwargs", [{"jump": 0}, {"jump": 2, "start": 0.6, "end": 0.6}])
def test_disabled_travel_is_bit_identical_to_inner(plan_kwargs):
    sigmas = karras(10).float()
    x = torch.randn(4, 3, 5, 5, generator=_gen(5)) * sigmas[0]
    ref = euler(gaussian_denoiser_eps, x, sigmas)
    plan = nt.travel_plan(10, **plan_kwargs)
    out = nt.sample_with_travel(gaussian_denoiser_eps, x, sigmas, inner=euler, plan=plan, seed=3)
    assert torch.equal(out, ref)


@pytest.mark.parametrize("frame_layout", [(4, 4, 40, 40), (1, 4, 4, 40, 40)])
@pytest.mark.parametrize("param", ["eps", "flow"])
def test_travel_does_not_bias_exact_gaussian_model(param, frame_layout):
    """Exact denoiser of N(m, s^2) data: travel's output statistics match plain sampling's."""
    n = 30
    sigmas = karras(n) if param == "eps" else flow_sigmas(n)
    model = gaussian_denoiser_eps if param == "eps" else gaussian_denoiser_flow
    e = torch.randn(frame_layout, generator=_gen(6), dtype=torch.float64)
    # exact marginal at sigmas[0]: eps N(m, s^2 + sigma^2); flow (sigma = 1) pure noise
    x = M_DATA + math.sqrt(S_DATA**2 + float(sigmas[0]) ** 2) * e if param == "eps" else e
    plan = nt.travel_plan(n, jump=3, start=0.0, end=0.5, repeats=2)
    plain = nt.sample_with_travel(model, x, sigmas, inner=heun, plan=[Segment(0, n)])
    travel = nt.sample_with_travel(model, x, sigmas, inner=heun, plan=plan, parameterization=param, seed=7)
    count = e.numel()
    # difference of two estimates, each with standard error s/sqrt(N) (mean) and s^2 sqrt(2/N) (variance);
    # 5 standard errors of the difference
    tol_mean = 5 * math.sqrt(2) * S_DATA / math.sqrt(count)
    tol_var = 5 * math.sqrt(2) * S_DATA**2 * math.sqrt(2 / count)
    assert abs(travel.mean().item() - plain.mean().item()) < tol_mean
    assert abs(travel.var().item() - plain.var().item()) < tol_var
    # Heun with 30 steps is close to the data law itself: 5 standard errors plus a discretisation allowance
    # of 0.01 in variance (measured bias < 0.005 over seeds)
    assert abs(plain.mean().item() - M_DATA) < 5 * S_DATA / math.sqrt(count)
    assert abs(plain.var().item() - S_DATA**2) < 5 * S_DATA**2 * math.sqrt(2 / count) + 0.01


def test_exactness_test_detects_a_wrong_renoise():
    """Negative control: re-noising a flow model with the eps formula biases the result beyond tolerance."""
    n = 30
    sigmas = flow_sigmas(n)
    x = torch.randn(4, 4, 40, 40, generator=_gen(6), dtype=torch.float64)
    plan = nt.travel_plan(n, jump=3, start=0.0, end=0.5, repeats=2)
    wrong = nt.sample_with_travel(
        gaussian_denoiser_flow, x, sigmas, inner=heun, plan=plan, parameterization="eps"
    )
    tol_mean = 5 * math.sqrt(2) * S_DATA / math.sqrt(x.numel())
    assert abs(wrong.mean().item() - M_DATA) > 5 * tol_mean  # far outside the tolerance above


def test_callback_global_index_and_interrupt():
    sigmas = karras(10)
    plan = nt.travel_plan(10, jump=2, start=0.0, end=0.6, repeats=1)
    seen: list[tuple[int, int]] = []
    interrupts: list[int] = []
    x = torch.randn(2, 3, 4, generator=_gen(8), dtype=torch.float64) * sigmas[0]
    nt.sample_with_travel(
        CountingModel(),
        x,
        sigmas,
        callback=lambda d: seen.append((d["i"], d["sigma_index"])),
        inner=euler,
        plan=plan,
        check_interrupt=lambda: interrupts.append(1),
        seed=0,
    )
    assert [i for i, _ in seen] == list(range(nt.count_model_calls(plan)))
    assert [j for _, j in seen] == nt.visited_steps(plan)
    assert len(interrupts) == len(plan) - 1

    class Stop(Exception):
        pass

    def stop():
        raise Stop

    model = CountingModel()
    with pytest.raises(Stop):
        nt.sample_with_travel(model, x, sigmas, inner=euler, plan=plan, check_interrupt=stop)
    assert len(model.sigmas) == plan[0].steps  # stopped right after the first segment


def test_noise_fn_gets_jump_index_and_shape():
    sigmas = karras(10)
    plan = nt.travel_plan(10, jump=1, start=0.0, end=0.3, repeats=2)
    calls: list[tuple[int, tuple]] = []

    def noise_fn(j, shape):
        calls.append((j, shape))
        return torch.zeros(shape)

    x = torch.randn(2, 3, 4, generator=_gen(9), dtype=torch.float64) * sigmas[0]
    nt.sample_with_travel(CountingModel(), x, sigmas, inner=euler, plan=plan, noise_fn=noise_fn)
    assert calls == [(j, (2, 3, 4)) for j in range(6)]


def test_deterministic_under_seed():
    sigmas = flow_sigmas(12).float()
    x = torch.randn(3, 4, 5, 6, generator=_gen(10))
    plan = nt.travel_plan(12, jump=2, start=0.0, end=0.5)

    def run(**kw):
        return nt.sample_with_travel(
            gaussian_denoiser_flow, x, sigmas, inner=euler, plan=plan, parameterization="flow", **kw
        )

    a, b, c = run(seed=1), run(seed=1), run(seed=2)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert torch.equal(run(extra_args={"seed": 1}), a)  # seed falls back to extra_args["seed"]
    n1, n2 = nt.iid_noise_fn(5)(3, (2, 2)), nt.iid_noise_fn(5)(3, (2, 2))
    assert torch.equal(n1, n2) and n1.dtype == torch.float32 and n1.device.type == "cpu"
    assert not torch.equal(n1, nt.iid_noise_fn(5)(4, (2, 2)))


# --------------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"num_steps": 0}, "steps"),
        ({"num_steps": 10, "jump": -1}, "jump"),
        ({"num_steps": 10, "start": 1.5}, "start"),
        ({"num_steps": 10, "end": -0.1}, "end"),
        ({"num_steps": 10, "start": 0.6, "end": 0.4}, "start_percent must be <= end_percent"),
        ({"num_steps": 10, "repeats": -1}, "repeats"),
    ],
)
def test_validation_names_input(kwargs, name):
    with pytest.raises(ValueError, match=name):
        nt.validate_travel(**kwargs)
    with pytest.raises(ValueError, match=name):
        nt.travel_plan(**kwargs)


def test_plan_must_match_sigmas():
    sigmas = karras(8)
    x = torch.zeros(1, 2)
    with pytest.raises(ValueError, match="plan must start at step 0 and end at step 8"):
        nt.sample_with_travel(CountingModel(), x, sigmas, inner=euler, plan=nt.travel_plan(10))
    with pytest.raises(ValueError, match="do not chain"):
        nt.sample_with_travel(
            CountingModel(), x, sigmas, inner=euler, plan=[Segment(0, 4, 1, 0), Segment(2, 8)]
        )
    with pytest.raises(ValueError, match="sigmas must be a 1-D"):
        nt.sample_with_travel(CountingModel(), x, sigmas[:1], inner=euler)
