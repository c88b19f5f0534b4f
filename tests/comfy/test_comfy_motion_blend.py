"""Tier 2: attention expansion and the FreeLong / FreeLong++ global blend inside AnimateDiff's temporal attention, on
the real sampler with the real tiny SD1.5 UNet and the AnimateDiff-Evolved stand-in's ``VersatileAttention``
(``tests/comfy/ade_standin.py``, ``apply_ade(..., attention=True)``).

Tolerances: the blended path runs the same float32 attention in another order (windows stacked on the batch) plus an
FFT round trip along the frames; after two sampler steps on O(1) latents that is float32 rounding (measured below
1e-5, atol 1e-4 leaves room), while the blend itself changes the output by > 1e-2.
"""
from __future__ import annotations

import pytest
import torch
from ade_standin import apply_ade, motion_group
from comfy.ldm.modules.attention import attention_pytorch
from longanim.nodes import attention_nodes as an
from longanim.nodes import window_nodes as wn
from longanim.nodes.algorithms import spectral_attention as spa
from longanim.nodes.comfy import motion_attention as cma

MAE = an.LongAnimMotionAttentionExpansion()
FRAMES = 24  # within the stand-in motion module's 32-frame encoding: ADE runs it without context windows


class KernelRecorder:
    """The motion module's own kernel, recording (rows, frames) of every call."""

    def __init__(self):
        self.calls = []

    def __call__(self, q, k, v, heads, mask=None):
        self.calls.append((q.shape[0], q.shape[1]))
        return attention_pytorch(q, k, v, heads, mask)


def ade(host, recorder=None):
    m = apply_ade(host.sd15(), attention=True)
    if recorder is not None:
        motion_group(m).attention.actual_attention = recorder
    return m


def sample(host, model, frames=FRAMES):
    return host.ksample(model, host.sd_latent(frames), steps=2, cfg=1.0)


def test_calls_within_base_length_are_the_motion_module_bit_for_bit(host):
    plain = sample(host, ade(host))
    (m,) = MAE.run(ade(host), FRAMES, 0, 0, "freelong++")
    assert torch.equal(sample(host, m), plain)
    (off,) = MAE.run(ade(host), 8, 0, 0, "off")
    assert not torch.equal(sample(host, off), plain)


@pytest.mark.parametrize("order", ["ade_then_node", "node_then_ade"])
@pytest.mark.parametrize("blend,lengths", [("off", {8}), ("freelong", {8, FRAMES}), ("freelong++", {8, 16, FRAMES})])
def test_every_branch_calls_the_motion_modules_kernel_and_the_kernel_is_restored(host, order, blend, lengths):
    rec = KernelRecorder()
    if order == "ade_then_node":
        (m,) = MAE.run(ade(host, rec), 8, 4, 0, blend)
    else:
        (pre,) = MAE.run(host.sd15(), 8, 4, 0, blend)
        m = apply_ade(pre, attention=True)
        motion_group(m).attention.actual_attention = rec
    out = sample(host, m)
    assert torch.isfinite(out).all()
    assert {f for _, f in rec.calls} == lengths, rec.calls
    # windows are stacked on the row axis (3 windows of 8 at stride 4 over 24 frames, x2 for freelong++'s 16)
    rows = {r for r, f in rec.calls if f == FRAMES} if blend != "off" else set()
    assert all(r % (5 * min(rows)) == 0 for r, f in rec.calls if f == 8) if rows else True
    assert motion_group(m).attention.actual_attention is rec, "the kernel was not restored after the run"


def test_every_frequency_from_the_global_branch_is_the_plain_motion_module(host):
    plain = sample(host, ade(host))
    every = cma.patch_motion_attention(ade(host), "test", 8, 4, blend="freelong", cutoff=1e6)
    out = sample(host, every)
    assert torch.allclose(out, plain, atol=1e-4), (out - plain).abs().max()
    blended = sample(host, cma.patch_motion_attention(ade(host), "test", 8, 4, blend="freelong"))
    assert (blended - plain).abs().max() > 1e-2


