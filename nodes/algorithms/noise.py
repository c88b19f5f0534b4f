"""Initial-noise algorithms for long videos: the public face of the noise package (pure).

Papers (plain text in ``shared/papers``):

* ZoLA, section 4.4, Eq. 8 -- repeat-mask noise init ``v_T = (1 - m) * eps'' + m * repeat(eps)``
  (:func:`repeat_mask_noise`).
* ZS^2 (Zero-Shot Video Sampling from Image), section 3 -- PYoCo's mixed and progressive noise
  (:func:`mixed_noise`, :func:`progressive_noise`); section 3.1, Eq. 1, Algorithm 1 and appendix D
  Listing 1 -- the dependency noise model (:func:`dependency_noise`).
* FreeNoise (as carried by AnimateDiff-Evolved and ComfyUI core ``apply_freenoise``) -- window shuffle
  (:func:`freenoise_shuffle`).

Every generator has the signature ``fn(shape, frame_axis, generator, **params) -> Tensor``: it returns a
float32 CPU tensor of ``shape`` whose frame (time) axis is ``frame_axis`` (0 for ``[T, C, H, W]``
AnimateDiff/SD latents, 2 for ``[B, C, T, H, W]`` native video latents; negative axes allowed). All
randomness comes from the explicit CPU ``torch.Generator``; same generator state => bit-identical output.
Marginals are N(0, 1). Noise at different non-frame positions (batch, channel, height, width) is
independent: the structure is along the frame axis only, a batch ``B > 1`` is simply more positions.

Layout of the package (every public name below is importable from this module):

* :mod:`.noise_spec` -- shape / generator checks, the parameter tables :data:`NOISE_PARAMS` and
  :func:`validate_noise_params`;
* :mod:`.noise_models` -- the closed-form generators (i.i.d., repeat-mask, mixed, progressive, FreeNoise);
* :mod:`.noise_dependency` -- the ZS^2 dependency noise search;
* :mod:`.noise_preview` -- frame statistics and the preview picture;
* here -- the registry :data:`NOISE_ALGORITHMS` and the immutable :class:`NoiseRecipe` passed between nodes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from .noise_dependency import DEPENDENCY_ALPHA_MAX, dependency_noise, dependency_noise_with_stats
from .noise_models import (
    apply_freenoise,
    freenoise_shuffle,
    freenoise_source_indices,
    iid_noise,
    mixed_noise,
    progressive_noise,
    repeat_mask_frames,
    repeat_mask_noise,
)
from .noise_preview import frame_correlation, frame_stats, render_noise_preview
from .noise_spec import (
    DEPENDENCY_VARIANTS,
    NOISE_DESCRIPTIONS,
    NOISE_PARAMS,
    NoiseSpec,
    ParamSpec,
    _canonical,
    validate_noise_params,
)

__all__ = [
    "DEPENDENCY_ALPHA_MAX",
    "DEPENDENCY_VARIANTS",
    "NOISE_ALGORITHMS",
    "NOISE_PARAMS",
    "NoiseRecipe",
    "NoiseSpec",
    "ParamSpec",
    "apply_freenoise",
    "dependency_noise",
    "dependency_noise_with_stats",
    "frame_correlation",
    "frame_stats",
    "freenoise_shuffle",
    "freenoise_source_indices",
    "iid_noise",
    "mixed_noise",
    "progressive_noise",
    "render_noise_preview",
    "repeat_mask_frames",
    "repeat_mask_noise",
    "validate_noise_params",
]

_FUNCTIONS = {
    "iid": iid_noise,
    "repeat_mask": repeat_mask_noise,
    "dependency": dependency_noise,
    "mixed": mixed_noise,
    "progressive": progressive_noise,
    "freenoise": freenoise_shuffle,
}

#: name -> generator function and its parameters (names, defaults, ranges).
NOISE_ALGORITHMS: dict[str, NoiseSpec] = {
    name: NoiseSpec(name, _FUNCTIONS[name], NOISE_PARAMS[name], NOISE_DESCRIPTIONS[name]) for name in NOISE_PARAMS
}


def _freeze(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, Mapping):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    return value


@dataclass(frozen=True)
class NoiseRecipe:
    """An initial-noise recipe passed between nodes: algorithm name + parameters (no tensors).

    Immutable enough to share: ``params`` is copied on construction (lists become tuples) and the recipe
    is hashable and comparable by value. ``draw`` seeds its own CPU generator, so a recipe plus a seed
    fully determines the noise.
    """

    algorithm: str
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", {k: _freeze(v) for k, v in dict(self.params).items()})

    def __hash__(self) -> int:
        return hash((self.algorithm, _freeze(self.params)))

    @classmethod
    def iid(cls) -> NoiseRecipe:
        """The plain i.i.d. recipe (ComfyUI's default noise)."""
        return cls("iid", {})

    def validate(self, num_frames: int | None = None) -> dict[str, Any]:
        """:func:`validate_noise_params` for this recipe; returns the full parameter dict."""
        return validate_noise_params(self.algorithm, self.params, num_frames)

    def draw(self, shape: Sequence[int], frame_axis: int, seed: int) -> torch.Tensor:
        """Float32 CPU noise of ``shape`` from a fresh ``torch.Generator('cpu').manual_seed(seed)``."""
        dims, axis = _canonical(shape, frame_axis)
        params = self.validate(num_frames=dims[axis])
        gen = torch.Generator(device="cpu").manual_seed(int(seed))
        return NOISE_ALGORITHMS[self.algorithm].fn(dims, axis, gen, **params)
