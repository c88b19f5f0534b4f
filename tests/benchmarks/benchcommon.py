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


def two_bar_plot(rows: list, path: pathlib.Path, values, label, legend: str, min_width: int) -> None:
    """Two bars (blue, orange) of values in 0..1 per row, under each the row's ``label(row)`` and the first three
    words of its method, and ``legend`` below; plain PIL. A non-finite value draws as 0."""
    import math

    from PIL import Image, ImageDraw

    bw, h, pad = 14, 160, 4
    im = Image.new("RGB", (max(min_width, len(rows) * (2 * bw + 3 * pad) + 20), h + 150), "white")
    d = ImageDraw.Draw(im)
    for i, r in enumerate(rows):
        x = 10 + i * (2 * bw + 3 * pad)
        for j, (v, col) in enumerate(zip(values(r), ((60, 90, 200), (230, 140, 30)), strict=True)):
            v = v if math.isfinite(v) else 0.0
            d.rectangle([x + j * (bw + pad), 10 + h * (1 - v), x + j * (bw + pad) + bw, 10 + h], fill=col)
        d.text((x, h + 14), label(r), fill="black")
        for k, word in enumerate(r["method"].split()[:3]):
            d.text((x, h + 28 + 12 * k), word[:7], fill="black")
    d.text((10, h + 100), legend, fill="black")
    im.save(path)
