"""The main job: a long-video workflow through a real ComfyUI server (run by ``longanim.py demo``).

Default: the tiny Wan-family model trained on the synthetic world (``tests/models/``, installed by
``tiny_models.py``): coloured balls that move at constant speed and bounce off the walls, prompted by their colours
("red blue"). The real server samples ``--frames`` latent frames (at least 128 recommended: far beyond the 16-frame
clips the model was trained on) twice with the same seed, noise and prompt:
- LongAnim: ``LongAnimZoLAWindows`` (16-frame windows re-drawn at random offsets every step, skip 1, ZoLA fusion);
- isolated windows: ``LongAnimGenLWindows`` with stride = window length (disjoint 16-frame windows, no overlap),
and decodes both through ``VAELoader`` + ``VAEDecode`` with the world's palette decoder. It writes an animated
WEBP of the LongAnim run, an MP4 when the host can (``CreateVideo`` + ``SaveVideo``), a side-by-side animated WEBP
(isolated left, LongAnim right, ``ImageStitch``) and a PNG strip of frames around the isolated run's window
borders, then prints what to look at and the object figures of both runs (``world_metrics``).

With ``--checkpoint NAME`` (an SD1.5 checkpoint in the user's ComfyUI) it runs the former SD1.5 graph on real
weights and a real text encoder (ZoLA windows + repeat-mask noise, frames in the batch).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from comfy_client import ComfyServer, Graph, execution_error  # noqa: E402

PROMPTS = "0-31: a red fox walks through snow\n32-: a red fox runs through a snowy forest"
WORLD_MODEL = "longanim_world_wan21.safetensors"
WORLD_VAE = "longanim_world_taew21.safetensors"
WINDOW = 16
FPS = 16.0  # video frames per second; the decoder makes 4 video frames per latent frame


def build_sd15(frames: int, checkpoint: str, size: int, steps: int) -> dict:
    g = Graph()
    ckpt = g.node("CheckpointLoaderSimple", ckpt_name=checkpoint)
    model, clip, vae = g.out(ckpt, 0), g.out(ckpt, 1), g.out(ckpt, 2)
    positive = g.node("LongAnimPromptSchedule", clip=clip, schedule=PROMPTS, frames=frames)
    negative = g.node("CLIPTextEncode", clip=clip, text="blurry, low quality")
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


def build_world(frames: int, steps: int, seed: int, text: str, mp4: bool) -> dict:
    """Two samplings of the trained world model (LongAnim windows vs isolated windows) and their videos."""
    g = Graph()
    base = g.out(g.node("UNETLoader", unet_name=WORLD_MODEL, weight_dtype="default"))
    vae = g.out(g.node("VAELoader", vae_name=WORLD_VAE))
    pos = g.out(g.node("TinyTestConditioning", text=text, family="synthworld"))
    neg = g.out(g.node("TinyTestConditioning", text="", family="synthworld"))
    latent = g.out(g.node("EmptyHunyuanLatentVideo", width=64, height=64, length=4 * (frames - 1) + 1,
                          batch_size=1))
    runs = {
        "longanim": g.node("LongAnimZoLAWindows", model=base, context_length=WINDOW, stride=12, max_skip=1,
                           fusion="zola", seed=0),
        "isolated": g.node("LongAnimGenLWindows", model=base, context_length=WINDOW, stride=WINDOW,
                           fusion="least_squares"),
    }
    images = {}
    for name, model in runs.items():
        sampled = g.node("KSampler", model=g.out(model), seed=seed, steps=steps, cfg=1.0, sampler_name="euler",
                         scheduler="simple", positive=pos, negative=neg, latent_image=latent, denoise=1.0)
        g.node("SaveLatent", samples=g.out(sampled), filename_prefix=f"longanim_demo/{name}")
        images[name] = g.out(g.node("VAEDecode", samples=g.out(sampled), vae=vae))
    g.node("SaveAnimatedWEBP", images=images["longanim"], filename_prefix="longanim_demo/longanim", fps=FPS,
           lossless=False, quality=90, method="default")
    both = g.out(g.node("ImageStitch", image1=images["isolated"], image2=images["longanim"], direction="right",
                        match_image_size=True, spacing_width=4, spacing_color="white"))
    g.node("SaveAnimatedWEBP", images=both, filename_prefix="longanim_demo/side_by_side", fps=FPS,
           lossless=False, quality=90, method="default")
    if mp4:
        video = g.node("CreateVideo", images=both, fps=FPS)
        g.node("SaveVideo", video=g.out(video), filename_prefix="longanim_demo/side_by_side", format="mp4",
               codec="h264")
    return g.prompt()


def _latent_of(path: Path):
    """Model-space latent [16, T, H, W] of a SaveLatent file (raw Wan 2.1 latent -> ComfyUI's process_in)."""
    import comfy.latent_formats
    import safetensors.torch

    raw = safetensors.torch.load_file(str(path))["latent_tensor"]
    return comfy.latent_formats.Wan21().process_in(raw.float())[0]


def world_figures(out: Path, text: str, frames: int, comfyui: str) -> dict:
    """Object figures (count, identity, tracks, jumps at the isolated run's borders) of both runs."""
    sys.path.insert(0, comfyui)
    import synthworld
    import train_tiny

    wm = train_tiny.world_metrics()
    exp = synthworld.parse_prompt(text)
    borders = list(range(WINDOW, frames, WINDOW))
    figs = {}
    for name in ("longanim", "isolated"):
        files = sorted((out / "longanim_demo").glob(f"{name}_*.latent"))
        if not files:
            continue
        maps = wm.code_maps(_latent_of(files[-1]), synthworld.codes())
        figs[name] = wm.world_report(maps, exp, borders=borders, window=WINDOW)
    return figs


def strip(out: Path, frames: int) -> Path | None:
    """PNG: rows = isolated / LongAnim, columns = video frames just before and after the isolated run's borders."""
    from PIL import Image

    webp = sorted((out / "longanim_demo").glob("side_by_side_*.webp"))
    if not webp:
        return None
    im = Image.open(webp[-1])
    # WEBP frame start times: the encoder merges identical consecutive frames (each latent frame decodes to 4 equal
    # video frames) into one longer frame, so frame indices are not video frame indices
    starts, t = [], 0
    for i in range(getattr(im, "n_frames", 1)):
        im.seek(i)
        im.load()  # the frame's duration is read when it is decoded
        starts.append(t)
        t += im.info.get("duration") or 1000 / FPS
    cols = []
    for b in range(WINDOW, frames, WINDOW)[:4]:
        for lat in (b - 1, b):
            t_ms = max(0, 4 * lat - 3) * 1000 / FPS  # first video frame of latent frame `lat`
            cols.append(max(i for i, s0 in enumerate(starts) if s0 <= t_ms + 1e-6))
    w, h = im.size
    half = (w - 4) // 2
    tile = 2
    sheet = Image.new("RGB", (len(cols) * (half * tile + 4), 2 * h * tile + 4), "white")
    for i, f in enumerate(cols):
        im.seek(f)
        fr = im.convert("RGB")
        for row, box in enumerate(((0, 0, half, h), (w - half, 0, w, h))):
            sheet.paste(fr.crop(box).resize((half * tile, h * tile), Image.NEAREST),
                        (i * (half * tile + 4), row * (h * tile + 4)))
    path = out / "longanim_demo" / "strip_isolated_vs_longanim.png"
    sheet.save(path)
    return path


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--comfyui", required=True)
    ap.add_argument("--frames", type=int, default=128, help="latent frames (world model) / frames (--checkpoint)")
    ap.add_argument("--output", required=True)
    ap.add_argument("--checkpoint")
    ap.add_argument("--port", type=int, help="server port (default: a free one)")
    ap.add_argument("--size", type=int, default=64, help="pixel width/height (--checkpoint only)")
    ap.add_argument("--steps", type=int, default=None, help="sampling steps (default 12 world / 4 checkpoint)")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--prompt", default="red blue", help="world model: the colours in the scene")
    args = ap.parse_args()
    out = Path(args.output).resolve()
    out.mkdir(parents=True, exist_ok=True)
    world = not args.checkpoint
    if world:
        import importlib.util

        mp4 = importlib.util.find_spec("av") is not None
        prompt = build_world(args.frames, args.steps or 12, args.seed, args.prompt, mp4)
    else:
        prompt = build_sd15(args.frames, args.checkpoint, args.size, args.steps or 4)
    with ComfyServer(args.comfyui, sys.executable, port=args.port, output_dir=out) as server:
        print(f"[demo] ComfyUI answered after {server.start_seconds:.1f} s at {server.url}", flush=True)
        t0 = time.time()
        entry = server.run(prompt, timeout=3600)
        err = execution_error(entry)
        if err:
            print(f"[demo] the workflow failed on node {err.get('node_type')}: {err.get('exception_message')}")
            return 1
        files = server.output_files(entry)
        print(f"[demo] {args.frames} frames sampled and decoded in {time.time() - t0:.1f} s; "
              f"{len(files)} files written", flush=True)
    folder = out / "longanim_demo"
    if not world:
        print(f"[demo] frames and animated WEBP are in {folder}")
        return 0
    sheet = strip(out, args.frames)
    print(f"[demo] open {sorted(folder.glob('side_by_side_*.webp'))[-1]}: left = isolated 16-frame windows, "
          f"right = LongAnim ZoLA windows; same model ({WORLD_MODEL}), seed, noise and prompt {args.prompt!r}.")
    print("[demo] look at: the balls' colours and number staying the same for the whole video, and the moments "
          f"every {WINDOW} latent frames ({4 * WINDOW} video frames) where the isolated run starts a new window: "
          "there its balls jump, change or vanish; LongAnim's keep moving.")
    if sheet:
        print(f"[demo] strip (top isolated, bottom LongAnim; pairs of frames before/after each border): {sheet}")
    for name, f in world_figures(out, args.prompt, args.frames, args.comfyui).items():
        print(f"[demo] {name:9s} frames with the right objects {f['identity']:.0%}, tracks lasting "
              f"{f['tracks']:.0%}, median jump at borders {f['jump_border']:.2f} px vs inside {f['jump_inside']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
