"""The one module that touches ComfyUI internals.

Everything the pack needs from ComfyUI (model patcher wrappers, the context-handler slot, attention patches,
KSAMPLER, progress and cancel) goes through here, with feature detection instead of version checks, so the
node classes stay thin and ``nodes/algorithms`` stays pure. Works on ComfyUI 0.3.75 and current ComfyUI.

Keys the pack writes into ``model_options`` / ``transformer_options`` and wrapper keys are namespaced
``LongAnim.*``.
"""
from __future__ import annotations

import logging
from typing import Any

import torch

import comfy.model_management
import comfy.patcher_extension
import comfy.samplers
import comfy.utils

from .algorithms.noise import NoiseRecipe

log = logging.getLogger("LongAnim")

WRAPPER_NOISE = "LongAnim.noise"
WRAPPER_RUN_STATE = "LongAnim.run_state"
RUN_STATE_KEY = "LongAnim.run"  # transformer_options key holding {"seed": int, "pass": int}


# ---------------------------------------------------------------------------------------------- basics
def check_interrupt() -> None:
    """Raise ComfyUI's interrupt exception if the user pressed Cancel."""
    comfy.model_management.throw_exception_if_processing_interrupted()


class Progress:
    """A ComfyUI progress bar (node-level, shown on the canvas)."""

    def __init__(self, total: int):
        self.bar = comfy.utils.ProgressBar(max(1, int(total)))

    def __call__(self, done: int, total: int | None = None) -> None:
        self.bar.update_absolute(done, total)


def frame_axis_of(samples: torch.Tensor, input_name: str = "latent") -> int:
    """Frame axis of a ComfyUI latent: 0 for SD/AnimateDiff ``[T, C, H, W]``, 2 for video ``[B, C, T, H, W]``."""
    if samples.ndim == 4:
        return 0
    if samples.ndim == 5:
        return 2
    raise ValueError(f"{input_name}: expected a video latent [frames, C, H, W] (SD/AnimateDiff) or "
                     f"[B, C, frames, H, W] (Wan and other video models), got shape {list(samples.shape)}")


def num_frames_of(samples: torch.Tensor, input_name: str = "latent") -> int:
    return int(samples.shape[frame_axis_of(samples, input_name)])


# ---------------------------------------------------------------------------------------------- noise
class LongAnimNoise:
    """A ComfyUI ``NOISE`` (for SamplerCustomAdvanced) drawing a LongAnim recipe.

    Duck-typed like core's ``Noise_RandomNoise``: ``.seed`` and ``generate_noise(input_latent) -> Tensor`` on CPU
    shaped like ``input_latent["samples"]``. The frame axis comes from the latent's layout.
    """

    def __init__(self, recipe: NoiseRecipe, seed: int):
        self.recipe = recipe
        self.seed = int(seed)

    def generate_noise(self, input_latent: dict) -> torch.Tensor:
        samples = input_latent["samples"]
        axis = frame_axis_of(samples)
        self.recipe.validate(num_frames=samples.shape[axis])
        noise = self.recipe.draw(tuple(samples.shape), axis, self.seed)
        return noise.to(dtype=samples.dtype if samples.dtype.is_floating_point else torch.float32)


class _NoiseReplaceWrapper:
    """SAMPLER_SAMPLE wrapper: replace the sampler's initial noise by a recipe seeded from the sampler's seed.

    Leaves all-zero noise alone (KSamplerAdvanced ``add_noise: disable`` / DisableNoise).
    """

    def __init__(self, recipe: NoiseRecipe):
        self.recipe = recipe

    def __call__(self, executor, guider, sigmas, extra_args, callback, noise, *args, **kwargs):
        if noise is not None and torch.count_nonzero(noise) > 0:
            axis = frame_axis_of(noise)
            seed = int(extra_args.get("seed") or 0)
            new = self.recipe.draw(tuple(noise.shape), axis, seed)
            noise = new.to(device=noise.device, dtype=noise.dtype)
        return executor(guider, sigmas, extra_args, callback, noise, *args, **kwargs)


def patch_model_noise(model, recipe: NoiseRecipe):
    """Clone ``model`` and make plain KSampler/KSamplerAdvanced draw ``recipe`` as the initial noise."""
    m = model.clone()
    m.remove_wrappers_with_key(comfy.patcher_extension.WrappersMP.SAMPLER_SAMPLE, WRAPPER_NOISE)
    m.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.SAMPLER_SAMPLE, WRAPPER_NOISE,
                           _NoiseReplaceWrapper(recipe))
    return m


def run_state(model_options: dict) -> dict[str, Any]:
    """Per-run state the pack's wrappers publish to its window loop (seed, noise-travel pass)."""
    return model_options.get("transformer_options", {}).get(RUN_STATE_KEY, {"seed": 0, "pass": 0})
