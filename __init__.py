"""LongAnim: long, consistent animations from short video models, as ComfyUI nodes.

Import-safe: nothing here touches ComfyUI unless ComfyUI is the one importing us. Node classes are
classic (V1) definitions registered through ``NODE_CLASS_MAPPINGS``; see README "Design notes".
"""
WEB_DIRECTORY = "./js"

try:  # feature detection: are we running inside a ComfyUI host?
    import comfy.samplers  # noqa: F401
except ImportError:  # plain python / unit tests: expose nothing
    NODE_CLASS_MAPPINGS = {}
    NODE_DISPLAY_NAME_MAPPINGS = {}
else:
    from .nodes.registry import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS  # noqa: F401

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
