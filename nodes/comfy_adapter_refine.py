"""ComfyUI glue for randomized-blend refinement (StreamingT2V sec. 4.3) and phased inference (CLIA sec. 3.4).

Part of the single ComfyUI adapter; merged into comfy_adapter.py by the lead.

Refinement reuses the pack's one window loop: the model is cloned with ``comfy_adapter.patch_model_windows``
(uniform chunks of ``chunk_length`` at stride ``chunk_length - overlap``, the last chunk shifted to end at the last
frame) and the whole long latent is sampled once with ComfyUI's own ``comfy.sample.sample`` (KSampler with
``denoise`` = SDEdit strength). Phased inference drives ``algorithms.phased.phased_sample`` as the
``sampler_function`` of a ``comfy.samplers.KSAMPLER`` run by core's ``CFGGuider``.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Callable

import comfy.model_management
import comfy.model_sampling
import comfy.sample
import comfy.samplers
import comfy.utils
import torch

from . import comfy_adapter as ca
from .algorithms import context_schedule as cs
from .algorithms import phased as ph
from .algorithms.noise import NoiseRecipe

log = logging.getLogger("LongAnim")

try:  # the canvas preview + progress bar KSampler uses (top-level ComfyUI module)
    import latent_preview as _latent_preview
except ImportError:  # pragma: no cover - outside a ComfyUI process
    _latent_preview = None

REFINE_MODES = ("randomized_blend", "shared_noise_only", "naive")
#: fusion of the overlapping chunks' predictions per mode (naive does not use windows)
MODE_FUSION = {"randomized_blend": "randomized_blend", "shared_noise_only": "flat"}
_SEED_MASK = 0xFFFFFFFFFFFFFFFF


# ---------------------------------------------------------------------------------------------- helpers
def progress_callback(model, total: int) -> Callable:
    """KSampler-style ``callback(step, x0, x, total_steps)``: canvas progress (+ latent preview) out of ``total``.

    ``total`` replaces the sampler's ``total_steps`` so that several sampler runs (naive chunks) or extra model
    calls (phased clips) fill one bar.
    """
    if _latent_preview is not None:
        try:
            inner = _latent_preview.prepare_callback(model, total)
        except Exception:  # pragma: no cover - previewer unavailable (odd latent formats)
            inner = None
        if inner is not None:
            return lambda step, x0, x, _total: inner(min(step, total - 1), x0, x, total)
    bar = ca.Progress(total)
    return lambda step, x0, x, _total: bar(min(step + 1, total), total)


def _pbar_disabled() -> bool:
    return not getattr(comfy.utils, "PROGRESS_BAR_ENABLED", True)


def iid_noise(shape: tuple[int, ...], seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """ComfyUI's KSampler noise (``comfy.sample.prepare_noise``), bit-identical, from a private CPU generator."""
    gen = torch.Generator(device="cpu").manual_seed(int(seed) & _SEED_MASK)
    return torch.randn(shape, dtype=dtype, generator=gen, device="cpu")


def draw_noise(samples: torch.Tensor, seed: int, recipe: NoiseRecipe | None) -> torch.Tensor:
    """SDEdit / initial noise for ``samples``: i.i.d. like KSampler, or a LongAnim recipe over the frame axis."""
    dtype = samples.dtype if samples.dtype.is_floating_point else torch.float32
    if recipe is None:
        return iid_noise(tuple(samples.shape), seed, dtype)
    axis = ca.frame_axis_of(samples)
    recipe.validate(num_frames=samples.shape[axis])
    return recipe.draw(tuple(samples.shape), axis, int(seed) & _SEED_MASK).to(dtype)


def _slice_frames(t: torch.Tensor, axis: int, frames: list[int]) -> torch.Tensor:
    return t.index_select(axis, torch.tensor(frames, dtype=torch.long, device=t.device))


