"""Phased inference with shared noise reschedule (Controllable Long Image Animation, section 3.4, Eqs. 9-12).

Paper: "Controllable Long Image Animation with Diffusion Models", section 3.4 "Longer Video Generation":
*Phased Inference* (Eq. 9) and *Shared Noise Reschedule* (Eqs. 10-12); defaults gamma = 0.8, omega = 0.2
(section 4.1, "Implements Details").

A long animation is made of ``K`` clips of ``f`` frames each. The early (high-noise) steps fix appearance and
contours, the late steps form the detailed motion. Clip 1 is denoised fully; clips ``2..K`` reuse clip 1's
trajectory for the first ``M = ceil(gamma * T)`` steps and re-sample only the remaining ``T - M`` steps, which
saves ``(K - 1) * M`` model calls. So that the re-sampled clips differ from clip 1 (and from each other) while
keeping a long-range noise correlation, the noise used in their re-sampled steps is the model's predicted
noise plus ``omega * eps`` (Eq. 11), concatenated over clips 2..K (Eq. 12) and shuffled.

Layouts: the clips are concatenated on ``frame_axis`` (0 for ``[T, C, H, W]`` SD/AnimateDiff latents, 2 for
``[B, C, T, H, W]`` native video latents); nothing assumes a channel or frame count.

Pure torch, no ComfyUI import; the model follows the k-diffusion contract
``model(x, sigma * s_in, **extra_args) -> denoised`` in sigma space (``"eps"``: ``x = x0 + sigma * eps``;
``"flow"``: ``x = (1 - sigma) * x0 + sigma * eps``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

logger = logging.getLogger(__name__)

PARAMETERIZATIONS = ("eps", "flow")
DEFAULT_GAMMA = 0.8
DEFAULT_OMEGA = 0.2
OMEGA_MAX = 1.0

StepFn = Callable[[torch.Tensor, torch.Tensor, float, float, torch.Tensor], torch.Tensor]
"""``step_fn(x, denoised, sigma, sigma_next, noise) -> x_next``; ``noise`` is the (possibly rescheduled)
noise estimate in unit-variance units of the model's parameterization."""

_SEED_MIX = 0x9E3779B97F4A7C15


# --------------------------------------------------------------------------------------------------
# Validation and split
# --------------------------------------------------------------------------------------------------


def validate_phased(
    num_clips: int,
    gamma: float = DEFAULT_GAMMA,
    omega: float = DEFAULT_OMEGA,
    *,
    num_frames: int | None = None,
    frame_axis: int | None = None,
    ndim: int | None = None,
    parameterization: str = "eps",
) -> None:
    """Check phased-inference inputs, raising ``ValueError`` that names the input, its range and the fix.

    ``gamma`` in ``[0, 1]``; ``omega`` in ``[0, OMEGA_MAX = 1]`` (the paper uses 0.2 and gives no bound;
    we stop at 1 because beyond it the random part outweighs the predicted, shared noise that the reschedule
    exists to keep, and the rescheduled noise's scale ``sqrt(1 + omega**2)`` leaves the noise level the model
    expects at each sigma by more than ``sqrt(2)``); ``num_clips`` an integer >= 1; when given, ``num_frames``
    (the latent's length on ``frame_axis``) must be a multiple of ``num_clips``. Cheap: no tensors.
    """
    if isinstance(num_clips, bool) or not isinstance(num_clips, int) or num_clips < 1:
        raise ValueError(f"num_clips must be an integer >= 1, got {num_clips!r}")
    if not isinstance(gamma, (int, float)) or not math.isfinite(gamma) or not 0.0 <= gamma <= 1.0:
        raise ValueError(
            f"gamma must be in [0, 1], got {gamma!r}; it is the fraction of steps clips 2..K share with "
            "clip 1 (paper: 0.8; 1 = copies of clip 1, 0 = independent clips)"
        )
    if not isinstance(omega, (int, float)) or not math.isfinite(omega) or not 0.0 <= omega <= OMEGA_MAX:
        raise ValueError(
            f"omega must be in [0, {OMEGA_MAX}], got {omega!r}; it scales the fresh randomness added to the "
            "predicted noise (paper: 0.2)"
        )
    if parameterization not in PARAMETERIZATIONS:
        raise ValueError(
            f"parameterization must be one of {PARAMETERIZATIONS}, got {parameterization!r}; use 'eps' for "
            "epsilon/v-prediction models and 'flow' for rectified-flow (CONST) models"
        )
    if frame_axis is not None and ndim is not None and not -ndim <= frame_axis < ndim:
        raise ValueError(
            f"frame_axis must index the latent's dimensions (-{ndim}..{ndim - 1}), got {frame_axis}; "
            "use 0 for [T, C, H, W] latents and 2 for [B, C, T, H, W]"
        )
    if num_frames is not None and (num_frames < num_clips or num_frames % num_clips != 0):
        raise ValueError(
            f"num_clips must divide the number of latent frames, got num_clips={num_clips} for {num_frames} "
            f"frames; pass a latent of num_clips * clip_length frames"
        )


