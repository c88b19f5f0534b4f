"""Tier 2: per-window LoRA weights (ZoLA 4.5) and windowed DDIM inversion (Gen-L 3.1) on the tiny models."""
import pathlib
import sys

import comfy.sd
import comfy.utils
import folder_paths
import pytest
import torch
from longanim.nodes import creative_nodes as cn
from longanim.nodes import window_nodes as wn
from longanim.nodes.algorithms import inversion as inv
from longanim.nodes.comfy import adapters as cac

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tools"))
import tiny_lora  # noqa: E402

SD_LORA, SD_LORA_B, WAN_LORA = tiny_lora.SD15, tiny_lora.SD15_B, tiny_lora.WAN


@pytest.fixture(scope="module", autouse=True)
def loras():
    tiny_lora.ensure(pathlib.Path(folder_paths.base_path))


def core_lora(model, name, strength):
    lora = comfy.utils.load_torch_file(folder_paths.get_full_path_or_raise("loras", name), safe_load=True)
    return comfy.sd.load_lora_for_models(model, None, lora, strength, 0)[0]


def windows(model, length, stride, per_call=0):
    return wn.LongAnimGenLWindows().run(model, context_length=length, stride=stride, fusion="flat",
                                        max_windows_per_batch=per_call)[0]


def sd_video(frames=8, seed=0):
    return {"samples": torch.randn(frames, 4, 4, 4, generator=torch.Generator().manual_seed(seed))}


def wan_video(frames=8, seed=0):
    return {"samples": torch.randn(1, 16, frames, 4, 4, generator=torch.Generator().manual_seed(seed))}


def sample(host, model, latent, steps=1, **kw):
    return host.ksample(model, latent, seed=3, steps=steps, cfg=1.0, denoise=0.6, **kw)


@pytest.mark.parametrize("mode", ["forward", "patch"])
def test_full_tag_equals_core_lora_and_does_not_leak(host, mode):
    base = host.wan()
    lat = wan_video(4)
    plain = sample(host, base, lat)
    ref = sample(host, core_lora(base, WAN_LORA, 0.7), lat)
    got = sample(host, cac.patch_model_window_lora(base, WAN_LORA, 0.7, "0-", mode=mode), lat)
    assert (ref - plain).abs().max() > 1e-2, "the tiny LoRA must change the output for this test to mean anything"
    torch.testing.assert_close(got, ref, atol=2e-4, rtol=1e-4)
    torch.testing.assert_close(sample(host, base, lat), plain, atol=0, rtol=0)


def test_sd_unet_conv_and_linear_layers_equal_core_lora(host):
    """The SD LoRA also targets 1x1 and 3x3 convs (low-rank conv path); one model call per run (SD is slow)."""
    base = host.sd15()
    lat = sd_video(2)
    run = dict(steps=1, cfg=1.0, denoise=1.0, seed=3)
    ref = host.ksample(core_lora(base, SD_LORA, 0.7), lat, **run)
    got = host.ksample(cac.patch_model_window_lora(base, SD_LORA, 0.7, "0-"), lat, **run)
    assert (ref - host.ksample(base, lat, **run)).abs().max() > 1e-2
    torch.testing.assert_close(got, ref, atol=2e-4, rtol=1e-4)


def test_per_window_weights_with_windows(host):
    """Non-overlapping windows [0-3], [4-7]: tag 0-3 -> window 1 gets alpha, window 2 the adapter-free model."""
    base, lat = host.wan(), wan_video(8)
    win = windows(base, 4, 4)
    got = sample(host, cn.LongAnimWindowLoRA().run(win, WAN_LORA, 0.8, "0-3")[0], lat)
    with_lora = sample(host, windows(core_lora(base, WAN_LORA, 0.8), 4, 4), lat)
    plain = sample(host, win, lat)
    assert (with_lora - plain).abs().max() > 1e-2
    torch.testing.assert_close(got[:, :, :4], with_lora[:, :, :4], atol=2e-4, rtol=1e-4)
    torch.testing.assert_close(got[:, :, 4:], plain[:, :, 4:], atol=2e-5, rtol=1e-5)
    # straddling tags "2-5": each window has half its frames tagged -> alpha/2 everywhere (ZoLA's example)
    half = sample(host, cn.LongAnimWindowLoRA().run(win, WAN_LORA, 0.8, "2-5")[0], lat)
    torch.testing.assert_close(half, sample(host, windows(core_lora(base, WAN_LORA, 0.4), 4, 4), lat), atol=2e-4,
                               rtol=1e-4)


def test_chained_adapters_and_no_windows_fallback(host):
    base = host.wan()
    lat = wan_video(8)
    win = windows(base, 4, 4)
    m = cn.LongAnimWindowLoRA().run(win, WAN_LORA, 1.0, "0-3")[0]
    m = cn.LongAnimWindowLoRA().run(m, WAN_LORA, -0.5, "4-")[0]  # chained: a second adapter on other frames
    got = sample(host, m, lat)
    a = sample(host, windows(core_lora(base, WAN_LORA, 1.0), 4, 4), lat)
    b = sample(host, windows(core_lora(base, WAN_LORA, -0.5), 4, 4), lat)
    torch.testing.assert_close(got[:, :, :4], a[:, :, :4], atol=2e-4, rtol=1e-4)
    torch.testing.assert_close(got[:, :, 4:], b[:, :, 4:], atol=2e-4, rtol=1e-4)
    # no windows (or a latent shorter than one window): constant weight = alpha x fraction of all frames
    short = sample(host, cn.LongAnimWindowLoRA().run(base, WAN_LORA, 1.0, "0-1")[0], wan_video(4))
    torch.testing.assert_close(short, sample(host, core_lora(base, WAN_LORA, 0.5), wan_video(4)), atol=2e-4,
                               rtol=1e-4)


