"""Tier 2: what a careless user hits, each with a clear error naming the node, the input and the fix (or a
documented behaviour): frame ranges past the video or typed in video frames, the Wan window node on other
families, phased clips beyond the latent, preview bounds, layouts into attention patches, per-frame lists."""
import pytest
import torch
from longanim.nodes import creative_nodes as crn
from longanim.nodes import window_nodes as wn
from longanim.nodes.comfy import adapters as cad

CFR = wn.LongAnimConditioningFrames()
ZOLA = wn.LongAnimZoLAWindows()


def zola(model, length=4, stride=3):
    return ZOLA.run(model, length, stride, 1, "zola", 0)[0]


def tagged(host, family, *ranges, unit="latent frames"):
    """Conditioning (Combine) of one tagged prompt per (start, end) range."""
    out = []
    for i, (start, end) in enumerate(ranges):
        out += CFR.run(host.cond(f"prompt {i}", family), start, end, unit)[0]
    return out


# ------------------------------------------------------------------------------------ Conditioning Frame Range
def test_frame_range_past_the_video_names_the_node_and_its_inputs(host):
    """start_frame 100 / end_frame 200 on a 20-frame video under ZoLA windows: refused when the sampler starts,
    naming the node, both inputs and the video's last latent frame (not 'no prompt interval covers window ...')."""
    with pytest.raises(ValueError) as info:
        host.ksample(zola(host.sd15()), host.sd_latent(20), steps=1, positive=tagged(host, "sd15", (100, 200)))
    msg = str(info.value)
    assert msg.startswith("start_frame / end_frame: ") and "LongAnim: Conditioning Frame Range" in msg, msg
    assert "start_frame 100, end_frame 200" in msg and "(19)" in msg, msg


def test_uncovered_window_names_every_tagged_range(host):
    """Ranges that leave frames 4..9 without a prompt: the error names the frames and every tagging node."""
    with pytest.raises(ValueError) as info:
        host.ksample(zola(host.sd15()), host.sd_latent(20), steps=1,
                     positive=tagged(host, "sd15", (0, 3), (10, 19)))
    msg = str(info.value)
    assert msg.startswith("start_frame / end_frame: no tagged conditioning covers latent frames"), msg
    assert "start_frame 0, end_frame 3" in msg and "start_frame 10, end_frame 19" in msg, msg


def test_frame_range_without_windows_is_documented_as_ignored(host):
    """Without a LongAnim window node the range has no effect (the node's description says so): the output equals
    the untagged conditioning's."""
    assert "without one the sampler ignores it" in wn.LongAnimConditioningFrames.DESCRIPTION
    plain = host.ksample(host.sd15(), host.sd_latent(6), steps=1, positive=host.cond("prompt 0", "sd15"))
    ranged = host.ksample(host.sd15(), host.sd_latent(6), steps=1, positive=tagged(host, "sd15", (2, 3)))
    assert torch.equal(plain, ranged)


def test_video_frame_ranges_equal_the_converted_latent_ranges(host):
    """length_unit = video frames: Wan (4 video frames per latent frame), 41 video frames = 11 latent frames;
    video 0-20 / 21-40 are latent 0-5 / 6-10 (a latent frame takes the range of its first video frame), so the
    sampled video is bit-identical; a different latent split is not."""
    model, latent = zola(host.wan()), host.wan_latent(11)
    video = host.ksample(model, latent, steps=1, positive=tagged(host, "wan21", (0, 20), (21, 40),
                                                                  unit="video frames"))
    lat = host.ksample(model, latent, steps=1, positive=tagged(host, "wan21", (0, 5), (6, 10)))
    other = host.ksample(model, latent, steps=1, positive=tagged(host, "wan21", (0, 3), (4, 10)))
    assert torch.equal(video, lat) and not torch.equal(video, other)


