"""Long-video inversion (Gen-L-Video sec. 3.1: DDIM inversion, here windowed) through core's CFGGuider.

Owns :func:`invert_latent`: the source latent is run *up* the sampler's schedule by Euler/DDIM inversion
(``nodes/algorithms/inversion.py``) with the MODEL and everything on it (LongAnim or core windows, wrappers,
ControlNets), giving a LATENT for KSamplerAdvanced (``add_noise = disable``) and a NOISE
(:class:`InvertedNoise`) for SamplerCustomAdvanced that start sampling exactly at the inverted x(sigma_max).

Core hooks used: ``comfy.samplers.Sampler`` (subclassed by :class:`_InvertSampler`), ``comfy.samplers.CFGGuider``,
``calculate_sigmas`` and ``SCHEDULER_NAMES``, ``comfy.sample.fix_empty_latent_channels``; the model's
``model_sampling`` (``noise_scaling``, ``sigma_max``) and ``latent_format.process_in``.
"""
from __future__ import annotations

import logging
import math

import comfy.sample
import comfy.samplers
import torch

from ..algorithms import inversion as inv
from .basics import check_interrupt, frame_axis_of, progress_callback

log = logging.getLogger("LongAnim")


class _InvertSampler(comfy.samplers.Sampler):
    """A ComfyUI SAMPLER that runs Euler/DDIM inversion instead of sampling (used through CFGGuider.sample).

    Going through the guider means the MODEL's context handler (LongAnim or core windows), wrappers, ControlNets
    and the sampler seed all apply exactly as in sampling. ``sigmas`` are the sampler's DESCENDING schedule so
    the window loop finds the same step index (and draws the same windows) as the sampling that follows.

    Subclassing ``comfy.samplers.Sampler`` is safe: it has no constructor and one method to override, ``sample``,
    which core calls with the SAMPLER arguments ``manifest.py`` checks; no base code runs.
    """

    def __init__(self, fixed_point_iters: int, progress=None):
        # progress(done, total, x): the node's progress bar (with a latent preview of x, as the sampling nodes)
        self.fixed_point_iters = fixed_point_iters
        self.progress = progress
        self.raw = None  # x at sigma_max in model space
        self.latent_scale = None

    def sample(self, model_wrap, sigmas, extra_args, callback, noise, latent_image=None, denoise_mask=None,
               disable_pbar=False):
        x0 = latent_image if latent_image is not None else torch.zeros_like(noise)
        ms = model_wrap.inner_model.model_sampling
        ones = x0.new_ones([x0.shape[0]])

        def denoise(x, sigma):  # the k-diffusion denoiser contract model(x, sigma, **extra_args), as every sampler
            return model_wrap(x, ones * sigma, **extra_args)

        def on_step(i, total, x):
            if self.progress is not None:
                self.progress(i, total, x)
            if callback is not None:
                k = total - i
                callback({"x": x, "i": k, "sigma": sigmas[k], "sigma_hat": sigmas[k], "denoised": x})

        asc = inv.inversion_sigmas(sigmas.float())
        x = inv.euler_invert(denoise, x0.float(), asc.to(x0.device), self.fixed_point_iters,
                             callback=on_step, check_interrupt=check_interrupt)
        self.raw = x
        # KSamplerAdvanced(add_noise=disable) starts from noise_scaling(s_max, 0, latent) = a * latent
        top = asc[-1:].to(x.device)
        a = float(ms.noise_scaling(sigma=top, noise=torch.zeros(1, 1, device=x.device),
                                   latent_image=torch.ones(1, 1, device=x.device)).flatten()[0])
        self.latent_scale = a
        return x / a if abs(a) > 1e-6 else x


