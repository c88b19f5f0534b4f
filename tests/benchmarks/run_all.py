"""The performance report (issue 9C): run every benchmark, print all tables, collect them in
bench_out/REPORT.md.

    .host/venv/bin/python tests/benchmarks/run_all.py [--quick] [--only noise,windows,...]

Each benchmark is its own script (see the table below) and writes its markdown (and plots) under bench_out/.
The report names the machine (CPU model, GPU name when CUDA is available) next to the figures.
``fullsize`` (random-weight full-size SD1.5 / AnimateDiff-shaped / Wan 1.3B models) runs only when CUDA is
available or when named in ``--only``; with ``--quick`` it is its CPU-feasible ``--smoke`` check.
"""
from __future__ import annotations

import argparse
import datetime
import pathlib
import platform
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / "bench_out"
BENCHES = {  # name: (script, extra args for --quick, markdown it writes)
    "noise": ("bench_noise.py", ["--repeats", "2"], "noise.md"),
    "windows": ("bench_windows.py", ["--quick"], "windows.md"),
    "attention_math": ("bench_attention_math.py", ["--repeats", "2"], "attention_math.md"),
    "attention": ("bench_attention.py", ["--quick"], "attention.md"),
    "travel": ("bench_travel.py", ["--repeats", "1"], "travel.md"),
    "refine": ("bench_refine.py", ["--quick"], "refine.md"),
    "analytic": ("analytic_quality.py", ["--quick"], "analytic_quality.md"),
    "fullsize": ("bench_fullsize.py", ["--smoke"], "fullsize.md"),
}
NEEDS_CUDA = {"fullsize"}  # skipped unless CUDA is available or the name is given in --only


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = "no GPU"
    try:
        import torch

        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return f"{cpu}; {gpu}; python {platform.python_version()}"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default="", help="comma-separated subset of: " + ", ".join(BENCHES))
    args = ap.parse_args()
    names = [n for n in (args.only.split(",") if args.only else BENCHES) if n]
    OUT.mkdir(exist_ok=True)
    parts = [f"# LongAnim performance report\n\n{datetime.datetime.now():%Y-%m-%d %H:%M}, {machine()}\n"]
    failed = []
    for name in names:
        script, quick_args, md = BENCHES[name]
        if name in NEEDS_CUDA and name not in args.only.split(",") and not cuda_available():
            note = (f"skipped: needs CUDA (full-size models); force it with --only {name} "
                    f"(with --quick: the CPU smoke check {' '.join(quick_args)})")
            print(f"== {name}: {note}", flush=True)
            parts.append(f"\n## {name} ({script}, skipped)\n\n{note}\n")
            continue
        cmd = [sys.executable, str(ROOT / "tests" / "benchmarks" / script),
               *(quick_args if args.quick else [])]
        t0 = time.time()
        print(f"== {name}: {' '.join(cmd[1:])}", flush=True)
        rc = subprocess.call(cmd, cwd=ROOT)
        took = time.time() - t0
        text = (OUT / md).read_text() if (OUT / md).exists() else "(no output)"
        parts.append(f"\n## {name} ({script}, {took:.0f} s{', FAILED' if rc else ''})\n\n{text}")
        if rc:
            failed.append(name)
    report = "\n".join(parts)
    (OUT / "REPORT.md").write_text(report)
    print(f"\nwrote {OUT / 'REPORT.md'}" + (f"; failed: {failed}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
