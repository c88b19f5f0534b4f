"""Benchmark of nodes/algorithms/attention.py (CPU by default).

1. ZS^2 temporal momentum: momentum_scan (sequential / blocked) vs the paper's F x F matrix form vs the
   python loop of Eq. 2, for F = 16, 64, 256 frames of N = 64 tokens x C = 320 channels (G = 2 chunks).
2. ZoLA attention expansion: expanded_attention vs plain attention over all tokens for 21 and 81 latent
   frames (torch SDPA as the attention kernel for both, as a host's optimized attention would be).

Run: ``.host/venv/bin/python tests/benchmarks/bench_attention_math.py [--device cuda] [--repeats 5]``.
Prints a markdown table and writes bench_out/attention_math.md (relative to the current directory).
"""
from __future__ import annotations

import argparse
import importlib.util
import logging
import pathlib
import sys
import time
from collections.abc import Callable

import torch

ROOT = pathlib.Path(__file__).resolve().parents[2]
logger = logging.getLogger("bench_attention_math")


def _load_module():  # noqa: ANN202
    """Import the pure module by file path (no package alias, no sys.path edits)."""
    path = ROOT / "nodes" / "algorithms" / "attention.py"
    spec = importlib.util.spec_from_file_location("longanim_bench_attention", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def _time(fn: Callable[[], object], repeats: int, device: torch.device) -> float:
    """Best (minimum) wall time in ms over ``repeats`` runs after one warm-up: the least noisy statistic on
    a shared machine."""
    fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1e3)
    return min(times)


def _sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int) -> torch.Tensor:
    b, length, hd = q.shape
    sh = (b, -1, heads, hd // heads)
    o = torch.nn.functional.scaled_dot_product_attention(*(x.view(sh).transpose(1, 2) for x in (q, k, v)))
    return o.transpose(1, 2).reshape(b, length, hd)


def bench_momentum(mod, device: torch.device, repeats: int) -> list[str]:  # noqa: ANN001
    rows = [
        "| frames F | scan sequential ms | scan blocked ms | matrix (F x F) ms | loop (Eq. 2) ms "
        "| max abs err seq / blocked vs loop |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    g = torch.Generator().manual_seed(0)
    for f in (16, 64, 256):
        x = torch.randn(2, f, 64, 320, generator=g).to(device)
        ref = mod.momentum_loop(x, 0.98)
        err_s = (mod.momentum_scan(x, 0.98, method="sequential") - ref).abs().max().item()
        err_b = (mod.momentum_scan(x, 0.98, method="blocked") - ref).abs().max().item()
        t_seq = _time(lambda x=x: mod.momentum_scan(x, 0.98, method="sequential"), repeats, device)
        t_blk = _time(lambda x=x: mod.momentum_scan(x, 0.98, method="blocked"), repeats, device)
        t_mat = _time(lambda x=x: mod.momentum_matrix(x, 0.98), repeats, device)
        t_loop = _time(lambda x=x: mod.momentum_loop(x, 0.98), repeats, device)
        rows.append(
            f"| {f} | {t_seq:.2f} | {t_blk:.2f} | {t_mat:.2f} | {t_loop:.2f} | {err_s:.1e} / {err_b:.1e} |"
        )
        logger.info("momentum F=%d done", f)
    return rows


def bench_expansion(mod, device: torch.device, repeats: int, tokens: int) -> list[str]:  # noqa: ANN001
    heads, d = 4, 32
    rows = [
        "| latent frames | tokens/frame | base f | stride s | windows | plain attention ms "
        "| expanded ms | max abs diff |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    g = torch.Generator().manual_seed(1)
    for t, base in ((21, 11), (81, 21)):
        q, k, v = (torch.randn(1, t * tokens, heads * d, generator=g).to(device) for _ in range(3))
        n_win = len(mod.expansion_windows(t, base))
        t_plain = _time(lambda q=q, k=k, v=v: _sdpa(q, k, v, heads), repeats, device)
        t_exp = _time(
            lambda q=q, k=k, v=v, t=t, base=base: mod.expanded_attention(
                q, k, v, heads, t, tokens, base, attn_fn=_sdpa
            ),
            repeats,
            device,
        )
        diff = mod.expanded_attention(q, k, v, heads, t, tokens, base, attn_fn=_sdpa) - _sdpa(q, k, v, heads)
        rows.append(
            f"| {t} | {tokens} | {base} | {max(1, base // 2)} | {n_win} | {t_plain:.1f} | {t_exp:.1f} "
            f"| {diff.abs().max().item():.2e} |"
        )
        logger.info("expansion T=%d done", t)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=64, help="tokens per latent frame (expansion)")
    parser.add_argument("--out", default="bench_out/attention_math.md")
    parser.add_argument(
        "--threads", type=int, default=1, help="CPU threads (1: stable numbers on a shared, loaded machine)"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    mod = _load_module()
    device = torch.device(args.device)
    header = (
        f"# attention math benchmark\n\ndevice: {device} ({torch.get_num_threads()} CPU threads), torch "
        f"{torch.__version__}, best of {args.repeats} runs, float32\n"
    )
    mom = bench_momentum(mod, device, args.repeats)
    exp = bench_expansion(mod, device, args.repeats, args.tokens)
    text = "\n".join(
        [
            header,
            "## ZS^2 temporal momentum, G = 2 chunks, N = 64 tokens, C = 320, mu = 0.98\n",
            "scan columns run in float32; matrix and loop are the float64 test references (paper forms).\n",
            *mom,
            "",
            "## ZoLA attention expansion vs plain attention (SDPA kernel for both), heads = 4, d = 32\n",
            "max abs diff: expanded vs plain output (expansion is an approximation by design).\n",
            *exp,
            "",
        ]
    )
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    sys.stdout.write(text)


if __name__ == "__main__":
    main()
