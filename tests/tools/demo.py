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

With ``--checkpoint NAME`` (an SD1.5 image checkpoint in the user's ComfyUI, no motion model) it runs the graph of
the workflow ``LongAnim - SD1.5 zero-shot video``: an image model has no temporal layers, so its frames in a batch are
independent images, and context windows would only add cost. What makes them one video is ZS²'s zero-shot recipe:
``LongAnimDependencyNoise`` (each frame's noise drawn close to the previous frame's, Algorithm 1) and
``LongAnimTemporalMomentumAttention`` (each frame's self-attention also reads the previous frames, Eq. 2). The
demo samples ``--frames`` frames (16 by default, all in one batch) twice with the same seed: the checkpoint alone
and with that recipe, and writes both side by side.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from comfy_client import ComfyServer, Graph, execution_error  # noqa: E402

WORLD_MODEL = "longanim_world_wan21.safetensors"
WORLD_VAE = "longanim_world_taew21.safetensors"
WINDOW = 16
FPS = 16.0  # video frames per second; the decoder makes 4 video frames per latent frame


ZERO_SHOT_NOISE = {"seed": 0, "lam": 0.01}  # the zero-shot SD1.5 workflow's dependency noise (ZS² default λ)
ZERO_SHOT_MOMENTUM = 0.98  # and its temporal momentum (ZS²'s μ)


def checkpoint_loaders(checkpoint: str, text: str = "a red fox walks through fresh snow, forest, golden hour",
                       negative: str = "blurry, low quality"):
    """Loaders for ``build_zero_shot``: an image checkpoint with its own text encoder and VAE."""
    def load(g: Graph) -> tuple:
        ckpt = g.node("CheckpointLoaderSimple", ckpt_name=checkpoint)
        clip = g.out(ckpt, 1)
        pos = g.out(g.node("CLIPTextEncode", clip=clip, text=text))
        neg = g.out(g.node("CLIPTextEncode", clip=clip, text=negative))
        return g.out(ckpt, 0), g.out(ckpt, 2), pos, neg
    return load


def build_zero_shot(frames: int, size: int, steps: int, seed: int, cfg: float, loaders, object_info: dict) -> dict:
    """An image model on ``frames`` frames in the batch, sampled twice with the same seed: ``independent`` (the model
    alone: i.i.d. noise, every frame its own image) and ``longanim`` (ZS² dependency noise + temporal momentum
    attention, the graph of the SD1.5 zero-shot workflow). No context windows: an image model has no temporal layers,
    so windows would only repeat model calls. ``loaders(g)`` returns (model, vae, positive, negative) links;
    ``object_info`` (the server's ``/object_info``) supplies the defaults of the inputs this graph does not set."""
    g = Graph()
    model, vae, pos, neg = loaders(g)
    recipe = g.out(g.node("LongAnimDependencyNoise", **ZERO_SHOT_NOISE), 1)
    zs2 = g.out(g.node("LongAnimApplyNoiseToModel", model=model, recipe=recipe))
    zs2 = g.out(g.node("LongAnimTemporalMomentumAttention", model=zs2, momentum=ZERO_SHOT_MOMENTUM))
    latent = g.out(g.node("EmptyLatentImage", width=size, height=size, batch_size=frames))
    images = {}
    for name, m in (("independent", model), ("longanim", zs2)):
        sampled = g.node("KSampler", model=m, seed=seed, steps=steps, cfg=cfg, sampler_name="euler",
                         scheduler="normal", positive=pos, negative=neg, latent_image=latent, denoise=1.0)
        g.node("SaveLatent", samples=g.out(sampled), filename_prefix=f"longanim_demo/{name}")
        images[name] = g.out(g.node("VAEDecode", samples=g.out(sampled), vae=vae))
    g.node("SaveAnimatedWEBP", images=images["longanim"], filename_prefix="longanim_demo/longanim", fps=8.0,
           lossless=False, quality=90, method="default")
    both = g.out(g.node("ImageStitch", image1=images["independent"], image2=images["longanim"],
                        direction="right", match_image_size=True, spacing_width=4, spacing_color="white"))
    g.node("SaveAnimatedWEBP", images=both, filename_prefix="longanim_demo/side_by_side", fps=8.0,
           lossless=False, quality=90, method="default")
    return fill_defaults(g.prompt(), object_info)


def fill_defaults(prompt: dict, object_info: dict) -> dict:
    """Give every required widget input the graph leaves unset its default from ``/object_info``, so the demo names
    only the values it means (and keeps working when a node gains an input)."""
    for node in prompt.values():
        required = object_info[node["class_type"]]["input"].get("required", {})
        for name, spec in required.items():
            if name in node["inputs"]:
                continue
            opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
            if "default" in opts:
                node["inputs"][name] = opts["default"]
            elif isinstance(spec[0], list) and spec[0]:
                node["inputs"][name] = spec[0][0]
    return prompt


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
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--comfyui", required=True)
    ap.add_argument("--frames", type=int, default=None,
                    help="latent frames of the toy world video (default 128), or with --checkpoint frames in the "
                    "batch (default 16; they are sampled in one batch, so memory grows with them)")
    ap.add_argument("--output", required=True)
    ap.add_argument("--checkpoint", help="an SD1.5 image checkpoint in models/checkpoints (no motion model): runs the "
                    "zero-shot graph (Dependency Noise + Temporal Momentum Attention, no windows) next to the "
                    "checkpoint alone")
    ap.add_argument("--port", type=int, help="server port (default: a free one)")
    ap.add_argument("--size", type=int, default=512, help="pixel width/height (--checkpoint only)")
    ap.add_argument("--steps", type=int, default=None, help="sampling steps (default 12 world / 20 checkpoint)")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--prompt", default=None, help="world model: the colours in the scene (default 'red blue'); "
                    "--checkpoint: the text prompt")
    args = ap.parse_args()
    out = Path(args.output).resolve()
    out.mkdir(parents=True, exist_ok=True)
    world = not args.checkpoint
    args.frames = args.frames or (128 if world else 16)
    if world:
        import importlib.util

        args.prompt = args.prompt or "red blue"
        mp4 = importlib.util.find_spec("av") is not None
        prompt = build_world(args.frames, args.steps or 12, args.seed, args.prompt, mp4)
    with ComfyServer(args.comfyui, sys.executable, port=args.port, output_dir=out) as server:
        print(f"[demo] ComfyUI answered after {server.start_seconds:.1f} s at {server.url}", flush=True)
        if not world:
            loaders = (checkpoint_loaders(args.checkpoint, args.prompt) if args.prompt
                       else checkpoint_loaders(args.checkpoint))
            prompt = build_zero_shot(args.frames, args.size, args.steps or 20, args.seed, 7.0, loaders,
                                     server.get("/object_info"))
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
        print(f"[demo] open {sorted(folder.glob('side_by_side_*.webp'))[-1]}: left = {args.checkpoint} alone (its "
              f"{args.frames} frames are independent images), right = the same seed with LongAnim Dependency Noise "
              "+ Temporal Momentum Attention (one scene that moves). No motion model and no windows: an image model "
              "makes short zero-shot clips; for long videos use a video model (see the README's 'Which node?').")
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
