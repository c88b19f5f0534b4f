"""Tier 2: attention patches (issue 6) inside the host's real UNet (SD1.5 tiny) and Wan (tiny) models.

Tolerances: the patched and reference paths run the same float32 ops in a different order (host SDPA vs explicit
softmax, momentum scan vs per-window scan), so differences are float32 rounding, ~1e-6 relative; atol 1e-4 on
O(1) activations leaves a wide margin while any logic error (wrong frame, wrong chunk) gives O(0.1).
"""
import copy

import pytest
import torch
from longanim.nodes import attention_nodes as an
from longanim.nodes.algorithms import attention as att
from longanim.nodes.comfy import unet_attention as cua
from longanim.nodes.comfy import wan_attention as cwa
from longanim.nodes.comfy import windows as ca

FRAMES = 6
TMA = an.LongAnimTemporalMomentumAttention()
XFA = an.LongAnimCrossFrameAttention()
EXP = an.LongAnimAttentionExpansion()


class Recorder:
    """attn1_patch appended after LongAnim's: sees the (unchanged) n and the K/V source LongAnim produced."""

    def __init__(self):
        self.calls = []

    def __deepcopy__(self, memo):  # 0.3.75 deep-copies model_options on clone: keep recording into this object
        return self

    def __call__(self, n, context, value, extra_options):
        ad = extra_options.get("ad_params") or {}
        self.calls.append(dict(n=n.clone(), context=context.clone(), value=value.clone(),
                               g=len(extra_options["cond_or_uncond"]), block=extra_options.get("block"),
                               block_index=extra_options.get("block_index", 0),
                               windows=ad.get("sub_idxs_batch")))
        return n, context, value


class OutputRecorder:
    def __init__(self):
        self.outs = []

    def __deepcopy__(self, memo):  # 0.3.75 deep-copies model_options on clone: keep recording into this object
        return self

    def __call__(self, out, extra_options):
        self.outs.append(out.clone())
        return out


def with_recorder(model):
    m = model.clone()
    rec = Recorder()
    m.set_model_attn1_patch(rec)
    return m, rec


@pytest.fixture(scope="module")
def sd_base(host):
    return host.ksample(host.sd15(), host.sd_latent(FRAMES), seed=1, steps=1, cfg=1.0)


# ---------------------------------------------------------------------------------------------- A: momentum
def test_mu_zero_is_the_unpatched_model(host, sd_base):
    (m,) = TMA.run(host.sd15(), 0.0, 0.0, 1.0, "all")
    assert not m.model_options.get("transformer_options", {}).get("patches", {}).get("attn1_patch")
    out = host.ksample(m, host.sd_latent(FRAMES), seed=1, steps=1, cfg=1.0)
    assert torch.allclose(out, sd_base, atol=1e-5)


def test_mu_one_is_cross_frame_to_first_and_patch_does_not_leak(host, sd_base):
    (a,) = TMA.run(host.sd15(), 1.0, 0.0, 1.0, "all")
    (b,) = XFA.run(host.sd15(), "first_frame", 0.0, 1.0, "all")
    out_a = host.ksample(a, host.sd_latent(FRAMES), seed=1, steps=1, cfg=1.0)
    out_b = host.ksample(b, host.sd_latent(FRAMES), seed=1, steps=1, cfg=1.0)
    assert torch.allclose(out_a, out_b, atol=1e-4)
    assert (out_a - sd_base).abs().max() > 1e-2
    # the original MODEL has no patch (its output equality is checked on Wan below, where sampling is cheap)
    assert not host.sd15().model_options.get("transformer_options", {}).get("patches", {}).get("attn1_patch")


