"""Benchmark: step caching on LongAnim windows, trained toy Wan model: cost as the loop ran it vs quality.

    .host/venv/bin/python tests/benchmarks/bench_cache.py --out bench_out/cache [--frames 64] [--seeds 0 1 2 3]
        [--steps 20] [--thresholds 0.05 0.1 0.2 0.3 0.5]

Runs in-process against the host's ``comfy`` package (so it can read the window loop's record of every run:
``nodes/comfy/run_record.py``): the trained toy world model (tests/models/, world in tests/tools/synthworld.py),
prompt "red blue", euler / simple, cfg 1, the ZoLA Windows node with its defaults (the uncached default), then
the same with ``LongAnim: Window Step Cache`` at several thresholds and with core's LazyCache (whole fused steps).

``cost`` = model frame-evaluations per frame-step from the run's record (only the windows the loop evaluated count).
Quality on the project's instruments (``nodes/algorithms/world_metrics.py``, ``metrics.seam_ratio``): right ball
count, identity, tracks lasting the whole video, p90 acceleration, median ball step at the last step's window
borders vs inside, the latent seam ratio at those borders, and the long-range instrument (``scene_agreement``:
share of later 16-frame blocks whose set of colours equals the first block's, ``world_metrics.scene_consistency``;
with the empty prompt, ``--prompt ""``, the model picks the colours itself and this is the hard test).
A row is ``within`` when every figure's mean over the seeds lies within the uncached default's seed-to-seed range
(min..max over the same seeds), widened by nothing.
Prints a markdown table, writes ``results.csv`` and ``plot.png`` (cost vs identity / seam, one point per row).
"""
from __future__ import annotations

import argparse
import csv
import math
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "tools"))
sys.path.insert(0, str(ROOT / "tests" / "benchmarks"))
import synthworld  # noqa: E402
import train_tiny  # noqa: E402
from benchcommon import write_results  # noqa: E402

MODEL = "longanim_world_wan21.safetensors"
FIGURES = ["count_accuracy", "identity", "tracks", "accel_p90", "jump_border", "jump_inside", "seam_ratio",
           "scene_agreement"]


def setup_host(comfyui: Path):
    sys.path.insert(0, str(comfyui))
    sys.path.insert(0, str(ROOT / "tests"))
    import comfy.cli_args

    comfy.cli_args.args.cpu = True
    import conftest  # noqa: F401  (registers the ``longanim`` alias of the pack)


def default_zola_inputs() -> dict:
    from longanim.nodes import window_nodes as wn

    spec = wn.LongAnimZoLAWindows.INPUT_TYPES()
    return {k: v[1]["default"] for sec in spec.values() for k, v in sec.items() if k != "model"}


def build(method: str, base, threshold: float | None, warmup: float = 0.2, final: float = 0.1):
    """The MODEL of a method: ZoLA Windows (node defaults), + Window Step Cache / LazyCache."""
    from longanim.nodes import cache_nodes
    from longanim.nodes import window_nodes as wn

    model = wn.LongAnimZoLAWindows().run(model=base, **default_zola_inputs())[0]
    if method == "step cache":
        model = cache_nodes.LongAnimWindowStepCache().run(model, threshold, warmup=warmup, final=final)[0]
    elif method == "LazyCache":
        from comfy_extras import nodes_easycache

        out = nodes_easycache.LazyCacheNode.execute(model, threshold, 0.15, 0.95, False)
        model = out.result[0] if hasattr(out, "result") else out[0]
    return model


def sample(model, frames: int, seed: int, steps: int, text: str):
    import nodes as comfy_nodes
    import torch

    pos = [[synthworld.prompt_embedding(text), {}]]
    neg = [[synthworld.prompt_embedding(""), {}]]
    latent = {"samples": torch.zeros(1, 16, frames, 8, 8)}
    out = comfy_nodes.common_ksampler(model, seed, steps, 1.0, "euler", "simple", pos, neg, latent, denoise=1.0)
    return out[0]["samples"]


