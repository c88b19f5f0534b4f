"""In-process helpers for tier 2: load the tiny models once, run KSampler and SamplerCustomAdvanced."""
from __future__ import annotations

import functools
import hashlib

import comfy.sample
import comfy.samplers
import comfy.sd
import folder_paths
import nodes as comfy_nodes
import torch

SD15 = "longanim_tiny_sd15.safetensors"
WAN = "longanim_tiny_wan21.safetensors"


@functools.cache
def load(name: str):
    return comfy.sd.load_diffusion_model(folder_paths.get_full_path_or_raise("diffusion_models", name))


def sd15():
    return load(SD15)


def wan():
    return load(WAN)


def cond(text: str, family: str = "sd15", extra: dict | None = None):
    shape = {"sd15": (1, 77, 768), "wan21": (1, 16, 4096)}[family]
    seed = int.from_bytes(hashlib.sha256(f"{family}:{text}".encode()).digest()[:8], "little")
    return [[torch.randn(shape, generator=torch.Generator().manual_seed(seed)), dict(extra or {})]]


def sd_latent(frames: int, size: int = 4) -> dict:
    return {"samples": torch.zeros(frames, 4, size, size)}


def wan_latent(frames: int, size: int = 4) -> dict:
    return {"samples": torch.zeros(1, 16, frames, size, size)}


def family_of(latent: dict) -> str:
    return "sd15" if latent["samples"].ndim == 4 else "wan21"


def ksample(model, latent, seed=1, steps=3, cfg=5.0, sampler="euler", scheduler="normal", positive=None,
            negative=None, denoise=1.0, disable_noise=False, start_step=None, last_step=None):
    fam = family_of(latent)
    positive = positive or cond("a cat", fam)
    negative = negative or cond("", fam)
    out = comfy_nodes.common_ksampler(model, seed, steps, cfg, sampler, scheduler, positive, negative, latent,
                                      denoise=denoise, disable_noise=disable_noise, start_step=start_step,
                                      last_step=last_step)
    return out[0]["samples"]


def custom_advanced(model, latent, noise, sampler=None, steps=3, cfg=5.0, positive=None, negative=None,
                    scheduler="normal"):
    """What SamplerCustomAdvanced does, with core's own guider, sampler and sigmas objects."""
    fam = family_of(latent)
    guider = comfy.samplers.CFGGuider(model)
    guider.set_conds(positive or cond("a cat", fam), negative or cond("", fam))
    guider.set_cfg(cfg)
    sampler = sampler or comfy.samplers.sampler_object("euler")
    sigmas = comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), scheduler, steps).cpu()
    latent_image = comfy.sample.fix_empty_latent_channels(model, latent["samples"])
    latent = dict(latent, samples=latent_image)
    out = guider.sample(noise.generate_noise(latent), latent_image, sampler, sigmas, seed=noise.seed)
    return out.cpu()
