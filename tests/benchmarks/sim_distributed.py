"""Simulation: LongAnim's window split past one machine, Wan 2.1 14B, 480p / 720p, 241 / 481 frames, 2-16 devices.

    python3 tests/benchmarks/sim_distributed.py            # prints the table, writes bench_out/sim_distributed.md

No cluster and no ComfyUI: a model of one denoising step. What it models (every figure is printed with its inputs):

* Work: per window and conditioning, one forward pass of Wan 2.1 14B (dim 5120, 40 layers, ffn 13824, patch
  1x2x2, 16 latent channels) over the window's tokens: ``2 * params * tokens`` for the weights plus
  ``4 * layers * tokens^2 * dim`` for self-attention; seconds = FLOPs / (peak x utilisation).
* Windows: LongAnim's Wan windows, 21 latent frames (81 video frames) with stride 16, so 241 frames (61 latent) make
  4 windows and 481 frames (121 latent) make 8, every step; CFG on: 2 conditionings per window.
* Placement: ``nodes/algorithms/work_split.plan_step`` (the pack's own planner, equal device speeds): window split,
  cond split or both; and, for comparison, the bound of a scheduler that places (window, cond) pairs.
* Transfer per step between the fusing device and the others: the window's latent slice out (fp32) and one output
  per conditioning back (fp32), for every window placed on another device; text embeddings, weights and the model
  are sent once per run, not per step. Over a link of the given bandwidth, serialised at the fusing device (worst
  case), plus a fixed latency per message.
* Against it, sequence parallelism (xDiT/Ulysses as in raylight) inside each window: 4 all-to-alls per layer of
  ``tokens x dim`` bf16 activations, ``(N-1)/N`` of it leaving each device.

Not modelled: the fusion and sampler arithmetic (elementwise on one latent: milliseconds), stragglers, memory (a 14B
model needs ~28 GB of bf16 weights per device, which every placement here replicates).
"""
from __future__ import annotations

import argparse
import importlib.util
import math
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / "bench_out"


def _work_split():
    spec = importlib.util.spec_from_file_location("work_split", ROOT / "nodes" / "algorithms" / "work_split.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["work_split"] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


WAN14B = dict(params=14.0e9, dim=5120, layers=40, channels=16)
RESOLUTIONS = {"480p": (832, 480), "720p": (1280, 720)}
WINDOW, STRIDE = 21, 16  # latent frames


def latent_frames(frames: int) -> int:
    return (frames - 1) // 4 + 1


def windows(latent: int) -> list[int]:
    """Lengths of the uniform windows over ``latent`` frames (last one shifted to end at the last frame)."""
    if latent <= WINDOW:
        return [latent]
    return [WINDOW] * (math.ceil((latent - WINDOW) / STRIDE) + 1)


def tokens_per_frame(res) -> int:
    w, h = res
    return (w // 16) * (h // 16)  # VAE 8x, patch 2x2


def window_seconds(tokens: int, tflops: float, util: float) -> float:
    m = WAN14B
    flops = 2 * m["params"] * tokens + 4 * m["layers"] * tokens ** 2 * m["dim"]
    return flops / (tflops * 1e12 * util)


def simulate(frames: int, res_name: str, devices: int, tflops: float, util: float, gbps: float,
             latency_ms: float, ws) -> dict:
    res = RESOLUTIONS[res_name]
    lat = latent_frames(frames)
    wins = windows(lat)
    tpf = tokens_per_frame(res)
    frame_bytes = WAN14B["channels"] * (res[0] // 8) * (res[1] // 8) * 4  # fp32 latent frame
    conds = 2
    t_call = window_seconds(WINDOW * tpf, tflops, util)  # one window, one conditioning
    one_device = sum(window_seconds(w * tpf, tflops, util) for w in wins) * conds
    plan = ws.plan_step([w * tpf for w in wins], conds, [1.0] * devices)
    unit = t_call / (WINDOW * tpf)  # seconds per plan unit (token x cond)
    compute = plan.time * unit
    # transfer: windows placed off the fusing device go out and come back; cond-split ones send the slice to
    # the devices holding a conditioning and get one output back from each
    moved_in = moved_out = msgs = 0
    for w, d in zip(wins, plan.device_of, strict=True):
        if d is None:
            helpers = min(devices, conds) - 1
            moved_in += helpers * w * frame_bytes
            moved_out += helpers * w * frame_bytes
            msgs += 2 * helpers
        elif d != 0:
            moved_in += w * frame_bytes
            moved_out += conds * w * frame_bytes
            msgs += 2
    transfer = (moved_in + moved_out) / (gbps * 1e9 / 8) + msgs * latency_ms / 1e3
    step = compute + transfer
    pairs = len(wins) * conds
    pair_bound = one_device / (math.ceil(pairs / devices) * t_call)  # every pair one equal call
    # sequence parallel inside every window: all-to-all volume per window call
    tokens = WINDOW * tpf
    sp_bytes = 4 * WAN14B["layers"] * tokens * WAN14B["dim"] * 2 * (devices - 1) / devices
    sp_step = len(wins) * conds * (t_call / devices + sp_bytes / (gbps * 1e9 / 8))
    return {"frames": frames, "res": res_name, "latent": lat, "windows": len(wins), "devices": devices,
            "mode": plan.mode, "one": one_device, "step": step, "transfer_mb": (moved_in + moved_out) / 1e6,
            "transfer_s": transfer, "speedup": one_device / step, "pair_bound": min(pair_bound, devices),
            "sp_gb": sp_bytes * len(wins) * conds / 1e9, "sp_speedup": one_device / sp_step}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tflops", type=float, default=989.0, help="peak dense bf16 TFLOPS per device (H100 SXM)")
    ap.add_argument("--util", type=float, default=0.4, help="utilisation reached by the model (0-1)")
    ap.add_argument("--gbps", type=float, default=100.0, help="link between machines, Gbit/s (100 GbE / IB EDR)")
    ap.add_argument("--latency-ms", type=float, default=0.05, help="per message")
    args = ap.parse_args()
    ws = _work_split()
    rows = [simulate(f, r, n, args.tflops, args.util, args.gbps, args.latency_ms, ws)
            for r in RESOLUTIONS for f in (241, 481) for n in (2, 4, 8, 16)]
    lines = ["# Window split past one machine: Wan 2.1 14B, simulated", "",
             f"Device: {args.tflops:g} TFLOPS bf16 peak at {args.util:.0%} utilisation; link {args.gbps:g} Gbit/s, "
             f"{args.latency_ms:g} ms per message; CFG on (2 conditionings); windows 21/16 latent frames.", "",
             "| res | frames (latent) | windows | devices | plan | 1-device step s | step s | transfer MB/step | "
             "transfer s | speed-up | (window, cond) bound | seq.-parallel GB/step | seq.-parallel speed-up |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['res']} | {r['frames']} ({r['latent']}) | {r['windows']} | {r['devices']} | {r['mode']} "
                     f"| {r['one']:.1f} | {r['step']:.1f} | {r['transfer_mb']:.0f} | {r['transfer_s']:.3f} | "
                     f"x{r['speedup']:.2f} | x{r['pair_bound']:.1f} | {r['sp_gb']:.0f} | x{r['sp_speedup']:.2f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    OUT.mkdir(exist_ok=True)
    (OUT / "sim_distributed.md").write_text(text)


if __name__ == "__main__":
    main()
