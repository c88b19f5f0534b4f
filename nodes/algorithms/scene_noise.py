"""Scene-carrying initial noise for the window loop (pure): the sampler's own noise, restructured along the frames so
that every window starts from (nearly) the noise of the first window.

Why: a short-window video model decides what the prompt leaves open (which objects, their colours, the look of the
scene) from the initial noise its window sees. With i.i.d. noise every window sees new noise and re-decides; the
video becomes a chain of scenes. FreeNoise (Qiu et al. 2023, "FreeNoise: tuning-free longer video diffusion via
noise rescheduling", sec. 3.2) reuses the first window's noise frames for every later window, shuffled in chunks,
which fixes the scene when the windows are aligned with the chunks (Gen-L's fixed windows). ZoLA's windows are
re-drawn at a random offset every step (ZoLA Eqs. 5-7), so a window usually straddles two shuffled chunks and
sees a different multiset of the first window's frames.

The rules (``SCENE_RULES``), each a function of the sampler's noise ``eps`` (and, for ``freenoise``, a seed):

* ``tile`` -- ZoLA's repeat-mask (Eq. 8) with the all-ones mask: frame ``j`` is frame ``j mod f`` of the first
  window. The only rule under which EVERY ``f`` consecutive frames hold exactly the first window's noise frames
  (two windows one frame apart differ by frame ``j`` leaving and ``j + f`` entering, so ``eps_{j+f} = eps_j``),
  whatever offset ZoLA draws; the content of frames ``f`` apart then starts from the same noise.
* ``blend`` -- the tile plus fresh noise: ``eps'_j = sqrt(a) eps_{j mod f} + sqrt(1 - a) eps_j`` for ``j >= f``
  (``a`` = ``share``), the first window untouched. Independent Gaussians, so marginals stay exactly N(0, 1) and the
  lag-``f`` frame correlation is ``sqrt(a)``: the scene is carried, frames ``f`` apart are not copies.
* ``freenoise`` -- FreeNoise's chunk shuffle of ``eps`` (``noise_models.apply_freenoise``, stride ``f / 4``),
  bit-identical to ComfyUI core's ``apply_freenoise``. The window loop pairs it with ZoLA offsets on the chunk grid
  (``window_schedules.zola_truncated_windows(align=freenoise_chunk(f))``), so every window holds whole chunks, in
  the first half of the steps (``FREENOISE_ALIGN_UNTIL``); the later steps draw the offsets from every frame.

Why only the first half: the noise repeats with the window period, so the video tends to repeat the first window's
content with that period, and where the first window's motion does not close (a ball crossing the frame) a ball
jumps back at period borders. With the offsets on the chunk grid at every step, window edges sit only on chunk
borders, and a period border is a window edge at a third of the steps; both became seams. Measured on the trained
toy world at 512 frames (docs/benchmarks.md, long-range consistency): median ball step at the 16-frame borders 6.4x
the step inside with the grid at every step, 3.2x with it in the first half (FreeNoise + Gen-L stride 8: 3.3x),
agreement 0.79 / 0.80 / 0.80 (seeds 0-3; seeds 0-31 in scratch runs: 2.5x / 1.45x / 1.47x, agreement 0.77 / 0.74 /
0.76). Sharing less of the noise (the first window's low temporal frequencies only, fresh noise blended in at
period borders, a 32-frame period) lowers the jump as well but loses the scene (agreement 0.38-0.78); a mirrored
period hides the jump by reversing the motion (ping-pong), which is worse.

Measured on the trained toy world, empty prompt, 256 latent frames, ZoLA windows (16, stride 12), seeds 0-2
(``tests/benchmarks/bench_consistency.py``): agreement with the first window's colours 0.16 with i.i.d. noise,
0.42 blend 0.75, 0.60 freenoise at free offsets, 0.67 tile, 0.93 freenoise on the chunk grid (0.71 on seeds 3-5).
The tile carries the scene in the exact Gaussian benchmark as well as FreeNoise does but not on the toy model:
a window at another offset sees the first window's noise rotated, and the model decides anew from it.
* ``off`` -- ``eps`` unchanged.

Nothing here draws from a global RNG; the same ``eps`` (the sampler's noise from the user's seed) gives the same
output. Layout: any; ``frame_axis`` marks the frames. Works on the device and dtype of ``eps``.
"""
from __future__ import annotations

import math

import torch

from .noise_models import apply_freenoise

__all__ = ["FREENOISE_ALIGN_UNTIL", "SCENE_RULES", "freenoise_chunk", "scene_noise", "validate_scene_params"]

SCENE_RULES = ("blend", "tile", "freenoise", "off")

#: Share of the sampling steps (from the first) whose ZoLA window offsets the window loop puts on the ``freenoise``
#: chunk grid (``window_schedules.make_windows``' ``align_until``); the later steps draw them from every frame.
FREENOISE_ALIGN_UNTIL = 0.5


def freenoise_chunk(window: int) -> int:
    """Frames per shuffled chunk of the ``freenoise`` rule: a quarter window (core's overlap of 3/4), at least 1."""
    return max(1, int(window) // 4)


def validate_scene_params(rule: str, window: int, share: float) -> None:
    if rule not in SCENE_RULES:
        raise ValueError(f"scene noise rule must be one of {list(SCENE_RULES)}, got {rule!r}")
    if int(window) < 1:
        raise ValueError(f"scene noise window must be >= 1 frame, got {window}")
    if not 0.0 <= float(share) <= 1.0:
        raise ValueError(f"scene noise share must be in [0, 1] (0 = fresh noise, 1 = the first window tiled), "
                         f"got {share!r}")


def scene_noise(eps: torch.Tensor, frame_axis: int, window: int, rule: str = "blend", share: float = 0.75,
                seed: int = 0) -> torch.Tensor:
    """Scene-carrying noise of the same shape as ``eps`` (a new tensor; ``eps`` is untouched).

    ``window`` is the window length ``f`` in frames; a video of at most ``f`` frames is returned unchanged (as a
    copy), as is ``rule = "off"``. ``share`` is ``a`` of the ``blend`` rule (1 = ``tile``, 0 = ``off``); ``seed``
    seeds the ``freenoise`` permutations (core seeds them with the sampler's seed).
    """
    validate_scene_params(rule, window, share)
    axis = frame_axis % eps.ndim
    t, f = eps.shape[axis], int(window)
    if rule == "off" or t <= f:
        return eps.clone()
    if rule == "freenoise":
        return apply_freenoise(eps, axis, f, freenoise_chunk(f), seed)
    src = torch.arange(t, device=eps.device) % f
    tiled = eps.index_select(axis, src)
    if rule == "tile":
        return tiled
    a = float(share)
    out = eps.clone()
    late = eps.narrow(axis, f, t - f)
    out.narrow(axis, f, t - f).copy_(math.sqrt(a) * tiled.narrow(axis, f, t - f) + math.sqrt(1.0 - a) * late)
    return out
