"""Analytic quality benchmark of the pack's long-video techniques (issue 9B). A script, not a test.

Run: ``cd /work/main && .host/venv/bin/python tests/benchmarks/analytic_quality.py [--quick] [--out bench_out]``.
Writes ``<out>/analytic_quality.md`` (markdown table + notes) and ``<out>/analytic_quality.png`` (frontier plots).
Full run: well under 3 min on 2 CPU cores; ``--quick`` (what tests/unit/test_analytic_quality.py runs): < 20 s.

Ground truth. The "short video model" is the exact denoiser of a *window* of a Gaussian video prior
(``nodes/algorithms/analytic.py``: ``T`` frames x ``D`` i.i.d. features, stationary temporal covariance ``K`` =
squared-exponential with correlation length 24 frames + a periodic part with period 40 frames, both longer than
the window ``f = 16``). It is exactly what a perfect short model trained on 16-frame clips of that distribution
would predict, so every error below comes from the long-video technique, not from a network. The exact full-video
denoiser is the upper bound (what a model that sees all frames would do). Sampling: the probability-flow ODE over a
Karras schedule (EDM), the same solver for every technique and as noise travel's inner sampler. Choice: Heun (EDM
Algorithm 1, ``analytic.heun_sample``, 2 calls per step) by default, not Euler: at affordable step counts Euler's own
error is as large as the effects measured (full denoiser, 16 Euler steps: covariance distance 0.24; 16 Heun steps:
0.06; same error needs ~100 Euler steps). ``--solver euler`` runs everything with Euler instead.

Techniques run through the pack's PUBLIC pure API, the same calls the nodes make:
``context_schedule.make_windows`` (schedules ``batched`` = isolated windows, ``uniform`` = Gen-L, ``zola`` = ZoLA
Eqs. 6-7) + ``co_denoise`` with the window denoiser as ``evaluate`` and ``weights`` = flat / least_squares / zola,
``randomized_blend_masks`` (StreamingT2V Eq. 8), ``NoiseRecipe.draw`` for the initial noise (iid, repeat_mask,
mixed, progressive, dependency, freenoise) and ``noise_travel.sample_with_travel`` (ZoLA Eq. 9) around the Euler
inner sampler. Window seeds per step and travel pass are mixed as the pack's window loop does
(``mix_seed(node_seed, sampler_seed, 1000 + pass)``; ``make_windows(..., step, seed)``).

Metrics (all on the generated videos ``[N, T, D]``; ``N`` = groups x videos per group, each group with its own
noise seed and window draws, the same seeds for every technique = common random numbers):

- ``seam``: ``metrics.seam_ratio(metrics.frame_jumps(videos), borders)`` with the borders
  (``metrics.window_borders``) of the schedule of each step, averaged over steps and groups (a fixed schedule has
  the same borders at every step, so this is its plain seam ratio; for ZoLA's re-drawn windows it asks "does any
  step's border show?"). The full denoiser is measured at the isolated-window borders (multiples of ``f``).
- ``peak``: largest mean adjacent-frame change over the true expected change ``E|x_t+1 - x_t|`` (schedule-free
  seam measure; 1 = no frame transition stands out).
- ``long-range``: mean correlation between the frames of the first and the last window (lag ~``T - f``), next to
  the true value from ``K``.
- ``rep@f``: ``analytic.repetition_score`` at lag ``f`` (repetition with the window period) next to the truth.
- ``cov``: ``analytic.covariance_distance`` (relative Frobenius) of the samples' temporal covariance to ``K``; the
  sampling-noise floor is printed. ``cov exact``: the exact output covariance of the deterministic linear
  techniques (``analytic.linear_output_covariance``, no sampling noise).
- ``cost``: model evaluations per frame-step = frames passed through the window model / (``T`` x steps).

This is the easy case (one smooth correlation longer than a window). The harder cases - correlation length 6 frames
with 16-frame windows, a global content value no single window sees whole, drift between the first and the last
window, 96 and 256 frames - and the search over step-dependent schedules are in ``bench_schedules.py``.
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import logging
import math
import pathlib
import re
import sys
import time

import torch

ROOT = pathlib.Path(__file__).resolve().parents[2]
logger = logging.getLogger("analytic_quality")


def _load_pack():
    """Import the pack under the alias ``longanim`` (as tests/conftest.py does) without sys.path edits."""
    if "longanim" not in sys.modules:
        spec = importlib.util.spec_from_file_location("longanim_tests_conftest", ROOT / "tests" / "conftest.py")
        spec.loader.exec_module(importlib.util.module_from_spec(spec))  # tests/conftest.py registers ``longanim``
    from longanim.nodes.algorithms import analytic, metrics, noise, noise_travel, step_cache
    from longanim.nodes.algorithms import context_schedule as cs

    return analytic, metrics, noise, noise_travel, cs, step_cache


analytic, metrics, noise_alg, noise_travel, cs, step_cache = _load_pack()


# ---------------------------------------------------------------------------------------------- setup
@dataclasses.dataclass(frozen=True)
class Config:
    num_frames: int = 96
    window: int = 16
    features: int = 8
    groups: int = 8
    per_group: int = 48
    steps: int = 16
    solver: str = "heun"
    sigma_max: float = 80.0
    sigma_min: float = 0.002
    length_scale: float = 24.0
    period: float = 40.0
    periodic_weight: float = 0.3
    quick: bool = False
    only: str | None = None  # regex: run only the techniques whose name matches


FULL = Config()
QUICK = Config(num_frames=64, groups=3, per_group=24, steps=10, quick=True)


@dataclasses.dataclass(frozen=True)
class Technique:
    name: str
    family: str  # bound / isolated / gen-l / zola / blend / noise / travel
    schedule: str = "uniform"  # "full" = exact full-video denoiser
    stride: int = 8
    max_skip: int = 1
    weights: str | None = "flat"
    blend: bool = False
    noise: tuple = ("iid", ())
    travel: bool = False
    travel_noise: bool = False  # re-noise with the structured init noise (ZoLA Eq. 9) instead of iid
    cache: float = 0.0  # Window Step Cache threshold (0 = no cache; warm-up 0.2, final 0.1 as the node's defaults)
    quick: bool = False  # part of the --quick set

    @property
    def recipe(self):
        return noise_alg.NoiseRecipe(self.noise[0], dict(self.noise[1]))

    @property
    def deterministic(self) -> bool:
        return self.schedule in ("full", "batched", "uniform") and not self.blend and not self.travel and \
            not self.cache


def techniques(cfg: Config) -> list[Technique]:
    f = cfg.window
    h, q = f // 2, f // 4
    rm = ("repeat_mask", (("ratio", 0.5), ("base_length", f)))
    zola_base = dict(schedule="zola", stride=h, max_skip=2, weights="zola")
    out = [
        Technique("full denoiser (bound)", "bound", schedule="full", quick=True),
        Technique("isolated windows", "isolated", schedule="batched", stride=f, quick=True),
    ]
    for stride, tag in ((h, "f/2"), (q, "f/4")):
        for w in ("flat", "least_squares", "zola"):
            out.append(Technique(f"Gen-L {w} s={tag}", "gen-l", stride=stride, weights=w,
                                 quick=(w == "flat" and stride == h) or (w == "least_squares" and stride == q)))
    for stride, tag in ((h, "f/2"), (f, "f")):
        for r in (1, 2, 4):
            out.append(Technique(f"ZoLA s={tag} r<={r}", "zola", schedule="zola", stride=stride, max_skip=r,
                                 weights="zola", quick=(stride == h and r == 2) or (stride == f and r == 1)))
    for tau in (0.1, 0.2, 0.3):  # the Window Step Cache on ZoLA's paper setting (the pack's own loop rule)
        out.append(Technique(f"ZoLA s=f/2 r<=2 + step cache {tau:g}", "cache", cache=tau, **zola_base))
    out.append(Technique("rand. blend s=f/2", "blend", stride=h, weights=None, blend=True, quick=True))
    out.append(Technique("rand. blend s=f/4", "blend", stride=q, weights=None, blend=True))
    for name, params in (("repeat_mask", rm[1]), ("mixed", (("alpha", 0.5),)), ("progressive", (("alpha", 0.5),)),
                         ("dependency", (("lam", 0.01),)),
                         ("freenoise", (("window_length", f), ("stride", q)))):
        out.append(Technique(f"ZoLA s=f/2 r<=2 + {name}", "noise", noise=(name, params), quick=name == "repeat_mask",
                             **zola_base))
    out.append(Technique("Gen-L flat s=f/4 + freenoise", "noise", stride=q,
                         noise=("freenoise", (("window_length", f), ("stride", q)))))
    out.append(Technique("isolated + repeat_mask", "noise", schedule="batched", stride=f, noise=rm))
    out.append(Technique("ZoLA s=f/2 r<=2 + travel", "travel", travel=True, quick=True, **zola_base))
    out.append(Technique("ZoLA s=f/2 r<=2 + repeat_mask + travel (paper)", "travel", noise=rm, travel=True,
                         travel_noise=True, **zola_base))
    out.append(Technique("Gen-L flat s=f/2 + travel", "travel", stride=h, travel=True))
    out = [t for t in out if t.quick] if cfg.quick else out
    return [t for t in out if re.search(cfg.only, t.name)] if cfg.only else out


# ---------------------------------------------------------------------------------------------- sampling
class Run:
    """One technique on one group of videos: the denoiser seen by the sampler, with bookkeeping.

    Window draws mirror the pack's window loop: the step is the index of the model call's sigma in the schedule (a
    Heun corrector call at ``sigma_{i+1}`` sees step ``i+1``'s windows, as ``step_index`` in ``nodes/comfy/windows.py``
    does) and the seed is ``mix_seed(node_seed=0, sampler_seed, 1000 + travel_pass)``, the pass growing by one per
    noise-travel jump.
    """

    def __init__(self, tech: Technique, prior, sigmas: torch.Tensor, seed: int, cfg: Config):
        self.tech, self.prior, self.cfg, self.seed = tech, prior, cfg, seed
        self.index = {float(s): i for i, s in enumerate(sigmas.tolist())}
        self.travel_pass = 0
        self.frames_evaluated = 0
        self.schedules: dict[tuple[int, int], tuple[list[list[int]], list | None]] = {}
        self.full = prior.full_denoiser()
        self.steps = len(sigmas) - 1
        self.step_cache = step_cache.WindowStepCache(step_cache.CacheSettings(tech.cache)) if tech.cache else None

    def schedule(self, step: int) -> tuple[list[list[int]], list | None]:
        key = (self.travel_pass, step)
        hit = self.schedules.get(key)
        if hit is None:
            t, cfg = self.tech, self.cfg
            seed = cs.mix_seed(0, self.seed, 1000 + self.travel_pass)  # as WindowOptions.step_seed
            wins = cs.make_windows(t.schedule, cfg.num_frames, step, seed, length=cfg.window, stride=t.stride,
                                   overlap=cfg.window - t.stride, max_skip=t.max_skip, ends="shift")  # ZoLA's
            masks = None
            if t.blend:
                masks = cs.randomized_blend_masks(wins, cfg.num_frames, cs.step_generator(seed, step, cs.STREAM_BLEND))
            hit = self.schedules[key] = (wins, masks)
        return hit

    def borders(self) -> list[list[int]]:
        return [metrics.window_borders(w, self.cfg.num_frames) for w, _ in self.schedules.values()]

    def __call__(self, x: torch.Tensor, sigma) -> torch.Tensor:
        s = float(sigma.reshape(-1)[0]) if isinstance(sigma, torch.Tensor) else float(sigma)
        if self.tech.schedule == "full":
            self.frames_evaluated += x.shape[-2]
            return self.full(x, s)
        wins, masks = self.schedule(self.index[s])

        def evaluate(batch: list[list[int]]) -> list[torch.Tensor]:
            self.frames_evaluated += sum(len(w) for w in batch)
            return [self.prior.window_denoiser(w)(x[..., w, :], s) for w in batch]

        fusion = dict(weights=None if masks is not None else self.tech.weights, blend_masks=masks, max_batch=64)
        if self.step_cache is not None:  # as the window loop calls it: conds stacked in front (one cond here)
            return self.step_cache.co_denoise(
                x.unsqueeze(0), wins, x.ndim - 1, lambda batch, live: [o.unsqueeze(0) for o in evaluate(batch)],
                sigma=torch.tensor([s]), step=self.index[s], num_steps=self.steps, live=[True], **fusion)[0]
        return cs.co_denoise(x, wins, x.ndim - 2, evaluate, **fusion)


SOLVERS = {"heun": analytic.heun_sample, "euler": analytic.euler_sample}


def solver_calls(cfg: Config) -> int:
    """Model calls of one plain (no travel) solve: Euler 1 per step, Heun 2 per step but 1 on the last."""
    return cfg.steps if cfg.solver == "euler" else 2 * cfg.steps - 1


def sample_group(tech: Technique, prior, sigmas: torch.Tensor, seed: int, cfg: Config, x_init=None):
    """Videos ``[n, T, D]`` float64 of one group, the run's bookkeeping."""
    run = Run(tech, prior, sigmas, seed, cfg)
    solve = SOLVERS[cfg.solver]
    shape = (cfg.per_group, cfg.num_frames, cfg.features)
    if x_init is None:
        x_init = tech.recipe.draw(shape, 1, seed).double() * float(sigmas[0])
    if not tech.travel:
        return solve(run, x_init, sigmas), run
    recipe = tech.recipe if tech.travel_noise else noise_alg.NoiseRecipe.iid()

    def noise_fn(jump: int, shp: tuple) -> torch.Tensor:
        run.travel_pass += 1  # the next segment is a new pass: new window draws (as the pack's travel wrapper)
        return recipe.draw(shp, len(shp) - 2, cs.mix_seed(seed, jump, 77)).double()

    def inner(model, x, sig, extra_args=None, callback=None, disable=None):  # k-diffusion sampler contract
        return solve(lambda z, s: model(z, s), x, sig)

    plan = noise_travel.travel_plan(len(sigmas) - 1)
    out = noise_travel.sample_with_travel(run, x_init, sigmas, inner=inner, plan=plan, noise_fn=noise_fn,
                                          parameterization="eps")
    return out, run


