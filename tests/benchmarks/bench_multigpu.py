"""Windows across devices: throughput at 1, 2, 4, 8 devices with core's multi-GPU clones (one command).

    <ComfyUI 0.28.0+ python> tests/benchmarks/bench_multigpu.py                 # CUDA: every GPU count that fits
    <ComfyUI 0.28.0+ python> tests/benchmarks/bench_multigpu.py --device cpu    # CPU: 1 and 2 CPU "devices"

Needs a host with core's multi-GPU engine (``comfy/multigpu.py``, ComfyUI 0.28.0 and newer: point
``LONGANIM_COMFYUI`` at it); on 0.3.75 it says so and stops. Models: the random-weight full-size models of
``bench_fullsize.py`` (SD1.5 UNet, the same with the AnimateDiff-v2-shaped temporal module, Wan 2.1 1.3B-sized),
LongAnim ZoLA windows (SD 16/12 frames, Wan 21/16 latent frames), Euler, cfg 7.5, a one-step warm-up per model and
device count. Devices are added with core's own ``create_multigpu_deepclones`` (what the ``MultiGPU_WorkUnits``
node runs); the random models get a loader factory (``cached_patcher_init``) that rebuilds the same weights, as core
asks of custom loaders. On CPU the second "device" is ``cpu:1`` (core's device list is replaced while the clone is
made): both share the same cores, so the CPU run measures the split's own cost, not a speed-up.

Per configuration: seconds per step (median of the timed steps), speed-up over one device, the plan's modes, the
windows each device evaluated, and the loop's own time: per step, the wall time of the window loop minus the longest
time one thread spent inside model calls (``calc_cond_batch``), as a share of that model time (goal: <= 3 %).
Writes bench_out/multigpu.md.
"""
from __future__ import annotations

import argparse
import statistics
import threading
import time
from collections import defaultdict

import bench_fullsize as bf
import benchcommon
from benchcommon import OUT

DEVICE_COUNTS = (1, 2, 4, 8)
CPU_RES = (64, 64)


def _factory(family: str, device: str, dtype, **_):
    """Loader factory for core's deep clone: the same random weights again (seeded), a fresh ModelPatcher."""
    return bf.load_random(family, device, dtype)[0]


def with_devices(base, count: int, device: str):
    """``base`` with core's multi-GPU clones on ``count`` devices (1: ``base`` itself)."""
    import comfy.model_management
    import comfy.multigpu
    import torch

    if count == 1:
        return base
    if device == "cuda":
        return comfy.multigpu.create_multigpu_deepclones(base, count)
    listed = comfy.model_management.get_all_torch_devices
    comfy.model_management.get_all_torch_devices = \
        lambda exclude_current=False: [base.load_device] + [torch.device("cpu", i) for i in range(1, count)]
    try:
        return comfy.multigpu.create_multigpu_deepclones(base, count)
    finally:
        comfy.model_management.get_all_torch_devices = listed


class LoopClock:
    """Per step: wall time of the window loop and each thread's time inside model calls."""

    def __init__(self):
        self.steps: list[tuple[float, dict]] = []
        self.busy: dict[int, float] = defaultdict(float)
        self.lock = threading.Lock()

    def calls(self, executor, *args, **kwargs):  # CALC_COND_BATCH wrapper: every model call, any thread
        t0 = time.perf_counter()
        try:
            return executor(*args, **kwargs)
        finally:
            with self.lock:
                self.busy[threading.get_ident()] += time.perf_counter() - t0

    def wrap(self, handler):
        execute = handler.execute

        def timed(*args, **kwargs):
            with self.lock:
                self.busy.clear()
            t0 = time.perf_counter()
            out = execute(*args, **kwargs)
            wall = time.perf_counter() - t0
            with self.lock:
                self.steps.append((wall, dict(self.busy)))
            return out

        handler.execute = timed

    def overhead(self) -> tuple[float, float]:
        """(loop seconds outside model calls on the critical path, longest thread's model seconds), summed."""
        outside = inside = 0.0
        for wall, busy in self.steps:
            longest = max(busy.values(), default=0.0)
            outside += max(0.0, wall - longest)
            inside += longest
        return outside, inside


