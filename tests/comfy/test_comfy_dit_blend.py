"""Tier 2: attention expansion and its FreeLong / FreeLong++ global blend on LTX-Video and HunyuanVideo (tiny
random-weight models of ``tests/tools/tiny_families.py``, through the host's real model code and kernels).

Tolerances: the blended paths run the same float32 attention in another order (windows stacked on the batch,
video keys before text keys) plus an FFT round trip along the frames, so they differ from the plain model by float32
rounding: measured <= 1.2e-6 after two sampler steps on O(1) latents, so atol 1e-5; the blend itself moves the
tiny random models' output by 6e-4 to 1e-3, and a wrong branch, band or token range by more.
"""
from __future__ import annotations

import pytest
import test_comfy_families as fam
import torch
from comfy.ldm.modules import attention as core_attention
from longanim.nodes import attention_nodes as an
from longanim.nodes.algorithms import attention as att
from longanim.nodes.algorithms import spectral_attention as spa
from longanim.nodes.comfy import basics
from longanim.nodes.comfy import dit_attention as dit
from longanim.nodes.comfy import wan_attention as cwa

EXP = an.LongAnimAttentionExpansion()
TF = fam.tf
MODELS = {"ltxv_i2v": TF.LTXV, "hunyuan_t2v": TF.HUNYUAN_T2V}


class KernelRecorder:
    """An optimized_attention_override already on the model: records (batch, q tokens, k tokens, block_type)."""

    def __init__(self):
        self.calls = []

    def __deepcopy__(self, memo):  # 0.3.75 deep-copies model_options on clone: keep recording into this object
        return self

    def __call__(self, func, *args, **kwargs):
        q, k = args[0], args[1]
        seq = 2 if kwargs.get("skip_reshape") else 1
        self.calls.append((q.shape[0], q.shape[seq], k.shape[seq],
                           (kwargs.get("transformer_options") or {}).get("block_type")))
        return func(*args, **kwargs)


def recorded(name: str):
    m = fam.load(MODELS[name]).clone()
    rec = KernelRecorder()
    m.model_options.setdefault("transformer_options", {})["optimized_attention_override"] = rec
    return m, rec