def test_momentum_in_sampler_per_chunk_cond_uncond_never_mix(host):
    (m,) = TMA.run(host.sd15(), 0.9, 0.0, 1.0, "all")
    m, rec = with_recorder(m)
    host.ksample(m, host.sd_latent(FRAMES), seed=2, steps=1, cfg=5.0)
    assert rec.calls and any(c["g"] == 2 for c in rec.calls), "cfg > 1 should batch cond and uncond"
    for c in rec.calls:
        n = c["n"]
        expected = att.momentum_loop(n.reshape(c["g"], -1, *n.shape[1:]), 0.9).reshape(n.shape)
        assert torch.allclose(c["context"], expected, atol=1e-5)
        assert c["value"] is not None and torch.allclose(c["value"], expected, atol=1e-5)


def test_patch_call_never_mixes_chunks_and_gates():
    patch = cua.FrameAttentionPatch("momentum", mu=0.9, sigma_high=10.0, sigma_low=1.0, blocks=("input",))
    gen = torch.Generator().manual_seed(0)
    n = torch.randn(2 * 5, 3, 8, generator=gen)
    opts = dict(cond_or_uncond=[1, 0], block=("input", 1), sigmas=torch.tensor([5.0]),
                original_shape=[10, 4, 2, 2])
    _, ctx, val = patch(n, n, n, opts)
    assert torch.allclose(ctx, att.momentum_loop(n.view(2, 5, 3, 8), 0.9).view(10, 3, 8), atol=1e-6)
    n2 = n.clone()
    n2[5:] += 1.0  # change only the second chunk
    _, ctx2, _ = patch(n2, n2, n2, opts)
    assert torch.equal(ctx2[:5], ctx[:5]) and not torch.equal(ctx2[5:], ctx[5:])
    for key, value in (("block", ("middle", 0)), ("sigmas", torch.tensor([20.0])), ("sigmas", torch.tensor([0.5]))):
        _, c, _ = patch(n, n, n, {**opts, key: value})
        assert c is n, f"patch should be inactive for {key}={value}"
    with pytest.raises(ValueError, match="5-D latent"):
        patch(n, n, n, {**opts, "original_shape": [1, 16, 10, 2, 2]})


def test_windows_recurrence_runs_in_window_order(host):
    mus = [0.0, 0.9, 0.5, 0.95, 0.2, 0.8, 0.7, 0.99]
    (m,) = TMA.run(host.sd15(), 0.98, 0.0, 1.0, "all", momentum_per_frame=", ".join(map(str, mus)))
    windows = ca.WindowOptions(schedule="zola", length=4, stride=3, overlap=1, max_skip=2, max_batch=2, seed=3)
    m = ca.patch_model_windows(m, windows)
    m, rec = with_recorder(m)
    host.ksample(m, host.sd_latent(8), seed=2, steps=1, cfg=1.0)
    seen = [c for c in rec.calls if c["windows"]]
    assert seen and any(len(c["windows"]) == 2 for c in seen)
    for c in seen:
        n = c["n"]
        x = n.reshape(c["g"], -1, *n.shape[1:])
        parts, start = [], 0
        for win in c["windows"]:  # the recurrence restarts at each window's first frame, in window order
            parts.append(att.momentum_loop(x[:, start:start + len(win)], [mus[i] for i in win]))
            start += len(win)
        expected = torch.cat(parts, dim=1).reshape(n.shape)
        assert torch.allclose(c["context"], expected, atol=1e-5)


def test_per_frame_list_of_wrong_length_fails_at_run_time(host):
    (m,) = TMA.run(host.sd15(), 0.98, 0.0, 1.0, "all", momentum_per_frame="0, 0.9, 0.9, 0.9")
    with pytest.raises(ValueError, match="momentum_per_frame has 4 values"):
        host.ksample(m, host.sd_latent(FRAMES), seed=1, steps=1)


@pytest.mark.parametrize("kwargs,needle", [
    (dict(momentum=1.5), "momentum mu must be in"),
    (dict(momentum=-0.1), "momentum mu must be in"),
    (dict(momentum_per_frame="0, 0.5, 2"), "momentum_per_frame"),
    (dict(momentum_per_frame="0, a"), "momentum_per_frame"),
    (dict(start_percent=0.8, end_percent=0.2), "start_percent"),
])
def test_bad_inputs_name_the_input(host, kwargs, needle):
    args = dict(model=host.sd15(), momentum=0.98, start_percent=0.0, end_percent=1.0, blocks="all")
    args.update(kwargs)
    with pytest.raises(ValueError, match=needle):
        TMA.run(**args)


