"""Full-size performance benchmark (issue 9C): seconds per step and peak memory with LongAnim windows.

    .host/venv/bin/python tests/benchmarks/bench_fullsize.py            # CUDA machine: the full run
    .host/venv/bin/python tests/benchmarks/bench_fullsize.py --smoke    # CPU-feasible check that it runs

Random-weight FULL-SIZE models, built at runtime with ComfyUI's own classes (nothing is downloaded): the SD1.5
UNet (``UNetModel``: 320 channels, mult 1-2-4-4, 2 res blocks, depth 1, context 768, 8 heads), optionally with
an AnimateDiff-v2-shaped temporal module written here (random weights; inserted with ComfyUI object patches
and a ``forward_timestep_embed_patch``), and a Wan 2.1 1.3B-sized ``WanModel`` (dim 1536, 30 layers). The
state dicts are shaped on the 'meta' device, filled with random fp16 values and loaded through
``comfy.sd.load_diffusion_model_state_dict``, so ComfyUI detects them as SD15 / WAN21_T2V and wraps them in
``BaseModel`` + ``ModelPatcher`` like real files. Random weights cost the same compute and memory as trained
ones; the pictures they produce are noise.

Each configuration samples with LongAnim windows (ZoLA, length 16 stride 12 for SD; length 21 stride 16 latent
frames for Wan), Euler, cfg 7.5, after a one-step warm-up per model. Reported: seconds per step (median of the
steps; on CUDA each step is synchronised), model calls per step, and peak memory
(``torch.cuda.max_memory_allocated``, weights included; on CPU the process RSS high-water mark: coarse).
Writes bench_out/fullsize.md (+ fullsize.png when matplotlib is installed).
Reference: ZoLA Table 3, A800, 256 frames at 512²: 11.8 GB and 934 s.
"""
from __future__ import annotations

import argparse
import gc
import math
import os
import pathlib
import platform
import resource
import statistics
import time

import benchcommon
from benchcommon import OUT

MODELS = ("sd15", "sd15_motion", "wan13b")
SD15_UNET = dict(
    image_size=32, in_channels=4, out_channels=4, model_channels=320, channel_mult=[1, 2, 4, 4],
    num_res_blocks=[2, 2, 2, 2], transformer_depth=[1, 1, 1, 1, 1, 1, 0, 0], transformer_depth_middle=1,
    transformer_depth_output=[1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0], context_dim=768, num_heads=8,
    use_linear_in_transformer=False, use_spatial_transformer=True, use_temporal_attention=False,
    adm_in_channels=None,
)
WAN13B = dict(model_type="t2v", patch_size=(1, 2, 2), in_dim=16, out_dim=16, dim=1536, ffn_dim=8960,
              freq_dim=256, text_dim=4096, num_heads=12, num_layers=30, qk_norm=True, cross_attn_norm=True)
WINDOWS = {"sd": dict(length=16, stride=12), "wan": dict(length=21, stride=16)}
DEFAULT_RES = {"sd": (512, 512), "wan": (832, 480)}
SMOKE_RES = {"sd": (64, 64), "wan": (64, 64)}
ZOLA_REF = "ZoLA Table 3 (paper): 256 frames, 512², A800: 11.8 GB peak, 934 s total"
CFG = 7.5


def setup(device: str):
    benchcommon.setup(device)


def device_name(device: str) -> str:
    import torch

    if device == "cuda":
        return torch.cuda.get_device_name(0)
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"CPU {line.split(':', 1)[1].strip()} ({os.cpu_count()} cores)"
    except OSError:
        pass
    return f"CPU {platform.processor() or platform.machine()}"


# ------------------------------------------------------------------------------------------------------------
# random full-size models
# ------------------------------------------------------------------------------------------------------------
def randomize_(tensors: dict, seed: int) -> None:
    """Fill floating tensors in place: biases 0, 1-D weights (norm scales) 1, other weights N(0, 1/fan_in), so
    activations stay O(1) through the depth and fp16 does not overflow (values do not change the compute)."""
    import torch

    g = torch.Generator(device=next(iter(tensors.values())).device).manual_seed(seed)
    with torch.no_grad():
        for name, t in tensors.items():
            if not t.dtype.is_floating_point:
                t.zero_()
            elif name.endswith("bias"):
                t.zero_()
            elif t.ndim < 2:  # norm scales (GroupNorm, LayerNorm, RMSNorm)
                t.fill_(1.0)
            else:
                t.normal_(0.0, 1.0 / math.sqrt(max(1, t[0].numel())), generator=g)


