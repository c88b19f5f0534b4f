"""Tests for phased inference with shared noise reschedule (Controllable Long Image Animation, Eqs. 9-12)."""

from __future__ import annotations

import math

import pytest
import torch
from longanim.nodes.algorithms import phased as ph


def _assert_close(a: torch.Tensor, b: torch.Tensor, atol: float) -> None:
    assert a.shape == b.shape and (a - b).abs().max().item() <= atol


def _gen(seed: int) -> torch.Generator:
    return torch.Generator(device="cpu").manual_seed(seed)


def karras(n: int, smin: float = 0.03, smax: float = 14.6, rho: float = 7.0) -> torch.Tensor:
    r = torch.linspace(0, 1, n)
    s = (smax ** (1 / rho) + r * (smin ** (1 / rho) - smax ** (1 / rho))) ** rho
    return torch.cat([s, torch.zeros(1)])


class ToyVideoModel:
    """Denoiser coupling frames (so a frame shuffle matters), with a per-clip shift from extra_args."""

    def __init__(self, frame_axis: int = 0) -> None:
        self.frame_axis = frame_axis
        self.calls = 0

    def __call__(self, x, sigma, shift: float = 0.0, **kwargs):
        self.calls += 1
        sig = sigma.view(-1, *([1] * (x.ndim - 1)))
        frame_mean = x.mean(dim=self.frame_axis, keepdim=True)
        return (0.6 * x + 0.3 * frame_mean) / (1 + 0.05 * sig**2) + shift


def _run(x, sigmas, frame_axis=0, **kw):
    kw.setdefault("num_clips", 3)
    kw.setdefault("seed", 0)
    model = ToyVideoModel(frame_axis)
    out, stats = ph.phased_sample(model, x, sigmas, frame_axis=frame_axis, **kw)
    assert stats["model_calls"] == model.calls
    return out, stats


# --------------------------------------------------------------------------------------------------
# Split and validation
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("steps", "gamma", "m"),
    [(10, 0.8, 8), (25, 0.8, 20), (7, 0.8, 6), (10, 0.0, 0), (10, 1.0, 10), (3, 0.5, 2), (20, 0.7, 14)],
)
def test_phased_split_is_ceil(steps, gamma, m):
    assert ph.phased_split(steps, gamma) == m


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"num_clips": 0}, "num_clips"),
        ({"num_clips": 2.0}, "num_clips"),
        ({"num_clips": 2, "gamma": 1.5}, r"gamma must be in \[0, 1\]"),
        ({"num_clips": 2, "gamma": -0.1}, "gamma"),
        ({"num_clips": 2, "omega": -0.1}, "omega"),
        ({"num_clips": 2, "omega": 1.5}, r"omega must be in \[0, 1.0\]"),
        ({"num_clips": 3, "num_frames": 8}, "num_clips must divide"),
        ({"num_clips": 2, "frame_axis": 5, "ndim": 4}, "frame_axis"),
        ({"num_clips": 2, "parameterization": "x0"}, "parameterization"),
    ],
)
def test_validation_names_input(kwargs, name):
    with pytest.raises(ValueError, match=name):
        ph.validate_phased(**kwargs)


def test_validation_in_sampler():
    x = torch.zeros(8, 2, 3, 3)
    with pytest.raises(ValueError, match="num_clips must divide"):
        ph.phased_sample(ToyVideoModel(), x, karras(4), num_clips=3)
    with pytest.raises(ValueError, match="gamma"):
        ph.phased_sample(ToyVideoModel(), x, karras(4), num_clips=2, gamma=2.0)
    with pytest.raises(ValueError, match="steps"):
        ph.phased_split(0, 0.5)