# ---------------------------------------------------------------------------------------------- metrics
def _mean_corr_block(cov: torch.Tensor, f: int) -> float:
    sd = torch.diagonal(cov).clamp_min(1e-12).sqrt()
    corr = cov / (sd[:, None] * sd[None, :])
    return float(corr[:f, -f:].mean())


def evaluate_technique(tech: Technique, prior, sigmas: torch.Tensor, cfg: Config) -> dict:
    t0 = time.perf_counter()
    videos, seams, frames_eval = [], [], 0
    nominal = list(range(cfg.window, cfg.num_frames, cfg.window))
    for g in range(cfg.groups):
        vids, run = sample_group(tech, prior, sigmas, 10_000 + g, cfg)
        videos.append(vids)
        frames_eval += run.frames_evaluated
        jumps = metrics.frame_jumps(vids, frame_axis=1)
        step_borders = run.borders() or [nominal]
        seams.extend(metrics.seam_ratio(jumps, b) for b in step_borders)
    v = torch.cat(videos)
    k_true = prior.covariance()
    cov = analytic.temporal_covariance(v)
    jumps = metrics.frame_jumps(v, frame_axis=1).double()
    true_jump = math.sqrt(2.0 / math.pi) * math.sqrt(2.0 * float(k_true[0, 0] - k_true[0, 1]))
    f = cfg.window
    row = {
        "name": tech.name, "family": tech.family,
        "seam": sum(seams) / len(seams),
        "peak": float(jumps.max()) / true_jump,
        "long_range": _mean_corr_block(cov, f),
        "rep": analytic.repetition_score(v, f),
        "cov": analytic.covariance_distance(cov, k_true),
        "cost": frames_eval / (cfg.groups * cfg.num_frames * solver_calls(cfg)),
        "cov_exact": None,
    }
    if tech.deterministic and tech.noise[0] == "iid":
        def sampler(x):  # [T, T]: T frames x T feature columns
            return SOLVERS[cfg.solver](Run(tech, prior, sigmas, 0, cfg), x.unsqueeze(0), sigmas)[0]

        k_exact = analytic.linear_output_covariance(sampler, cfg.num_frames, float(sigmas[0]))
        row["cov_exact"] = analytic.covariance_distance(k_exact, k_true)
    row["seconds"] = time.perf_counter() - t0
    return row


