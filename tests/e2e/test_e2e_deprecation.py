"""e2e: deprecated nodes still execute through the real server (saved workflows keep running).

A server of its own loads the test-only pack tests/deprecation_pack (a deprecated alias of LongAnim: Wan ZoLA
Windows built by ``nodes.base.deprecated_alias``, with the input ``context_length`` under its old name
``window_length``). The alias must be reported deprecated in /object_info, accept the old input name, and give
bit for bit the result of the current node. The pack's own retired ids (``nodes/vocabulary.py``) must do the same:
prompts saved with the old ids and input names give the current nodes' latents bit for bit.
"""
import os
import pathlib
import sys

import pytest
from reliability_sweep import latents, run_ok, sd_prompt, wan_prompt

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
    current = dep_server.get("/object_info/LongAnimWanZoLAWindowsV2")["LongAnimWanZoLAWindowsV2"]
    assert info.get("deprecated") is True and not current.get("deprecated"), info
    assert "window_length" in info["input"]["required"] and "context_length" not in info["input"]["required"]
    assert info["input"]["required"]["window_length"] == current["input"]["required"]["context_length"]

    results = {}
    for kind in ("current", "alias"):
        prompt, sampler = wan_prompt(prefix=f"dep_{kind}", seed=7)
        if kind == "alias":  # what a workflow saved before the rename holds
            windows = next(k for k, v in prompt.items() if v["class_type"] == "LongAnimWanZoLAWindowsV2")
            inputs = prompt[windows]["inputs"]
            inputs["window_length"] = inputs.pop("context_length")
            prompt[windows]["class_type"] = ALIAS
        entry = run_ok(dep_server, prompt, must_run=[sampler])
        results[kind] = latents(dep_server, entry)[f"dep_{kind}"][0]
    assert results["alias"].shape == results["current"].shape
    assert results["alias"].numpy().tobytes() == results["current"].numpy().tobytes()


def test_alias_pack_is_test_only():
    assert not (pathlib.Path(COMFY) / "custom_nodes" / "longanim_test_deprecated").exists()


def _vocabulary():
    sys.path.insert(0, str(ROOT / "tests"))
    import conftest  # noqa: F401  (registers the ``longanim`` alias)
    from longanim.nodes import vocabulary

    return vocabulary


def saved_before_rename(prompt: dict) -> dict:
    """``prompt`` as a workflow saved before the renames holds it: retired ids and their old input names."""
    vocabulary = _vocabulary()
    old = {}
    for key, node in prompt.items():
        old_id = vocabulary.REPLACES.get(node["class_type"])
        if old_id is None:
            old[key] = node
            continue
        back = {new: name for name, new in vocabulary.RENAMED_NODES[old_id][1].items()}
        old[key] = {**node, "class_type": old_id, "inputs": {back.get(k, k): v for k, v in node["inputs"].items()}}
    return old


def test_retired_ids_are_hidden_with_their_old_names(dep_server):
    vocabulary = _vocabulary()
    info = dep_server.get("/object_info")
    for old_id, (new_id, renamed) in vocabulary.RENAMED_NODES.items():
        assert info[old_id].get("deprecated") is True and not info[new_id].get("deprecated"), old_id
        old_inputs = {n for section in info[old_id]["input"].values() for n in section}
        assert set(renamed) <= old_inputs and not set(renamed.values()) & old_inputs, (old_id, old_inputs)


@pytest.mark.parametrize("make", ["wan", "sd"])
def test_prompt_saved_with_retired_ids_gives_the_same_latents(dep_server, make):
    """Wan: ZoLA Windows (Wan) + Repeat-Mask Noise; SD: ZoLA Windows and Context Windows branches."""
    if make == "wan":
        prompt, sampler = wan_prompt(prefix="ren_wan", seed=5)
        samplers = [sampler]
    else:
        prompt, samplers = sd_prompt(("a", "b"), prefix="ren_sd")
    old = saved_before_rename(prompt)
    assert sum(n["class_type"] != m["class_type"] for n, m in zip(prompt.values(), old.values())) >= 2
    new_out = latents(dep_server, run_ok(dep_server, prompt, must_run=samplers))
    old_out = latents(dep_server, run_ok(dep_server, old, must_run=samplers))
    assert new_out.keys() == old_out.keys() and new_out
    for name in new_out:
        assert new_out[name][0].numpy().tobytes() == old_out[name][0].numpy().tobytes(), name
