"""Refinement and phased-inference benchmark (issue 7): prints markdown and writes bench_out/refine.md.

    .host/venv/bin/python tests/benchmarks/bench_refine.py [--quick] [--device cuda]

(a) StreamingT2V refinement of a long latent (tiny Wan, CPU by default): randomized_blend and shared_noise_only
    (chunks F = 24 / O = 8 through the window loop) vs refining the whole video in one window and vs naive
    independent chunks; wall time (best of repeats) and the model's forward calls / frames processed.
(b) Phased inference (CLIA, gamma = 0.8, omega = 0.2, T = 25): model calls and wall time vs full sampling of every
    clip (gamma = 0, same code path, i.e. K independent clips), for several K.
"""
from __future__ import annotations

import argparse
import time

import benchcommon
from benchcommon import OUT


def setup(device: str):
    benchcommon.setup(device)


def counting(model):
    """Clone whose diffusion-model forward calls and frames are counted (unet function wrapper)."""
    stats = {"calls": 0, "frames": 0}

    def wrapper(apply_model, args):
        x = args["input"]
        stats["calls"] += 1
        stats["frames"] += int(x.shape[2] if x.ndim == 5 else x.shape[0])
        return apply_model(args["input"], args["timestep"], **args["c"])

    m = model.clone()
    m.set_model_unet_function_wrapper(wrapper)
    return m, stats


def best_of(fn, repeats):
    """(best wall s, best process CPU s, last output): CPU time is less sensitive to other load on the machine."""
    wall, cpu, out = None, None, None
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        wall = dt if wall is None else min(wall, dt)
        cpu = dc if cpu is None else min(cpu, dc)
    return wall, cpu, out


def bench_refine(h, frames, steps, repeats, size):
    import torch
    from longanim.nodes.comfy import refine as car

    g = torch.Generator().manual_seed(0)
    latent = {"samples": torch.randn(1, 16, frames, size, size, generator=g)}
    pos, neg = h.cond("a fox", "wan21"), h.cond("", "wan21")
    rows = []
    configs = [("randomized_blend", 24, 8), ("shared_noise_only", 24, 8), ("naive", 24, 8),
               ("one window (whole video)", frames, 0)]
    for name, chunk, overlap in configs:
        mode = "randomized_blend" if name.startswith("one window") else name
        model, stats = counting(h.wan())

        def run(model=model, mode=mode, chunk=chunk, overlap=overlap):
            return car.refine_video(model, pos, neg, latent, denoise=0.6, steps=steps, cfg=5.0,
                                    sampler_name="euler", scheduler="normal", chunk_length=chunk, overlap=overlap,
                                    seed=1, mode=mode)

        t, c, _ = best_of(run, repeats)
        rows.append((name, chunk, overlap, t, c, stats["calls"] // repeats, stats["frames"] // repeats))
    return rows


def bench_phased(h, clips_list, steps, repeats, clip_frames, size):
    from longanim.nodes.comfy import phased as car

    latent = h.wan_latent(clip_frames, size=size)
    pos, neg = h.cond("a fox", "wan21"), h.cond("", "wan21")
    rows = []
    for K in clips_list:
        res = {}
        for gamma in (0.8, 0.0):
            model, stats = counting(h.wan())

            def run(model=model, gamma=gamma, K=K):
                return car.phased_animation(model, pos, neg, latent, num_clips=K, steps=steps, cfg=5.0,
                                            scheduler="simple", gamma=gamma, omega=0.2, seed=0)

            t, c, (_, st) = best_of(run, repeats)
            res[gamma] = (t, c, st["model_calls"], stats["calls"] // repeats)
        rows.append((K, res))
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: stable timings on a shared box)")
    args = ap.parse_args()
    setup(args.device)
    import comfyhelpers as h
    import torch

    torch.set_grad_enabled(False)
    torch.set_num_threads(max(1, args.threads))
    repeats = 1 if args.quick else 3
    bench_refine(h, 30, 1, 1, 8)  # warm-up: model load, first-call allocations
    frames, steps = (56, 4) if args.quick else (72, 6)
    lines = ["# Refinement and phased inference benchmark (issue 7)", "",
             f"Device: {args.device}, torch threads {torch.get_num_threads()}, tiny Wan 2.1 model "
             "(random weights; the ratios matter, not the absolute times). Best of "
             f"{repeats} run(s). Shared 2-core machine under other load: compare CPU times.", "",
             f"## (a) Refinement of {frames} latent frames (1x16x{frames}x8x8), denoise 0.6, {steps} steps "
             "(euler), chunks F = 24 / O = 8", "",
             "| mode | chunk | overlap | wall s | CPU s | forward calls | frames processed |",
             "|---|---|---|---|---|---|---|"]
    for name, chunk, overlap, t, c, calls, fr in bench_refine(h, frames, steps, repeats, 8):
        lines.append(f"| {name} | {chunk} | {overlap} | {t:.2f} | {c:.2f} | {calls} | {fr} |")
    lines += ["", "Forward calls: ComfyUI batches cond and uncond into one call. randomized_blend skips chunks "
              "that own no frame in a step (possible only next to a heavily shifted last chunk), so it costs "
              "the same as shared_noise_only; naive processes the same chunks.", ""]
    p_steps = 10 if args.quick else 25
    clips_list = [2, 4] if args.quick else [2, 4, 16]
    lines += [f"## (b) Phased inference, T = {p_steps} steps, gamma = 0.8 (M = {int(-(-0.8 * p_steps // 1))}), "
              "omega = 0.2, clip 1x16x5x8x8", "",
              "| K clips | phased calls | full calls | call ratio | phased CPU s | full CPU s | CPU ratio "
              "| wall ratio |",
              "|---|---|---|---|---|---|---|---|"]
    for K, res in bench_phased(h, clips_list, p_steps, repeats, 5, 8):
        tp, pc, cp, _ = res[0.8]
        tf, fc, cf, _ = res[0.0]
        lines.append(f"| {K} | {cp} | {cf} | {cf / cp:.2f}x | {pc:.2f} | {fc:.2f} | {fc / pc:.2f}x | {tf / tp:.2f}x |")
    lines += ["", "Full sampling = gamma 0 through the same node (K independent Euler runs). The saving tends to "
              "T / (T - M) = 5x for many clips; the paper's ~4x matches K around 16."]
    text = "\n".join(lines) + "\n"
    OUT.mkdir(exist_ok=True)
    (OUT / "refine.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
