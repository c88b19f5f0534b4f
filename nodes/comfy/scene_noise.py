"""Scene-carrying initial noise of the window loop: the sampler's own noise restructured so every window starts
from the first window's noise (``nodes/algorithms/scene_noise.py``), installed by the window nodes.

Owns the ``SAMPLER_SAMPLE`` wrapper :class:`SceneNoiseWrapper` and :func:`install`. The wrapper takes the noise the
sampler drew from the user's seed (KSampler, KSamplerAdvanced, SamplerCustomAdvanced with core's RandomNoise) and
replaces it by ``scene_noise(noise, ...)``: same seed, same video. It leaves the noise alone when

* the noise is all zeros (KSamplerAdvanced ``add_noise: disable``, DisableNoise, the second expert of Wan 2.2),
* the MODEL went through LongAnim's Apply Noise To Model (its recipe wins: the user chose that noise), or the
  noise came from a LongAnim noise node's NOISE output (``noise.drawn_by_recipe``),
* the video is no longer than one window.

Core hooks used: ``comfy.patcher_extension.WrappersMP.SAMPLER_SAMPLE`` (wrapper signature as ``noise.py``'s) and the
ModelPatcher's ``wrappers`` dict (to see Apply Noise To Model's wrapper).
"""
from __future__ import annotations

import comfy.patcher_extension
import torch

from ..algorithms import scene_noise as sn
from .basics import frame_axis_of, set_wrapper
from .noise import WRAPPER_NOISE, drawn_by_recipe

WRAPPER_SCENE = "LongAnim.scene_noise"


def has_noise_recipe(patcher) -> bool:
    """True when ``patcher`` carries Apply Noise To Model's wrapper (a user-chosen LongAnim noise recipe)."""
    wrappers = getattr(patcher, "wrappers", None) or {}
    return WRAPPER_NOISE in wrappers.get(comfy.patcher_extension.WrappersMP.SAMPLER_SAMPLE, {})


class SceneNoiseWrapper:
    """SAMPLER_SAMPLE wrapper: the sampler's initial noise -> scene-carrying noise (see the module docstring)."""

    def __init__(self, rule: str, window: int, share: float):
        sn.validate_scene_params(rule, window, share)
        self.rule, self.window, self.share = rule, int(window), float(share)

    def __call__(self, executor, guider, sigmas, extra_args, callback, noise, *args, **kwargs):
        if self.applies(guider, noise):
            axis = frame_axis_of(noise)
            seed = int(extra_args.get("seed") or 0)
            noise = sn.scene_noise(noise, axis, self.window, self.rule, self.share, seed)
        return executor(guider, sigmas, extra_args, callback, noise, *args, **kwargs)

    def applies(self, guider, noise) -> bool:
        if self.rule == "off" or not isinstance(noise, torch.Tensor) or noise.ndim not in (4, 5):
            return False
        if noise.shape[frame_axis_of(noise)] <= self.window or not bool(noise.any()):
            return False
        return not has_noise_recipe(getattr(guider, "model_patcher", None)) and not drawn_by_recipe(noise)


def install(model, rule: str, window: int, share: float) -> None:
    """Put the scene-noise wrapper on ``model`` (a fresh clone); ``rule = "off"`` removes one already there."""
    if rule == "off":
        model.remove_wrappers_with_key(wrapper_type=comfy.patcher_extension.WrappersMP.SAMPLER_SAMPLE,
                                       key=WRAPPER_SCENE)
        return
    set_wrapper(model, comfy.patcher_extension.WrappersMP.SAMPLER_SAMPLE, WRAPPER_SCENE,
                SceneNoiseWrapper(rule, window, share))
