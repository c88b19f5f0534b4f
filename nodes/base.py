"""Small helpers shared by the node classes (no ComfyUI import here).

Nodes are classic (V1) ComfyUI node classes: the stable contract on ComfyUI 0.3.75 and current ComfyUI alike
(the V3 ``comfy_api`` is present in both but declared unstable, ``STABLE = False``). Every node declares
``NODE_ID`` (frozen public id, prefix ``LongAnim``), ``DISPLAY_NAME`` (prefix ``LongAnim: ``), a category under
``LongAnim/``, a ``DESCRIPTION`` and a tooltip on every input and output.
"""
from __future__ import annotations

from typing import Any

MAX_SEED = 0xFFFFFFFFFFFFFFFF
MAX_FRAMES = 16384


def seed_input(tooltip: str = "Seed of this node's random draws. Same seed and inputs give the same output.") -> tuple:
    return ("INT", {"default": 0, "min": 0, "max": MAX_SEED, "control_after_generate": True, "tooltip": tooltip})


def int_input(default: int, lo: int, hi: int, tooltip: str, step: int = 1, **extra: Any) -> tuple:
    return ("INT", {"default": default, "min": lo, "max": hi, "step": step, "tooltip": tooltip, **extra})


def float_input(default: float, lo: float, hi: float, tooltip: str, step: float = 0.01, **extra: Any) -> tuple:
    return ("FLOAT", {"default": default, "min": lo, "max": hi, "step": step, "tooltip": tooltip, **extra})


def combo_input(options: list[str] | tuple[str, ...], default: str, tooltip: str) -> tuple:
    return (list(options), {"default": default, "tooltip": tooltip})


def string_input(default: str, tooltip: str, multiline: bool = False) -> tuple:
    return ("STRING", {"default": default, "multiline": multiline, "tooltip": tooltip})


def parse_float_list(text: str, name: str) -> list[float] | None:
    """Parse an optional comma/space separated list of floats; empty text gives None."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        return [float(v) for v in text.replace(",", " ").split()]
    except ValueError as e:
        raise ValueError(f"{name}: could not read '{text}' as numbers; write them separated by commas, "
                         f"e.g. 0.01, 0.02, 0.05") from e


class LongAnimNode:
    """Base: fixes FUNCTION and the common metadata every node must carry."""

    NODE_ID: str = ""
    DISPLAY_NAME: str = ""
    FUNCTION = "run"
    CATEGORY = "LongAnim"
    DESCRIPTION = ""
    DEPRECATED = False
    EXPERIMENTAL = False