def test_bad_lora_and_bad_intervals_name_the_input(host):
    with pytest.raises(ValueError, match=f"lora_name: .*{WAN_LORA}.*another model family"):
        cn.LongAnimWindowLoRA().run(host.sd15(), WAN_LORA, 1.0, "0-")
    with pytest.raises(ValueError, match="lora_name: .*not in the loras folder"):
        cn.LongAnimWindowLoRA().run(host.sd15(), "missing.safetensors", 1.0, "0-")
    with pytest.raises(ValueError, match="frame_intervals"):
        cn.LongAnimWindowLoRA().run(host.sd15(), SD_LORA, 1.0, "3-1")
    m = cn.LongAnimWindowLoRA().run(host.wan(), WAN_LORA, 1.0, "40-")[0]
    with pytest.raises(ValueError, match="past the last latent frame"):
        sample(host, m, wan_video(4), steps=1)


def invert_and_rebuild(host, model, lat, steps, fam, iters=0):
    pos = host.cond("a fox", fam)
    out, noise = cn.LongAnimInvert().run(model, pos, lat, steps, "simple", seed=5,
                                         fixed_point_iterations=iters)
    if fam == "sd15":
        rec = host.ksample(model, out, seed=5, steps=steps, cfg=1.0, scheduler="simple", positive=pos,
                           disable_noise=True)
    else:
        rec = host.custom_advanced(model, lat, noise, steps=steps, cfg=1.0, positive=pos, scheduler="simple")
    return out, rec


@pytest.mark.parametrize("family,steps,frames,win", [
    ("wan21", (2, 6), 6, (4, 2)),
    pytest.param("sd15", (1, 3), 4, (2, 2), marks=pytest.mark.slow),  # ~30 model calls of the slow tiny UNet
])
def test_inversion_reconstructs_and_is_deterministic(host, family, steps, frames, win):
    """Invert -> sample (add_noise off / inverted NOISE) gets the video back; better with more steps."""
    base = host.sd15() if family == "sd15" else host.wan()
    lat = sd_video(frames) if family == "sd15" else wan_video(frames)
    model = windows(base, *win)
    x0 = lat["samples"]
    errs, outs = {}, {}
    for n in steps:
        outs[n], rec = invert_and_rebuild(host, model, lat, n, family)
        errs[n] = inv.relative_error(rec, x0)
        assert not torch.allclose(outs[n]["samples"], x0, atol=1e-3)  # the inverted latent is not the input
    print(f"{family} relative reconstruction error: {errs}")
    assert errs[steps[1]] < errs[steps[0]] and errs[steps[1]] < 0.05
    again, _ = invert_and_rebuild(host, model, lat, steps[0], family)
    assert torch.equal(again["samples"], outs[steps[0]]["samples"])


def test_sd_inversion_ksampler_advanced_roundtrip(host):
    lat = sd_video(2)
    out, rec = invert_and_rebuild(host, host.sd15(), lat, 1, "sd15")
    assert inv.relative_error(rec, lat["samples"]) < 0.01


def test_fixed_point_iterations_tighten_reconstruction(host):
    model = windows(host.wan(), 4, 2)
    lat = wan_video(6)
    plain = inv.relative_error(invert_and_rebuild(host, model, lat, 2, "wan21")[1], lat["samples"])
    refined = inv.relative_error(invert_and_rebuild(host, model, lat, 2, "wan21", iters=3)[1], lat["samples"])
    print(f"wan21 2 steps: plain {plain:.2e}, 3 fixed-point iterations {refined:.2e}")
    assert refined < plain / 5


def test_invert_short_latent_and_cfg_needs_negative(host):
    lat = wan_video(2)
    out, _ = cn.LongAnimInvert().run(windows(host.wan(), 4, 2), host.cond("a", "wan21"), lat, 1, "normal", 0)
    assert out["samples"].shape == lat["samples"].shape and torch.isfinite(out["samples"]).all()
    with pytest.raises(ValueError, match="negative"):
        cn.LongAnimInvert().run(host.sd15(), host.cond("a", "sd15"), lat, 1, "normal", 0, cfg=3.0)


def test_zero_strength_equals_the_plain_model(host):
    """ZoLA 4.5 weights are strength × tagged fraction: strength 0 must give the adapter-free model exactly.

    Window LoRA evaluates one window per model call; the plain model is run the same way (max_windows_per_batch
    1), so both sides do the same float operations and must agree bit for bit. Batching windows changes the
    kernels' reduction order, which is a different computation, not the one under test.
    """
    base = host.wan()
    lat = wan_video(12)
    plain = sample(host, windows(base, 8, 4, per_call=1), lat)
    (zero,) = cn.LongAnimWindowLoRA().run(windows(base, 8, 4), WAN_LORA, 0.0, "0-5")
    assert torch.equal(sample(host, zero, lat), plain)
