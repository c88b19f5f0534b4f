"""e2e, issue 11: a deprecated node still executes through the real server (saved workflows keep running).

A server of its own loads the test-only pack tests/deprecation_pack (a deprecated alias of LongAnim: Wan ZoLA
Windows built by ``nodes.base.deprecated_alias``, with the input ``context_length`` under its old name
``window_length``). The alias must be reported deprecated in /object_info, accept the old input name, and give
bit for bit the result of the current node.
"""
import os
import pathlib
import sys

import pytest
from reliability_sweep import latents, run_ok, wan_prompt

ROOT = pathlib.Path(__file__).resolve().parents[2]
COMFY = pathlib.Path(os.environ.get("LONGANIM_COMFYUI") or ROOT / ".host" / "ComfyUI")  # as tests/e2e/conftest.py
PYTHON = os.environ.get("LONGANIM_PYTHON") or sys.executable

ALIAS = "LongAnimTestRetiredWanZoLAWindows"


@pytest.fixture(scope="module")
def dep_server(tmp_path_factory):
    from comfy_client import ComfyServer

    tmp = tmp_path_factory.mktemp("deprecation")
    config = tmp / "extra_paths.yaml"
    config.write_text(f"longanim_deprecation_test:\n  custom_nodes: {ROOT / 'tests' / 'deprecation_pack'}\n")
    srv = ComfyServer(COMFY, PYTHON, output_dir=tmp / "out", extra_args=["--extra-model-paths-config", str(config)])
    srv.start()
    yield srv
    srv.stop()
    lines, bad = srv.log_text().splitlines(), []
    for i, line in enumerate(lines):  # each traceback: header, indented frames, exception line
        if line.startswith("Traceback (most recent call last):"):
            j = i + 1
            while j < len(lines) and (lines[j].startswith(" ") or not lines[j].strip()):
                j += 1
            block = "\n".join(lines[i:j + 1])
            if any(p in block for p in ("deprecation_pack", "custom_nodes/LongAnim/", f"{ROOT}/nodes/")):
                bad.append(block)
    assert not bad, bad  # ComfyUI's own import failures (torchaudio, ...) are not ours


def test_deprecated_node_is_hidden_but_still_executes(dep_server):
    info = dep_server.get(f"/object_info/{ALIAS}")[ALIAS]
    current = dep_server.get("/object_info/LongAnimWanZoLAWindows")["LongAnimWanZoLAWindows"]
    assert info.get("deprecated") is True and not current.get("deprecated"), info
    assert "window_length" in info["input"]["required"] and "context_length" not in info["input"]["required"]
    assert info["input"]["required"]["window_length"] == current["input"]["required"]["context_length"]

    results = {}
    for kind in ("current", "alias"):
        prompt, sampler = wan_prompt(prefix=f"dep_{kind}", seed=7)
        if kind == "alias":  # what a workflow saved before the rename holds
            windows = next(k for k, v in prompt.items() if v["class_type"] == "LongAnimWanZoLAWindows")
            inputs = prompt[windows]["inputs"]
            inputs["window_length"] = inputs.pop("context_length")
            prompt[windows]["class_type"] = ALIAS
        entry = run_ok(dep_server, prompt, must_run=[sampler])
        results[kind] = latents(dep_server, entry)[f"dep_{kind}"][0]
    assert results["alias"].shape == results["current"].shape
    assert results["alias"].numpy().tobytes() == results["current"].numpy().tobytes()


def test_alias_pack_is_test_only():
    assert not (pathlib.Path(COMFY) / "custom_nodes" / "longanim_test_deprecated").exists()
