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