def test_unet_nodes_refuse_wan_and_expansion_refuses_unet(host):
    with pytest.raises(ValueError, match=r"model: .*WAN21.*Attention Expansion"):
        TMA.run(host.wan(), 0.98, 0.0, 1.0, "all")
    with pytest.raises(ValueError, match="WAN21"):
        XFA.run(host.wan(), "bidirectional_anchor", 0.0, 1.0, "all")
    with pytest.raises(ValueError, match="model: .*UNet"):
        EXP.run(host.sd15(), 21, 0)
    with pytest.raises(ValueError, match="stride"):
        EXP.run(host.wan(), 4, 9)


def test_reapplying_replaces_and_clone_is_deepcopyable(host):
    """The boundary replaces an earlier LongAnim frame-attention patch (never stacks two); the nodes refuse the
    second one naming both (tests/comfy/test_comfy_bounds.py), so this is reached only through the boundary."""
    (a,) = TMA.run(host.sd15(), 0.9, 0.0, 1.0, "all")
    (other,) = XFA.run(host.sd15(), "first_frame", 0.2, 0.8, "output")
    b = cua.patch_frame_attention(a, other.model_options["transformer_options"]["patches"]["attn1_patch"][-1])
    patches = b.model_options["transformer_options"]["patches"]["attn1_patch"]
    assert len(patches) == 1 and patches[0].kind == "first_frame" and patches[0].blocks == ("output",)
    assert len(a.model_options["transformer_options"]["patches"]["attn1_patch"]) == 1
    assert patches[0].kind != a.model_options["transformer_options"]["patches"]["attn1_patch"][0].kind
    copy.deepcopy(b.model_options)
    b.clone()


# ---------------------------------------------------------------------------------------------- B: Gen-L
def _attn1_of(dm, block, block_index):
    from comfy.ldm.modules.attention import SpatialTransformer

    kind, idx = block
    container = {"input": lambda: dm.input_blocks[idx], "middle": lambda: dm.middle_block,
                 "output": lambda: dm.output_blocks[idx]}[kind]()
    st = next(mod for mod in container if isinstance(mod, SpatialTransformer))
    return st.transformer_blocks[block_index].attn1


def test_bidirectional_matches_direct_implementation_on_captured_input(host):
    (m,) = XFA.run(host.sd15(), "bidirectional_anchor", 0.0, 1.0, "all")
    m, rec = with_recorder(m)
    outs = OutputRecorder()
    m.set_model_attn1_output_patch(outs)
    host.ksample(m, host.sd_latent(FRAMES), seed=4, steps=1, cfg=1.0)
    assert len(outs.outs) == len(rec.calls) > 0
    dm = host.sd15().model.diffusion_model
    for i in (0, len(rec.calls) - 1):
        c = rec.calls[i]
        attn1 = _attn1_of(dm, c["block"], c["block_index"])
        n = c["n"]
        x = n.reshape(c["g"], -1, *n.shape[1:])
        ref = att.cross_frame_attention_reference(x, attn1.to_q.weight, attn1.to_k.weight, attn1.to_v.weight,
                                                  attn1.heads, "bidirectional_anchor")
        ref = attn1.to_out[0](ref.reshape(n.shape[0], n.shape[1], -1))
        assert torch.allclose(outs.outs[i], ref, atol=1e-4), (outs.outs[i] - ref).abs().max()


