"""Window-aware step caching: reuse a window's model output from an earlier step while its input barely moved.

Step caches (TeaCache, EasyCache, LazyCache, MagCache) skip a model evaluation when the model's input has changed
little since the last one that was computed and reuse that evaluation's output, shifted by the input change.
EasyCache (Zhou et al. 2025, "Less is Enough: Training-Free Video Diffusion Acceleration via Runtime-Adaptive
Caching") decides with the *transformation rate* ``k = |Δoutput| / |Δinput|`` measured between the last two
computed steps: the output change of a skipped step is predicted as ``k |x_t - x_ref| / |output_ref|``, summed over
the skipped steps, and the model is run again once the sum reaches a threshold ``τ``.

With context windows the caches above break: windows move every step (ZoLA re-draws them), so "the last output" of
a window does not exist; a cache keyed on the conditioning hands one window's output to another window. This module
keeps everything **per frame** and decides **per window, per cond**:

State per cond ``c`` and frame ``f`` (one run):
    ``D[c, f]``   the model's ODE direction at the frame's last evaluation, ``D = (x - denoised) / σ`` (the
                  k-diffusion derivative: ε for ε-prediction, the velocity for rectified flow, so the same rule
                  serves every family). It is what stays most nearly constant along a sampling trajectory (exactly
                  constant on a straight flow path), so a cached ``D`` reused at the new ``(x, σ)`` as
                  ``denoised = x - σ D`` tracks the sampler better than a cached ``denoised`` or EasyCache's
                  ``output - input`` residual would. One latent per cond.
    ``P[c, f]``   relative input path since that evaluation: per call the frame's ``mean|x_t - x_{t-1}| /
                  mean|x_t|`` is added (all conds share the previous input: one latent in all). Relative, because
                  the latent's scale changes by orders of magnitude over an ε-model's schedule (``x ≈ σ · noise``
                  early): an absolute rate measured at high noise would be far too small at low noise and the
                  cache would stop refreshing (measured on the exact Gaussian benchmark). On the near-straight
                  sampling paths the summed steps equal the distance to the reference input to within a few
                  percent, and no reference latent per cond is needed.
    ``k[c, f]``   transformation rate ``(mean|D_new - D_old| / mean|D_old|) / P`` measured when the frame is
                  evaluated again at another noise level (EasyCache's ``k`` in relative units, per frame);
                  ``|D|[c, f]`` the mean magnitude of ``D``.
    ``A[c, f]``   accumulated predicted change over the calls since the frame's evaluation.

Decision for window ``w`` and cond ``c`` (:meth:`WindowStepCache.plan`): its predicted relative output change is
``E = mean_{f in w} (A[c, f] + k[c, f] P[c, f])`` (EasyCache's criterion ``k |Δx| / |output|``, here with
relative changes on both sides, averaged over the window's frames); the window is evaluated when ``E >= τ``,
when a frame has no cached ``D`` or no rate yet, during the warm-up steps and in the final steps; otherwise it
is answered from the cache, ``denoised = x - σ D``, frame by frame. A window evaluated fresh for cond ``c``
updates ``D, k, |D|`` of its frames from the fusion of the *fresh* windows only (the same fusion weights as the
loop's), resets ``P`` and ``A``; frames no fresh window covered add this call's predicted change to ``A``.
``τ = 0`` evaluates every window: the loop's output is then bit-identical to the uncached loop.

Memory: ``D`` (one latent per cond), the previous input (one latent), during a call the fresh fusion (one latent
per cond), and a few ``[conds, frames]`` vectors.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from .window_fusion import co_denoise


@dataclass(frozen=True)
class CacheSettings:
    """``threshold`` τ (0 = never reuse); ``warmup`` / ``final``: shares of the sampling steps always evaluated at
    the start / end (at least one step each when positive)."""

    threshold: float = 0.2
    warmup: float = 0.2
    final: float = 0.1

    def validate(self) -> None:
        if not (math.isfinite(self.threshold) and self.threshold >= 0):
            raise ValueError(f"threshold must be a number >= 0, got {self.threshold}")
        for name in ("warmup", "final"):
            v = getattr(self, name)
            if not (0.0 <= v <= 1.0):
                raise ValueError(f"{name} must be a share of the steps in [0, 1], got {v}")

    def forced(self, step: int, num_steps: int | None) -> bool:
        """Whether ``step`` (0-based) lies in the warm-up or the final steps, where every window is evaluated."""
        if self.threshold <= 0:
            return True
        n = max(1, int(num_steps or 0))
        warm = math.ceil(self.warmup * n - 1e-9)
        last = math.ceil(self.final * n - 1e-9)
        return step < warm or step >= n - last


def frame_mean_abs(t: torch.Tensor, frame_axis: int) -> torch.Tensor:
    """``mean |t|`` over everything but the frame axis -> float32 ``[T]``."""
    t = t.detach().movedim(frame_axis, 0)
    return t.reshape(t.shape[0], -1).abs().float().mean(1)


def _frame_view(v: torch.Tensor, ndim: int, frame_axis: int) -> torch.Tensor:
    shape = [1] * ndim
    shape[frame_axis] = v.numel()
    return v.reshape(shape)


class WindowStepCache:
    """Per-frame, per-cond step cache of one sampling run (see the module docstring for the rule).

    :meth:`co_denoise` replaces :func:`~.window_fusion.co_denoise` for one model call of the window loop: the
    stacked input ``x`` is ``[conds, *latent]`` with the frame axis at ``frame_axis``; ``evaluate(batch, live)``
    evaluates the windows of ``batch`` for the conds whose ``live`` entry is True (others may be anything) and
    returns one ``[conds, *window]`` tensor per window. ``sigma`` is the noise level of each frame (``[T]``).
    """

    def __init__(self, settings: CacheSettings):
        settings.validate()
        self.settings = settings
        self._key = None
        self.evaluated = 0.0  # window-frame evaluations run (per cond, averaged over the live conds)
        self.reused = 0.0  # window-frame evaluations answered from the cache

    # -- state ----------------------------------------------------------------------------------------
    def _reset(self, x: torch.Tensor, frame_axis: int) -> None:
        conds, frames = x.shape[0], x.shape[frame_axis]
        self._key = (tuple(x.shape), frame_axis, x.device, x.dtype)
        self.D = torch.zeros_like(x)
        self.has = torch.zeros(conds, frames, dtype=torch.bool)
        self.P = torch.zeros(conds, frames)
        self.A = torch.zeros(conds, frames)
        self.k = torch.full((conds, frames), float("nan"))
        self.norm = torch.zeros(conds, frames)
        self.sigma_ref = torch.full((conds, frames), float("nan"))  # noise level of the frame's last evaluation
        self.x_prev: torch.Tensor | None = None

    def _predicted(self) -> torch.Tensor:
        """``k P`` per cond and frame (inf where unknown)."""
        e = self.k * self.P
        return torch.where(self.has & ~torch.isnan(self.k), e, torch.full_like(e, float("inf")))

    def plan(self, windows: Sequence[Sequence[int]], live: Sequence[bool], forced: bool,
             per_cond: bool = True) -> list[tuple[bool, ...]]:
        """Which conds of each window are evaluated this call (True) or answered from the cache (False)."""
        tau = self.settings.threshold
        e = self._predicted()
        plan = []
        for w in windows:
            idx = torch.as_tensor(list(w), dtype=torch.long)
            fresh = []
            for c, on in enumerate(live):
                if not on:
                    fresh.append(False)
                    continue
                if forced:
                    fresh.append(True)
                    continue
                est = float((self.A[c, idx] + e[c, idx]).mean())
                fresh.append(not est < tau)  # inf / nan (a frame without a cache or rate) -> evaluate
            if not per_cond and any(fresh):
                fresh = [bool(on) for on in live]
            plan.append(tuple(fresh))
        return plan

    # -- one call -------------------------------------------------------------------------------------
    def co_denoise(self, x: torch.Tensor, windows: Sequence[Sequence[int]], frame_axis: int,
                   evaluate: Callable[[list[list[int]], tuple[bool, ...]], list[torch.Tensor]], *,
                   sigma: torch.Tensor, step: int, num_steps: int | None, live: Sequence[bool],
                   per_cond: bool = True, **fusion) -> torch.Tensor:
        """Co-denoise ``windows`` (``fusion``: the keyword arguments of :func:`co_denoise`), evaluating only the
        windows the cache cannot answer; returns the fused output and updates the cache."""
        axis = frame_axis % x.dim()
        fa = axis - 1  # frame axis of one cond's tensor
        if self._key != (tuple(x.shape), axis, x.device, x.dtype):
            self._reset(x, axis)
        x0 = x[0]
        sigma = sigma.detach().reshape(-1).to(device=x.device, dtype=torch.float32)
        if sigma.numel() == 1:
            sigma = sigma.expand(x.shape[axis])
        if self.x_prev is not None:
            moved = frame_mean_abs(x0 - self.x_prev, fa) / frame_mean_abs(x0, fa).clamp_min(1e-12)
            self.P += moved.cpu().unsqueeze(0)
        self.x_prev = x0.detach().clone()
        forced = self.settings.forced(step, num_steps) or bool((sigma <= 0).any())
        plan = self.plan(windows, live, forced, per_cond)
        by_frames = {tuple(w): p for w, p in zip(windows, plan, strict=True)}
        n_live = max(1, sum(bool(v) for v in live))
        num = torch.zeros(x.shape, dtype=torch.float32, device=x.device)
        den = torch.zeros(x.shape[0], x.shape[axis], dtype=torch.float32, device=x.device)

        def index(w):
            return torch.as_tensor(list(w), dtype=torch.long, device=x.device)

        def cached(w, c) -> torch.Tensor:
            i = index(w)
            xw, dw = x0.index_select(fa, i), self.D[c].index_select(fa, i)
            return xw - _frame_view(sigma.index_select(0, i), xw.dim(), fa).to(xw.dtype) * dw

        def wrapped(batch: list[list[int]]) -> list[torch.Tensor]:
            fresh = by_frames[tuple(batch[0])]  # a batch holds one group: one plan
            share = sum(fresh) / n_live
            outs = evaluate(batch, fresh) if any(fresh) else [None] * len(batch)
            result = []
            for w, out in zip(batch, outs, strict=True):
                self.evaluated += len(w) * share
                self.reused += len(w) * (sum(bool(v) for v in live) - sum(fresh)) / n_live
                parts = []
                for c in range(x.shape[0]):
                    if fresh[c]:
                        parts.append(out[c])
                    elif live[c]:
                        parts.append(cached(w, c).to(out.dtype if out is not None else x.dtype))
                    else:
                        parts.append(torch.zeros_like(x0.index_select(fa, index(w))) if out is None else out[c])
                result.append(torch.stack(parts, 0))
            return result

        def observe(i: int, w: list[int], out: torch.Tensor, weight: torch.Tensor) -> None:
            fresh = by_frames[tuple(w)]
            idx = index(w)
            wt = weight.to(device=x.device, dtype=torch.float32)
            s = _frame_view(sigma.index_select(0, idx), out.dim() - 1, fa)
            xw = x0.index_select(fa, idx).float()
            for c in range(x.shape[0]):
                if fresh[c]:
                    d = (xw - out[c].float()) / s
                    num[c].index_add_(fa, idx, d * _frame_view(wt, d.dim(), fa))
                    den[c].index_add_(0, idx, wt)

        fused = co_denoise(x, windows, frame_axis, wrapped, group_of=lambda i: plan[i], observe=observe, **fusion)
        self._update(num, den, fa, live, sigma.float().cpu())
        return fused

    def _update(self, num: torch.Tensor, den: torch.Tensor, fa: int, live: Sequence[bool],
                sigma: torch.Tensor) -> None:
        e = self._predicted()
        for c, on in enumerate(live):
            if not on:
                continue
            got = (den[c] > 0).cpu()
            stale = self.has[c] & ~got
            self.A[c] = torch.where(stale, self.A[c] + e[c], self.A[c])
            if not bool(got.any()):
                continue
            idx = got.nonzero().flatten().to(num.device)
            new = num[c].index_select(fa, idx) / _frame_view(den[c].index_select(0, idx), num[c].dim(), fa)
            new = new.to(self.D.dtype)
            old_known = self.has[c, got.nonzero().flatten()]
            change = frame_mean_abs(new - self.D[c].index_select(fa, idx), fa).cpu() / \
                self.norm[c, got].clamp_min(1e-12)
            path = self.P[c, got]
            # an input that did not move: no rate can be measured; an unchanged output means nothing to predict
            # (rate 0), a changed one (the noise level alone moved it) means the cache cannot predict it (inf)
            still = torch.where(change > 0, torch.full_like(change, float("inf")), torch.zeros_like(change))
            measured = torch.where(path > 0, change / path.clamp_min(1e-12), still)
            # a rate is measured only between evaluations at different noise levels: two evaluations at one level
            # (Heun's corrector, then the next step's first call) see how D moves with x alone, not how it moves
            # along the sampling path, where the noise level moves it most
            moved = sigma[got] != self.sigma_ref[c, got]
            rate = torch.where(old_known & moved, measured, self.k[c, got])
            self.sigma_ref[c, got] = sigma[got]
            self.k[c, got] = rate
            self.norm[c, got] = frame_mean_abs(new, fa).cpu()
            self.D[c].index_copy_(fa, idx, new)
            self.has[c, got] = True
            self.P[c, got] = 0.0
            self.A[c, got] = 0.0

    @property
    def reuse_share(self) -> float:
        """Share of the window-frame evaluations answered from the cache so far."""
        total = self.evaluated + self.reused
        return self.reused / total if total else 0.0
