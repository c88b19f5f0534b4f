"""Randomized-blend refinement of a long latent (StreamingT2V sec. 4.3, Eqs. 7-8) through core's KSampler.

Owns :func:`refine_video` and its input checks, the chunk layout (:func:`refine_chunks`, :func:`naive_keep`) and the
bilinear upscale + encode before refinement (:func:`upscale_encode`).

Refinement reuses the pack's one window loop: the model is cloned with ``windows.patch_model_windows`` (uniform
chunks of ``chunk_length`` at stride ``chunk_length - overlap``, the last chunk shifted to end at the last frame)
and the whole long latent is sampled once with ComfyUI's own ``comfy.sample.sample`` (KSampler with ``denoise`` =
SDEdit strength). The ``naive`` baseline runs one KSampler per chunk.

Core hooks used: ``comfy.sample.sample`` and ``comfy.sample.fix_empty_latent_channels``;
``comfy.model_management.intermediate_device``; ``comfy.utils.common_upscale``; the VAE's ``encode``.
"""
from __future__ import annotations

import math

import comfy.model_management
import comfy.sample
import comfy.utils
import torch

from ..algorithms import context_schedule as cs
from ..algorithms.noise import NoiseRecipe
from .basics import check_interrupt, frame_axis_of, pbar_disabled, progress_callback
from .noise import chunk_seed, draw_noise
from .window_options import WindowOptions
from .windows import WINDOWS_KEY, patch_model_windows

REFINE_MODES = ("randomized_blend", "shared_noise_only", "naive")
#: fusion of the overlapping chunks' predictions per mode (naive does not use windows)
MODE_FUSION = {"randomized_blend": "randomized_blend", "shared_noise_only": "flat"}


def _slice_frames(t: torch.Tensor, axis: int, frames: list[int]) -> torch.Tensor:
    return t.index_select(axis, torch.tensor(frames, dtype=torch.long, device=t.device))


def validate_refine(*, denoise: float, chunk_length: int, overlap: int, steps: int, mode: str) -> None:
    """Cheap input checks before anything is loaded; ``ValueError`` names the input, its range and the fix."""
    if mode not in REFINE_MODES:
        raise ValueError(f"mode must be one of {list(REFINE_MODES)}, got {mode!r}")
    if not isinstance(denoise, (int, float)) or not math.isfinite(denoise) or not 0.0 < denoise <= 1.0:
        raise ValueError(f"denoise must be in (0, 1], got {denoise!r}; it is the SDEdit strength (StreamingT2V "
                         "re-noises to T' = 600 of 1000 steps, about 0.6); 1 re-generates from pure noise")
    if chunk_length < 1:
        raise ValueError(f"context_length must be >= 1, got {chunk_length}")
    if overlap < 0 or overlap >= chunk_length:
        raise ValueError(f"context_overlap must be in [0, context_length - 1 = {chunk_length - 1}], got {overlap}; "
                         "chunks must advance by at least one frame: lower context_overlap or raise context_length "
                         "(paper: 24 / 8)")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")


def refine_chunks(num_frames: int, chunk_length: int, overlap: int) -> list[list[int]]:
    """The refinement chunks: ``context_schedule.uniform_windows`` at stride ``chunk_length - overlap``.

    The last chunk is shifted left to end at the last frame (so it may overlap its neighbour by more than
    ``overlap``); ``chunk_length >= num_frames`` gives one chunk holding the whole video.
    """
    return cs.uniform_windows(num_frames, chunk_length, chunk_length - overlap)


def refine_window_options(mode: str, chunk_length: int, overlap: int, seed: int,
                          blend_variant: str = "paper", max_batch: int = 1) -> WindowOptions:
    """Window options of a windowed refinement mode (``randomized_blend`` or ``shared_noise_only``)."""
    return WindowOptions(schedule="uniform", length=int(chunk_length), stride=int(chunk_length - overlap),
                            overlap=int(overlap), max_skip=1, fusion=MODE_FUSION[mode],
                            blend_variant=blend_variant, seed=int(seed), max_batch=int(max_batch))


def naive_keep(chunks: list[list[int]]) -> list[list[int]]:
    """Frames each naive chunk contributes: the ones no earlier chunk holds (later chunks' overlaps dropped)."""
    seen: set[int] = set()
    out = []
    for c in chunks:
        out.append([f for f in c if f not in seen])
        seen.update(c)
    return out


def _sdedit(model, noise, samples, *, steps, cfg, sampler_name, scheduler, positive, negative, denoise, seed,
            noise_mask, callback) -> torch.Tensor:
    """One KSampler run (``comfy.sample.sample``) from ``samples`` re-noised to the start sigma of ``denoise``."""
    return comfy.sample.sample(model=model, noise=noise, steps=steps, cfg=cfg, sampler_name=sampler_name,
                               scheduler=scheduler, positive=positive, negative=negative, latent_image=samples,
                               denoise=denoise, noise_mask=noise_mask, callback=callback,
                               disable_pbar=pbar_disabled(), seed=seed)


