"""Benchmark on the trained toy world model: object-level quality of long videos per stitching method.

    .host/venv/bin/python tests/benchmarks/bench_trained.py --out bench_out/trained [--frames 64 256] [--seeds 0 1]

A toy world (tests/tools/synthworld.py: 1-2 coloured balls bouncing in an 8x8-latent box) and a tiny model trained
on its 8-16 frame clips (tests/models/, tests/tools/train_tiny.py), so the figures rank methods on this world only.
Every method samples the same prompt, seed and sampler (euler / simple, cfg 1) through the real ComfyUI server;
the saved latents are judged with ``nodes/algorithms/world_metrics.py`` against what the prompt names:
identity (frames with exactly the named balls, one each), tracks lasting the whole video, p90 acceleration outside
bounces, median ball jump at the isolated run's window borders vs inside, drift of the balls' look between the
first and last 16 frames, and the latent seam ratio of ``metrics.seam_ratio``. ``cost`` = model frame-evaluations per
frame and sampler step as the run made them: the test pack's ``TinyTestCountEvaluations`` sits right after the
loader and counts the frames of every model call (``apply_model``, inside whichever window loop runs, core's
included; refinement's own calls count too), read from the server after each run and divided by frames x steps
(mean over the seeds). Nothing in the column comes from a formula of the window layout.
Noise travel and randomized-blend refinement (of the isolated windows' output, denoise 0.5) are rows too.

The image-model path (``--image-frames``, default 16): the SD1.5-family model trained on single frames of the same
world (tests/tools/train_tiny_image.py) makes a video of frames in the batch with i.i.d. noise, ZS^2 dependency
noise, + temporal momentum attention (mu 0.98 / 0.9 / 0.8 / 0.5), + momentum and cross-frame attention; the same
figures (no window borders).
Prints a markdown table, writes ``results.csv`` and ``plot.png`` to ``--out``.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "tools"))
sys.path.insert(0, str(ROOT / "tests" / "benchmarks"))
import synthworld  # noqa: E402
import train_tiny  # noqa: E402
from benchcommon import two_bar_plot, write_results  # noqa: E402
from comfy_client import ComfyServer, Graph, execution_error  # noqa: E402

L = 16  # window length (latent frames) of every windowed method


def _zola(**over):
    """Builder of a ZoLA Windows node (windows of L, stride 12, skip 1, ZoLA fusion, truncated ends) with ``over``."""
    opts = {**dict(context_length=L, stride=12, max_skip=1, fusion="zola", seed=0, ends="truncate"), **over}
    return lambda g, m: g.out(g.node("LongAnimZoLAWindows", model=m, **opts))


def _noise(node: str, **opts):
    """Builder of Apply Noise To Model with the recipe of noise node ``node``."""
    return lambda g, m: g.out(g.node("LongAnimApplyNoiseToModel", model=m, recipe=g.out(g.node(node, **opts), 1)))


METHODS = {
    # name: builder(g, model) -> model link; None: isolated windows, then refinement
    "full length": lambda g, m: m,
    "isolated windows": lambda g, m: g.out(g.node(
        "LongAnimGenLWindows", model=m, context_length=L, stride=L, fusion="least_squares")),
    "Gen-L (stride 8)": lambda g, m: g.out(g.node(
        "LongAnimGenLWindows", model=m, context_length=L, stride=8, fusion="least_squares")),
    "ZoLA (paper: skip 2, shift)": _zola(max_skip=2, ends="shift"),
    "ZoLA (skip 1, shift)": _zola(ends="shift"),
    "ZoLA (skip 1, truncate)": _zola(),
    "ZoLA (skip 1, truncate, least squares)": _zola(fusion="least_squares"),
    "ZoLA (skip 1, truncate, flat)": _zola(fusion="flat"),
    "ZoLA truncate + skip_until 0.6": _zola(fusion="least_squares", skip_until=0.6),
    "ZoLA truncate + skip_until 0.3": _zola(fusion="least_squares", skip_until=0.3),
    "core Context Windows": lambda g, m: g.out(g.node(
        "ContextWindowsManual", model=m, context_length=L, context_overlap=4, context_schedule="standard_static",
        context_stride=1, closed_loop=False, fuse_method="pyramid", dim=2)),
    "FreeNoise + Gen-L": lambda g, m: g.out(g.node(
        "LongAnimGenLWindows", context_length=L, stride=8, fusion="least_squares",
        model=_noise("LongAnimFreeNoiseShuffle", seed=0, window_length=L, stride=4)(g, m))),
    "repeat-mask + ZoLA (skip 1, shift)": lambda g, m: _zola(ends="shift")(
        g, _noise("LongAnimRepeatMaskNoise", seed=0, ratio=0.5, base_length=L)(g, m)),
    "noise travel + ZoLA": lambda g, m: _zola()(g, g.out(g.node(
        "LongAnimNoiseTravelModel", model=m, jump=0, start=0.0, end=0.3, repeats=1, seed=0))),
    # isolated windows, then StreamingT2V's randomized-blend refinement (denoise 0.5, chunks of L, overlap 8)
    "isolated + randomized-blend refine": None,
}
REFINE_DENOISE = 0.5

# The image-model path (ZS^2: an image model made to produce video, frames in the batch): builder(g, model)
IMAGE_METHODS = {
    "i.i.d. noise": lambda g, m: m,
    "dependency noise (ZS2 Alg. 1)": lambda g, m: _dependency(g, m),
    **{f"+ temporal momentum attention (mu {mu})": (lambda mu_: lambda g, m: g.out(g.node(
        "LongAnimTemporalMomentumAttention", model=_dependency(g, m), momentum=mu_, blocks="all",
        start_percent=0.0, end_percent=1.0)))(mu) for mu in (0.98, 0.9, 0.8, 0.5)},  # 0.98: ZS2's default
    "+ momentum (mu 0.98) + cross-frame attention": lambda g, m: g.out(g.node(
        "LongAnimCrossFrameAttention", model=g.out(g.node(
            "LongAnimTemporalMomentumAttention", model=_dependency(g, m), momentum=0.98, blocks="all",
            start_percent=0.0, end_percent=1.0)), mode="bidirectional_anchor", blocks="all", start_percent=0.0,
        end_percent=1.0)),
}
IMAGE_MODEL = "longanim_world_sd15.safetensors"


def _dependency(g, m):
    return _noise("LongAnimDependencyNoise", seed=0, lam=0.01, candidates=10, iterations=15,
                  variant="halve_step")(g, m)


def _counted(g, model):
    """The model with the test pack's evaluation counter (``GET /tinytest/evaluations`` reads it per run)."""
    return g.out(g.node("TinyTestCountEvaluations", model=model))


