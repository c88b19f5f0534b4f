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


def demo_animation(demo_dir: pathlib.Path, name: str = "demo_side_by_side.webp", scale: int = 4) -> None:
    """The README's moving picture: the demo's side-by-side WEBP (isolated windows left, LongAnim right, as
    ``longanim.py demo`` writes it) enlarged ``scale`` times (nearest neighbour) under a labelled header, at the
    demo's frame times (16 fps)."""
    import torch
    from longanim.nodes.algorithms import schedule_preview as sp
    from PIL import ImageSequence

    files = sorted(demo_dir.glob("side_by_side_*.webp"))
    if not files:
        raise SystemExit(f"--demo {demo_dir}: no side_by_side_*.webp (run `python3 tests/tools/longanim.py demo`)")
    src = Image.open(files[-1])
    frames, durations = [], []
    for f in ImageSequence.Iterator(src):
        f.load()  # decoding sets the frame's duration (identical video frames are merged into one longer frame)
        durations.append(f.info.get("duration") or 62)
        frames.append(f.convert("RGB"))
    w, h = frames[0].size
    half = (w - 4) // 2 * scale  # the demo stitches the two runs with a 4-pixel gap
    header = 28
    head = torch.full((header, w * scale, 3), 0.07)
    sp.draw_text(head, 6, 6, "ISOLATED WINDOWS", (0.9, 0.9, 0.9), 2)
    sp.draw_text(head, half + 4 * scale + 6, 6, "LONGANIM ZOLA", (1.0, 0.75, 0.3), 2)
    head_img = Image.fromarray((head.clamp(0, 1).numpy() * 255).round().astype(np.uint8))
    out = []
    for f in frames:
        canvas = Image.new("RGB", (w * scale, h * scale + header))
        canvas.paste(head_img, (0, 0))
        canvas.paste(f.resize((w * scale, h * scale), Image.NEAREST), (0, header))
        out.append(canvas)
    out[0].save(OUT / name, save_all=True, append_images=out[1:], duration=durations, loop=0, lossless=False,
                quality=80)
    print(f"wrote {OUT / name} {out[0].size[0]}x{out[0].size[1]}, {len(out)} frames (from {files[-1]})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["schedule", "noise"], help="render one family of pictures")
    parser.add_argument("--demo", type=pathlib.Path, help="also make the README animation from this demo output "
                        "folder (output/longanim_demo after `longanim.py demo`)")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    if args.demo:
        demo_animation(args.demo)
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
