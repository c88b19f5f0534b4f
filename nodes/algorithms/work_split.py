"""Spreading one sampling step's window batches over several devices: which device runs which batch.

Within one denoising step the windows are independent (Gen-L-Video sec. 3.2: every window is denoised from the
same x_t, and only the fusion, Eq. 5, joins them), so a step's batches of windows can run on different devices and
be fused afterwards. Two ways to use N devices exist for one step:

* **window split**: whole batches (every conditioning of a window) go to different devices;
* **cond split**: each batch runs on all devices at once, its conditionings (cond / uncond) spread over them,
  one batch after the other (what the host's multi-GPU engine does for any model call).

Cost model: a batch costs ``frames x conds`` frame-evaluations (``frames`` = the model frames of its windows, so
windows of different lengths weigh what they cost); a device of relative speed ``s`` runs ``c`` frame-evaluations
in ``c / s``. The estimate of a step is the makespan (the time of its slowest device), in these units:

* window split: the batches are placed largest first, each on the device where it would finish first (longest
  processing time first, LPT: at most 4/3 of the optimal makespan, Graham 1969), every device running its batches
  in schedule order;
* cond split: per batch, the host's scheduler puts ``ceil(C / N)`` conditionings on each device in device order
  without looking at the speeds (so with C = 2 conds at most two devices work), the batch taking as long as its
  slowest used device; batches add up;
* both: the ``k`` largest batches window-split, the others cond-split afterwards; every ``k`` from 0 (all cond
  split) to B (all window split) is estimated and the fastest is taken, ties going to more window split (fewer
  synchronisations per step).

The plan never changes which windows share a batch or the order in which outputs are fused (the caller fuses in
schedule order), so the result of a step does not depend on the plan.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class StepPlan:
    """Where each batch of a step runs, and the estimates the choice was made on (frame-evaluations / speed).

    ``device_of[b]``: index of the device running batch ``b`` whole (window split), or ``None`` for a batch whose
    conditionings are spread over all devices (cond split, after the window-split batches).
    """

    device_of: tuple[int | None, ...]
    time: float  # estimate of the chosen plan
    window_time: float  # every batch window-split
    cond_time: float  # every batch cond-split

    @property
    def mode(self) -> str:
        split = [d is not None for d in self.device_of]
        return "window" if all(split) else "cond" if not any(split) else "both"

    def batches_per_device(self, devices: int) -> list[int]:
        """Window-split batches placed on each device (cond-split batches run on all and are not counted)."""
        counts = [0] * devices
        for d in self.device_of:
            if d is not None:
                counts[d] += 1
        return counts


def _check(costs: Sequence[float], speeds: Sequence[float]) -> None:
    if not speeds:
        raise ValueError("speeds: at least one device is needed")
    if any(not (s > 0 and math.isfinite(s)) for s in speeds):
        raise ValueError(f"speeds: every relative speed must be a positive number, got {list(speeds)}")
    if any(not (c >= 0 and math.isfinite(c)) for c in costs):
        raise ValueError(f"costs: every batch cost must be a non-negative number, got {list(costs)}")


def lpt_assign(costs: Sequence[float], speeds: Sequence[float]) -> tuple[list[int], float]:
    """Longest processing time first on related machines: each batch (largest first, ties in schedule order)
    goes to the device where it would finish earliest (ties: the lower device index). Returns the device of each
    batch and the makespan ``max_d sum(costs on d) / speeds[d]``."""
    _check(costs, speeds)
    finish = [0.0] * len(speeds)
    device = [0] * len(costs)
    for i in sorted(range(len(costs)), key=lambda i: (-costs[i], i)):
        d = min(range(len(speeds)), key=lambda d: (finish[d] + costs[i] / speeds[d], d))
        device[i] = d
        finish[d] += costs[i] / speeds[d]
    return device, max(finish, default=0.0)


def cond_split_time(frames: float, conds: int, speeds: Sequence[float]) -> float:
    """Time of one batch of ``frames`` model frames with ``conds`` conditionings under the host's cond split:
    ``ceil(conds / N)`` conditionings per device in device order, relative speeds not consulted."""
    _check([frames], speeds)
    per = max(1, math.ceil(conds / len(speeds)))
    left, time = conds, 0.0
    for s in speeds:
        n = min(per, left)
        left -= n
        if n:
            time = max(time, n * frames / s)
    return time


def plan_step(batch_frames: Sequence[float], conds: int, speeds: Sequence[float]) -> StepPlan:
    """The fastest of window split, cond split and both for one step (see the module docstring).

    ``batch_frames``: model frames of each batch, in schedule order; ``conds``: conditionings per window (2 with
    CFG, 1 without); ``speeds``: relative speed of each device, the first being the one that fuses.
    """
    if conds < 1:
        raise ValueError(f"conds must be >= 1, got {conds}")
    costs = [float(f) * conds for f in batch_frames]
    _check(costs, speeds)
    n = len(costs)
    cond_times = [cond_split_time(f, conds, speeds) for f in batch_frames]
    order = sorted(range(n), key=lambda i: (-costs[i], i))  # the k largest batches are window-split
    best: tuple[float, int, list[int]] | None = None
    window_time = cond_time = 0.0
    for k in range(n + 1):
        chosen = order[:k]
        placed, makespan = lpt_assign([costs[i] for i in chosen], speeds)
        rest = sum(cond_times[i] for i in order[k:])
        total = makespan + rest
        if k == 0:
            cond_time = total
        if k == n:
            window_time = total
        if best is None or total <= best[0] * (1 + 1e-12):
            best = (total, k, placed)
    total, k, placed = best
    device_of: list[int | None] = [None] * n
    for i, d in zip(order[:k], placed, strict=True):
        device_of[i] = d
    return StepPlan(tuple(device_of), total, window_time, cond_time)
