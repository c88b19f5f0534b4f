"""Object-level metrics (nodes/algorithms/world_metrics.py) against the synthetic world's known truth."""
import math
import sys
from pathlib import Path

import pytest
import torch
from longanim.nodes.algorithms import world_metrics as wm

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import synthworld  # noqa: E402

WORLD = synthworld.World()


def _clip(seed, frames=48, **kw):
    lat, traj, bounce, scene = synthworld.clip(seed, frames, WORLD, **kw)
    return lat, traj, bounce, scene


def test_code_maps_recover_each_object_and_centroids_are_exact():
    for seed in range(6):
        lat, traj, _, scene = _clip(seed)
        det = wm.detect_blobs(wm.code_maps(lat, synthworld.codes()))
        # the Gaussian's log-parabola vertex is exact: only float32 rounding is left
        err = (det["centroid"][:, scene.colours] - traj).norm(dim=-1)
        assert float(err.max()) < 1e-4
        absent = [c for c in range(len(synthworld.PALETTE)) if c not in scene.colours]
        assert int(det["count"][:, absent].sum()) == 0
        assert bool((det["count"][:, scene.colours] == 1).all())


def test_code_maps_layouts_agree():
    lat, *_ = _clip(0, 8)
    a = wm.code_maps(lat, synthworld.codes(), channel_axis=0)
    b = wm.code_maps(lat.movedim(0, 1), synthworld.codes(), channel_axis=1)
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="codes must be"):
        wm.code_maps(lat, synthworld.codes()[:, :8])


def test_truth_scores_perfectly():
    for seed in range(6):
        lat, _, _, scene = _clip(seed, 64)
        r = wm.world_report(wm.code_maps(lat, synthworld.codes()), scene.colours, borders=[16, 32, 48], window=16)
        assert r["count_accuracy"] == 1.0 and r["identity"] == 1.0 and r["tracks"] == 1.0
        assert r["accel_p90"] < 1e-4
        assert r["drift_peak"] < 0.05  # blob peaks sit between pixels: a few % of sampling variation
        assert abs(r["jump_ratio"] - 1.0) < 1e-3  # constant speed: borders look like the inside


def test_missing_and_extra_objects_lower_count_and_identity_exactly():
    lat, traj, _, scene = _clip(3, 40, n_objects=2)
    codes = synthworld.codes()
    maps = wm.code_maps(lat, codes)
    bad = maps.clone()
    gone = scene.colours[0]
    bad[10:14, gone] = 0  # object missing in 4 of 40 frames
    det = wm.detect_blobs(bad)
    assert wm.count_accuracy(det["count"], scene.colours) == pytest.approx(36 / 40)
    assert wm.identity_persistence(det["count"], scene.colours) == pytest.approx(36 / 40)
    assert wm.track_persistence(det, scene.colours) == pytest.approx(0.5)
    # a colour swap keeps the number of objects but not what the prompt names: both count and identity drop
    other = next(c for c in range(4) if c not in scene.colours)
    sw = maps.clone()
    sw[20:, other] = sw[20:, gone]
    sw[20:, gone] = 0
    det = wm.detect_blobs(sw)
    assert wm.count_accuracy(det["count"], scene.colours) == pytest.approx(20 / 40)
    assert wm.identity_persistence(det["count"], scene.colours) == pytest.approx(20 / 40)


def test_count_accuracy_counts_the_named_colours_and_their_number():
    """Green and yellow balls are two balls, but not the "red blue" the prompt names; two red balls are what
    "red red" names and not what "red" names."""
    red, green, blue, yellow = (synthworld.PALETTE.index(c) for c in ("red", "green", "blue", "yellow"))
    count = torch.zeros(10, 4, dtype=torch.long)
    count[:, [green, yellow]] = 1
    assert wm.count_accuracy(count, [red, blue]) == 0.0
    count[:4] = 0
    count[:4, [red, blue]] = 1
    assert wm.count_accuracy(count, [red, blue]) == pytest.approx(0.4)
    two = torch.zeros(5, 4, dtype=torch.long)
    two[:, red] = 2
    assert wm.count_accuracy(two, [red, red]) == 1.0
    assert wm.count_accuracy(two, [red]) == 0.0
    assert wm.count_accuracy(two, two) == 1.0  # a [T, K] tensor of counts


def test_split_object_counts_as_two():
    lat, _, _, scene = _clip(1, 4, n_objects=1)
    maps = wm.code_maps(lat, synthworld.codes())
    c = scene.colours[0]
    maps[:, c] = 0
    maps[:, c, 1, 1] = 1.0
    maps[:, c, 5, 5] = 1.0
    det = wm.detect_blobs(maps)
    assert bool((det["count"][:, c] == 2).all())
    assert wm.count_accuracy(det["count"], scene.colours) == 0.0


