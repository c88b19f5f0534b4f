"""Render the README/doc pictures that are meaningful without trained weights (schedule and noise previews).

    .host/venv/bin/python tests/tools/make_pictures.py [--only schedule|noise]

Uses the pack's pure code (the same code the preview nodes and the canvas preview call); writes PNGs under
js/docs/, used by the README and the nodes' help pages (tests/tools/make_docs.py).
"""
import argparse
import importlib.util
import pathlib

import numpy as np
from PIL import Image

ROOT = pathlib.Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("longanim_tests_conftest", ROOT / "tests" / "conftest.py")
spec.loader.exec_module(importlib.util.module_from_spec(spec))  # tests/conftest.py registers ``longanim``

from longanim.nodes.algorithms import noise as na  # noqa: E402
from longanim.nodes.comfy import window_options as cwo  # noqa: E402  (pure: no ComfyUI import)

OUT = ROOT / "js" / "docs"


def save(image, name: str) -> None:
    arr = (image[0].clamp(0, 1).numpy() * 255).round().astype(np.uint8)
    Image.fromarray(arr).save(OUT / name)
    print(f"wrote {OUT / name} {arr.shape[1]}x{arr.shape[0]}")


def schedule(name: str, steps: int = 8, frames: int = 64, **options) -> None:
    """The labelled picture the canvas preview and the Preview Schedule node draw (window_options.schedule_picture),
    for 64 latent frames and sampler seed 0."""
    save(cwo.schedule_picture(cwo.WindowOptions(**options), frames, steps, 0), name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["schedule", "noise"], help="render one family of pictures")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    if args.only in (None, "schedule"):
        # each picture: a window node's defaults (ZoLA Windows, Gen-L Windows, Context Windows) or one change
        schedule("schedule_zola.png", schedule="zola", length=16, stride=12, max_skip=1, ends="truncate")
        schedule("schedule_skip_phase.png", steps=12, schedule="zola", length=16, stride=12, max_skip=1,
                 ends="truncate", skip_until=0.5, fusion="least_squares")
        schedule("schedule_uniform_blend.png", schedule="uniform", length=16, stride=8, fusion="randomized_blend")
        schedule("schedule_shifted.png", schedule="shifted", length=16, overlap=4)
    if args.only in (None, "noise"):  # node defaults, except where a parameter is set here
        for algo, params in [("repeat_mask", {"ratio": 0.5, "base_length": 16}), ("dependency", {"lam": 0.01}),
                             ("mixed", {"alpha": 0.5}), ("progressive", {"alpha": 0.8}),
                             ("freenoise", {"window_length": 16, "stride": 4})]:
            noise = na.NoiseRecipe(algo, params).draw((64, 4, 16, 16), 0, 0)
            save(na.render_noise_preview(noise, 0, size=256), f"noise_{algo}.png")


if __name__ == "__main__":
    main()