# --------------------------------------------------------------------------------------------------
# Eq. 9 phases
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("frame_axis", "shape"), [(0, (12, 2, 3, 3)), (2, (1, 2, 12, 3, 3))])
def test_clips_identical_at_split_then_differ(frame_axis, shape):
    T, K, f = 10, 3, 4
    sigmas = karras(T)
    x = torch.randn(shape, generator=_gen(1)) * sigmas[0]
    states: dict[tuple[int, int], torch.Tensor] = {}

    def cb(d):
        states[(d["clip"], d["step"])] = d["x"].clone()

    out, stats = _run(x, sigmas, frame_axis, num_clips=K, gamma=0.8, omega=0.2, callback=cb)
    M = ph.phased_split(T, 0.8)
    assert stats["split_step"] == M == 8
    assert out.shape == x.shape
    for k in range(1, K):
        assert (k, M - 1) not in states  # clips 2..K never evaluate the shared steps
        assert torch.equal(states[(k, M)], states[(0, M)])  # bit-identical at step M (Eq. 9)
        assert not torch.allclose(states[(k, M + 1)], states[(0, M + 1)])  # re-sampled after M
    clips = out.split(f, dim=frame_axis)
    assert not torch.allclose(clips[1], clips[0]) and not torch.allclose(clips[2], clips[1])


def test_gamma_one_gives_copies():
    T, K = 8, 4
    sigmas = karras(T)
    x = torch.randn(8, 2, 3, 3, generator=_gen(2)) * sigmas[0]
    out, stats = _run(x, sigmas, num_clips=K, gamma=1.0)
    clips = out.split(2, dim=0)
    for c in clips[1:]:
        assert torch.equal(c, clips[0])
    assert stats == {"model_calls": T, "model_calls_full": K * T, "saved": (K - 1) * T, "split_step": T}


@pytest.mark.parametrize("param", ["eps", "flow"])
def test_gamma_zero_gives_independent_full_samplings(param):
    T, K, f = 6, 3, 2
    sigmas = karras(T) if param == "eps" else torch.linspace(1, 0, T + 1)
    x = torch.randn(K * f, 2, 3, 3, generator=_gen(3)) * (sigmas[0] if param == "eps" else 1.0)
    out, stats = _run(x, sigmas, num_clips=K, gamma=0.0, omega=0.2, parameterization=param)
    assert stats["model_calls"] == K * T and stats["saved"] == 0
    clips = out.split(f, dim=0)
    for k in range(K):
        alone, _ = _run(x[k * f : (k + 1) * f], sigmas, num_clips=1, gamma=0.0, parameterization=param)
        assert torch.equal(clips[k], alone)
    assert not torch.allclose(clips[0], clips[1]) and not torch.allclose(clips[1], clips[2])


@pytest.mark.parametrize("gamma", [0.0, 0.3, 0.5, 0.8, 0.95, 1.0])
@pytest.mark.parametrize("K", [1, 2, 4])
def test_model_call_count(gamma, K):
    T = 10
    sigmas = karras(T)
    x = torch.randn(2 * K, 1, 2, 2, generator=_gen(4)) * sigmas[0]
    _, stats = _run(x, sigmas, num_clips=K, gamma=gamma)
    M = ph.phased_split(T, gamma)
    assert stats["model_calls"] == T + (K - 1) * (T - M)
    assert stats["model_calls_full"] == K * T
    assert stats["saved"] == (K - 1) * M


def test_deterministic_and_seeded():
    sigmas = karras(8)
    x = torch.randn(9, 2, 3, 3, generator=_gen(5)) * sigmas[0]
    a, _ = _run(x, sigmas, gamma=0.5, seed=11)
    b, _ = _run(x, sigmas, gamma=0.5, seed=11)
    c, _ = _run(x, sigmas, gamma=0.5, seed=12)
    assert torch.equal(a, b)
    assert not torch.equal(a[3:], c[3:])
    assert torch.equal(a[:3], c[:3])  # clip 1 does not depend on the reschedule seed