def run_benchmark(cfg: Config) -> tuple[list[dict], dict]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matmuls: one thread is ~50x faster than 2 on a busy 2-core box
    try:
        return _run_benchmark(cfg)
    finally:
        torch.set_num_threads(threads)


def _run_benchmark(cfg: Config) -> tuple[list[dict], dict]:
    prior = analytic.GaussianVideoPrior(cfg.num_frames, cfg.features, length_scale=cfg.length_scale,
                                        period=cfg.period, periodic_weight=cfg.periodic_weight)
    sigmas = analytic.karras_sigmas(cfg.steps, cfg.sigma_min, cfg.sigma_max)
    rows = [evaluate_technique(t, prior, sigmas, cfg) for t in techniques(cfg)]
    k = prior.covariance()
    n_eff = cfg.groups * cfg.per_group * cfg.features
    truth = {
        "long_range": _mean_corr_block(k, cfg.window),
        "rep": analytic.covariance_repetition_score(k, cfg.window),
        "cov_floor": math.sqrt(1.0 + float(torch.trace(k)) ** 2 / float((k * k).sum())) / math.sqrt(n_eff),
        "n_videos": cfg.groups * cfg.per_group,
    }
    return rows, truth


# ---------------------------------------------------------------------------------------------- output
def _f(v, digits=3) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def markdown(rows: list[dict], truth: dict, cfg: Config, seconds: float) -> str:
    lines = [
        "# Analytic quality benchmark (Gaussian video prior, exact window denoiser)",
        "",
        f"T = {cfg.num_frames} frames, window f = {cfg.window}, D = {cfg.features} features, "
        f"{truth['n_videos']} videos ({cfg.groups} seed groups), {cfg.steps} {cfg.solver} steps "
        f"({solver_calls(cfg)} model calls, Karras, "
        f"sigma {cfg.sigma_max:g} -> {cfg.sigma_min:g}), kernel: SE l = {cfg.length_scale:g} + "
        f"{cfg.periodic_weight:g} x periodic p = {cfg.period:g}. {'QUICK mode. ' if cfg.quick else ''}"
        f"Run time {seconds:.1f} s.",
        "",
        f"Truth: long-range correlation (first vs last window) = {truth['long_range']:.3f}, "
        f"rep@f = {truth['rep']:.3f}; covariance-distance sampling floor ~ {truth['cov_floor']:.3f}.",
        "",
        "| technique | cost (evals/frame-step) | seam ratio | peak jump / true | long-range corr | rep@f | "
        "cov dist | cov dist exact | time s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['name']} | {r['cost']:.2f} | {r['seam']:.2f} | {r['peak']:.2f} | "
                     f"{r['long_range']:.3f} | {r['rep']:.3f} | {r['cov']:.3f} | {_f(r['cov_exact'])} | "
                     f"{r['seconds']:.1f} |")
    lines += [
        "",
        "seam ratio: mean over steps and seed groups of metrics.seam_ratio with that step's window borders (1 = "
        "invisible). peak jump: largest mean adjacent-frame change / true expected change. long-range corr: mean "
        "correlation between first- and last-window frames. rep@f: lag-f correlation. cov dist: relative Frobenius "
        "distance of the sample covariance to K (exact: no sampling noise, deterministic techniques only). cost: "
        "frames through the short model per frame and step (1 = one pass over the video per step).",
        "",
        "Noise inits are drawn with their node defaults (repeat_mask ratio 0.5 base f; mixed/progressive alpha 0.5; "
        "dependency lambda 0.01, which warns that frames drift from N(0, 1) over this many frames; freenoise window f "
        "stride f/4). The exact denoiser expects i.i.d. noise, like the models these inits are used with zero-shot.",
        "",
        "![frontier](analytic_quality.png)",
        "",
    ]
    return "\n".join(lines)


