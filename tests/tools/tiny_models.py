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

Trained on the synthetic world (``tests/tools/synthworld.py``), from this repository:
- ``models/diffusion_models/longanim_world_wan21.safetensors``: a copy of the committed
  ``tests/models/longanim_world_wan21.safetensors`` (trained by ``tests/tools/train_tiny.py``; WAN21_T2V).
- ``models/vae/longanim_world_taew21.safetensors``: a TAEHV-format decoder (``VAELoader`` detects it as the Wan 2.1
  light TAE) whose weights implement synthworld's palette -> RGB map (:func:`world_vae_state_dict`). Decode only.
- ``models/vae/longanim_world_taesd.safetensors``: the same for the image model's 4-channel latents, in TAESD
  format (:func:`world_taesd_state_dict`). Decode only.
- ``models/diffusion_models/longanim_world_sd15.safetensors``: the SD1.5-family image model trained on the synthetic
  world's frames, assembled from the committed trained tensors (``tests/models/longanim_world_sd15.compact
  .safetensors``, see ``train_tiny_image.py``).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

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


WORLD_RECIPE = "longanim-world-taew21-v2"  # + the codes' fingerprint (_world_recipe)
WORLD_MODEL = "longanim_world_wan21.safetensors"
WORLD_VAE = "longanim_world_taew21.safetensors"
WORLD_IMAGE_MODEL = "longanim_world_sd15.safetensors"
WORLD_IMAGE_VAE = "longanim_world_taesd.safetensors"
WORLD_IMAGE_VAE_RECIPE = "longanim-world-taesd-v1"  # + the codes' fingerprint (_world_recipe)
WORLD_IMAGE_COMPACT = "longanim_world_sd15.compact.safetensors"
_KNOTS = 14  # piecewise-linear pieces per latent channel that undo the decoder's input clamp


def world_vae_state_dict(latents_mean, latents_std, taehv) -> dict:
    """TAEHV decoder weights that compute synthworld's linear palette -> RGB map of a raw Wan 2.1 latent.

    The decoder (``comfy/taesd/taehv.py``) starts with ``y = 3 tanh(raw / 3)``; its first 3x3 conv (centre tap
    only) + ReLU builds, per latent channel, the basis ``ReLU(y + 3)`` and ``ReLU(y - k_i)`` (``_KNOTS`` knots over
    the range the world's latents reach) plus a constant channel; the next conv combines them into the
    least-squares piecewise-linear inverse of the clamp, ``raw ~ g(y)``, then into the RGB offset from the
    background ``A (raw - mean) / std`` (synthworld.decoder_matrix) as a positive and a negative part (the ReLUs
    of the memory blocks, whose convs are zero, keep non-negative values). The time-grow convs copy each frame
    (so a latent frame is 4 video frames, first 3 trimmed as TAEHV does), upsampling is nearest, and the last
    conv adds the background colour. Only approximation left: the inverse of the clamp (see the unit test).
    """
    import synthworld
    import torch

    a, b = synthworld.decoder_matrix()
    sd = {k: torch.zeros_like(v, dtype=torch.float32) for k, v in taehv.state_dict().items()}
    _clamp_inverse_layers(sd["decoder.1.weight"], sd["decoder.1.bias"], sd["decoder.8.weight"],
                          latents_mean.flatten().double(), latents_std.flatten().double(), a,
                          synthworld.codes().double())
    n1 = sd["decoder.13.conv.weight"].shape[1]
    sd["decoder.7.conv.weight"][:, :, 0, 0] = torch.eye(sd["decoder.7.conv.weight"].shape[0])
    for key, n in (("decoder.13.conv.weight", n1), ("decoder.19.conv.weight", sd["decoder.19.conv.weight"].shape[1])):
        sd[key][:, :, 0, 0] = torch.cat([torch.eye(n), torch.eye(n)])
    _copy_parts_then_rgb(sd, ("decoder.14.weight", "decoder.20.weight"), "decoder.22", b)
    return sd


