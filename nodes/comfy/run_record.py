"""The record of one LongAnim sampling run: the windows of its last step and the model evaluations it ran.

The window loop (``windows.py``) notes every step's windows and counts every model call's frames in the run's
:class:`ScheduleRecord` (``transformer_options[RECORD_KEY]``, set by the loop's ``OUTER_SAMPLE`` wrapper) and
files the record under the run's output latent. Core KSampler / SamplerCustomAdvanced copy their input LATENT
dict, so the pack cannot put the schedule into their output; :func:`recorded_run` finds it by the output's
content instead (bounded, newest 16). The Video Metrics node marks the borders the run really had; benchmarks read
the cost (model frame-evaluations per frame-step as the loop ran them).

Core hooks used: none (plain objects in ``transformer_options``).
"""
from __future__ import annotations

import hashlib
from collections import OrderedDict

import torch

RECORD_KEY = "LongAnim.schedule_record"  # transformer_options: the ScheduleRecord of the running sample


class ScheduleRecord:
    """The windows of the last sampling step of one run (a few kB whatever the step count), and its cost: the
    model frame-evaluations the loop ran (a window evaluated for some of the conds counts that share of its
    frames; windows a step cache answered count nothing), the video's frames and the sampler's steps."""

    def __init__(self):
        self.step = -1
        self.windows: list[list[int]] | None = None
        self.frame_evaluations = 0.0
        self.frames = 0
        self.steps = 0

    def count(self, frames: float, video_frames: int) -> None:
        self.frame_evaluations += float(frames)
        self.frames = int(video_frames)

    @property
    def cost(self) -> float | None:
        """Model frame-evaluations per frame-step as the loop ran them (None before a step ran)."""
        return self.frame_evaluations / (self.frames * self.steps) if self.frames and self.steps else None

    def note(self, step: int, windows: list[list[int]]) -> None:
        if step >= self.step:  # noise travel repeats steps: keep the latest evaluation of the last step
            self.step, self.windows = step, [list(w) for w in windows]

    def file_under(self, samples) -> None:
        if self.windows is not None and isinstance(samples, torch.Tensor):
            _RECORDS[_fingerprint(samples)] = self
            while len(_RECORDS) > _MAX_RECORDS:
                _RECORDS.popitem(last=False)


_RECORDS: OrderedDict[tuple, ScheduleRecord] = OrderedDict()
_MAX_RECORDS = 16  # the last sampling runs of this server; a record is a few kB


def _fingerprint(samples: torch.Tensor) -> tuple:
    data = samples.detach().to("cpu", torch.float32).contiguous().reshape(-1).view(torch.uint8).numpy()
    return tuple(samples.shape), hashlib.blake2b(memoryview(data), digest_size=16).hexdigest()  # no byte copy


def recorded_windows(samples) -> list[list[int]] | None:
    """The last step's windows of the LongAnim sampling run whose output is ``samples`` (same values), if this
    server ran it."""
    run = recorded_run(samples)
    return run.windows if run is not None else None


def recorded_run(samples) -> ScheduleRecord | None:
    """The :class:`ScheduleRecord` (last windows, cost) of the LongAnim run whose output is ``samples``, if any."""
    if not isinstance(samples, torch.Tensor):
        return None
    return _RECORDS.get(_fingerprint(samples))
