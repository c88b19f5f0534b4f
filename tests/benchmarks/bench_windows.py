"""Context-window benchmark (issue 4): prints markdown tables and writes bench_out/windows.md (+ windows.png).

    .host/venv/bin/python tests/benchmarks/bench_windows.py [--quick] [--device cuda]

(a) overhead of the pack's window loop over the bare model calls it requests (same call count), target <= 3 %;
(b) peak extra memory for 64, 256, 1024 latent frames (separate processes), target: 1024 frames < 2x 64 frames;
(c) the pack's schedule vs core's Context Windows on the tiny Wan model, same windows, time ratio, target <= 1.0;
(d) batched windows vs one-by-one;
(e) the same with the AnimateDiff-Evolved stand-in motion module (tests/comfy/ade_standin.py); ``--ade-only``: just (e).
Runs on the tiny models of the test host (CPU by default; ``--device cuda`` on a GPU machine).
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import benchcommon
from benchcommon import OUT


def setup(device: str):
    benchcommon.setup(device)


def timed_sampling(model, latent, steps, h):
    """Wall time of one KSampler run, and the time spent inside the bare model calls (CALC_COND_BATCH)."""
    import comfy.patcher_extension

    inside = [0.0, 0]

    def timer(executor, *args, **kwargs):
        t0 = time.perf_counter()
        out = executor(*args, **kwargs)
        inside[0] += time.perf_counter() - t0
        inside[1] += 1
        return out

    m = model.clone()
    m.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.CALC_COND_BATCH, "bench.timer", timer)
    t0 = time.perf_counter()
    h.ksample(m, latent, steps=steps)
    return time.perf_counter() - t0, inside[0], inside[1]


def loop_overhead(h, frames: int, steps: int, repeats: int):
    """Time the window loop adds around the model calls it requests: (total - plain sampler time - model time)."""
    from longanim.nodes.comfy import windows as ca

    model = h.wan()
    latent = h.wan_latent(frames, size=8)
    patched = ca.patch_model_windows(model, ca.WindowOptions(schedule="zola", length=8, stride=6, max_skip=2))
    handler = patched.model_options["context_handler"]
    in_handler = [0.0]
    plain_execute = handler.execute

    def timed_execute(*args, **kwargs):  # the window loop itself: from drawing the windows to the fused result
        t0 = time.perf_counter()
        out = plain_execute(*args, **kwargs)
        in_handler[0] += time.perf_counter() - t0
        return out

    handler.execute = timed_execute
    rows = []
    try:
        for _ in range(repeats):
            in_handler[0] = 0.0
            total_w, inside_w, calls_w = timed_sampling(patched, latent, steps, h)
            total_p, inside_p, calls_p = timed_sampling(model, h.wan_latent(8, size=8), steps, h)
            sampler_fixed = total_p - inside_p  # the sampler's own per-run cost, without windows
            run = max(0.0, total_w - inside_w - sampler_fixed)
            loop = max(0.0, in_handler[0] - inside_w)
            rows.append((loop / inside_w, calls_w, inside_w, total_w, run / inside_w))
    finally:
        del handler.execute
    best = min(rows)
    return {"frames": frames, "calls": best[1], "model_s": best[2], "total_s": best[3], "overhead": best[0],
            "run_overhead": best[4]}


def memory_child(frames: int, device: str) -> dict:
    setup(device)
    import comfyhelpers as h
    import torch
    from longanim.nodes.comfy import windows as ca

    model = h.wan()
    patched = ca.patch_model_windows(model, ca.WindowOptions(schedule="zola", length=8, stride=6, max_skip=2))
    h.ksample(patched, h.wan_latent(8, size=8), steps=1)  # warm-up: model loaded, allocator primed
    latent = h.wan_latent(frames, size=8)
    probe = "cuda" if device == "cuda" else ("VmHWM" if _reset_peak_rss() else "ru_maxrss")
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    elif probe == "VmHWM":
        base = _proc_status("VmRSS")
    else:
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    h.ksample(patched, latent, steps=2)
    if device == "cuda":
        peak = torch.cuda.max_memory_allocated()
    elif probe == "VmHWM":
        peak = _proc_status("VmHWM")
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    latent_bytes = 16 * frames * 8 * 8 * 4
    return {"frames": frames, "extra_mib": max(0, peak - base) / 2**20, "latent_mib": latent_bytes / 2**20,
            "probe": probe, "total_mib": peak / 2**20}


def _reset_peak_rss() -> bool:
    """Linux: reset this process's peak RSS (VmHWM) so the peak of one run can be read; False where not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _proc_status(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