def _copy_parts_then_rgb(sd: dict, copies, head: str, background) -> None:
    """The 3x3 convs ``copies`` pass the 6 RGB-part channels on (centre-tap identity); the last conv ``head``
    gives ``rgb_j = part_2j - part_2j+1 + background_j``."""
    import torch

    for key in copies:
        sd[key][:6, :6, 1, 1] = torch.eye(6)
    w = sd[f"{head}.weight"]
    for j in range(3):
        w[j, 2 * j, 1, 1] = 1.0
        w[j, 2 * j + 1, 1, 1] = -1.0
    sd[f"{head}.bias"][:] = background


def _clamp_inverse_layers(w1, b1, w2, mean, std, a, codes) -> None:
    """Fill a tiny decoder's first 3x3 conv (``w1, b1``; after the input clamp ``y = 3 tanh(raw / 3)``) and a later
    3x3 conv ``w2`` (behind ReLUs that pass non-negative values) so that ``w2``'s channels ``2j`` / ``2j + 1`` are the
    positive / negative parts of the RGB offset ``A (raw - mean) / std`` (centre taps only).

    ``w1`` + ReLU builds, per latent channel, the basis ``ReLU(y + 3)`` and ``ReLU(y - k_i)`` (``_KNOTS`` knots over
    the range the world's latents reach, from ``codes``) plus a constant channel (the last one); ``w2`` combines
    them into the least-squares piecewise-linear inverse of the clamp, ``raw ~ g(y)``, times the RGB gain.
    """
    import torch

    channels = codes.shape[1]
    # the range one object reaches (amplitude up to 1.3: the sampler overshoots a little) plus a margin of 1
    lo = mean + std * (codes.clamp(max=0).amin(0) * 1.3 - 1.0)
    hi = mean + std * (codes.clamp(min=0).amax(0) * 1.3 + 1.0)
    nb = 1 + _KNOTS
    const = w1.shape[0] - 1
    if channels * nb > const:
        raise ValueError(f"{channels} latent channels need {channels * nb + 1} decoder channels, have {const + 1}")
    b1[const] = 1.0
    offset = torch.zeros(3, dtype=torch.float64)  # constant part of the RGB offset
    for ch in range(channels):
        # knots and fit points evenly spaced in raw (not in y): near the clamp's saturation a small step in y is
        # a large step in raw, and the fit must resolve raw there too
        raws = torch.linspace(float(lo[ch]), float(hi[ch]), _KNOTS + 2, dtype=torch.float64)[1:-1]
        knots = 3 * torch.tanh(raws / 3)
        ys = 3 * torch.tanh(torch.linspace(float(lo[ch]), float(hi[ch]), 4001, dtype=torch.float64) / 3)
        basis = torch.cat([(ys + 3).view(-1, 1), (ys.view(-1, 1) - knots.view(1, -1)).clamp_min(0),
                           torch.ones(ys.numel(), 1, dtype=torch.float64)], 1)
        target = 3 * torch.atanh(ys / 3)
        coef = torch.linalg.lstsq(basis, target.view(-1, 1)).solution.flatten()  # raw ~ basis @ coef
        rows = slice(ch * nb, (ch + 1) * nb)
        w1[rows, ch, 1, 1] = 1.0
        b1[ch * nb] = 3.0
        b1[ch * nb + 1:(ch + 1) * nb] = -knots.float()
        gain = a[:, ch].double() / std[ch]  # RGB offset per unit of raw
        for j in range(3):
            w2[2 * j, rows, 1, 1] = (gain[j] * coef[:nb]).float()
            w2[2 * j + 1, rows, 1, 1] = (-gain[j] * coef[:nb]).float()
        offset += gain * (coef[nb] - mean[ch])
    for j in range(3):
        w2[2 * j, const, 1, 1] = float(offset[j])
        w2[2 * j + 1, const, 1, 1] = float(-offset[j])