def graph(method: str, frames: int, seed: int, text: str, steps: int, tag: str) -> dict:
    g = Graph()
    base = _counted(g, g.out(g.node("UNETLoader", unet_name="longanim_world_wan21.safetensors",
                                     weight_dtype="default")))
    refine = METHODS[method] is None
    model = METHODS["isolated windows"](g, base) if refine else METHODS[method](g, base)
    pos = g.out(g.node("TinyTestConditioning", text=text, family="synthworld"))
    neg = g.out(g.node("TinyTestConditioning", text="", family="synthworld"))
    latent = g.out(g.node("EmptyHunyuanLatentVideo", width=64, height=64, length=4 * (frames - 1) + 1,
                          batch_size=1))
    s = g.node("KSampler", model=model, seed=seed, steps=steps, cfg=1.0, sampler_name="euler", scheduler="simple",
               positive=pos, negative=neg, latent_image=latent, denoise=1.0)
    if refine:
        s = g.node("LongAnimRandomizedBlendRefine", model=base, positive=pos, negative=neg, latent=g.out(s),
                   seed=seed, steps=steps, cfg=1.0, sampler_name="euler", scheduler="simple",
                   denoise=REFINE_DENOISE, chunk_length=L, overlap=8, mode="randomized_blend",
                   length_unit="latent frames")
    g.node("SaveLatent", samples=g.out(s), filename_prefix=f"bench/{tag}")
    return g.prompt()


def image_graph(method: str, frames: int, seed: int, text: str, steps: int, tag: str) -> dict:
    """The image model on ``frames`` frames in the batch (EmptyLatentImage), euler / normal, cfg 1."""
    g = Graph()
    model = IMAGE_METHODS[method](g, _counted(g, g.out(g.node("UNETLoader", unet_name=IMAGE_MODEL,
                                                               weight_dtype="default"))))
    pos = g.out(g.node("TinyTestConditioning", text=text, family="synthworld_sd15"))
    neg = g.out(g.node("TinyTestConditioning", text="", family="synthworld_sd15"))
    latent = g.out(g.node("EmptyLatentImage", width=64, height=64, batch_size=frames))
    s = g.node("KSampler", model=model, seed=seed, steps=steps, cfg=1.0, sampler_name="euler", scheduler="normal",
               positive=pos, negative=neg, latent_image=latent, denoise=1.0)
    g.node("SaveLatent", samples=g.out(s), filename_prefix=f"bench/{tag}")
    return g.prompt()


def image_figures(raw, text: str) -> dict:
    """World figures of frames-in-batch SD1.5 latents ``[T, 4, H, W]`` (no windows: no borders)."""
    wm = train_tiny.world_metrics()
    sys.path.insert(0, str(ARGS.comfyui))
    import comfy.latent_formats

    z = comfy.latent_formats.SD15().process_in(raw.float())
    maps = wm.code_maps(z, synthworld.codes(synthworld.IMAGE_CHANNELS), channel_axis=1)
    return wm.world_report(maps, synthworld.parse_prompt(text), window=min(L, z.shape[0]))


