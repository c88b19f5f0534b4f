"""Test-only ComfyUI node pack: a deprecated alias of a LongAnim node, made with the pack's own mechanism.

The mechanism on its own, apart from the pack's retired ids: tests/e2e/test_e2e_deprecation.py starts a server with
this folder added to ComfyUI's custom node paths (``--extra-model-paths-config``; extra paths load after
``custom_nodes/``, so LongAnim is already registered). ``LongAnimTestRetiredWanZoLAWindows`` stands for a retired
id whose input ``context_length`` was once called ``window_length``: built by ``nodes.base.deprecated_alias``
exactly as a real retired node would be. Not part of the pack; never installed for users.
"""
import importlib

import nodes

_target = nodes.NODE_CLASS_MAPPINGS["LongAnimWanZoLAWindowsV2"]
_base = importlib.import_module(_target.__module__.rsplit(".", 1)[0] + ".base")

Alias = _base.deprecated_alias("LongAnimTestRetiredWanZoLAWindows", _target, {"window_length": "context_length"},
                               note="Test-only alias.")
NODE_CLASS_MAPPINGS = {Alias.NODE_ID: Alias}
NODE_DISPLAY_NAME_MAPPINGS = {Alias.NODE_ID: Alias.DISPLAY_NAME}
