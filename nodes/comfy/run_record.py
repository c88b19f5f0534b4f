"""The record of one LongAnim sampling run: the windows of its last step and the model evaluations it ran.

The window loop (``windows.py``) notes every step's windows and counts every model call's frames in the run's
:class:`ScheduleRecord` (``transformer_options[RECORD_KEY]``, set by the loop's ``OUTER_SAMPLE`` wrapper) and
files the record under the run's output latent. Core KSampler / SamplerCustomAdvanced copy their input LATENT
dict, so the pack cannot put the schedule into their output; :func:`recorded_run` finds it by the output's
content instead (bounded, newest 16). The Video Metrics node marks the borders the run really had; benchmarks read
the cost (model frame-evaluations per frame-step as the loop ran them). The same content fingerprint lets a run
that continues another (:func:`continued_run`) find that run's seed and step count.

Core hooks used: none (plain objects in ``transformer_options``).
"""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

import torch

RECORD_KEY = "LongAnim.schedule_record"  # transformer_options: the ScheduleRecord of the running sample


class ScheduleRecord:
    """The windows of the last sampling step of one run (a few kB whatever the step count), and its cost: the
    model frame-evaluations the loop ran (a window evaluated for some of the conds counts that share of its
    frames; windows a step cache answered count nothing), the video's frames and the sampler's steps."""

    def __init__(self, latent_key=None):
        self.step = -1
        self.windows: list[list[int]] | None = None
        self.latent_key = latent_key  # fingerprint of the run's input latent (continued_run)
        self.finished: tuple[float, int, int] | None = None  # (last sigma, seed, global step): note_finished_run
        self.frame_evaluations = 0.0
        self.frames = 0
        self.steps = 0
        self._lock = threading.Lock()  # windows spread over devices count from core's worker threads

    def count(self, frames: float, video_frames: int) -> None:
        with self._lock:
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
        if not isinstance(samples, torch.Tensor) or (self.windows is None and self.finished is None):
            return
        key = _fingerprint(samples)
        if self.finished is not None:
            note_finished_run(key, *self.finished)
        if self.windows is not None:
            _RECORDS[key] = self
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


# Continued runs (Wan 2.2's two experts: KSamplerAdvanced 0..k on the high-noise model with leftover noise, then
# k..n on the low-noise model without new noise): a run that adds no noise, starts at the sigma where a finished run
# stopped and samples THAT run's output latent (same values: the content fingerprint of ``recorded_windows``)
# continues its schedule -- its seed and step count -- so windows and blend cuts stay a function of (seed, global
# step) across the switch. Keyed on the latent's content, not its shape: any other latent starts a new run, so an
# output never depends on what else ran on the server before.
_CONTINUATIONS: OrderedDict[tuple, tuple[int, int]] = OrderedDict()  # (latent fingerprint, sigma) -> (seed, step)
_MAX_CONTINUATIONS = 16


def continued_run(latent_key, sigmas: torch.Tensor, noise) -> tuple[int, int] | None:
    """(seed, step offset) of the finished run whose output (fingerprint ``latent_key``) this run continues, else
    None (see ``_CONTINUATIONS``)."""
    if latent_key is None or not isinstance(noise, torch.Tensor) or sigmas is None or sigmas.numel() < 2 or \
            bool(noise.any()):
        return None
    return _CONTINUATIONS.get((latent_key, float(sigmas.reshape(-1)[0])))


def note_finished_run(latent_key, last_sigma: float, seed: int, step: int) -> None:
    """File a finished run's (seed, global step) under its output's fingerprint and its last sigma."""
    if latent_key is None or last_sigma <= 0.0:  # a run that ended at sigma 0 is complete: nothing continues it
        return
    _CONTINUATIONS[(latent_key, float(last_sigma))] = (int(seed), int(step))
    _CONTINUATIONS.move_to_end((latent_key, float(last_sigma)))
    while len(_CONTINUATIONS) > _MAX_CONTINUATIONS:
        _CONTINUATIONS.popitem(last=False)
