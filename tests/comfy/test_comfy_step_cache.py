"""Step caches on a model with LongAnim windows: core's EasyCache / LazyCache, other per-call caches, and the pack's
Window Step Cache (``nodes/comfy/step_cache.py``, ``nodes/algorithms/step_cache.py``)."""
import comfy.patcher_extension
import pytest
import torch
from comfy_extras import nodes_easycache
from longanim.nodes.comfy import windows as cw

OPTS = dict(schedule="zola", length=8, stride=6, max_skip=1, fusion="zola", seed=0, ends="truncate")


def _windowed(host):
    return cw.patch_model_windows(host.wan(), cw.WindowOptions(**OPTS))


def _core(node, model, threshold=0.2):
    out = node.execute(model, threshold, 0.15, 0.95, False)
    return out.result[0] if hasattr(out, "result") else out[0]


def test_easycache_on_windows_is_refused_before_sampling_in_either_order(host):
    with pytest.raises(ValueError, match=r"EasyCache cannot run inside LongAnim context windows.*Window Step Cache"):
        host.ksample(_core(nodes_easycache.EasyCacheNode, _windowed(host)), host.wan_latent(20))
    with pytest.raises(ValueError, match=r"EasyCache.*LazyCache"):
        cw.patch_model_windows(_core(nodes_easycache.EasyCacheNode, host.wan()), cw.WindowOptions(**OPTS))


def test_any_per_call_cache_is_refused_by_how_it_registers(host):
    def teacache_forward(*a, **k):  # a TeaCache-style replacement of the diffusion model's forward
        raise AssertionError("never called")

    def passthrough(executor, *a, **k):
        return executor(*a, **k)

    m = _windowed(host).clone()
    m.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "teacache", passthrough)
    with pytest.raises(ValueError, match="teacache cannot run inside"):
        host.ksample(m, host.wan_latent(20), steps=2)
    m = _windowed(host).clone()
    m.add_object_patch("diffusion_model.forward_orig", teacache_forward)
    with pytest.raises(ValueError, match="teacache_forward"):
        host.ksample(m, host.wan_latent(20), steps=2)
    # a wrapper outside the window loop (PREDICT_NOISE) or one that is no cache is fine
    m = _windowed(host).clone()
    m.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "other", passthrough)
    assert torch.isfinite(host.ksample(m, host.wan_latent(20), steps=2)).all()


def test_lazycache_caches_whole_fused_steps_on_windows(host):
    latent = host.wan_latent(12)
    plain = host.ksample(_windowed(host), latent, steps=6, cfg=1.0)
    lazy_model = _core(nodes_easycache.LazyCacheNode, _windowed(host), threshold=0.0)
    assert torch.equal(host.ksample(lazy_model, latent, steps=6, cfg=1.0), plain)  # threshold 0: never skips
    lazy_model = _core(nodes_easycache.LazyCacheNode, _windowed(host), threshold=3.0)
    out = host.ksample(lazy_model, latent, steps=6, cfg=1.0)
    assert torch.isfinite(out).all() and not torch.equal(out, plain)  # it skipped steps, on the fused video


# ------------------------------------------------------------------------------ the pack's Window Step Cache
def _cached(host, threshold, **kw):
    from longanim.nodes import cache_nodes

    return cache_nodes.LongAnimWindowStepCache().run(_windowed(host), threshold, **kw)[0]


def _run(host, model, latent, seed=3, steps=10, cfg=1.0):
    out = host.ksample(model, latent, seed=seed, steps=steps, cfg=cfg)
    return out, cw.recorded_run(out)


@pytest.mark.parametrize("cfg", [1.0, 5.0])
def test_threshold_zero_is_the_uncached_loop_bit_for_bit(host, cfg):
    latent = host.wan_latent(20)
    plain, rec_plain = _run(host, _windowed(host), latent, cfg=cfg)
    same, rec = _run(host, _cached(host, 0.0), latent, cfg=cfg)
    assert torch.equal(same, plain)
    assert rec.cost == rec_plain.cost > 1.0  # overlapping windows: more than one evaluation per frame-step


def test_cache_skips_windows_counts_only_evaluated_ones_and_is_deterministic(host):
    latent = host.wan_latent(20)
    plain, rec_plain = _run(host, _windowed(host), latent, cfg=5.0)
    a, rec = _run(host, _cached(host, 0.5, warmup=0.2, final=0.1), latent, cfg=5.0)
    b, _ = _run(host, _cached(host, 0.5, warmup=0.2, final=0.1), latent, cfg=5.0)
    assert torch.equal(a, b)  # same seed, same output
    assert rec.cost < rec_plain.cost  # the record counts only the windows that ran
    # warm-up (2 of 10 steps) and final step (1) run every window: at least 3/10 of the uncached cost
    assert rec.cost >= 0.3 * rec_plain.cost - 1e-9
    rel = float((a - plain).norm() / plain.norm())
    assert 0 < rel < 0.5, rel


def test_step_cache_without_windows_is_refused_by_name(host):
    from longanim.nodes import cache_nodes

    m = cache_nodes.LongAnimWindowStepCache().run(host.wan(), 0.2)[0]
    with pytest.raises(ValueError, match="Window Step Cache.*no"):
        host.ksample(m, host.wan_latent(20), steps=2)
    with pytest.raises(ValueError, match="Window Step Cache: threshold"):
        cache_nodes.LongAnimWindowStepCache().run(_windowed(host), -1.0)


def test_frames_in_batch_family_off_is_identical_and_on_saves(host):
    """SD / AnimateDiff layout (frames on the batch axis, one timestep per frame), cfg 5: both conds."""
    from longanim.nodes import cache_nodes

    windowed = cw.patch_model_windows(host.sd15(), cw.WindowOptions(**OPTS))
    latent = host.sd_latent(20)
    plain, rec_plain = _run(host, windowed, latent, steps=10, cfg=5.0)
    same, _ = _run(host, cache_nodes.LongAnimWindowStepCache().run(windowed, 0.0)[0], latent, steps=10, cfg=5.0)
    assert torch.equal(same, plain)
    cached, rec = _run(host, cache_nodes.LongAnimWindowStepCache().run(windowed, 0.5)[0], latent, steps=10, cfg=5.0)
    assert torch.isfinite(cached).all() and rec.cost < rec_plain.cost
