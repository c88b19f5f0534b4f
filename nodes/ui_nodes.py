"""Canvas UI support (issue 8): no nodes; registers the schedule-preview route the ``js/`` extension calls.

Listed as family ``ui_nodes`` in ``nodes/registry.py``; importing it inside ComfyUI adds
``GET /longanim/schedule_preview`` to the server (see ``comfy_adapter``).
"""
from __future__ import annotations

from . import comfy_adapter

comfy_adapter.register_routes()

NODES: list = []
