"""Long-range scene consistency figures (world_metrics.window_colour_sets / scene_consistency): exact on
hand-made counts, perfect on the synthetic world's own long videos, and low on a video whose windows chose
their colours independently."""
import sys
from pathlib import Path

import pytest
import torch
from longanim.nodes.algorithms import world_metrics as wm

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import synthworld  # noqa: E402


def _count(rows):
    return torch.tensor(rows, dtype=torch.long)


def test_colour_sets_take_colours_present_in_half_the_block():
    # 2 blocks of 4 frames (+ 1 frame left over, ignored); colours 0..2
    count = _count([[1, 0, 0], [1, 1, 0], [1, 0, 0], [0, 1, 1],   # colour 0: 3/4, colour 1: 2/4, colour 2: 1/4
                    [0, 0, 2], [0, 0, 1], [0, 0, 0], [0, 0, 0],   # colour 2: 2/4 (two objects count as present)
                    [1, 1, 1]])
    assert wm.window_colour_sets(count, 4) == [frozenset({0, 1}), frozenset({2})]
    assert wm.window_colour_sets(count, 4, min_share=0.75) == [frozenset({0}), frozenset()]
    assert len(wm.window_colour_sets(count, 1)) == 9


def test_scene_consistency_figures_are_exact():
    a, b, c, e = frozenset({0}), frozenset({0, 2}), frozenset({3}), frozenset()
    r = wm.scene_consistency([e, a, a, b, a, c, a])  # first non-empty block: a; later non-empty: a b a c a
    assert r == dict(agreement=3 / 5, distinct=3.0, last_equals_first=1.0, empty=1 / 7)
    r = wm.scene_consistency([a, a, a, e])  # the last block lost its objects: not the first scene
    assert r == dict(agreement=1.0, distinct=1.0, last_equals_first=0.0, empty=0.25)
    # a video with no objects, or one non-empty block, never scores as consistent
    assert wm.scene_consistency([e, e, e]) == dict(agreement=0.0, distinct=0.0, last_equals_first=0.0, empty=1.0)
    assert wm.scene_consistency([e, b, e])["agreement"] == 0.0


@pytest.mark.parametrize("frames", [128, 256, 512])
def test_the_worlds_own_long_videos_are_one_scene(frames):
    """The bound: a video that keeps its scene (the world simulated for ``frames`` frames, 1-2 balls bouncing)
    scores agreement 1, one colour set, last = first, no empty block: the detector itself loses no colour."""
    for seed in range(4):
        lat, _, _, scene = synthworld.clip(seed, frames)
        det = wm.detect_blobs(wm.code_maps(lat, synthworld.codes()))
        sets = wm.window_colour_sets(det["count"], 16)
        assert sets == [frozenset(scene.colours)] * (frames // 16)
        assert wm.scene_consistency(sets) == dict(agreement=1.0, distinct=1.0, last_equals_first=1.0, empty=0.0)


def test_windows_with_their_own_scenes_score_low():
    """16-frame windows of independently drawn scenes (what isolated windows do): agreement is about the chance
    that two draws pick the same colours (1/14 for this world: 4 one-ball + 6 two-ball scenes, drawn 1 or 2 balls
    evenly); the figures are exact for the seeds drawn here."""
    lats, truth = [], []
    for w in range(16):
        lat, _, _, scene = synthworld.clip(1000 + w, 16)
        lats.append(lat)
        truth.append(frozenset(scene.colours))
    det = wm.detect_blobs(wm.code_maps(torch.cat(lats, dim=1), synthworld.codes()))
    sets = wm.window_colour_sets(det["count"], 16)
    assert sets == truth
    r = wm.scene_consistency(sets)
    assert r["agreement"] == sum(s == truth[0] for s in truth[1:]) / 15 < 0.5
    assert r["distinct"] == len(set(truth)) > 3


def test_bad_input_names_the_fix():
    with pytest.raises(ValueError, match="detect_blobs"):
        wm.window_colour_sets(torch.zeros(4), 2)
    with pytest.raises(ValueError, match="window"):
        wm.window_colour_sets(torch.zeros(4, 3), 5)
    with pytest.raises(ValueError, match="min_share"):
        wm.window_colour_sets(torch.zeros(4, 3), 2, min_share=0.0)
    with pytest.raises(ValueError, match="at least one block"):
        wm.scene_consistency([])