def core_vs_pack(h, frames: int, steps: int, repeats: int):
    import comfy.context_windows as cw
    from longanim.nodes.algorithms import context_schedule as cs
    from longanim.nodes.comfy import windows as ca

    model = h.wan()
    latent = h.wan_latent(frames, size=8)
    core = model.clone()
    core.model_options["context_handler"] = cw.IndexListContextHandler(
        cw.ContextSchedule("standard_static", cw.create_windows_static_standard), cw.get_matching_fuse_method("flat"),
        context_length=8, context_overlap=2, dim=2)
    cw.create_prepare_sampling_wrapper(core)
    pack = ca.patch_model_windows(model, ca.WindowOptions(schedule="static", length=8, overlap=2, fusion="flat"))
    auto = ca.patch_model_windows(model, ca.WindowOptions(schedule="static", length=8, overlap=2, fusion="flat",
                                                          max_batch=0))
    core_windows = cw.create_windows_static_standard(frames, core.model_options["context_handler"], {})
    same = [list(w) for w in core_windows] == cs.static_windows(frames, 8, 2)
    t_core, t_pack, t_auto = [], [], []
    for i in range(repeats):  # alternate the order so warm caches favour neither side
        runs = [(core, t_core), (pack, t_pack), (auto, t_auto)]
        for m, acc in (runs if i % 2 == 0 else runs[::-1]):
            t0 = time.perf_counter()
            out = h.ksample(m, latent, steps=steps)
            acc.append(time.perf_counter() - t0)
            if m is core:
                a = out
            elif m is pack:
                b = out
            else:
                c = out
    return {"frames": frames, "core_s": min(t_core), "pack_s": min(t_pack), "ratio": min(t_pack) / min(t_core),
            "auto_s": min(t_auto), "auto_ratio": min(t_auto) / min(t_core), "same_windows": same,
            "max_abs_diff": float((a - b).abs().max()), "auto_diff": float((a - c).abs().max()),
            "auto_batch": ca.auto_windows_per_call(model.model, latent["samples"].shape, 2, 8, "cpu")}


def batched(h, frames: int, steps: int, repeats: int):
    from longanim.nodes.comfy import windows as ca

    out = []
    for family in ("wan21", "sd15"):
        model = h.wan() if family == "wan21" else h.sd15()
        latent = h.wan_latent(frames, size=8) if family == "wan21" else h.sd_latent(min(frames, 32), size=4)
        for mb in (1, 4):
            m = ca.patch_model_windows(model, ca.WindowOptions(schedule="uniform", length=8, stride=4, max_batch=mb))
            best = min(timed_sampling(m, latent, steps, h)[0] for _ in range(repeats))
            out.append({"family": family, "max_batch": mb, "seconds": best})
    return out