def test_temporal_expansion_equals_the_math_and_keeps_the_global_low_band():
    gen = torch.Generator().manual_seed(2)
    rows, frames, heads = 6, 24, 2
    q, k, v = (torch.randn(rows, frames, 8, generator=gen) for _ in range(3))
    te = cma.TemporalExpansion(attention_pytorch, 8, 4, None, "freelong++", 1.0)
    out = te(q, k, v, heads, None)
    ref = spa.spectral_attention(q, k, v, heads, frames, 1, 8, 4, "freelong++",
                                 attn_fn=lambda q_, k_, v_, h: attention_pytorch(q_, k_, v_, h))
    assert torch.equal(out, ref)
    glob = attention_pytorch(q, k, v, heads)
    edge = spa.band_edges(frames, spa.band_windows(frames, 8, "freelong++"))[-1]
    low, low_ref = (torch.fft.rfft(x.double(), dim=1)[:, :edge] for x in (out, glob))
    assert torch.allclose(low, low_ref, atol=1e-5), (low - low_ref).abs().max()
    assert not torch.allclose(out, glob, atol=1e-3)
    short = q[:, :8]
    assert torch.equal(te(short, short, short, heads, None), attention_pytorch(short, short, short, heads))
    mask = torch.zeros(frames, frames)
    assert torch.equal(te(q, k, v, heads, mask), attention_pytorch(q, k, v, heads, mask))


def test_composes_with_the_window_loop(host):
    """40 frames (more than the motion module's 32): LongAnim windows of 24 frames drive ADE; inside each window
    call the motion module's attention runs windows of 8 and the global branch spans that window, never 40."""
    rec = KernelRecorder()
    (m,) = MAE.run(ade(host, rec), 8, 4, 0, "freelong")
    windowed = wn.LongAnimZoLAWindows().run(m, 24, 16, 1, "zola", 0, ends="shift")[0]
    out = sample(host, windowed, frames=40)
    ref = sample(host, wn.LongAnimZoLAWindows().run(ade(host), 24, 16, 1, "zola", 0, ends="shift")[0], frames=40)
    assert torch.isfinite(out).all() and (out - ref).abs().max() > 1e-3
    assert {f for _, f in rec.calls} == {8, 24}, sorted({f for _, f in rec.calls})


def test_without_animatediff_the_run_names_the_node(host):
    (m,) = MAE.run(host.sd15(), 8, 0)
    with pytest.raises(ValueError, match=r"Motion Attention Expansion \(AnimateDiff\): the MODEL has no AnimateDiff"):
        sample(host, m)
    with pytest.raises(ValueError, match=r"model: LongAnim: Motion Attention Expansion .*supports SD1.5/SDXL"):
        MAE.run(host.wan(), 8, 0)
    with pytest.raises(ValueError, match="global_blend"):
        MAE.run(host.sd15(), 8, 0, 0, "freelong+++")
    with pytest.raises(ValueError, match="context_length / stride"):
        MAE.run(host.sd15(), 8, 9)


def test_a_failing_call_restores_the_kernel(host):
    rec = KernelRecorder()
    model = ade(host, rec)
    module = motion_group(model).attention
    wrapper = cma.MotionAttentionWrapper("test", 8, 4, blend="freelong")

    class State:
        motion_models = motion_group(model)

    def executor(*args, **kwargs):
        assert isinstance(module.actual_attention, cma.TemporalExpansion)
        raise RuntimeError("cancelled")

    with pytest.raises(RuntimeError, match="cancelled"):
        wrapper(executor, None, None, transformer_options={"ADGS": State()})
    assert module.actual_attention is rec


def test_composes_with_the_noise_nodes_and_repeats(host):
    """FreeNoise initial noise + LongAnim windows over ADE + the blend: same seed, same output; the blend acts."""
    from longanim.nodes import noise_nodes as nn

    recipe = nn.LongAnimFreeNoiseShuffle().run(0, 16, 4)[1]

    def build(blend):
        (m,) = MAE.run(ade(host), 8, 4, 0, blend)
        m = nn.LongAnimApplyNoiseToModel().run(m, recipe)[0]
        return wn.LongAnimZoLAWindows().run(m, 24, 16, 1, "zola", 0, ends="shift")[0]

    first = sample(host, build("freelong"), frames=40)
    assert torch.equal(sample(host, build("freelong"), frames=40), first)
    assert (first - sample(host, build("off"), frames=40)).abs().max() > 1e-3
