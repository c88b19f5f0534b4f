"""Benchmark of noise travel (issue 5, ZoLA Eq. 9) on the tiny models. A script, not a test.

Run: ``cd /work/main && .host/venv/bin/python tests/benchmarks/bench_travel.py [--repeats 3] [--steps 10]``.

For each case (tiny Wan 2.1 and tiny SD1.5, with and without LongAnim ZoLA windows) it samples with plain
euler and with ``LongAnimNoiseTravel`` (defaults: auto L, range [0, 0.3), 1 repeat; and a repeat-mask recipe
case) through SamplerCustomAdvanced's code path, interleaving the runs, and reports the median of
``--repeats`` runs after one warm-up: model calls (counted by a PREDICT_NOISE wrapper), wall time, time per
model call and the time spent outside model calls. Target: the time per model call with travel is within 2 %
of plain sampling, i.e. travel costs only its extra model calls; the CPU time of the process is reported next
to wall time because wall time on a shared CPU is noisy. A second table times the travel machinery alone
(zero-cost model) and gives its share of the real run's wall time. Prints a markdown table and writes it to
``bench_out/travel.md``.
"""
from __future__ import annotations

import argparse
import logging
import os
import pathlib
import statistics
import time
import types

import benchcommon
from benchcommon import ROOT

logger = logging.getLogger("bench_travel")
TARGET = 0.02


def _setup():
    """Import ComfyUI (CPU) and the pack under the alias ``longanim``, as the tier-2 tests do."""
    benchcommon.setup("cpu")


