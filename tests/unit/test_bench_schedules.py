"""The schedule-frontier benchmark (tests/benchmarks/bench_schedules.py) in --quick mode: its exactness claim, its
cost accounting and the orderings that must hold on the hard case (64 frames, 10 Euler steps, 3 window seeds).

All numbers are exact functions of the output covariance (no sampling noise) and deterministic (fixed seeds); the
asserted gaps are many times larger than float64 rounding.
"""
import importlib.util
import pathlib
import sys

import pytest
import torch

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _module():
    spec = importlib.util.spec_from_file_location("bench_schedules", ROOT / "tests" / "benchmarks" /
                                                  "bench_schedules.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bench_schedules", module)  # dataclasses look their module up there
    spec.loader.exec_module(sys.modules["bench_schedules"])
    return sys.modules["bench_schedules"]


@pytest.fixture(scope="module")
def bench():
    module = _module()
    result = module.run_benchmark(quick=True)
    case, rows = result["cases"]["hard"]
    return module, case, {r["name"]: r for r in rows}, result


def test_the_output_covariance_is_exact(bench):
    """The sampler with exact window denoisers is linear: its map on sigma_max * I applied to any noise equals the
    sampler run on that noise, so covariances computed from the map carry no sampling noise."""
    module, case, _, _ = bench
    torch.set_num_threads(1)
    prior = module.make_prior(case)
    sigmas = module.analytic.karras_sigmas(case.steps)
    sched = next(s for s in module.schedules(case, quick=True) if s.skip_until)
    seed = module.cs.mix_seed(0, 10_000, 1000)
    basis = float(sigmas[0]) * torch.eye(case.num_frames, dtype=torch.float64).unsqueeze(0)
    m = module.SOLVERS[case.solver](module.Run(sched, prior, sigmas, seed, case), basis, sigmas)[0] / float(sigmas[0])
    x = torch.randn(2, case.num_frames, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    direct = module.SOLVERS[case.solver](module.Run(sched, prior, sigmas, seed, case), x * float(sigmas[0]), sigmas)
    torch.testing.assert_close(direct, torch.einsum("st,ntd->nsd", m, x) * float(sigmas[0]), rtol=1e-9, atol=1e-9)


def test_bounds_and_cost_accounting(bench):
    _, case, rows, _ = bench
    full, iso = rows["full-video model (bound)"], rows["isolated windows"]
    genl = rows["Gen-L f/2 least squares (reference)"]
    assert full["cost"] == pytest.approx(1.0) and iso["cost"] == pytest.approx(1.0)
    assert genl["cost"] == pytest.approx(7 * 16 / 64)  # windows at 0, 8, ..., 48 on 64 frames
    # a random-offset partition, plus the frames by which end windows cut below the floor (half the length) grow
    # into their neighbours: at most 7 of 64 frames at each end
    assert 1.0 < rows["truncated s 16 r1 LS"]["cost"] < 1.0 + 2 * 7 / 64
    # isolated windows: the two ends are independent (drift exactly 0.5) and the borders jump like independent frames
    assert iso["drift"] == pytest.approx(0.5, abs=1e-9) and iso["seam"] > 100
    assert full["drift"] < 0.25 and full["seam"] < 1.0
    # cost = frames through the window model / (T x calls), recounted from the windows themselves; the spanning skip
    # phase holds each frame once per step
    module = bench[0]
    sched = next(s for s in module.schedules(case, quick=True) if s.name == "phased 0.5 + truncated s 12 LS")
    frames = sum(len(w) for g in range(case.groups) for step in range(case.steps)
                 for w in sched.windows(step, module.cs.mix_seed(0, 10_000 + g, 1000), case))
    assert rows[sched.name]["cost"] == pytest.approx(frames / (case.groups * case.num_frames * case.steps), rel=1e-12)
    n_skip = module.cs.skip_phase_steps(0.5, case.steps)
    assert n_skip == 5 and all(sum(map(len, sched.windows(step, 1, case))) == case.num_frames for step in range(5))


def test_truncated_ends_unpin_the_borders(bench):
    _, _, rows, _ = bench
    assert rows["ZoLA s f r1 Eq. 4"]["pin"] > 5, "shifted windows pin the borders at f and T - f"
    for name in ("truncated s 12 r1 LS", "phased 0.5 + truncated s 12 LS",
                 "truncated s 12 r1 Eq. 4", "truncated s 12 r1 flat"):
        assert rows[name]["pin"] < 1.5, name
    # no overlap (stride = length): the floor's longer end windows add borders near the ends (1.63 measured on the
    # quick case), still far from the shifted windows' pinned borders
    assert rows["truncated s 16 r1 LS"]["pin"] < 2.0


def test_the_skip_phase_cuts_drift_and_seams(bench):
    _, _, rows, result = bench
    zola = rows["ZoLA sec. 4.3 ends (s 3f/4, r<=2, Eq. 4, shift)"]
    genl = rows["Gen-L f/2 least squares (reference)"]
    for name in ("phased 0.5 + truncated s 12 LS", "phased 0.6 + truncated s 12 LS"):
        r = rows[name]
        assert r["drift"] < zola["drift"] - 0.1 and r["seam"] < genl["seam"] and r["cost"] < 1.25, name
    assert rows["phased 0.6 + truncated s 12 LS"]["drift"] < rows["phased 0.5 + truncated s 12 LS"]["drift"]
    assert result["chosen"] is not None and result["chosen"]["family"] == "phased"


def test_report_and_plot_files(bench, tmp_path):
    from PIL import Image

    module, _, rows, result = bench
    text = module.markdown(result, 1.0)
    assert all(f"| {name} |" in text for name in rows) and "Goal on `hard`" in text
    pick, seams = module.default_fusion(result)
    assert set(seams["hard"]) == {"flat", "least_squares", "zola"} and pick == min(seams["hard"], key=seams["hard"].get)
    assert f"Lowest seam on `hard`: **{pick}**" in text
    module.draw_plot(list(rows.values()), result["goal"], tmp_path / "p.png")
    img = Image.open(tmp_path / "p.png")
    assert img.size[0] > 1000 and img.getextrema() != ((255, 255), (255, 255), (255, 255))


def test_the_node_default_fusion_is_the_benchmarks_pick(bench):
    """The ZoLA nodes' default fusion (WINDOW_DEFAULTS) has the lowest worst seam for the default windows (truncated
    ends, stride 3f/4, no skip phase) here too (the full run: flat 1.71, least squares 1.76, Eq. 4 1.86)."""
    module, _, rows, result = bench
    pick, seams = module.default_fusion(result)
    assert pick == module.cs.WINDOW_DEFAULTS["fusion"] == "flat", seams
    assert seams["hard"]["flat"] < 0.97 * min(seams["hard"]["least_squares"], seams["hard"]["zola"])
