"""Tier 3 (e2e): the real ComfyUI server started by the tests, the pack loaded from ``custom_nodes/``.

The host must have been set up by ``python3 tests/tools/longanim.py setup`` (the README test command does it).
"""
import os
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
COMFY = pathlib.Path(os.environ.get("LONGANIM_COMFYUI") or ROOT / ".host" / "ComfyUI")
PYTHON = os.environ.get("LONGANIM_PYTHON") or sys.executable
sys.path.insert(0, str(ROOT / "tests" / "tools"))

if not (COMFY / "custom_nodes" / "LongAnim").exists():
    if os.environ.get("LONGANIM_COMFYUI"):
        raise RuntimeError(f"{COMFY} has no custom_nodes/LongAnim link: run python3 tests/tools/longanim.py setup")
    collect_ignore_glob = ["test_*.py"]


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/e2e/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    from comfy_client import ComfyServer
    from reliability_sweep import SERVER_ARGS  # previews on: every sampler step is a progress (and cancel) point

    srv = ComfyServer(COMFY, PYTHON, output_dir=tmp_path_factory.mktemp("comfy-output"), extra_args=SERVER_ARGS)
    srv.start()
    yield srv
    srv.stop()
    bad = [tb for tb in traceback_blocks(srv.log_text()) if is_pack_defect(tb)]
    assert not bad, "server log has tracebacks from the pack:\n" + "\n---\n".join(bad)[:4000]


def traceback_blocks(log: str) -> list[str]:
    """Each Python traceback in a log: the header, its indented frames and the exception line."""
    blocks, lines = [], log.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("Traceback (most recent call last):"):
            j = i + 1
            while j < len(lines) and (lines[j].startswith(" ") or not lines[j].strip()):
                j += 1
            blocks.append("\n".join(lines[i:j + 1]))
    return blocks


def is_pack_defect(block: str) -> bool:
    """A traceback through the pack's files that is not one of its deliberate input errors or a cancel."""
    from_pack = "custom_nodes/LongAnim/" in block or str(ROOT) + "/nodes/" in block
    last = block.strip().splitlines()[-1]
    deliberate = last.startswith(("ValueError", "comfy.model_management.InterruptProcessingException"))
    return from_pack and not deliberate


@pytest.fixture(scope="session")
def object_info(server):
    return server.get("/object_info")