def test_extra_args_for_clip_and_interrupt():
    T, K = 5, 3
    sigmas = karras(T)
    x = torch.randn(6, 1, 2, 2, generator=_gen(6)) * sigmas[0]
    seen: list[tuple[int, float]] = []
    model = ToyVideoModel()

    def spy(xk, sigma, **kw):
        seen.append((kw.get("clip_id"), kw.get("shift")))
        return model(xk, sigma, shift=kw["shift"])

    ticks: list[int] = []
    out, stats = ph.phased_sample(
        spy,
        x,
        sigmas,
        {"shift": 0.0, "clip_id": -1},
        num_clips=K,
        gamma=0.6,
        extra_args_for_clip=lambda k: {"clip_id": k, "shift": 0.1 * k},
        check_interrupt=lambda: ticks.append(1),
    )
    M = ph.phased_split(T, 0.6)
    assert seen[:T] == [(0, 0.0)] * T
    assert sorted(set(seen[T:])) == [(1, 0.1), (2, 0.2)]
    assert len(ticks) == T + (T - M)  # once per step of clip 1, once per lockstep step of clips 2..K
    assert stats["model_calls"] == len(seen)


# --------------------------------------------------------------------------------------------------
# Eqs. 10-12 maths
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("param", ["eps", "flow"])
def test_ddim_step_with_predicted_noise_is_euler(param):
    x = torch.randn(4, 3, generator=_gen(7), dtype=torch.float64)
    d = torch.randn(4, 3, generator=_gen(8), dtype=torch.float64)
    sigma, sigma_next = (2.5, 1.2) if param == "eps" else (0.7, 0.4)
    n = ph.predicted_noise(x, d, sigma, param)
    euler = x + (x - d) / sigma * (sigma_next - sigma)
    _assert_close(ph.ddim_step(param)(x, d, sigma, sigma_next, n), euler, 1e-12)
    assert torch.equal(ph.predicted_noise(x, d, 0.0, param), torch.zeros_like(x))


def test_reschedule_omega_zero_is_a_frame_permutation_across_clips():
    # clips 2..4 of 5 frames; frame j of clip k is filled with the value 10k + j
    clips = [torch.full((5, 2, 3), 0.0) + (10 * k + torch.arange(5.0)).view(5, 1, 1) for k in range(3)]
    out = ph.reschedule_noise(clips, 0.0, _gen(9), frame_axis=0)
    assert [o.shape for o in out] == [c.shape for c in clips]
    frames_in = sorted(float(v) for c in clips for v in c[:, 0, 0])
    frames_out = sorted(float(v) for o in out for v in o[:, 0, 0])
    assert frames_in == frames_out  # a permutation of frames: nothing lost or duplicated
    for o in out:  # each output frame is one whole input frame
        assert torch.equal(o, o[:, :1, :1].expand_as(o))
    moved = sum(int(not torch.equal(o, c)) for o, c in zip(out, clips, strict=True))
    assert moved >= 2  # frames crossed clips (15 frames; P(no crossing) is negligible and seeded anyway)


def test_reschedule_adds_omega_gaussian():
    n = 200_000
    omega = 0.2
    zeros = [torch.zeros(4, 1, n // 8, dtype=torch.float64), torch.zeros(4, 1, n // 8, dtype=torch.float64)]
    out = torch.cat(ph.reschedule_noise(zeros, omega, _gen(10), frame_axis=0))
    # Eq. 11 on zero predicted noise: N(0, omega^2); 5 standard errors of the mean / variance estimators
    assert abs(out.mean().item()) < 5 * omega / math.sqrt(n)
    assert abs(out.var().item() - omega**2) < 5 * omega**2 * math.sqrt(2 / n)
    # the shuffle is independent of omega (permutation drawn first)
    ramp = [
        torch.arange(4.0).view(4, 1, 1).expand(4, 1, 3),
        4 + torch.arange(4.0).view(4, 1, 1).expand(4, 1, 3),
    ]
    a = torch.cat(ph.reschedule_noise(ramp, 0.0, _gen(11)))[:, 0, 0]
    b = torch.cat(ph.reschedule_noise(ramp, 1e-6, _gen(11)))[:, 0, 0]
    _assert_close(a, b, 1e-4)
