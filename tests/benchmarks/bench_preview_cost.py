"""Benchmark: the cost of the Noise Preview picture against the number of frames (pure torch, no ComfyUI).

    python tests/benchmarks/bench_preview_cost.py [--frames 512 2048 16384] [--full-up-to 2048]

For each length: the noise draw (repeat-mask recipe, latent 4 x 16 x 16, the node's shape without a latent), the
picture as the node draws it (``noise_preview.render_noise_preview``: statistics of the at most 512 frames it
draws) and, up to ``--full-up-to`` frames, the correlation of every frame pair that the picture used to compute
(quadratic in the frames). One thread, seconds of one run (they depend on the machine; the test in
tests/comfy/test_comfy_user_errors.py checks the work, not the time). Prints a markdown table.
"""
from __future__ import annotations

import argparse
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, nargs="+", default=[512, 2048, 16384])
    ap.add_argument("--full-up-to", type=int, default=2048)
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    import torch
    from nodes.algorithms import noise as na
    from nodes.algorithms import noise_preview as npv

    torch.set_num_threads(1)
    recipe = na.NoiseRecipe("repeat_mask", {"ratio": 0.5, "base_length": 16})
    print("| frames | draw (s) | picture (s) | all-pairs correlation, the old picture's cost (s) |")
    print("|---:|---:|---:|---:|")
    for frames in args.frames:
        t0 = time.perf_counter()
        noise = recipe.draw((frames, 4, 16, 16), 0, 0)
        t1 = time.perf_counter()
        npv.render_noise_preview(noise, 0)
        t2 = time.perf_counter()
        full = "not run"
        if frames <= args.full_up_to:
            npv.frame_correlation(noise, 0)
            full = f"{time.perf_counter() - t2:.2f}"
        print(f"| {frames} | {t1 - t0:.2f} | {t2 - t1:.2f} | {full} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
