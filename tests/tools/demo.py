"""The main job: a long-video workflow through a real ComfyUI server (run by ``longanim.py demo``).

Default: the tiny random-weight SD1.5-family model, so the frames are noise, but every node, the real sampler
and the server run for real. With ``--checkpoint NAME`` (an SD1.5 checkpoint in the user's ComfyUI) it runs the
same graph on real weights and a real text encoder.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from comfy_client import ComfyServer, Graph, execution_error  # noqa: E402

PROMPTS = "0-31: a red fox walks through snow\n32-: a red fox runs through a snowy forest"


def build(frames: int, checkpoint: str | None, size: int, steps: int) -> dict:
    g = Graph()
    if checkpoint:
        ckpt = g.node("CheckpointLoaderSimple", ckpt_name=checkpoint)
        model, clip, vae = g.out(ckpt, 0), g.out(ckpt, 1), g.out(ckpt, 2)
        positive = g.node("LongAnimPromptSchedule", clip=clip, schedule=PROMPTS, frames=frames)
        negative = g.node("CLIPTextEncode", clip=clip, text="blurry, low quality")
    else:
        model = g.out(g.node("UNETLoader", unet_name="longanim_tiny_sd15.safetensors", weight_dtype="default"))
        vae = g.out(g.node("VAELoader", vae_name="longanim_tiny_taesd.safetensors"))
        positive = g.node("TinyTestConditioning", text="a red fox walks through snow", family="sd15")
        negative = g.node("TinyTestConditioning", text="blurry", family="sd15")
    recipe = g.node("LongAnimRepeatMaskNoise", seed=0, ratio=0.5, base_length=16)
    model = g.out(g.node("LongAnimApplyNoiseToModel", model=model, recipe=g.out(recipe, 1)))
    model = g.out(g.node("LongAnimZoLAWindows", model=model, context_length=16, stride=12, max_skip=2,
                         fusion="zola", seed=0))
    latent = g.node("EmptyLatentImage", width=size, height=size, batch_size=frames)
    sampled = g.node("KSampler", model=model, seed=7, steps=steps, cfg=7.0, sampler_name="euler",
                     scheduler="normal", positive=g.out(positive), negative=g.out(negative),
                     latent_image=g.out(latent), denoise=1.0)
    images = g.node("VAEDecode", samples=g.out(sampled), vae=vae)
    g.node("SaveImage", images=g.out(images), filename_prefix="longanim_demo/frame")
    g.node("SaveAnimatedWEBP", images=g.out(images), filename_prefix="longanim_demo/video", fps=8.0,
           lossless=False, quality=80, method="default")
    return g.prompt()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--comfyui", required=True)
    ap.add_argument("--frames", type=int, default=64)
    ap.add_argument("--output", required=True)
    ap.add_argument("--checkpoint")
    ap.add_argument("--size", type=int, default=64, help="pixel width/height")
    ap.add_argument("--steps", type=int, default=4)
    args = ap.parse_args()
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    prompt = build(args.frames, args.checkpoint, args.size, args.steps)
    with ComfyServer(args.comfyui, sys.executable, output_dir=out) as server:
        print(f"[demo] ComfyUI answered after {server.start_seconds:.1f} s at {server.url}", flush=True)
        t0 = time.time()
        entry = server.run(prompt, timeout=3600)
        err = execution_error(entry)
        if err:
            print(f"[demo] the workflow failed on node {err.get('node_type')}: {err.get('exception_message')}")
            return 1
        files = server.output_files(entry)
        print(f"[demo] {args.frames} frames sampled in {time.time() - t0:.1f} s; {len(files)} images written")
    print(f"[demo] frames and animated WEBP are in {out / 'longanim_demo'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
