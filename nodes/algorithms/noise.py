"""Initial-noise algorithms for long videos (issue 3).

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

Also here: the registry :data:`NOISE_ALGORITHMS`, :func:`validate_noise_params`, the immutable
:class:`NoiseRecipe` passed between nodes, and pure preview helpers (:func:`frame_correlation`,
:func:`frame_stats`, :func:`render_noise_preview`).
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

logger = logging.getLogger(__name__)

__all__ = [
    "DEPENDENCY_ALPHA_MAX",
    "NOISE_ALGORITHMS",
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

#: Largest alpha the dependency linear search may try. Trials above it are rejected (as the NaN
#: from ``sqrt(1 - alpha)`` is in Listing 1), so alpha stays in [0, 1) and every frame keeps a fresh
#: component. 1 - 1e-6 also rejects 0.1 * 10 accumulated in floating point (0.9999999999999999).
DEPENDENCY_ALPHA_MAX = 1.0 - 1e-6

_DEPENDENCY_VARIANTS = ("algorithm1", "listing1")


# --------------------------------------------------------------------------------------------------
# shape helpers
# --------------------------------------------------------------------------------------------------


def _canonical(shape: Sequence[int], frame_axis: int) -> tuple[tuple[int, ...], int]:
    """Validate ``shape``/``frame_axis``; return the shape as a tuple and the non-negative axis."""
    try:
        dims = tuple(int(s) for s in shape)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"shape must be a sequence of positive ints, got {shape!r}") from exc
    if not dims or any(s < 1 for s in dims):
        raise ValueError(f"shape must be a non-empty sequence of positive ints, got {list(dims)}")
    nd = len(dims)
    if not isinstance(frame_axis, int) or isinstance(frame_axis, bool) or not -nd <= frame_axis < nd:
        raise ValueError(
            f"frame_axis must be an int in [{-nd}, {nd - 1}] for a {nd}-D shape, got {frame_axis!r}; "
            "use 0 for [T, C, H, W] latents and 2 for [B, C, T, H, W] latents"
        )
    return dims, frame_axis % nd


def _check_generator(generator: torch.Generator) -> None:
    if not isinstance(generator, torch.Generator) or generator.device.type != "cpu":
        raise ValueError(
            f"generator must be a CPU torch.Generator, got {generator!r}; "
            "create one with torch.Generator('cpu').manual_seed(seed)"
        )


def _with_frames(shape: tuple[int, ...], axis: int, frames: int) -> tuple[int, ...]:
    out = list(shape)
    out[axis] = frames
    return tuple(out)


def _randn(shape: Sequence[int], generator: torch.Generator) -> torch.Tensor:
    return torch.randn(tuple(shape), generator=generator, dtype=torch.float32, device="cpu")


def _take(x: torch.Tensor, axis: int, index: torch.Tensor) -> torch.Tensor:
    """``x.index_select(axis, index)`` via advanced indexing (index_select on an inner axis splits into
    many tiny parallel copies: measured 20x slower on [1, 16, 21, 60, 104] with 2 threads)."""
    return x[(slice(None),) * axis + (index,)]


@contextlib.contextmanager
def _serial_torch() -> Iterator[None]:
    """Run a frame recursion with one intra-op thread, restoring the previous count afterwards.

    The recursions below issue hundreds of small ops (one frame each). Intra-op parallelism buys almost
    nothing at that size, and on an oversubscribed CPU every parallel region waits for a descheduled
    worker: measured 256 x 4 x 64 x 64 dependency noise 1.0-1.3 s with 1 thread vs 10-22 s with 2
    threads on a loaded 2-core box. Random draws are serial in torch either way, so results are
    identical. ``torch.set_num_threads`` is process-wide for MKL; the window is the recursion only.
    """
    previous = torch.get_num_threads()
    if previous == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


# --------------------------------------------------------------------------------------------------
# generators
# --------------------------------------------------------------------------------------------------


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
    periodic_mask: bool = False,
) -> torch.Tensor:
    """ZoLA repeat-mask noise init, section 4.4, Eq. 8: ``v = (1 - m) * eps_long + m * repeat(eps_base)``.

    ``eps_long`` has the full shape (``T`` frames), ``eps_base`` has ``f = base_length`` frames and is
    tiled along the frame axis (frame ``j`` of ``repeat(eps_base)`` is base frame ``j mod f``). ``m`` is
    a frame-level 0/1 mask (one value per frame, broadcast over all other axes), so every output frame is
    either a fresh frame or a base frame and the marginals stay exactly N(0, 1).

    Choices the paper leaves open (it only says the noise is "randomly replaced ... in the frame level"):

    * Mask sampling: exactly ``n = floor(ratio * T + 0.5)`` masked frames, chosen uniformly without
      replacement (``torch.randperm``), rather than a Bernoulli(ratio) per frame, so the ratio the user
      sets is the fraction they get (ratio 0 => i.i.d., ratio 1 => exactly periodic with period ``f``)
      with no run-to-run variance.
    * Mask over all ``T`` frames (default) rather than one length-``f`` mask repeated per window: ZoLA's
      denoising windows are re-drawn with random offsets and skips, so window-aligned masks buy nothing,
      while a repeated mask would make the masked frames exactly periodic (more repeated motion, the
      failure the paper designs against). ``periodic_mask=True`` gives the literal reading of the paper's
      ``m in R^{f x 1 x 1 x 1}``: ``floor(ratio * f + 0.5)`` of the ``f`` phases are masked and the mask is
      tiled like the base noise.

    Draw order (generator): ``eps_long`` (so ratio 0 is bit-identical to :func:`iid_noise` with the same
    generator), then ``eps_base`` (``min(f, T)`` frames), then the mask permutation.

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
    num_frames: int, base_length: int, ratio: float, generator: torch.Generator, periodic: bool = False
) -> torch.Tensor:
    """Sorted int64 indices of the frames that take base noise in :func:`repeat_mask_noise` (ZoLA Eq. 8 m).

    Non-periodic: ``floor(ratio * num_frames + 0.5)`` frames uniformly without replacement (one
    ``randperm(num_frames)`` draw). Periodic: ``floor(ratio * base_length + 0.5)`` phases out of
    ``base_length`` (one ``randperm(base_length)`` draw), every frame whose index mod ``base_length`` is
    such a phase.
    """
    if periodic:
        n = int(math.floor(ratio * base_length + 0.5))
        phases = torch.randperm(base_length, generator=generator)[:n]
        is_masked = torch.zeros(base_length, dtype=torch.bool)
        is_masked[phases] = True
        return torch.nonzero(is_masked[torch.arange(num_frames) % base_length]).flatten()
    n = int(math.floor(ratio * num_frames + 0.5))
    return torch.randperm(num_frames, generator=generator)[:n].sort().values


