"""Noise travel: re-noise and re-denoise early blocks of steps (ZoLA, section 4.4, Eq. 9, Fig. 3).

Paper: "ZoLA: Zero-Shot Creative Long Animation Generation with Short Video Model", section 4.4
("Noise travel (augmented with noise init)"), Eq. 9 and Fig. 3.

With windowed / co-denoised long videos, overlapping windows pull a shared frame toward different
results, mostly in the first (high-noise) steps. Noise travel denoises a block of ``L`` steps (the *jump
length*), re-noises the result back to the noise level the block started from, and denoises the same block
again, so the second pass starts from a state in which the windows already saw each other's result. It is
only applied during early steps.

Eq. 9 is written for a DDPM (variance preserving) schedule::

    v_hat_t = sqrt(prod_{i=t-L+1}^{t} alpha_i) * v_{t-L} + sqrt(1 - prod alpha_i) * eps_struct

with ``eps_struct`` the pack's structured noise (Eq. 8, repeat-mask init). :func:`renoise` is the same
forward transition written in the sampling space of ComfyUI / k-diffusion (sigma space, and rectified flow);
see its docstring for the derivation.

Layouts: everything works on any tensor shape (``[T, C, H, W]`` for SD/AnimateDiff latents,
``[B, C, T, H, W]`` for native video latents); noise travel is frame-agnostic, so there is no
``frame_axis`` here -- the caller's ``noise_fn`` builds frame-structured noise.

The module is pure torch: no ComfyUI import. :func:`sample_with_travel` follows the k-diffusion sampler
contract (``model(x, sigma * s_in, **extra_args) -> denoised``) and wraps another k-diffusion sampler
function (``inner``), the way ComfyUI's restart sampler does (``KSAMPLER(fn, extra_options={...})``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

logger = logging.getLogger(__name__)

PARAMETERIZATIONS = ("eps", "flow")
"""Supported model parameterizations for :func:`renoise`.