# ---------------------------------------------------------------------------------------------- C: expansion
class KernelRecorder:
    """An optimized_attention_override already on the model: records calls, runs the host kernel."""

    def __init__(self):
        self.lengths = []

    def __deepcopy__(self, memo):  # 0.3.75 deep-copies model_options on clone: keep recording into this object
        return self

    def __call__(self, func, *args, **kwargs):
        self.lengths.append((args[0].shape[0], args[0].shape[1], args[1].shape[1]))
        return func(*args, **kwargs)


def test_expansion_noop_when_video_fits_and_no_leak(host):
    base_out = host.ksample(host.wan(), host.wan_latent(5), seed=1, steps=2)
    (m,) = EXP.run(host.wan(), 21, 0)
    assert torch.equal(host.ksample(m, host.wan_latent(5), seed=1, steps=2), base_out)
    (m5,) = EXP.run(host.wan(), 5, 0)
    assert torch.equal(host.ksample(m5, host.wan_latent(5), seed=1, steps=2), base_out)


def test_expansion_changes_long_video_and_chains_existing_override(host):
    latent = host.wan_latent(9)  # 9 latent frames, 4x4 latent -> 2x2 tokens per frame
    before = host.ksample(host.wan(), latent, seed=1, steps=2)
    pre = host.wan().clone()
    kernel = KernelRecorder()
    pre.model_options.setdefault("transformer_options", {})["optimized_attention_override"] = kernel
    (m,) = EXP.run(pre, 4, 2)
    out = host.ksample(m, latent, seed=1, steps=2)
    assert torch.isfinite(out).all() and (out - before).abs().max() > 1e-4
    # windows 0-3, 2-5, 4-7, 5-8 stacked on the batch axis: [4 * B, 4 * 2 * 2, C] self-attention calls
    self_calls = [c for c in kernel.lengths if c[1] == c[2] == 4 * 4]
    assert self_calls and all(c[0] % 4 == 0 for c in self_calls)
    assert not any(c[1] == c[2] == 9 * 4 for c in kernel.lengths), "full-length self-attention should not run"
    assert any(c[1] == 9 * 4 and c[2] != 9 * 4 for c in kernel.lengths), "cross-attention passes through"
    after = host.ksample(host.wan(), latent, seed=1, steps=2)
    assert torch.equal(after, before), "the expansion leaked into the original MODEL"
    # the node refuses a second expansion (tests/comfy/test_comfy_bounds.py); the boundary replaces LongAnim's
    # override and keeps the foreign one chained
    again = cwa.patch_attention_expansion(m, 4, 2)
    override = again.model_options["transformer_options"]["optimized_attention_override"]
    assert isinstance(override, cwa.ExpansionOverride) and isinstance(override.previous, KernelRecorder)
    copy.deepcopy(again.model_options)


def test_expansion_override_equals_math_on_direct_call():
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 7 * 3, 16, generator=gen) for _ in range(3))
    o = cwa.ExpansionOverride(3, 2)

    def kernel(q_, k_, v_, heads, **kw):
        return att.attention(q_, k_, v_, heads)

    out = o(kernel, q, k, v, heads=2, transformer_options={cwa.GRID_KEY: (7, 1, 3)})
    ref = att.expanded_attention(q, k, v, 2, 7, 3, 3, 2)
    assert torch.allclose(out, ref, atol=1e-6)
    cross = o(kernel, q, k[:, :5], v[:, :5], heads=2, transformer_options={cwa.GRID_KEY: (7, 1, 3)})
    assert torch.allclose(cross, att.attention(q, k[:, :5], v[:, :5], 2))