def _per_transition_lams(lam: float | Sequence[float], num_frames: int) -> list[float]:
    """lam as one float per transition ``i-1 -> i`` (``num_frames - 1`` values)."""
    if isinstance(lam, (int, float)) and not isinstance(lam, bool):
        return [float(lam)] * max(num_frames - 1, 0)
    values = [float(v) for v in lam]
    if len(values) == num_frames:
        values = values[1:]
    return values


@dataclass(frozen=True)
class _PairMoments:
    """Scalar moments of ``x_a = sqrt(a) p + sqrt(1 - a) c`` against the previous frame ``p``.

    All are means over the ``N`` non-frame elements, ``w = exp(p)``: ``a_term = mean(p w)``,
    ``w_mean = mean(w)``, ``p_mean = mean(p)``, ``p_sq = mean(p^2)``, and for the candidate ``c``:
    ``b_term = mean(c w)``, ``c_mean``, ``c_sq = mean(c^2)``, ``pc = mean(p c)``.
    """

    a_term: float
    w_mean: float
    p_mean: float
    p_sq: float
    b_term: float
    c_mean: float
    c_sq: float
    pc: float

    def divergence(self, alpha: float, normalize: bool) -> float:
        """``mean(exp(p) (p - y))`` (= ``torch.kl_div(y, p, log_target=True).mean()``) for ``y = x_a``, or
        for ``y = (x_a - mean x_a) / std x_a`` when ``normalize`` -- exact algebra, no tensor work."""
        ra, rb = math.sqrt(alpha), math.sqrt(1.0 - alpha)
        wx = ra * self.a_term + rb * self.b_term  # mean(w x_a)
        if not normalize:
            return self.a_term - wx
        mean = ra * self.p_mean + rb * self.c_mean
        second = alpha * self.p_sq + (1.0 - alpha) * self.c_sq + 2.0 * ra * rb * self.pc
        std = math.sqrt(max(second - mean * mean, 1e-24))
        return self.a_term - (wx - mean * self.w_mean) / std

    def affine(self, alpha: float, normalize: bool) -> tuple[float, float, float]:
        """Coefficients ``(u, v, b)`` with the new frame ``= u * p + v * c + b``."""
        ra, rb = math.sqrt(alpha), math.sqrt(1.0 - alpha)
        if not normalize:
            return ra, rb, 0.0
        mean = ra * self.p_mean + rb * self.c_mean
        second = alpha * self.p_sq + (1.0 - alpha) * self.c_sq + 2.0 * ra * rb * self.pc
        std = math.sqrt(max(second - mean * mean, 1e-24))
        return ra / std, rb / std, -mean / std


def _linear_search(
    moments: _PairMoments, lam: float, iterations: int, variant: str, normalize: bool
) -> tuple[float, list[float]]:
    """Linear search of alpha (ZS^2 Algorithm 1 lines 10-17 / Listing 1 lines 35-46) on scalars.

    Returns the best accepted alpha and the best-so-far error ``|D - lam|`` after 0..iterations steps.
    """

    def error(a: float) -> float:
        return abs(moments.divergence(a, normalize) - lam)

    best_alpha = 0.0
    best = error(0.0)
    trace = [best]
    step = 0.1
    listing = variant == "listing1"
    shrink = 0.2 if listing else 0.5
    for _ in range(iterations):
        trial = best_alpha + step
        accept = False
        if trial <= DEPENDENCY_ALPHA_MAX:
            err = error(trial)
            accept = err <= best if listing else err < best
        if accept:
            best_alpha, best = trial, err
        else:
            step *= shrink
        trace.append(best)
    return best_alpha, trace