def figures(raw, text: str, frames: int) -> dict:
    import importlib.util

    sys.path.insert(0, str(ARGS.comfyui))
    import comfy.latent_formats

    spec = importlib.util.spec_from_file_location("longanim_metrics", ROOT / "nodes" / "algorithms" / "metrics.py")
    metrics = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(metrics)
    wm = train_tiny.world_metrics()
    z = comfy.latent_formats.Wan21().process_in(raw.float())[0]
    borders = list(range(L, frames, L))
    rep = wm.world_report(wm.code_maps(z, synthworld.codes()), synthworld.parse_prompt(text), borders=borders,
                          window=L)
    rep["seam_ratio"] = metrics.seam_ratio(metrics.frame_jumps(z, frame_axis=1), borders)
    return rep


COLUMNS = ["count_accuracy", "identity", "tracks", "accel_p90", "jump_border", "jump_inside", "drift_peak",
           "seam_ratio"]


def main() -> int:
    global ARGS
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--comfyui", default=str(ROOT / ".host" / "ComfyUI"))
    ap.add_argument("--out", default=str(ROOT / "bench_out" / "trained"))
    ap.add_argument("--frames", type=int, nargs="*", default=[64, 256], help="video-model lengths; none to skip")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--prompt", default="red blue")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--methods", nargs="+", default=list(METHODS))
    ap.add_argument("--image-frames", type=int, nargs="*", default=[16],
                    help="frames in the batch for the image-model (ZS^2) path; none to skip it")
    ap.add_argument("--image-methods", nargs="+", default=list(IMAGE_METHODS))
    ap.add_argument("--image-steps", type=int, default=20)
    ARGS = ap.parse_args()
    import safetensors.torch

    out = Path(ARGS.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    with ComfyServer(ARGS.comfyui, sys.executable, output_dir=out / "server") as server:
        runs = [("video", f, m) for f in ARGS.frames for m in ARGS.methods]
        runs += [("image", f, m) for f in ARGS.image_frames for m in ARGS.image_methods]
        for family, frames, method in runs:
            acc, costs = [], []
            t0 = time.time()
            server.get("/tinytest/evaluations")  # reset the counter
            for seed in ARGS.seeds:
                tag = f"{family}_{frames}_{abs(hash(method)) % 10**8}_{seed}"
                if family == "video":
                    prompt = graph(method, frames, seed, ARGS.prompt, ARGS.steps, tag)
                else:
                    prompt = image_graph(method, frames, seed, ARGS.prompt, ARGS.image_steps, tag)
                entry = server.run(prompt, timeout=3600)
                counts = server.get("/tinytest/evaluations")  # this run's model calls (and a reset)
                err = execution_error(entry)
                if err:
                    print(f"[bench] {method} {frames}: {err.get('exception_message')}", flush=True)
                    break
                f = sorted((out / "server" / "bench").glob(f"{tag}_*.latent"))[-1]
                raw = safetensors.torch.load_file(str(f))["latent_tensor"]
                acc.append(figures(raw, ARGS.prompt, frames) if family == "video" else
                           image_figures(raw, ARGS.prompt))
                steps = ARGS.steps if family == "video" else ARGS.image_steps
                costs.append(counts["frame_evaluations"] / (frames * steps))  # euler: one model call per step
            if not acc:
                continue
            row = dict(model=family, frames=frames, method=method, seeds=len(acc),
                       cost=round(sum(costs) / len(costs), 2),
                       seconds=round((time.time() - t0) / len(acc), 1))
            for c in COLUMNS:
                vals = [a[c] for a in acc if isinstance(a.get(c), float) and math.isfinite(a[c])]
                row[c] = round(sum(vals) / len(vals), 3) if vals else float("nan")
            rows.append(row)
            print(f"[bench] {row}", flush=True)
    keys = ["model", "frames", "method", "seeds", "cost", "seconds", *COLUMNS]
    write_results(rows, keys, out)
    plot(rows, out / "plot.png")
    print(f"[bench] wrote {out / 'results.csv'} and {out / 'plot.png'} (toy world: figures rank methods here only)")
    return 0


def plot(rows: list, path: Path) -> None:
    """Bars of identity (blue) and tracks (orange) per method and length."""
    two_bar_plot(rows, path, lambda r: (r["identity"], r["tracks"]), lambda r: f"{r['model'][0]}{r['frames']}",
                 "blue: identity, orange: tracks lasting (0..1); x: v/i (video/image model) + frames, method", 200)


if __name__ == "__main__":
    sys.exit(main())
