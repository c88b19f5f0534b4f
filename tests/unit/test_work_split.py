"""Tests for nodes/algorithms/work_split.py (a step's window batches over several devices) and co_denoise's
``evaluate_batches`` hook (Gen-L-Video sec. 3.2: windows of one step are independent, fusion joins them)."""

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from longanim.nodes.algorithms import context_schedule as cs
from longanim.nodes.algorithms import work_split as ws


def test_equal_devices_take_equal_shares_of_equal_windows():
    plan = ws.plan_step([16] * 8, conds=2, speeds=[1.0, 1.0])
    assert plan.mode == "window"
    assert plan.batches_per_device(2) == [4, 4]
    assert plan.time == pytest.approx(8 * 16 * 2 / 2)


def test_relative_speed_gives_the_faster_device_more_windows():
    plan = ws.plan_step([16] * 6, conds=2, speeds=[2.0, 1.0])
    assert plan.batches_per_device(2) == [4, 2]
    assert plan.time == pytest.approx(4 * 32 / 2)


def test_window_length_is_balanced_not_window_count():
    # three full windows and two half windows: 4 units of work each side (frames x conds)
    plan = ws.plan_step([16, 16, 16, 8, 8], conds=1, speeds=[1.0, 1.0])
    loads = [sum(f for f, d in zip([16, 16, 16, 8, 8], plan.device_of, strict=True) if d == k) for k in range(2)]
    assert loads == [32, 32]


def test_without_cfg_the_cond_split_cannot_help():
    # one cond per window: the host's cond split keeps one device busy, a window split uses both
    plan = ws.plan_step([16] * 4, conds=1, speeds=[1.0, 1.0])
    assert plan.cond_time == pytest.approx(64)
    assert plan.window_time == pytest.approx(32)
    assert plan.mode == "window"


def test_an_odd_window_is_cond_split_after_the_window_split():
    # 3 windows, 2 devices, CFG: 2 windows side by side then the third's cond / uncond side by side = 3 units,
    # a pure window split takes 4
    plan = ws.plan_step([16, 16, 16], conds=2, speeds=[1.0, 1.0])
    assert plan.window_time == pytest.approx(64)
    assert plan.cond_time == pytest.approx(48)
    assert plan.time == pytest.approx(48)
    assert plan.mode == "both"
    assert plan.device_of == (0, 1, None)  # the last window in schedule order is the cond-split one


def test_more_devices_than_conds_prefers_windows():
    # 4 devices, CFG: a cond split keeps 2 busy; 8 windows window-split keep 4 busy
    plan = ws.plan_step([16] * 8, conds=2, speeds=[1.0] * 4)
    assert plan.mode == "window"
    assert plan.batches_per_device(4) == [2, 2, 2, 2]


def test_cond_split_time_follows_the_hosts_scheduler():
    # ceil(2/2) = 1 cond per device, speeds not consulted: the slow device sets the time
    assert ws.cond_split_time(10, 2, [4.0, 1.0]) == pytest.approx(10)
    assert ws.cond_split_time(10, 2, [1.0]) == pytest.approx(20)
    assert ws.cond_split_time(10, 3, [1.0, 1.0]) == pytest.approx(20)  # 2 conds on the first device


def test_one_device_runs_everything_on_it():
    plan = ws.plan_step([8, 8, 4], conds=2, speeds=[1.0])
    assert plan.device_of == (0, 0, 0)
    assert plan.time == pytest.approx(40)


def test_bad_speeds_are_refused():
    with pytest.raises(ValueError, match="relative speed"):
        ws.plan_step([8], conds=2, speeds=[1.0, 0.0])
    with pytest.raises(ValueError, match="at least one device"):
        ws.plan_step([8], conds=2, speeds=[])
    with pytest.raises(ValueError, match="conds"):
        ws.plan_step([8], conds=0, speeds=[1.0])


def _brute_makespan(costs, speeds):
    best = float("inf")
    for assign in itertools.product(range(len(speeds)), repeat=len(costs)):
        loads = [0.0] * len(speeds)
        for c, d in zip(costs, assign, strict=True):
            loads[d] += c / speeds[d]
        best = min(best, max(loads))
    return best


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(1, 24), min_size=1, max_size=7), st.integers(1, 3),
       st.lists(st.sampled_from([0.5, 1.0, 1.5, 2.0]), min_size=1, max_size=3))
def test_plan_is_never_worse_than_either_pure_split_and_lpt_is_near_optimal(frames, conds, speeds):
    plan = ws.plan_step(frames, conds, speeds)
    assert len(plan.device_of) == len(frames)
    assert all(d is None or 0 <= d < len(speeds) for d in plan.device_of)
    assert plan.time <= min(plan.window_time, plan.cond_time) + 1e-9
    costs = [f * conds for f in frames]
    _, lpt = ws.lpt_assign(costs, speeds)
    # LPT on related machines: within a factor 2 of the optimum (Gonzalez et al. 1977 bound < 2 for any speeds)
    assert lpt <= 2 * _brute_makespan(costs, speeds) + 1e-9
    # the estimate of the chosen plan is what its placement costs
    placed = [0.0] * len(speeds)
    for c, d in zip(costs, plan.device_of, strict=True):
        if d is not None:
            placed[d] += c / speeds[d]
    rest = sum(ws.cond_split_time(f, conds, speeds) for f, d in zip(frames, plan.device_of, strict=True)
               if d is None)
    assert plan.time == pytest.approx(max(placed) + rest)


def test_co_denoise_with_evaluate_batches_is_bit_identical():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 30, 3, generator=g)
    windows = cs.make_windows("static", 30, 0, 0, length=8, stride=4, overlap=3, max_skip=1) + [[0, 5, 9]]
    weight = torch.randn(3, 3, generator=g)

    def evaluate(batch):
        return [torch.tanh(x.index_select(1, torch.tensor(w)) @ weight) * (1 + 0.01 * len(w)) for w in batch]

    seen = []

    def evaluate_batches(batches):
        seen.append(len(batches))
        for b in reversed(batches):  # computed in another order, as several devices would finish them
            evaluate(b)
        for b in batches:
            yield evaluate(b)

    ref = cs.co_denoise(x, windows, 1, evaluate, weights="pyramid", max_batch=2)
    out = cs.co_denoise(x, windows, 1, lambda b: pytest.fail("evaluate must not be called"), weights="pyramid",
                        max_batch=2, evaluate_batches=evaluate_batches)
    assert len(seen) == 1  # every batch of the step handed over at once
    assert torch.equal(ref, out)
