"""An analytic "short video model": a Gaussian video prior with exact denoisers.

Purpose: a ground-truth benchmark for the long-video samplers of the pack (ZoLA section 4.4 denoising
path expansion, Gen-L-Video section 3.2 temporal co-denoising, StreamingT2V section 4.3 randomized
blending). Those methods run a *short* video model on windows of a long video and merge the results;
here the short model is the exact denoiser of a window's marginal under a known distribution, so
the quality of a merge scheme can be measured exactly (covariance of its samples vs. the truth)
without any network. The full-video exact denoiser is the upper bound.

Model. Videos ``x`` of ``T`` frames x ``D`` features, zero mean, features i.i.d., temporal covariance
``K`` (``T x T``): ``x[:, d] ~ N(0, K)``. ``K`` is a stationary kernel, a mixture of a squared-exponential
(correlation length ``length_scale`` frames), a periodic kernel (period ``period`` frames, the "slow periodic
component") and a constant (a per-feature global content value ``c_d ~ N(0, g)`` shared by every frame):
``K(s, t) = (1 - a - g) exp(-(s - t)^2 / (2 l^2)) + a exp(-2 sin^2(pi (s - t) / p) / l_p^2) + g``, unit variance.
The easy case has ``l`` longer than a window and ``g = 0``; the hard case has ``l`` much shorter than a window
and a large ``g``: a window sees the global value only through its own frames, mixed with their local variation,
so windows that do not share frames drift apart in it (:func:`content_drift`).

Denoiser. Variance-exploding / k-diffusion parameterisation ``x_sigma = x0 + sigma * eps`` (EDM,
Karras et al. 2022, Eq. 1 setting). For a window ``S`` the posterior mean is the Wiener filter
``E[x0_S | x_sigma,S] = K_SS (K_SS + sigma^2 I)^-1 x_sigma,S``: Gaussian conditioning, the same formula for
every feature column. The probability-flow ODE ``dx/dsigma = (x - D(x; sigma)) / sigma`` (EDM Eq. 3 with
``sigma(t) = t``) is integrated by Euler steps on the Karras schedule (EDM Eq. 5).

Layout. Videos are ``[..., T, D]`` (frame axis -2, feature axis -1); batches go in front. The
``T x T`` matrices here are the spec (the kernel itself), not a memory leak. Randomness: only
:meth:`GaussianVideoPrior.sample`, with an explicit CPU ``torch.Generator`` or int seed, standard
normals drawn in float32 on CPU, then float64 math.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from collections.abc import Callable, Sequence

import torch

logger = logging.getLogger(__name__)

__all__ = [
    "Denoiser",
    "GaussianVideoPrior",
    "content_drift",
    "covariance_content_drift",
    "covariance_distance",
    "covariance_jump_profile",
    "covariance_repetition_score",
    "euler_sample",
    "heun_sample",
    "jump_profile",
    "karras_sigmas",
    "linear_output_covariance",
    "repetition_score",
    "temporal_covariance",
    "validate_prior_params",
]

Denoiser = Callable[[torch.Tensor, float], torch.Tensor]
"""``denoise(x [..., S, D], sigma) -> x0_hat [..., S, D]``."""

_CACHE_SIZE = 4096


def validate_prior_params(
    num_frames: int,
    features: int,
    length_scale: float,
    period: float,
    periodic_weight: float,
    periodic_length_scale: float,
    global_weight: float = 0.0,
) -> None:
    """Validate :class:`GaussianVideoPrior` parameters (raises ``ValueError`` naming the parameter)."""
    if not (isinstance(num_frames, int) and num_frames >= 1):
        raise ValueError(f"num_frames must be an integer >= 1, got {num_frames}")
    if not (isinstance(features, int) and features >= 1):
        raise ValueError(f"features must be an integer >= 1, got {features}")
    if not (length_scale > 0 and math.isfinite(length_scale)):
        raise ValueError(f"length_scale must be a finite number of frames > 0, got {length_scale}")
    if not (period > 0 and math.isfinite(period)):
        raise ValueError(f"period must be a finite number of frames > 0, got {period}")
    if not 0.0 <= periodic_weight <= 1.0:
        raise ValueError(f"periodic_weight must be in [0, 1], got {periodic_weight}")
    if not (periodic_length_scale > 0 and math.isfinite(periodic_length_scale)):
        raise ValueError(f"periodic_length_scale must be > 0, got {periodic_length_scale}")
    if not 0.0 <= global_weight <= 1.0 - periodic_weight:
        raise ValueError(
            f"global_weight must be in [0, 1 - periodic_weight = {1.0 - periodic_weight:g}], got {global_weight}"
        )


def _generator(generator: torch.Generator | int) -> torch.Generator:
    if isinstance(generator, torch.Generator):
        if generator.device.type != "cpu":
            raise ValueError(f"generator must be a CPU torch.Generator, got device {generator.device}")
        return generator
    if isinstance(generator, int) and not isinstance(generator, bool):
        g = torch.Generator(device="cpu")
        g.manual_seed(generator)
        return g
    raise ValueError(
        f"generator must be a CPU torch.Generator or an int seed, got {type(generator).__name__}"
    )


def _sigma_float(sigma: float | torch.Tensor) -> float:
    if isinstance(sigma, torch.Tensor):
        if sigma.numel() == 0:
            raise ValueError("sigma must be a scalar, got an empty tensor")
        flat = sigma.detach().reshape(-1)
        if flat.numel() > 1 and not bool((flat == flat[0]).all()):
            raise ValueError("sigma must be one value for the whole batch (per-sample sigmas not supported)")
        sigma = float(flat[0])
    sigma = float(sigma)
    if not (sigma >= 0 and math.isfinite(sigma)):
        raise ValueError(f"sigma must be a finite number >= 0, got {sigma}")
    return sigma


class GaussianVideoPrior:
    """Zero-mean Gaussian distribution over videos ``[T, D]`` with known temporal covariance ``K``.

    Args:
        num_frames: T.
        features: D (i.i.d. feature columns, e.g. flattened latent channels x pixels).
        length_scale: squared-exponential correlation length in frames (pick > the window length so
            that windows that see only themselves lose real long-range structure).
        period: period of the periodic component, in frames.
        periodic_weight: mixture weight ``a`` of the periodic kernel, in [0, 1].
        periodic_length_scale: ``l_p`` of the periodic kernel (smaller = sharper periodic peaks).
        global_weight: ``g``, variance of the per-feature constant shared by all frames (default 0 = none);
            ``periodic_weight + global_weight <= 1``.
        jitter: diagonal nugget added to ``K`` (``K`` then has variance ``1 + jitter``); default 1e-6
            keeps the near-low-rank squared-exponential kernel numerically positive definite.

    Denoisers are cached per window *shape*: the kernel is stationary, so ``K_SS`` depends only on the
    offsets ``S - S[0]``; a ZoLA window shifted by ``k`` reuses the matrices of the unshifted one.
    """

    def __init__(
        self,
        num_frames: int,
        features: int,
        length_scale: float = 24.0,
        period: float = 40.0,
        periodic_weight: float = 0.3,
        periodic_length_scale: float = 1.0,
        jitter: float = 1e-6,
        global_weight: float = 0.0,
    ) -> None:
        validate_prior_params(
            num_frames, features, length_scale, period, periodic_weight, periodic_length_scale, global_weight
        )
        if not jitter >= 0:
            raise ValueError(f"jitter must be >= 0, got {jitter}")
        self.num_frames = num_frames
        self.features = features
        self.length_scale = float(length_scale)
        self.period = float(period)
        self.periodic_weight = float(periodic_weight)
        self.periodic_length_scale = float(periodic_length_scale)
        self.global_weight = float(global_weight)
        self.jitter = float(jitter)
        self._cov = self.kernel(
            torch.arange(num_frames, dtype=torch.float64).view(-1, 1)
            - torch.arange(num_frames, dtype=torch.float64).view(1, -1)
        )
        self._cov = self._cov + self.jitter * torch.eye(num_frames, dtype=torch.float64)
        evals, evecs = torch.linalg.eigh(self._cov)
        self._sqrt = evecs * evals.clamp_min(0.0).sqrt()  # K = L L^T
        self._eig_cache: dict[tuple[int, ...], tuple[torch.Tensor, torch.Tensor]] = {}
        self._filter_cache: OrderedDict[tuple[tuple[int, ...], float], torch.Tensor] = OrderedDict()

    # ---------------------------------------------------------------- distribution
    def kernel(self, lag: torch.Tensor) -> torch.Tensor:
        """Stationary kernel ``k(lag)`` (float64) without the nugget; ``lag`` in frames, any shape."""
        lag = lag.to(torch.float64)
        a = self.periodic_weight
        se = torch.exp(-0.5 * (lag / self.length_scale) ** 2)
        per = torch.exp(-2.0 * torch.sin(math.pi * lag / self.period) ** 2 / self.periodic_length_scale**2)
        if self.global_weight == 0.0:  # the easy case's kernel, bit for bit
            return (1.0 - a) * se + a * per
        return (1.0 - a - self.global_weight) * se + a * per + self.global_weight

    def covariance(self) -> torch.Tensor:
        """The true temporal covariance ``K`` ``[T, T]`` float64 (a copy)."""
        return self._cov.clone()

    def sample(self, n: int, generator: torch.Generator | int) -> torch.Tensor:
        """Draw ``n`` videos ``[n, T, D]`` float64: ``x = L z`` with ``L L^T = K`` (symmetric
        eigendecomposition, robust for the near-singular kernel), ``z`` standard normal drawn on CPU in
        float32 from ``generator`` (same seed => bit-identical)."""
        if not (isinstance(n, int) and n >= 1):
            raise ValueError(f"n must be an integer >= 1 (number of videos), got {n}")
        z = torch.randn(
            n, self.num_frames, self.features, generator=_generator(generator), dtype=torch.float32
        )
        return torch.einsum("st,ntd->nsd", self._sqrt, z.to(torch.float64))

    # ---------------------------------------------------------------- denoisers
    def _check_indices(self, indices: Sequence[int]) -> tuple[int, ...]:
        idx = tuple(int(i) for i in indices)
        if not idx:
            raise ValueError("indices must name at least one frame")
        if min(idx) < 0 or max(idx) >= self.num_frames:
            raise ValueError(f"indices must be frame indices in [0, {self.num_frames - 1}], got {list(idx)}")
        if len(set(idx)) != len(idx):
            raise ValueError(f"indices must not repeat a frame, got {list(idx)}")
        return idx

    def _window_eig(self, offsets: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        hit = self._eig_cache.get(offsets)
        if hit is None:
            pos = torch.tensor(offsets, dtype=torch.float64)
            k_ss = self.kernel(pos.view(-1, 1) - pos.view(1, -1))
            k_ss = k_ss + self.jitter * torch.eye(len(offsets), dtype=torch.float64)
            evals, evecs = torch.linalg.eigh(k_ss)
            hit = (evals.clamp_min(0.0), evecs)
            if len(self._eig_cache) >= _CACHE_SIZE:
                self._eig_cache.clear()
            self._eig_cache[offsets] = hit
        return hit

    def filter_matrix(self, indices: Sequence[int], sigma: float | torch.Tensor) -> torch.Tensor:
        """``A_S(sigma) = K_SS (K_SS + sigma^2 I)^-1`` ``[|S|, |S|]`` float64 (the linear map of the exact
        window denoiser). Built from the cached eigendecomposition ``K_SS = U diag(l) U^T`` as
        ``U diag(l / (l + sigma^2)) U^T`` (no explicit inverse, stable for tiny sigma); ``sigma = 0`` gives
        ``I``. LRU-cached per (window offsets, sigma)."""
        idx = self._check_indices(indices)
        s = _sigma_float(sigma)
        offsets = tuple(i - idx[0] for i in idx)
        key = (offsets, s)
        hit = self._filter_cache.get(key)
        if hit is not None:
            self._filter_cache.move_to_end(key)
            return hit
        if s == 0.0:
            mat = torch.eye(len(idx), dtype=torch.float64)
        else:
            evals, evecs = self._window_eig(offsets)
            mat = (evecs * (evals / (evals + s * s))) @ evecs.T
        self._filter_cache[key] = mat
        if len(self._filter_cache) > _CACHE_SIZE:
            self._filter_cache.popitem(last=False)
        return mat

    def window_denoiser(self, indices: Sequence[int]) -> Denoiser:
        """Exact denoiser of the marginal of the frames ``indices`` (the "short video model" that sees
        only its window): ``D_S(x_S, sigma) = K_SS (K_SS + sigma^2 I)^-1 x_S``.

        The returned callable takes ``x_window [..., |S|, D]`` (frames in the order of ``indices``) and a
        scalar ``sigma`` (float or a tensor of equal values, k-diffusion passes ``sigma * s_in``) and
        returns the posterior mean in ``x_window``'s dtype (math in float64).
        """
        idx = self._check_indices(indices)

        def denoise(x: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
            if x.ndim < 2 or x.shape[-2] != len(idx):
                raise ValueError(
                    f"x must be [..., {len(idx)}, D] (frames of the window on axis -2), got {tuple(x.shape)}"
                )
            mat = self.filter_matrix(idx, sigma)
            out = torch.einsum("st,...td->...sd", mat.to(x.device), x.to(torch.float64))
            return out.to(x.dtype)

        return denoise

    def full_denoiser(self) -> Denoiser:
        """Exact denoiser over all ``T`` frames (the upper bound any window scheme can reach)."""
        return self.window_denoiser(range(self.num_frames))


# -------------------------------------------------------------------- sampling
def karras_sigmas(
    n: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0
) -> torch.Tensor:
    """Karras et al. (EDM) Eq. 5 noise levels ``[n + 1]`` float64, descending, with a final 0 appended
    (as k-diffusion's ``get_sigmas_karras``)."""
    if not (isinstance(n, int) and n >= 1):
        raise ValueError(f"n must be an integer >= 1 (number of steps), got {n}")
    if not 0 < sigma_min < sigma_max:
        raise ValueError(f"need 0 < sigma_min < sigma_max, got sigma_min={sigma_min}, sigma_max={sigma_max}")
    if not rho > 0:
        raise ValueError(f"rho must be > 0 (EDM default 7), got {rho}")
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    sigmas = (hi + ramp * (lo - hi)) ** rho
    return torch.cat([sigmas, sigmas.new_zeros(1)])


def _check_sigmas(sigmas: torch.Tensor | Sequence[float]) -> list[float]:
    sig = [float(s) for s in (sigmas.tolist() if isinstance(sigmas, torch.Tensor) else sigmas)]
    if len(sig) < 2:
        raise ValueError(f"sigmas must hold at least 2 noise levels, got {len(sig)}")
    if any(b > a for a, b in zip(sig[:-1], sig[1:], strict=True)) or sig[-1] < 0:
        raise ValueError("sigmas must be non-increasing and >= 0 (e.g. karras_sigmas(n))")
    return sig


def euler_sample(
    denoise: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor | Sequence[float],
    callback: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """Deterministic Euler solver of the probability-flow ODE (EDM Eq. 3; k-diffusion ``sample_euler``
    with ``s_churn = 0``): ``d = (x - D(x; sigma_i)) / sigma_i``, ``x <- x + d (sigma_{i+1} - sigma_i)``.

    Args:
        denoise: ``denoise(x, sigma) -> x0_hat`` (any layout, e.g. ``[..., T, D]``).
        x: initial noise, already scaled by ``sigmas[0]``.
        sigmas: descending noise levels (usually :func:`karras_sigmas`, ending in 0).
        callback: called as ``callback(i, x, denoised)`` after each step (e.g. for a benchmark trace).
    Returns:
        the final sample, same shape and dtype as ``x``.
    """
    sig = _check_sigmas(sigmas)
    for i in range(len(sig) - 1):
        if sig[i] == 0.0:
            break
        denoised = denoise(x, sig[i])
        d = (x - denoised) / sig[i]
        x = x + d * (sig[i + 1] - sig[i])
        if callback is not None:
            callback(i, x, denoised)
    return x


def heun_sample(
    denoise: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor | Sequence[float],
    callback: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """Deterministic Heun (2nd order) solver of the probability-flow ODE, EDM Algorithm 1 with
    ``S_churn = 0`` (k-diffusion ``sample_heun``); the last step to ``sigma = 0`` is an Euler step. Two
    denoiser calls per step, much smaller discretisation error than :func:`euler_sample`, so a
    benchmark can separate solver error from merge-scheme error. Same arguments as
    :func:`euler_sample`."""
    sig = _check_sigmas(sigmas)
    for i in range(len(sig) - 1):
        if sig[i] == 0.0:
            break
        denoised = denoise(x, sig[i])
        d = (x - denoised) / sig[i]
        dt = sig[i + 1] - sig[i]
        if sig[i + 1] == 0.0:
            x = x + d * dt
        else:
            x_2 = x + d * dt
            d_2 = (x_2 - denoise(x_2, sig[i + 1])) / sig[i + 1]
            x = x + 0.5 * (d + d_2) * dt
        if callback is not None:
            callback(i, x, denoised)
    return x


def linear_output_covariance(
    sampler: Callable[[torch.Tensor], torch.Tensor], num_frames: int, sigma_max: float
) -> torch.Tensor:
    """Exact output covariance of a *linear, deterministic, feature-wise* sampler started from
    ``N(0, sigma_max^2 I)``.

    If ``sampler(x) = M x`` on ``[T, D]`` (the same map on every feature column, no randomness, as Euler +
    any window merge of exact denoisers with fixed windows), the samples have covariance
    ``sigma_max^2 M M^T``. Computed by running ``sampler`` once on ``x = sigma_max * I_T`` laid out as
    ``[T, T]`` (T frames x T "features"): the output is ``sigma_max M``. No sampling noise, so the
    benchmark can compare schemes exactly. Randomised schemes (ZoLA's random window shifts) are not
    linear-deterministic; estimate their covariance from samples with :func:`temporal_covariance`.

    Returns:
        ``[T, T]`` float64.
    """
    if not (isinstance(num_frames, int) and num_frames >= 1):
        raise ValueError(f"num_frames must be an integer >= 1, got {num_frames}")
    if not sigma_max > 0:
        raise ValueError(f"sigma_max must be > 0, got {sigma_max}")
    basis = sigma_max * torch.eye(num_frames, dtype=torch.float64)
    out = sampler(basis).to(torch.float64)
    if out.shape != basis.shape:
        raise ValueError(
            f"sampler must map [T, D] to [T, D]; got {tuple(out.shape)} for input {tuple(basis.shape)}"
        )
    return out @ out.T


# -------------------------------------------------------------------- metrics
def temporal_covariance(videos: torch.Tensor) -> torch.Tensor:
    """Empirical temporal covariance ``[T, T]`` float64 of videos ``[N, T, D]`` (or ``[T, D]``):
    ``C = sum_{n,d} x[n, :, d] x[n, :, d]^T / (N D)``. Choice: no mean subtraction, because the prior is
    zero-mean by construction (unbiased, and a sampler that adds a mean offset is penalised)."""
    if videos.ndim == 2:
        videos = videos.unsqueeze(0)
    if videos.ndim != 3:
        raise ValueError(f"videos must be [N, T, D] or [T, D], got {tuple(videos.shape)}")
    x = videos.to(torch.float64)
    return torch.einsum("nsd,ntd->st", x, x) / (x.shape[0] * x.shape[2])


def covariance_distance(k_emp: torch.Tensor, k_true: torch.Tensor) -> float:
    """Relative Frobenius distance ``||K_emp - K_true||_F / ||K_true||_F``.

    Sampling noise: for :func:`temporal_covariance` over ``N_eff = N D`` independent columns,
    ``Var(C_st) = (K_st^2 + K_ss K_tt) / N_eff`` (Wishart), so
    ``E ||C - K||_F^2 = (||K||_F^2 + tr(K)^2) / N_eff``
    and the distance from noise alone is about ``sqrt(1 + tr(K)^2 / ||K||_F^2) / sqrt(N_eff)``.
    """
    if k_emp.shape != k_true.shape or k_true.ndim != 2:
        raise ValueError(
            f"k_emp and k_true must be [T, T] of equal shape, got {tuple(k_emp.shape)}, {tuple(k_true.shape)}"
        )
    k_true = k_true.to(torch.float64)
    return float(torch.linalg.norm(k_emp.to(torch.float64) - k_true) / torch.linalg.norm(k_true))


def repetition_score(videos: torch.Tensor, lag: int) -> float:
    """Normalised lag correlation of videos ``[N, T, D]`` (or ``[T, D]``):
    ``sum x_t x_{t+lag} / sqrt(sum x_t^2 * sum x_{t+lag}^2)`` over samples, frames and features. No mean
    subtraction (zero-mean prior). High at ``lag = period`` means a repeating video; compare against
    :func:`covariance_repetition_score` of the true ``K`` to see whether a sampler over- or
    under-repeats."""
    if videos.ndim == 2:
        videos = videos.unsqueeze(0)
    if videos.ndim != 3:
        raise ValueError(f"videos must be [N, T, D] or [T, D], got {tuple(videos.shape)}")
    t = videos.shape[1]
    if not (isinstance(lag, int) and 1 <= lag <= t - 1):
        raise ValueError(f"lag must be an integer in [1, {t - 1}] frames, got {lag}")
    x = videos.to(torch.float64)
    a, b = x[:, :-lag], x[:, lag:]
    den = torch.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if float(den) > 0 else 0.0


def covariance_repetition_score(cov: torch.Tensor, lag: int) -> float:
    """Population value of :func:`repetition_score` for covariance ``cov`` ``[T, T]``:
    ``sum_t K[t, t+lag] / sqrt(sum_t K[t, t] * sum_t K[t+lag, t+lag])`` (ratio of expectations)."""
    t = cov.shape[0]
    if cov.ndim != 2 or cov.shape[1] != t:
        raise ValueError(f"cov must be [T, T], got {tuple(cov.shape)}")
    if not (isinstance(lag, int) and 1 <= lag <= t - 1):
        raise ValueError(f"lag must be an integer in [1, {t - 1}] frames, got {lag}")
    k = cov.to(torch.float64)
    diag = torch.diagonal(k)
    num = torch.diagonal(k, offset=lag).sum()
    den = torch.sqrt(diag[:-lag].sum() * diag[lag:].sum())
    return float(num / den) if float(den) > 0 else 0.0


def jump_profile(videos: torch.Tensor) -> torch.Tensor:
    """Mean squared adjacent-frame change ``J[t] = mean (x_{t+1} - x_t)^2`` over samples and features of videos
    ``[N, T, D]`` (or ``[T, D]``) -> ``float64 [T - 1]``. Compare with :func:`covariance_jump_profile` of the true
    ``K``: the ratio is 1 where a transition looks like the truth, > 1 at a visible seam, < 1 where the video is
    smoother than the truth."""
    if videos.ndim == 2:
        videos = videos.unsqueeze(0)
    if videos.ndim != 3 or videos.shape[1] < 2:
        raise ValueError(f"videos must be [N, T, D] or [T, D] with T >= 2, got {tuple(videos.shape)}")
    x = videos.to(torch.float64)
    return ((x[:, 1:] - x[:, :-1]) ** 2).mean(dim=(0, 2))


def covariance_jump_profile(cov: torch.Tensor) -> torch.Tensor:
    """Population value of :func:`jump_profile` for covariance ``cov`` ``[T, T]``:
    ``J[t] = C[t, t] + C[t+1, t+1] - 2 C[t, t+1]`` -> ``float64 [T - 1]``."""
    if cov.ndim != 2 or cov.shape[0] != cov.shape[1] or cov.shape[0] < 2:
        raise ValueError(f"cov must be [T, T] with T >= 2, got {tuple(cov.shape)}")
    c = cov.to(torch.float64)
    d = torch.diagonal(c)
    return d[:-1] + d[1:] - 2.0 * torch.diagonal(c, offset=1)


def _check_window(num_frames: int, window: int) -> None:
    if not (isinstance(window, int) and 1 <= window <= num_frames):
        raise ValueError(f"window must be an integer number of frames in [1, {num_frames}], got {window}")


def content_drift(videos: torch.Tensor, window: int) -> float:
    """Share of (video, feature) columns whose global content differs between the first and the last window:
    the sign of the mean over frames ``0..window-1`` differs from the sign of the mean over the last ``window``
    frames. 0 = every column keeps its content, 0.5 = the two ends are independent (what windows that never share
    frames give). Videos ``[N, T, D]`` or ``[T, D]``."""
    if videos.ndim == 2:
        videos = videos.unsqueeze(0)
    if videos.ndim != 3:
        raise ValueError(f"videos must be [N, T, D] or [T, D], got {tuple(videos.shape)}")
    _check_window(videos.shape[1], window)
    x = videos.to(torch.float64)
    first, last = x[:, :window].mean(dim=1), x[:, -window:].mean(dim=1)
    return float((torch.sign(first) != torch.sign(last)).double().mean())


def covariance_content_drift(cov: torch.Tensor, window: int) -> float:
    """Population value of :func:`content_drift` for zero-mean Gaussian videos of covariance ``cov`` ``[T, T]``:
    the two window means are jointly Gaussian with correlation ``rho`` (from ``cov``), and two such variables differ
    in sign with probability ``arccos(rho) / pi`` (Sheppard's formula). Exact for a linear sampler's output
    covariance (:func:`linear_output_covariance`)."""
    if cov.ndim != 2 or cov.shape[0] != cov.shape[1]:
        raise ValueError(f"cov must be [T, T], got {tuple(cov.shape)}")
    t = cov.shape[0]
    _check_window(t, window)
    c = cov.to(torch.float64)
    a, b = slice(0, window), slice(t - window, t)
    cab, caa, cbb = c[a, b].sum(), c[a, a].sum(), c[b, b].sum()
    den = math.sqrt(max(float(caa), 0.0) * max(float(cbb), 0.0))
    if den <= 0.0:
        return 0.5
    rho = max(-1.0, min(1.0, float(cab) / den))
    return math.acos(rho) / math.pi
