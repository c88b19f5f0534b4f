"""Deterministic (DDIM / Euler ODE) inversion of a long video (pure layer).

Paper
-----
Gen-L-Video (``gen-l-video.txt``), Fig. 1 (right) and sec. 3.1 "DDIM": a given long video is inverted into an
approximate initial noise by running the deterministic DDIM ODE backwards, with the long-video (co-denoised)
model as the denoiser; sampling from that noise with new prompts edits the video. The DDIM inversion step
(sec. 3.1)::

    x_{t+dt} / sqrt(a_{t+dt}) = x_t / sqrt(a_t) + (sqrt((1-a_{t+dt})/a_{t+dt}) - sqrt((1-a_t)/a_t)) eps(x_t, t)

Conventions (k-diffusion / ComfyUI "model space")
-------------------------------------------------
``denoise(x, sigma) -> x0_hat`` is the denoiser D of k-diffusion (what a ComfyUI guider returns). With
``sigma = sqrt((1-a)/a)`` and ``x = x_t / sqrt(a_t)`` the DDIM step above is the Euler step of the probability-flow
ODE ``dx/dsigma = (x - D(x, sigma)) / sigma`` (Karras et al. 2022), so one code serves:

- EPS / V-prediction models (SD1.5, AnimateDiff): ``x = x0 + sigma * eps``, sigma in ``(0, sigma_max]``
  (about 14.6 for SD1.5);
- flow models (ComfyUI ``CONST``: Wan, Hunyuan, LTX): ``x = (1 - sigma) x0 + sigma * eps``, sigma in ``[0, 1]``;
  ``(x - D) / sigma`` is then the flow velocity ``eps - x0`` and the Euler step is the rectified-flow step.

Sampling with ComfyUI's ``euler`` (and ``ddim``, which is euler) over DESCENDING sigmas
``s_0 > s_1 > ... > s_N = 0`` does ``x_{k+1} = x_k + (s_{k+1} - s_k) d(x_k, s_k)`` with ``d = (x - D(x, s)) / s``.
Inversion walks the same sigmas ASCENDING. Its step ``s_{k+1} -> s_k`` must undo the sampler's step, which needs
``d(x_k, s_k)`` at the unknown ``x_k``. DDIM inversion (Mokady et al., cited by Gen-L as [37]) uses the known
point instead: ``x_k ~= x_{k+1} + (s_k - s_{k+1}) d(x_{k+1}, s_k)`` - the denoiser is called at the TARGET
(higher) sigma, which also avoids calling it at sigma = 0. The error per step is O(ds^2 * |dd/dx|), so the
reconstruction error shrinks as steps grow. ``fixed_point_iters > 0`` refines each step by fixed-point
iteration of the exact implicit equation ``x_k = x_{k+1} + (s_k - s_{k+1}) d(x_k, s_k)`` (converges when
``|ds| * Lip(d) < 1``), making inversion the exact inverse of the Euler sampler; 0 is the paper's DDIM
inversion.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch

logger = logging.getLogger(__name__)

Denoiser = Callable[[torch.Tensor, float], torch.Tensor]


def validate_inversion_sigmas(sigmas: torch.Tensor, name: str = "sigmas") -> None:
    """Inversion sigmas: 1-D, at least 2 values, strictly ascending, non-negative, finite."""
    if not isinstance(sigmas, torch.Tensor) or sigmas.ndim != 1 or sigmas.numel() < 2:
        raise ValueError(f"{name} must be a 1-D tensor of at least 2 noise levels (steps >= 1)")
    s = sigmas.detach().double().cpu()
    if not torch.isfinite(s).all() or (s < 0).any():
        raise ValueError(f"{name} must be finite and >= 0, got {s.tolist()}")
    if not (s[1:] > s[:-1]).all():
        raise ValueError(f"{name} must be strictly ascending (low -> high noise) for inversion; flip a sampler's "
                         f"descending schedule and drop repeated values, got {s.tolist()}")


def validate_steps(steps: int, fixed_point_iters: int = 0) -> None:
    if int(steps) < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if int(fixed_point_iters) < 0:
        raise ValueError(f"fixed_point_iterations must be >= 0, got {fixed_point_iters}")


def euler_invert(denoise: Denoiser, x0: torch.Tensor, sigmas: torch.Tensor, fixed_point_iters: int = 0,
                 callback: Callable[[int, int, torch.Tensor], None] | None = None,
                 check_interrupt: Callable[[], None] | None = None) -> torch.Tensor:
    """DDIM / Euler-ODE inversion: from ``x0`` at ``sigmas[0]`` up to ``sigmas[-1]`` (Gen-L sec. 3.1 step).

    ``denoise(x, sigma) -> x0_hat`` (k-diffusion D; sigma a python float), ``x0``: the clean (or
    ``sigmas[0]``-noisy) latent in model space, any layout (frames on any axis: the denoiser owns the windows).
    ``sigmas``: ASCENDING noise levels, ``sigmas[0]`` usually 0. Each step ``s -> s'`` does
    ``x' = x + (s' - s) * (x - D(x, s')) / s'`` (denoiser at the target sigma; see module doc), then
    ``fixed_point_iters`` refinements ``x' = x + (s' - s) * (x' - D(x', s')) / s'``.
    Costs ``len(sigmas) - 1`` (times ``1 + fixed_point_iters``) denoiser calls. Returns x at ``sigmas[-1]``
    (same shape and dtype as ``x0``). ``callback(step, total, x)`` after each step.
    """
    validate_inversion_sigmas(sigmas)
    validate_steps(1, fixed_point_iters)
    s = [float(v) for v in sigmas.detach().cpu().double()]
    total = len(s) - 1
    x = x0
    for i in range(total):
        if check_interrupt is not None:
            check_interrupt()
        lo, hi = s[i], s[i + 1]
        d = (x - denoise(x, hi)) / hi
        x_new = x + (hi - lo) * d
        for _ in range(int(fixed_point_iters)):
            if check_interrupt is not None:
                check_interrupt()
            x_new = x + (hi - lo) * (x_new - denoise(x_new, hi)) / hi
        x = x_new
        if callback is not None:
            callback(i + 1, total, x)
    return x


def euler_sample(denoise: Denoiser, x: torch.Tensor, sigmas: torch.Tensor,
                 check_interrupt: Callable[[], None] | None = None) -> torch.Tensor:
    """Reference deterministic Euler sampler over DESCENDING ``sigmas`` (ComfyUI/k-diffusion ``euler``, s_churn=0).

    ``x_{k+1} = x_k + (s_{k+1} - s_k) (x_k - D(x_k, s_k)) / s_k``. Used by tests to check that
    ``euler_sample(euler_invert(x0, flip(sigmas)), sigmas)`` reconstructs ``x0``.
    """
    validate_inversion_sigmas(sigmas.flip(0), "sigmas (descending)")
    s = [float(v) for v in sigmas.detach().cpu().double()]
    for i in range(len(s) - 1):
        if check_interrupt is not None:
            check_interrupt()
        hi, lo = s[i], s[i + 1]
        den = denoise(x, hi)
        x = den if lo == 0 else x + (lo - hi) * (x - den) / hi
    return x


def inversion_sigmas(descending: torch.Tensor) -> torch.Tensor:
    """A sampler's descending schedule (ending at 0) turned into inversion sigmas: flipped, duplicates dropped."""
    if descending.ndim != 1 or descending.numel() < 2:
        raise ValueError("sigmas must be a 1-D schedule of at least 2 values (steps >= 1)")
    asc = descending.detach().flip(0)
    keep = torch.ones_like(asc, dtype=torch.bool)
    keep[1:] = asc[1:] > asc[:-1]
    out = asc[keep]
    validate_inversion_sigmas(out)
    return out


def relative_error(x: torch.Tensor, ref: torch.Tensor) -> float:
    """``mean((x - ref)^2) / var(ref)``: reconstruction error relative to the video's variance."""
    ref = ref.detach().double()
    var = float(ref.var())
    return float(((x.detach().double() - ref) ** 2).mean()) / max(var, 1e-30)
