"""One registration table for every LongAnim node (imported by the package ``__init__`` inside ComfyUI).

Each family module exposes ``NODES``; ids come from the classes' ``NODE_ID`` (frozen public API, see
``tests/node_api.json``). A family whose module fails to import is logged and skipped, so one broken optional
piece does not take the whole pack down.

Retired ids stay registered: a family module lists them in ``DEPRECATED_NODES`` (classes made by
``base.deprecated_alias``, ``DEPRECATED = True``), and tests/node_api.json lists them under ``"deprecated"``.
ComfyUI hides deprecated nodes from search and the node library but loads and runs saved workflows using them.
"""
from __future__ import annotations

import importlib
import logging

log = logging.getLogger("LongAnim")

FAMILIES = ["noise_nodes", "window_nodes", "travel_nodes", "attention_nodes", "refine_nodes", "metrics_nodes",
            "creative_nodes", "ui_nodes", "cache_nodes"]


def _collect() -> list[type]:
    classes: list[type] = []
    for name in FAMILIES:
        try:
            module = importlib.import_module(f"{__package__}.{name}")
        except Exception:  # pragma: no cover - reported in the server log
            log.exception("LongAnim: node family %s could not be imported", name)
            continue
        classes.extend(module.NODES)
        classes.extend(getattr(module, "DEPRECATED_NODES", []))
    return classes


NODE_CLASSES = _collect()
NODE_CLASS_MAPPINGS = {cls.NODE_ID: cls for cls in NODE_CLASSES}
NODE_DISPLAY_NAME_MAPPINGS = {cls.NODE_ID: cls.DISPLAY_NAME for cls in NODE_CLASSES}
DEPRECATED_IDS = sorted(node_id for node_id, cls in NODE_CLASS_MAPPINGS.items() if getattr(cls, "DEPRECATED", False))