# ---------------------------------------------------------------------------------------------- refinement
def validate_refine(*, denoise: float, chunk_length: int, overlap: int, steps: int, mode: str) -> None:
    """Cheap input checks before anything is loaded; ``ValueError`` names the input, its range and the fix."""
    if mode not in REFINE_MODES:
        raise ValueError(f"mode must be one of {list(REFINE_MODES)}, got {mode!r}")
    if not isinstance(denoise, (int, float)) or not math.isfinite(denoise) or not 0.0 < denoise <= 1.0:
        raise ValueError(f"denoise must be in (0, 1], got {denoise!r}; it is the SDEdit strength (StreamingT2V "
                         "re-noises to T' = 600 of 1000 steps, about 0.6); 1 re-generates from pure noise")
    if chunk_length < 1:
        raise ValueError(f"chunk_length must be >= 1, got {chunk_length}")
    if overlap < 0 or overlap >= chunk_length:
        raise ValueError(f"overlap must be in [0, chunk_length - 1 = {chunk_length - 1}], got {overlap}; chunks "
                         "must advance by at least one frame: lower overlap or raise chunk_length (paper: 24 / 8)")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")


def refine_chunks(num_frames: int, chunk_length: int, overlap: int) -> list[list[int]]:
    """The refinement chunks: ``context_schedule.uniform_windows`` at stride ``chunk_length - overlap``.

    The last chunk is shifted left to end at the last frame (so it may overlap its neighbour by more than
    ``overlap``); ``chunk_length >= num_frames`` gives one chunk holding the whole video.
    """
    return cs.uniform_windows(num_frames, chunk_length, chunk_length - overlap)