_SUFFICIENT_MIN_ELEMENTS = 1024
_GAUSSIAN_EXP_MOMENT = math.exp(0.5)  # E[z exp z] for z ~ N(0, 1)


class _SufficientCandidates:
    """Random-search candidates drawn through their sufficient statistics (exact in law, ~10x cheaper).

    The search only looks at ``s_k = V c_k`` with ``V = [exp(p); 1; p]`` (3 x N) and at ``|c_k|^2``. For
    ``c ~ N(0, I_N)``: ``s ~ N(0, G)`` with ``G = V V^T``, and ``|c|^2 = s^T G^-1 s + chi2(N - 3)`` with
    the chi-square independent of ``s``; given both, ``c`` is ``V^T G^-1 s`` plus a residual uniform on
    the sphere of the orthogonal complement. So each candidate costs 4 random numbers, and only the
    winner is built as a tensor (one ``randn(N)`` projected onto the complement and rescaled). The
    chi-square uses the Wilson-Hilferty transform of a normal (N >= 1024: CDF error < 1e-4).
    """

    def __init__(self, gram: torch.Tensor, chol: torch.Tensor, s: torch.Tensor, chi2: torch.Tensor, n: int):
        self.gram, self.chol, self.n = gram, chol, n
        self.coef = torch.cholesky_solve(s.T, chol).T  # G^-1 s_k, [K, 3]
        self.chi2 = chi2.tolist()
        q = ((s * self.coef).sum(dim=1) + chi2) / n
        s_n = (s / n).T.tolist()
        self.b, self.m, self.r = s_n[0], s_n[1], s_n[2]
        self.q = q.tolist()

    @classmethod
    def draw(cls, cols: torch.Tensor, k: int, generator: torch.Generator) -> _SufficientCandidates | None:
        n = cols.shape[1]
        v64 = cols.double()
        gram = v64 @ v64.T
        chol, info = torch.linalg.cholesky_ex(gram)
        if int(info) != 0:  # degenerate previous frame (e.g. constant): caller draws full candidates
            return None
        z = torch.randn((k, 3), generator=generator, dtype=torch.float32).double()
        nu = n - 3
        h = 2.0 / (9.0 * nu)
        x = torch.randn(k, generator=generator, dtype=torch.float32).double()
        chi2 = nu * (1.0 - h + x * math.sqrt(h)).clamp_min(0.0) ** 3
        return cls(gram, chol, z @ chol.T, chi2, n)

    def frame_moments(self) -> tuple[float, float, float, float]:
        """(mean(p e^p), mean(e^p), mean(p), mean(p^2)) from the Gram matrix."""
        g = (self.gram / self.n).tolist()
        return g[2][0], g[1][0], g[2][1], g[2][2]

    def compose(
        self,
        best: int,
        u: float,
        v: float,
        b: float,
        cols: torch.Tensor,
        generator: torch.Generator,
        fresh: torch.Tensor,
        out: torch.Tensor,
    ) -> None:
        """``out = u * p + v * c_best + b`` with ``c_best`` realized from its statistics."""
        torch.randn(fresh.shape, generator=generator, out=fresh)
        g64 = fresh.double()
        vg = cols.double() @ g64
        proj_t = torch.cholesky_solve(vg[:, None], self.chol)[:, 0]
        resid_sq = float(g64 @ g64) - float(proj_t @ vg)  # |g - V^T G^-1 V g|^2
        proj = proj_t.tolist()
        rho = math.sqrt(self.chi2[best] / max(resid_sq, 1e-12))
        a0, a1, a2 = self.coef[best].tolist()
        # c = a0 w + a1 + a2 p + rho * (g - proj0 w - proj1 - proj2 p)
        cw, c1, cp = a0 - rho * proj[0], a1 - rho * proj[1], a2 - rho * proj[2]
        torch.mul(cols[2], u + v * cp, out=out)
        out.add_(cols[0], alpha=v * cw)
        out.add_(fresh, alpha=v * rho)
        out.add_(v * c1 + b)


