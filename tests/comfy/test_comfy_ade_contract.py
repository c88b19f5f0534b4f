"""Tier 2: LongAnim windows drive an AnimateDiff-Evolved motion module (issue 4), on the real sampler with the real
tiny SD1.5 UNet and a stand-in that follows ADE 1.5.7's contract (tests/comfy/ade_standin.py; the real ADE was
checked by hand: tests/tools/ade_interop_notes.md)."""
import comfy.patcher_extension
import pytest
import torch
from ade_standin import apply_ade, mix_frames, motion_group
from longanim.nodes import window_nodes as wn
from longanim.nodes.comfy import windows as ca

FRAMES = 40  # more than the motion module's positional encoding (32): ADE alone refuses it without windows
LENGTH = 16


def zola(model, **kw):
    return wn.LongAnimZoLAWindows().run(model, LENGTH, 12, 2, "zola", 0, **kw)[0]


def window_aware(model):
    """Reference: the same temporal layer, told the window by the batch itself (cfg 1: one cond per call)."""
    m = model.clone()

    def wrapper(executor, *args, **kwargs):
        block = executor.class_obj.diffusion_model.input_blocks[1][0]
        handle = block.register_forward_hook(lambda mod, i, out: mix_frames(out, out.shape[0]))
        try:
            return executor(*args, **kwargs)
        finally:
            handle.remove()

    m.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.APPLY_MODEL, "test.window_aware", wrapper)
    return m


def test_standin_enforces_ades_frame_limit(host):
    """Sanity of the stand-in: without windows, ADE refuses more frames than its positional encoding."""
    with pytest.raises(ValueError, match="upper limit of 32 frames"):
        host.ksample(apply_ade(host.sd15()), host.sd_latent(FRAMES), steps=1, cfg=1.0)


@pytest.mark.parametrize("order", ["ade_then_longanim", "longanim_then_ade"])
def test_longanim_windows_drive_the_motion_module(host, order):
    base = host.sd15()
    model = zola(apply_ade(base)) if order == "ade_then_longanim" else apply_ade(zola(base))
    latent = host.sd_latent(FRAMES)
    out = host.ksample(model, latent, steps=1, cfg=1.0)
    seen = motion_group(model).seen
    assert seen and all(batch == LENGTH and vlen == LENGTH for batch, vlen, _ in seen), seen[:3]
    assert all(idx is not None and len(idx) == LENGTH for _, _, idx in seen)
    assert len({tuple(idx) for _, _, idx in seen}) > 2  # windows move (ZoLA offsets / skips)
    # exactly what a motion module that knows each window by itself produces
    ref = host.ksample(zola(window_aware(base), max_windows_per_batch=1), latent, steps=1, cfg=1.0)
    assert torch.equal(out, ref)
    # the run leaves ADE's params as the user set them, with no context length of LongAnim's
    assert model.get_attachment("ADE_params").context_options.context_length is None


def test_motion_module_sees_cond_and_uncond_of_one_window(host):
    model = zola(apply_ade(host.sd15()))
    host.ksample(model, host.sd_latent(FRAMES), steps=1, cfg=5.0)
    seen = motion_group(model).seen
    assert seen and all(batch == 2 * LENGTH and vlen == LENGTH for batch, vlen, _ in seen)


def test_frames_within_the_motion_window_are_plain_ade(host):
    """Up to the window length LongAnim stays out of the way: ADE's own regular sampling, bit for bit."""
    latent = host.sd_latent(LENGTH)
    plain = apply_ade(host.sd15())
    ref = host.ksample(plain, latent, steps=1, cfg=1.0)
    assert torch.equal(ref, host.ksample(zola(apply_ade(host.sd15())), latent, steps=1, cfg=1.0))


@pytest.mark.parametrize("order", ["ade_then_longanim", "longanim_then_ade"])
def test_ade_context_options_with_longanim_windows_are_refused(host, order):
    if order == "ade_then_longanim":
        with pytest.raises(ValueError, match="AnimateDiff-Evolved context options"):
            zola(apply_ade(host.sd15(), context_length=16))
        return
    late = apply_ade(zola(host.sd15()), context_length=16)
    with pytest.raises(ValueError, match="cannot run together with AnimateDiff-Evolved context options"):
        host.ksample(late, host.sd_latent(FRAMES), steps=1, cfg=1.0)


def test_bridge_is_outermost_and_inert_without_ade(host):
    model = zola(apply_ade(host.sd15()))
    keys = list(model.wrappers[comfy.patcher_extension.WrappersMP.OUTER_SAMPLE])
    assert keys[0] == ca.WRAPPER_OUTER and "ADE" in keys
    plain = host.sd15()
    latent = host.sd_latent(20)
    a = host.ksample(zola(plain), latent, steps=1)
    b = zola(plain)
    del b.wrappers[comfy.patcher_extension.WrappersMP.OUTER_SAMPLE][ca.WRAPPER_OUTER]
    assert torch.equal(a, host.ksample(b, latent, steps=1))