def test_video_frame_range_inside_one_latent_frame_is_refused(host):
    """Video frames 2-3 lie inside latent frame 1 (video 1..4) and start none: refused naming the node's inputs."""
    with pytest.raises(ValueError, match="start_frame / end_frame: .*start no latent frame"):
        host.ksample(zola(host.wan()), host.wan_latent(11), steps=1,
                     positive=tagged(host, "wan21", (0, 1), (2, 3), (4, 40), unit="video frames"))


def test_window_lora_video_frame_intervals_equal_the_converted_latent_ones(host):
    """Window LoRA with length_unit = video frames on Wan: '21-' video frames = '6-' latent frames (same adapter
    intervals), and '0-20' = '0-5'."""
    node = crn.LongAnimWindowLoRA()
    lora = "longanim_tiny_lora_wan21.safetensors"

    def intervals(text, unit):
        m = node.run(host.wan(), lora, 1.0, text, unit)[0]
        return m.model_options["transformer_options"][cad.SPEC_KEY][-1].intervals

    assert intervals("21-", "video frames") == intervals("6-", "latent frames")
    assert intervals("0-20, 33-40", "video frames") == intervals("0-5, 9-10", "latent frames")
    assert intervals("0-20", "latent frames") != intervals("0-20", "video frames")


# ------------------------------------------------------------------------------------ Wan window node, families
def test_wan_window_node_refuses_an_image_model(host):
    """17 / 9 'video frames' on SD1.5 silently became 5 / 3 latent frames (a fixed ratio of 4): now refused, naming
    the node and the node to use."""
    with pytest.raises(ValueError) as info:
        wn.LongAnimWanZoLAWindows().run(host.sd15(), 17, 9, 1, "zola", 0)
    msg = str(info.value)
    assert msg.startswith("model: ") and "ZoLA Windows (Wan, video frames)" in msg and "frame_unit" in msg, msg


def test_wan_window_node_reads_the_ratio_from_the_model(host, monkeypatch):
    """Wan (4 video frames per latent frame): 17 / 9 -> 5 / 3; a model of ratio 8 (LTX-Video): 17 / 9 -> 3 / 2."""
    def lengths(model):
        opts = wn.LongAnimWanZoLAWindows().run(model, 17, 9, 1, "zola", 0)[0].model_options["context_handler"].options
        return opts.length, opts.stride

    assert lengths(host.wan()) == (5, 3)
    monkeypatch.setattr(wn.cb, "temporal_compression", lambda model: 8)
    assert lengths(host.wan()) == (3, 2)


# ------------------------------------------------------------------------------------ Phased Animation
def phased(host, latent, num_clips, steps, gamma):
    from longanim.nodes import refine_nodes as rn

    return rn.LongAnimPhasedAnimation().run(host.wan(), host.cond("a fox", "wan21"), host.cond("", "wan21"), latent,
                                            num_clips, steps, 5.0, "normal", gamma, 0.2, 0)


def test_phased_refuses_clips_that_would_all_be_copies(host):
    """num_clips 256 with 2 steps and gamma 0.8: M = ceil(1.6) = 2 shares every step, clips 2..256 would be copies
    of clip 1 (it reported '2 model calls instead of 512, saved 100 %'): refused naming gamma, steps and the fix."""
    with pytest.raises(ValueError) as info:
        phased(host, host.wan_latent(3), 256, 2, 0.8)
    msg = str(info.value)
    assert msg.startswith("gamma / steps: ") and "exact copies of clip 1" in msg and "0.500" in msg, msg


def test_phased_refuses_more_frames_than_the_pack_makes(host):
    with pytest.raises(ValueError, match="num_clips: 256 clips of 100 latent frames make 25600 frames"):
        phased(host, host.wan_latent(100), 256, 4, 0.5)


def test_phased_report_says_what_ran(host):
    _, saved, report = phased(host, host.wan_latent(3), 2, 3, 0.5)
    assert report.startswith("phased inference: 2 clips of 3 latent frames (6 frames), 3 steps each: 4 model calls "
                             "instead of 6"), report
    assert saved == 2