def batched_ade(h, frames: int, steps: int, repeats: int):
    """Tiny SD1.5 with the ADE stand-in motion module: windows one per call vs sharing calls (same windows)."""
    import torch
    from ade_standin import apply_ade, motion_group
    from longanim.nodes.comfy import windows as ca

    latent = h.sd_latent(frames, size=4)
    out, results = [], {}
    for mb in (1, 4, 0):
        m = ca.patch_model_windows(apply_ade(h.sd15()),
                                   ca.WindowOptions(schedule="uniform", length=8, stride=4, max_batch=mb))
        best = float("inf")
        for _ in range(repeats):
            motion_group(m).seen.clear()
            t0 = time.perf_counter()
            results[mb] = h.ksample(m, latent, steps=steps, cfg=1.0)
            best = min(best, time.perf_counter() - t0)
        seen = motion_group(m).seen
        out.append({"max_batch": mb, "seconds": best, "calls": len(seen),
                    "per_call": max(b for b, _, _ in seen) // 8})
    for r in out:
        r["speedup"] = out[0]["seconds"] / r["seconds"]
        r["max_abs_diff"] = float((results[r["max_batch"]] - results[1]).abs().max())
        r["finite"] = bool(torch.isfinite(results[r["max_batch"]]).all())
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--memory-child", type=int)
    ap.add_argument("--ade-only", action="store_true")
    args = ap.parse_args()
    if args.memory_child:
        print(json.dumps(memory_child(args.memory_child, args.device)))
        return
    setup(args.device)
    import comfyhelpers as h

    reps = 1 if args.quick else 3
    steps = 2 if args.quick else 4
    if args.ade_only:
        print("\n".join(ade_lines(h, steps, reps)))
        return
    lines = [f"# Context-window benchmark ({args.device}, tiny models)", ""]
    ov = [loop_overhead(h, f, steps, reps) for f in (64, 256)]
    lines += ["## (a) window-loop overhead over the model calls it requests (target <= 3 %)", "",
              "| latent frames | model calls | time in model calls (s) | total (s) | window-loop overhead | "
              "whole-run overhead vs an 8-frame run |",
              "|---|---|---|---|---|---|"]
    lines += [f"| {r['frames']} | {r['calls']} | {r['model_s']:.2f} | {r['total_s']:.2f} | "
              f"{100 * r['overhead']:.1f} % | {100 * r['run_overhead']:.1f} % |" for r in ov]
    lines += ["", "window-loop overhead = time in LongAnim's handler outside the model calls it requests / time in "
              "those calls; the whole-run column also counts the sampler's own arithmetic on the longer latent "
              "(an upper bound)."]
    mem = []
    for frames in (64, 256, 1024):
        res = subprocess.run([sys.executable, __file__, "--memory-child", str(frames), "--device", args.device],
                             capture_output=True, text=True, check=True)
        mem.append(json.loads(res.stdout.strip().splitlines()[-1]))
    lines += ["", "## (b) peak extra memory while sampling (target: 1024 frames < 2x 64 frames)", "",
              "| latent frames | latent size (MiB) | peak extra memory (MiB) | peak total (MiB) | probe |",
              "|---|---|---|---|---|"]
    lines += [f"| {m['frames']} | {m['latent_mib']:.1f} | {m['extra_mib']:.1f} | {m['total_mib']:.0f} | {m['probe']} |"
              for m in mem]
    ratio = mem[-1]["total_mib"] / max(mem[0]["total_mib"], 1e-6)
    per_latent = mem[-1]["extra_mib"] / max(mem[-1]["latent_mib"], 1e-6)
    lines += ["", f"peak total 1024 / 64 frames: {ratio:.2f}x; extra memory at 1024 frames = {per_latent:.1f}x the "
              "latent (sampler state, both conds' outputs and the fusion accumulators are latent-sized)"]
    cv = [core_vs_pack(h, f, steps, reps) for f in (64, 256)]
    lines += ["", "## (c) pack vs core Context Windows, same static windows, tiny Wan (target ratio <= 1.0)", "",
              "| latent frames | same windows | core (s) | LongAnim, 1 window/call (s) | ratio | max abs diff | "
              "LongAnim auto (s) | auto ratio | auto windows/call | auto max abs diff |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['frames']} | {r['same_windows']} | {r['core_s']:.2f} | {r['pack_s']:.2f} | {r['ratio']:.2f} | "
              f"{r['max_abs_diff']:.2e} | {r['auto_s']:.2f} | {r['auto_ratio']:.2f} | {r['auto_batch']} | "
              f"{r['auto_diff']:.2e} |" for r in cv]
    bt = batched(h, 64, steps, reps)
    lines += ["", "## (d) batched windows vs one by one (uniform, length 8, stride 4)", "",
              "| model | windows per call | seconds |", "|---|---|---|"]
    lines += [f"| {r['family']} | {r['max_batch']} | {r['seconds']:.2f} |" for r in bt]
    lines += ade_lines(h, steps, reps)
    text = "\n".join(lines) + "\n"
    print(text)
    OUT.mkdir(exist_ok=True)
    (OUT / "windows.md").write_text(text)
    _plot(ov, mem, cv, OUT / "windows.png")


def ade_lines(h, steps: int, reps: int) -> list[str]:
    ad = batched_ade(h, 40, steps, reps)
    lines = ["", "## (e) with the AnimateDiff-Evolved stand-in motion module, tiny SD1.5, 40 frames "
             "(uniform, length 8, stride 4, cfg 1)", "",
             "| max windows per call | motion-module calls per run | most windows in a call | seconds | speed-up vs "
             "1 per call | max abs diff vs 1 per call |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['max_batch'] or 'auto'} | {r['calls']} | {r['per_call']} | {r['seconds']:.2f} | "
              f"{r['speedup']:.2f}x | {r['max_abs_diff']:.1e} |" for r in ad]
    return lines


def _plot(ov, mem, cv, path) -> None:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (640, 240), "white")
    d = ImageDraw.Draw(img)
    d.text((10, 5), "peak extra memory (MiB) vs latent frames", fill="black")
    top = max(m["extra_mib"] for m in mem) or 1.0
    for i, m in enumerate(mem):
        h = int(180 * m["extra_mib"] / top)
        d.rectangle([40 + 90 * i, 220 - h, 100 + 90 * i, 220], fill=(70, 110, 200))
        d.text((40 + 90 * i, 224 - 12), f"{m['frames']}", fill="black")
        d.text((40 + 90 * i, 205 - h), f"{m['extra_mib']:.0f}", fill="black")
    d.text((340, 5), "pack/core time ratio; loop overhead", fill="black")
    for i, r in enumerate(cv):
        d.text((340, 30 + 20 * i), f"{r['frames']} frames: ratio {r['ratio']:.2f}", fill="black")
    for i, r in enumerate(ov):
        d.text((340, 90 + 20 * i), f"{r['frames']} frames: overhead {100 * r['overhead']:.1f} %", fill="black")
    img.save(path)


if __name__ == "__main__":
    main()