# ---------------------------------------------------------------------------------------------- D: global blend
def test_global_blend_off_is_todays_expansion_and_short_video_is_untouched(host):
    latent = host.wan_latent(9)
    (default,) = EXP.run(host.wan(), 4, 2)
    (off,) = EXP.run(host.wan(), 4, 2, 0, "off")
    today = host.wan().clone()
    today.model_options.setdefault("transformer_options", {})["optimized_attention_override"] = \
        cwa.ExpansionOverride(4, 2)
    cwa.set_wrapper(today, cwa.comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, cwa.WRAPPER_EXPANSION_GRID,
                    cwa.GridRecorder())  # what the node built before global_blend existed
    ref = host.ksample(today, latent, seed=1, steps=2)
    assert torch.equal(host.ksample(default, latent, seed=1, steps=2), ref)
    assert torch.equal(host.ksample(off, latent, seed=1, steps=2), ref)
    (short,) = EXP.run(host.wan(), 9, 0, 0, "freelong++")  # not longer than base_length: plain model
    assert torch.equal(host.ksample(short, latent, seed=1, steps=2), host.ksample(host.wan(), latent, seed=1,
                                                                                  steps=2))


@pytest.mark.parametrize("blend,window_lengths", [("freelong", {4 * 4}), ("freelong++", {4 * 4, 8 * 4})])
def test_global_blend_changes_output_through_the_host_kernel(host, blend, window_lengths):
    latent = host.wan_latent(9)  # 9 latent frames, 2x2 tokens per frame
    (plain,) = EXP.run(host.wan(), 4, 2)
    before = host.ksample(plain, latent, seed=1, steps=2)
    pre = host.wan().clone()
    kernel = KernelRecorder()
    pre.model_options.setdefault("transformer_options", {})["optimized_attention_override"] = kernel
    (m,) = EXP.run(pre, 4, 2, 0, blend)
    out = host.ksample(m, latent, seed=1, steps=2)
    assert torch.isfinite(out).all() and (out - before).abs().max() > 1e-4
    selfs = {c[1] for c in kernel.lengths if c[1] == c[2]}
    # every self-attention goes through the host kernel: windows stacked on the batch axis + one global call;
    # no call is longer than the video's tokens (no tokens x frames expansion of the sequence)
    assert selfs == window_lengths | {9 * 4}, selfs
    assert max(c[1] for c in kernel.lengths) == 9 * 4
    assert isinstance(m.model_options["transformer_options"]["optimized_attention_override"].previous,
                      KernelRecorder)


def test_global_blend_composes_with_the_window_loop(host):
    from longanim.nodes import window_nodes as wn

    latent = host.wan_latent(16)
    pre = host.wan().clone()
    kernel = KernelRecorder()
    pre.model_options.setdefault("transformer_options", {})["optimized_attention_override"] = kernel
    (m,) = EXP.run(pre, 4, 2, 0, "freelong")
    windowed = wn.LongAnimZoLAWindows().run(m, 8, 8, 1, "zola", 0)[0]
    out = host.ksample(windowed, latent, seed=1, steps=2)
    (plain,) = EXP.run(host.wan(), 4, 2)
    ref = host.ksample(wn.LongAnimZoLAWindows().run(plain, 8, 8, 1, "zola", 0)[0], latent, seed=1, steps=2)
    assert torch.isfinite(out).all() and (out - ref).abs().max() > 1e-4
    selfs = {c[1] for c in kernel.lengths if c[1] == c[2]}
    # ZoLA's re-drawn windows are up to 8 frames (shorter at the ends): the global branch spans one context window,
    # never the 16-frame video, and windows longer than base are expanded in 4-frame attention windows
    assert max(selfs) == 8 * 4 and 4 * 4 in selfs, selfs


def test_global_blend_override_equals_math_on_direct_call():
    from longanim.nodes.algorithms import spectral_attention as spa

    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 12 * 3, 16, generator=gen) for _ in range(3))

    def kernel(q_, k_, v_, heads, **kw):
        return att.attention(q_, k_, v_, heads)

    o = cwa.ExpansionOverride(3, 2, blend="freelong++")
    out = o(kernel, q, k, v, heads=2, transformer_options={cwa.GRID_KEY: (12, 1, 3)})
    ref = spa.spectral_attention(q, k, v, 2, 12, 3, 3, 2, "freelong++")
    assert torch.equal(out, ref)
    with pytest.raises(ValueError, match="global_blend"):
        EXP.run(None, 4, 2, 0, "freelong+++")
