"""Noise-initialization nodes: one node per noise model, plus apply-to-model and a preview.

Each generator node outputs the same noise two ways: a ComfyUI ``NOISE`` for SamplerCustomAdvanced, and a
``LONGANIM_NOISE`` recipe (algorithm + parameters) that other LongAnim nodes draw from with their own seed.
"""
from __future__ import annotations

import re

import torch

from . import vocabulary
from .algorithms import noise as noise_alg
from .base import (
    MAX_FRAMES,
    LongAnimNode,
    check_combo_value,
    combo_input,
    float_input,
    int_input,
    link_input,
    outputs,
    parse_float_list,
    renamed_value,
    seed_input,
    string_input,
)
from .comfy import basics
from .comfy import noise as cn

CATEGORY = "LongAnim/noise"
OUT_TYPES = ("NOISE", "LONGANIM_NOISE")
OUT_NAMES = ("noise", "recipe")
OUT_TIPS = (
    "Connect to SamplerCustomAdvanced's noise input: the initial noise, drawn with this node's seed.",
    "The noise recipe (algorithm + settings) for other LongAnim nodes: Apply Noise To Model, Noise Travel, "
    "Noise Preview, refinement. They draw it with their own seed.",
)


class _NoiseNode(LongAnimNode):
    CATEGORY = CATEGORY
    RETURN_TYPES = OUT_TYPES
    RETURN_NAMES = OUT_NAMES
    OUTPUT_TOOLTIPS = OUT_TIPS
    ALGORITHM = ""

    @classmethod
    def make(cls, seed: int, **params):
        recipe = noise_alg.NoiseRecipe(cls.ALGORITHM, params)
        recipe.validate()
        return (cn.LongAnimNoise(recipe, seed), recipe)


class LongAnimRepeatMaskNoiseV2(_NoiseNode):
    NODE_ID = "LongAnimRepeatMaskNoiseV2"
    DISPLAY_NAME = "LongAnim: Repeat-Mask Noise (ZoLA)"
    ALGORITHM = "repeat_mask"
    DESCRIPTION = (
        "ZoLA Eq. 8: long-video noise that repeats a base window of noise on a random subset of frames, "
        "v = (1 - m)·ε_long + m·repeat(ε_base). Repetition keeps the scene consistent across windows; the i.i.d. "
        "part keeps motion alive. The paper's best ratio is 0.5."
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "seed": seed_input(),
            "ratio": float_input(0.5, 0.0, 1.0, "Fraction of frames whose noise is the repeated base noise. "
                                 "0 = independent frames, 1 = the base window repeated exactly. Paper: 0.5."),
            "context_length": int_input(16, 1, 4096, "Length f of the repeated base noise in latent frames: "
                                        "the model's native window, as context_length on the window node (16 "
                                        "for AnimateDiff, 21 for Wan 81-frame clips)."),
        }}

    def run(self, seed, ratio, context_length):
        return self.make(seed, ratio=ratio, base_length=context_length)


PAPER_CANDIDATES = 10  # ZS² sec. 6.1: random-search draws per frame; the retired `candidates` input no longer sets it


