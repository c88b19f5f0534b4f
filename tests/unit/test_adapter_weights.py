"""ZoLA sec. 4.5 per-window adapter weights (Eq. 4.5): w_a = alpha_a * |window ∩ tagged_a| / |window|."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from longanim.nodes.algorithms import adapter_weights as aw

IV = aw.FrameInterval


def test_parse_forms():
    assert aw.parse_intervals("0-31, 64-95") == [IV(0, 31), IV(64, 95)]
    assert aw.parse_intervals("7; 10 - 12\n40-") == [IV(7, 7), IV(10, 12), IV(40, None)]


@pytest.mark.parametrize("text,needle", [("", "no frame interval"), ("a-3", "cannot read"), ("5-2", "before"),
                                         ("-3", "cannot read"), ("1-2-3", "cannot read")])
def test_parse_errors_name_the_input(text, needle):
    with pytest.raises(ValueError, match=f"frame_intervals: .*{needle}"):
        aw.parse_intervals(text, "frame_intervals")


def test_paper_example_half_left_half_up():
    # ZoLA: a window with half its frames tagged 'left' and half 'up' gives both adapters alpha/2
    left, up = (0.8, [IV(0, 7)]), (0.8, [IV(8, 15)])
    assert aw.window_adapter_weights(list(range(4, 12)), [left, up], 16) == [0.4, 0.4]
    assert aw.window_adapter_weights(list(range(0, 8)), [left, up], 16) == [0.8, 0.0]


def test_untagged_window_gets_no_adapter_and_skip_windows_count_entries():
    ad = [(1.0, [IV(0, 3)])]
    assert aw.window_adapter_weights([8, 9, 10, 11], ad, 16) == [0.0]
    # a ZoLA skip window [0, 2, 4, 6]: frames 0 and 2 are tagged -> 2/4
    assert aw.window_adapter_weights([0, 2, 4, 6], ad, 16) == [0.5]


def test_overlapping_tags_of_one_adapter_count_once_and_adapters_are_independent():
    a = (1.0, [IV(0, 5), IV(3, 7)])  # union 0..7
    b = (2.0, [IV(4, 11)])
    w = aw.window_adapter_weights(list(range(0, 8)), [a, b], 16)
    assert w == [1.0, 2.0 * 4 / 8]


def test_clamping_and_refusal():
    ad = [(1.0, [IV(12, None)]), (1.0, [IV(14, 999)])]
    assert aw.resolve_intervals(ad[1][1], 16) == [(14, 15)]
    assert aw.window_adapter_weights(list(range(8, 16)), ad, 16) == [0.5, 0.25]
    with pytest.raises(ValueError, match="adapter 1 frames: .*past the last latent frame"):
        aw.window_adapter_weights([0, 1], [(1.0, [IV(20, 30)])], 16)
    with pytest.raises(ValueError, match="strength"):
        aw.window_adapter_weights([0], [(float("nan"), [IV(0, 0)])], 4)


def test_whole_video_window_is_fraction_of_all_frames():
    # the no-windows fallback: one window = all frames -> alpha * tagged fraction of the video
    ad = [(0.9, aw.parse_intervals("0-9, 30-39"))]
    assert aw.window_adapter_weights(list(range(40)), ad, 40) == [pytest.approx(0.9 * 20 / 40)]


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 40), st.data())
def test_matches_mask_definition(num_frames, data):
    """Property: equals alpha * mean(tag_mask[window]) and lies in [min(0, alpha), max(0, alpha)]."""
    n_iv = data.draw(st.integers(1, 3))
    ivs = []
    for _ in range(n_iv):
        a = data.draw(st.integers(0, num_frames - 1))
        b = data.draw(st.one_of(st.none(), st.integers(a, a + 50)))
        ivs.append(IV(a, b))
    scale = data.draw(st.floats(-2, 2))
    window = data.draw(st.lists(st.integers(0, num_frames - 1), min_size=1, max_size=20))
    mask = aw.tag_mask(ivs, num_frames)
    (w,) = aw.window_adapter_weights(window, [(scale, ivs)], num_frames)
    assert w == pytest.approx(scale * sum(mask[f] for f in window) / len(window))
    assert min(0, scale) - 1e-12 <= w <= max(0, scale) + 1e-12
