"""Tier 2: the pack's nodes and patches executed in-process against the installed host's ``comfy`` package.

The host is the one ``tests/tools/longanim.py`` installs (``.host/ComfyUI``) or ``$LONGANIM_COMFYUI``. Models are
the tiny random-weight ones built by ``tests/tools/tiny_models.py``.
"""
import os
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
COMFY = pathlib.Path(os.environ.get("LONGANIM_COMFYUI") or ROOT / ".host" / "ComfyUI")

if not (COMFY / "comfy").is_dir():
    if os.environ.get("LONGANIM_COMFYUI"):
        raise RuntimeError(f"LONGANIM_COMFYUI={COMFY} is not a ComfyUI folder")
    collect_ignore_glob = ["test_*.py"]  # no host: run `python3 tests/tools/longanim.py test`
else:
    if str(COMFY) not in sys.path:
        sys.path.insert(0, str(COMFY))
    import comfy.cli_args

    comfy.cli_args.args.cpu = True
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/comfy/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.comfy)


@pytest.fixture(scope="session")
def host():
    import comfyhelpers

    return comfyhelpers
