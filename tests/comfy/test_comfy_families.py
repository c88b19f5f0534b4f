"""Tier 2: LongAnim's windows on every tiny video family: Wan 2.1 I2V, Wan 2.2 I2V (two experts), Wan 2.2 5B TI2V,
LTX-Video (image in the latent, keyframe guides) and HunyuanVideo (T2V, I2V).

Models: ``tests/tools/tiny_families.py`` (built on first use, detected by ComfyUI's own loader). Conditioning and
latents come from the host's own nodes (``WanImageToVideo``, ``Wan22ImageToVideoLatent``, ``LTXVConditioning``,
``LTXVImgToVideo``, ``LTXVAddGuide``, ``HunyuanImageToVideo``, ``EmptyHunyuanLatentVideo``) fed by ``StubVAE``, a
fixed linear map of pooled pixels with the family's compression: the nodes' own logic decides what goes into the
conditioning, without a VAE file. """
from __future__ import annotations

import functools
import hashlib
import pathlib
import sys

import comfy.clip_vision
import comfy.patcher_extension
import comfy.sd
import folder_paths
import nodes as comfy_nodes
import pytest
import torch
from comfy_extras import nodes_hunyuan, nodes_lt, nodes_wan
from longanim.nodes import window_nodes as wn

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tools"))
import tiny_families as tf  # noqa: E402

FRAMES = 12  # latent frames of every test video
SIZE = 4  # latent height = width


@functools.cache
def _built() -> dict:
    return tf.ensure(pathlib.Path(folder_paths.base_path))


@functools.cache
def load(name: str):
    return comfy.sd.load_diffusion_model(str(_built()[name]))


def rnd(shape, tag: str) -> torch.Tensor:
    seed = int.from_bytes(hashlib.sha256(tag.encode()).digest()[:8], "little")
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def image(h: int, w: int) -> torch.Tensor:
    return torch.rand((1, h, w, 3), generator=torch.Generator().manual_seed(7))


