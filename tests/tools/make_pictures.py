"""Render the README/doc pictures that are meaningful without trained weights (schedule and noise previews).

    .host/venv/bin/python tests/tools/make_pictures.py [--only schedule|noise]

Uses the pack's pure algorithms (the same code the preview nodes call); writes PNGs under js/docs/.
"""
import argparse
import importlib.util
import pathlib

import numpy as np
from PIL import Image

ROOT = pathlib.Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("longanim_tests_conftest", ROOT / "tests" / "conftest.py")
spec.loader.exec_module(importlib.util.module_from_spec(spec))  # tests/conftest.py registers ``longanim``

from longanim.nodes.algorithms import context_schedule as cs  # noqa: E402
from longanim.nodes.algorithms import noise as na  # noqa: E402

OUT = ROOT / "js" / "docs"


def save(image, name: str) -> None:
    arr = (image[0].clamp(0, 1).numpy() * 255).astype(np.uint8)
    Image.fromarray(arr).save(OUT / name)
    print(f"wrote {OUT / name} {arr.shape[1]}x{arr.shape[0]}")


def schedule(name: str, schedule: str, fusion_blend: bool = False, **kw) -> None:
    frames, steps = 64, 6
    per_step, masks = [], []
    for step in range(steps):
        w = cs.make_windows(schedule, frames, step, 0, **kw)
        per_step.append(w)
        masks.append(cs.randomized_blend_masks(w, frames, cs.step_generator(0, step, cs.STREAM_BLEND))
                     if fusion_blend else None)
    save(cs.render_schedule_preview(per_step, frames, masks, cell=8), name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["schedule", "noise"], help="render one family of pictures")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    if args.only in (None, "schedule"):
        common = dict(length=16, stride=12, overlap=4, max_skip=2)
        schedule("schedule_zola.png", "zola", **common)
        schedule("schedule_uniform_blend.png", "uniform", fusion_blend=True, **dict(common, stride=12))
        schedule("schedule_shifted.png", "shifted", **common)
    if args.only in (None, "noise"):  # node defaults, except where a parameter is set here
        for algo, params in [("repeat_mask", {"ratio": 0.5, "base_length": 16}), ("dependency", {"lam": 0.01}),
                             ("mixed", {"alpha": 0.5}), ("progressive", {"alpha": 0.8}),
                             ("freenoise", {"window_length": 16, "stride": 4})]:
            noise = na.NoiseRecipe(algo, params).draw((64, 4, 16, 16), 0, 0)
            save(na.render_noise_preview(noise, 0, size=256), f"noise_{algo}.png")


if __name__ == "__main__":
    main()