def refine_video(model, positive, negative, latent: dict, *, denoise: float, steps: int, cfg: float,
                 sampler_name: str, scheduler: str, chunk_length: int, overlap: int, seed: int, mode: str,
                 recipe: NoiseRecipe | None = None, blend_variant: str = "paper", max_batch: int = 1) -> dict:
    """StreamingT2V streaming refinement (sec. 4.3, Eqs. 7-8) of a long latent; returns a new LATENT dict.

    ``randomized_blend`` / ``shared_noise_only``: ONE sampler run over the whole video on a windowed clone of
    ``model`` (chunks = :func:`refine_chunks`). The SDEdit noise is one tensor for the whole video, so chunks
    slice the same noise on their overlaps (Eq. 7), and stochastic samplers draw their per-step noise for the
    whole latent too. After every model evaluation the chunks' denoised predictions are fused: one random cut
    per overlap per step (Eq. 8) or a plain average. ``naive``: every chunk is refined by its own KSampler run
    with its own noise (``seed + i``) and the chunks are concatenated, each frame taken from the first chunk
    holding it (later chunks' overlaps dropped).
    """
    validate_refine(denoise=denoise, chunk_length=chunk_length, overlap=overlap, steps=steps, mode=mode)
    samples = comfy.sample.fix_empty_latent_channels(model=model, latent_image=latent["samples"])
    axis = frame_axis_of(samples, "latent")
    num_frames = samples.shape[axis]
    noise_mask = latent.get("noise_mask")
    common = dict(steps=steps, cfg=cfg, sampler_name=sampler_name, scheduler=scheduler, positive=positive,
                  negative=negative, denoise=denoise)
    if mode != "naive":
        windowed = patch_model_windows(model, refine_window_options(mode, chunk_length, overlap, seed,
                                                                      blend_variant, max_batch))
        noise = draw_noise(samples, seed, recipe)
        out = _sdedit(windowed, noise, samples, seed=seed, noise_mask=noise_mask,
                      callback=progress_callback(model, steps), **common)
    else:
        chunks = refine_chunks(num_frames, chunk_length, overlap)
        keep = naive_keep(chunks)
        out = torch.empty(samples.shape, dtype=torch.float32)
        cb = progress_callback(model, steps * len(chunks))
        for i, (chunk, own) in enumerate(zip(chunks, keep, strict=True)):
            check_interrupt()
            if not own:
                continue
            part = _slice_frames(samples, axis, chunk)
            mask = noise_mask
            if isinstance(mask, torch.Tensor) and mask.ndim == samples.ndim and mask.shape[axis] == num_frames:
                mask = _slice_frames(mask, axis, chunk)
            refined = _sdedit(model, draw_noise(part, chunk_seed(seed, i), recipe), part, seed=chunk_seed(seed, i),
                              noise_mask=mask, callback=lambda s, x0, x, t, o=i * steps: cb(s + o, x0, x, t),
                              **common)
            pos = [chunk.index(f) for f in own]
            out.index_copy_(axis, torch.tensor(own, dtype=torch.long),
                            _slice_frames(refined.detach().cpu().float(), axis, pos))
        out = out.to(device=comfy.model_management.intermediate_device(),
                     dtype=samples.dtype if samples.dtype.is_floating_point else torch.float32)
    result = {k: v for k, v in latent.items() if k not in ("samples", WINDOWS_KEY)}
    result["samples"] = out
    result[WINDOWS_KEY] = refine_chunks(num_frames, chunk_length, overlap)
    return result


def upscale_encode(images: torch.Tensor, vae, scale: float) -> dict:
    """Bilinear upscale of an IMAGE batch ``[N, H, W, C]`` by ``scale`` (sizes rounded to multiples of 8), then
    ``vae.encode`` (StreamingT2V sec. 4.3 upscales bilinearly before encoding for the refiner)."""
    if not isinstance(scale, (int, float)) or not math.isfinite(scale) or scale <= 0:
        raise ValueError(f"scale must be > 0, got {scale!r}; 1 keeps the size, 2 doubles width and height")
    if images.ndim != 4:
        raise ValueError(f"images: expected an IMAGE batch [frames, H, W, C], got shape {list(images.shape)}")
    h, w = images.shape[1], images.shape[2]
    th, tw = max(8, int(round(h * scale / 8)) * 8), max(8, int(round(w * scale / 8)) * 8)
    pixels = images[..., :3]
    if (th, tw) != (h, w):
        pixels = comfy.utils.common_upscale(samples=pixels.movedim(-1, 1), width=tw, height=th,
                                            upscale_method="bilinear", crop="disabled").movedim(1, -1)
    return {"samples": vae.encode(pixel_samples=pixels)}

