"""Context-window scheduling and temporal co-denoising (pure layer).

Every public name lives here; the code is split by concern into :mod:`.window_schedules` (which frames each
window holds at each step), :mod:`.window_fusion` (fusion weights, randomized blending, the co-denoising
executor) and :mod:`.schedule_preview` (the picture of a schedule).

Papers
------
- ZoLA (``zola.txt``), section 4.3: sliding windows (Eq. 5), random start per denoising step (Eq. 6),
  random frame skip (Eq. 7), merge weights decaying from the window centre (Eq. 4). The paper averages
  the overlapping results ("will be averaged", flat), and so does the pack's default (``WINDOW_DEFAULTS``:
  measured best for the default windows); Eq. 4 weights are the ``zola`` fusion.
- Gen-L-Video (``gen-l-video.txt``), section 3.2 and supplementary III: clips of M frames at stride S,
  fused by the least-squares optimum ``v_j = sum_i W_ij^2 v_ij / sum_i W_ij^2``.
- StreamingT2V (``streamingt2v.txt``), section 4.3, Eq. 8: randomized blending - two consecutive chunks
  overlapping by O frames are joined at a random cut ``f_thr ~ U{0..O}``.
- Parity schedules (own code, behaviour as described in /work/shared/research/anchors.md): ``static``,
  ``shifted`` (uniform windows shifted every step by the bit-reversal "ordered halving" sequence),
  ``looped`` (windows wrap around the end) and ``batched`` (no overlap).
- Own extensions, measured on the exact Gaussian window model (``tests/benchmarks/analytic_quality.py``):
  ZoLA windows cut at the video ends instead of shifted (``ends="truncate"``: no border pinned at
  ``length`` / ``T - length``), and a step-dependent phase of spanning skip windows for the first
  ``skip_until`` share of the steps (:func:`make_windows`).

Conventions
-----------
A *window* is a ``list[int]`` of absolute frame indices in temporal order (may be strided; for the
``looped`` schedule the order is loop order and may wrap, e.g. ``[14, 15, 0, 1]``). A schedule is a
``list[list[int]]``. Every schedule covers every frame ``0..num_frames-1`` at every step, and
``num_frames <= length`` always gives exactly one window ``[0..num_frames-1]``.

Randomness: every random function takes an explicit CPU ``torch.Generator``; :func:`step_generator`
derives one from ``(seed, step, stream)``. Nothing here touches the global RNG.

Tensors: the frame axis is a parameter (``frame_axis``: 0 for ``[T, C, H, W]``, 2 for
``[B, C, T, H, W]``). Fusion memory is two buffers (numerator like ``x``, denominator ``[T]``) plus one
batch of window outputs, independent of the number of windows.
"""

from __future__ import annotations

from .schedule_preview import render_schedule_preview
from .window_defaults import (
    GENL_DEFAULTS,
    PREVIEW_DEFAULTS,
    WAN_VIDEO_DEFAULTS,
    WINDOW_DEFAULTS,
    ZOLA_DEFAULTS,
)
from .window_fusion import (
    BLEND_VARIANTS,
    WEIGHT_METHODS,
    co_denoise,
    fuse_outputs,
    randomized_blend_masks,
    weights_for_windows,
    window_weights,
)
from .window_schedules import (
    ENDS,
    MULTI_CALL_SAMPLERS,
    SCHEDULES,
    STREAM_BLEND,
    STREAM_WINDOWS,
    SamplerStepClock,
    batched_windows,
    edge_shares,
    is_multi_call_sampler,
    lattice_windows,
    looped_windows,
    make_windows,
    min_window_length,
    mix_seed,
    ordered_halving,
    shifted_uniform_windows,
    skip_phase_steps,
    spanning_windows,
    static_windows,
    step_generator,
    step_of_sigma,
    tiled_windows,
    uniform_windows,
    validate_window_params,
    zola_truncated_windows,
    zola_windows,
)

__all__ = [
    "GENL_DEFAULTS",
    "PREVIEW_DEFAULTS",
    "WAN_VIDEO_DEFAULTS",
    "WINDOW_DEFAULTS",
    "ZOLA_DEFAULTS",
    "BLEND_VARIANTS",
    "ENDS",
    "MULTI_CALL_SAMPLERS",
    "SCHEDULES",
    "STREAM_BLEND",
    "STREAM_WINDOWS",
    "WEIGHT_METHODS",
    "SamplerStepClock",
    "batched_windows",
    "co_denoise",
    "edge_shares",
    "fuse_outputs",
    "is_multi_call_sampler",
    "lattice_windows",
    "looped_windows",
    "make_windows",
    "min_window_length",
    "mix_seed",
    "ordered_halving",
    "randomized_blend_masks",
    "render_schedule_preview",
    "shifted_uniform_windows",
    "skip_phase_steps",
    "spanning_windows",
    "static_windows",
    "step_generator",
    "step_of_sigma",
    "tiled_windows",
    "uniform_windows",
    "validate_window_params",
    "weights_for_windows",
    "window_weights",
    "zola_truncated_windows",
    "zola_windows",
]
