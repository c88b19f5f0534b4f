"""Refreeze tests/node_api.json after ADDING nodes or inputs (run with the host python).

    .host/venv/bin/python tests/tools/freeze_api.py

Removing or renaming a frozen id/input is not done here: keep the old id registered as a deprecated alias
(``nodes.base.deprecated_alias`` in a family's ``DEPRECATED_NODES``) and list it under "deprecated" by hand, with a
migration note in CHANGELOG.md. Frozen entries of ids that left the live list are kept as they were.
"""
import json
import os
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, os.environ.get("LONGANIM_COMFYUI") or str(ROOT / ".host" / "ComfyUI"))
sys.path.insert(0, str(ROOT / "tests"))
import comfy.cli_args  # noqa: E402

comfy.cli_args.args.cpu = True
import conftest  # noqa: E402,F401  (registers the ``longanim`` alias)

sys.path.append(str(ROOT / "tests" / "comfy"))
import test_api_freeze  # noqa: E402

api_path = ROOT / "tests" / "node_api.json"
old = json.loads(api_path.read_text()) if api_path.exists() else {}
new = test_api_freeze.current_api(include_deprecated=False)
deprecated = old.get("deprecated", [])
for node_id in deprecated:
    if node_id in old and node_id not in new:  # a retired id keeps its frozen inputs (saved workflows use them)
        new[node_id] = old[node_id]
new = dict(sorted(new.items()))
new["deprecated"] = deprecated
api_path.write_text(json.dumps(new, indent=1) + "\n")
print(f"wrote {api_path}: {len(new) - 1} nodes")
