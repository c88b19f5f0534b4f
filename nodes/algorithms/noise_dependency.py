"""ZS^2 dependency noise model (section 3.1, Eq. 1, Algorithm 1, appendix D Listing 1) (pure).

Part of the noise package whose public face is :mod:`.noise` (every public name is importable from there).

Eq. 1 asks, for every frame ``i``, for ``eps_i ~ N(0, I)`` whose divergence from the previous frame ``p``,
``D(x, p) = mean(exp(p) * (p - x))`` (``torch.kl_div(x, p, log_target=True)`` averaged, Listing 1), is
``lambda_i``. Algorithm 1 answers in two stages: a random search keeps, of ``candidates`` fresh N(0, I) draws,
the one whose ``D`` is closest to ``lambda_i`` (lines 3-9), then a linear search of ``alpha`` composes
``eps_i = sqrt(alpha) p + sqrt(1 - alpha) eps~`` (lines 10-18).

Departure from Algorithm 1 (``drift_guard=True``, the default) and why. ``D`` is linear in ``x``:
``D(x, p) = mean(p e^p) - mean(x e^p)``. An independent candidate has ``D ~ e^0.5 ~ 1.65`` with a spread of a
few ``e / sqrt(N)``, so for any small ``lambda`` (the paper uses 0.01) no candidate comes near it; the random
search then only keeps the candidate most aligned with ``exp(p)``, i.e. with a positive value where ``p`` is
largest. With ``alpha`` near 1 that bias is kept from frame to frame, it makes ``exp(p)`` still more
concentrated on the same element, and the next search pushes it again: a positive feedback that grows one
element into a static 15-sigma spike (measured, 256 frames, lambda 0.01, 10 candidates: kurtosis 5.6-6.2 on
4 x 64 x 64, 14-18 on 4 x 32 x 32, and ``|D - lambda|`` of order 1 for the later frames because
``mean(p e^p)`` explodes).

So when no candidate reaches ``lambda`` on its own (every candidate's ``D`` at ``alpha = 0`` is above
``lambda``: the linear search must do the work anyway), the innovation is not the search's winner but a fresh
N(0, I) draw with its components along ``exp(p)``, ``1`` and ``p`` removed -- the only directions ``D``, the
frame mean and the frame's correlation with ``p`` read. Such an innovation carries nothing a search could
select on, so nothing accumulates. And ``D`` becomes a function of ``alpha`` alone (``(1 - sqrt(alpha))
mean(p e^p)`` before standardization), so the linear search meets ``lambda`` to the resolution of its own
grid; a plain unselected draw (``candidates=1, drift_guard=False``) also stays Gaussian, but its own
``sqrt(1 - alpha) mean(c e^p)`` term (standard deviation ~0.005 on 4 x 32 x 32) is added to ``D`` at every
grid point: measured, 3 of 6120 transitions miss ``lambda = 0.01`` by more than 0.01 (max 0.0115; 3 of 24
256-frame videos of 4 x 32 x 32), against a largest miss of 0.002 with the guard. When some candidate does reach
``lambda`` (``lambda`` within the candidates' spread around 1.65: near-independent frames, ``alpha ~ 0``, no
memory for a bias to accumulate in), Algorithm 1 runs as written. ``drift_guard=False`` is Algorithm 1
everywhere (the paper-literal search, kept to reproduce the paper and the drift).
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

#: Largest alpha the dependency linear search may try. Trials above it are rejected (as the NaN
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
    listing = variant == "fifth_step"
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

    def __init__(
        self, v64: torch.Tensor, gram: torch.Tensor, chol: torch.Tensor, s: torch.Tensor, chi2: torch.Tensor, n: int
    ):
        self.v64, self.gram, self.chol, self.n = v64, gram, chol, n
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
        return cls(v64, gram, chol, z @ chol.T, chi2, n)

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
        vg = self.v64 @ g64
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


def _cholesky(cols: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(V, L)``: ``V = cols = [exp(p); 1; p]`` in float64 and the Cholesky factor ``L`` of ``G = V V^T``; None if
    ``G`` is singular (a constant previous frame, or fewer than 4 elements: no room for an innovation outside
    ``V``)."""
    if cols.shape[1] <= 3:
        return None
    v64 = cols.double()
    chol, info = torch.linalg.cholesky_ex(v64 @ v64.T)
    return (v64, chol) if int(info) == 0 else None


