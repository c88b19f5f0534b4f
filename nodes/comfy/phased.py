"""Phased inference (CLIA sec. 3.4, Eq. 9) with shared noise reschedule (Eqs. 10-12) through core's CFGGuider.

Owns :func:`phased_animation`: K clips of one short-clip latent, sampled together by
``nodes/algorithms/phased.py: phased_sample`` as the ``sampler_function`` of a KSAMPLER run by core's ``CFGGuider``
(so image-to-video concat latents, per-frame conds and the memory estimate are those of one clip).

Core hooks used: ``comfy.samplers.KSAMPLER`` (owned by :class:`PhasedKSampler`), ``comfy.samplers.CFGGuider``
(``set_conds``, ``set_cfg``, ``sample``), ``comfy.samplers.calculate_sigmas``,
``comfy.sample.fix_empty_latent_channels``, ``comfy.model_sampling.CONST`` and the image-to-image sampling types
(refused), ``comfy.model_management.intermediate_device``.
"""
from __future__ import annotations

import comfy.model_management
import comfy.model_sampling
import comfy.sample
import comfy.samplers
import torch

from ..algorithms import phased as ph
from .basics import PackSampler, check_interrupt, frame_axis_of, pbar_disabled, progress_callback
from .noise import chunk_seed, iid_noise


def phased_parameterization(model) -> str:
    """``"flow"`` for rectified-flow (CONST) models, ``"eps"`` for sigma-space models (EPS, V_PREDICTION, EDM)."""
    ms = model.get_model_object(name="model_sampling")
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
                                           check_interrupt=check_interrupt, **self.kw)
        return out


class PhasedKSampler(PackSampler):
    """A SAMPLER (a core KSAMPLER inside, see ``basics.PackSampler``) that samples ``K`` clips although the guider
    was given one.

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
        return self.ksampler.sample(model_wrap=model_wrap, sigmas=sigmas, extra_args=extra_args, callback=callback,
                                    noise=noise, latent_image=latent_image, denoise_mask=None,
                                    disable_pbar=disable_pbar)


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
    samples = comfy.sample.fix_empty_latent_channels(model=model, latent_image=latent["samples"])
    axis = frame_axis_of(samples, "latent")
    dtype = samples.dtype if samples.dtype.is_floating_point else torch.float32
    noises = [iid_noise(tuple(samples.shape), chunk_seed(seed, k), dtype) for k in range(num_clips)]
    function = PhasedSamplerFunction(num_clips, gamma, omega, seed, param, axis)
    sampler = PhasedKSampler(function, noises[1:], axis)
    guider = comfy.samplers.CFGGuider(model_patcher=model)  # given ONE clip: conds and memory estimate are per clip
    guider.set_conds(positive=positive, negative=negative)
    guider.set_cfg(cfg=cfg)
    sigmas = comfy.samplers.calculate_sigmas(model_sampling=model.get_model_object(name="model_sampling"),
                                             scheduler_name=scheduler, steps=steps).cpu()
    split = ph.phased_split(int(steps), float(gamma))
    expected = num_clips * steps if split == 0 else steps + (num_clips - 1) * (steps - split)
    cb = progress_callback(model, max(1, expected))
    out = guider.sample(noise=noises[0], latent_image=samples, sampler=sampler, sigmas=sigmas, callback=cb,
                        disable_pbar=pbar_disabled(), seed=int(seed))
    out = out.to(comfy.model_management.intermediate_device())
    return {"samples": out}, dict(function.stats)

