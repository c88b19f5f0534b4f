"""No window shorter than the floor (half the window length), whatever the schedule, length, stride, offset.

Cut alone, an end window holds ``length - stride + 1 .. length`` frames: with stride = length (the stride tooltip's
"no overlap") 1 frame, a still image for Wan. ``min_window_length`` is the floor; these are property tests over
lengths, strides, video lengths, offsets and seeds.
"""
import pytest
import torch
from longanim.nodes.algorithms import context_schedule as cs


def _check(ws, num_frames, length):
    floor = min((length + 1) // 2, num_frames)  # half the length, rounded up (not read from the code)
    assert sorted({f for w in ws for f in w}) == list(range(num_frames)), "every frame covered"
    assert all(floor <= len(w) <= length for w in ws), [len(w) for w in ws]
    assert all(len({b - a for a, b in zip(w, w[1:])}) <= 1 for w in ws), "constant spacing"


def test_floor_is_half_the_length():
    assert [cs.min_window_length(n) for n in (1, 2, 3, 16, 21)] == [1, 1, 2, 8, 11]


@pytest.mark.parametrize("length", [2, 3, 5, 8, 16, 21])
def test_tiled_windows_hold_the_floor_at_every_offset(length):
    floor = cs.min_window_length(length)
    for stride in range(1, length + 1):
        for num_frames in range(1, 3 * length + 3):
            for offset in range(stride):
                _check(cs.tiled_windows(num_frames, length, stride, offset, floor), num_frames, length)
                g = torch.Generator().manual_seed(offset)
                _check(cs.tiled_windows(num_frames, length, stride, offset, floor, g), num_frames, length)


def test_the_issue_case_stride_equal_to_length_no_longer_cuts_short_windows():
    """16-frame windows at stride 16: cut alone (min_length = 1), 5 of 16 offsets leave a window of 4 frames or
    fewer at 100 frames, one of them a single frame."""
    short = [min(len(w) for w in cs.tiled_windows(100, 16, 16, k)) for k in range(16)]
    assert sum(s <= 4 for s in short) == 5 and min(short) == 1
    for step in range(64):
        ws = cs.make_windows("zola", 100, step, 3, length=16, stride=16, overlap=0, max_skip=1)
        _check(ws, 100, 16)


@pytest.mark.parametrize("max_skip", [1, 2, 3])
def test_make_windows_truncate_holds_the_floor(max_skip):
    for length in (4, 8, 16):
        for stride in sorted({1, length // 2, 3 * length // 4, length} - {0}):
            for num_frames in (length + 1, 2 * length - 1, 5 * length + 3):
                for step in range(12):
                    ws = cs.make_windows("zola", num_frames, step, 11, length=length, stride=stride, overlap=0,
                                         max_skip=max_skip, ends="truncate")
                    _check(ws, num_frames, length)


@pytest.mark.parametrize("schedule", cs.SCHEDULES)
def test_every_schedule_holds_the_floor(schedule):
    """Every schedule the nodes offer, both ends and the spanning skip phase: ``batched`` with a remainder (e.g. 17
    frames in 16-frame windows) splits the video into near-equal windows instead of leaving a 1-frame one."""
    for length in (4, 8, 16):
        for num_frames in range(length + 1, 4 * length + 2):
            for stride in sorted({1, length // 2, length} - {0}):
                for ends in cs.ENDS:
                    for skip_until in (0.0, 0.5):
                        for step in range(3):
                            ws = cs.make_windows(schedule, num_frames, step, 5, length=length, stride=stride,
                                                 overlap=length // 4, max_skip=1, ends=ends,
                                                 skip_until=skip_until, num_steps=3)
                            floor = min((length + 1) // 2, num_frames)
                            assert sorted({f for w in ws for f in w}) == list(range(num_frames))
                            assert all(floor <= len(w) <= length for w in ws), (num_frames, length, stride,
                                                                               [len(w) for w in ws])


def test_batched_is_a_partition_of_near_equal_windows():
    assert cs.batched_windows(64, 16) == [list(range(s, s + 16)) for s in (0, 16, 32, 48)]
    ws = cs.batched_windows(17, 16)
    assert [len(w) for w in ws] == [9, 8] and sum(ws, []) == list(range(17))
    for num_frames in range(17, 80):
        lens = [len(w) for w in cs.batched_windows(num_frames, 16)]
        assert sum(lens) == num_frames and max(lens) - min(lens) <= 1 and len(lens) == -(-num_frames // 16)
