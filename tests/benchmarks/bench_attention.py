"""Benchmark of the attention patch nodes (issue 6) on the tiny host models, CPU by default.

1. Attention share (SD1.5 tiny, a real ``attn1`` module of the UNet, 320 channels, 8 heads, G = 2 cond chunks):
   ``attn1`` (projections + host kernel + output) vs the ZS² momentum patch call and the Gen-L bidirectional
   patch call (+ ``attn1`` on its 2N keys/values), for 16 / 64 / 256 frames of 4x4 and 8x8 tokens (N = 16 / 64).
   Target: momentum adds <= 15 % to the attention time.
2. Whole step (one model call of the tiny SD UNet, G = 1, 4x4 latent): unpatched vs momentum vs bidirectional,
   and the tiny Wan 2.1 model unpatched vs ZoLA attention expansion (base 21) for 16 / 64 / 256 latent frames.
3. Memory of the momentum patch (torch profiler, CPU): largest single allocation and total bytes allocated by
   one patch call, as multiples of the hidden states' size -- constant in F, so no frames x frames tensor.

Run: ``.host/venv/bin/python tests/benchmarks/bench_attention.py [--repeats 3] [--quick]``.
Prints a markdown table and writes bench_out/attention.md (relative to the current directory).
"""
from __future__ import annotations

import argparse
import logging
import os
import pathlib
import sys
import time
from collections.abc import Callable

import torch

ROOT = pathlib.Path(__file__).resolve().parents[2]
logger = logging.getLogger("bench_attention")


def _host():  # noqa: ANN202
    sys.path.insert(0, os.environ.get("LONGANIM_COMFYUI") or str(ROOT / ".host" / "ComfyUI"))
    sys.path.insert(0, str(ROOT / "tests"))
    import comfy.cli_args

    comfy.cli_args.args.cpu = True
    import conftest  # noqa: F401  (tests/conftest.py: registers the ``longanim`` alias)

    sys.path.append(str(ROOT / "tests" / "comfy"))
    import comfyhelpers
    from longanim.nodes.comfy import unet_attention as caa

    return comfyhelpers, caa


def _time_interleaved(fns: list[Callable[[], object]], repeats: int) -> list[float]:
    """Best wall time in ms of each function, run round-robin (one warm-up round), so slow phases of a shared
    machine hit every variant alike."""
    best = [float("inf")] * len(fns)
    with torch.inference_mode():
        for fn in fns:
            fn()
        for _ in range(repeats):
            for i, fn in enumerate(fns):
                t0 = time.perf_counter()
                fn()
                best[i] = min(best[i], (time.perf_counter() - t0) * 1e3)
    return best


def _time(fn: Callable[[], object], repeats: int) -> float:
    """Best (minimum) wall time in ms over ``repeats`` runs after one warm-up (least noisy on a shared CPU)."""
    with torch.inference_mode():
        fn()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    return min(times)


def bench_attention_share(h, caa, frames_list, repeats: int) -> list[str]:  # noqa: ANN001
    """The patch's own time vs the self-attention it feeds (``attn1``: to_q/k/v, host kernel, to_out).

    Timed separately, each as a best-of-``repeats``: on a shared CPU the difference of two noisy end-to-end
    times is mostly noise, the minimum of each part is stable.
    """
    dm = h.sd15().model.diffusion_model
    attn1 = dm.input_blocks[1][1].transformer_blocks[0].attn1
    tma = caa.FrameAttentionPatch("momentum", mu=0.98)
    xfa = caa.FrameAttentionPatch("bidirectional_anchor")
    rows = ["| frames | tokens/frame | attn1 ms | momentum patch ms | momentum overhead | bidirectional patch ms | "
            "attn1 on 2N K/V ms | bidirectional total / attn1 |", "|---|---|---|---|---|---|---|---|"]
    for tokens in (16, 64):
        for f in frames_list:
            g = 2
            n = torch.randn(g * f, tokens, 320, generator=torch.Generator().manual_seed(0))
            opts = {"cond_or_uncond": [1, 0], "block": ("input", 1), "original_shape": [g * f, 4, 4, 4]}
            ctx2 = xfa(n, n, n, opts)[1]
            t_attn = _time(lambda n=n: attn1(n, context=n, value=n), repeats)
            t_tma = _time(lambda n=n, o=opts: tma(n, n, n, o), repeats)
            t_xfa = _time(lambda n=n, o=opts: xfa(n, n, n, o), repeats)
            t_attn2 = _time(lambda n=n, c=ctx2: attn1(n, context=c, value=c), repeats)
            rows.append(f"| {f} | {tokens} | {t_attn:.2f} | {t_tma:.2f} | {100 * t_tma / t_attn:+.1f} % | "
                        f"{t_xfa:.2f} | {t_attn2:.2f} | {(t_xfa + t_attn2) / t_attn:.2f} |")
            logger.info(rows[-1])
    return rows