def test_connected_components_eight_connectivity():
    m = torch.zeros(1, 5, 5, dtype=torch.bool)
    m[0, 0, 0] = m[0, 1, 1] = True  # diagonal neighbours: one region
    m[0, 4, 4] = True
    lab = wm.connected_components(m)
    assert lab[0, 0, 0] == lab[0, 1, 1] != lab[0, 4, 4]
    assert len(torch.unique(lab[m])) == 2
    assert int(lab[~m].abs().sum()) == 0


def test_bounces_are_excluded_and_teleports_are_not():
    # a fast object bounces often: raw accelerations are large at bounces, zero elsewhere
    lat, traj, bounce, scene = _clip(5, 64, n_objects=1)
    assert int(bounce.sum()) >= 2
    det = wm.detect_blobs(wm.code_maps(lat, synthworld.codes()))
    cen = det["centroid"][:, scene.colours]
    raw = wm.accelerations(cen, exclude_bounces=False)
    assert float(raw.max()) > 0.2
    assert float(wm.accelerations(cen).max()) < 1e-4
    # a jump of 1.5 px along the motion in the middle of a straight stretch is not a bounce
    t = next(i for i in range(20, 60) if not bounce[i - 3:i + 4].any())
    jumped = cen.clone()
    jumped[t:, 0, 1] += 1.5 * torch.sign(cen[t, 0, 1] - cen[t - 1, 0, 1])
    assert float(wm.accelerations(jumped).max()) > 1.0


def test_border_jumps_see_independent_windows():
    # each 16-frame window is a different random scene of the same colours: borders jump, insides do not
    colours = [0, 2]
    parts = [synthworld.clip(100 + w, 16, WORLD, colours=colours)[0] for w in range(4)]
    stitched = torch.cat(parts, dim=1)
    det = wm.detect_blobs(wm.code_maps(stitched, synthworld.codes()))
    j = wm.border_jumps(det["centroid"][:, colours], [16, 32, 48])
    assert j["border"] > 3 * j["inside"]
    lat, _, _, scene = synthworld.clip(7, 64, WORLD, colours=colours)
    det = wm.detect_blobs(wm.code_maps(lat, synthworld.codes()))
    assert abs(wm.border_jumps(det["centroid"][:, colours], [16, 32, 48])["ratio"] - 1) < 1e-3
    with pytest.raises(ValueError, match="borders"):
        wm.border_jumps(det["centroid"], [64])


def test_window_drift_measures_a_fade():
    lat, _, _, scene = _clip(2, 48)
    fade = torch.linspace(1.0, 0.6, 48).view(1, -1, 1, 1)
    det = wm.detect_blobs(wm.code_maps(lat * fade, synthworld.codes()))
    d = wm.window_drift(det, 8)
    truth = wm.window_drift(wm.detect_blobs(wm.code_maps(lat, synthworld.codes())), 8)
    # mean fade of the last 8 frames vs the first 8: (0.6 + 0.634) / 2 / ((1 + 0.966) / 2) ~ 0.63
    assert d["peak"] > truth["peak"] + 0.3
    assert math.isnan(wm.window_drift(wm.detect_blobs(torch.zeros(8, 4, 8, 8)), 4)["peak"])


def test_palette_maps_track_rgb_renders():
    for seed in range(3):
        _, traj, _, scene = _clip(seed, 12, n_objects=1)
        rgb = synthworld.render_rgb(traj, scene.colours, WORLD)
        maps = wm.palette_maps(rgb, synthworld.PALETTE_RGB, synthworld.BACKGROUND_RGB)
        det = wm.detect_blobs(maps)
        s = synthworld.PIXELS_PER_LATENT
        pix = (det["centroid"][:, scene.colours] + 0.5) / s - 0.5
        # pixel-scale Gaussians clamped to [0, 1] near the peak: within a tenth of a latent pixel
        assert float((pix - traj).norm(dim=-1).max()) < 0.1
        assert wm.identity_persistence(det["count"], scene.colours) == 1.0


def test_decoder_matrix_is_the_render():
    lat, traj, _, scene = _clip(4, 6)
    dec = synthworld.decode_rgb(lat, scale=1)
    ref = synthworld.render_rgb(traj, scene.colours, WORLD, scale=1)
    assert float((dec - ref).abs().max()) < 1e-5


def test_bad_input_names_the_fix():
    with pytest.raises(ValueError, match=r"\[T, K, H, W\]"):
        wm.detect_blobs(torch.zeros(4, 8, 8))
    with pytest.raises(ValueError, match="expected colours"):
        wm.count_accuracy(torch.zeros(4, 4, dtype=torch.long), [7])
