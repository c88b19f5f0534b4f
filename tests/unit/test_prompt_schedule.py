"""Tests for nodes/algorithms/prompt_schedule.py (ZoLA sec. 4.5 multi-prompt, Gen-L condition
interpolation)."""

import pytest
from longanim.nodes.algorithms import context_schedule as cs
from longanim.nodes.algorithms import prompt_schedule as ps
from longanim.nodes.algorithms.prompt_schedule import PromptInterval as PI


def test_parse_forms_comments_and_blank_lines():
    text = """
    # a comment
    0-63: a cat walks

    64-: a cat sleeps
    10: a cat blinks, close-up: 4k
    """
    got = ps.parse_prompt_schedule(text, 100)
    assert got == [
        PI(0, 63, "a cat walks"), PI(64, 99, "a cat sleeps"), PI(10, 10, "a cat blinks, close-up: 4k")
    ]
    assert ps.parse_prompt_schedule("0 - 4 :x\n5- :y", 8) == [PI(0, 4, "x"), PI(5, 7, "y")]


@pytest.mark.parametrize(
    "text,pattern",
    [
        ("0-9: a\nten-19: b", r"line 2: cannot parse"),
        ("0-9: a\n\n10-19:   ", r"line 3: empty prompt"),
        ("# c\n9-3: a", r"line 2: start 9 is after end 3"),
        ("0-20: a", r"line 1: range 0-20 is outside \[0, 20\)"),
        ("0-19: a\n20-: b", r"line 2: start frame 20 is outside \[0, 20\)"),
        ("0-9: a\n-3: b", r"line 2: cannot parse"),
        ("0-4: a\n8-12: b\n15: c", r"without a prompt: 5-7, 13-14, 16-19"),
        ("# nothing\n\n", r"empty"),
    ],
)
def test_parse_errors_name_the_line(text, pattern):
    with pytest.raises(ValueError, match=pattern):
        ps.parse_prompt_schedule(text, 20)


def test_overlapping_intervals_allowed():
    got = ps.parse_prompt_schedule("0-11: a\n8-19: b", 20)
    assert got == [PI(0, 11, "a"), PI(8, 19, "b")]


def test_zola_prompt_for_window_majority_and_ties():
    iv = [PI(0, 63, "walk"), PI(64, 127, "sleep")]
    assert ps.zola_prompt_for_window(list(range(50, 66)), iv) == 0  # 14 vs 2 frames
    assert ps.zola_prompt_for_window(list(range(60, 76)), iv) == 1  # 4 vs 12
    assert ps.zola_prompt_for_window([56, 60, 64, 68], iv) == 1  # 2 vs 2: the middle frame 64 decides
    assert ps.zola_prompt_for_window([58, 60, 62, 64, 66, 68], iv) == 1  # 3 vs 3, middle frame 64
    same = [PI(0, 9, "a"), PI(0, 9, "b")]
    assert ps.zola_prompt_for_window([1, 2, 3], same) == 0  # identical counts and both hold the middle
    with pytest.raises(ValueError, match="no prompt interval"):
        ps.zola_prompt_for_window([200], iv)


def test_genl_prompt_weights_proportional_and_normalised():
    iv = [PI(0, 63, "walk"), PI(64, 127, "sleep"), PI(128, 200, "run")]
    assert ps.genl_prompt_weights(list(range(16)), iv) == [(0, 1.0)]
    assert ps.genl_prompt_weights(list(range(60, 76)), iv) == [(0, 0.25), (1, 0.75)]
    # a window sliding one frame further into "sleep" moves 1/16 of the weight (linear interpolation)
    w = [dict(ps.genl_prompt_weights(list(range(s, s + 16)), iv)).get(1, 0.0) for s in range(48, 65)]
    assert w == [i / 16 for i in range(17)]
    # skip windows and overlapping intervals: counts per interval, normalised
    over = [PI(0, 9, "a"), PI(5, 14, "b")]
    weights = ps.genl_prompt_weights([4, 6, 8, 10], over)
    assert weights == [(0, 3 / 6), (1, 3 / 6)] and sum(x for _, x in weights) == 1.0


def test_every_window_of_every_schedule_gets_a_prompt():
    iv = ps.parse_prompt_schedule("0-29: a\n30-59: b\n60-: c", 90)
    for schedule in cs.SCHEDULES:
        ws = cs.make_windows(schedule, 90, 2, 5, length=16, stride=8, overlap=4, max_skip=3, closed_loop=True)
        for w in ws:
            assert 0 <= ps.zola_prompt_for_window(w, iv) < 3
            assert abs(sum(x for _, x in ps.genl_prompt_weights(w, iv)) - 1.0) < 1e-12