def bench_whole_step(h, caa, frames_list, repeats: int) -> list[str]:  # noqa: ANN001
    from longanim.nodes.comfy import wan_attention as cwa

    rows = ["| model | frames | unpatched ms | patched ms | ratio | patch |", "|---|---|---|---|---|---|"]
    dm = h.sd15().model.diffusion_model
    patches = (("momentum 0.98", caa.FrameAttentionPatch("momentum", mu=0.98)),
               ("bidirectional", caa.FrameAttentionPatch("bidirectional_anchor")))
    for f in frames_list:
        x = torch.randn(f, 4, 4, 4, generator=torch.Generator().manual_seed(1))
        t = torch.full((f,), 500.0)
        c = torch.randn(1, 77, 768).expand(f, 77, 768)
        base = {"cond_or_uncond": [0], "sigmas": torch.full((f,), 5.0)}
        variants = [base] + [{**base, "patches": {"attn1_patch": [p]}} for _, p in patches]
        times = _time_interleaved([lambda o=o, x=x, t=t, c=c: dm(x, t, c, transformer_options=dict(o))
                                   for o in variants], repeats)
        for (name, _), t_p in zip(patches, times[1:]):
            rows.append(f"| SD1.5 tiny 4x4 | {f} | {times[0]:.0f} | {t_p:.0f} | {t_p / times[0]:.3f} | {name} |")
            logger.info(rows[-1])
    wan = h.wan().model.diffusion_model
    for f in frames_list:
        x = torch.randn(1, 16, f, 4, 4, generator=torch.Generator().manual_seed(2))
        t = torch.full((1,), 500.0)
        c = torch.randn(1, 16, 4096, generator=torch.Generator().manual_seed(3))
        variants = [{}, {"optimized_attention_override": cwa.ExpansionOverride(21, 10), cwa.GRID_KEY: (f, 2, 2)}]
        times = _time_interleaved([lambda o=o, x=x, t=t, c=c: wan(x, t, c, transformer_options=dict(o))
                                   for o in variants], repeats)
        rows.append(f"| Wan 2.1 tiny 4x4 | {f} | {times[0]:.1f} | {times[1]:.1f} | {times[1] / times[0]:.3f} | "
                    f"expansion f=21 s=10 |")
        logger.info(rows[-1])
    return rows


def bench_memory(caa, frames_list) -> list[str]:  # noqa: ANN001
    rows = ["| frames | hidden states MiB | largest allocation (x hidden) | total allocated (x hidden) |",
            "|---|---|---|---|"]
    tma = caa.FrameAttentionPatch("momentum", mu=0.98)
    for f in frames_list:
        n = torch.randn(2 * f, 64, 320)
        opts = {"cond_or_uncond": [1, 0]}
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True) as prof:
            tma(n, n, n, opts)
        allocs = [e.cpu_memory_usage for e in prof.events() if e.cpu_memory_usage > 0]
        size = n.numel() * n.element_size()
        biggest = max(allocs, default=0)
        rows.append(f"| {f} | {size / 2 ** 20:.1f} | {biggest / size:.2f} | {sum(allocs) / size:.2f} |")
        logger.info(rows[-1])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 = least noise on a shared CPU)")
    parser.add_argument("--quick", action="store_true", help="16 and 64 frames only")
    parser.add_argument("--out", default="bench_out/attention.md")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    h, caa = _host()
    frames_list = [16, 64] if args.quick else [16, 64, 256]
    text = "\n".join([
        "# Attention patches (issue 6)", "",
        f"CPU, torch {torch.__version__}, {torch.get_num_threads()} threads, best of {args.repeats}. Overhead = "
        "momentum patch time / attn1 time: the cost the patch adds to the self-attention it feeds.", "",
        "## Attention share (real attn1 of the tiny SD UNet, 320 ch, 8 heads, G = 2)", "",
        *bench_attention_share(h, caa, frames_list, args.repeats), "",
        f"## Whole model call (best of {min(args.repeats, 3)})", "",
        *bench_whole_step(h, caa, frames_list, min(args.repeats, 3)), "",
        "## Memory of one momentum patch call (G = 2, 64 tokens, 320 ch; torch profiler)", "",
        *bench_memory(caa, frames_list), "",
    ])
    print(text)
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)


if __name__ == "__main__":
    main()
