"""Build tiny random-weight models that ComfyUI's own loaders accept (run with the host's python).

    python tests/tools/tiny_models.py --comfyui .host/ComfyUI

Writes, only when missing or of an older recipe (idempotent, deterministic: fixed seeds):
- ``models/diffusion_models/longanim_tiny_sd15.safetensors``: ComfyUI's own ``UNetModel`` with one level
  (320 channels, 768-wide context: what the SD15 detector needs), frames in the batch (AnimateDiff layout).
- ``models/diffusion_models/longanim_tiny_wan21.safetensors``: ComfyUI's own ``WanModel`` (dim 128, 2 layers),
  detected as WAN21_T2V, latents ``[B, 16, T, H, W]``.
- ``models/vae/longanim_tiny_taesd.safetensors``: a random TAESD (4 latent channels) for SD-family decoding.
- ``models/vae/longanim_tiny_taew21.safetensors``: a random TAEHV (16 latent channels) for Wan-family decoding.
- ``models/controlnet/longanim_tiny_controlnet_sd15.safetensors``: a ControlNet matching the tiny SD15 UNet.
Weights are random (std 0.02); frames decoded from them are noise. They exercise the real sampling code.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

RECIPE = "longanim-tiny-v1"

SD15_CONFIG = dict(
    image_size=32, in_channels=4, out_channels=4, model_channels=320, channel_mult=[1], num_res_blocks=[1],
    transformer_depth=[1], transformer_depth_middle=1, transformer_depth_output=[1, 1], context_dim=768,
    num_heads=8, use_linear_in_transformer=False, use_spatial_transformer=True, use_temporal_attention=False,
    adm_in_channels=None, attention_resolutions=[1],
)
WAN_CONFIG = dict(model_type="t2v", patch_size=(1, 2, 2), in_dim=16, out_dim=16, dim=128, ffn_dim=256,
                  freq_dim=256, text_dim=4096, num_heads=1, num_layers=2, qk_norm=True, cross_attn_norm=True)


def _randomize(module, seed: int) -> dict:
    import torch

    g = torch.Generator().manual_seed(seed)
    sd = {}
    for name, t in module.state_dict().items():
        if t.dtype.is_floating_point:
            if "norm" in name and name.endswith("weight"):
                sd[name] = torch.ones(t.shape, dtype=torch.float32)
            elif "norm" in name and name.endswith("bias"):
                sd[name] = torch.zeros(t.shape, dtype=torch.float32)
            else:
                sd[name] = (torch.randn(t.shape, generator=g) * 0.02).to(torch.float32)
        else:
            sd[name] = t.clone()
    return sd


def is_fresh(path: Path, recipe: str = RECIPE) -> bool:
    """True when ``path`` exists and was written by ``recipe`` (shared with tiny_lora.py)."""
    if not path.exists():
        return False
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as f:
            return (f.metadata() or {}).get("longanim_recipe") == recipe
    except Exception:  # a broken file is rebuilt
        return False


def save_model(sd: dict, path: Path, recipe: str = RECIPE) -> None:
    """Write atomically (per-process temp file, then rename), stamped with ``recipe``."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.partial")
    save_file({k: v.contiguous() for k, v in sd.items()}, str(tmp), metadata={"longanim_recipe": recipe})
    os.replace(tmp, path)
    print(f"[tiny_models] wrote {path} ({path.stat().st_size / 2**20:.1f} MiB)", flush=True)


def build_sd15():
    import comfy.ops
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    cfg = dict(SD15_CONFIG)
    cfg.pop("attention_resolutions")
    return UNetModel(**cfg, operations=comfy.ops.disable_weight_init)


def build_wan():
    import comfy.ops
    from comfy.ldm.wan.model import WanModel

    return WanModel(**WAN_CONFIG, operations=comfy.ops.disable_weight_init)


def build_controlnet():
    import comfy.cldm.cldm
    import comfy.ops

    cfg = dict(SD15_CONFIG)
    cfg.pop("out_channels")
    cfg.pop("transformer_depth_output")
    cfg.pop("attention_resolutions")
    cfg.pop("use_temporal_attention")
    return comfy.cldm.cldm.ControlNet(hint_channels=3, **cfg, operations=comfy.ops.disable_weight_init)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--comfyui", required=True)
    args = ap.parse_args()
    comfyui = Path(args.comfyui).resolve()
    sys.path.insert(0, str(comfyui))
    import comfy.cli_args

    comfy.cli_args.args.cpu = True
    models = comfyui / "models"
    jobs = [
        (models / "diffusion_models" / "longanim_tiny_sd15.safetensors", build_sd15, 1, ""),
        (models / "diffusion_models" / "longanim_tiny_wan21.safetensors", build_wan, 2, ""),
        (models / "controlnet" / "longanim_tiny_controlnet_sd15.safetensors", build_controlnet, 5, ""),
    ]
    for path, fn, seed, prefix in jobs:
        if is_fresh(path):
            continue
        sd = _randomize(fn(), seed)
        if prefix:
            sd = {prefix + k: v for k, v in sd.items()}
        save_model(sd, path)

    vae_sd15 = models / "vae" / "longanim_tiny_taesd.safetensors"
    if not is_fresh(vae_sd15):
        from comfy.taesd.taesd import TAESD

        save_model(_randomize(TAESD(latent_channels=4), 3), vae_sd15)
    vae_wan = models / "vae" / "longanim_tiny_taew21.safetensors"
    if not is_fresh(vae_wan):
        from comfy.taesd.taehv import TAEHV

        save_model(_randomize(TAEHV(latent_channels=16), 4), vae_wan)


if __name__ == "__main__":
    main()