class Timer:
    """PREDICT_NOISE wrapper: counts model evaluations and the time spent in them; shared on clone."""

    def __init__(self):
        self.calls = 0
        self.seconds = 0.0

    def __deepcopy__(self, memo):
        return self

    def __call__(self, executor, *args, **kwargs):
        t0 = time.perf_counter()
        try:
            return executor(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - t0
            self.calls += 1


class NullModel:
    """A k-diffusion model that costs nothing: x0 = x / 2; carries model_sampling where travel looks for it."""

    def __init__(self, model_sampling):
        self.inner_model = types.SimpleNamespace(inner_model=types.SimpleNamespace(model_sampling=model_sampling))

    def __call__(self, x, sigma, **kwargs):
        return x * 0.5


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=8, help="latent height/width")
    parser.add_argument("--models", default="wan21,sd15")
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "bench_out" / "travel.md")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    _setup()
    import comfy.patcher_extension
    import comfy.samplers
    import comfyhelpers as host
    import torch
    from comfy_extras.nodes_custom_sampler import Noise_RandomNoise
    from longanim.nodes import travel_nodes as tn
    from longanim.nodes.algorithms.noise import NoiseRecipe
    from longanim.nodes.comfy import windows as ca

    def windows(model, length):
        return ca.patch_model_windows(model, ca.WindowOptions(schedule="zola", length=length, stride=length * 3 // 4,
                                                              overlap=1, max_skip=2, fusion="zola", seed=0))

    def timed(model):
        timer = Timer()
        m = model.clone()
        m.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.PREDICT_NOISE, "bench.timer", timer)
        return m, timer

    summary: list[float] = []
    recipe = NoiseRecipe("repeat_mask", {"ratio": 0.5, "base_length": max(1, args.frames // 4)})
    cases = []
    for fam in args.models.split(","):
        base = host.wan() if fam == "wan21" else host.sd15()
        latent = (host.wan_latent if fam == "wan21" else host.sd_latent)(args.frames, args.size)
        cases.append((fam, base, latent, None))
        cases.append((f"{fam} + windows", windows(base, max(2, args.frames // 2)), latent, None))
        if fam == "wan21":
            cases.append((f"{fam} + windows + recipe", windows(base, max(2, args.frames // 2)), latent, recipe))

    lines = [
        "| case | sampler | model calls | wall s (median) | wall s (min) | wall ms / call (min) | per-call vs euler "
        "| CPU ms / call (min) | per-call vs euler (CPU) | ms outside model calls (median) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    machinery = [
        "| case | latent | steps run plain / travel | null-model µs / step plain | travel µs / step "
        "| travel machinery µs / run | share of travel wall time | ok |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, model, latent, rec in cases:
        inner = comfy.samplers.sampler_object("euler")
        samplers = {"euler": inner, "travel(euler)": tn.LongAnimNoiseTravel().run(inner, 0, 0.0, 0.3, 1, 0, rec)[0]}
        res = {k: {"wall": [], "cpu": [], "model": [], "calls": 0} for k in samplers}
        for r in range(args.repeats + 1):
            for key, sampler in samplers.items():
                m, timer = timed(model)
                t0, c0 = time.perf_counter(), time.process_time()
                host.custom_advanced(m, latent, Noise_RandomNoise(1), sampler=sampler, steps=args.steps)
                wall, cpu = time.perf_counter() - t0, time.process_time() - c0
                if r:  # the first round is a warm-up
                    res[key]["wall"].append(wall)
                    res[key]["cpu"].append(cpu)
                    res[key]["model"].append(timer.seconds)
                res[key]["calls"] = timer.calls
        best = {k: min(v["wall"]) / v["calls"] for k, v in res.items()}
        best_cpu = {k: min(v["cpu"]) / v["calls"] for k, v in res.items()}
        for key, v in res.items():
            outside = statistics.median(w - mo for w, mo in zip(v["wall"], v["model"]))
            lines.append(f"| {name} | {key} | {v['calls']} | {statistics.median(v['wall']):.2f} | "
                         f"{min(v['wall']):.2f} | {1000 * best[key]:.1f} | "
                         f"{100 * (best[key] / best['euler'] - 1):+.1f} % | {1000 * best_cpu[key]:.1f} | "
                         f"{100 * (best_cpu[key] / best_cpu['euler'] - 1):+.1f} % | {1000 * outside:.1f} |")
        # the travel machinery alone: same samplers, a model that costs nothing (x0 = x / 2)
        ms = model.get_model_object("model_sampling")
        null = NullModel(ms)
        x = torch.randn(latent["samples"].shape, generator=torch.Generator().manual_seed(0))
        sigmas = comfy.samplers.calculate_sigmas(ms, "normal", args.steps).cpu()
        fn_plain = samplers["euler"].sampler_function
        fn_travel = samplers["travel(euler)"].sampler_function
        t_plain, t_travel = [], []
        for _ in range(20):
            t0 = time.perf_counter()
            fn_plain(null, x, sigmas, extra_args={"seed": 1, "model_options": {}}, callback=None, disable=True)
            t1 = time.perf_counter()
            fn_travel(null, x, sigmas, extra_args={"seed": 1, "model_options": {}}, callback=None, disable=True)
            t2 = time.perf_counter()
            t_plain.append(t1 - t0)
            t_travel.append(t2 - t1)
        n_plain, n_travel = res["euler"]["calls"], res["travel(euler)"]["calls"]
        per_step = min(t_plain) / n_plain
        extra = min(t_travel) - per_step * n_travel  # cost beyond running the extra steps themselves
        share = extra / min(res["travel(euler)"]["wall"])
        summary.append(share)
        machinery.append(f"| {name} | {list(latent['samples'].shape)} | {n_plain} / {n_travel} | "
                         f"{1e6 * per_step:.0f} | "
                         f"{1e6 * min(t_travel) / n_travel:.0f} | {1e6 * extra:.0f} | {100 * share:.3f} % | "
                         f"{'yes' if share <= TARGET else 'NO'} |")
        logger.info(lines[-2])
        logger.info(lines[-1])
        logger.info(machinery[-1])

    header = (f"Noise travel vs plain euler, {args.steps} steps, latents of {args.frames} frames "
              f"{args.size}x{args.size}; CPU {os.cpu_count()} cores, torch {torch.__version__}, "
              f"{torch.get_num_threads()} intra-op threads, load average {os.getloadavg()[0]:.1f}; "
              f"median of {args.repeats} runs after a warm-up. Travel defaults: auto L = max(1, round(0.1 steps)), "
              f"range [0, 0.3), 1 repeat -> steps + jumps x L model calls. Per-call overhead = "
              f"(wall / model calls) with travel / without - 1, target <= {100 * TARGET:.0f} %.\n")
    table = (header + "\nReal tiny models (wall time includes the model; noisy on a shared CPU):\n\n" + "\n".join(lines)
             + "\n\nTravel machinery with a zero-cost model (re-noise draws, segment setup, callbacks), min of 20; "
             "its share of the real travel run's wall time is the overhead beyond the extra model calls:\n\n"
             + "\n".join(machinery) + f"\n\nWorst share: {100 * max(summary):.3f} % (target <= "
             f"{100 * TARGET:.0f} %).\n")
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(table)
    logger.info("wrote %s", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
