"""Tests for nodes/algorithms/prompt_schedule.py (ZoLA sec. 4.5 multi-prompt, Gen-L condition
interpolation)."""

import pytest
import torch
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


# --------------------------------------------------------------------------------------------------
# Gen-L condition interpolation of the conditioning tensors
# --------------------------------------------------------------------------------------------------


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _attention(q, kv):
    """Softmax cross-attention of queries [B, Q, C] on keys = values = kv [B, L, C] (float64)."""
    q, kv = q.double(), kv.double()
    w = torch.softmax(q @ kv.transpose(1, 2) / kv.shape[-1] ** 0.5, dim=-1)
    return w @ kv


def test_common_token_length_is_the_hosts_lcm_rule():
    assert ps.common_token_length([77]) == 77
    assert ps.common_token_length([77, 154]) == 154
    assert ps.common_token_length([154, 231]) == 462  # 154 x 3, 231 x 2: within the host's limit of 4
    assert ps.common_token_length([77, 308]) == 308  # x 4: allowed
    with pytest.raises(ValueError, match=r"token lengths \[77, 385\] cannot be interpolated.*repeats the shortest 5"):
        ps.common_token_length([77, 385])  # x 5: the host refuses to batch these too
    with pytest.raises(ValueError, match="least common multiple, 6006"):
        ps.common_token_length([77, 78])
    assert ps.common_token_length([77, 385], max_repeat=5) == 385
    for bad in ([], [0], [77, 2.5], [True]):
        with pytest.raises(ValueError, match="token lengths must be positive ints"):
            ps.common_token_length(bad)
    with pytest.raises(ValueError, match="max_repeat must be"):
        ps.common_token_length([77], max_repeat=0)


def test_pad_tokens_repeats_along_the_token_axis():
    c = torch.randn(2, 3, 5, generator=_gen(0))
    assert ps.pad_tokens(c, 3) is c
    assert torch.equal(ps.pad_tokens(c, 9), torch.cat([c, c, c], dim=1))
    with pytest.raises(ValueError, match="multiple of the cond's 3 tokens"):
        ps.pad_tokens(c, 7)
    with pytest.raises(ValueError, match=r"\[batch, tokens, channels\]"):
        ps.pad_tokens(c[0], 6)


def test_interpolate_conditioning_same_length_is_the_weighted_sum():
    a, b = torch.randn(1, 77, 16, generator=_gen(1)), torch.randn(1, 77, 16, generator=_gen(2))
    mix = ps.interpolate_conditioning([a, b], [0.25, 0.75])
    assert mix.shape == a.shape and mix.dtype == torch.float32
    # float32: one rounding per product and per sum on values of magnitude < 10 -> |error| < 1e-5
    assert float((mix - (0.25 * a + 0.75 * b)).abs().max()) < 1e-5
    assert torch.equal(ps.interpolate_conditioning([a, b], [2.0, 6.0]), mix)  # weights are normalised
    assert torch.equal(ps.interpolate_conditioning([a, b], [1.0, 0.0]), a)
    assert torch.equal(ps.interpolate_conditioning([a], [1.0]), a)


def test_interpolate_conditioning_pads_different_lengths_like_the_host():
    short, long = torch.randn(1, 77, 16, generator=_gen(3)), torch.randn(1, 154, 16, generator=_gen(4))
    mix = ps.interpolate_conditioning([short, long], [0.5, 0.5])
    assert mix.shape == (1, 154, 16)
    expected = 0.5 * torch.cat([short, short], dim=1) + 0.5 * long
    assert float((mix - expected).abs().max()) < 1e-5
    # a weight of 1 on one prompt gives exactly that prompt, padded; the repetition is invisible to
    # softmax cross-attention (each key/value pair counted twice, the weights renormalise): float64 rounding
    q = torch.randn(1, 10, 16, generator=_gen(5))
    only_short = ps.interpolate_conditioning([short, long], [1.0, 0.0])
    assert torch.equal(only_short, torch.cat([short, short], dim=1))
    assert float((_attention(q, only_short) - _attention(q, short)).abs().max()) < 1e-12
    assert torch.equal(ps.interpolate_conditioning([short, long], [0.0, 1.0]), long)
    # three prompts: 77, 154 and 231 tokens -> lcm 462 (77 x 6 is over the host's 4: refused)
    third = torch.randn(1, 231, 16, generator=_gen(6))
    with pytest.raises(ValueError, match="cannot be interpolated"):
        ps.interpolate_conditioning([short, long, third], [1, 1, 1])
    mix2 = ps.interpolate_conditioning([long, third], [0.5, 0.5])
    assert mix2.shape == (1, 462, 16)
    assert float((mix2 - (0.5 * long.repeat(1, 3, 1) + 0.5 * third.repeat(1, 2, 1))).abs().max()) < 1e-5