def phased_split(num_steps: int, gamma: float) -> int:
    """``M = ceil(gamma * T)`` (Eq. 9): the number of steps clips 2..K take from clip 1's trajectory.

    The paper typesets ``M = floor(gamma T)`` but calls the symbol "upward rounding"; we follow the text
    (ceil). A ``1e-9`` guard keeps float products exact (``0.8 * 10 = 8.000000000000002`` -> 8, not 9).
    """
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {num_steps!r}")
    validate_phased(1, gamma, 0.0)
    return min(num_steps, max(0, math.ceil(gamma * num_steps - 1e-9)))


# --------------------------------------------------------------------------------------------------
# Noise maths (Eqs. 10-12)
# --------------------------------------------------------------------------------------------------


def predicted_noise(
    x: torch.Tensor, denoised: torch.Tensor, sigma: float, parameterization: str = "eps"
) -> torch.Tensor:
    """Eq. 10, ``n(t) = eps_theta(z_t, t, c)``, recovered from a k-diffusion denoiser output.

    ``"eps"``: ``n = (x - D) / sigma``; ``"flow"``: ``n = (x - (1 - sigma) D) / sigma``. At ``sigma = 0`` the
    noise is undefined and zeros are returned (the step then lands on ``D``).
    """
    sigma = float(sigma)
    if sigma == 0.0:
        return torch.zeros_like(x)
    if parameterization == "eps":
        return (x - denoised) / sigma
    return (x - (1.0 - sigma) * denoised) / sigma


def ddim_step(parameterization: str = "eps") -> StepFn:
    """Deterministic DDIM step that re-noises the prediction with the given noise estimate.

    ``"eps"``: ``x_next = D + sigma_next * noise``; ``"flow"``: ``x_next = (1 - sigma_next) D +
    sigma_next * noise``. With ``noise = predicted_noise(x, D, sigma)`` this *is* the Euler step of
    k-diffusion (``x + (sigma_next - sigma) (x - D) / sigma``) for both parameterizations, so clip 1 is plain
    Euler sampling; the rescheduled noise of Eq. 11-12 enters through ``noise``.
    """
    if parameterization not in PARAMETERIZATIONS:
        raise ValueError(f"parameterization must be one of {PARAMETERIZATIONS}, got {parameterization!r}")

    def step(x: torch.Tensor, denoised: torch.Tensor, sigma: float, sigma_next: float, noise: torch.Tensor):
        sn = float(sigma_next)
        if parameterization == "eps":
            return denoised + sn * noise
        return (1.0 - sn) * denoised + sn * noise

    return step


def reschedule_noise(
    noises: Sequence[torch.Tensor], omega: float, generator: torch.Generator, frame_axis: int = 0
) -> list[torch.Tensor]:
    """Shared noise reschedule of one step (Eqs. 11-12) for clips 2..K.

    ``noises`` are the predicted noises ``n(t)_k`` of clips 2..K (same shape each, frames on ``frame_axis``).
    Returns ``[n~_2, ..., n~_K]`` with

    * Eq. 11: ``n~_k = n_k + omega * eps``, ``eps ~ N(0, I)`` (drawn on CPU, float32, from ``generator``);
    * Eq. 12: the sequences are concatenated along the frame axis (``(K - 1) * f`` frames) and the frames are
      randomly permuted (one permutation of all frames, shared by batch entries, drawn from ``generator``
      *before* ``eps`` so that the shuffle does not depend on ``omega``), then split back into clips.

    No renormalisation by ``sqrt(1 + omega**2)`` (the paper has none). Memory: one concatenated copy.
    """
    if not noises:
        return []
    sizes = [n.shape[frame_axis] for n in noises]
    cat = torch.cat(list(noises), dim=frame_axis)
    perm = torch.randperm(cat.shape[frame_axis], generator=generator, device="cpu")
    if omega > 0.0:
        eps = torch.randn(tuple(cat.shape), generator=generator, dtype=torch.float32, device="cpu")
        cat = cat + omega * eps.to(device=cat.device, dtype=cat.dtype)
    cat = cat.index_select(frame_axis, perm.to(cat.device))
    return list(cat.split(sizes, dim=frame_axis))


