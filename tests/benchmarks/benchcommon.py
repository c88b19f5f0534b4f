"""What the benchmarks that run ComfyUI share: the paths, and importing ComfyUI plus the pack (alias ``longanim``)."""
from __future__ import annotations

import importlib.util
import os
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
COMFY = pathlib.Path(os.environ.get("LONGANIM_COMFYUI") or ROOT / ".host" / "ComfyUI")
OUT = ROOT / "bench_out"


def setup(device: str = "cpu") -> None:
    """Put ComfyUI (``LONGANIM_COMFYUI`` or the project's host) and tests/comfy on ``sys.path``, choose the device,
    and register the pack as ``longanim`` the way tests/conftest.py does for the tests."""
    for path in (COMFY, ROOT / "tests" / "comfy"):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))
    import comfy.cli_args

    comfy.cli_args.args.cpu = device == "cpu"
    if "longanim" not in sys.modules:
        spec = importlib.util.spec_from_file_location("longanim_tests_conftest", ROOT / "tests" / "conftest.py")
        spec.loader.exec_module(importlib.util.module_from_spec(spec))  # registers the ``longanim`` alias


def write_results(rows: list, keys: list, out: pathlib.Path) -> None:
    """Write ``rows`` to ``out/results.csv`` (only the ``keys`` columns) and print them as one Markdown table."""
    import csv

    with open(out / "results.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for r in rows:
        print("| " + " | ".join(str(r.get(k, "")) for k in keys) + " |")
