"""Tests for nodes/algorithms/metrics.py (StreamingT2V section 5.1, appendix 12; issue 9A)."""

from __future__ import annotations

import colorsys
import math

import pytest
import torch
from longanim.nodes.algorithms import metrics as M


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # Tiny convolutions are dominated by thread hand-off on a loaded 2-core box; restore afterwards.
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def pattern(h: int, w: int, shifts, seed: int = 0, n: int = 24, fmax: float = 0.1) -> torch.Tensor:
    """Band-limited RGB texture (sum of random plane waves) translated by exact sub-pixel ``shifts``:
    frame k is ``P(x - shift_k)``. Returns IMAGE [T, H, W, 3] in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    fx = (torch.rand(n, generator=g) * 2 - 1) * fmax
    fy = (torch.rand(n, generator=g) * 2 - 1) * fmax
    ph = torch.rand(n, generator=g) * 2 * math.pi
    amp = torch.rand(n, 3, generator=g)
    ys = torch.arange(h, dtype=torch.float64).view(1, h, 1, 1)
    xs = torch.arange(w, dtype=torch.float64).view(1, 1, w, 1)
    sh = torch.tensor(shifts, dtype=torch.float64).view(-1, 2)
    arg = 2 * math.pi * (fx * (xs - sh[:, 0].view(-1, 1, 1, 1)) + fy * (ys - sh[:, 1].view(-1, 1, 1, 1))) + ph
    v = torch.einsum("thwn,nc->thwc", torch.cos(arg), amp.double()) / n
    return (0.5 + 0.45 * v / v.abs().max()).float()


# ------------------------------------------------------------------ jumps and seams
def test_frame_jumps_layouts_agree():
    g = torch.Generator().manual_seed(0)
    lat = torch.randn(10, 4, 6, 6, generator=g)  # [T, C, H, W]
    native = lat.permute(1, 0, 2, 3).unsqueeze(0)  # [1, C, T, H, W]
    j0 = M.frame_jumps(lat, frame_axis=0)
    j2 = M.frame_jumps(native, frame_axis=2)
    assert j0.shape == (9,)
    torch.testing.assert_close(j0, j2)
    torch.testing.assert_close(j0[3], (lat[4] - lat[3]).abs().mean())
    with pytest.raises(ValueError, match="frame_axis"):
        M.frame_jumps(lat, frame_axis=4)


def test_window_borders():
    windows = [list(range(0, 16)), list(range(16, 32)), list(range(32, 48))]
    assert M.window_borders(windows) == [16, 32]
    overlapping = [list(range(0, 16)), list(range(8, 24)), list(range(16, 32))]
    assert M.window_borders(overlapping) == [8, 16, 24]
    skip = [[2, 4, 6, 8]]  # frame-skip window: outer extent only
    assert M.window_borders(skip, num_frames=12) == [2, 9]


def test_seam_ratio_step_every_16_frames_vs_smooth():
    t = 64
    smooth = pattern(16, 16, [(0.5 * k, 0.25 * k) for k in range(t)])
    # brightness step of 0.2 at every 16th frame (alternating sign keeps values near [0, 1])
    offsets = 0.1 * torch.tensor([(-1.0) ** k for k in range(t // 16)])
    stepped = smooth + offsets.repeat_interleave(16, 0).view(t, 1, 1, 1)
    borders = [16, 32, 48]  # border b = transition between frames b-1 and b
    r_step = M.seam_ratio(M.frame_jumps(stepped), borders)
    r_smooth = M.seam_ratio(M.frame_jumps(smooth), borders)
    assert r_step > 5.0
    # constant-velocity translation: every adjacent change has the same statistics (deterministic
    # texture, so the spread is small); 10 % covers the texture's local variation
    assert abs(r_smooth - 1.0) < 0.1
    # borders at the wrong place do not see the steps
    assert M.seam_ratio(M.frame_jumps(stepped), [8, 24, 40]) < 0.5 * r_step
    assert M.seam_ratio(M.frame_jumps(stepped), []) == 1.0
    with pytest.raises(ValueError, match="borders"):
        M.seam_ratio(M.frame_jumps(stepped), [0, 16])
    with pytest.raises(ValueError, match="borders"):
        M.seam_ratio(M.frame_jumps(stepped), [64])


# ------------------------------------------------------------------ optical flow
@pytest.mark.parametrize("shift", [(0.4, -0.3), (1.5, 1.0), (-2.0, 0.7)])
def test_optical_flow_recovers_translation(shift):
    v = pattern(48, 48, [(0.0, 0.0), shift], fmax=0.1)
    flow = M.optical_flow(v[:1], v[1:])
    assert flow.shape == (1, 48, 48, 2)
    inner = flow[0, 8:40, 8:40].reshape(-1, 2)
    err = (inner - torch.tensor(shift)).norm(dim=-1)
    assert float(err.median()) < 0.05  # px; measured ~0.01
    assert float(err.max()) < 0.25
    # warping dst with the estimated flow reconstructs src in the interior
    rec = M.warp(v[1:], flow)
    assert float((rec - v[:1])[0, 8:40, 8:40].abs().mean()) < 0.01


def test_warp_identity_and_errors():
    v = pattern(12, 10, [(0.0, 0.0)])
    torch.testing.assert_close(M.warp(v, torch.zeros(1, 12, 10, 2)), v, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="warp"):
        M.warp(v, torch.zeros(1, 12, 10, 3))


def test_occlusion_mask_consistent_flow_is_visible():
    fw = torch.zeros(1, 20, 20, 2)
    fw[..., 0] = 1.0  # one px to the right
    mask = M.occlusion_mask(fw, -fw)
    assert bool(mask[:, :, :19].all())  # x + 1 inside the frame
    assert not bool(mask[:, :, 19].any())  # x + 1 leaves the frame
    assert not bool(M.occlusion_mask(fw, fw)[:, :, :19].any())  # inconsistent


# ------------------------------------------------------------------ MAWE
def test_mawe_smooth_translation_beats_random_jumps():
    t = 8
    smooth = pattern(40, 40, [(1.5 * k, 0.5 * k) for k in range(t)])
    g = torch.Generator().manual_seed(3)
    jumpy = pattern(40, 40, (torch.rand(t, 2, generator=g) * 100).tolist())
    w_s, ofs_s = M.warp_error_and_flow_score(smooth)
    # OFS is the mean squared flow: true motion is 1.5^2 + 0.5^2 = 2.5 px^2 (border pixels add a bit)
    assert 2.2 < ofs_s < 3.0
    m_smooth, m_jumpy = M.mawe(smooth), M.mawe(jumpy)
    assert m_smooth == pytest.approx(w_s / ofs_s)
    assert m_jumpy > 3.0 * m_smooth  # measured ~16x
    # static video: no motion and no error
    assert M.mawe(pattern(16, 16, [(0.0, 0.0)] * 3)) < 1e-3


# ------------------------------------------------------------------ scene cuts
def test_rgb_to_hsv_matches_colorsys():
    cols = torch.tensor([[0.9, 0.2, 0.1], [0.1, 0.8, 0.3], [0.2, 0.3, 0.7], [0.5, 0.5, 0.5], [0.0, 0.0, 0.0]])
    hsv = M.rgb_to_hsv(cols)
    for c, got in zip(cols.tolist(), hsv.tolist(), strict=True):
        h, s, v = colorsys.rgb_to_hsv(*c)
        assert got == pytest.approx([h * 180.0, s * 255.0, v * 255.0], abs=1e-3)


def test_scene_cut_at_known_frame():
    t, cut = 40, 20
    a = pattern(24, 24, [(0.3 * k, 0.0) for k in range(cut)], seed=0)
    b = pattern(24, 24, [(0.3 * k, 0.0) for k in range(t - cut)], seed=5).flip(-1)
    video = torch.cat([a, b])
    assert M.scene_cuts(video) == [cut]
    assert M.scene_cuts(a) == []
    scores = M.content_scores(video)
    assert scores.shape == (t,) and float(scores[0]) == 0.0
    assert int(scores.argmax()) == cut
    # PySceneDetect's default min_scene_len=15 hides a cut at frame 8; min_scene_len=0 finds it
    early = torch.cat([a[:8], b[:20]])
    assert M.scene_cuts(early) == []
    assert M.scene_cuts(early, min_scene_len=0) == [8]
    with pytest.raises(ValueError, match="threshold"):
        M.scene_cuts(video, threshold=-1.0)
    with pytest.raises(ValueError, match="window_width"):
        M.scene_cuts(video, window_width=0)


# ------------------------------------------------------------------ long-range diagnostics
def test_long_range_drift():
    g = torch.Generator().manual_seed(0)
    stationary = torch.rand(32, 16, 16, 3, generator=g)
    # per-channel stats over 8 frames x 256 px = 2048 values: std error of the mean of U(0,1) is
    # 0.29/sqrt(2048) = 0.006, i.e. 0.02 in std units; 0.15 is > 5 sigma for the W2 of both moments
    assert M.long_range_drift(stationary, window=8) < 0.15
    ramp = torch.linspace(0, 1, 32).view(32, 1, 1, 1)
    drifting = (stationary * 0.5 + ramp * 0.5).clamp(0, 1)
    assert M.long_range_drift(drifting, window=8) > 1.0
    latent = stationary.permute(0, 3, 1, 2)  # [T, C, H, W]
    assert M.long_range_drift(latent, window=8) == pytest.approx(M.long_range_drift(stationary, window=8))
    with pytest.raises(ValueError, match="window"):
        M.long_range_drift(stationary, window=0)


def test_lag_correlation_periodic():
    tt = torch.arange(48, dtype=torch.float32)
    g = torch.Generator().manual_seed(0)
    tex = torch.randn(1, 4, 8, 8, generator=g)
    video = torch.sin(2 * math.pi * tt / 8).view(-1, 1, 1, 1) * tex  # period 8 frames
    assert M.lag_correlation(video, 0, lag=8) > 0.99
    assert M.lag_correlation(video, 0, lag=4) < -0.99
    noise = torch.randn(48, 4, 8, 8, generator=g)
    # independent frames: r ~ N(0, 1/(47*256)); 0.05 is > 5 sigma
    assert abs(M.lag_correlation(noise, 0, lag=8)) < 0.05
    with pytest.raises(ValueError, match="lag"):
        M.lag_correlation(video, 0, lag=48)


# ------------------------------------------------------------------ plot
def test_render_metrics_plot_marks_borders():
    jumps = torch.ones(31)
    jumps[15] = 3.0  # border 16
    img = M.render_metrics_plot(jumps, [16], size=(64, 124))
    assert img.shape == (1, 64, 124, 3) and img.dtype == torch.float32
    assert float(img.min()) >= 0.0 and float(img.max()) <= 1.0
    border_rgb = torch.tensor(M._BORDER_BAR)
    bar_rgb = torch.tensor(M._BAR)
    is_border = (img[0] - border_rgb).abs().sum(-1) < 1e-4
    is_bar = (img[0] - bar_rgb).abs().sum(-1) < 1e-4
    cols = torch.nonzero(is_border.any(0)).flatten()
    # bar 15 of 31 over the 116 plot columns starting at x = 4
    assert cols.numel() > 0 and 4 + 15 * 116 // 31 <= int(cols.min()) and int(cols.max()) < 4 + 17 * 116 // 31
    assert int(is_border.sum(0).max()) > int(is_bar.sum(0).max())  # the border bar is the tallest
    plain = M.render_metrics_plot(jumps, [], size=(64, 124))
    assert not bool(((plain[0] - border_rgb).abs().sum(-1) < 1e-4).any())
    with pytest.raises(ValueError, match="size"):
        M.render_metrics_plot(jumps, [], size=(8, 8))


def test_to_image_layout():
    lat = torch.randn(2, 4, 5, 6, 7)  # [B, C, T, H, W]
    img = M.to_image_layout(lat, frame_axis=2, batch_index=1)
    assert img.shape == (5, 6, 7, 4)
    torch.testing.assert_close(img[2, :, :, 3], lat[1, 3, 2])
    with pytest.raises(ValueError, match="frame_axis"):
        M.to_image_layout(lat, frame_axis=1)


def test_streaming_reductions_match_direct():
    # T > the internal block size, so block boundaries are exercised
    g = torch.Generator().manual_seed(9)
    video = torch.rand(70, 6, 5, 3, generator=g)
    direct = (video[1:] - video[:-1]).abs().mean(dim=(1, 2, 3))
    torch.testing.assert_close(M.frame_jumps(video), direct)
    y = video.reshape(70, -1).double()
    y = y - y.mean(0)
    for lag in (1, 33, 69):
        a, b = y[:-lag], y[lag:]
        want = float((a * b).sum() / torch.sqrt((a * a).sum() * (b * b).sum()))
        assert M.lag_correlation(video, 0, lag) == pytest.approx(want, abs=1e-9)
    x = video.permute(0, 3, 1, 2).reshape(70, 3, -1).double()
    mu_a, sd_a = x[:40].mean((0, 2)), x[:40].std((0, 2), correction=0)
    mu_b, sd_b = x[-40:].mean((0, 2)), x[-40:].std((0, 2), correction=0)
    sd = x.std((0, 2), correction=0)
    want = float(torch.sqrt((((mu_a - mu_b) ** 2 + (sd_a - sd_b) ** 2) / sd**2).mean()))
    assert M.long_range_drift(video, window=40) == pytest.approx(want, rel=1e-6)
    hsv = M.rgb_to_hsv(video)
    scores = M.content_scores(video)
    torch.testing.assert_close(scores[1:], (hsv[1:] - hsv[:-1]).abs().mean(dim=(1, 2, 3)))