``"eps"``: epsilon and v-prediction models in k-diffusion/ComfyUI sigma space (``x = x0 + sigma * eps``;
ComfyUI ``EPS`` and ``V_PREDICTION`` model_sampling). ``"flow"``: rectified flow, ComfyUI ``CONST``
(``x = (1 - sigma) * x0 + sigma * eps``; Wan, Hunyuan, LTX, Flux).
"""

DEFAULT_START = 0.0
DEFAULT_END = 0.3
DEFAULT_REPEATS = 1
DEFAULT_JUMP_FRACTION = 0.1

_SEED_MIX = 0x9E3779B97F4A7C15  # golden-ratio constant, mixes (seed, jump) into one 63-bit seed


# --------------------------------------------------------------------------------------------------
# Re-noising (Eq. 9 in sigma space)
# --------------------------------------------------------------------------------------------------


def validate_parameterization(parameterization: str) -> str:
    """Return ``parameterization`` if supported, else raise ``ValueError`` naming it."""
    if parameterization not in PARAMETERIZATIONS:
        raise ValueError(
            f"parameterization must be one of {PARAMETERIZATIONS}, got {parameterization!r}; use 'eps' for "
            "epsilon/v-prediction models (SD, AnimateDiff, SVD) and 'flow' for rectified-flow (CONST) "
            "models (Wan, Hunyuan, LTX)"
        )
    return parameterization


def renoise_coefficients(sigma_lo: float, sigma_hi: float, parameterization: str) -> tuple[float, float]:
    """Scalars ``(scale, noise_std)`` of the forward transition ``x_hi = scale * x_lo + noise_std * eps``.

    See :func:`renoise` for the derivation. Computed in float64 Python scalars. Raises ``ValueError`` when
    ``sigma_hi < sigma_lo``, a sigma is negative, or (flow) a sigma exceeds 1.
    """
    validate_parameterization(parameterization)
    lo, hi = float(sigma_lo), float(sigma_hi)
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo < 0.0 or hi < 0.0:
        raise ValueError(f"sigma_lo and sigma_hi must be finite and >= 0, got sigma_lo={lo}, sigma_hi={hi}")
    if hi < lo:
        raise ValueError(
            f"sigma_hi must be >= sigma_lo (re-noising only adds noise), got sigma_lo={lo}, sigma_hi={hi}; "
            "swap the arguments"
        )
    if hi == lo:
        return 1.0, 0.0
    if parameterization == "eps":
        return 1.0, math.sqrt(hi * hi - lo * lo)
    # flow
    if hi > 1.0:
        raise ValueError(
            f"sigma_hi must be in [0, 1] for a flow (CONST) model, got {hi}; use parameterization='eps' for "
            "epsilon/v-prediction models"
        )
    scale = (1.0 - hi) / (1.0 - lo)  # lo < hi <= 1, so 1 - lo > 0
    var = hi * hi - (lo * scale) ** 2
    return scale, math.sqrt(max(var, 0.0))


def renoise(
    x_lo: torch.Tensor, sigma_lo: float, sigma_hi: float, noise: torch.Tensor, parameterization: str
) -> torch.Tensor:
    """Re-noise ``x_lo`` (noise level ``sigma_lo``) forward to ``sigma_hi`` with ``noise`` (ZoLA Eq. 9).

    This is the exact forward transition ``q(x_hi | x_lo)`` of the model's noising process, so a sample of
    the true marginal at ``sigma_lo`` becomes a sample of the true marginal at ``sigma_hi``.

    ``"eps"`` (k-diffusion / ComfyUI EPS and V_PREDICTION; ``x_sigma = x0 + sigma * eps``)::

        x_hi = x_lo + sqrt(sigma_hi**2 - sigma_lo**2) * eps

    Derivation: with ``x_lo = x0 + sigma_lo * e1`` and independent ``e2``, ``x_lo + c * e2`` has noise
    variance ``sigma_lo**2 + c**2``; equal to ``sigma_hi**2`` for ``c = sqrt(sigma_hi**2 - sigma_lo**2)``.
    It is Eq. 9 rewritten: a VP latent ``z_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps`` maps to sigma space
    by ``x = z / sqrt(abar)``, ``sigma**2 = (1 - abar) / abar``; dividing Eq. 9 by ``sqrt(abar_t)`` with
    ``prod alpha = abar_t / abar_{t-L}`` gives ``x_t = x_{t-L} + sqrt(1/abar_t - 1/abar_{t-L}) eps`` and
    ``1/abar = 1 + sigma**2``.

    ``"flow"`` (rectified flow, ComfyUI CONST; ``x_sigma = (1 - sigma) * x0 + sigma * eps``)::

        c    = (1 - sigma_hi) / (1 - sigma_lo)
        x_hi = c * x_lo + sqrt(sigma_hi**2 - (c * sigma_lo)**2) * eps

    Derivation: ``c * x_lo = (1 - sigma_hi) x0 + c sigma_lo e1`` has the right signal coefficient; adding
    ``d * e2`` makes the noise variance ``(c sigma_lo)**2 + d**2 = sigma_hi**2``. ``d**2 >= 0`` because
    ``c <= 1`` and ``sigma_lo <= sigma_hi``. Both kernels compose: lo -> mid -> hi equals lo -> hi in
    distribution (scales multiply, variances add up to the same total).

    Edge cases: ``sigma_lo == sigma_hi`` returns ``x_lo`` unchanged (a copy); ``sigma_lo = 0`` is forward
    noising of a clean sample (``x0 + sigma eps`` / ``(1 - sigma) x0 + sigma eps``); flow ``sigma_hi = 1``
    returns pure ``noise`` (``c = 0``); flow ``sigma_lo = 1`` implies ``sigma_hi = 1`` (identity).

    Args:
        x_lo: latent at ``sigma_lo``, any shape (``[T, C, H, W]`` or ``[B, C, T, H, W]``), any float dtype.
        sigma_lo, sigma_hi: noise levels, ``0 <= sigma_lo <= sigma_hi`` (flow: ``<= 1``).
        noise: unit Gaussian (or structured, e.g. Eq. 8) noise, same shape as ``x_lo``; moved to
            ``x_lo``'s device and dtype.
        parameterization: ``"eps"`` or ``"flow"`` (see :data:`PARAMETERIZATIONS`).

    Returns:
        The re-noised latent, same shape/dtype/device as ``x_lo``.
    """
    if noise.shape != x_lo.shape:
        raise ValueError(f"noise must have the shape of x_lo {tuple(x_lo.shape)}, got {tuple(noise.shape)}")
    scale, std = renoise_coefficients(sigma_lo, sigma_hi, parameterization)
    if std == 0.0 and scale == 1.0:
        return x_lo.clone()
    noise = noise.to(device=x_lo.device, dtype=x_lo.dtype)
    if scale == 1.0:
        return x_lo + std * noise
    if scale == 0.0:
        return std * noise
    return scale * x_lo + std * noise


# --------------------------------------------------------------------------------------------------
# Plan
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Segment:
    """One uninterrupted run of the inner sampler, then an optional re-noise jump.

    The inner sampler runs steps ``start .. stop - 1``, i.e. over ``sigmas[start : stop + 1]``. If
    ``renoise_to`` is not ``None`` the result (at ``sigmas[stop]``) is then re-noised back to
    ``sigmas[renoise_to]`` with ``noise_fn(jump_index, shape)``.
    """

    start: int
    stop: int
    renoise_to: int | None = None
    jump_index: int | None = None

    @property
    def steps(self) -> int:
        """Number of sampling steps this segment runs."""
        return self.stop - self.start


def default_jump(num_steps: int) -> int:
    """Default jump length ``L = max(1, round(0.1 * num_steps))``.

    The paper gives no value ("several steps"). Tying ``L`` to the step count keeps the *noise-level*
    span of a jump about the same whatever the step count (10 % of the schedule), and with the default range
    ``[0, 0.3)`` gives about three jumps, i.e. ``~0.3 * num_steps * repeats`` extra model calls (+30 % for
    one repeat), which is the cost/benefit point we aim at: enough steps per block for the overlapping windows
    to exchange information before the jump (the paper's reason for ``L > 1``), cheap enough to leave on.
    """
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    return max(1, round(DEFAULT_JUMP_FRACTION * num_steps))


def validate_travel(
    num_steps: int,
    jump: int | None = None,
    start: float = DEFAULT_START,
    end: float = DEFAULT_END,
    repeats: int = DEFAULT_REPEATS,
) -> None:
    """Check noise-travel parameters; raise ``ValueError`` naming the bad input. Cheap, no tensors."""
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {num_steps!r}")
    if jump is not None and (isinstance(jump, bool) or not isinstance(jump, int) or jump < 0):
        raise ValueError(f"jump must be an integer >= 0 (0 disables noise travel), got {jump!r}")
    for name, value in (("start_percent", start), ("end_percent", end)):
        if not isinstance(value, (int, float)) or not math.isfinite(value) or not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be a fraction of the steps in [0, 1], got {value!r}")
    if start > end:
        raise ValueError(f"start_percent must be <= end_percent, got start_percent={start}, end_percent={end}; "
                         "swap them")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 0:
        raise ValueError(f"repeats must be an integer >= 0 (0 disables noise travel), got {repeats!r}")


def travel_plan(
    num_steps: int,
    jump: int | None = None,
    start: float = DEFAULT_START,
    end: float = DEFAULT_END,
    repeats: int = DEFAULT_REPEATS,
) -> list[Segment]:
    """The segments (step ranges to run and re-noise jumps) of noise travel (ZoLA Eq. 9, "early steps only").

    Sampling step ``i`` (``0 <= i < num_steps``) goes from ``sigmas[i]`` to ``sigmas[i + 1]``. Step ``i`` is
    *in the travel range* when ``start * num_steps <= i < end * num_steps`` (fractions of the steps). Blocks
    of ``L = jump`` steps are laid from the first step in the range: ``[a0, a0 + L), [a0 + L, a0 + 2L), ...``
    and a block travels only if all its steps lie in the range. After finishing a travelling block
    ``[a, a + L)`` the sample is re-noised from ``sigmas[a + L]`` back to ``sigmas[a]`` and the block is run
    again, ``repeats`` times; then sampling continues. Consecutive runs without a jump in between are merged
    into one :class:`Segment`.

    Model calls for a one-call-per-step sampler: ``num_steps + jumps * L * repeats``
    (:func:`count_model_calls`). ``jump = 0``, ``repeats = 0`` or a range too short for one block gives
    ``[Segment(0, num_steps)]``, i.e. plain sampling.

    Defaults (the paper gives none): ``jump=None`` -> :func:`default_jump` (``max(1, round(0.1 n))``);
    ``start = 0.0, end = 0.3`` -- the first 30 % of steps, where ZoLA says conflicts arise ("only ... at early
    denoising steps"), the high-noise phase in which layout and motion are fixed; ``repeats = 1`` (the
    paper's single "second chance").

    Example: ``travel_plan(10, jump=2, start=0, end=0.4)`` -> ``[Segment(0, 2, 0, 0), Segment(0, 4, 2, 1),
    Segment(2, 10)]``: steps 0,1 | 0,1,2,3 | 2..9, 14 model calls.
    """
    validate_travel(num_steps, jump, start, end, repeats)
    n = num_steps
    length = default_jump(n) if jump is None else jump
    if length == 0 or repeats == 0:
        return [Segment(0, n)]
    eps = 1e-9  # guards float products such as 0.3 * 10 = 3.0000000000000004
    first = max(0, math.ceil(start * n - eps))  # first step index i with i >= start * n
    stop_excl = min(n, math.ceil(end * n - eps))  # steps i < end * n are i < stop_excl
    segments: list[Segment] = []
    cursor = 0
    jump_index = 0
    a = first
    while a + length <= stop_excl:
        b = a + length
        for _ in range(repeats):
            segments.append(Segment(cursor, b, renoise_to=a, jump_index=jump_index))
            jump_index += 1
            cursor = a
        a = b
    segments.append(Segment(cursor, n))
    return segments


def visited_steps(plan: Sequence[Segment]) -> list[int]:
    """The step indices in the order the plan runs them (``sigmas[i] -> sigmas[i + 1]`` for each)."""
    return [i for seg in plan for i in range(seg.start, seg.stop)]


def count_model_calls(plan: Sequence[Segment], calls_per_step: float = 1) -> float:
    """Model evaluations of a plan: ``calls_per_step * total steps run``.

    For a one-call-per-step sampler (euler, euler_ancestral, dpmpp_2m, ...) this is exact and an int:
    ``steps + jumps * L * repeats``. For 2-call samplers (heun, dpmpp_sde) it is an upper bound, since they
    often take a single call on a final step to sigma 0. Also the total to give a progress bar.
    """
    total = sum(seg.steps for seg in plan) * calls_per_step
    return int(total) if float(total).is_integer() else total


def num_jumps(plan: Sequence[Segment]) -> int:
    """Number of re-noise jumps in a plan."""
    return sum(1 for seg in plan if seg.renoise_to is not None)


def _validate_plan(plan: Sequence[Segment], num_steps: int) -> None:
    if not plan:
        raise ValueError("plan must hold at least one Segment; build it with travel_plan(steps, ...)")
    if plan[0].start != 0 or plan[-1].stop != num_steps or plan[-1].renoise_to is not None:
        raise ValueError(
            f"plan must start at step 0 and end at step {num_steps} (len(sigmas) - 1) without a jump, got "
            f"{plan[0]} ... {plan[-1]}; build it with travel_plan({num_steps}, ...)"
        )
    for prev, seg in zip(plan, plan[1:], strict=False):
        if prev.renoise_to is None or seg.start != prev.renoise_to or not 0 <= seg.start < prev.stop:
            raise ValueError(f"plan segments do not chain: {prev} then {seg}")
        if seg.stop <= seg.start:
            raise ValueError(f"plan segment runs no steps: {seg}")


# --------------------------------------------------------------------------------------------------
# Noise
# --------------------------------------------------------------------------------------------------


def _jump_seed(seed: int, jump_index: int) -> int:
    return (int(seed) * _SEED_MIX + (jump_index + 1) * 0xBF58476D1CE4E5B9) % (2**63 - 1)


def iid_noise_fn(seed: int) -> Callable[[int, tuple[int, ...]], torch.Tensor]:
    """Default ``noise_fn``: i.i.d. unit Gaussian noise, CPU float32, keyed by ``(seed, jump_index)``.

    Each jump draws from its own generator seeded from ``(seed, jump_index)``, so a jump's noise does not
    depend on how many jumps came before (same seed -> bit-identical, different seed -> different).
    """

    def noise_fn(jump_index: int, shape: tuple[int, ...]) -> torch.Tensor:
        gen = torch.Generator(device="cpu")
        gen.manual_seed(_jump_seed(seed, jump_index))
        return torch.randn(tuple(shape), generator=gen, dtype=torch.float32, device="cpu")

    return noise_fn


# --------------------------------------------------------------------------------------------------
# Sampler wrapper
# --------------------------------------------------------------------------------------------------


def sample_with_travel(
    model: Callable[..., torch.Tensor],
    x: torch.Tensor,
    sigmas: torch.Tensor,
    extra_args: dict[str, Any] | None = None,
    callback: Callable[[dict[str, Any]], Any] | None = None,
    disable: bool | None = None,
    *,
    inner: Callable[..., torch.Tensor],
    inner_options: dict[str, Any] | None = None,
    plan: Sequence[Segment] | None = None,
    noise_fn: Callable[[int, tuple[int, ...]], torch.Tensor] | None = None,
    parameterization: str = "eps",
    check_interrupt: Callable[[], None] | None = None,
    seed: int | None = None,
) -> torch.Tensor:
    """k-diffusion sampler function that runs ``inner`` with noise travel (ZoLA section 4.4, Eq. 9).

    Contract (k-diffusion / ComfyUI ``KSAMPLER``): ``model(x, sigma * s_in, **extra_args) -> denoised``;
    ``x`` is the noisy latent at ``sigmas[0]`` (any layout: ``[T, C, H, W]`` or ``[B, C, T, H, W]``);
    ``sigmas`` is 1-D, descending, usually ending at 0. For each segment of ``plan`` it calls::

        x = inner(model, x, sigmas[a : b + 1], extra_args=extra_args, callback=remapped, disable=disable,
                  **inner_options)

    and between segments re-noises ``x`` from ``sigmas[b]`` back to ``sigmas[renoise_to]`` with
    :func:`renoise` and ``noise_fn(jump_index, tuple(x.shape))`` (Eq. 9: the caller passes the pack's
    structured Eq. 8 noise; default :func:`iid_noise_fn` seeded by ``seed``, else ``extra_args["seed"]``,
    else 0).

    Choices: the callback dict is a shallow copy with ``"i"`` replaced by a *global* step index that grows by
    one per inner step across segments (total = :func:`count_model_calls` ``(plan)``), so progress shows
    the true amount of work; the original sigma index is added as ``"sigma_index"``. A multistep sampler's
    history (dpmpp_2m, deis, ipndm, ...) restarts at every segment, because ``inner`` is called afresh: its
    first step after a jump is first-order, which is also correct, since the re-noised state is not on the
    old trajectory. ``check_interrupt`` (e.g. ComfyUI's ``throw_exception_if_processing_interrupted``) is
    called between segments. Deterministic for a fixed seed / ``noise_fn`` and a deterministic ``inner``.

    Args:
        plan: from :func:`travel_plan` for ``len(sigmas) - 1`` steps; ``None`` -> ``travel_plan`` defaults.
        inner_options: keyword options for ``inner`` (ComfyUI: ``inner_sampler.extra_options``).
        parameterization: ``"eps"`` or ``"flow"`` (see :func:`renoise`).

    Returns:
        The denoised latent at ``sigmas[-1]``, same shape as ``x``.
    """
    validate_parameterization(parameterization)
    if sigmas.ndim != 1 or sigmas.numel() < 2:
        raise ValueError(f"sigmas must be a 1-D tensor with >= 2 entries, got shape {tuple(sigmas.shape)}")
    num_steps = sigmas.numel() - 1
    if plan is None:
        plan = travel_plan(num_steps)
    _validate_plan(plan, num_steps)
    extra_args = {} if extra_args is None else extra_args
    inner_options = {} if inner_options is None else inner_options
    if noise_fn is None:
        if seed is None:
            seed = int(extra_args.get("seed", 0) or 0)
        noise_fn = iid_noise_fn(seed)
    sig = [float(s) for s in sigmas.detach().cpu().double()]

    done = 0  # global step counter across segments
    for k, seg in enumerate(plan):
        if k > 0 and check_interrupt is not None:
            check_interrupt()
        if callback is not None:

            def remapped(info: dict[str, Any], _offset: int = done, _start: int = seg.start) -> Any:
                out = dict(info)
                local = int(info.get("i", 0))
                out["i"] = _offset + local
                out["sigma_index"] = _start + local
                return callback(out)

            cb = remapped
        else:
            cb = None
        x = inner(
            model,
            x,
            sigmas[seg.start : seg.stop + 1],
            extra_args=extra_args,
            callback=cb,
            disable=disable,
            **inner_options,
        )
        done += seg.steps
        if seg.renoise_to is not None:
            noise = noise_fn(int(seg.jump_index or 0), tuple(x.shape))
            logger.debug(
                "noise travel jump %s: sigma %.4g -> %.4g", seg.jump_index, sig[seg.stop], sig[seg.renoise_to]
            )
            x = renoise(x, sig[seg.stop], sig[seg.renoise_to], noise, parameterization)
    return x
