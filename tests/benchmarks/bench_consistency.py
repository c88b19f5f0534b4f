"""Benchmark of long-range consistency: does what the first window decides hold at the last?

    /work/main/.host/venv/bin/python tests/benchmarks/bench_consistency.py --out bench_out/consistency \\
        [--frames 128 256 512] [--seeds 0 1 2 3 4 5 6 7] [--methods ...]

The trained toy world model (tests/models/longanim_world_wan21.safetensors, world in tests/tools/synthworld.py) is
sampled with the EMPTY prompt, so the model chooses the balls' colours itself (it was trained with 10 % empty
prompts): nothing in the conditioning carries that choice from one window to the next. Every method runs the same
seed, 12 Euler steps, scheduler simple, cfg 1, in-process on the host's own KSampler (``nodes.common_ksampler``).
Per non-overlapping 16-frame block the set of colours present in at least half its frames
(``world_metrics.window_colour_sets``), then ``world_metrics.scene_consistency``: agreement (later non-empty blocks
whose set equals the first non-empty block's), distinct sets per video, last block = first, share of empty blocks.
Beside them: median ball step at the 16-frame borders / inside (``border_jumps``), the latent seam ratio
(``metrics.seam_ratio``), and ``cost`` = model frame-evaluations per frame-step as the window loop ran them (the
windows every evaluation recorded, summed; a model without windows costs 1).

``--gaussian`` adds the exact Gaussian window benchmark's drift (``analytic_quality.py``'s hard case, whose drift
is the correlation lost between the first and the last frame) for the same schedules where they exist there.
Prints a markdown table, writes ``results.csv`` and ``plot.png`` to ``--out``. Toy world: figures rank methods on
this world only.
"""
from __future__ import annotations

import argparse
import csv
import importlib.util
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
from benchcommon import two_bar_plot, write_results  # noqa: E402

L = 16  # window length (latent frames) of every windowed method and the block of the colour sets
MODEL = ROOT / "tests" / "models" / "longanim_world_wan21.safetensors"


def host(comfyui: str):
    """Import the host ComfyUI in-process (CPU) and this pack under the alias ``longanim``."""
    if comfyui not in sys.path:
        sys.path.insert(0, comfyui)
    import comfy.cli_args

    comfy.cli_args.args.cpu = True
    if "longanim" not in sys.modules:
        spec = importlib.util.spec_from_file_location("longanim", ROOT / "__init__.py",
                                                      submodule_search_locations=[str(ROOT)])
        mod = importlib.util.module_from_spec(spec)
        sys.modules["longanim"] = mod
        spec.loader.exec_module(mod)
    for sub in ("nodes.window_nodes", "nodes.noise_nodes", "nodes.comfy.windows", "nodes.comfy.window_options",
                "nodes.attention_nodes"):
        importlib.import_module(f"longanim.{sub}")
    return sys.modules["longanim"]


class CostTally:
    """Frame-evaluations per frame-step from the window loop's own record: every evaluation's windows are noted in
    the run's ``ScheduleRecord``; this wraps ``ScheduleRecord.note`` to sum them (window frames, video frames)."""

    def __init__(self, cw):
        self.evals = self.frame_steps = 0
        self.calls = 0
        self.last: list[list[int]] = []
        orig = cw.ScheduleRecord.note
        tally = self

        def note(rec, step, windows):
            tally.calls += 1
            tally.evals += sum(len(w) for w in windows)
            tally.frame_steps += len({f for w in windows for f in w})
            tally.last = [list(w) for w in windows]
            return orig(rec, step, windows)

        cw.ScheduleRecord.note = note

    def reset(self):
        self.evals = self.frame_steps = self.calls = 0

    def cost(self) -> float:
        return self.evals / self.frame_steps if self.frame_steps else 1.0


def _zola(la, **over):
    opts = {**dict(context_length=L, stride=12, max_skip=1, fusion="zola", seed=0, noise="off"), **over}
    return lambda m: la.nodes.window_nodes.LongAnimZoLAWindows().run(m, **opts)[0]


def _scene(la, rule, share=0.75, **over):
    """ZoLA windows (node defaults otherwise) with the window loop's scene noise ``rule``."""
    cw, cwo = la.nodes.comfy.windows, la.nodes.comfy.window_options
    opts = {**dict(schedule="zola", length=L, stride=12, max_skip=1, fusion="zola", seed=0, ends="truncate",
                   max_batch=0, scene_noise=rule, scene_share=share), **over}
    return lambda m: cw.patch_model_windows(m, cwo.WindowOptions(**opts))


