"""Build tiny random LoRAs for the tiny test models (no ComfyUI import needed; run with the host's python).

    python tests/tools/tiny_lora.py --comfyui .host/ComfyUI          # writes models/loras/longanim_tiny_*.safetensors
    python tests/tools/tiny_lora.py --comfyui .host/ComfyUI --bench  # also times the two per-window mechanisms

Written only when missing or of an older recipe (deterministic: fixed seeds):
- ``models/loras/longanim_tiny_lora_sd15.safetensors``: rank-4 LoRA (kohya ``lora_unet_*`` names, ``alpha`` = 2)
  on every attention projection of the tiny SD1.5 UNet, its 1x1 ``proj_in`` convs and one 3x3 conv.
- ``models/loras/longanim_tiny_lora_wan21.safetensors``: rank-4 LoRA (generic ``diffusion_model.*`` names,
  ``lora_A``/``lora_B``) on the tiny Wan model's attention and FFN linears.
- ``models/loras/longanim_tiny_lora_sd15_b.safetensors``: a second SD LoRA (other seed), for chaining tests.
The tests call :func:`ensure` at test time.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tiny_models import is_fresh, save_model  # noqa: E402  (same folder; shared atomic, recipe-stamped writes)

RECIPE = "longanim-tiny-lora-v1"
SD15 = "longanim_tiny_lora_sd15.safetensors"
SD15_B = "longanim_tiny_lora_sd15_b.safetensors"
WAN = "longanim_tiny_lora_wan21.safetensors"
RANK = 4
STD = 0.1


def _targets(model_file: Path, family: str) -> dict[str, tuple]:
    from safetensors import safe_open

    out = {}
    with safe_open(str(model_file), "pt") as f:
        for k in f.keys():
            if not k.endswith(".weight"):
                continue
            shape = tuple(f.get_slice(k).get_shape())
            base = k[: -len(".weight")]
            if family == "sd15":
                hit = (any(s in base for s in (".to_q", ".to_k", ".to_v", ".to_out.0")) or base.endswith("proj_in")
                       or base == "input_blocks.1.0.in_layers.2")
            else:
                hit = any(base.endswith(s) for s in (".q", ".k", ".v", ".o", "ffn.0", "ffn.2")) and len(shape) == 2
            if hit:
                out[base] = shape
    return out


def _build(model_file: Path, family: str, seed: int) -> dict:
    import torch

    g = torch.Generator().manual_seed(seed)
    sd = {}
    for base, shape in sorted(_targets(model_file, family).items()):
        out_dim, in_dim = shape[0], shape[1]
        kernel = tuple(shape[2:])
        down = torch.randn((RANK, in_dim, *kernel), generator=g) * STD
        up = torch.randn((out_dim, RANK, *(1 for _ in kernel)), generator=g) * STD
        if family == "sd15":
            name = "lora_unet_" + base.replace(".", "_")
            sd[f"{name}.lora_down.weight"], sd[f"{name}.lora_up.weight"] = down, up
            sd[f"{name}.alpha"] = torch.tensor(float(RANK) / 2)
        else:
            name = "diffusion_model." + base
            sd[f"{name}.lora_A.weight"], sd[f"{name}.lora_B.weight"] = down, up
    return sd


def ensure(comfyui: str | Path) -> dict[str, Path]:
    """Write the tiny LoRAs under ``<comfyui>/models/loras`` when missing or stale; return their paths."""
    comfyui = Path(comfyui)
    models = comfyui / "models" / "diffusion_models"
    loras = comfyui / "models" / "loras"
    loras.mkdir(parents=True, exist_ok=True)
    jobs = {SD15: ("longanim_tiny_sd15.safetensors", "sd15", 11),
            SD15_B: ("longanim_tiny_sd15.safetensors", "sd15", 12),
            WAN: ("longanim_tiny_wan21.safetensors", "wan21", 13)}
    paths = {}
    for name, (model, family, seed) in jobs.items():
        path = loras / name
        paths[name] = path
        if is_fresh(path, RECIPE):
            continue
        save_model(_build(models / model, family, seed), path, RECIPE)
    return paths


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    root = Path(__file__).resolve().parents[2]
    ap.add_argument("--comfyui", default=os.environ.get("LONGANIM_COMFYUI") or str(root / ".host" / "ComfyUI"))
    ap.add_argument("--bench", action="store_true", help="time weight patching vs forward-time LoRA per window")
    args = ap.parse_args(argv)
    for name, path in ensure(args.comfyui).items():
        print(f"[tiny_lora] {name}: {path}")
    if args.bench:
        bench(args.comfyui)
    return 0


def bench(comfyui: str | Path, repeats: int = 5) -> dict:
    """Per-window cost of the two exact mechanisms on the tiny SD UNet (CPU), printed and returned (ms)."""
    import time

    import torch

    sys.path.insert(0, str(comfyui))
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import comfy.cli_args

    comfy.cli_args.args.cpu = True
    import comfy.sd
    import conftest  # noqa: F401  (registers the ``longanim`` alias)
    import folder_paths
    from longanim.nodes.comfy import adapters as cac

    torch.set_num_threads(1)
    patcher = comfy.sd.load_diffusion_model(folder_paths.get_full_path_or_raise(
        "diffusion_models", "longanim_tiny_sd15.safetensors"))
    base = patcher.model
    adapter = cac.load_window_lora(patcher, SD15, 1.0, "0-")
    x = torch.randn(4, 4, 4, 4)
    t = torch.full((4,), 500.0)
    ctx = torch.randn(4, 77, 768)
    net = base.diffusion_model
    res = {}

    def timed(fn):
        fn()
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t0)
        return best * 1000

    with torch.inference_mode():
        res["forward_plain_ms"] = timed(lambda: net(x, t, context=ctx))
        for mode in ("forward", "patch"):
            def switch(mode=mode):
                undo = cac.install(base, [(adapter, 0.7)], mode=mode)
                undo()

            def window(mode=mode):
                undo = cac.install(base, [(adapter, 0.7)], mode=mode)
                try:
                    net(x, t, context=ctx)
                finally:
                    undo()

            res[f"{mode}_switch_ms"] = timed(switch)
            res[f"{mode}_window_ms"] = timed(window)
    for k, v in res.items():
        print(f"[tiny_lora bench] {k}: {v:.2f}")
    return res


if __name__ == "__main__":
    sys.exit(main())