def random_state_dict(build, seed: int, device: str) -> dict:
    """The module's state dict shapes from the 'meta' device, as random fp16 tensors on ``device``."""
    import torch

    with torch.device("meta"):
        shapes = {k: (v.shape, v.dtype) for k, v in build().state_dict().items()}
    sd = {k: torch.empty(s, dtype=torch.float16 if d.is_floating_point else d, device=device)
          for k, (s, d) in shapes.items()}
    randomize_(sd, seed)
    return sd


def load_random(family: str, device: str, dtype):
    """A ComfyUI ModelPatcher around a random-weight full-size model, via ComfyUI's own state-dict loader."""
    import comfy.ops
    import comfy.sd

    if family == "sd":
        from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

        def build():
            return UNetModel(**SD15_UNET, operations=comfy.ops.disable_weight_init)
    else:
        from comfy.ldm.wan.model import WanModel

        def build():
            return WanModel(**WAN13B, operations=comfy.ops.disable_weight_init)
    sd = random_state_dict(build, seed=1 if family == "sd" else 2, device=device)
    params = sum(v.numel() for v in sd.values())
    options = {} if dtype is None else {"dtype": dtype}
    patcher = comfy.sd.load_diffusion_model_state_dict(sd, model_options=options)
    del sd
    gc.collect()
    if patcher is None:
        raise RuntimeError(f"ComfyUI did not detect the random {family} state dict")
    return patcher, params


# ------------------------------------------------------------------------------------------------------------
# AnimateDiff-v2-shaped temporal module (own implementation, random weights)
# ------------------------------------------------------------------------------------------------------------
def motion_classes():
    import torch
    from comfy.ldm.modules.attention import optimized_attention

    class FrameAttention(torch.nn.Module):
        """Self-attention over the frame axis with a sinusoidal positional encoding (max 32 frames)."""

        def __init__(self, dim, heads, max_len, ops, dtype, device):
            super().__init__()
            self.heads = heads
            self.norm = ops.LayerNorm(dim, dtype=dtype, device=device)
            self.to_q = ops.Linear(dim, dim, bias=False, dtype=dtype, device=device)
            self.to_k = ops.Linear(dim, dim, bias=False, dtype=dtype, device=device)
            self.to_v = ops.Linear(dim, dim, bias=False, dtype=dtype, device=device)
            self.to_out = ops.Linear(dim, dim, dtype=dtype, device=device)
            pos = torch.arange(max_len).unsqueeze(1)
            div = torch.exp(torch.arange(0, dim, 2) * (-math.log(10000.0) / dim))
            pe = torch.zeros(1, max_len, dim)
            pe[0, :, 0::2] = torch.sin(pos * div)
            pe[0, :, 1::2] = torch.cos(pos * div)
            self.register_buffer("pe", pe.to(dtype), persistent=False)

        def forward(self, x):  # x: [sequences, frames, dim]
            if x.shape[1] > self.pe.shape[1]:
                raise ValueError(f"temporal module: {x.shape[1]} frames > positional encoding "
                                 f"{self.pe.shape[1]}")
            n = self.norm(x) + self.pe[:, :x.shape[1]].to(x)
            out = optimized_attention(self.to_q(n), self.to_k(n), self.to_v(n), self.heads)
            return x + self.to_out(out)

    class TemporalTransformer(torch.nn.Module):
        """GroupNorm, proj_in, 2 frame self-attention blocks, GEGLU feed-forward (x4), proj_out, residual."""

        def __init__(self, channels, ops, dtype, device, heads=8, max_len=32):
            super().__init__()
            self.channels = channels
            self.norm = ops.GroupNorm(32, channels, eps=1e-6, dtype=dtype, device=device)
            self.proj_in = ops.Linear(channels, channels, dtype=dtype, device=device)
            self.attentions = torch.nn.ModuleList(
                [FrameAttention(channels, heads, max_len, ops, dtype, device) for _ in range(2)])
            self.ff_norm = ops.LayerNorm(channels, dtype=dtype, device=device)
            # GEGLU feed-forward: value and gate from one projection
            self.ff_in = ops.Linear(channels, channels * 8, dtype=dtype, device=device)
            self.ff_out = ops.Linear(channels * 4, channels, dtype=dtype, device=device)
            self.proj_out = ops.Linear(channels, channels, dtype=dtype, device=device)

        def forward(self, x, videos: int = 1):  # x: [videos * frames, C, H, W] (frames in the batch)
            b, c, h, w = x.shape
            f = b // videos
            y = self.norm(x).view(videos, f, c, h, w).permute(0, 3, 4, 1, 2).reshape(videos * h * w, f, c)
            y = self.proj_in(y)
            for attn in self.attentions:
                y = attn(y)
            value, gate = self.ff_in(self.ff_norm(y)).chunk(2, dim=-1)
            y = y + self.ff_out(value * torch.nn.functional.gelu(gate))
            y = self.proj_out(y)
            return x + y.view(videos, h, w, f, c).permute(0, 3, 4, 1, 2).reshape(b, c, h, w)

    return TemporalTransformer


