"""ZS^2 dependency noise model (section 3.1, Eq. 1, Algorithm 1, appendix D Listing 1) (pure).

Part of the noise package whose public face is :mod:`.noise` (every public name is importable from there).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .noise_spec import _canonical, _check_generator, _check_params, _randn, _serial_torch

logger = logging.getLogger(__name__)

__all__ = ["DEPENDENCY_ALPHA_MAX", "dependency_noise", "dependency_noise_with_stats"]

#: from ``sqrt(1 - alpha)`` is in Listing 1), so alpha stays in [0, 1) and every frame keeps a fresh
#: component. 1 - 1e-6 also rejects 0.1 * 10 accumulated in floating point (0.9999999999999999).
DEPENDENCY_ALPHA_MAX = 1.0 - 1e-6


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