def _step_generator(seed: int, step: int) -> torch.Generator:
    gen = torch.Generator(device="cpu")
    gen.manual_seed((int(seed) * _SEED_MIX + (step + 1) * 0xBF58476D1CE4E5B9) % (2**63 - 1))
    return gen


# --------------------------------------------------------------------------------------------------
# Sampler
# --------------------------------------------------------------------------------------------------


def phased_sample(
    model: Callable[..., torch.Tensor],
    x: torch.Tensor,
    sigmas: torch.Tensor,
    extra_args: dict[str, Any] | None = None,
    callback: Callable[[dict[str, Any]], Any] | None = None,
    disable: bool | None = None,
    *,
    num_clips: int,
    gamma: float = DEFAULT_GAMMA,
    omega: float = DEFAULT_OMEGA,
    seed: int = 0,
    step_fn: StepFn | None = None,
    parameterization: str = "eps",
    extra_args_for_clip: Callable[[int], dict[str, Any]] | None = None,
    frame_axis: int = 0,
    check_interrupt: Callable[[], None] | None = None,
) -> tuple[torch.Tensor, dict[str, int]]:
    """Phased inference (Eq. 9) with shared noise reschedule (Eqs. 10-12).

    Interpretation (the paper is terse):

    * ``x`` holds the ``K = num_clips`` clips' starting latents at ``sigmas[0]``, concatenated on
      ``frame_axis`` (``K * f`` frames; k-diffusion convention: already scaled noise, or the noised
      input-image prior the paper builds). Clip ``k`` is frames ``[k f, (k+1) f)``.
    * Eq. 9, ``V^1 = D(z^1_{1:T})``: clip 1 runs all ``T = len(sigmas) - 1`` steps with ``step_fn`` and its
      own predicted noise (Eq. 10); the default ``step_fn`` (:func:`ddim_step`) makes this plain Euler.
    * Eq. 9, ``V^k = D(z^1_{1:M}, z^k_{M+1:T})``: for ``k > 1`` the state after ``M = ceil(gamma T)`` steps
      is clip 1's state (bit-identical) and clip ``k``'s own starting latent is not used; steps ``M..T-1``
      are re-sampled with ``extra_args_for_clip(k)``. In each re-sampled step the noise fed to ``step_fn`` is
      the rescheduled noise of Eqs. 11-12 (:func:`reschedule_noise`; ``t >= M`` in Eq. 11): predicted noise
      plus ``omega * eps``, concatenated over clips 2..K and frame-shuffled, a fresh ``eps`` and permutation
      per step, seeded by ``(seed, step)``. Clips 2..K therefore advance in lockstep (one model call per clip
      per step, clips never batched together, so temporal attention stays within a clip).
    * ``gamma = 1`` (``M = T``): clips 2..K are copies of clip 1 ("degenerates into the replication", sec.
      4.3). ``gamma = 0`` (``M = 0``): nothing is shared, so every clip is an independent full sampling of
      its own starting latent with the same ``step_fn`` and no reschedule (the reschedule exists to make clips
      that share clip 1's trajectory diverge; with no shared trajectory there is nothing to diverge from).

    Args:
        model: ``model(x, sigma * s_in, **extra_args) -> denoised`` (k-diffusion).
        sigmas: 1-D descending, ``T + 1`` entries (usually ending at 0).
        extra_args: base keyword arguments of ``model``; ``extra_args_for_clip(k)`` (0-based ``k``; 0 is clip
            1) is merged over it per clip, e.g. per-clip conditioning.
        callback: called after each model call with ``{"x", "i", "sigma", "sigma_hat", "denoised", "clip",
            "step"}``; ``i`` is the global model-call index (monotonic, total ``stats["model_calls"]``),
            ``step`` the sigma index, ``x`` the clip's state before the step.
        gamma: fraction of steps shared, ``[0, 1]``, paper 0.8. omega: randomness, ``[0, 1]``, paper 0.2.
        seed: seeds the reschedule noise and shuffles (CPU generator). Same seed -> bit-identical output.
        step_fn: ``step_fn(x, denoised, sigma, sigma_next, noise) -> x_next``; default :func:`ddim_step`.
        parameterization: ``"eps"`` or ``"flow"``: how the predicted noise is read from ``denoised``.
        frame_axis: frame axis of ``x`` (0 for ``[T, C, H, W]``, 2 for ``[B, C, T, H, W]``).
        check_interrupt: called before every step (e.g. ComfyUI's interrupt check).

    Returns:
        ``(latent, stats)``: all clips concatenated on ``frame_axis`` (shape of ``x``), and
        ``{"model_calls": T + (K-1)(T-M) (K T when M = 0), "model_calls_full": K T, "saved": difference,
        "split_step": M}``.
    """
    if sigmas.ndim != 1 or sigmas.numel() < 2:
        raise ValueError(f"sigmas must be a 1-D tensor with >= 2 entries, got shape {tuple(sigmas.shape)}")
    validate_phased(
        num_clips, gamma, omega, frame_axis=frame_axis, ndim=x.ndim, parameterization=parameterization
    )
    frame_axis = frame_axis % x.ndim
    validate_phased(num_clips, gamma, omega, num_frames=x.shape[frame_axis])
    num_steps = sigmas.numel() - 1
    split = phased_split(num_steps, gamma)
    clip_len = x.shape[frame_axis] // num_clips
    step = ddim_step(parameterization) if step_fn is None else step_fn
    base = {} if extra_args is None else extra_args
    clip_args = [base] * num_clips
    if extra_args_for_clip is not None:
        clip_args = [{**base, **(extra_args_for_clip(k) or {})} for k in range(num_clips)]
    sig = [float(s) for s in sigmas.detach().cpu().double()]
    starts = x.split(clip_len, dim=frame_axis)
    s_in = x.new_ones([starts[0].shape[0]])  # per-clip batch (= clip_len frames when frame_axis is 0)
    calls = 0

    def evaluate(xk: torch.Tensor, i: int, k: int) -> torch.Tensor:
        nonlocal calls
        denoised = model(xk, sigmas[i] * s_in, **clip_args[k])
        if callback is not None:
            callback(
                {"x": xk, "i": calls, "sigma": sigmas[i], "sigma_hat": sigmas[i], "denoised": denoised}
                | {"clip": k, "step": i}
            )
        calls += 1
        return denoised

    def run_plain(xk: torch.Tensor, k: int, first: int, last: int) -> torch.Tensor:
        for i in range(first, last):
            if check_interrupt is not None:
                check_interrupt()
            denoised = evaluate(xk, i, k)
            xk = step(
                xk, denoised, sig[i], sig[i + 1], predicted_noise(xk, denoised, sig[i], parameterization)
            )
        return xk

    shared = run_plain(starts[0], 0, 0, split)  # Eq. 9, first M steps of clip 1
    outputs = [run_plain(shared, 0, split, num_steps)]
    if num_clips > 1:
        if split == 0:  # nothing shared: independent clips
            outputs += [run_plain(starts[k], k, 0, num_steps) for k in range(1, num_clips)]
        elif split == num_steps:  # everything shared: copies of clip 1
            outputs += [outputs[0].clone() for _ in range(1, num_clips)]
        else:  # Eq. 9, k > 1: re-sample steps M..T-1 from clip 1's state, with Eqs. 10-12 noise
            states = [shared] * (num_clips - 1)
            for i in range(split, num_steps):
                if check_interrupt is not None:
                    check_interrupt()
                denoised = [evaluate(s, i, k + 1) for k, s in enumerate(states)]
                noises = [
                    predicted_noise(s, d, sig[i], parameterization)
                    for s, d in zip(states, denoised, strict=True)
                ]
                noises = reschedule_noise(noises, float(omega), _step_generator(seed, i), frame_axis)
                states = [
                    step(s, d, sig[i], sig[i + 1], n)
                    for s, d, n in zip(states, denoised, noises, strict=True)
                ]
                del denoised, noises
            outputs += states
    full = num_clips * num_steps
    stats = {"model_calls": calls, "model_calls_full": full, "saved": full - calls, "split_step": split}
    logger.debug("phased inference: %s", stats)
    return torch.cat(outputs, dim=frame_axis), stats