MOTION_CALLS = [0]  # temporal-module forward calls, to show that the patch ran


def _motion_handler(layer, x, emb, context, transformer_options, *args, **kwargs):
    """forward_timestep_embed_patch: the batch holds len(cond_or_uncond) videos of equal frame count."""
    MOTION_CALLS[0] += 1
    return layer(x, videos=max(1, len(transformer_options.get("cond_or_uncond", [0]))))


def add_motion_module(patcher, seed: int = 3):
    """Clone of an SD1.5 patcher with an AnimateDiff-v2-shaped temporal module after every down/up (res, attn)
    pair (8 down, 12 up, before the upsamplers) and in the middle block: 21 modules, 320/640/1280 channels.
    Inserted by ComfyUI object patches (new block containers holding the original layers plus the temporal
    module), so the base patcher stays untouched. Returns (clone, parameter count, module count)."""
    import comfy.ops
    from comfy.ldm.modules.diffusionmodules.openaimodel import ResBlock, TimestepEmbedSequential, Upsample

    TemporalTransformer = motion_classes()
    base = patcher.model
    unet = base.diffusion_model
    weight_dtype = base.get_dtype()
    ops = comfy.ops.pick_operations(weight_dtype, base.manual_cast_dtype)
    device = next(unet.parameters()).device

    def channels(block):
        return [m for m in block if isinstance(m, ResBlock)][-1].out_channels

    def with_motion(block):
        layers = list(block)
        at = len(layers) - 1 if isinstance(layers[-1], Upsample) else len(layers)
        mm = TemporalTransformer(channels(block), ops, weight_dtype, device)
        return TimestepEmbedSequential(*layers[:at], mm, *layers[at:]), mm

    m = patcher.clone()
    modules = []
    targets = [f"input_blocks.{i}" for i, blk in enumerate(unet.input_blocks) if any(isinstance(x, ResBlock)
                                                                                     for x in blk)]
    targets += ["middle_block"]  # at its end: same shape and compute as AnimateDiff's mid-block position
    targets += [f"output_blocks.{i}" for i in range(len(unet.output_blocks))]
    for name in targets:
        block = unet.get_submodule(name)
        new, mm = with_motion(block)
        modules.append(mm)
        m.add_object_patch(f"diffusion_model.{name}", new)
    tensors = {f"{i}.{k}": v for i, mm in enumerate(modules) for k, v in mm.named_parameters()}
    randomize_(tensors, seed)
    m.set_model_forward_timestep_embed_patch((TemporalTransformer, _motion_handler))
    return m, sum(v.numel() for v in tensors.values()), len(modules)


# ------------------------------------------------------------------------------------------------------------
# measurement
# ------------------------------------------------------------------------------------------------------------
def conds(family: str):
    import torch

    shape = (1, 77, 768) if family == "sd" else (1, 512, 4096)
    g = torch.Generator().manual_seed(7)
    return [[torch.randn(shape, generator=g), {}]], [[torch.randn(shape, generator=g), {}]]