def run(model, family: str, frames: int, res, steps: int, device: str) -> dict:
    import comfy.patcher_extension
    import comfy.sample
    import torch
    from longanim.nodes.comfy import multigpu as mg

    m = model.clone()
    clock = LoopClock()
    record = mg.SplitRecord()
    m.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.CALC_COND_BATCH, "bench.clock", clock.calls)
    m.model_options["transformer_options"] = dict(m.model_options.get("transformer_options", {}))
    m.model_options["transformer_options"][mg.RECORD_KEY] = record
    m.model_options["context_handler"] = handler = type(m.model_options["context_handler"])(
        m.model_options["context_handler"].options)
    clock.wrap(handler)
    latent = bf.make_latent(family, frames, res)
    noise = comfy.sample.prepare_noise(latent, 1)
    positive, negative = bf.conds(family)
    stamps = []

    def callback(step, x0, x, total):
        if device == "cuda":
            torch.cuda.synchronize()
        stamps.append(time.perf_counter())

    t0 = time.perf_counter()
    comfy.sample.sample(m, noise, steps, bf.CFG, "euler", "normal", positive, negative, latent, callback=callback,
                        disable_pbar=True, seed=1)
    per_step = [b - a for a, b in zip([t0] + stamps[:-1], stamps, strict=True)]
    outside, inside = clock.overhead()
    windows: dict[str, int] = defaultdict(int)
    for s in record.steps:
        for d, n in s["windows"].items():
            windows[d] += n
    modes = sorted({s["mode"] for s in record.steps}) or ["one device"]
    return {"s_step": statistics.median(per_step[1:] if len(per_step) > 1 else per_step),
            "overhead": outside / inside if inside else 0.0, "modes": "/".join(modes),
            "windows": " ".join(f"{d}:{n}" for d, n in sorted(windows.items())) or "-",
            "calls_s": sum(record.call_seconds.values())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", choices=("cuda", "cpu"), default=None, help="default: cuda when available")
    ap.add_argument("--frames", default=None, help="video frames, default 81,241,481 (CPU: 81)")
    ap.add_argument("--devices", default=None, help="device counts, default 1,2,4,8 that exist (CPU: 1,2)")
    ap.add_argument("--steps", type=int, default=None, help="timed Euler steps (default 4, CPU 2)")
    ap.add_argument("--models", default=None, help="subset of " + ", ".join(bf.MODELS) + " (CPU default: sd15)")
    args = ap.parse_args()

    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    cpu = device == "cpu"
    benchcommon.setup(device)
    try:
        import comfy.multigpu  # noqa: F401
    except ImportError:
        raise SystemExit("this ComfyUI has no multi-GPU engine (comfy/multigpu.py arrived in 0.28.0); point "
                         "LONGANIM_COMFYUI at a 0.28.0+ host") from None
    import comfy.model_management

    available = torch.cuda.device_count() if not cpu else 2
    counts = [int(c) for c in (args.devices or ("1,2" if cpu else ",".join(map(str, DEVICE_COUNTS)))).split(",")]
    counts = [c for c in counts if c <= available]
    frames_list = [int(f) for f in (args.frames or ("81" if cpu else "81,241,481")).split(",")]
    steps = args.steps or (2 if cpu else 4)
    names = (args.models or ("sd15" if cpu else ",".join(bf.MODELS))).split(",")
    dtype = torch.float16 if cpu else None
    dev_name = bf.device_name(device)
    print(f"[multigpu] {dev_name}; devices {counts}; models {names}; frames {frames_list}; steps {steps}",
          flush=True)
    rows = []
    for family in ("sd", "wan"):
        members = [n for n in names if (n == "wan13b") == (family == "wan")]
        if not members:
            continue
        res = CPU_RES if cpu else bf.DEFAULT_RES[family]
        base, _ = bf.load_random(family, "cuda" if not cpu else "cpu", dtype)
        base.cached_patcher_init = (_factory, (family, "cuda" if not cpu else "cpu", dtype))
        for name in members:
            if name == "sd15_motion" and not cpu and max(counts) > 1:
                print("[multigpu] sd15_motion: its temporal module is object-patched onto the model and shared "
                      "by every clone; on several GPUs it would need one copy per device: skipped", flush=True)
                continue
            model = bf.add_motion_module(base)[0] if name == "sd15_motion" else base
            win = bf.WINDOWS[family]
            from longanim.nodes.comfy import windows as ca

            model = ca.patch_model_windows(model, ca.WindowOptions(schedule="zola", length=win["length"],
                                                                   stride=win["stride"]))
            base_time = {}
            for count in counts:
                multi = with_devices(model, count, device)
                run(multi, family, frames_list[0], res, 1, device)  # warm-up: loads every clone
                for frames in frames_list:
                    r = run(multi, family, frames, res, steps, device)
                    base_time.setdefault(frames, r["s_step"])
                    r.update(model=name, frames=frames, devices=count, speedup=base_time[frames] / r["s_step"])
                    print(f"[multigpu] {name} {frames} frames, {count} device(s): {r['s_step']:.2f} s/step "
                          f"(x{r['speedup']:.2f}), loop outside calls {100 * r['overhead']:.1f} %, "
                          f"{r['modes']}, windows {r['windows']}", flush=True)
                    rows.append(r)
                del multi
                comfy.model_management.unload_all_models()
        del base
        comfy.model_management.unload_all_models()
    text = report(rows, dev_name, steps, res)
    print(text)
    OUT.mkdir(exist_ok=True)
    (OUT / "multigpu.md").write_text(text)


def report(rows, dev_name, steps, res) -> str:
    lines = [f"# Windows across devices ({dev_name})", "",
             f"{steps} timed Euler steps, cfg {bf.CFG}, ZoLA windows; resolution {res[0]}x{res[1]}.", "",
             "| model | frames | devices | s/step | speed-up | loop outside calls | plan | windows per device |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['frames']} | {r['devices']} | {r['s_step']:.2f} | x{r['speedup']:.2f} | "
                     f"{100 * r['overhead']:.1f} % | {r['modes']} | {r['windows']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