def figures(raw, text: str, windows) -> dict:
    import comfy.latent_formats
    from longanim.nodes.algorithms import metrics

    wm = train_tiny.world_metrics()
    z = comfy.latent_formats.Wan21().process_in(raw.float())[0]
    borders = sorted({w[0] for w in (windows or []) if w[0] > 0})
    window = max((len(w) for w in windows or []), default=16)
    maps = wm.code_maps(z, synthworld.codes())
    rep = wm.world_report(maps, synthworld.parse_prompt(text), borders=borders, window=window)
    rep["seam_ratio"] = metrics.seam_ratio(metrics.frame_jumps(z, frame_axis=1), borders)
    # the long-range instrument: does every 16-frame block keep the first block's set of colours?
    det = wm.detect_blobs(maps)
    rep["scene_agreement"] = wm.scene_consistency(wm.window_colour_sets(det["count"], 16))["agreement"]
    return rep


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--comfyui", default=os.environ.get("LONGANIM_COMFYUI") or str(ROOT / ".host" / "ComfyUI"))
    ap.add_argument("--out", default=str(ROOT / "bench_out" / "cache"))
    ap.add_argument("--frames", type=int, default=64)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--prompt", default="red blue")
    ap.add_argument("--thresholds", type=float, nargs="+", default=[0.05, 0.1, 0.2, 0.3, 0.5, 1.0])
    ap.add_argument("--warmup", type=float, nargs="+", default=[0.2],
                    help="Window Step Cache warm-up shares (each with every threshold)")
    ap.add_argument("--final", type=float, default=0.1, help="Window Step Cache final share")
    ap.add_argument("--replot", action="store_true", help="redraw plot.png from --out's results.csv")
    ap.add_argument("--lazycache", type=float, nargs="*", default=[0.2], help="core LazyCache thresholds")
    args = ap.parse_args()
    if args.replot:
        with open(Path(args.out) / "results.csv") as fh:
            table = list(csv.DictReader(fh))
        rows = [{k: (float(v) if k in ("cost", "identity", "seam_ratio") else v) for k, v in r.items()}
                for r in table if r["cost"]]
        lo, hi = (float(v) for v in table[-1]["identity"].split(".."))
        plot(rows, {"identity": [lo, hi]}, Path(args.out) / "plot.png")
        return 0
    setup_host(Path(args.comfyui))
    import comfy.sd
    import folder_paths
    import torch
    from longanim.nodes.comfy import windows as cw

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    base = comfy.sd.load_diffusion_model(folder_paths.get_full_path_or_raise("diffusion_models", MODEL))
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    runs = [("uncached (ZoLA defaults)", "none", None, 0.0)]
    for wu in args.warmup:
        tag = "" if len(args.warmup) == 1 else f" (warm-up {wu:g})"
        runs += [(f"Window Step Cache {t:g}{tag}", "step cache", t, wu) for t in args.thresholds]
    runs += [(f"core LazyCache {t:g}", "LazyCache", t, 0.0) for t in args.lazycache]
    rows, per_seed = [], {}
    for name, method, thr, wu in runs:
        acc, costs, t0 = [], [], time.time()
        for seed in args.seeds:
            raw = sample(build(method, base, thr, wu, args.final), args.frames, seed, args.steps, args.prompt)
            rec = cw.recorded_run(raw)
            costs.append(rec.cost if rec is not None else math.nan)
            acc.append(figures(raw, args.prompt, rec.windows if rec is not None else None))
        keys = [k for k in FIGURES if all(k in a for a in acc)]
        per_seed[name] = {k: [a[k] for a in acc] for k in keys}
        row = dict(method=name, seeds=len(acc), cost=round(sum(costs) / len(costs), 3),
                   seconds=round((time.time() - t0) / len(acc), 1))
        for k in keys:
            vals = [v for v in per_seed[name][k] if isinstance(v, float) and math.isfinite(v)]
            row[k] = round(sum(vals) / len(vals), 3) if vals else float("nan")
        rows.append(row)
        print(f"[bench] {row}", flush=True)
    ref = per_seed[runs[0][0]]
    cols = [k for k in FIGURES if k in rows[0]]
    for row in rows[1:]:
        outside = []
        for k in cols:
            vals = [v for v in ref[k] if math.isfinite(v)]
            mine = [v for v in per_seed[row["method"]][k] if math.isfinite(v)]
            mean = sum(mine) / len(mine) if mine else math.nan
            if vals and math.isfinite(mean) and not (min(vals) - 1e-9 <= mean <= max(vals) + 1e-9):
                outside.append(k)
        row["within"] = "yes" if not outside else "no: " + ", ".join(outside)
    rows[0]["within"] = "(reference)"
    spread = dict(method="uncached seed range (min..max)", seeds=len(args.seeds), cost="", seconds="")
    for k in cols:
        vals = [v for v in ref[k] if math.isfinite(v)]
        spread[k] = f"{min(vals):.3f}..{max(vals):.3f}" if vals else ""
    keys = ["method", "seeds", "cost", "seconds", *cols, "within"]
    print(f"frames {args.frames}, steps {args.steps}, seeds {args.seeds}, prompt {args.prompt!r}")
    write_results(rows + [spread], keys, out)
    plot(rows, ref, out / "plot.png")
    print(f"[bench] wrote {out / 'results.csv'} and {out / 'plot.png'}")
    return 0