def test_interpolate_conditioning_low_precision_accumulates_in_float32():
    a, b = torch.randn(1, 77, 8, generator=_gen(7)), torch.randn(1, 154, 8, generator=_gen(8))
    mix = ps.interpolate_conditioning([a.half(), b.half()], [0.3, 0.7])
    assert mix.dtype == torch.float16
    ref = ps.interpolate_conditioning([a.half().float(), b.half().float()], [0.3, 0.7])
    assert torch.equal(mix, ref.half())  # same float32 sum, one rounding to half at the end


@pytest.mark.parametrize(
    "conds,weights,match",
    [
        ([torch.zeros(1, 77, 8), torch.zeros(1, 77, 4)], [0.5, 0.5], r"batch and channel sizes must match"),
        ([torch.zeros(1, 77, 8), torch.zeros(2, 77, 8)], [0.5, 0.5], r"batch and channel sizes must match"),
        ([torch.zeros(77, 8)], [1.0], r"\[batch, tokens, channels\]"),
        ([torch.zeros(1, 77, 8), torch.zeros(1, 77, 8)], [0.5], r"weights has 1 values for 2 conds"),
        ([torch.zeros(1, 77, 8), torch.zeros(1, 77, 8)], [1.0, -0.5], r"weights must be finite, >= 0"),
        ([torch.zeros(1, 77, 8), torch.zeros(1, 77, 8)], [0.0, 0.0], r"not all 0"),
        ([torch.zeros(1, 77, 8), torch.zeros(1, 77, 8, dtype=torch.long)], [1, 1], r"conds\[1\] must be a floating"),
        ([], [], r"at least one tensor"),
    ],
)
def test_interpolate_conditioning_errors_name_the_problem(conds, weights, match):
    with pytest.raises(ValueError, match=match):
        ps.interpolate_conditioning(conds, weights)


def test_interpolate_pooled():
    a, b = torch.randn(1, 1280, generator=_gen(9)), torch.randn(1, 1280, generator=_gen(10))
    mix = ps.interpolate_pooled([a, b], [0.75, 0.25])
    assert float((mix - (0.75 * a + 0.25 * b)).abs().max()) < 1e-5
    assert torch.equal(ps.interpolate_pooled([a, b], [0, 1]), b)
    # SDXL's y = [pooled, size embeddings]: identical size embeddings pass through unchanged (up to rounding)
    sizes = torch.randn(1, 1536, generator=_gen(11))
    y = ps.interpolate_pooled([torch.cat([a, sizes], 1), torch.cat([b, sizes], 1)], [0.75, 0.25])
    assert float((y[:, 1280:] - sizes).abs().max()) < 1e-6
    with pytest.raises(ValueError, match=r"pooled\[1\] has shape \(1, 768\)"):
        ps.interpolate_pooled([a, torch.zeros(1, 768)], [0.5, 0.5])


def test_genl_window_sliding_across_prompts_of_different_lengths():
    # the boundary's use: weights from genl_prompt_weights, conds of 77 and 154 tokens
    iv = [PI(0, 63, "walk"), PI(64, 127, "a long prompt of two chunks")]
    conds = [torch.randn(1, 77, 8, generator=_gen(12)), torch.randn(1, 154, 8, generator=_gen(13))]
    for start in (40, 56, 60, 64):
        w = ps.genl_prompt_weights(list(range(start, start + 16)), iv)
        mix = ps.interpolate_conditioning([conds[i] for i, _ in w], [x for _, x in w])
        if len(w) == 1:  # the window lies inside one interval: that prompt itself
            assert torch.equal(mix, conds[w[0][0]])
        else:
            frac = dict(w)[1]
            expected = (1 - frac) * conds[0].repeat(1, 2, 1) + frac * conds[1]
            assert mix.shape == (1, 154, 8) and float((mix - expected).abs().max()) < 1e-5


def test_video_frame_ranges_map_to_latent_frames_of_a_causal_vae():
    """Wan (ratio 4): latent 0 = video frame 0, latent k = frames 4k-3..4k; adjacent video ranges stay adjacent."""
    from longanim.nodes.algorithms.prompt_schedule import PromptInterval, video_intervals_to_latent

    iv = ps.parse_prompt_schedule("0-40: a\n41-80: b\n81-: c", 161)
    got = video_intervals_to_latent(iv, 4, 161)
    assert got == [PromptInterval(0, 10, "a"), PromptInterval(11, 20, "b"), PromptInterval(21, 40, "c")]
    # a boundary inside a latent frame: that latent goes to the range holding its first video frame
    got = video_intervals_to_latent(ps.parse_prompt_schedule("0-38: a\n39-: b", 81), 4, 81)
    assert got == [PromptInterval(0, 10, "a"), PromptInterval(11, 20, "b")]
    covered = sorted(f for g in got for f in range(g.start, g.end + 1))
    assert covered == list(range(21))
    assert video_intervals_to_latent(iv, 1, 161) == list(iv), "ratio 1 is the identity"
    with pytest.raises(ValueError, match=r"38-39 .* video frames 37-40 are latent frame 10"):
        video_intervals_to_latent(ps.parse_prompt_schedule("0-37: a\n38-39: b\n40-: c", 81), 4, 81)