def make_latent(family: str, frames: int, res):
    import torch

    w, h = res
    if family == "sd":
        return torch.zeros(frames, 4, h // 8, w // 8)
    return torch.zeros(1, 16, (frames - 1) // 4 + 1, h // 8, w // 8)


def rss_peak_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run_sampling(model, family: str, frames: int, res, steps: int, device: str) -> dict:
    import comfy.model_management
    import comfy.patcher_extension
    import comfy.sample
    import torch

    calls = [0]

    def counter(executor, *args, **kwargs):
        calls[0] += 1
        return executor(*args, **kwargs)

    m = model.clone()
    m.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.CALC_COND_BATCH, "bench.count", counter)
    latent = make_latent(family, frames, res)
    noise = comfy.sample.prepare_noise(latent, 1)
    positive, negative = conds(family)
    stamps = []

    def callback(step, x0, x, total):
        if device == "cuda":
            torch.cuda.synchronize()
        stamps.append(time.perf_counter())

    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    out = comfy.sample.sample(m, noise, steps, CFG, "euler", "normal", positive, negative, latent,
                              callback=callback, disable_pbar=True, seed=1)
    total = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated() if device == "cuda" else rss_peak_bytes()
    per_step = [b - a for a, b in zip([t0] + stamps[:-1], stamps)]
    s_step = statistics.median(per_step[1:]) if len(per_step) > 1 else (per_step[0] if per_step else total)
    finite = bool(torch.isfinite(out).all())
    del out, noise
    comfy.model_management.soft_empty_cache()
    return {"frames": frames, "latent": "x".join(str(s) for s in latent.shape), "steps": steps,
            "s_step": s_step, "first_step": per_step[0] if per_step else total, "total": total,
            "calls_step": calls[0] / steps, "peak_gib": peak / 2**30, "finite": finite}


def bench_model(name: str, base, frames_list, res, steps: int, device: str, dev_name: str,
                warmup: bool) -> list:
    from longanim.nodes.comfy import windows as ca

    family = "wan" if name.startswith("wan") else "sd"
    win = WINDOWS[family]
    model = ca.patch_model_windows(base, ca.WindowOptions(schedule="zola", length=win["length"],
                                                          stride=win["stride"]))
    if warmup:
        t0 = time.perf_counter()
        run_sampling(model, family, frames_list[0], res, 1, device)
        took = time.perf_counter() - t0
        print(f"[fullsize] {name}: warm-up (1 step, {frames_list[0]} frames) {took:.1f} s", flush=True)
    rows = []
    for frames in frames_list:
        r = run_sampling(model, family, frames, res, steps, device)
        r.update(model=name, res=f"{res[0]}x{res[1]}", device=dev_name,
                 windows=f"zola {win['length']}/{win['stride']}" + (" latent" if family == "wan" else ""))
        print(f"[fullsize] {name} {frames} frames: {r['s_step']:.2f} s/step, "
              f"{r['calls_step']:.0f} calls/step, peak {r['peak_gib']:.2f} GiB", flush=True)
        rows.append(r)
    return rows


def parse_resolution(text: str | None, smoke: bool) -> dict:
    res = dict(SMOKE_RES if smoke else DEFAULT_RES)
    if not text:
        return res
    for part in text.split(","):
        key, _, value = part.rpartition("=")
        w, h = (int(v) for v in value.lower().split("x"))
        if w % 16 or h % 16:
            raise SystemExit(f"--resolution: {value} must be multiples of 16")
        for fam in ([key] if key else list(res)):
            if fam not in res:
                raise SystemExit(f"--resolution: unknown family {fam!r} (sd or wan)")
            res[fam] = (w, h)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", choices=("cuda", "cpu"), default=None, help="default: cuda when available")
    ap.add_argument("--frames", default="16,64,256", help="video frames (Wan: latent frames = (f-1)//4+1)")
    ap.add_argument("--steps", type=int, default=4, help="timed Euler steps per configuration")
    ap.add_argument("--models", default=",".join(MODELS),
                    help="comma-separated subset of: " + ", ".join(MODELS))
    ap.add_argument("--resolution", default=None,
                    help="WxH for every model, or per family, e.g. sd=512x512,wan=832x480 (the defaults)")
    ap.add_argument("--dtype", choices=("auto", "fp16", "bf16", "fp32"), default="auto",
                    help="weight dtype; auto = ComfyUI's choice on CUDA, fp16 weights (fp32 compute) on CPU")
    ap.add_argument("--no-warmup", action="store_true")
    ap.add_argument("--smoke", action="store_true",
                    help="CPU-feasible check: 1 step, 16 frames, 64x64, no warm-up (no performance figure)")
    args = ap.parse_args()

    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: CUDA is not available to this torch")
    frames_list = [16] if args.smoke else [int(f) for f in args.frames.split(",") if f]
    steps = 1 if args.smoke else args.steps
    warmup = not (args.smoke or args.no_warmup)
    res = parse_resolution(args.resolution, args.smoke)
    names = [n for n in args.models.split(",") if n]
    for n in names:
        if n not in MODELS:
            raise SystemExit(f"--models: unknown {n!r}; choose from {', '.join(MODELS)}")
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}.get(args.dtype)
    if dtype is None and device == "cpu":
        dtype = torch.float16  # halves host memory; ComfyUI computes in fp32 on CPU (manual cast)
    setup(device)
    import comfy.model_management

    dev_name = device_name(device)
    print(f"[fullsize] device: {dev_name}; models {names}; frames {frames_list}; steps {steps}", flush=True)
    rows, notes = [], []
    gen_device = "cuda" if device == "cuda" else "cpu"
    families = [("sd", [n for n in names if n.startswith("sd15")]),
                ("wan", [n for n in names if n == "wan13b"])]
    for family, members in families:
        if not members:
            continue
        t0 = time.perf_counter()
        base, params = load_random(family, gen_device, dtype)
        label = "SD1.5 UNet" if family == "sd" else "Wan 2.1 1.3B-sized WanModel"
        notes.append(f"{label}: {params / 1e6:.0f} M parameters, weights {base.model.get_dtype()}, compute "
                     f"{base.model.manual_cast_dtype or base.model.get_dtype()}, built in "
                     f"{time.perf_counter() - t0:.0f} s")
        for name in members:
            model = base
            if name == "sd15_motion":
                model, mparams, count = add_motion_module(base)
            MOTION_CALLS[0] = 0
            rows += bench_model(name, model, frames_list, res[family], steps, device, dev_name, warmup)
            if name == "sd15_motion":
                notes.append(f"temporal module (AnimateDiff-v2-shaped, own code): {count} modules, "
                             f"{mparams / 1e6:.0f} M parameters, {MOTION_CALLS[0]} module calls in its runs")
            elif MOTION_CALLS[0]:
                raise RuntimeError(f"{name}: the temporal module ran in a model without it")
            del model
            # a full unload restores the object patches (a clone's detach on load does not)
            comfy.model_management.unload_all_models()
        del base
        comfy.model_management.unload_all_models()
        gc.collect()
        comfy.model_management.soft_empty_cache()

    text = report(rows, notes, device, dev_name, steps, args.smoke, warmup)
    print(text)
    OUT.mkdir(exist_ok=True)
    (OUT / "fullsize.md").write_text(text)
    plot(rows, OUT / "fullsize.png")