class _ComplementDraw:
    """A fresh ``g ~ N(0, I_N)`` split as ``g = V^T a + c`` with ``c`` orthogonal to the rows of ``V`` (the
    drift-guard innovation, see the module docstring). ``c`` is never stored: the frame is composed from ``p``,
    ``exp(p)``, ``g`` and the three coefficients ``a = G^-1 V g``. ``|c|^2 ~ chi2(N - 3)``: the projection of an
    isotropic normal onto a fixed ``N - 3``-dimensional subspace."""

    def __init__(self, v64: torch.Tensor, chol: torch.Tensor, generator: torch.Generator, fresh: torch.Tensor):
        torch.randn(fresh.shape, generator=generator, out=fresh)
        g64 = fresh.double()
        vg = v64 @ g64
        coef = torch.cholesky_solve(vg[:, None], chol)[:, 0]
        self.q = (float(g64 @ g64) - float(coef @ vg)) / fresh.shape[0]  # mean(c^2)
        self.a = coef.tolist()

    def compose(self, u: float, v: float, b: float, cols: torch.Tensor, fresh: torch.Tensor, out: torch.Tensor):
        """``out = u * p + v * c + b`` with ``c = g - a0 exp(p) - a1 - a2 p``."""
        a0, a1, a2 = self.a
        torch.mul(cols[2], u - v * a2, out=out)
        out.add_(cols[0], alpha=-v * a0)
        out.add_(fresh, alpha=v)
        out.add_(b - v * a1)