def plot(rows: list, ref: dict, path: Path) -> None:
    """Cost (x) vs identity (blue) and seam ratio (orange, right scale 0..2) per row; grey band: the uncached
    default's seed range of identity."""
    from PIL import Image, ImageDraw

    w, h, m = 560, 300, 50
    im = Image.new("RGB", (w, h + 90), "white")
    d = ImageDraw.Draw(im)
    costs = [r["cost"] for r in rows if math.isfinite(r["cost"])]
    lo, hi = 0.0, max(1.5, max(costs) * 1.05)

    def px(c):
        return m + (w - 2 * m) * (c - lo) / (hi - lo)

    def py(v, top=1.0):
        return 10 + h * (1 - min(max(v / top, 0.0), 1.0))

    ids = [v for v in ref.get("identity", []) if math.isfinite(v)]  # the uncached seeds (or their min and max)
    if ids:
        d.rectangle([m, py(max(ids)), w - m, py(min(ids))], fill=(225, 225, 225))
    d.line([m, 10 + h, w - m, 10 + h], fill="black")
    for c in (0.5, 0.8, 1.0, 1.33):
        d.line([px(c), 10 + h, px(c), 14 + h], fill="black")
        d.text((px(c) - 8, 16 + h), f"{c:g}", fill="black")
    for n, r in enumerate(rows):
        if not math.isfinite(r["cost"]):
            continue
        x = px(r["cost"])
        for key, col, top in (("identity", (60, 90, 200), 1.0), ("seam_ratio", (230, 140, 30), 2.0)):
            v = r.get(key, math.nan)
            if isinstance(v, float) and math.isfinite(v):
                y = py(v, top)
                d.ellipse([x - 4, y - 4, x + 4, y + 4], fill=col)
        label = r["method"].replace("Window Step Cache ", "t=").replace("uncached (ZoLA defaults)", "off")
        label = label.replace("core LazyCache ", "Lazy ")
        d.text((x - 10, py(r.get("identity", 0.0)) - 14 - 12 * (n % 3)), label[:14], fill="black")
    d.text((m, h + 34), "x: model evaluations per frame-step (from the loop's record); t = threshold", fill="black")
    d.text((m, h + 48), "blue: identity (0..1); orange: seam ratio (0..2); grey: uncached identity seed range",
           fill="black")
    im.save(path)


if __name__ == "__main__":
    raise SystemExit(main())