def report(rows, notes, device, dev_name, steps, smoke, warmup) -> str:
    mem = "peak VRAM allocated, GiB (weights included)" if device == "cuda" else \
        "peak process RSS, GiB (high-water mark: coarse)"
    title = f"# Full-size benchmark ({dev_name})"
    if smoke:
        title += " -- SMOKE RUN: tiny resolution, 1 step, not a performance figure"
    lines = [title, "",
             f"Random-weight full-size models, LongAnim ZoLA windows, Euler, cfg {CFG}, {steps} timed "
             f"step(s){' after a 1-step warm-up' if warmup else ', no warm-up'}; s/step = median step "
             "(sampler setup falls in the first step).", "",
             f"| model | frames | resolution | latent | windows | model calls/step | s/step | {mem} | "
             "device | output finite |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['frames']} | {r['res']} | {r['latent']} | {r['windows']} | "
                     f"{r['calls_step']:.0f} | {r['s_step']:.2f} | {r['peak_gib']:.2f} | {r['device']} | "
                     f"{'yes' if r['finite'] else 'NO'} |")
    lines.append("| ZoLA Table 3 (paper) | 256 | 512x512 | | | | 934 s in total | 11.8 GB | NVIDIA A800 | |")
    lines += ["", f"- Reference: {ZOLA_REF}; that is a whole generation (its step count is not restated "
              "here): compare it with s/step x your step count."]
    for r in rows:
        if r["frames"] == 256 and r["res"] == "512x512":
            lines.append(f"- {r['model']}: 934 s = {934 / r['s_step']:.0f} steps at {r['s_step']:.2f} s/step "
                         f"({r['device']})")
    if device == "cpu":
        lines.append("- CPU memory is the process RSS high-water mark since start (ru_maxrss): it includes "
                     "the model build and every earlier configuration, so it is coarse.")
    lines += [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def plot(rows, path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"[fullsize] matplotlib is not installed in this venv: plot {path.name} skipped")
        return
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    for name in dict.fromkeys(r["model"] for r in rows):
        rs = [r for r in rows if r["model"] == name]
        a.plot([r["frames"] for r in rs], [r["s_step"] for r in rs], "o-", label=name)
        b.plot([r["frames"] for r in rs], [r["peak_gib"] for r in rs], "o-", label=name)
    b.axhline(11.8 * 1e9 / 2**30, color="gray", ls="--", label="ZoLA A800, 256 fr. (11.8 GB)")
    dev = rows[0]["device"] if rows else ""
    frames = sorted({r["frames"] for r in rows})
    a.set(ylabel="s / step", title=f"time per step ({dev})")
    b.set(ylabel="GiB", title=f"peak memory ({dev})")
    for ax in (a, b):
        ax.set_xscale("log", base=2)
        ax.set_xticks(frames, [str(f) for f in frames])
        ax.minorticks_off()
        ax.set_xlabel("video frames")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"[fullsize] wrote {path}")


if __name__ == "__main__":
    main()
