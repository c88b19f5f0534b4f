"""LongAnim: long, consistent animations from short video models, as ComfyUI nodes.

Import-safe: the nodes are registered only when ComfyUI itself is importing us (its ``comfy`` package is already
loaded); a plain ``import`` (tests, tools) touches no ComfyUI module. Node classes are classic (V1) definitions
registered through ``NODE_CLASS_MAPPINGS``; see docs/design.md.
"""
import sys

WEB_DIRECTORY = "./js"

if "comfy.model_management" in sys.modules:  # feature detection: running inside a ComfyUI host
    from .nodes.registry import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
else:  # plain python / unit tests: expose nothing
    NODE_CLASS_MAPPINGS = {}
    NODE_DISPLAY_NAME_MAPPINGS = {}

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