def dependency_noise_with_stats(
    shape: Sequence[int],
    frame_axis: int,
    generator: torch.Generator,
    lam: float | Sequence[float] = 0.01,
    candidates: int = 10,
    iterations: int = 15,
    variant: str = "algorithm1",
    normalize: bool = True,
    full_candidates: bool = False,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """ZS^2 dependency noise model (section 3.1, Eq. 1, Algorithm 1, appendix D Listing 1) with diagnostics.

    Frame 0 is N(0, I). Frame ``i`` is built from frame ``i-1`` (``p``) so that the divergence
    ``D(x, p) = mean(exp(p) * (p - x))`` -- ``torch.kl_div(x, p, log_target=True)`` averaged over all
    non-frame elements, as in Listing 1 and the paper's ``eps^{i-1} - lambda / exp(eps^{i-1})`` remark --
    is close to ``lam_i`` (Eq. 1 objective ``|D - lam_i|``):

    1. Random search: ``candidates`` fresh N(0, I) draws; keep the one whose divergence is closest to
       ``lam_i``. All candidates of a frame are handled in one tensor op: with ``full_candidates=True``
       one ``randn([candidates, N])`` and one matrix product (Listing 1 literally); by default (and when
       ``N >= 1024``) each candidate is drawn through its sufficient statistics (4 random numbers, see
       ``_SufficientCandidates``) and only the winner is realized as a tensor -- the same distribution of
       outputs (up to a Wilson-Hilferty chi-square, CDF error < 1e-4) with ~10x fewer random numbers,
       which is what brings 256 x 4 x 64 x 64 under a second (the literal draws are 42M normals).
    2. Linear search of alpha over ``iterations`` trials, then
       ``eps_i = sqrt(alpha) * eps_{i-1} + sqrt(1 - alpha) * eps~`` (Algorithm 1 line 18).

    Because ``D`` is linear in ``x``, every trial is evaluated from a few per-frame scalars (``mean(p e^p)``,
    ``mean(c e^p)``, means, second moments) -- exactly what ``torch.kl_div`` on the composed tensor gives,
    without a tensor per trial.

    Variants (both try ``alpha_best + step`` from ``alpha = 0``, ``step = 0.1``, i.e. the first trial is 0.1):

    * ``"algorithm1"`` (default): accept when the error strictly decreases, else ``step /= 2``.
    * ``"listing1"``: Listing 1's update: accept when the error is ``<=`` the best, else move back by
      ``0.8 * step`` and ``step *= 0.2`` (the same as next trying ``alpha_best + 0.2 * step``).

    Guards / deviations (documented choices):

    * alpha stays in ``[0, DEPENDENCY_ALPHA_MAX]`` (``< 1``): a trial above it is rejected like the NaN
      that ``sqrt(1 - alpha)`` produces in the listing, which otherwise can end at alpha > 1 => NaN noise.
      Consequence: ``lam = 0`` gives the closest alpha the search reaches (0.9875 with the defaults, frame
      correlation ~0.994), not exactly identical frames; use ``mixed_noise(alpha=1)`` for that.
    * The returned alpha is the best *accepted* one (Algorithm 1 semantics). Listing 1 returns its next,
      untested trial; the best one guarantees ``error after linear search <= error of the best random
      candidate`` (the initial bound is the candidate's own error at alpha = 0).
    * ``normalize=True`` (default, not in the paper): every frame, including frame 0, is standardized to
      mean 0 / std 1 over its non-frame elements, and the search scores the standardized frame (exact
      scalar algebra). Reason: the random search picks the candidate most aligned with ``exp(p)``, which
      correlates it with ``p``; the literal recursion then inflates mean and variance frame after frame
      (measured: per-frame std ~1.03 after 64 frames of 4x64x64, ~1.4 after 512 frames of 4x8x8), i.e.
      the ``eps ~ N(0, I)`` constraint of Eq. 1 drifts. ``normalize=False`` is the paper-literal recursion.
      Needs at least 2 elements per frame (skipped for 1).
    * One alpha per frame for the whole latent: the divergence is averaged over every non-frame axis
      including batch (the listing averages per batch item; identical for ``B = 1``).
    * ``lam`` may be one float or a per-frame sequence of length ``T - 1`` (entry ``k`` drives frame
      ``k + 1`` from frame ``k``, the paper's ``lambda_i, i = 2..m``) or ``T`` (entry 0 is ignored).

    Behaviour: ``D`` of an independent candidate is ``mean(p exp p) ~ e^0.5 ~ 1.65``; it falls to 0 as
    alpha -> 1. Small lam => alpha near 1 (near-static noise); ``lam >= ~1.65`` => alpha = 0, frames are
    the independent candidates.

    Limitation of the paper's method (measured, both candidate modes, with or without ``normalize``):
    the random search keeps the candidate most aligned with ``exp(p)``, and with alpha near 1 that
    component accumulates, so long sequences grow a heavy right tail: 256 frames of 4 x 64 x 64 with the
    defaults reach per-frame kurtosis ~6 and 15-sigma values (Gaussian: 3, ~4.5 sigma); 81-frame Wan
    latents (99840 elements/frame) stay at 3.03; ``candidates=1`` stays Gaussian. The paper samples 8
    frames. ``stats["exp_moment"]`` (``mean(p exp p)`` of each previous frame, 1.65 when Gaussian) tracks
    it, and a warning is logged when it exceeds twice that.

    The frame recursion is sequential; everything inside a frame is vectorized.
    Draw order: frame 0 (``randn(N)``), then per frame either ``randn([candidates, N])`` (full) or
    ``randn([candidates, 3])``, ``randn(candidates)``, ``randn(N)`` (sufficient); the result is laid out
    frame-first and moved to ``frame_axis``.

    Returns ``(noise, stats)`` with stats (float32, one row per transition ``k = 0..T-2`` driving frame
    ``k + 1``): ``alpha [T-1]``, ``lam [T-1]``, ``candidate_errors [T-1, candidates]``, ``random_error
    [T-1]`` (best candidate = error at alpha 0), ``final_error [T-1]`` (after the linear search),
    ``error_trace [T-1, iterations + 1]`` (best-so-far error after 0..iterations linear-search steps,
    paper Fig. 17), ``divergence [T-1]`` (achieved D of the returned frame), ``exp_moment [T-1]``
    (``mean(p exp p)`` of the previous frame).
    """
    dims, axis = _canonical(shape, frame_axis)
    _check_generator(generator)
    t = dims[axis]
    params = {
        "lam": lam,
        "candidates": candidates,
        "iterations": iterations,
        "variant": variant,
        "normalize": normalize,
        "full_candidates": full_candidates,
    }
    _check_params("dependency", params, num_frames=t)
    k_cand, n_iter = int(candidates), int(iterations)
    lams = _per_transition_lams(lam, t)
    n = math.prod(dims) // t
    norm = bool(normalize) and n >= 2
    frames = torch.empty((t, n), dtype=torch.float32)
    frames[0] = _randn((n,), generator)
    if norm:
        mean0, std0 = float(frames[0].mean()), float(frames[0].std(correction=0))
        frames[0].sub_(mean0).div_(max(std0, 1e-12))

    # cols = [exp(p); ones; p]. Full mode: rows = [candidates; p; ones] and one mm gives every sum the
    # search needs. Sufficient mode: the Gram matrix of cols gives the law of the candidates' sums.
    sufficient = not full_candidates and n >= _SUFFICIENT_MIN_ELEMENTS
    rows = torch.empty((k_cand + 2 if not sufficient else 2, n), dtype=torch.float32)
    rows[-1] = 1.0
    cols = torch.empty((3, n), dtype=torch.float32)
    cols[1] = 1.0
    fresh = torch.empty(n, dtype=torch.float32)

    n_rows = max(t - 1, 0)
    alphas = [0.0] * n_rows
    cand_err: list[list[float]] = []
    traces: list[list[float]] = []
    divergence = [0.0] * n_rows
    exp_moment = [0.0] * n_rows
    with _serial_torch():
        for i in range(1, t):
            prev = frames[i - 1]
            cols[2].copy_(prev)
            torch.exp(prev, out=cols[0])
            lam_i = lams[i - 1]
            draw = None
            if sufficient:
                draw = _SufficientCandidates.draw(cols, k_cand, generator)
            if draw is not None:
                a_term, w_mean, p_mean, p_sq = draw.frame_moments()
                b_all, m_all, r_all, q_all = draw.b, draw.m, draw.r, draw.q
            else:
                if rows.shape[0] != k_cand + 2:
                    rows = torch.empty((k_cand + 2, n), dtype=torch.float32)
                    rows[-1] = 1.0
                rows[k_cand].copy_(prev)
                torch.randn((k_cand, n), generator=generator, out=rows[:k_cand])
                sums = torch.mm(rows, cols.T).tolist()
                norms = torch.linalg.vector_norm(rows[:k_cand], dim=1).tolist()
                a_term, p_mean, p_sq = (v / n for v in sums[k_cand])
                w_mean = sums[k_cand + 1][0] / n
                b_all = [sums[k][0] / n for k in range(k_cand)]
                m_all = [sums[k][1] / n for k in range(k_cand)]
                r_all = [sums[k][2] / n for k in range(k_cand)]
                q_all = [norms[k] * norms[k] / n for k in range(k_cand)]
            errs = []
            for k in range(k_cand):
                if norm:  # alpha = 0: the standardized candidate
                    std_k = math.sqrt(max(q_all[k] - m_all[k] * m_all[k], 1e-24))
                    errs.append(abs(a_term - (b_all[k] - m_all[k] * w_mean) / std_k - lam_i))
                else:
                    errs.append(abs(a_term - b_all[k] - lam_i))
            best = min(range(k_cand), key=errs.__getitem__)
            moments = _PairMoments(
                a_term, w_mean, p_mean, p_sq, b_all[best], m_all[best], q_all[best], r_all[best]
            )
            alpha, trace = _linear_search(moments, lam_i, n_iter, variant, norm)
            u, v, b = moments.affine(alpha, norm)
            if draw is not None:
                draw.compose(best, u, v, b, cols, generator, fresh, out=frames[i])
            else:
                torch.add(prev * u, rows[best], alpha=v, out=frames[i])
                if b:
                    frames[i].add_(b)
            alphas[i - 1] = alpha
            cand_err.append(errs)
            traces.append(trace)
            divergence[i - 1] = moments.divergence(alpha, norm)
            exp_moment[i - 1] = a_term

    noise = frames.reshape((t,) + dims[:axis] + dims[axis + 1 :]).movedim(0, axis).contiguous()
    trace_t = torch.tensor(traces, dtype=torch.float32).reshape(n_rows, n_iter + 1)
    stats = {
        "alpha": torch.tensor(alphas, dtype=torch.float32),
        "lam": torch.tensor(lams, dtype=torch.float32),
        "candidate_errors": torch.tensor(cand_err, dtype=torch.float32).reshape(n_rows, k_cand),
        "random_error": trace_t[:, 0].clone(),
        "final_error": trace_t[:, -1].clone(),
        "error_trace": trace_t,
        "divergence": torch.tensor(divergence, dtype=torch.float32),
        "exp_moment": torch.tensor(exp_moment, dtype=torch.float32),
    }
    if n_rows and max(exp_moment) > 2.0 * _GAUSSIAN_EXP_MOMENT:
        logger.warning(
            "dependency noise: frames drifted from N(0, 1): mean(p * exp(p)) reached %.3g (1.65 for Gaussian "
            "frames). The random search (candidates > 1) grows a heavy right tail over long runs of "
            "near-1 alpha; use fewer frames, a larger lam, or candidates=1.",
            max(exp_moment),
        )
    return noise, stats


def dependency_noise(
    shape: Sequence[int],
    frame_axis: int,
    generator: torch.Generator,
    lam: float | Sequence[float] = 0.01,
    candidates: int = 10,
    iterations: int = 15,
    variant: str = "algorithm1",
    normalize: bool = True,
    full_candidates: bool = False,
) -> torch.Tensor:
    """ZS^2 dependency noise (section 3.1, Eq. 1, Algorithm 1 / Listing 1); see
    :func:`dependency_noise_with_stats` for the algorithm, the choices and the guards. Returns only the
    float32 noise of ``shape`` (frame axis ``frame_axis``)."""
    return dependency_noise_with_stats(
        shape,
        frame_axis,
        generator,
        lam=lam,
        candidates=candidates,
        iterations=iterations,
        variant=variant,
        normalize=normalize,
        full_candidates=full_candidates,
    )[0]


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


# --------------------------------------------------------------------------------------------------
# registry and validation
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParamSpec:
    """One user-facing parameter. ``kind``: "float", "int", "bool", "choice" or "float_or_list"."""

    name: str
    kind: str
    default: Any
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    help: str = ""


@dataclass(frozen=True)
class NoiseSpec:
    """Registry entry: generator function and its parameters (names, defaults, ranges)."""

    name: str
    fn: Callable[..., torch.Tensor]
    params: tuple[ParamSpec, ...]
    description: str = ""

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    @property
    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}

    @property
    def ranges(self) -> dict[str, tuple[Any, Any]]:
        """name -> (min, max) for numbers (None = unbounded), choices for "choice", (False, True) for bool."""
        out: dict[str, tuple[Any, Any]] = {}
        for p in self.params:
            if p.kind == "choice":
                out[p.name] = p.choices
            elif p.kind == "bool":
                out[p.name] = (False, True)
            else:
                out[p.name] = (p.minimum, p.maximum)
        return out


