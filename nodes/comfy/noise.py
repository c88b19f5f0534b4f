"""Initial noise on ComfyUI's sampler objects: the NOISE object, the KSampler noise wrapper, seeded CPU draws.

Owns:
- :class:`LongAnimNoise`, a ``NOISE`` for SamplerCustomAdvanced drawing a LongAnim recipe
  (``nodes/algorithms/noise.py``: ZoLA repeat-mask, FreeNoise, PYoCo, ...);
- the ``SAMPLER_SAMPLE`` wrapper that makes plain KSampler / KSamplerAdvanced start from such a recipe;
- :func:`iid_noise` / :func:`draw_noise` / :func:`chunk_seed`: KSampler's own i.i.d. noise, bit-identical, from a
  private CPU generator, and the seed rule of clips and chunks (used by refinement and phased inference).

Core hooks used: the NOISE duck type of ``comfy_extras.nodes_custom_sampler`` (``.seed``, ``generate_noise``);
a ``comfy.patcher_extension.WrappersMP.SAMPLER_SAMPLE`` wrapper on the ModelPatcher.
"""
from __future__ import annotations

import hashlib
from collections import OrderedDict

import comfy.patcher_extension
import torch

from ..algorithms.noise import NoiseRecipe
from .basics import check_finite_latent, frame_axis_of, set_wrapper

WRAPPER_NOISE = "LongAnim.noise"
RECIPE_KEY = "LongAnim.noise_recipe"  # transformer_options key: the recipe of the running sample
SEED_MASK = 0xFFFFFFFFFFFFFFFF


# ------------------------------------------------------------------------------------ NOISE object and wrapper
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
        noise = noise.to(dtype=samples.dtype if samples.dtype.is_floating_point else torch.float32)
        if self.recipe.algorithm != "iid":
            _note_drawn(noise)
        return noise


_DRAWN: OrderedDict[tuple, None] = OrderedDict()  # fingerprints of the last structured noises LongAnimNoise drew
_MAX_DRAWN = 8


def _noise_fingerprint(noise: torch.Tensor) -> tuple:
    data = noise.detach().to("cpu", torch.float32).contiguous().reshape(-1).view(torch.uint8).numpy()
    return tuple(noise.shape), hashlib.blake2b(memoryview(data), digest_size=16).hexdigest()


def _note_drawn(noise: torch.Tensor) -> None:
    _DRAWN[_noise_fingerprint(noise)] = None
    while len(_DRAWN) > _MAX_DRAWN:
        _DRAWN.popitem(last=False)


def drawn_by_recipe(noise: torch.Tensor) -> bool:
    """True when ``noise`` (same values) is a structured noise a LongAnim NOISE output drew for SamplerCustomAdvanced,
    so other features (the window nodes' scene noise) leave the user's choice alone."""
    return bool(_DRAWN) and _noise_fingerprint(noise) in _DRAWN


class _NoiseReplaceWrapper:
    """SAMPLER_SAMPLE wrapper: replace the sampler's initial noise by a recipe seeded from the sampler's seed.

    Leaves all-zero noise alone (KSamplerAdvanced ``add_noise: disable`` / DisableNoise).
    """

    def __init__(self, recipe: NoiseRecipe):
        self.recipe = recipe

    def __call__(self, executor, guider, sigmas, extra_args, callback, noise, *args, **kwargs):
        check_finite_latent(args[0] if args else kwargs.get("latent_image"))
        if noise is not None and torch.count_nonzero(noise) > 0:
            axis = frame_axis_of(noise)
            seed = int(extra_args.get("seed") or 0)
            new = self.recipe.draw(tuple(noise.shape), axis, seed)
            noise = new.to(device=noise.device, dtype=noise.dtype)
        # publish the recipe for this run only, so noise travel re-noises with the same structured noise (Eq. 9)
        t_opts = extra_args.setdefault("model_options", {}).setdefault("transformer_options", {})
        had, saved = RECIPE_KEY in t_opts, t_opts.get(RECIPE_KEY)
        t_opts[RECIPE_KEY] = self.recipe
        try:
            return executor(guider, sigmas, extra_args, callback, noise, *args, **kwargs)
        finally:
            if had:
                t_opts[RECIPE_KEY] = saved
            else:
                t_opts.pop(RECIPE_KEY, None)


def model_recipe(model_options: dict | None) -> NoiseRecipe | None:
    """The initial-noise recipe of the running sample when its MODEL went through Apply Noise To Model."""
    recipe = ((model_options or {}).get("transformer_options") or {}).get(RECIPE_KEY)
    return recipe if isinstance(recipe, NoiseRecipe) else None


def patch_model_noise(model, recipe: NoiseRecipe):
    """Clone ``model`` and make plain KSampler/KSamplerAdvanced draw ``recipe`` as the initial noise."""
    m = model.clone()
    set_wrapper(m, comfy.patcher_extension.WrappersMP.SAMPLER_SAMPLE, WRAPPER_NOISE, _NoiseReplaceWrapper(recipe))
    return m


# ---------------------------------------------------------------------------------------------- seeded draws
def iid_noise(shape: tuple[int, ...], seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """ComfyUI's KSampler noise (``comfy.sample.prepare_noise``), bit-identical, from a private CPU generator."""
    gen = torch.Generator(device="cpu").manual_seed(int(seed) & SEED_MASK)
    return torch.randn(shape, dtype=dtype, generator=gen, device="cpu")


def draw_noise(samples: torch.Tensor, seed: int, recipe: NoiseRecipe | None) -> torch.Tensor:
    """SDEdit / initial noise for ``samples``: i.i.d. like KSampler, or a LongAnim recipe over the frame axis."""
    dtype = samples.dtype if samples.dtype.is_floating_point else torch.float32
    if recipe is None:
        return iid_noise(tuple(samples.shape), seed, dtype)
    axis = frame_axis_of(samples)
    recipe.validate(num_frames=samples.shape[axis])
    return recipe.draw(tuple(samples.shape), axis, int(seed) & SEED_MASK).to(dtype)


def chunk_seed(seed: int, index: int) -> int:
    """Seed of naive chunk ``index``: ``seed + index`` (mod 2^64), so chunk 0 equals a KSampler run with ``seed``."""
    return (int(seed) + int(index)) & SEED_MASK