def tokens(name: str) -> tuple[int, int]:
    """(video tokens per latent frame, text tokens) of the tiny family's attention."""
    return (fam.SIZE * fam.SIZE, 0) if name == "ltxv_i2v" else ((fam.SIZE // 2) ** 2, 16)


@pytest.mark.parametrize("name", list(MODELS))
def test_node_accepts_the_family_and_a_video_within_base_length_is_untouched(name):
    c = fam.case(name)
    assert basics.video_dit_family(fam.load(MODELS[name])) == name.split("_")[0]
    plain = fam.ksample(fam.load(MODELS[name]), c)
    (m,) = EXP.run(fam.load(MODELS[name]), fam.FRAMES, 0, 0, "freelong++")
    assert torch.equal(fam.ksample(m, c), plain)
    again = fam.ksample(fam.load(MODELS[name]), c)
    assert torch.equal(again, plain), "the patch leaked into the original MODEL"


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("blend", ["off", "freelong", "freelong++"])
def test_every_branch_runs_through_the_host_kernel_in_window_sized_calls(name, blend):
    """Windows stacked on the batch axis, plus one global call over the whole video (blend): no call is longer than
    the video's tokens (+ text), so LongAnim builds no tokens x tokens or frames x frames expansion."""
    c = fam.case(name)
    per, txt = tokens(name)
    frames = fam.FRAMES
    plain_m, plain_rec = recorded(name)
    plain = fam.ksample(plain_m, c)
    full = {(q, k) for _, q, k, _ in plain_rec.calls}
    m0, rec = recorded(name)
    (m,) = EXP.run(m0, 4, 2, 0, blend)
    out = fam.ksample(m, c)
    assert torch.isfinite(out).all() and (out - plain).abs().max() > 1e-4
    video_q = {(q, k) for _, q, k, _ in rec.calls if q in (4 * per, 8 * per, frames * per) and k == q + txt}
    lengths = {4} | ({8} if blend == "freelong++" else set()) | ({frames} if blend != "off" else set())
    assert video_q == {(f * per, f * per + txt) for f in lengths}, video_q
    assert max(q for _, q, _, _ in rec.calls) <= max(q for q, _ in full)
    assert max(k for _, _, k, _ in rec.calls) <= max(k for _, k in full)
    if txt:  # the text queries attend to every token, in one call of their own, in every joint block
        joint = [(q, k) for _, q, k, bt in rec.calls if bt in dit.JOINT_BLOCKS]
        assert (txt, frames * per + txt) in joint
        assert all(k in (f * per + txt for f in (4, 8, frames)) for _, k in joint)


@pytest.mark.parametrize("name", list(MODELS))
def test_blend_with_every_frequency_from_the_global_branch_is_the_plain_model(name):
    """cutoff so high that every temporal frequency comes from the global branch: the windows drop out and the
    model samples as without the patch (float32 rounding); the default cutoff does not."""
    c = fam.case(name)
    plain = fam.ksample(fam.load(MODELS[name]), c)
    every = cwa.patch_attention_expansion(fam.load(MODELS[name]), 4, 2, blend="freelong++", cutoff=1e6)
    out = fam.ksample(every, c)
    assert torch.allclose(out, plain, atol=1e-5), (out - plain).abs().max()  # measured <= 1.2e-6
    default = fam.ksample(cwa.patch_attention_expansion(fam.load(MODELS[name]), 4, 2, blend="freelong++"), c)
    assert (default - plain).abs().max() > 1e-4  # measured 6e-4 (Hunyuan), 1.1e-3 (LTXV)


@pytest.mark.parametrize("side", ["after", "before"])
@pytest.mark.parametrize("masked", [False, True])
def test_joint_attention_override_equals_the_math(side, masked):
    """HunyuanVideo's joint call ([B, heads, L, d], skip_reshape, video tokens after or before the text, a key mask
    over the text): video outputs = the spectral blend with the text as extra keys in every branch, whose low band
    is the global branch's; text outputs = full attention."""
    t, n, txt, heads, d = 12, 3, 5, 2, 4
    gen = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(2, heads, t * n + txt, d, generator=gen) for _ in range(3))
    mask = None
    if masked:
        mask = torch.zeros(1, 1, t * n + txt)
        mask[..., (slice(t * n + txt - 2, None) if side == "after" else slice(0, 2))] = -1e4
    opts = {dit.GRID_KEY: (t, 1, n, side), "block_type": "double"}
    kernel = core_attention.attention_pytorch
    o = cwa.ExpansionOverride(3, 2, blend="freelong++")
    out = o(kernel, q, k, v, heads, skip_reshape=True, mask=mask, transformer_options=opts)
    full = kernel(q, k, v, heads, skip_reshape=True, mask=mask)
    vid = slice(0, t * n) if side == "after" else slice(txt, None)
    tx = slice(t * n, None) if side == "after" else slice(0, txt)

    def flat(x):
        return x.transpose(1, 2).reshape(2, x.shape[2], heads * d)

    ek, ev, bias = flat(k[:, :, tx]), flat(v[:, :, tx]), None if mask is None else mask[0, 0, tx]

    def ref_kernel(q_, k_, v_, h):
        m = None if bias is None else torch.cat([bias.new_zeros(k_.shape[1] - bias.shape[0]), bias]).view(1, 1, -1)
        return kernel(q_, k_, v_, h, mask=m)

    ref = spa.spectral_attention(flat(q[:, :, vid]), flat(k[:, :, vid]), flat(v[:, :, vid]), heads, t, n, 3, 2,
                                 "freelong++", attn_fn=ref_kernel, extra_k=ek, extra_v=ev)
    assert torch.allclose(out[:, vid], ref, atol=1e-6)
    assert torch.allclose(out[:, tx], full[:, tx], atol=1e-6)
    edge = spa.band_edges(t, spa.band_windows(t, 3, "freelong++"))[-1]
    low = torch.fft.rfft(out[:, vid].reshape(2, t, n, -1).double(), dim=1)[:, :edge]
    low_full = torch.fft.rfft(full[:, vid].reshape(2, t, n, -1).double(), dim=1)[:, :edge]
    assert torch.allclose(low, low_full, atol=1e-5), (low - low_full).abs().max()
    assert not torch.allclose(out[:, vid], full[:, vid], atol=1e-3)
    # outside a joint block (the text refiner), or with a mask over the video, the call is the host's own
    assert torch.equal(o(kernel, q, k, v, heads, skip_reshape=True, mask=mask,
                         transformer_options={dit.GRID_KEY: (t, 1, n, side)}), full)
    video_mask = torch.zeros(1, 1, t * n + txt)
    video_mask[..., vid.start or 0] = -1e4
    assert torch.equal(o(kernel, q, k, v, heads, skip_reshape=True, mask=video_mask, transformer_options=opts),
                       kernel(q, k, v, heads, skip_reshape=True, mask=video_mask))


def test_ltxv_keyframe_guides_leave_the_attention_to_the_model():
    """Guide frames appended after the video sit at other time positions: the blend leaves those calls alone."""
    c = fam.case("ltxv_guide")
    m0, rec = recorded("ltxv_i2v")
    (m,) = EXP.run(m0, 4, 2, 0, "freelong")
    assert torch.equal(fam.ksample(m, c), fam.ksample(fam.load(TF.LTXV), c))


@pytest.mark.parametrize("name", list(MODELS))
def test_blend_composes_with_the_window_loop(name):
    """LongAnim windows of 8 latent frames over a 12-frame video, expansion base 4: the global branch spans one
    context window (8 frames), never the whole video, and each window longer than 4 is blended."""
    c = fam.case(name)
    per, txt = tokens(name)
    m0, rec = recorded(name)
    (m,) = EXP.run(m0, 4, 2, 0, "freelong")
    out = fam.ksample(fam.windows(m, length=8, stride=4, skip=1), c)
    (plain,) = EXP.run(fam.load(MODELS[name]), 4, 2)
    ref = fam.ksample(fam.windows(plain, length=8, stride=4, skip=1), c)
    assert torch.isfinite(out).all() and (out - ref).abs().max() > 1e-4
    video_q = {q for _, q, k, _ in rec.calls if k == q + txt and q % per == 0 and q // per in range(4, 13)}
    assert 8 * per in video_q and 4 * per in video_q and fam.FRAMES * per not in video_q, video_q


def test_expansion_refuses_other_families_naming_the_node(host):
    with pytest.raises(ValueError, match=r"model: LongAnim: Attention Expansion .*Wan, LTX-Video, HunyuanVideo.*UNet"):
        EXP.run(host.sd15(), 4, 0)


def test_override_ignores_a_video_within_base_length_bit_exactly():
    """The override sees the layout but does nothing when the frames fit ``base`` (the kernel's own result)."""
    gen = torch.Generator().manual_seed(5)
    q, k, v = (torch.randn(1, 2, 4 * 3 + 2, 4, generator=gen) for _ in range(3))
    o = cwa.ExpansionOverride(4, 2, blend="freelong++")
    kernel = core_attention.attention_pytorch
    got = o(kernel, q, k, v, 2, skip_reshape=True, transformer_options={dit.GRID_KEY: (4, 1, 3, "after"),
                                                                         "block_type": "single"})
    assert torch.equal(got, kernel(q, k, v, 2, skip_reshape=True))
    assert att.validate_expansion(4) == (4, 2)


@pytest.mark.parametrize("name", list(MODELS))
def test_blend_composes_with_the_noise_nodes_and_repeats(name):
    """FreeNoise initial noise (Apply Noise To Model) + LongAnim windows + the blend: same seed, same output; the
    blend still acts (the noise node changes the noise, not the attention)."""
    from longanim.nodes import noise_nodes as nn

    c = fam.case(name)
    recipe = nn.LongAnimFreeNoiseShuffle().run(0, 4, 2)[1]

    def build(blend):
        (m,) = EXP.run(fam.load(MODELS[name]), 4, 2, 0, blend)
        return fam.windows(nn.LongAnimApplyNoiseToModel().run(m, recipe)[0], length=8, stride=4, skip=1)

    first = fam.ksample(build("freelong"), c)
    assert torch.equal(fam.ksample(build("freelong"), c), first)
    assert (first - fam.ksample(build("off"), c)).abs().max() > 1e-4
