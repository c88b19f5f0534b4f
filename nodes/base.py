"""Small helpers shared by the node classes (no ComfyUI import here).

Nodes are classic (V1) ComfyUI node classes: the stable contract on ComfyUI 0.3.75 and current ComfyUI alike
(the V3 ``comfy_api`` is present in both but declared unstable, ``STABLE = False``). Every node declares
``NODE_ID`` (frozen public id, prefix ``LongAnim``), ``DISPLAY_NAME`` (prefix ``LongAnim: ``), a category under
``LongAnim/``, a ``DESCRIPTION`` and a tooltip on every input and output.
"""
from __future__ import annotations

import re
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


def link_input(io_type: str, tooltip: str) -> tuple:
    """An input fed by another node's output (MODEL, LATENT, CONDITIONING, IMAGE, a LongAnim type, ...)."""
    return (io_type, {"tooltip": tooltip})


def outputs(*specs: tuple[str, str, str]) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """``RETURN_TYPES, RETURN_NAMES, OUTPUT_TOOLTIPS`` of a node from one ``(type, name, tooltip)`` per output."""
    return tuple(s[0] for s in specs), tuple(s[1] for s in specs), tuple(s[2] for s in specs)


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


def renamed_value(cls, name: str, value):
    """The current value for a combo ``value`` of input ``name``: a value from before a rename (``cls.RENAMED_VALUES``:
    input name -> {old value: new value}) becomes its new name; any other value passes unchanged."""
    return getattr(cls, "RENAMED_VALUES", {}).get(name, {}).get(value, value)


def check_combo_value(cls, name: str, value, options) -> bool | str:
    """The body of a node's ``VALIDATE_INPUTS`` for a combo input with renamed values (saved workflows hold the old
    ones). ComfyUI skips its own "Value not in list" check for every input ``VALIDATE_INPUTS`` names (0.3.75
    ``execution.validate_inputs``), so this accepts the current options and the old names of ``cls.RENAMED_VALUES``
    (``run`` maps them with :func:`renamed_value`) and refuses anything else, naming the node, input and options."""
    if value in options or value in getattr(cls, "RENAMED_VALUES", {}).get(name, {}):
        return True
    return f"{name}: {cls.DISPLAY_NAME} takes one of {list(options)}, got {value!r}"


class LongAnimNode:
    """Base: fixes FUNCTION and the common metadata every node must carry. ``RENAMED_VALUES``: combo values renamed
    since a release (input name -> {old: new}); such a node validates them with :func:`check_combo_value`."""

    NODE_ID: str = ""
    DISPLAY_NAME: str = ""
    FUNCTION = "run"
    CATEGORY = "LongAnim"
    DESCRIPTION = ""
    DEPRECATED = False
    EXPERIMENTAL = False
    RENAMED_VALUES: dict[str, dict[str, str]] = {}
    #: MODEL -> MODEL (or SAMPLER -> SAMPLER) nodes: the slot the node fills on the model. A second node of one role
    #: on a MODEL is refused naming both (``comfy/basics.claim_patch``), except roles that stack (Window LoRA).
    PATCH_ROLE: str | None = None


def deprecated_alias(old_id: str, target: type, renamed_inputs: dict[str, str] | None = None, note: str = "",
                     old_inputs: dict[str, tuple] | None = None, convert=None) -> type:
    """A node class that keeps a retired node id working: saved workflows load and run unchanged.

    ``target`` is the node class that replaces it. ``renamed_inputs`` maps OLD input name -> current input name: the
    alias shows the old names, so a saved prompt that uses them validates, and ``run`` passes them on under the
    current names (its errors name them by their old names). ``old_inputs`` (OLD name -> input spec) shows an input
    as it was where its options changed (a combo whose saved values the current node no longer lists). ``convert``
    (a function of the keyword arguments under the current names, returning them) turns saved values whose meaning
    changed into arguments of ``target.run`` that select the same result. The class carries ComfyUI's ``DEPRECATED =
    True`` (0.3.75 ``/object_info`` reports ``"deprecated": true``; the frontend hides it from search and the node
    library but loads and runs workflows that use it). Register it through a family module's ``DEPRECATED_NODES``
    and list ``old_id`` under ``"deprecated"`` in tests/node_api.json; the freeze test then accepts that it left the
    live node list.
    """
    renamed = dict(renamed_inputs or {})
    shown = dict(old_inputs or {})
    back = {new: old for old, new in renamed.items()}
    spec = target.INPUT_TYPES()
    unknown = sorted(set(renamed.values()) - {n for inputs in spec.values() for n in inputs})
    if unknown:
        raise ValueError(f"renamed_inputs: {target.NODE_ID} has no inputs {unknown}")
    stray = sorted(set(shown) - {back.get(n, n) for inputs in spec.values() for n in inputs})
    if stray:
        raise ValueError(f"old_inputs: {old_id} has no inputs {stray}")

    def input_types(cls):
        return {section: {back.get(n, n): shown.get(back.get(n, n), entry) for n, entry in inputs.items()}
                for section, inputs in target.INPUT_TYPES().items()}

    def run(self, *args, **kwargs):
        kwargs = {renamed.get(k, k): v for k, v in kwargs.items()}
        if convert is not None:
            kwargs = convert(kwargs)
        try:
            return getattr(target(), target.FUNCTION)(*args, **kwargs)
        except ValueError as e:  # name the inputs as this node shows them
            text = str(e)
            for old, new in renamed.items():
                text = re.sub(rf"\b{re.escape(new)}\b", old, text)
            if text == str(e):
                raise
            raise ValueError(text) from e

    name = target.DISPLAY_NAME.removeprefix("LongAnim: ")
    description = f"Deprecated: kept so saved workflows still run; use {target.NODE_ID} in new workflows. {note}"
    return type(old_id, (target,), {
        "NODE_ID": old_id, "DEPRECATED": True, "FUNCTION": "run", "INPUT_TYPES": classmethod(input_types),
        "run": run, "DEPRECATED_TARGET": target.NODE_ID, "RENAMED_INPUTS": renamed,
        "DISPLAY_NAME": f"LongAnim: {name} (deprecated: use {target.NODE_ID})",
        "DESCRIPTION": description.strip() + "\n\n" + (target.DESCRIPTION or ""),
    })