class StubVAE:
    """``encode(pixels [N, H, W, 3]) -> [1, C, (N - 1) // t + 1, H // s, W // s]``: a fixed channel map of the
    s x s pooled pixels of video frames 0, 1, 1 + t, ... (the first latent frame holds one frame, the others t)."""

    def __init__(self, channels: int, t: int, s: int):
        self.t, self.s = t, s
        self.downscale_index_formula = (t, s, s)
        self.proj = rnd((channels, 3), f"stubvae{channels}")

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        n = pixels.shape[0]
        x = torch.nn.functional.avg_pool2d(pixels.movedim(-1, 0), self.s)
        frames = [0] + [min(n - 1, 1 + self.t * k) for k in range((n - 1) // self.t)]
        return torch.einsum("ck,kthw->cthw", self.proj, x[:, frames]).unsqueeze(0)


def text(tag: str, extra: dict | None = None):
    return [[rnd((1, 16, 4096), tag), dict(extra or {})]]


def out(node_output):
    return node_output.result if hasattr(node_output, "result") else node_output


@functools.cache
def case(name: str) -> dict:
    """model file(s), positive, negative, latent dict, cfg and video latent frames of one family setup."""
    wan_px, n4 = 8 * SIZE, 4 * (FRAMES - 1) + 1
    if name in ("wan21_i2v", "wan22_i2v"):
        clip = None
        if name == "wan21_i2v":
            clip = comfy.clip_vision.Output()
            clip.penultimate_hidden_states = rnd((1, 257, 1280), "clip vision")
        pos, neg, latent = out(nodes_wan.WanImageToVideo.execute(
            text("p"), text("n"), StubVAE(16, 4, 8), wan_px, wan_px, n4, 1, start_image=image(wan_px, wan_px),
            clip_vision_output=clip))
        files = (tf.WAN21_I2V,) if name == "wan21_i2v" else (tf.WAN22_I2V_HIGH, tf.WAN22_I2V_LOW)
        return dict(files=files, positive=pos, negative=neg, latent=latent, cfg=5.0, frames=FRAMES)
    if name == "wan22_5b":
        px = 16 * SIZE
        latent = out(nodes_wan.Wan22ImageToVideoLatent.execute(StubVAE(48, 4, 16), px, px, n4, 1,
                                                               start_image=image(px, px)))[0]
        return dict(files=(tf.WAN22_TI2V5B,), positive=text("p"), negative=text("n"), latent=latent, cfg=5.0,
                    frames=FRAMES)
    if name in ("ltxv_i2v", "ltxv_guide"):
        px, n8, vae = 32 * SIZE, 8 * (FRAMES - 1) + 1, StubVAE(128, 8, 32)
        mask = {"attention_mask": torch.ones(1, 16, dtype=torch.long)}  # what the T5 encoder of LTXV adds
        pos, neg = out(nodes_lt.LTXVConditioning.execute(text("p", mask), text("n", mask), 25.0))
        pos, neg, latent = out(nodes_lt.LTXVImgToVideo.execute(pos, neg, image(px, px), vae, px, px, n8, 1, 1.0))
        if name == "ltxv_guide":  # a keyframe at video frame 8 * 8 = latent frame 8, appended after the video
            pos, neg, latent = out(nodes_lt.LTXVAddGuide.execute(pos, neg, vae, latent, image(px, px), 64, 1.0))
        return dict(files=(tf.LTXV,), positive=pos, negative=neg, latent=latent, cfg=3.0, frames=FRAMES)
    if name in ("hunyuan_t2v", "hunyuan_i2v"):
        pos = text("p", {"pooled_output": rnd((1, 768), "pooled p"), "guidance": 6.0})
        neg = text("n", {"pooled_output": rnd((1, 768), "pooled n"), "guidance": 6.0})
        if name == "hunyuan_t2v":
            latent = out(nodes_hunyuan.EmptyHunyuanLatentVideo.execute(wan_px, wan_px, n4, 1))[0]
            return dict(files=(tf.HUNYUAN_T2V,), positive=pos, negative=neg, latent=latent, cfg=1.0, frames=FRAMES)
        pos, latent = out(nodes_hunyuan.HunyuanImageToVideo.execute(
            pos, StubVAE(16, 4, 8), wan_px, wan_px, n4, 1, "v1 (concat)", start_image=image(wan_px, wan_px)))
        return dict(files=(tf.HUNYUAN_I2V,), positive=pos, negative=neg, latent=latent, cfg=1.0, frames=FRAMES)
    raise KeyError(name)


FAMILIES = ["wan21_i2v", "wan22_i2v", "wan22_5b", "ltxv_i2v", "hunyuan_t2v", "hunyuan_i2v"]
DETECTED = {tf.WAN21_I2V: "WAN21_I2V", tf.WAN22_I2V_HIGH: "WAN21_T2V", tf.WAN22_I2V_LOW: "WAN21_T2V",
            tf.WAN22_TI2V5B: "WAN22_T2V", tf.LTXV: "LTXV", tf.HUNYUAN_T2V: "HunyuanVideo",
            tf.HUNYUAN_I2V: "HunyuanVideoI2V"}
PER_FRAME_KEYS = ("c_concat", "denoise_mask")  # model_conds that hold one entry per latent frame (axis 2)


def ksample(model, c: dict, steps=2, seed=1, latent=None):
    return comfy_nodes.common_ksampler(model, seed, steps, c["cfg"], "euler", "normal", c["positive"],
                                       c["negative"], latent or c["latent"])[0]["samples"]


def windows(model, length=6, stride=4, skip=1, seed=0, **kw):
    return wn.LongAnimZoLAWindows().run(model, length, stride, skip, "zola", seed, **kw)[0]


class CallLog:
    """CALC_COND_BATCH wrapper: per model call, the window, the sigma and the positive cond's model_conds."""

    def __init__(self):
        self.calls = []

    def __call__(self, executor, model, conds, x_in, timestep, model_options):
        window = model_options["transformer_options"].get("context_window")
        self.calls.append(dict(shape=tuple(x_in.shape), sigma=float(timestep.reshape(-1)[0]),
                               window=None if window is None else list(window.index_list),
                               conds=dict(conds[0][0]["model_conds"])))
        return executor(model, conds, x_in, timestep, model_options)


def logged(model):
    m, log = model.clone(), CallLog()
    m.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.CALC_COND_BATCH, "test.families", log)
    return m, log


# --------------------------------------------------------------------------------------------- the models
@pytest.mark.parametrize("name", list(tf.JOBS))
def test_tiny_family_model_is_detected_as_its_family(name):
    model = load(name)
    assert type(model.model.model_config).__name__ == DETECTED[name]
    facts = tf.LATENTS[tf.JOBS[name][2]]
    assert model.model.latent_format.latent_channels == facts["channels"]
    assert _built()[name].stat().st_size < 16 * 2**20


# --------------------------------------------------------------------------------------------- windows run
@pytest.mark.parametrize("name", FAMILIES)
def test_windows_run_on_every_family_cover_every_frame_and_repeat(name):
    c = case(name)
    model, log = logged(windows(load(c["files"][0]), skip=2, max_windows_per_batch=1))
    a = ksample(model, c)
    assert a.shape == c["latent"]["samples"].shape and torch.isfinite(a).all()
    # ends 'truncate' (the default): windows cut at the video ends are shorter, none longer than context_length
    assert log.calls and all(call["window"] is not None and 1 <= len(call["window"]) <= 6 for call in log.calls)
    assert {f for call in log.calls for f in call["window"]} == set(range(c["frames"]))
    assert torch.equal(a, ksample(model, c)), "same seed, same output"


@pytest.mark.parametrize("name", ["wan21_i2v", "wan22_i2v", "wan22_5b", "ltxv_i2v", "hunyuan_i2v"])
def test_per_frame_image_conditioning_is_sliced_to_each_window(name):
    """c_concat (image latent + mask channels) and denoise_mask (per-frame timestep of WAN22 / LTXV) of every window
    call are exactly the full video's entries at that window's frames; the rest (text, CLIP vision) is whole."""
    c = case(name)
    base = load(c["files"][0])
    plain, plain_log = logged(base)
    ksample(plain, c, steps=1)
    full = plain_log.calls[0]["conds"]
    assert any(k in full for k in PER_FRAME_KEYS), sorted(full)
    model, log = logged(windows(base, length=6, stride=3, skip=2, max_windows_per_batch=1))
    ksample(model, c, steps=2)
    for call in log.calls:
        idx = torch.tensor(call["window"])
        for key, value in full.items():
            got, want = call["conds"][key].cond, value.cond
            if key in PER_FRAME_KEYS:
                assert torch.equal(got, want.index_select(2, idx)), (key, call["window"])
            elif isinstance(want, torch.Tensor):
                assert torch.equal(got, want), key


@pytest.mark.parametrize("name", ["wan21_i2v", "wan22_5b", "ltxv_i2v"])
def test_batched_windows_equal_one_by_one_with_image_conditioning(name):
    c = case(name)
    base = load(c["files"][0])
    one = ksample(windows(base, max_windows_per_batch=1), c)
    many = ksample(windows(base, max_windows_per_batch=4), c)
    assert torch.allclose(one, many, atol=1e-4, rtol=1e-4)


def test_sampler_custom_advanced_runs_windows_on_wan_i2v(host):
    from longanim.nodes import noise_nodes as nn

    c = case("wan21_i2v")
    model, log = logged(windows(load(tf.WAN21_I2V), max_windows_per_batch=1))
    noise = nn.LongAnimMixedNoise().run(seed=1, alpha=0.3)[0]
    x = host.custom_advanced(model, c["latent"], noise, steps=2, positive=c["positive"], negative=c["negative"])
    assert x.shape == c["latent"]["samples"].shape and torch.isfinite(x).all()
    assert log.calls and all(1 <= len(call["window"]) <= 6 for call in log.calls)


# --------------------------------------------------------------------------------------------- Wan 2.2 experts
def _two_experts(high, low, c, steps=4, switch=2):
    a = comfy_nodes.KSamplerAdvanced().sample(high, "enable", 1, steps, c["cfg"], "euler", "normal", c["positive"],
                                              c["negative"], c["latent"], 0, switch, "enable")[0]
    return comfy_nodes.KSamplerAdvanced().sample(low, "disable", 1, steps, c["cfg"], "euler", "normal",
                                                 c["positive"], c["negative"], a, switch, 10000, "disable")[0]


def test_both_wan22_experts_run_windows():
    c = case("wan22_i2v")
    high, hlog = logged(windows(load(tf.WAN22_I2V_HIGH), skip=2, max_windows_per_batch=1))
    low, llog = logged(windows(load(tf.WAN22_I2V_LOW), skip=2, max_windows_per_batch=1))
    x = _two_experts(high, low, c)["samples"]
    assert torch.isfinite(x).all() and x.shape == c["latent"]["samples"].shape
    assert hlog.calls and llog.calls
    assert all(1 <= len(call["window"]) <= 6 for call in hlog.calls + llog.calls)
    assert max(call["sigma"] for call in llog.calls) < min(call["sigma"] for call in hlog.calls)


def test_wan22_low_noise_expert_continues_the_window_schedule():
    """Windows are a function of (seed, global step): the windows the two experts see at steps 0..3 are the ones
    a single 4-step sampler with the same seed sees (the experts are the same architecture: swap the weights)."""
    c = case("wan22_i2v")
    one, one_log = logged(windows(load(tf.WAN22_I2V_HIGH), skip=2, max_windows_per_batch=1))
    comfy_nodes.KSamplerAdvanced().sample(one, "enable", 1, 4, c["cfg"], "euler", "normal", c["positive"],
                                          c["negative"], c["latent"], 0, 10000, "disable")
    high, hlog = logged(windows(load(tf.WAN22_I2V_HIGH), skip=2, max_windows_per_batch=1))
    low, llog = logged(windows(load(tf.WAN22_I2V_LOW), skip=2, max_windows_per_batch=1))
    _two_experts(high, low, c)

    def by_step(calls):
        return [[call["window"] for call in calls if call["sigma"] == s]
                for s in sorted({call["sigma"] for call in calls}, reverse=True)]

    single = by_step(one_log.calls)
    assert len(single) == 4 and single[2] != single[0], "steps 0 and 2 draw different windows (test can fail)"
    assert by_step(hlog.calls) == single[:2]
    assert by_step(llog.calls) == single[2:]


def test_noise_travel_on_the_high_noise_expert_keeps_the_low_noise_expert_on_the_global_schedule():
    """Noise travel (ZoLA Eq. 9) on the high-noise expert repeats some of its steps, with new windows for the
    repeats; the low-noise expert still continues at the global step where the first sampler stopped, so its
    windows are the ones it sees without travel."""
    from longanim.nodes import travel_nodes as tn

    c = case("wan22_i2v")
    low_windows, high_calls = [], []
    for travel in (False, True):
        high, hlog = logged(windows(load(tf.WAN22_I2V_HIGH), skip=2, max_windows_per_batch=1))
        if travel:
            high = tn.LongAnimNoiseTravelModel().run(high, 1, 0.0, 1.0, 1, 0)[0]
        low, llog = logged(windows(load(tf.WAN22_I2V_LOW), skip=2, max_windows_per_batch=1))
        x = _two_experts(high, low, c)["samples"]
        assert torch.isfinite(x).all()
        low_windows.append([call["window"] for call in llog.calls])
        high_calls.append(len(hlog.calls))
    assert high_calls[1] > high_calls[0], "travel repeated steps of the high-noise expert"
    assert low_windows[0] == low_windows[1]


# --------------------------------------------------------------------------------------------- LTX-Video guides
def test_ltxv_guide_frames_join_only_the_windows_that_hold_their_frame():
    c = case("ltxv_guide")
    video = c["frames"]
    guides = c["latent"]["samples"].shape[2] - video
    assert guides == 1
    plain, plain_log = logged(load(tf.LTXV))
    ksample(plain, c, steps=1)
    full = plain_log.calls[0]["conds"]
    model, log = logged(windows(load(tf.LTXV), length=6, stride=4, skip=1, max_windows_per_batch=1))
    x = ksample(model, c)
    assert torch.isfinite(x).all()
    for call in log.calls:
        assert all(f < video for f in call["window"]), f"a guide latent was windowed as video: {call['window']}"
        holds = 8 in call["window"]  # the keyframe targets latent frame 8
        kf = call["conds"].get("keyframe_idxs")
        assert call["shape"][2] == len(call["window"]) + int(holds)
        assert (kf is not None and kf.cond.shape[2] == SIZE * SIZE) if holds else kf is None or kf.cond.numel() == 0
        frames = list(call["window"]) + ([video] if holds else [])
        mask = call["conds"]["denoise_mask"].cond
        assert torch.equal(mask, full["denoise_mask"].cond.index_select(2, torch.tensor(frames)))
        if holds:  # the keyframe's time coordinate re-based to its target's window position p: + 8 (p - 8)
            shift = 8 * (call["window"].index(8) - 8)
            assert torch.equal(kf.cond[:, 0], full["keyframe_idxs"].cond[:, 0] + shift), call["window"]
            assert torch.equal(kf.cond[:, 1:], full["keyframe_idxs"].cond[:, 1:])
    held = [call for call in log.calls if 8 in call["window"]]
    assert held and len(held) < len(log.calls), "some windows hold the keyframe and some do not (test can fail)"


def test_windows_keep_ltxv_guide_output_and_shape():
    """The sampled latent keeps the appended guide frame (LTXVCropGuides strips it after sampling) and repeats."""
    c = case("ltxv_guide")
    model = windows(load(tf.LTXV), length=6, stride=4, skip=1, max_windows_per_batch=2)
    a = ksample(model, c)
    assert a.shape == c["latent"]["samples"].shape and torch.isfinite(a).all()
    assert torch.equal(a, ksample(model, c))


# --------------------------------------------------------------------------------------------- reference frame
@pytest.mark.parametrize("name,key", [("wan21_i2v", "c_concat"), ("wan22_5b", "denoise_mask"),
                                      ("hunyuan_i2v", "c_concat"), ("ltxv_i2v", "denoise_mask")])
def test_start_image_frame_is_kept_in_every_window_when_asked(name, key):
    """With keep_first_frame every window not holding frame 0 gets frame 0 (latent and per-frame conds) prepended;
    its own frames are unchanged; the prepended frame's output is not fused."""
    assert "keep_first_frame" in wn.LongAnimZoLAWindows.INPUT_TYPES()["optional"]
    c = case(name)
    base = load(c["files"][0])
    plain, plain_log = logged(base)
    ksample(plain, c, steps=1)
    full = plain_log.calls[0]["conds"][key].cond
    # full-length windows (ends 'shift'), so a window with the start frame prepended is the one of 7 frames
    model, log = logged(windows(base, length=6, stride=4, skip=1, max_windows_per_batch=1, keep_first_frame=True,
                                ends="shift"))
    a = ksample(model, c)
    assert torch.isfinite(a).all() and a.shape == c["latent"]["samples"].shape
    prepended = 0
    for call in log.calls:
        got = call["conds"][key].cond
        frames = call["window"]  # the published window lists the call's video frames, frame 0 first
        assert frames[0] == 0 and len(frames) in (6, 7)
        prepended += len(frames) == 7
        assert call["shape"][2] == len(frames)
        assert torch.equal(got, full.index_select(2, torch.tensor(frames)))
    assert prepended, "some windows do not start at frame 0 (the test can fail)"
    off = ksample(windows(base, length=6, stride=4, skip=1, max_windows_per_batch=1), c)
    assert not torch.equal(a, off), "the reference frame changes the result"


def test_keep_first_frame_off_is_the_plain_loop_bit_for_bit():
    c = case("wan21_i2v")
    base = load(tf.WAN21_I2V)
    a = ksample(windows(base, skip=2, max_windows_per_batch=1), c)
    b = ksample(windows(base, skip=2, max_windows_per_batch=1, keep_first_frame=False), c)
    assert torch.equal(a, b)


def test_keep_first_frame_batched_equals_one_by_one():
    c = case("wan22_5b")
    base = load(tf.WAN22_TI2V5B)
    one = ksample(windows(base, max_windows_per_batch=1, keep_first_frame=True), c)
    many = ksample(windows(base, max_windows_per_batch=4, keep_first_frame=True), c)
    assert torch.allclose(one, many, atol=1e-4, rtol=1e-4)


def test_keep_first_frame_refuses_wrapping_windows():
    with pytest.raises(ValueError, match="keep_first_frame"):
        wn.LongAnimContextWindows().run(load(tf.WAN21_I2V), "looped", 6, 4, 2, 1, True, 0, "zola",
                                        keep_first_frame=True)


# --------------------------------------------------------------------------------------------- units, layout
@pytest.mark.parametrize("name,typed,latent", [(tf.LTXV, 41, 6), (tf.HUNYUAN_T2V, 21, 6), (tf.WAN21_I2V, 21, 6)])
def test_video_frame_lengths_use_the_family_compression(name, typed, latent):
    model = wn.LongAnimZoLAWindows().run(load(name), typed, typed, 1, "zola", 0, length_unit="video frames")[0]
    opts = model.model_options["context_handler"].options
    assert (opts.length, opts.stride) == (latent, latent)
    same = wn.LongAnimZoLAWindows().run(load(name), typed, typed, 1, "zola", 0)[0]
    assert same.model_options["context_handler"].options.length == typed


def test_video_frames_on_a_video_format_of_unknown_compression_are_refused_by_node_and_unit(monkeypatch):
    """A video latent format (latent_dimensions 3) without a known temporal ratio: lengths typed in video frames
    cannot be converted, so the node refuses (naming itself and frame_unit) instead of taking them as latent frames;
    latent frames still work."""
    model = load(tf.WAN21_I2V)

    class FutureVideo:  # a latent format this pack does not know, as a newer host may add
        latent_dimensions = 3
        latent_channels = 16

    monkeypatch.setattr(model.model, "latent_format", FutureVideo())
    for node in (wn.LongAnimZoLAWindowsV2, wn.LongAnimGenLWindowsV2):
        with pytest.raises(ValueError, match=r"frame_unit: LongAnim: (ZoLA|Gen-L) Windows .*latent frames"):
            node().run(model, 21, 21, *((1, "zola", 0) if node is wn.LongAnimZoLAWindowsV2 else ("zola",)),
                       frame_unit="video frames")
    opts = wn.LongAnimZoLAWindowsV2().run(model, 21, 21, 1, "zola", 0)[0].model_options["context_handler"].options
    assert opts.length == 21


def test_a_latent_of_another_family_is_refused_by_name():
    """Non-empty latents (core >= 0.28 re-shapes an all-zero latent to the model's channels by itself)."""
    model = windows(load(tf.WAN22_TI2V5B), max_windows_per_batch=1)
    with pytest.raises(ValueError, match="latent_image: it has 16 channels .* takes 48"):
        ksample(model, case("wan22_5b"), latent={"samples": rnd((1, 16, FRAMES, SIZE, SIZE), "wan latent")})