def refine_window_options(mode: str, chunk_length: int, overlap: int, seed: int,
                          blend_variant: str = "paper", max_batch: int = 1) -> ca.WindowOptions:
    """Window options of a windowed refinement mode (``randomized_blend`` or ``shared_noise_only``)."""
    return ca.WindowOptions(schedule="uniform", length=int(chunk_length), stride=int(chunk_length - overlap),
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


def chunk_seed(seed: int, index: int) -> int:
    """Seed of naive chunk ``index``: ``seed + index`` (mod 2^64), so chunk 0 equals a KSampler run with ``seed``."""
    return (int(seed) + int(index)) & _SEED_MASK


def _sdedit(model, noise, samples, *, steps, cfg, sampler_name, scheduler, positive, negative, denoise, seed,
            noise_mask, callback) -> torch.Tensor:
    """One KSampler run (``comfy.sample.sample``) from ``samples`` re-noised to the start sigma of ``denoise``."""
    return comfy.sample.sample(model, noise, steps, cfg, sampler_name, scheduler, positive, negative, samples,
                               denoise=denoise, noise_mask=noise_mask, callback=callback,
                               disable_pbar=_pbar_disabled(), seed=seed)


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
    samples = comfy.sample.fix_empty_latent_channels(model, latent["samples"])
    axis = ca.frame_axis_of(samples, "latent")
    num_frames = samples.shape[axis]
    noise_mask = latent.get("noise_mask")
    common = dict(steps=steps, cfg=cfg, sampler_name=sampler_name, scheduler=scheduler, positive=positive,
                  negative=negative, denoise=denoise)
    if mode != "naive":
        windowed = ca.patch_model_windows(model, refine_window_options(mode, chunk_length, overlap, seed,
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
            ca.check_interrupt()
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
    result = {k: v for k, v in latent.items() if k not in ("samples",)}
    result["samples"] = out
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
        pixels = comfy.utils.common_upscale(pixels.movedim(-1, 1), tw, th, "bilinear", "disabled").movedim(1, -1)
    return {"samples": vae.encode(pixels)}


# ---------------------------------------------------------------------------------------------- phased
def phased_parameterization(model) -> str:
    """``"flow"`` for rectified-flow (CONST) models, ``"eps"`` for sigma-space models (EPS, V_PREDICTION, EDM)."""
    ms = model.get_model_object("model_sampling")
    refused = tuple(t for t in (getattr(comfy.model_sampling, n, None) for n in
                                ("IMG_TO_IMG", "IMG_TO_IMG_FLOW", "IMG_TO_IMG_VELOCITY", "V_PREDICTION_DDPM"))
                    if isinstance(t, type))
    if refused and isinstance(ms, refused):
        raise ValueError(f"model: phased inference does not support {type(ms).__name__} models; use a "
                         "text-to-video or image-to-video model with eps, v or flow prediction")
    return "flow" if isinstance(ms, comfy.model_sampling.CONST) else "eps"


class PhasedSamplerFunction:
    """``sampler_function`` for ``KSAMPLER``: runs :func:`phased.phased_sample` and keeps its stats."""

    def __init__(self, num_clips: int, gamma: float, omega: float, seed: int, parameterization: str,
                 frame_axis: int):
        self.kw = dict(num_clips=int(num_clips), gamma=float(gamma), omega=float(omega), seed=int(seed),
                       parameterization=parameterization, frame_axis=int(frame_axis))
        self.stats: dict[str, int] = {}

    def __call__(self, model, x, sigmas, extra_args=None, callback=None, disable=None, **_):
        out, self.stats = ph.phased_sample(model, x, sigmas, extra_args, callback, disable,
                                           check_interrupt=ca.check_interrupt, **self.kw)
        return out


class PhasedKSampler(comfy.samplers.KSAMPLER):
    """A KSAMPLER that samples ``K`` clips although the guider was given one.

    The guider processes the conditioning for ONE clip (image-to-video concat latents, per-frame conds and the
    memory estimate are then right for every clip, since each model call evaluates one clip); ``sample``
    concatenates clip 1's noise (the guider's) with the pre-drawn noise of clips 2..K on the frame axis and runs
    :class:`PhasedSamplerFunction` on all of them.
    """

    def __init__(self, function: PhasedSamplerFunction, extra_noise: list[torch.Tensor], frame_axis: int):
        super().__init__(function)
        self.function = function
        self.extra_noise = extra_noise
        self.frame_axis = frame_axis

    def sample(self, model_wrap, sigmas, extra_args, callback, noise, latent_image=None, denoise_mask=None,
               disable_pbar=False):
        axis = self.frame_axis
        k = 1 + len(self.extra_noise)
        noise = torch.cat([noise] + [n.to(device=noise.device, dtype=noise.dtype) for n in self.extra_noise],
                          dim=axis)
        if latent_image is not None:
            latent_image = torch.cat([latent_image] * k, dim=axis)
        return super().sample(model_wrap, sigmas, extra_args, callback, noise, latent_image, None, disable_pbar)


def phased_animation(model, positive, negative, latent: dict, *, num_clips: int, steps: int, cfg: float,
                     scheduler: str, gamma: float, omega: float, seed: int) -> tuple[dict, dict[str, int]]:
    """Phased inference (CLIA Eq. 9) with shared noise reschedule (Eqs. 10-12) through core's CFGGuider.

    ``latent`` holds ONE clip (its shape is the clip shape). Clip ``k`` (0-based) starts from KSampler noise of
    seed ``seed + k``, so clip 1 is exactly a plain Euler KSampler run with ``seed`` (for any gamma) and with
    ``gamma = 0`` clip ``k`` is a plain Euler run with ``seed + k``. Returns the K clips concatenated on the frame
    axis and ``phased_sample``'s stats (model calls, full-sampling calls, saved, split step).
    """
    ph.validate_phased(int(num_clips), float(gamma), float(omega))
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    param = phased_parameterization(model)
    samples = comfy.sample.fix_empty_latent_channels(model, latent["samples"])
    axis = ca.frame_axis_of(samples, "latent")
    dtype = samples.dtype if samples.dtype.is_floating_point else torch.float32
    noises = [iid_noise(tuple(samples.shape), chunk_seed(seed, k), dtype) for k in range(num_clips)]
    function = PhasedSamplerFunction(num_clips, gamma, omega, seed, param, axis)
    sampler = PhasedKSampler(function, noises[1:], axis)
    guider = comfy.samplers.CFGGuider(model)  # given ONE clip: conds and memory estimate are per clip
    guider.set_conds(positive, negative)
    guider.set_cfg(cfg)
    sigmas = comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), scheduler, steps).cpu()
    split = ph.phased_split(int(steps), float(gamma))
    expected = num_clips * steps if split == 0 else steps + (num_clips - 1) * (steps - split)
    cb = progress_callback(model, max(1, expected))
    out = guider.sample(noises[0], samples, sampler, sigmas, callback=cb, disable_pbar=_pbar_disabled(),
                        seed=int(seed))
    out = out.to(comfy.model_management.intermediate_device())
    return {"samples": out}, dict(function.stats)