class InvertedNoise:
    """NOISE for SamplerCustomAdvanced that makes the sampler start exactly at the inverted x(sigma_max).

    ``generate_noise`` returns eps with ``noise_scaling(sigma_max, eps, latent_in) == x`` for whatever latent the
    sampler gets (the source video or an empty one); needed for flow models whose schedule starts at sigma = 1,
    where ``add_noise = disable`` would start from ``(1 - 1) * latent = 0``.
    """

    def __init__(self, raw: torch.Tensor, sigma_max: float, max_denoise: bool, model_sampling, latent_format,
                 seed: int = 0):
        self.raw = raw.detach().float().cpu()
        self.sigma_max = float(sigma_max)
        self.max_denoise = bool(max_denoise)
        self.model_sampling = model_sampling
        self.latent_format = latent_format
        self.seed = int(seed)

    def __deepcopy__(self, memo):
        return self

    def generate_noise(self, input_latent: dict) -> torch.Tensor:
        latent = input_latent["samples"].float()
        if tuple(latent.shape) != tuple(self.raw.shape):
            raise ValueError(f"latent_image: the inverted noise has shape {list(self.raw.shape)} but the sampler's "
                             f"latent has {list(latent.shape)}; sample the same latent that was inverted")
        lat_in = self.latent_format.process_in(latent=latent) if torch.count_nonzero(latent) > 0 else latent
        sig = torch.tensor([self.sigma_max])
        base = self.model_sampling.noise_scaling(sigma=sig, noise=torch.zeros_like(lat_in), latent_image=lat_in.clone(),
                                                 max_denoise=self.max_denoise)
        gain = self.model_sampling.noise_scaling(sigma=sig, noise=torch.ones_like(lat_in),
                                                 latent_image=torch.zeros_like(lat_in), max_denoise=self.max_denoise)
        return (self.raw - base) / gain


def invert_latent(model, positive, negative, latent: dict, steps: int, scheduler: str, cfg: float = 1.0,
                  seed: int = 0, fixed_point_iters: int = 0):
    """Invert ``latent`` with the MODEL (and its windows) through core's CFGGuider. Returns (LATENT, NOISE, sigmas).

    The LATENT is in latent space, scaled so that KSamplerAdvanced(add_noise=disable) over the same steps and
    scheduler starts from the inverted x(sigma_max); the NOISE does the same for SamplerCustomAdvanced.
    """
    inv.validate_steps(steps, fixed_point_iters)
    if scheduler not in comfy.samplers.SCHEDULER_NAMES:
        raise ValueError(f"scheduler must be one of {comfy.samplers.SCHEDULER_NAMES}, got {scheduler!r}")
    samples = latent["samples"]
    frame_axis_of(samples, "latent")
    ms = model.get_model_object(name="model_sampling")
    sigmas = comfy.samplers.calculate_sigmas(model_sampling=ms, scheduler_name=scheduler, steps=steps).cpu()
    guider = comfy.samplers.CFGGuider(model_patcher=model)
    guider.set_conds(positive=positive, negative=negative if negative is not None else positive)
    guider.set_cfg(cfg=cfg)
    step_done = progress_callback(model, steps)  # KSampler-style (step, x0, x, total): step is 0-based
    sampler = _InvertSampler(fixed_point_iters, lambda done, total, x: step_done(done - 1, x, x, total))
    latent_image = comfy.sample.fix_empty_latent_channels(model=model, latent_image=samples)
    noise = torch.zeros_like(latent_image, dtype=torch.float32)
    out = guider.sample(noise=noise, latent_image=latent_image, sampler=sampler, sigmas=sigmas, seed=seed)
    out_latent = dict(latent)
    out_latent["samples"] = out.cpu()
    out_latent.pop("noise_mask", None)
    max_sigma = float(ms.sigma_max)
    top = float(sigmas[0])
    max_denoise = math.isclose(max_sigma, top, rel_tol=1e-05) or top > max_sigma
    if sampler.latent_scale is not None and abs(sampler.latent_scale) <= 1e-6:
        log.warning("LongAnim Invert: this model's schedule starts at sigma = %.3f where add_noise = disable "
                    "ignores the latent; use the noise output with SamplerCustomAdvanced", top)
    noise_out = InvertedNoise(sampler.raw, top, max_denoise, ms, model.get_model_object(name="latent_format"), seed)
    return out_latent, noise_out, sigmas