_ALPHA = ParamSpec("alpha", "float", 0.5, 0.0, 1.0, help="0 = independent frames, 1 = identical frames")

NOISE_ALGORITHMS: dict[str, NoiseSpec] = {
    "iid": NoiseSpec("iid", iid_noise, (), "i.i.d. N(0,1) noise (ComfyUI default)"),
    "repeat_mask": NoiseSpec(
        "repeat_mask",
        repeat_mask_noise,
        (
            ParamSpec("base_length", "int", 16, 1, 4096, help="period f of the base noise (model window)"),
            ParamSpec("ratio", "float", 0.5, 0.0, 1.0, help="fraction of frames taken from the base noise"),
            ParamSpec("periodic_mask", "bool", False, help="tile one length-f mask (literal reading)"),
        ),
        "ZoLA Eq. 8 repeat-mask noise init",
    ),
    "dependency": NoiseSpec(
        "dependency",
        dependency_noise,
        (
            ParamSpec("lam", "float_or_list", 0.01, 0.0, None, help="target divergence between frames"),
            ParamSpec("candidates", "int", 10, 1, 1000, help="random-search draws per frame"),
            ParamSpec("iterations", "int", 15, 0, 1000, help="linear-search steps per frame"),
            ParamSpec("variant", "choice", "algorithm1", choices=_DEPENDENCY_VARIANTS),
            ParamSpec("normalize", "bool", True, help="standardize every frame (keeps N(0,1), see docs)"),
            ParamSpec("full_candidates", "bool", False, help="draw candidates as full tensors (10x slower)"),
        ),
        "ZS^2 dependency noise model (Algorithm 1 / Listing 1)",
    ),
    "mixed": NoiseSpec("mixed", mixed_noise, (_ALPHA,), "PYoCo mixed noise (shared + individual)"),
    "progressive": NoiseSpec("progressive", progressive_noise, (_ALPHA,), "PYoCo progressive (AR(1)) noise"),
    "freenoise": NoiseSpec(
        "freenoise",
        freenoise_shuffle,
        (
            ParamSpec("window_length", "int", 16, 1, 4096, help="context window length in latent frames"),
            ParamSpec("stride", "int", 4, 1, 4096, help="window stride (= window_length - overlap)"),
        ),
        "FreeNoise window shuffle (AnimateDiff-Evolved / ComfyUI core parity)",
    ),
}