class LongAnimDependencyNoise(_NoiseNode):
    NODE_ID = "LongAnimDependencyNoise"
    DISPLAY_NAME = "LongAnim: Dependency Noise (ZS²)"
    ALGORITHM = "dependency"
    DESCRIPTION = (
        "ZS² dependency noise (Eq. 1): each frame's noise is the previous frame's mixed with a fresh part, "
        "sqrt(α)·ε_(i-1) + sqrt(1-α)·ε̃, with α found by a linear search so that the two frames' divergence is "
        "close to λ. Small λ = nearly identical frames (stable, little motion); larger λ = more change between "
        "frames. Paper default λ = 0.01.\n\n"
        "Where it departs from the paper's Algorithm 1, and why: for every λ below about 1.6 (the whole useful "
        "range) no random candidate comes near λ, and the paper's random search then keeps the candidate most "
        "aligned with the previous frame's largest values; over a long video that grows one value into a static "
        "spike (measured at 256 frames: kurtosis 6-18 instead of a Gaussian's 3). So the fresh part ε̃ is instead "
        "a new draw with its components along exp(ε_(i-1)), 1 and ε_(i-1) removed (the drift guard, always on): "
        "frames stay N(0, 1) and each divergence lands within 0.002 of λ. From λ ≈ 1.6 up (near-independent "
        "frames) the paper's search (10 draws) runs as written. Every frame is also standardized to mean 0, std 1."
    )
    RENAMED_VALUES = {"variant": {"algorithm1": "halve_step", "listing1": "fifth_step"}}

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "seed": seed_input(),
            "lam": float_input(0.01, 0.0, 100.0, "λ: target divergence between consecutive frames' noise. "
                               "0.01 (paper) keeps frames close; 0.1-1 gives more motion; about 1.65 and above: "
                               "independent frames.", step=0.001),
            "candidates": int_input(PAPER_CANDIDATES, 1, 1000, "Retired: ignored (kept so saved workflows load). The "
                                    "paper's random search only picks the fresh part when λ is about 1.6 or more; "
                                    "below that the drift guard replaces its pick, so this number changed only which "
                                    "random numbers were drawn. The node always makes the paper's 10 draws."),
            "iterations": int_input(15, 0, 1000, "Linear-search steps for α per frame (paper: 15)."),
            "variant": combo_input(noise_alg.DEPENDENCY_VARIANTS, "halve_step",
                                   "How the linear search of α steps (both start at α = 0, step 0.1, and keep α "
                                   "below 1). halve_step: Algorithm 1's rule: a step is kept while the divergence "
                                   "error strictly decreases, else it halves. fifth_step: the paper's appendix code "
                                   "(Listing 1): kept while the error does not grow, else it shrinks to a fifth. "
                                   "Saved workflows' 'algorithm1' / 'listing1' load as these two."),
        }, "optional": {
            "lam_per_frame": string_input("", "Optional λ per frame transition, comma separated (overrides lam). "
                                          "Leave empty to use lam everywhere."),
        }}

    @classmethod
    def VALIDATE_INPUTS(cls, variant):
        return check_combo_value(cls, "variant", variant, noise_alg.DEPENDENCY_VARIANTS)

    def run(self, seed, lam, candidates, iterations, variant, lam_per_frame=""):
        lam_list = parse_float_list(lam_per_frame, "lam_per_frame")
        try:
            return self.make(seed, lam=tuple(lam_list) if lam_list else lam, candidates=PAPER_CANDIDATES,
                             iterations=iterations, variant=renamed_value(type(self), "variant", variant))
        except ValueError as e:  # the recipe names list entries lam[i]: say which input and which value
            m = re.match(r"lam\[(\d+)\](.*)", str(e), re.S)
            if lam_list and m:
                i = int(m[1])
                raise ValueError(f"lam_per_frame: value {i + 1} of {len(lam_list)} ({lam_list[i]}){m[2]}") from None
            raise


class _AlphaNoiseNode(_NoiseNode):
    """A PYoCo noise node: its one parameter is the correlation α (``ALPHA_TIP`` says which correlation)."""

    ALPHA_TIP = ""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "seed": seed_input(),
            "alpha": float_input(0.5, 0.0, 1.0, cls.ALPHA_TIP),
        }}

    def run(self, seed, alpha):
        return self.make(seed, alpha=alpha)


class LongAnimMixedNoise(_AlphaNoiseNode):
    NODE_ID = "LongAnimMixedNoise"
    DISPLAY_NAME = "LongAnim: Mixed Noise (PYoCo)"
    ALGORITHM = "mixed"
    DESCRIPTION = (
        "PYoCo mixed noise: ε_i = sqrt(α)·ε_shared + sqrt(1-α)·ε_i. Every pair of frames has correlation α: "
        "a shared component ties the whole video together."
    )
    ALPHA_TIP = "Share of the common noise: correlation between any two frames. 0 = independent, 1 = identical frames."


class LongAnimProgressiveNoise(_AlphaNoiseNode):
    NODE_ID = "LongAnimProgressiveNoise"
    DISPLAY_NAME = "LongAnim: Progressive Noise (PYoCo)"
    ALGORITHM = "progressive"
    DESCRIPTION = (
        "PYoCo progressive noise: ε_i = sqrt(α)·ε_(i-1) + sqrt(1-α)·ε_i. Neighbouring frames are similar and the "
        "similarity fades with distance (lag-k correlation sqrt(α)^k), good for slow drift over long videos."
    )
    ALPHA_TIP = "Correlation of consecutive frames' noise is sqrt(α). 0 = independent, 1 = identical frames."


