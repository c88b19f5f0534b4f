"""Initial-noise generators with a closed form (pure): i.i.d., ZoLA repeat-mask, PYoCo mixed / progressive,
FreeNoise shuffle.

Part of the noise package whose public face is :mod:`.noise` (every public name is importable from there).

Papers (plain text in ``shared/papers``):

* ZoLA, section 4.4, Eq. 8 -- repeat-mask noise init ``v_T = (1 - m) * eps'' + m * repeat(eps)``
  (:func:`repeat_mask_noise`).
* ZS^2 (Zero-Shot Video Sampling from Image), section 3 -- PYoCo's mixed and progressive noise
  (:func:`mixed_noise`, :func:`progressive_noise`).
* FreeNoise (as carried by AnimateDiff-Evolved and ComfyUI core ``apply_freenoise``) -- window shuffle
  (:func:`freenoise_shuffle`).

Signature and conventions: see :mod:`.noise` (``fn(shape, frame_axis, generator, **params) -> Tensor``,
float32 CPU, N(0, 1) marginals, explicit CPU generator).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .noise_spec import _canonical, _check_generator, _check_params, _randn, _serial_torch, _take, _with_frames

__all__ = [
    "apply_freenoise",
    "freenoise_shuffle",
    "freenoise_source_indices",
    "iid_noise",
    "mixed_noise",
    "progressive_noise",
    "repeat_mask_frames",
    "repeat_mask_noise",
]


def iid_noise(shape: Sequence[int], frame_axis: int, generator: torch.Generator) -> torch.Tensor:
    """I.i.d. N(0, 1) noise (the usual diffusion prior; ZS^2 section 3 baseline).

    Drawn as one ``torch.randn(shape, generator=generator)`` in the given layout, so with a generator
    freshly seeded with ``seed`` it is bit-identical to ComfyUI's default ``prepare_noise`` for a latent
    of that shape. ``frame_axis`` is only validated.
    """
    dims, _ = _canonical(shape, frame_axis)
    _check_generator(generator)
    return _randn(dims, generator)


def repeat_mask_noise(
    shape: Sequence[int],
    frame_axis: int,
    generator: torch.Generator,
    base_length: int = 16,
    ratio: float = 0.5,
    periodic_mask: bool = True,
) -> torch.Tensor:
    """ZoLA repeat-mask noise init, section 4.4, Eq. 8: ``v = (1 - m) * eps_long + m * repeat(eps_base)``.

    ``eps_long`` has the full shape (``T`` frames), ``eps_base`` has ``f = base_length`` frames and is
    tiled along the frame axis (frame ``j`` of ``repeat(eps_base)`` is base frame ``j mod f``). ``m`` is
    a frame-level 0/1 mask (one value per frame, broadcast over all other axes), so every output frame is
    either a fresh frame or a base frame and the marginals stay exactly N(0, 1).

    The mask (``periodic_mask``):

    * ``True`` (default): the paper's ``m in R^{f x 1 x 1 x 1}`` literally -- one mask of ``f`` phases,
      ``floor(ratio * f + 0.5)`` of them masked (chosen uniformly without replacement, ``torch.randperm``),
      tiled along the frames like the base noise. The masked phases repeat exactly with period ``f``, so the
      lag-``f`` frame correlation is the masked share of phases (0.5 at ratio 0.5) and every window of ``f``
      consecutive frames holds the same number of base frames.
    * ``False``: ``floor(ratio * T + 0.5)`` masked frames drawn over all ``T`` frames. Two frames ``f`` apart
      then share noise only if both are masked: lag-``f`` correlation ~``ratio^2`` (0.25 at ratio 0.5) -- about
      what the periodic mask gives at ``ratio^2``.

    Measured on the exact Gaussian window model (``tests/benchmarks/bench_noise.py``, section ``repeat_mask``;
    96 frames, ``f = 16``, ratio 0.5). With a global content value that no window sees whole (the case the init
    is for), the periodic mask brings the content drift between the first and last window from 0.41 to 0.31
    (Gen-L stride 8; 0.5 = independent ends, full-video model 0.22) and the covariance distance from 0.63 to
    0.41, and lowers the worst seam (Gen-L 1.42 -> 1.14, ZoLA stride 16 2.05 -> 1.70) except under frame skips
    (ZoLA skip <= 2: 3.22 -> 3.44). Its cost: content with no structure at lag ``f`` is over-repeated
    (correlation length 6, no global value: covariance distance 0.29 i.i.d., 0.52 all-frames mask, 0.88
    periodic, Gen-L); lower the ratio there -- periodic 0.25 measures like all-frames 0.5 on every metric.
    The paper tunes ``ratio`` with its own mask (Fig. 5: 0.5 best, 0 inconsistent, 1 repeated motion), hence
    the periodic default.

    Draw order (generator): ``eps_long`` (so ratio 0 is bit-identical to :func:`iid_noise` with the same
    generator), then ``eps_base`` (``min(f, T)`` frames), then the mask permutation (:func:`repeat_mask_frames`).

    Degenerate case ``T < base_length``: only the first ``T`` base frames are used, so every output frame
    is an independent N(0, 1) frame whatever the ratio (the ratio only picks which draw it comes from).

    Layout: any; ``frame_axis`` marks the ``T`` axis. Returns float32 CPU.
    """
    dims, axis = _canonical(shape, frame_axis)
    _check_generator(generator)
    _check_params("repeat_mask", {"base_length": base_length, "ratio": ratio, "periodic_mask": periodic_mask})
    t = dims[axis]
    f = int(base_length)
    out = _randn(dims, generator)
    base = _randn(_with_frames(dims, axis, min(f, t)), generator)
    masked = repeat_mask_frames(t, f, float(ratio), generator, periodic=bool(periodic_mask))
    if masked.numel():
        out.index_copy_(axis, masked, _take(base, axis, masked % f))
    return out


def repeat_mask_frames(
    num_frames: int, base_length: int, ratio: float, generator: torch.Generator, periodic: bool = True
) -> torch.Tensor:
    """Sorted int64 indices of the frames that take base noise in :func:`repeat_mask_noise` (ZoLA Eq. 8 m).

    Periodic (default, Eq. 8 literally): ``floor(ratio * base_length + 0.5)`` phases out of ``base_length``
    (one ``randperm(base_length)`` draw), every frame whose index mod ``base_length`` is such a phase.
    Non-periodic: ``floor(ratio * num_frames + 0.5)`` frames uniformly without replacement (one
    ``randperm(num_frames)`` draw).
    """
    if periodic:
        n = int(math.floor(ratio * base_length + 0.5))
        phases = torch.randperm(base_length, generator=generator)[:n]
        is_masked = torch.zeros(base_length, dtype=torch.bool)
        is_masked[phases] = True
        return torch.nonzero(is_masked[torch.arange(num_frames) % base_length]).flatten()
    n = int(math.floor(ratio * num_frames + 0.5))
    return torch.randperm(num_frames, generator=generator)[:n].sort().values


def mixed_noise(
    shape: Sequence[int], frame_axis: int, generator: torch.Generator, alpha: float = 0.5
) -> torch.Tensor:
    """PYoCo mixed noise (ZS^2 section 3): ``eps_i = sqrt(alpha) eps_shared + sqrt(1-alpha) eps_ind_i``.

    ``eps_shared`` has one frame (broadcast over the frame axis), ``eps_ind`` the full shape. Correlation
    between any two distinct frames is ``alpha``; alpha 0 = i.i.d., alpha 1 = identical frames. Draw order:
    ``eps_ind`` then ``eps_shared`` (alpha 0 is bit-identical to :func:`iid_noise`). Float32 CPU.
    """
    dims, axis = _canonical(shape, frame_axis)
    _check_generator(generator)
    _check_params("mixed", {"alpha": alpha})
    out = _randn(dims, generator)
    shared = _randn(_with_frames(dims, axis, 1), generator)
    return out.mul_(math.sqrt(1.0 - alpha)).add_(shared, alpha=math.sqrt(alpha))


def progressive_noise(
    shape: Sequence[int], frame_axis: int, generator: torch.Generator, alpha: float = 0.5
) -> torch.Tensor:
    """PYoCo progressive noise (ZS^2 section 3): ``eps_i = sqrt(alpha) eps_{i-1} + sqrt(1-alpha) eps_ind_i``.

    ``eps_0 = eps_ind_0``; marginals stay N(0, 1) and the lag-k frame correlation is ``sqrt(alpha)^k``
    (an AR(1) chain). The ``eps_ind`` draw has the full shape (alpha 0 is bit-identical to
    :func:`iid_noise`); the recursion runs in place along ``frame_axis``. Float32 CPU.
    """
    dims, axis = _canonical(shape, frame_axis)
    _check_generator(generator)
    _check_params("progressive", {"alpha": alpha})
    out = _randn(dims, generator)
    keep, fresh = math.sqrt(alpha), math.sqrt(1.0 - alpha)
    with _serial_torch():
        for i in range(1, dims[axis]):
            out.select(axis, i).mul_(fresh).add_(out.select(axis, i - 1), alpha=keep)
    return out


def freenoise_source_indices(
    num_frames: int, window_length: int, stride: int, generator: torch.Generator
) -> torch.Tensor:
    """Int64 ``src[T]``: output frame ``j`` of FreeNoise is original i.i.d. frame ``src[j]``.

    Walks the same loop as AnimateDiff-Evolved / ComfyUI core (``delta = stride``): for
    ``start = 0, stride, 2*stride, ... < T - window_length``, the chunk ``[start + window_length,
    start + window_length + d)`` (``d = min(stride, T - start - window_length)``) becomes
    ``randperm(d) + start`` of the *current* frames, i.e. a permutation of the chunk ``window_length``
    frames earlier (itself possibly already shuffled). One ``randperm`` per chunk from ``generator``.
    """
    src = torch.arange(num_frames)
    for start in range(0, num_frames - window_length, stride):
        place = start + window_length
        d = min(stride, num_frames - place)
        if d <= 0:
            break
        src[place : place + d] = src[torch.randperm(d, generator=generator) + start]
    return src


def apply_freenoise(
    noise: torch.Tensor, frame_axis: int, window_length: int, stride: int, seed: int
) -> torch.Tensor:
    """FreeNoise shuffle of an existing noise tensor; returns a new tensor (input untouched).

    Bit-identical to ComfyUI core ``apply_freenoise(noise, dim=frame_axis, context_length=window_length,
    context_overlap=window_length - stride, seed=seed)`` (permutations from a fresh CPU generator seeded
    with ``seed``), which mirrors AnimateDiff-Evolved's FreeNoise.
    """
    _, axis = _canonical(noise.shape, frame_axis)
    _check_params("freenoise", {"window_length": window_length, "stride": stride})
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    src = freenoise_source_indices(noise.shape[axis], int(window_length), int(stride), gen)
    return _take(noise, axis, src.to(noise.device))


def freenoise_shuffle(
    shape: Sequence[int],
    frame_axis: int,
    generator: torch.Generator,
    window_length: int = 16,
    stride: int = 4,
) -> torch.Tensor:
    """FreeNoise noise rescheduling (window shuffle), for parity with AnimateDiff-Evolved / ComfyUI core.

    The first ``window_length`` frames are i.i.d. N(0, 1). After that, chunk ``c`` of ``stride`` frames
    starting at ``window_length + c * stride`` is a seeded permutation of the chunk of the same size
    starting ``window_length`` frames earlier (the last chunk may be shorter). Hence every frame is a copy
    of one of the first ``window_length`` frames, and, when ``stride`` divides ``window_length``, every
    window ``[s, s + window_length)`` with ``s`` a multiple of ``stride`` holds a permutation of the first
    window's frames (each chunk position mod ``window_length // stride`` descends from the same original
    chunk). Marginals stay N(0, 1); frames are exactly equal or independent.

    Seeding (choice, for parity): the i.i.d. noise is ``torch.randn(shape, generator=generator)`` (ComfyUI's
    default noise for a fresh generator), and the permutations come from a fresh CPU generator seeded with
    ``generator.initial_seed()``, exactly as core seeds its FreeNoise generator with the sampler seed. So
    ``NoiseRecipe("freenoise", ...).draw(shape, axis, seed)`` equals core's FreeNoise for that seed.
    ``T <= window_length`` gives plain i.i.d. noise.
    """
    dims, axis = _canonical(shape, frame_axis)
    _check_generator(generator)
    _check_params("freenoise", {"window_length": window_length, "stride": stride})
    noise = _randn(dims, generator)
    if dims[axis] <= window_length:
        return noise
    perm_gen = torch.Generator(device="cpu").manual_seed(generator.initial_seed())
    src = freenoise_source_indices(dims[axis], int(window_length), int(stride), perm_gen)
    return _take(noise, axis, src)
