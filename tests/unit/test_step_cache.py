"""The window-aware step cache (nodes/algorithms/step_cache.py) on a simulated Euler sampler."""
import pytest
import torch
from longanim.nodes.algorithms import context_schedule as cs
from longanim.nodes.algorithms import step_cache as sc

T, C = 24, 4


def _windows(step):  # windows of 8 at stride 6 with a step-dependent offset: they move every step
    off = step % 6
    starts = [0] + list(range(off if off else 6, T - 1, 6))
    return [list(range(s, min(T, s + 8))) for s in starts]


def _sample(model, threshold, steps=12, conds=2, live=None, warmup=0.2, final=0.1, seed=0):
    """Euler from sigma 1 to 0 on [conds, C, T, 2, 2] (frame axis 2); cond 0 drives the update."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(C, T, 2, 2, generator=g)
    sig = torch.linspace(1.0, 0.0, steps + 1)
    cache = sc.WindowStepCache(sc.CacheSettings(threshold, warmup, final)) if threshold is not None else None
    live = live or [True] * conds
    calls = []
    for i in range(steps):
        stacked = x.unsqueeze(0).expand(conds, *x.shape)

        def evaluate(batch, fresh=None, x=x, s=sig[i]):
            calls.append([(tuple(w), fresh) for w in batch])
            return [torch.stack([model(x[:, w], s, c, w) for c in range(conds)]) for w in batch]

        kw = dict(weights="zola", max_batch=2)
        if cache is None:
            den = cs.co_denoise(stacked, _windows(i), 2, evaluate, **kw)
        else:
            den = cache.co_denoise(stacked, _windows(i), 2, evaluate, sigma=sig[i:i + 1], step=i, num_steps=steps,
                                   live=live, **kw)
        d = (x - den[0]) / sig[i]
        x = x + (sig[i + 1] - sig[i]) * d
    return x, calls, cache


def smooth_model(xw, sigma, c, w):
    """denoised = x - sigma * v with a velocity that depends on the frame, the cond and (weakly) on x."""
    f = torch.tensor(w, dtype=torch.float32).view(1, -1, 1, 1)
    v = torch.sin(0.3 * f + c) + 0.2 * torch.tanh(xw)
    return xw - sigma * v


def test_threshold_zero_is_bit_identical_and_evaluates_everything():
    ref, ref_calls, _ = _sample(smooth_model, None)
    got, calls, cache = _sample(smooth_model, 0.0)
    assert torch.equal(got, ref)
    assert sum(len(c) for c in calls) == sum(len(c) for c in ref_calls)
    assert cache.reuse_share == 0.0


def test_constant_velocity_is_reused_exactly_per_frame_as_windows_move():
    """A velocity that depends only on the frame: after the warm-up every window is answered from the per-frame
    cache and the result is exact, although the windows move every step (no window's output lands elsewhere)."""
    def model(xw, sigma, c, w):
        return xw - sigma * torch.tensor(w, dtype=torch.float32).view(1, -1, 1, 1).expand_as(xw) * (c + 1)

    ref, _, _ = _sample(model, None)
    got, calls, cache = _sample(model, 0.2)
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-5)  # float32 rounding of x - sigma * D over 12 steps
    # every step outside the warm-up (3 of 12) and the final steps (2) is answered from the cache: about 7/12
    assert cache.reuse_share > 0.5


def test_more_threshold_fewer_evaluations_more_error_and_deterministic():
    ref, _, _ = _sample(smooth_model, None)
    last_share, errors = -1.0, []
    for tau in (0.05, 0.3, 1.0):
        a, _, cache = _sample(smooth_model, tau)
        b, _, _ = _sample(smooth_model, tau)
        assert torch.equal(a, b)
        assert cache.reuse_share >= last_share
        last_share = cache.reuse_share
        errors.append(float((a - ref).norm() / ref.norm()))
    assert last_share > 0.3
    assert errors[0] < 0.05 and errors[-1] < 0.3, errors


def test_per_cond_decisions_and_dead_conds():
    """The cond whose output changes fast is evaluated more often than the one that barely changes; a cond the
    sampler passes as None (cfg 1) is never evaluated or cached."""
    def model(xw, sigma, c, w):
        return xw - sigma * (1 + 0.01 * torch.tanh(xw) if c == 0 else torch.tanh(3 * xw))

    _, calls, _ = _sample(model, 0.3)
    fresh = [f for call in calls for _, f in call]
    assert sum(f[1] for f in fresh) > sum(f[0] for f in fresh)
    _, calls, cache = _sample(model, 0.3, live=[True, False])
    assert all(not f[1] for call in calls for _, f in call)


def test_warmup_and_final_steps_evaluate_every_window():
    s = sc.CacheSettings(0.5, warmup=0.2, final=0.1)
    assert [s.forced(i, 20) for i in range(20)] == [True] * 4 + [False] * 14 + [True] * 2
    assert all(sc.CacheSettings(0.0).forced(i, 20) for i in range(20))
    _, calls, _ = _sample(smooth_model, 3.0, steps=10, warmup=0.2, final=0.1)
    assert len(calls) >= 3  # steps 0, 1 and 9 at least


@pytest.mark.parametrize("bad", [dict(threshold=-0.1), dict(warmup=1.5), dict(final=-0.2)])
def test_bad_settings_are_refused(bad):
    with pytest.raises(ValueError):
        sc.CacheSettings(**{**dict(threshold=0.2), **bad}).validate()