# ------------------------------------------------------------------------------------ work bounded by what is drawn
def test_prompt_schedule_over_the_character_bound_is_refused_before_encoding():
    """A 100,000-character schedule is refused before the text encoder runs (clip is never touched)."""
    text = "0-: " + "a red fox " * 10000
    with pytest.raises(ValueError, match=r"schedule: its prompts hold 99,999 characters, more than 20,000"):
        wn.LongAnimPromptScheduleV2().run(None, text, 64)


def test_prompt_schedule_encodes_each_distinct_prompt_once():
    class Clip:
        calls = 0

        def tokenize(self, text):
            return text

        def encode_from_tokens_scheduled(self, tokens):
            Clip.calls += 1
            return [[torch.zeros(1, 2, 3), {}]]

    out = wn.LongAnimPromptScheduleV2().run(Clip(), "0-9: a\n10-19: b\n20-29: a\n30-: b", 40)[0]
    assert Clip.calls == 2 and [c[1][wn.cw.TAG_KEY] for c in out] == [(0, 9), (10, 19), (20, 29), (30, 39)]


def test_noise_preview_measures_only_the_frames_it_draws(host, monkeypatch):
    """Noise Preview at 16,384 frames: the correlation is computed on the 512 frames the picture draws (its cost was
    quadratic in the frames: 39.5 s), and per pair it equals the full computation."""
    from longanim.nodes import noise_nodes as nn
    from longanim.nodes.algorithms import noise_preview as npv

    seen, full = [], npv.frame_correlation
    monkeypatch.setattr(npv, "frame_correlation", lambda noise, axis: seen.append(noise.shape[axis]) or full(noise,
                                                                                                           axis))
    recipe = nn.LongAnimRepeatMaskNoise().run(0, 0.5, 16)[1]
    image = nn.LongAnimNoisePreviewV2().run(recipe, 0, 16384)[0]
    assert seen == [512] and image.shape == (1, 640, 512, 3) and torch.isfinite(image).all()
    noise = torch.randn(1500, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    idx = (torch.arange(512) * 1500) // 512
    assert torch.allclose(full(noise.index_select(0, idx), 0), full(noise, 0)[idx][:, idx], atol=1e-6)


# ------------------------------------------------------------------------------------ minor cases
def test_video_latent_into_an_image_model_with_frame_attention_is_refused_naming_the_layout(host):
    """A Wan latent into SD1.5 with Temporal Momentum Attention (no windows): the pack's layout check, not a raw
    conv2d error."""
    from longanim.nodes import attention_nodes as an

    model = an.LongAnimTemporalMomentumAttention().run(host.sd15(), 0.9, 0.0, 1.0, "all")[0]
    with pytest.raises(ValueError, match=r"latent_image: a video latent .* cannot go into the image model"):
        host.ksample(model, host.wan_latent(6), steps=1, positive=host.cond("a", "sd15"),
                     negative=host.cond("", "sd15"))


def test_image_batch_latent_into_a_video_model_with_windows_is_refused(host):
    """An SD latent (Empty Latent Image, 8 frames in the batch) into Wan becomes 8 one-frame videos, on which the
    windows do nothing: refused naming the latent and the latent node to use."""
    with pytest.raises(ValueError, match=r"latent_image: \[8, 16, 1, 4, 4\] is 8 one-frame videos"):
        host.ksample(zola(host.wan()), host.sd_latent(8), steps=1, positive=host.cond("a", "wan21"),
                     negative=host.cond("", "wan21"))


def test_bad_lam_per_frame_value_is_named_by_its_input_and_position():
    from longanim.nodes import noise_nodes as nn

    with pytest.raises(ValueError) as info:
        nn.LongAnimDependencyNoise().run(0, 0.01, 4, 1, nn.LongAnimDependencyNoise.INPUT_TYPES()["required"]
                                         ["variant"][1]["default"], "0.5, -1, 0.2")
    msg = str(info.value)
    assert msg.startswith("lam_per_frame: value 2 of 3 (-1.0)") and "lam[" not in msg, msg
