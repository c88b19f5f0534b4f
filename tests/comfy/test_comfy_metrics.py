"""Tier 2: the Video Metrics node on synthetic videos with known cuts/seams, on LATENTs, and on a sampled latent."""
import math

import pytest
import torch
from longanim.nodes import metrics_nodes as mn
from longanim.nodes.algorithms import metrics as mt
from longanim.nodes.comfy import windows as ca

NODE = mn.LongAnimVideoMetrics


def moving_texture(frames: int, size: int = 32, speed: float = 0.4, seed: int = 0) -> torch.Tensor:
    """A smooth RGB texture translating by ``speed`` px per frame: IMAGE [T, H, W, 3] in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    freqs = torch.randint(1, 4, (6, 2), generator=g).float()
    phases = torch.rand(6, 3, generator=g) * 2 * math.pi
    t = torch.arange(frames).float().view(-1, 1, 1)
    yy, xx = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    arg = 2 * math.pi * (freqs[:, 0].view(-1, 1, 1, 1) * (xx + speed * t) + freqs[:, 1].view(-1, 1, 1, 1) * yy) / size
    v = torch.sin(arg.unsqueeze(-1) + phases.view(6, 1, 1, 1, 3)).sum(0)  # [T, H, W, 3]
    return (0.5 + 0.35 * v / v.abs().amax()).clamp(0, 1).float()


def test_known_cut_gives_one_scene_cut():
    a = moving_texture(40, seed=1)
    b = moving_texture(40, seed=2)
    video = torch.cat([a[:20], 1.0 - b[20:]])  # hard cut between frame 19 and 20
    seam, mawe, cuts, drift, report, plot = NODE().run(images=video, window_length=0, mawe_max_side=0)
    assert cuts == 1 and "at frames [20]" in report
    assert mawe == mn.NOT_MEASURED and "skipped" in report
    assert seam == 1.0 and "unknown" in report
    smooth = NODE().run(images=a, mawe_max_side=0)
    assert smooth[2] == 0


def test_seam_ratio_sees_steps_every_window():
    smooth = moving_texture(48, speed=0.3)
    steps = (smooth + 0.15 * (torch.arange(48) // 16).float().view(-1, 1, 1, 1) - 0.15).clamp(0, 1)
    seam_steps = NODE().run(images=steps, window_length=16, mawe_max_side=0)[0]
    seam_smooth, mawe, _, drift, report, plot = NODE().run(images=smooth, window_length=16, mawe_max_side=0)
    assert seam_steps > 5.0, seam_steps  # step 0.15 vs ~0.02 motion change per frame
    assert 0.8 < seam_smooth < 1.25, seam_smooth
    assert "[16, 32]" in report and "every 16 frames" in report
    assert math.isfinite(drift)
    assert plot.shape == (1, 256, 512, 3) and 0 <= float(plot.min()) and float(plot.max()) <= 1


def test_streamed_mawe_equals_metrics_mawe():
    video = moving_texture(10, size=16, speed=0.7)
    streamed = mn.mawe_streamed(video, None, 255.0)  # 9 pairs: two blocks of MAWE_PAIRS_PER_CALL
    assert streamed == pytest.approx(mt.mawe(video, eps=mn.MAWE_EPS), rel=1e-9)
    mawe, report = (NODE().run(images=video, mawe_max_side=128)[i] for i in (1, 4))
    assert mawe == pytest.approx(streamed, rel=1e-9) and "flow at 16x16" in report
    assert mn.mawe_resolution(720, 1280, 128) == (72, 128) and mn.mawe_resolution(32, 32, 128) is None


@pytest.mark.parametrize("layout", ["sd", "wan"])
def test_latent_input_and_carried_windows(layout):
    t = 40
    g = torch.Generator().manual_seed(0)
    base = torch.randn(1, 16, 1, 8, 8, generator=g) * 0.5
    wobble = 0.02 * torch.randn(1, 16, t, 8, 8, generator=g).cumsum(2)
    x = base + wobble
    x[:, :, 24:] += 2.0 * torch.randn(1, 16, 1, 8, 8, generator=g)  # a cut at latent frame 24
    samples = x if layout == "wan" else x[0].permute(1, 0, 2, 3).contiguous()  # [T, C, H, W]
    latent = {"samples": samples}
    seam, mawe, cuts, drift, report, plot = NODE().run(latent=latent, window_length=8)
    assert "LATENT" in report and "latent units" in report
    assert cuts == 1 and "at frames [24]" in report
    assert math.isfinite(mawe) and drift > 0.5 and plot.ndim == 4
    assert latent.keys() == {"samples"} and torch.equal(latent["samples"], samples)  # input untouched
    wins = [list(range(0, 16)), list(range(12, 28)), list(range(24, 40))]
    carried = dict(latent, longanim_windows=wins)
    report2 = NODE().run(latent=carried, window_length=8, mawe_max_side=0)[4]
    assert "recorded by the LongAnim window loop (3 windows" in report2 and "[12, 16, 24, 28]" in report2


def test_carried_windows_map_to_decoded_frames():
    # Wan: 11 latent frames <-> 41 video frames (r = 4): latent border b -> video border 4(b-1)+1
    assert mn.map_borders([4, 8], 11, 41) == [13, 29]
    assert mn.map_borders([4, 8], 11, 11) == [4, 8]
    assert mn.carried_windows({"longanim_windows": [[[0, 1]], [[0, 1, 2], [2, 3, 4]]]}) == [[0, 1, 2], [2, 3, 4]]
    video = moving_texture(41, size=16)
    latent = {"samples": torch.zeros(1, 16, 11, 2, 2), "longanim_windows": [list(range(0, 6)), list(range(5, 11))]}
    report = NODE().run(images=video, latent=latent, mawe_max_side=0)[4]
    assert "[17, 21]" in report  # latent borders 5, 6 (window starts/ends) -> video frames 17, 21


def test_error_when_nothing_is_connected():
    with pytest.raises(ValueError, match="images / latent"):
        NODE().run()
    with pytest.raises(ValueError, match="images: need at least 2 frames"):
        NODE().run(images=torch.zeros(1, 8, 8, 3))
    with pytest.raises(ValueError, match="mawe_max_side"):
        NODE().run(images=torch.zeros(4, 8, 8, 3), mawe_max_side=5)


def test_sampled_wan_latent_with_zola_windows(host):
    model = ca.patch_model_windows(host.wan(), ca.WindowOptions(schedule="zola", length=6, stride=4, max_skip=2,
                                                                fusion="zola", seed=1))
    latent = host.wan_latent(12)
    samples = host.ksample(model, latent, seed=2, steps=2)
    seam, mawe, cuts, drift, report, plot = NODE().run(latent={"samples": samples}, window_length=6)
    assert all(math.isfinite(v) for v in (seam, mawe, drift)) and cuts >= 0
    assert "recorded by the LongAnim window loop" in report and plot.shape[0] == 1
    # the same values from elsewhere (no record): window_length marks the borders
    report = NODE().run(latent={"samples": samples.clone() * 1.0001}, window_length=6)[4]
    assert "every 6 frames" in report


def test_core_ksampler_output_carries_the_runs_last_windows(host):
    """The window loop files the last step's windows under the output, so metrics mark the borders the run had."""
    from longanim.nodes import window_nodes as wn

    model = wn.LongAnimZoLAWindows().run(host.wan(), 5, 3, 2, "zola", 11)[0]
    latent = host.wan_latent(11)
    out = host.ksample(model, latent, seed=4, steps=3)
    assert out.shape[2] == 11
    handler = model.model_options["context_handler"]
    expected = handler.options.windows(11, 2, handler.options.step_seed(4, 0))  # last step = 2
    assert mn.carried_windows({"samples": out}) == expected
    report = NODE().run(latent={"samples": out}, window_length=0, mawe_max_side=0)[4]
    assert "recorded by the LongAnim window loop" in report
    # a latent the window loop never produced has no record: window_length decides
    assert mn.carried_windows({"samples": out + 1}) is None