def world_taesd_state_dict(taesd) -> dict:
    """TAESD weights (``comfy/taesd/taesd.py``) that compute synthworld's palette -> RGB map of the image model's
    4-channel latents, the same construction as :func:`world_vae_state_dict`.

    ``vae_scale`` = SD1.5's latent scale factor, so the decoder sees model-space latents; its first conv + the
    third conv (the one after the first upsampling) undo the input clamp and apply the RGB map as a positive and a
    negative part; the blocks (zero convs, identity skips) pass those on through their ReLUs, the later convs copy
    them, upsampling is nearest (8x), the last conv subtracts the parts and adds the background colour.
    TAESD's ``decode`` maps the decoder output ``d`` to ``2 d - 1`` and ComfyUI's VAE maps that back to ``d``.
    """
    import comfy.latent_formats
    import synthworld
    import torch

    a, b = synthworld.decoder_matrix(synthworld.IMAGE_CHANNELS)
    sd = {k: torch.zeros_like(v, dtype=torch.float32) for k, v in taesd.state_dict().items()}
    _clamp_inverse_layers(sd["taesd_decoder.1.weight"], sd["taesd_decoder.1.bias"], sd["taesd_decoder.7.weight"],
                          torch.zeros(synthworld.IMAGE_CHANNELS, dtype=torch.float64),
                          torch.ones(synthworld.IMAGE_CHANNELS, dtype=torch.float64), a,
                          synthworld.codes(synthworld.IMAGE_CHANNELS).double())
    _copy_parts_then_rgb(sd, ("taesd_decoder.12.weight", "taesd_decoder.17.weight"), "taesd_decoder.19", b)
    sd["vae_scale"] = torch.tensor(comfy.latent_formats.SD15().scale_factor)
    sd["vae_shift"] = torch.tensor(0.0)
    return {k: v for k, v in sd.items() if not k.startswith("taesd_encoder.")}


def _world_recipe(base: str, channels: int) -> str:
    """``base`` plus a fingerprint of the world's colour codes for ``channels`` latent channels: a palette decoder
    built for other codes (an older world) no longer counts as fresh and is rebuilt."""
    import hashlib

    import synthworld

    return f"{base}-{hashlib.sha256(synthworld.codes(channels).numpy().tobytes()).hexdigest()[:12]}"


def _assembled_from(path: Path, compact: Path) -> bool:
    """Whether ``path`` is the full UNet assembled from these committed tensors (their hash is in its metadata)."""
    import hashlib

    from safetensors import safe_open

    if not path.exists():
        return False
    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
    except Exception:  # a damaged file is rebuilt
        return False
    return meta.get("assembled_sha256") == hashlib.sha256(compact.read_bytes()).hexdigest()


def install_world(models: Path) -> None:
    """Copy the committed video model, assemble the image model, build both palette decoders (idempotent)."""
    import shutil

    import torch

    src = Path(__file__).resolve().parents[1] / "models" / WORLD_MODEL
    dst = models / "diffusion_models" / WORLD_MODEL
    if src.exists() and (not dst.exists() or dst.read_bytes() != src.read_bytes()):
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(dst.name + f".{os.getpid()}.partial")
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
        print(f"[tiny_models] installed {dst}", flush=True)
    compact = src.parent / WORLD_IMAGE_COMPACT
    image = models / "diffusion_models" / WORLD_IMAGE_MODEL
    if compact.exists() and not _assembled_from(image, compact):
        import train_tiny_image

        train_tiny_image.install(compact, image)
        print(f"[tiny_models] assembled {image}", flush=True)
    vae = models / "vae" / WORLD_VAE
    recipe = _world_recipe(WORLD_RECIPE, 16)
    if not is_fresh(vae, recipe):
        import comfy.latent_formats
        from comfy.taesd.taehv import TAEHV

        fmt = comfy.latent_formats.Wan21()
        with torch.no_grad():
            sd = world_vae_state_dict(fmt.latents_mean, fmt.latents_std, TAEHV(latent_channels=16))
        save_model(sd, vae, recipe)
    vae = models / "vae" / WORLD_IMAGE_VAE
    recipe = _world_recipe(WORLD_IMAGE_VAE_RECIPE, 4)
    if not is_fresh(vae, recipe):
        from comfy.taesd.taesd import TAESD

        with torch.no_grad():
            sd = world_taesd_state_dict(TAESD(latent_channels=4))
        save_model(sd, vae, recipe)


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
    install_world(models)


if __name__ == "__main__":
    main()
