"""Canvas UI support: no nodes; registers the schedule-preview route the ``js/`` extension calls.

Listed as family ``ui_nodes`` in ``nodes/registry.py``; importing it inside ComfyUI adds
``GET /longanim/schedule_preview`` to the server (see ``comfy/routes.py``).
"""
from __future__ import annotations

from . import window_nodes
from .comfy import routes

# one validation: the route checks the nodes' own inputs (retired ids: mapped to the nodes that replace them)
routes.register_preview_nodes(window_nodes.NODES + window_nodes.DEPRECATED_NODES)
routes.register_routes()

NODES: list = []