def _fmt_range(p: ParamSpec) -> str:
    lo = "-inf" if p.minimum is None else f"{p.minimum:g}"
    if p.maximum is None:
        return f">= {lo}" if p.minimum is not None else "any number"
    return f"in [{lo}, {p.maximum:g}]"


def _check_number(p: ParamSpec, value: Any, what: str | None = None) -> float | int:
    label = what or p.name
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{label} must be a number {_fmt_range(p)}, got {value!r}")
    if p.kind == "int":
        if isinstance(value, float) and not value.is_integer():
            raise ValueError(f"{label} must be a whole number {_fmt_range(p)}, got {value!r}")
        value = int(value)
    else:
        value = float(value)
    bad = math.isnan(value) or math.isinf(value)
    if not bad and p.minimum is not None and value < p.minimum:
        bad = True
    if not bad and p.maximum is not None and value > p.maximum:
        bad = True
    if bad:
        hint = f"; {p.help}" if p.help else ""
        raise ValueError(f"{label} must be {_fmt_range(p)}, got {value!r}{hint}")
    return value


def _check_params(algorithm: str, params: Mapping[str, Any], num_frames: int | None = None) -> dict[str, Any]:
    if algorithm not in NOISE_ALGORITHMS:
        raise ValueError(f"algorithm must be one of {sorted(NOISE_ALGORITHMS)}, got {algorithm!r}")
    spec = NOISE_ALGORITHMS[algorithm]
    unknown = sorted(set(params) - set(spec.param_names))
    if unknown:
        raise ValueError(
            f"{unknown[0]} is not a parameter of noise algorithm {algorithm!r}; "
            f"allowed: {list(spec.param_names) or 'none'}"
        )
    merged = dict(spec.defaults)
    merged.update(params)
    out: dict[str, Any] = {}
    for p in spec.params:
        value = merged[p.name]
        if p.kind == "choice":
            if value not in p.choices:
                raise ValueError(f"{p.name} must be one of {list(p.choices)}, got {value!r}")
        elif p.kind == "bool":
            if not isinstance(value, bool):
                raise ValueError(f"{p.name} must be True or False, got {value!r}")
        elif p.kind == "float_or_list":
            if isinstance(value, (list, tuple)):
                value = tuple(float(_check_number(p, v, f"{p.name}[{i}]")) for i, v in enumerate(value))
                if num_frames is not None and len(value) not in (num_frames - 1, num_frames):
                    raise ValueError(
                        f"{p.name} has {len(value)} values but the latent has {num_frames} frames; give "
                        f"{max(num_frames - 1, 0)} (one per frame transition) or {num_frames} (one per "
                        "frame, the first is ignored), or a single number"
                    )
                if num_frames is None and not value:
                    raise ValueError(f"{p.name} must be a number or a non-empty list of numbers, got []")
            else:
                value = _check_number(p, value)
        else:
            value = _check_number(p, value)
        out[p.name] = value
    if algorithm == "freenoise" and out["stride"] > out["window_length"]:
        raise ValueError(
            f"stride must be in [1, window_length={out['window_length']}], got {out['stride']}; "
            "stride is window_length minus the overlap"
        )
    if num_frames is not None and (not isinstance(num_frames, int) or num_frames < 1):
        raise ValueError(f"num_frames must be a positive int, got {num_frames!r}")
    return out