_FAMILY_COLOURS = {
    "bound": (40, 40, 40), "isolated": (220, 50, 40), "gen-l": (40, 110, 220), "zola": (30, 160, 80),
    "blend": (150, 60, 200), "noise": (230, 140, 20), "travel": (20, 170, 190),
}


def _pareto(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    front, best = [], math.inf
    for x, y in sorted(points):
        if y < best:
            front.append((x, y))
            best = y
    return front


def draw_plot(rows: list[dict], path: pathlib.Path) -> None:
    """Two panels (seam ratio vs cost, covariance distance vs cost; log y), Pareto frontier in grey. Pillow only."""
    from PIL import Image, ImageDraw, ImageFont

    width, height, pw = 1500, 620, 640
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    costs = [r["cost"] for r in rows]
    xmin, xmax = 0.0, max(costs) * 1.08
    panels = (("seam_excess", "seam ratio - 1 (log; 0.01 = invisible) vs model evals per frame-step"),
              ("cov", "covariance distance to the truth (log) vs model evals per frame-step"))
    rows = [dict(r, seam_excess=max(r["seam"] - 1.0, 0.003)) for r in rows]
    for panel, (key, title) in enumerate(panels):
        x0, y0, ph = 60 + panel * (pw + 60), 40, height - 240
        vals = [max(r[key], 1e-3) for r in rows]
        lo, hi = math.log10(min(vals)) - 0.05, math.log10(max(vals)) + 0.05

        def px(c: float, v: float, x0=x0, y0=y0, ph=ph, lo=lo, hi=hi) -> tuple[float, float]:
            return (x0 + (c - xmin) / (xmax - xmin) * pw,
                    y0 + ph - (math.log10(max(v, 1e-3)) - lo) / (hi - lo) * ph)

        draw.rectangle([x0, y0, x0 + pw, y0 + ph], outline=(0, 0, 0))
        draw.text((x0, 15), title, fill=(0, 0, 0), font=font)
        for dec in range(math.floor(lo), math.ceil(hi) + 1):
            for m in (1, 2, 5):
                v = m * 10.0**dec
                if lo <= math.log10(v) <= hi:
                    _, y = px(xmin, v)
                    draw.line([x0, y, x0 + pw, y], fill=(225, 225, 225))
                    draw.text((x0 - 40, y - 6), f"{v:g}", fill=(0, 0, 0), font=font)
        for c in range(0, math.floor(xmax) + 1):
            x, _ = px(c, 10**lo)
            draw.line([x, y0 + ph, x, y0 + ph + 5], fill=(0, 0, 0))
            draw.text((x - 3, y0 + ph + 8), str(c), fill=(0, 0, 0), font=font)
        front = _pareto([(r["cost"], max(r[key], 1e-3)) for r in rows if r["family"] != "bound"])
        if len(front) > 1:
            draw.line([px(c, v) for c, v in front], fill=(150, 150, 150), width=2)
        for i, r in enumerate(rows):
            x, y = px(r["cost"], r[key])
            col = _FAMILY_COLOURS.get(r["family"], (0, 0, 0))
            draw.ellipse([x - 5, y - 5, x + 5, y + 5], fill=col, outline=(0, 0, 0))
            draw.text((x + 7, y - 6), str(i + 1), fill=col, font=font)
    # legend: numbered techniques, column-major; grey line = Pareto frontier of the window techniques
    per_col = math.ceil(len(rows) / 3)
    draw.text((60, height - 176), "grey line: Pareto frontier of the short-model techniques (the full denoiser "
              "is the unreachable bound)", fill=(90, 90, 90), font=font)
    for i, r in enumerate(rows):
        col = _FAMILY_COLOURS.get(r["family"], (0, 0, 0))
        x = 60 + (i // per_col) * 480
        y = height - 158 + (i % per_col) * 14
        draw.text((x, y), f"{i + 1}. {r['name']}", fill=col, font=font)
    img.save(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small run (< 20 s) used by the unit test")
    parser.add_argument("--out", default="bench_out", help="output folder (default bench_out)")
    parser.add_argument("--solver", choices=sorted(SOLVERS), default="heun",
                        help="ODE solver for every technique and as noise travel's inner sampler (default heun)")
    parser.add_argument("--steps", type=int, default=None, help="solver steps (default 16, quick 12)")
    parser.add_argument("--only", default=None, help="run only the techniques whose name matches this regex")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cfg = QUICK if args.quick else FULL
    cfg = dataclasses.replace(cfg, solver=args.solver, steps=args.steps or cfg.steps, only=args.only)
    t0 = time.perf_counter()
    rows, truth = run_benchmark(cfg)
    seconds = time.perf_counter() - t0
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    text = markdown(rows, truth, cfg, seconds)
    (out / "analytic_quality.md").write_text(text)
    draw_plot(rows, out / "analytic_quality.png")
    logger.info("%s", text)
    logger.info("wrote %s and %s", out / "analytic_quality.md", out / "analytic_quality.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
