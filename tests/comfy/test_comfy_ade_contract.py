"""Tier 2: LongAnim windows drive an AnimateDiff-Evolved motion module (issue 4), on the real sampler with the real
tiny SD1.5 UNet and a stand-in that follows ADE 1.5.7's contract (tests/comfy/ade_standin.py; the real ADE was
checked by hand: tests/tools/ade_interop_notes.md)."""
import comfy.patcher_extension
import pytest
import torch
from ade_standin import apply_ade, attachment, motion_group, temporal_layer
from longanim.nodes import window_nodes as wn
from longanim.nodes.comfy import windows as ca

FRAMES = 40  # more than the motion module's positional encoding (32): ADE alone refuses it without windows
LENGTH = 16


def zola(model, ends="shift", **kw):
    """ZoLA windows of LENGTH frames; ends 'shift' keeps every window full length (the contract below is about
    windows of the motion module's length; windows cut at the ends: test_truncated_windows_...)."""
    return wn.LongAnimZoLAWindows().run(model, LENGTH, 12, 2, "zola", 0, ends=ends, **kw)[0]


def window_aware(model, mask=None):
    """Reference: the same temporal layer, told the windows by LongAnim's own ``ad_params`` (clips of LENGTH frames,
    one window per clip; ``mask``: ADE's effect mask, taken per window from ``sub_idxs_batch``)."""
    m = model.clone()

    def wrapper(executor, *args, **kwargs):
        block = executor.class_obj.diffusion_model.input_blocks[1][0]
        windows = args[5]["ad_params"]["sub_idxs_batch"]

        def hook(mod, i, out):
            mixed = temporal_layer(out, LENGTH)
            if mask is None:
                return mixed
            e = mask[[f for w in windows for f in w] * (out.shape[0] // (LENGTH * len(windows)))]
            e = e.to(out).view(-1, 1, 1, 1)
            return out * (1.0 - e) + mixed * e

        handle = block.register_forward_hook(hook)
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
    model = zola(apply_ade(base), max_windows_per_batch=1) if order == "ade_then_longanim" \
        else apply_ade(zola(base, max_windows_per_batch=1))
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


def ade_batches(seen):
    """Windows per motion-module call, from the batch sizes the motion module saw (cfg 1: one cond)."""
    assert all(batch % LENGTH == 0 and vlen == LENGTH for batch, vlen, _ in seen), seen[:3]
    return [batch // LENGTH for batch, _, _ in seen]


@pytest.mark.parametrize("order", ["ade_then_longanim", "longanim_then_ade"])
def test_equal_length_windows_share_a_motion_module_call(host, order):
    """A plain motion module (nothing reads sub_idxs; the positional encoding goes by length): windows share calls."""
    base = host.sd15()
    latent = host.sd_latent(FRAMES)
    model = zola(apply_ade(base), max_windows_per_batch=4) if order == "ade_then_longanim" \
        else apply_ade(zola(base, max_windows_per_batch=4))
    out = host.ksample(model, latent, steps=2, cfg=1.0)
    batches = ade_batches(motion_group(model).seen)
    assert max(batches) > 1 and max(batches) <= 4, batches
    # like with like: the same batches through a temporal layer told each window by LongAnim's ad_params
    ref = host.ksample(zola(window_aware(base), max_windows_per_batch=4), latent, steps=2, cfg=1.0)
    assert torch.equal(out, ref)
    # and one window per call, within float32 rounding of the UNet's batched vs unbatched kernels (the same
    # tolerance as the batched tests without ADE, tests/comfy/test_comfy_windows.py)
    one = zola(apply_ade(base), max_windows_per_batch=1)
    single = host.ksample(one, latent, steps=2, cfg=1.0)
    assert set(ade_batches(motion_group(one).seen)) == {1}
    assert torch.allclose(out, single, atol=1e-4, rtol=1e-4)
    assert not torch.equal(single, host.ksample(zola(base, max_windows_per_batch=1), latent, steps=2, cfg=1.0))


def test_truncated_windows_reach_the_motion_module_with_their_own_length(host):
    """ends 'truncate' (the node default): windows cut at the video ends are shorter; the motion module gets each
    window's own frames and length, equal-length windows still share a call, and every frame is covered."""
    model = zola(apply_ade(host.sd15()), ends="truncate", max_windows_per_batch=4)
    out = host.ksample(model, host.sd_latent(FRAMES), steps=2, cfg=1.0)
    seen = motion_group(model).seen
    assert torch.isfinite(out).all()
    assert all(idx is not None and vlen == len(idx) and batch % vlen == 0 for batch, vlen, idx in seen), seen[:4]
    assert min(vlen for _, vlen, _ in seen) < LENGTH, "some windows are cut at an end"
    assert max(batch // vlen for batch, vlen, _ in seen) > 1, "equal-length windows share a call"


def test_group_norm_of_v1_motion_models_counts_the_clips_of_short_windows(host):
    """AnimateDiff v1 / PIA: ADE's group norm splits a call into batch // context_length clips. Windows cut at the
    ends (6 and 14 frames here) are told their own length, so every call splits into whole clips (cond and uncond
    of each window apart), batched or not."""
    for batch in (1, 4):
        model = zola(apply_ade(host.sd15(), groupnorm_hack=True), ends="truncate", max_windows_per_batch=batch)
        out = host.ksample(model, host.sd_latent(FRAMES), steps=1, cfg=2.0)
        group = motion_group(model)
        assert torch.isfinite(out).all()
        assert min(vlen for _, vlen, _ in group.seen) < LENGTH
        assert all(c == b // v for c, (b, v, _) in zip(group.clips, group.seen, strict=True)), group.seen


def test_default_auto_batch_shares_calls_with_ade(host):
    model = zola(apply_ade(host.sd15()))  # max_windows_per_batch = 0: auto
    host.ksample(model, host.sd_latent(FRAMES), steps=1, cfg=1.0)
    assert max(ade_batches(motion_group(model).seen)) > 1


def test_effect_mask_reads_sub_idxs_so_windows_run_one_per_call(host):
    """An effect mask is indexed by one sub_idxs per call (ADE's get_effect_mask): windows may not share a call."""
    base = host.sd15()
    latent = host.sd_latent(FRAMES)
    mask = torch.linspace(0.2, 1.0, FRAMES)
    model = zola(apply_ade(base), max_windows_per_batch=4)
    attachment(model).effect_multival = mask
    out = host.ksample(model, latent, steps=2, cfg=1.0)
    seen = motion_group(model).seen
    assert set(ade_batches(seen)) == {1}
    assert len({tuple(idx) for _, _, idx in seen}) > 2
    ref = host.ksample(zola(window_aware(base, mask), max_windows_per_batch=1), latent, steps=2, cfg=1.0)
    assert torch.equal(out, ref)
    # the mask matters: without it the same run differs
    plain = zola(apply_ade(base), max_windows_per_batch=1)
    assert not torch.equal(out, host.ksample(plain, latent, steps=2, cfg=1.0))


def test_motion_module_sees_cond_and_uncond_of_one_window(host):
    model = zola(apply_ade(host.sd15()), max_windows_per_batch=1)
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
