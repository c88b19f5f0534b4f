"""Initial-noise recipe spec: shapes, generators, parameter tables and their validation (pure).

Part of the noise package whose public face is :mod:`.noise` (every public name is importable from there).
Here: the checks every generator runs on its ``shape`` / ``frame_axis`` / ``generator`` arguments, small layout
helpers shared by the generators, and the user-facing parameters of each algorithm (:data:`NOISE_PARAMS`: names,
defaults, ranges) with :func:`validate_noise_params`, which checks them without drawing any tensor.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["DEPENDENCY_VARIANTS", "NOISE_DESCRIPTIONS", "NOISE_PARAMS", "NoiseSpec", "ParamSpec",
           "validate_noise_params"]

#: Linear-search rules for alpha of the dependency noise model: ``halve_step`` = ZS^2 Algorithm 1 lines 10-17 (keep a
#: step while the error strictly decreases, else halve it); ``fifth_step`` = appendix D Listing 1 (keep it while the
#: error does not grow, else shrink it to a fifth).
DEPENDENCY_VARIANTS = ("halve_step", "fifth_step")


# --------------------------------------------------------------------------------------------------
# shapes and generators
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
# parameter tables and validation
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

#: User-facing parameters of each noise algorithm, in signature order (the generator functions' keyword
#: defaults equal these; tests/unit/test_noise.py checks it).
NOISE_PARAMS: dict[str, tuple[ParamSpec, ...]] = {
    "iid": (),
    "repeat_mask": (
        ParamSpec("base_length", "int", 16, 1, 4096, help="period f of the base noise (model window)"),
        ParamSpec("ratio", "float", 0.5, 0.0, 1.0, help="fraction of frames taken from the base noise"),
        ParamSpec("periodic_mask", "bool", True, help="one length-f mask tiled (Eq. 8); False: mask over all T"),
    ),
    "dependency": (
        ParamSpec("lam", "float_or_list", 0.01, 0.0, None, help="target divergence between frames"),
        ParamSpec("candidates", "int", 10, 1, 1000, help="random-search draws per frame"),
        ParamSpec("iterations", "int", 15, 0, 1000, help="linear-search steps per frame"),
        ParamSpec("variant", "choice", "halve_step", choices=DEPENDENCY_VARIANTS),
        ParamSpec("normalize", "bool", True, help="standardize every frame (keeps N(0,1), see docs)"),
        ParamSpec("full_candidates", "bool", False, help="draw candidates as full tensors (10x slower)"),
        ParamSpec("drift_guard", "bool", True, help="unselected innovation when no candidate reaches lam (see docs)"),
    ),
    "mixed": (_ALPHA,),
    "progressive": (_ALPHA,),
    "freenoise": (
        ParamSpec("window_length", "int", 16, 1, 4096, help="context window length in latent frames"),
        ParamSpec("stride", "int", 4, 1, 4096, help="window stride (= window_length - overlap)"),
    ),
}

#: One-line description of each algorithm (registry and node help).
NOISE_DESCRIPTIONS: dict[str, str] = {
    "iid": "i.i.d. N(0,1) noise (ComfyUI default)",
    "repeat_mask": "ZoLA Eq. 8 repeat-mask noise init",
    "dependency": "ZS^2 dependency noise model (Algorithm 1 / Listing 1)",
    "mixed": "PYoCo mixed noise (shared + individual)",
    "progressive": "PYoCo progressive (AR(1)) noise",
    "freenoise": "FreeNoise window shuffle (AnimateDiff-Evolved / ComfyUI core parity)",
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
    if algorithm not in NOISE_PARAMS:
        raise ValueError(f"algorithm must be one of {sorted(NOISE_PARAMS)}, got {algorithm!r}")
    specs = NOISE_PARAMS[algorithm]
    names = [p.name for p in specs]
    unknown = sorted(set(params) - set(names))
    if unknown:
        raise ValueError(
            f"{unknown[0]} is not a parameter of noise algorithm {algorithm!r}; allowed: {names or 'none'}"
        )
    merged = {p.name: p.default for p in specs}
    merged.update(params)
    out: dict[str, Any] = {}
    for p in specs:
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