class LongAnimFreeNoiseShuffleV2(_NoiseNode):
    NODE_ID = "LongAnimFreeNoiseShuffleV2"
    DISPLAY_NAME = "LongAnim: FreeNoise Shuffle"
    ALGORITHM = "freenoise"
    DESCRIPTION = (
        "FreeNoise: the first window's noise is reused for every later window, shuffled per window (seeded), as "
        "AnimateDiff-Evolved and ComfyUI core offer. Use the same context_length and stride as your context windows."
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "seed": seed_input(),
            "context_length": int_input(16, 1, 4096, "Frames in one context window, in latent frames."),
            "stride": int_input(4, 1, 4096, "Frames between window starts (= context_length - context_overlap)."),
        }}

    def run(self, seed, context_length, stride):
        return self.make(seed, window_length=context_length, stride=stride)


class LongAnimApplyNoiseToModel(LongAnimNode):
    NODE_ID = "LongAnimApplyNoiseToModel"
    PATCH_ROLE = "initial noise"
    DISPLAY_NAME = "LongAnim: Apply Noise To Model"
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "Makes plain KSampler / KSamplerAdvanced start from a LongAnim noise recipe instead of i.i.d. noise, "
        "seeded by the sampler's own seed. Only the returned MODEL is affected; with add_noise disabled nothing "
        "changes."
    )
    RETURN_TYPES, RETURN_NAMES, OUTPUT_TOOLTIPS = outputs(
        ("MODEL", "model", "The model whose samplers draw the recipe as initial noise."))

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": link_input("MODEL", "The model to sample with (it is cloned, not changed)."),
            "recipe": link_input("LONGANIM_NOISE", "A noise recipe from a LongAnim noise node."),
        }}

    def run(self, model, recipe):
        basics.claim_patch(model, self.PATCH_ROLE, self.DISPLAY_NAME)
        recipe.validate()
        return (basics.mark_patch(cn.patch_model_noise(model, recipe), self.PATCH_ROLE, self.DISPLAY_NAME),)


class LongAnimNoisePreviewV2(LongAnimNode):
    NODE_ID = "LongAnimNoisePreviewV2"
    DISPLAY_NAME = "LongAnim: Noise Preview"
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "Draws a noise recipe and shows its frame-by-frame correlation matrix (red = correlated, white = "
        "independent, blue = anti-correlated) with per-frame mean and std below, so you can see what ratio, λ or "
        "α does before sampling."
    )
    RETURN_TYPES, RETURN_NAMES, OUTPUT_TOOLTIPS = outputs(
        ("IMAGE", "image", "Correlation heatmap (frames × frames) above per-frame mean/std bars."))

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "recipe": link_input("LONGANIM_NOISE", "The noise recipe to preview."),
            "seed": seed_input("Seed of the previewed draw."),
            "length": int_input(64, 1, MAX_FRAMES, "Latent frames to draw (ignored when a latent is connected)."),
        }, "optional": {
            "latent": link_input("LATENT", "Optional: preview for exactly this latent's shape and layout."),
        }}

    def run(self, recipe, seed, length, latent=None):
        basics.check_finite(latent, "latent", self.DISPLAY_NAME)
        if latent is not None:
            samples = latent["samples"]
            axis = basics.frame_axis_of(samples, "latent")
            shape = tuple(samples.shape)
        else:
            axis, shape = 0, (length, 4, 16, 16)
        recipe.validate(num_frames=shape[axis])
        noise = recipe.draw(shape, axis, seed)
        image = noise_alg.render_noise_preview(noise, axis)
        return (image.to(torch.float32),)


NODES = [
    LongAnimRepeatMaskNoiseV2,
    LongAnimDependencyNoise,
    LongAnimMixedNoise,
    LongAnimProgressiveNoise,
    LongAnimFreeNoiseShuffleV2,
    LongAnimApplyNoiseToModel,
    LongAnimNoisePreviewV2,
]
LongAnimRepeatMaskNoise = vocabulary.alias(LongAnimRepeatMaskNoiseV2)
LongAnimFreeNoiseShuffle = vocabulary.alias(LongAnimFreeNoiseShuffleV2)
LongAnimNoisePreview = vocabulary.alias(LongAnimNoisePreviewV2)
DEPRECATED_NODES = [LongAnimRepeatMaskNoise, LongAnimFreeNoiseShuffle, LongAnimNoisePreview]