def _aligned(la, rule, align=4, until=1.0, **over):
    """ZoLA truncated windows whose random offset is a multiple of ``align`` (the scene noise's chunk)."""
    cw, cwo = la.nodes.comfy.windows, la.nodes.comfy.window_options
    ws = importlib.import_module("longanim.nodes.algorithms.window_schedules")

    class Aligned(cwo.WindowOptions):
        def windows(self, num_frames, step, seed, num_steps=None):
            g = ws.step_generator(seed, step)
            early = step < until * (num_steps or 1)
            off = align * ws._randint(g, 0, self.stride // align - 1) if early else ws._randint(g, 0, self.stride - 1)
            return ws.tiled_windows(num_frames, self.length, self.stride, off)

    opts = {**dict(schedule="zola", length=L, stride=12, max_skip=1, fusion="zola", seed=0, ends="truncate",
                   max_batch=0, scene_noise=rule, scene_share=1.0), **over}
    return lambda m: cw.patch_model_windows(m, Aligned(**opts))


def _grid_every_step(la):
    """The ZoLA node's defaults with the offsets on the freenoise chunk grid at every step (the previous default;
    without the step count the window options align every step)."""
    cw, cwo = la.nodes.comfy.windows, la.nodes.comfy.window_options

    class GridEveryStep(cwo.WindowOptions):
        def windows(self, num_frames, step, seed, num_steps=None):
            return super().windows(num_frames, step, seed, None)

    return lambda m: cw.patch_model_windows(m, GridEveryStep(**dict(cwo.cs.ZOLA_DEFAULTS)))


def _genl(la, stride=8):
    return lambda m: la.nodes.window_nodes.LongAnimGenLWindows().run(m, context_length=L, stride=stride,
                                                                      fusion="least_squares")[0]


def _noise(la, node: str, **opts):
    nn = la.nodes.noise_nodes

    def apply(m):
        recipe = getattr(nn, node)().run(seed=0, **opts)[1]
        return nn.LongAnimApplyNoiseToModel().run(m, recipe)[0]
    return apply


def methods(la) -> dict:
    """name -> model builder (model -> patched model)."""
    zn = la.nodes.window_nodes.LongAnimZoLAWindows
    defaults = {k: v[1].get("default") for part in zn.INPUT_TYPES().values() for k, v in part.items()
                if isinstance(v, tuple) and len(v) > 1 and isinstance(v[1], dict) and "default" in v[1]}
    defaults.pop("model", None)
    fn = _noise(la, "LongAnimFreeNoiseShuffle", window_length=L, stride=4)
    rm = _noise(la, "LongAnimRepeatMaskNoise", ratio=0.5, base_length=L)
    return {
        "full length": lambda m: m,
        "isolated windows": _genl(la, stride=L),
        "Gen-L stride 8": _genl(la),
        "ZoLA node default": lambda m: zn().run(m, **defaults)[0],
        "ZoLA noise off (old default)": _zola(la, ends="truncate"),
        "ZoLA, chunk grid at every step": _grid_every_step(la),
        "ZoLA + repeat-mask 0.5": lambda m: _zola(la, ends="shift")(rm(m)),
        "FreeNoise + Gen-L": lambda m: _genl(la)(fn(m)),
        "FreeNoise + ZoLA": lambda m: _zola(la)(fn(m)),
        "ZoLA + scene tile": _scene(la, "tile"),
        "ZoLA + scene blend 0.75": _scene(la, "blend", 0.75),
        "ZoLA + scene blend 0.5": _scene(la, "blend", 0.5),
        "ZoLA + scene blend 0.9": _scene(la, "blend", 0.9),
        "ZoLA + scene freenoise": _scene(la, "freenoise"),
        "Gen-L stride 12 + scene freenoise": _scene(la, "freenoise", schedule="uniform", fusion="least_squares"),
        "ZoLA aligned 4 + scene freenoise": _aligned(la, "freenoise"),
        "ZoLA aligned 4 + scene tile": _aligned(la, "tile"),
        "ZoLA aligned 4 first half + scene freenoise": _aligned(la, "freenoise", until=0.5),
    }


def spectral_methods(la) -> dict:
    """Attention Expansion (ZoLA Eqs. 3-4, windows of L frames at stride L/2) with and without FreeLong /
    FreeLong++ global blend, on the whole video in one model call and inside ZoLA windows of 4 L or 2 L frames
    (the global branch then spans one window: 4x / 2x the trained length)."""
    exp = la.nodes.attention_nodes.LongAnimAttentionExpansion

    def expansion(blend):
        return lambda m: exp().run(m, L, 0, 0, blend)[0]

    def windowed(blend, mult=4):
        return lambda m: _zola(la, context_length=mult * L, stride=3 * L * mult // 4)(expansion(blend)(m))
    return {
        "expansion 16": expansion("off"),
        "expansion 16 + freelong": expansion("freelong"),
        "expansion 16 + freelong++": expansion("freelong++"),
        "ZoLA windows 64 + expansion 16": windowed("off"),
        "ZoLA windows 64 + expansion 16 + freelong": windowed("freelong"),
        "ZoLA windows 32 + expansion 16": windowed("off", 2),
        "ZoLA windows 32 + expansion 16 + freelong": windowed("freelong", 2),
    }


def sample(la, model, frames: int, seed: int, steps: int, text: str = ""):
    import comfy.latent_formats
    import nodes as comfy_nodes
    import torch

    pos = [[synthworld.prompt_embedding(text), {}]]
    neg = [[synthworld.prompt_embedding(""), {}]]
    latent = {"samples": torch.zeros(1, 16, frames, 8, 8)}
    out = comfy_nodes.common_ksampler(model, seed, steps, 1.0, "euler", "simple", pos, neg, latent)[0]["samples"]
    return comfy.latent_formats.Wan21().process_in(out.float())[0]  # model space [C, T, H, W]


def figures(z, frames: int, windows: list[list[int]] | None = None) -> dict:
    wm = train_tiny.world_metrics()
    spec = importlib.util.spec_from_file_location("longanim_metrics", ROOT / "nodes" / "algorithms" / "metrics.py")
    metrics = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(metrics)
    det = wm.detect_blobs(wm.code_maps(z, synthworld.codes()))
    rep = wm.scene_consistency(wm.window_colour_sets(det["count"], L))
    borders = list(range(L, frames, L))
    j = wm.border_jumps(det["centroid"], borders)
    rep.update(jump_border=j["border"], jump_inside=j["inside"],
               seam_ratio=metrics.seam_ratio(metrics.frame_jumps(z, frame_axis=1), borders))
    # the method's own borders: where the last step's windows start or end inside the video
    own = sorted({w[0] for w in windows or [] if 0 < w[0] < frames} |
                 {w[-1] + 1 for w in windows or [] if 0 < w[-1] + 1 < frames})
    rep["jump_ratio_own"] = wm.border_jumps(det["centroid"], own)["ratio"] if own else float("nan")
    return rep


COLUMNS = ["cost", "agreement", "distinct", "last_equals_first", "empty", "jump_border", "jump_inside",
           "seam_ratio", "jump_ratio_own"]


GAUSSIAN = [
    # (name, bench_schedules.Sched keywords, scene noise (rule, share) or None); hard case, 16-frame windows
    ("isolated windows", dict(family="isolated", schedule="batched", stride=L, weights="flat"), None),
    ("Gen-L stride 8", dict(family="gen-l", schedule="uniform", stride=L // 2), None),
    ("ZoLA noise off (old default)", dict(family="truncated", stride=12, ends="truncate", weights="zola"),
     None),
    ("FreeNoise + Gen-L", dict(family="gen-l", schedule="uniform", stride=L // 2), ("freenoise", 0.0)),
    ("FreeNoise + ZoLA", dict(family="truncated", stride=12, ends="truncate", weights="zola"), ("freenoise", 0.0)),
    ("ZoLA + scene tile", dict(family="truncated", stride=12, ends="truncate", weights="zola"), ("tile", 1.0)),
    *[(f"ZoLA + scene blend {a:g}", dict(family="truncated", stride=12, ends="truncate", weights="zola"),
       ("blend", a)) for a in (0.5, 0.75)],
    ("Gen-L stride 12 + scene freenoise", dict(family="gen-l", schedule="uniform", stride=12), ("freenoise", 0.0)),
    ("ZoLA aligned 4 + scene freenoise", dict(family="truncated", stride=12, ends="truncate", weights="zola",
                                              align=4), ("freenoise", 0.0)),
    ("ZoLA, chunk grid at every step", dict(family="truncated", stride=12, ends="truncate",
                                            weights="flat", align=4), ("freenoise", 0.0)),
    ("ZoLA node default", dict(family="truncated", stride=12, ends="truncate", weights="flat", align=4,
                               align_until=None), ("freenoise", 0.0)),
]


def gaussian_rows(la, names: list[str] | None = None) -> list[dict]:
    """Cost, seam and drift of the exact Gaussian window benchmark's hard case (``bench_schedules.py``: 96 frames,
    correlation length 6 + a global value no window sees whole, 20 Euler steps, 8 window seeds), the structured
    noises as the window loop builds them (``scene_noise``) from 8192 i.i.d. draws per seed."""
    spec = importlib.util.spec_from_file_location("bench_schedules", ROOT / "tests" / "benchmarks" /
                                                  "bench_schedules.py")
    bs = importlib.util.module_from_spec(spec)
    sys.modules["bench_schedules"] = bs  # its dataclasses look their module up
    spec.loader.exec_module(bs)
    import torch

    sn = importlib.import_module("longanim.nodes.algorithms.scene_noise")
    orig = bs._noise_covariance

    def noise_cov(sched, case, seed):
        if sched.noise is None or sched.noise[0] != "scene":
            return orig(sched, case, seed)
        rule, share = sched.noise[1]
        n = torch.randn((1, case.num_frames, 8192), generator=torch.Generator().manual_seed(seed))
        n = sn.scene_noise(n, 1, case.window, rule, share, seed).double()[0]
        return n @ n.T / n.shape[1]

    bs._noise_covariance = noise_cov
    case = bs.CASES["hard"]
    prior = bs.make_prior(case)
    sigmas = bs.analytic.karras_sigmas(case.steps, case.sigma_min, case.sigma_max)
    rows = []
    todo = [("full length", dict(family="bound", schedule="full"), None), *GAUSSIAN]
    for name, kw, scene in todo:
        if names and name not in names and name != "full length":
            continue
        kw = dict(kw)
        align = kw.pop("align", 1)
        # None: the window loop's share of aligned steps with the freenoise scene noise (its default)
        until = kw.pop("align_until", 1.0)
        until = sn.FREENOISE_ALIGN_UNTIL if until is None else until
        if align > 1:  # ZoLA truncated windows with offsets on multiples of align (the window loop's rule)
            kw["custom"] = (lambda a, s, u: lambda step, seed, case: bs.cs.make_windows(
                "zola", case.num_frames, step, seed, length=case.window, stride=s, overlap=0, max_skip=1,
                ends="truncate", align=a, align_until=u, num_steps=case.steps))(align, kw["stride"], until)
        sched = bs.Sched(name, noise=None if scene is None else ("scene", scene), **kw)
        r = bs.evaluate(sched, prior, sigmas, case)
        rows.append({k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()
                     if k in ("name", "cost", "seam", "drift")})
        print(f"[gaussian] {rows[-1]}", flush=True)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--comfyui", default=os.environ.get("LONGANIM_COMFYUI") or str(ROOT / ".host" / "ComfyUI"))
    ap.add_argument("--out", default=str(ROOT / "bench_out" / "consistency"))
    ap.add_argument("--frames", type=int, nargs="*", default=[128, 256, 512], help="none: the Gaussian part only")
    ap.add_argument("--seeds", type=int, nargs="+", default=list(range(8)))
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--methods", nargs="+", default=None)
    ap.add_argument("--gaussian", action="store_true")
    args = ap.parse_args()
    la = host(args.comfyui)
    import comfy.sd
    import torch

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    base = comfy.sd.load_diffusion_model(str(MODEL))
    table = {**methods(la), **spectral_methods(la)}
    names = args.methods or list(table)
    tally = CostTally(la.nodes.comfy.windows)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for frames in args.frames:
        for name in names:
            acc, t0 = [], time.time()
            tally.reset()
            for seed in args.seeds:
                tally.last = []
                z = sample(la, table[name](base), frames, seed, args.steps)
                acc.append(figures(z, frames, tally.last))
            row = dict(frames=frames, method=name, seeds=len(acc), cost=round(tally.cost(), 3),
                       seconds=round((time.time() - t0) / len(acc), 1))
            for c in COLUMNS[1:]:
                vals = [a[c] for a in acc if isinstance(a.get(c), float) and math.isfinite(a[c])]
                row[c] = round(sum(vals) / len(vals), 3) if vals else float("nan")
            rows.append(row)
            print(f"[bench] {row}", flush=True)
    if args.gaussian:
        grows = gaussian_rows(la, names)
        with open(out / "gaussian.csv", "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(grows[0]))
            w.writeheader()
            w.writerows(grows)
        print("| method (exact Gaussian, hard case) | cost | seam | drift |\n|---|---|---|---|")
        for r in grows:
            print(f"| {r['name']} | {r['cost']} | {r['seam']} | {r['drift']} |")
    keys = ["frames", "method", "seeds", "seconds", *COLUMNS]
    write_results(rows, keys, out)
    plot(rows, out / "plot.png")
    print(f"[bench] wrote {out / 'results.csv'} and {out / 'plot.png'} (toy world: figures rank methods here only)")
    return 0


def plot(rows: list, path: Path) -> None:
    """Bars of agreement (blue) and 1 / distinct sets (orange) per method and length."""
    two_bar_plot(rows, path, lambda r: (r["agreement"], 1.0 / r["distinct"] if r["distinct"] else 0.0),
                 lambda r: str(r["frames"]),
                 "blue: agreement, orange: 1 / distinct colour sets (1 = one scene); x: frames, method", 260)


if __name__ == "__main__":
    sys.exit(main())