def dependency_noise_with_stats(
    shape: Sequence[int],
    frame_axis: int,
    generator: torch.Generator,
    lam: float | Sequence[float] = 0.01,
    candidates: int = 10,
    iterations: int = 15,
    variant: str = "halve_step",
    normalize: bool = True,
    full_candidates: bool = False,
    drift_guard: bool = True,
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
       outputs (up to a Wilson-Hilferty chi-square, CDF error < 1e-4) with ~10x fewer random numbers.
    2. Drift guard (``drift_guard=True``, default; the departure from Algorithm 1 explained in the module
       docstring): if every candidate's divergence at ``alpha = 0`` exceeds ``lam_i`` (no candidate reaches
       it; always the case for small ``lam``), the innovation is instead a fresh N(0, I) draw with its
       components along ``exp(p)``, ``1`` and ``p`` removed (``_ComplementDraw``). ``stats["searched"]``
       says, per transition, whether the random search's winner was used.
    3. Linear search of alpha over ``iterations`` trials on that innovation, then
       ``eps_i = sqrt(alpha) * eps_{i-1} + sqrt(1 - alpha) * eps~`` (Algorithm 1 line 18).

    Because ``D`` is linear in ``x``, every trial is evaluated from a few per-frame scalars (``mean(p e^p)``,
    ``mean(c e^p)``, means, second moments) -- exactly what ``torch.kl_div`` on the composed tensor gives,
    without a tensor per trial.

    Variants (both try ``alpha_best + step`` from ``alpha = 0``, ``step = 0.1``, i.e. the first trial is 0.1):

    * ``"halve_step"`` (default): Algorithm 1 lines 10-17: accept when the error strictly decreases, else
      ``step /= 2``.
    * ``"fifth_step"``: Listing 1's update: accept when the error is ``<=`` the best, else move back by
      ``0.8 * step`` and ``step *= 0.2`` (the same as next trying ``alpha_best + 0.2 * step``).

    Measured with the defaults (lam 0.01, 10 candidates, 15 iterations), 256 frames, seeds 0-2, both candidate
    modes (``tests/benchmarks/bench_noise.py``): every transition's ``torch.kl_div`` within 0.002 of lam,
    kurtosis of frame 255 in 2.94-3.10 on 4 x 64 x 64 and 4 x 32 x 32 (Gaussian: 3; standard error of the
    estimate 0.04 / 0.08), no value beyond 5 sigma. ``drift_guard=False`` (the paper's search): kurtosis
    5.6-6.2 / 12.8-18, 14-16-sigma values, ``|D - lam|`` up to 9-194.

    Guards / deviations (documented choices):

    * alpha stays in ``[0, DEPENDENCY_ALPHA_MAX]`` (``< 1``): a trial above it is rejected like the NaN
      that ``sqrt(1 - alpha)`` produces in the listing, which otherwise can end at alpha > 1 => NaN noise.
      Consequence: ``lam = 0`` gives the closest alpha the search reaches (0.9875 with the defaults, frame
      correlation ~0.994), not exactly identical frames; use ``mixed_noise(alpha=1)`` for that.
    * The returned alpha is the best *accepted* one (Algorithm 1 semantics). Listing 1 returns its next,
      untested trial; the best one guarantees ``error after linear search <= error of the innovation at
      alpha = 0`` (the initial bound).
    * ``normalize=True`` (default, not in the paper): every frame, including frame 0, is standardized to
      mean 0 / std 1 over its non-frame elements, and the search scores the standardized frame (exact
      scalar algebra), so Eq. 1's ``eps ~ N(0, I)`` holds exactly in the first two moments of every frame.
      Without the drift guard the literal recursion inflates mean and variance frame after frame (the
      selected candidates correlate with ``p``; measured per-frame std ~1.4 after 512 frames of 4 x 8 x 8);
      with the guard the innovation is orthogonal to ``p`` and ``1``, so the per-frame variance tends to
      ``1 - 3 / N`` even with ``normalize=False`` (the paper-literal recursion). Needs >= 2 elements per frame.
    * The drift guard needs more than 3 elements per frame and a non-constant previous frame (room for an
      innovation outside ``exp(p)``, ``1``, ``p``); otherwise that transition is Algorithm 1 as written.
    * One alpha per frame for the whole latent: the divergence is averaged over every non-frame axis
      including batch (the listing averages per batch item; identical for ``B = 1``).
    * ``lam`` may be one float or a per-frame sequence of length ``T - 1`` (entry ``k`` drives frame
      ``k + 1`` from frame ``k``, the paper's ``lambda_i, i = 2..m``) or ``T`` (entry 0 is ignored).

    Behaviour: ``D`` of an independent candidate is ``mean(p exp p) ~ e^0.5 ~ 1.65``; it falls to 0 as
    alpha -> 1. Small lam => alpha near 1 (near-static noise); ``lam >= ~1.65`` => alpha = 0, frames are
    the independent candidates. ``stats["exp_moment"]`` (``mean(p exp p)`` of each previous frame, 1.65 when
    Gaussian) tracks the tail; a warning is logged when it exceeds twice that (``drift_guard=False``).

    The frame recursion is sequential; everything inside a frame is vectorized. Draw order: frame 0
    (``randn(N)``), then per frame the candidates -- ``randn([candidates, N])`` (full) or
    ``randn([candidates, 3])``, ``randn(candidates)`` (sufficient) -- then one ``randn(N)``: the winner's
    realization (sufficient mode) or the drift-guard innovation (either mode; none for a full-mode transition
    that uses the search's winner). The result is laid out frame-first and moved to ``frame_axis``.

    Returns ``(noise, stats)`` with stats (one row per transition ``k = 0..T-2`` driving frame ``k + 1``,
    float32 unless said): ``alpha [T-1]``, ``lam [T-1]``, ``candidate_errors [T-1, candidates]`` (each
    candidate's error at alpha 0), ``searched [T-1]`` (bool: the random search's winner was the innovation),
    ``random_error [T-1]`` (the innovation's error at alpha 0: the best candidate's where searched),
    ``final_error [T-1]`` (after the linear search), ``error_trace [T-1, iterations + 1]`` (best-so-far error
    after 0..iterations linear-search steps, paper Fig. 17), ``divergence [T-1]`` (achieved D of the returned
    frame), ``exp_moment [T-1]`` (``mean(p exp p)`` of the previous frame).
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
        "drift_guard": drift_guard,
    }
    _check_params("dependency", params, num_frames=t)
    k_cand, n_iter, guard = int(candidates), int(iterations), bool(drift_guard)
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
    searched = [True] * n_rows
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
            d0 = []  # each candidate's divergence at alpha = 0
            for k in range(k_cand):
                if norm:  # alpha = 0: the standardized candidate
                    std_k = math.sqrt(max(q_all[k] - m_all[k] * m_all[k], 1e-24))
                    d0.append(a_term - (b_all[k] - m_all[k] * w_mean) / std_k)
                else:
                    d0.append(a_term - b_all[k])
            errs = [abs(d - lam_i) for d in d0]
            innovation = None
            if guard and min(d0) > lam_i:
                factor = (draw.v64, draw.chol) if draw is not None else _cholesky(cols)
                if factor is not None:
                    innovation = _ComplementDraw(*factor, generator, fresh)
            if innovation is not None:
                moments = _PairMoments(a_term, w_mean, p_mean, p_sq, 0.0, 0.0, innovation.q, 0.0)
                searched[i - 1] = False
            else:
                best = min(range(k_cand), key=errs.__getitem__)
                moments = _PairMoments(
                    a_term, w_mean, p_mean, p_sq, b_all[best], m_all[best], q_all[best], r_all[best]
                )
            alpha, trace = _linear_search(moments, lam_i, n_iter, variant, norm)
            u, v, b = moments.affine(alpha, norm)
            if innovation is not None:
                innovation.compose(u, v, b, cols, fresh, out=frames[i])
            elif draw is not None:
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
        "searched": torch.tensor(searched, dtype=torch.bool),
        "random_error": trace_t[:, 0].clone(),
        "final_error": trace_t[:, -1].clone(),
        "error_trace": trace_t,
        "divergence": torch.tensor(divergence, dtype=torch.float32),
        "exp_moment": torch.tensor(exp_moment, dtype=torch.float32),
    }
    if n_rows and max(exp_moment) > 2.0 * _GAUSSIAN_EXP_MOMENT:
        logger.warning(
            "dependency noise: frames drifted from N(0, 1): mean(p * exp(p)) reached %.3g (1.65 for Gaussian "
            "frames). The paper's random search (drift_guard=False, candidates > 1) grows a heavy right tail "
            "over long runs of near-1 alpha; use drift_guard=True (the default).",
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
    variant: str = "halve_step",
    normalize: bool = True,
    full_candidates: bool = False,
    drift_guard: bool = True,
) -> torch.Tensor:
    """ZS^2 dependency noise (section 3.1, Eq. 1, Algorithm 1 / Listing 1, with the drift guard); see
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
        drift_guard=drift_guard,
    )[0]