def validate_noise_params(
    algorithm: str, params: Mapping[str, Any] | None = None, num_frames: int | None = None
) -> dict[str, Any]:
    """Cheap check of a noise algorithm's parameters (no tensors). Raises ``ValueError`` naming the
    parameter, its allowed range and the fix (e.g. ``"alpha must be in [0, 1], got 1.2; ..."``); with
    ``num_frames`` also checks per-frame list lengths (``lam``: ``T - 1`` or ``T`` values). Returns the
    full parameter dict (defaults filled in, per-frame lists as tuples)."""
    return _check_params(algorithm, dict(params or {}), num_frames)


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


# --------------------------------------------------------------------------------------------------
# preview helpers (pure)
# --------------------------------------------------------------------------------------------------

_CHUNK_ELEMENTS = 1 << 22


def _frame_chunks(noise: torch.Tensor, frame_axis: int) -> Iterator[torch.Tensor]:
    """Yield float64 ``[T, n_k]`` blocks covering all non-frame elements, each about 4M elements."""
    _, axis = _canonical(noise.shape, frame_axis)
    x = noise.detach().movedim(axis, 0)
    t = x.shape[0]
    if x.dim() == 1:
        yield x.reshape(t, 1).double()
        return
    if x.is_contiguous():
        flat = x.reshape(t, -1)
        cols = max(1, _CHUNK_ELEMENTS // t)
        for s in range(0, flat.shape[1], cols):
            yield flat[:, s : s + cols].double()
        return
    d = max(range(1, x.dim()), key=lambda k: x.shape[k])
    per_index = x.numel() // x.shape[d]
    step = max(1, _CHUNK_ELEMENTS // max(per_index, 1))
    for s in range(0, x.shape[d], step):
        yield x.narrow(d, s, min(step, x.shape[d] - s)).reshape(t, -1).double()


def frame_correlation(noise: torch.Tensor, frame_axis: int) -> torch.Tensor:
    """Pearson correlation ``[T, T]`` (float32) between frames over all non-frame elements.

    Accumulated chunk-wise in float64 (Gram matrix plus sums), so the only large temporaries are ~4M
    element blocks; ``O(T^2 * elements)`` time. Entries involving a constant frame are 0; the diagonal
    of a non-constant frame is 1.
    """
    t = noise.shape[frame_axis]
    gram = torch.zeros((t, t), dtype=torch.float64)
    total = torch.zeros(t, dtype=torch.float64)
    count = 0
    for block in _frame_chunks(noise, frame_axis):
        gram += block @ block.T
        total += block.sum(dim=1)
        count += block.shape[1]
    mean = total / count
    cov = gram / count - torch.outer(mean, mean)
    var = cov.diagonal().clamp_min(0.0)
    denom = torch.sqrt(torch.outer(var, var))
    corr = torch.where(denom > 0, cov / denom.clamp_min(1e-300), torch.zeros_like(cov)).clamp(-1.0, 1.0)
    corr.diagonal().copy_((var > 0).double())
    return corr.float()


def frame_stats(noise: torch.Tensor, frame_axis: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-frame mean and (population) std over all non-frame elements: ``(mean[T], std[T])`` float32."""
    t = noise.shape[frame_axis]
    total = torch.zeros(t, dtype=torch.float64)
    squares = torch.zeros(t, dtype=torch.float64)
    count = 0
    for block in _frame_chunks(noise, frame_axis):
        total += block.sum(dim=1)
        squares += (block * block).sum(dim=1)
        count += block.shape[1]
    mean = total / count
    var = (squares / count - mean * mean).clamp_min(0.0)
    return mean.float(), var.sqrt().float()


def _correlation_colors(corr: torch.Tensor) -> torch.Tensor:
    """Diverging map: -1 blue (0, 0, 1), 0 white, +1 red (1, 0, 0). Returns ``[..., 3]``."""
    c = corr.clamp(-1.0, 1.0)
    red = torch.where(c < 0, 1.0 + c, torch.ones_like(c))
    green = 1.0 - c.abs()
    blue = torch.where(c > 0, 1.0 - c, torch.ones_like(c))
    return torch.stack((red, green, blue), dim=-1)


def render_noise_preview(noise: torch.Tensor, frame_axis: int, size: int = 512) -> torch.Tensor:
    """ComfyUI IMAGE ``[1, H, W, 3]`` float32 in [0, 1] summarising the frame structure of ``noise``.

    Top: ``size x size`` heatmap of :func:`frame_correlation` (blue -1, white 0, red +1), frame 0 at the
    top-left, nearest-neighbour upsampling. Below (``max(16, size // 4)`` rows, light grey): upper half,
    per-frame mean as green bars around a grey zero line (full half-height = |mean| 1); lower half,
    per-frame std as a black trace on a scale 0 (bottom) .. 2 (top) with a grey reference line at std 1.
    No text. Pure torch.
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 16:
        raise ValueError(f"size must be an int >= 16, got {size!r}")
    corr = frame_correlation(noise, frame_axis)
    mean, std = frame_stats(noise, frame_axis)
    t = corr.shape[0]
    idx = (torch.arange(size) * t) // size
    heat = _correlation_colors(corr[idx][:, idx])

    strip_h = max(16, size // 4)
    half = strip_h // 2
    strip = torch.full((strip_h, size, 3), 0.92)
    rows = torch.arange(strip_h, dtype=torch.float32)[:, None]
    col_mean = mean[idx][None, :].clamp(-1.0, 1.0)
    col_std = std[idx][None, :]

    zero_row = (half - 1) / 2.0
    bar_end = zero_row - col_mean * zero_row
    lo = bar_end.clamp(max=zero_row)
    hi = bar_end.clamp(min=zero_row)
    in_upper = rows < half
    bars = in_upper & (rows >= lo.floor()) & (rows <= hi.ceil())
    strip[(in_upper & ((rows - zero_row).abs() < 0.5)).expand(strip_h, size)] = torch.tensor([0.6, 0.6, 0.6])
    strip[bars] = torch.tensor([0.1, 0.6, 0.2])

    lower_h = strip_h - half
    std_row = half + (1.0 - (col_std / 2.0).clamp(0.0, 1.0)) * (lower_h - 1)
    ref_row = half + 0.5 * (lower_h - 1)
    in_lower = rows >= half
    strip[(in_lower & ((rows - ref_row).abs() < 0.5)).expand(strip_h, size)] = torch.tensor([0.6, 0.6, 0.6])
    strip[in_lower & ((rows - std_row).abs() <= 1.0)] = torch.tensor([0.0, 0.0, 0.0])
    strip[:2] = 0.3  # separator under the heatmap

    image = torch.cat((heat, strip), dim=0).clamp(0.0, 1.0)
    return image.unsqueeze(0).float().contiguous()
