"""Windows across devices: one sampling step's window batches spread over the devices of core's multi-GPU clones.

Owns the multi-device side of the window loop (``windows.py``). When a sampling run carries core's multi-GPU work
units (``model_options["multigpu_clones"]``: the model patcher of every device, the first being the one sampling
runs on, and ``model_options["multigpu_thread_pool"]``: one persistent worker thread per device), a step's batches
of windows are planned by ``nodes/algorithms/work_split.py`` (window split, cond split or both, balanced by each
device's ``relative_speed`` and by the frames of each batch) and the window-split batches run on the pool's
threads, each device evaluating its batches with its own model clone, its own copy of the options, its own
ControlNet instances and its own hint slicer; everything that makes a window (per-window conds and prompts, hints,
the reference frame and LTX-Video guides of ``window_conds._FrameLayout``, Window LoRA weights through the loop's
window callbacks) is built per call from the window, so it travels with it. Outputs come back to the first device
and are fused there, once, in schedule order: the same sums as on one device.

Runs on one device (core's cond split per call, as before) where windows need an order or share state across
model calls, said once in the log: AnimateDiff-Evolved motion modules (one shared window state, ``ADGS.params``),
the Window Step Cache and core's step caches (EasyCache / LazyCache keep one cache across calls), and any feature
that sets ``transformer_options["LongAnim.serial_windows"]`` to its reason. Without the engine (no
``multigpu_clones``, e.g. ComfyUI 0.3.75) nothing here runs.

Cancel: workers look at core's interrupt flag without clearing it (``processing_interrupted``) and stop after their
current batch; the sampling thread raises it (``throw_exception_if_processing_interrupted``) as on one device. An
error or a cancel stops every worker and waits for the pool to be idle before it propagates, so no batch of this
step is left running; the pool's threads are core's and end with the sampling run.

Core hooks used: ``model_options["multigpu_clones"]`` / ``["multigpu_thread_pool"]`` / ``["multigpu_options"]``
(set by ``CFGGuider.outer_sample``), ``MultiGPUThreadPool.submit`` / ``get_result`` / ``devices``,
``comfy.model_patcher.create_model_options_clone``, ``comfy.samplers.cast_transformer_options``,
``comfy.model_management.processing_interrupted``, ``ControlBase.get_instance_for_device``.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

import comfy.model_management
import comfy.model_patcher
import comfy.samplers
import torch

from ..algorithms import work_split
from .basics import check_interrupt
from .step_cache import run_cache
from .window_conds import _HintSlicer, _warn_once

logger = logging.getLogger(__name__)

CLONES_KEY = "multigpu_clones"
POOL_KEY = "multigpu_thread_pool"
OPTIONS_KEY = "multigpu_options"
SERIAL_KEY = "LongAnim.serial_windows"  # transformer_options: why this run's windows must stay on one device
RECORD_KEY = "LongAnim.split_record"  # transformer_options: a SplitRecord to fill (tests, benchmarks)
STATEFUL_CACHES = ("easycache", "lazycache")  # core's step caches: one cache across model calls

_cast_transformer_options = getattr(comfy.samplers, "cast_transformer_options", None)  # 0.28.0 and newer


class SplitRecord:
    """What the split did in a run: per step the plan's mode and the windows each device evaluated, and per device
    the seconds spent inside model calls (for the benchmark's overhead column)."""

    def __init__(self):
        self.steps: list[dict] = []
        self.call_seconds: dict[str, float] = {}
        self._lock = threading.Lock()

    def note_step(self, mode: str, windows: dict[str, int], frames: dict[str, int] | None = None,
                  largest: int = 0, reason: str | None = None) -> None:
        """One step: windows and model frames per device (window split), the largest batch's frames."""
        with self._lock:
            self.steps.append({"mode": mode, "windows": dict(windows), "frames": dict(frames or {}),
                               "largest": largest, "reason": reason})

    def note_call(self, device: str, seconds: float) -> None:
        with self._lock:
            self.call_seconds[device] = self.call_seconds.get(device, 0.0) + seconds


class Device:
    """What the model calls of one device use: its model, a private copy of the options, its hint slicer."""

    def __init__(self, device, model, model_options: dict, slicer):
        self.device = device  # None: the sampling thread's own call (no move)
        self.model = model
        self.model_options = model_options
        self.t_opts = model_options.setdefault("transformer_options", {})
        self.slicer = slicer

    def place(self, x: torch.Tensor, t: torch.Tensor, conds: list):
        """Inputs of one call moved to this device; ControlNets swapped for this device's instances."""
        if self.device is None:
            return x, t, conds
        return x.to(self.device), t.to(self.device), [_cond_to(c, self.device) for c in conds]


def _to(value, device):
    if isinstance(value, torch.Tensor):
        return value.to(device)
    inner = getattr(value, "cond", None)
    if isinstance(inner, torch.Tensor) and hasattr(value, "_copy_with"):
        return value._copy_with(inner.to(device))
    return value


def _cond_to(cond, device):
    if cond is None:
        return None
    out = []
    for entry in cond:
        new = {k: _to(v, device) for k, v in entry.items() if k not in ("model_conds", "control")}
        if isinstance(entry.get("model_conds"), dict):
            new["model_conds"] = {k: _to(v, device) for k, v in entry["model_conds"].items()}
        control = entry.get("control")
        if control is not None:
            get = getattr(control, "get_instance_for_device", None)
            new["control"] = get(device) if get is not None else control
        out.append(new)
    return out


def serial_reason(t_opts: dict, ade_state) -> str | None:
    """Why this run's windows must be evaluated one after the other on one device, or None."""
    if ade_state is not None:
        return ("AnimateDiff-Evolved motion modules read one window state shared by all model calls "
                "(ADGS.params.sub_idxs)")
    if t_opts.get(SERIAL_KEY):
        return str(t_opts[SERIAL_KEY])
    if run_cache(t_opts) is not None:
        return "the Window Step Cache keeps one cache across the windows and steps of a run"
    for key in STATEFUL_CACHES:
        if key in t_opts:
            return f"core's {key} keeps one cache across model calls"
    return None


def auto_cap(model_options: dict, ade_state, windows: int, auto: int) -> int:
    """Windows per model call in automatic mode when the step is spread over the devices: at most
    ``ceil(windows / devices)``, so that the windows of one step make a batch for every device (the automatic
    size fills one device's memory and would put a whole step into one call). Otherwise ``auto`` unchanged."""
    clones = model_options.get(CLONES_KEY)
    if not isinstance(clones, dict) or len(clones) < 2 or model_options.get(POOL_KEY) is None \
            or serial_reason(model_options.get("transformer_options", {}), ade_state) is not None:
        return auto
    return max(1, min(auto, -(-windows // len(clones))))


def _grad_modes():
    return torch.is_inference_mode_enabled(), torch.is_grad_enabled()


class WindowSplit:
    """Context manager around one step's ``co_denoise``: ``with WindowSplit(...) as run`` gives the
    ``evaluate_batches`` hook spreading the step over the devices, or None where the step runs as on one device.

    ``compute(batch, dev=device)`` evaluates a batch (``device``: a :class:`Device`, None = the sampling thread's own
    call) and returns the raw per-window outputs; ``finish(batch, outs)`` turns them into what ``co_denoise``
    fuses (on the sampling thread, in schedule order); ``layout`` (``window_conds._FrameLayout``) gives each
    window's model frames, the batch's cost.
    """

    def __init__(self, model, model_options: dict, conds: list, layout, axis: int, ade_state,
                 compute: Callable, finish: Callable):
        self.compute, self.finish, self.layout = compute, finish, layout
        self.model, self.model_options = model, model_options
        self.conds, self.num_frames, self.axis = conds, layout.total, axis
        self.t_opts = model_options.get("transformer_options", {})
        self.record = self.t_opts.get(RECORD_KEY)
        self.devices: list = []
        self.pool = None
        self.stop = threading.Event()
        self.submitted: list = []
        clones = model_options.get(CLONES_KEY)
        if not isinstance(clones, dict) or len(clones) < 2:
            return
        pool = model_options.get(POOL_KEY)
        reason = serial_reason(self.t_opts, ade_state)
        if reason is None and (pool is None or not set(clones) <= set(getattr(pool, "devices", ()))):
            reason = "the sampler did not start core's multi-GPU worker threads"
        if reason is not None:
            _warn_once(f"windows run on one device (each model call still splits its conds across the devices) "
                       f"because {reason}")
            if self.record is not None:
                self.record.note_step("serial", {}, reason=reason)
            return
        self.clones, self.pool, self.devices = clones, pool, list(clones)
        opts = model_options.get(OPTIONS_KEY) or {}
        self.speeds = [max(1e-6, float((opts.get(d) or {}).get("relative_speed", 1.0))) for d in self.devices]

    # -- the context manager ---------------------------------------------------------------------------------
    def __enter__(self):
        return self.run if self.pool is not None else None

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self._join()

    def _join(self) -> None:
        """Wait until every batch handed to the pool has ended (the pool's own result of each job)."""
        while self.submitted:
            self.pool.get_result(self.submitted.pop(0))

    # -- one step ----------------------------------------------------------------------------------------------
    def _device(self, device) -> Device:
        mo = comfy.model_patcher.create_model_options_clone(self.model_options)
        for key in (CLONES_KEY, POOL_KEY):  # inside a window-split call the host must not split conds again
            mo.pop(key, None)
        if _cast_transformer_options is not None:
            _cast_transformer_options(mo.setdefault("transformer_options", {}), device=device)
        model = self.model if device == self.devices[0] else self.clones[device].model
        slicer = None
        if self.axis == 0:
            slicer = _HintSlicer([_cond_to(c, device) for c in self.conds], self.num_frames, clones=False)
        return Device(device, model, mo, slicer)

    def _job(self, index: int, ids: list[int], batches: list, out_q: queue.Queue, modes) -> None:
        device = self.devices[index]
        try:
            with torch.inference_mode(modes[0]), torch.set_grad_enabled(modes[1]):
                dev = self._device(device)
                for i in ids:
                    if self.stop.is_set() or comfy.model_management.processing_interrupted():
                        out_q.put(("stop", i, None))  # on another worker's error, its report follows
                        return
                    start = time.perf_counter()
                    outs = self.compute(batches[i], dev=dev)
                    if self.record is not None:
                        self.record.note_call(str(device), time.perf_counter() - start)
                    out_q.put(("out", i, outs))
        except BaseException as exc:  # reported to the sampling thread, which raises it
            self.stop.set()
            out_q.put(("error", -1, exc))

    def _receive(self, out_q: queue.Queue, ready: dict, block: bool = True) -> None:
        try:
            kind, i, value = out_q.get(block=block)
        except queue.Empty:
            return
        if kind == "out":
            ready[i] = value
        elif kind == "error":
            raise value
        elif comfy.model_management.processing_interrupted():  # a worker stopped on the user's cancel
            check_interrupt()  # raised (and cleared) here, as the one-device loop does

    def run(self, batches: list[list[list[int]]]):
        """``co_denoise``'s ``evaluate_batches``: the step's outputs in schedule order."""
        frames = [sum(len(self.layout.model_frames(w)) for w in b) for b in batches]
        plan = work_split.plan_step(frames, self._conds_count(), self.speeds)
        if self.record is not None:
            on = [[i for i, x in enumerate(plan.device_of) if x == k] for k in range(len(self.devices))]
            self.record.note_step(plan.mode, {str(d): sum(len(batches[i]) for i in on[k])
                                              for k, d in enumerate(self.devices) if on[k]},
                                  {str(d): sum(frames[i] for i in on[k]) for k, d in enumerate(self.devices)
                                   if on[k]}, max(frames, default=0))
        out_q: queue.Queue = queue.Queue()
        modes = _grad_modes()
        for k, device in enumerate(self.devices):
            ids = [i for i, d in enumerate(plan.device_of) if d == k]
            if ids:
                self.pool.submit(device, self._job, k, ids, batches, out_q, modes)
                self.submitted.append(device)
        ready: dict[int, list] = {}
        for i, batch in enumerate(batches):
            if plan.device_of[i] is None:  # cond split: the host's own scheduler, once the pool is idle
                self._join()
                while not out_q.empty():
                    self._receive(out_q, ready, block=False)
                outs = self.compute(batch, dev=None)
            else:
                while i not in ready:
                    self._receive(out_q, ready)
                outs = ready.pop(i)
            yield self.finish(batch, outs)

    def _conds_count(self) -> int:
        return max(1, sum(1 for c in self.conds if c is not None))
