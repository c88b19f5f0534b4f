"""Benchmark of the attention patch nodes (issue 6) on the tiny host models, CPU by default.

1. Attention share (SD1.5 tiny, a real ``attn1`` module of the UNet, 320 channels, 8 heads, G = 2 cond chunks):
   ``attn1`` alone vs a no-op ``attn1_patch`` + ``attn1`` vs the ZS² momentum patch + ``attn1`` vs the Gen-L
   bidirectional patch + ``attn1``, for 16 / 64 / 256 frames of 4x4 and 8x8 tokens (N = 16 / 64).
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
    sys.path.insert(0, str(ROOT / "tests" / "comfy"))
    import comfy.cli_args

    comfy.cli_args.args.cpu = True
    import comfyhelpers
    import conftest  # noqa: F401  (registers the ``longanim`` alias)
    from longanim.nodes import comfy_adapter_attention as caa

    return comfyhelpers, caa


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


def noop_patch(n, context, value, extra_options):  # noqa: ANN001, ANN201
    return n, context, value


def bench_attention_share(h, caa, frames_list, repeats: int) -> list[str]:  # noqa: ANN001
    dm = h.sd15().model.diffusion_model
    attn1 = dm.input_blocks[1][1].transformer_blocks[0].attn1
    tma = caa.FrameAttentionPatch("momentum", mu=0.98)
    xfa = caa.FrameAttentionPatch("bidirectional_anchor")
    rows = ["| frames | tokens/frame | attn1 ms | no-op patch ms | momentum ms | momentum overhead | "
            "bidirectional ms | bidirectional overhead |", "|---|---|---|---|---|---|---|---|"]
    for tokens in (16, 64):
        for f in frames_list:
            g = 2
            n = torch.randn(g * f, tokens, 320, generator=torch.Generator().manual_seed(0))
            opts = {"cond_or_uncond": [1, 0], "block": ("input", 1), "original_shape": [g * f, 4, 4, 4]}

            def run(patch, n=n, opts=opts):
                x, c, v = patch(n, n, n, opts)
                return attn1(x, context=c, value=v)

            t_plain = _time(lambda n=n: attn1(n), repeats)
            t_noop = _time(lambda: run(noop_patch), repeats)
            t_tma = _time(lambda: run(tma), repeats)
            t_xfa = _time(lambda: run(xfa), repeats)
            rows.append(f"| {f} | {tokens} | {t_plain:.1f} | {t_noop:.1f} | {t_tma:.1f} | "
                        f"{100 * (t_tma / t_noop - 1):+.1f} % | {t_xfa:.1f} | {100 * (t_xfa / t_noop - 1):+.1f} % |")
            logger.info(rows[-1])
    return rows


def bench_whole_step(h, caa, frames_list, repeats: int) -> list[str]:  # noqa: ANN001
    rows = ["| model | frames | unpatched ms | patched ms | ratio | patch |", "|---|---|---|---|---|---|"]
    dm = h.sd15().model.diffusion_model
    for f in frames_list:
        x = torch.randn(f, 4, 4, 4, generator=torch.Generator().manual_seed(1))
        t = torch.full((f,), 500.0)
        c = torch.randn(1, 77, 768).expand(f, 77, 768)
        base_opts = {"cond_or_uncond": [0], "sigmas": torch.full((f,), 5.0)}
        t_plain = _time(lambda x=x, t=t, c=c, o=base_opts: dm(x, t, c, transformer_options=dict(o)), repeats)
        for name, patch in (("momentum 0.98", caa.FrameAttentionPatch("momentum", mu=0.98)),
                            ("bidirectional", caa.FrameAttentionPatch("bidirectional_anchor"))):
            opts = {**base_opts, "patches": {"attn1_patch": [patch]}}
            t_p = _time(lambda x=x, t=t, c=c, o=opts: dm(x, t, c, transformer_options=dict(o)), repeats)
            rows.append(f"| SD1.5 tiny 4x4 | {f} | {t_plain:.0f} | {t_p:.0f} | {t_p / t_plain:.3f} | {name} |")
            logger.info(rows[-1])
    wan = h.wan().model.diffusion_model
    for f in frames_list:
        x = torch.randn(1, 16, f, 4, 4, generator=torch.Generator().manual_seed(2))
        t = torch.full((1,), 500.0)
        c = torch.randn(1, 16, 4096, generator=torch.Generator().manual_seed(3))
        t_plain = _time(lambda x=x, t=t, c=c: wan(x, t, c, transformer_options={}), repeats)
        override = caa.ExpansionOverride(21, 10)
        opts = {"optimized_attention_override": override, caa.GRID_KEY: (f, 2, 2)}
        t_p = _time(lambda x=x, t=t, c=c, o=opts: wan(x, t, c, transformer_options=dict(o)), repeats)
        rows.append(f"| Wan 2.1 tiny 4x4 | {f} | {t_plain:.1f} | {t_p:.1f} | {t_p / t_plain:.3f} | "
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
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="16 and 64 frames only")
    parser.add_argument("--out", default="bench_out/attention.md")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    h, caa = _host()
    frames_list = [16, 64] if args.quick else [16, 64, 256]
    text = "\n".join([
        "# Attention patches (issue 6)", "",
        f"CPU, torch {torch.__version__}, {torch.get_num_threads()} threads, best of {args.repeats}. Overhead = "
        "patched / (no-op attn1_patch + attn1) - 1: the cost the patch adds to the self-attention it feeds.", "",
        "## Attention share (real attn1 of the tiny SD UNet, 320 ch, 8 heads, G = 2)", "",
        *bench_attention_share(h, caa, frames_list, args.repeats), "",
        "## Whole model call", "",
        *bench_whole_step(h, caa, frames_list, args.repeats), "",
        "## Memory of one momentum patch call (G = 2, 64 tokens, 320 ch; torch profiler)", "",
        *bench_memory(caa, frames_list), "",
    ])
    print(text)
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)


if __name__ == "__main__":
    main()
