"""e2e: LongAnim windows across core's MultiGPU clones through the real server (ComfyUI 0.28.0+).

The prompt is what a user wires: UNETLoader -> core's MultiGPU CFG Split (``MultiGPU_WorkUnits``, max_gpus 2) ->
LongAnim: ZoLA Windows -> KSampler. On this CPU-only host the test pack's ``TinyTestSecondCPUDevice`` (before core's
node) makes the server's device list name the CPU twice, so core's node deep-clones the model onto ``cpu:1`` with
its own worker thread; core is not patched. On ComfyUI 0.3.75 (CI) core has no such node and these tests skip.

What this CANNOT show without GPUs: a speed-up (both CPU "devices" share the cores), copies between device memories
(all tensors stay in host memory), and per-GPU memory limits; ``tests/benchmarks/bench_multigpu.py`` measures speed
on a GPU machine. The split itself, its equality and cancel are tier 2 (tests/comfy/test_comfy_multigpu.py), with
the windows each device evaluated.
"""
import threading
import time

import pytest
from comfy_client import Graph, execution_error

FRAMES = 24


@pytest.fixture(scope="module")
def engine(object_info):
    if "MultiGPU_WorkUnits" not in object_info:
        pytest.skip("this ComfyUI has no multi-GPU engine (core's MultiGPU_WorkUnits node arrived in 0.28.0); run "
                    "against a 0.28.0+ host, e.g. 0.33.0")
    if "TinyTestSecondCPUDevice" not in object_info:
        pytest.fail("tests/testpack has no TinyTestSecondCPUDevice: the test server cannot get a second device")


def graph(devices: int, steps: int = 3, name: str = "e2e_mgpu") -> tuple[dict, str]:
    g = Graph()
    model, _vae, pos, neg = g.tiny_model("wan21")
    if devices > 1:
        model = g.out(g.node("TinyTestSecondCPUDevice", model=model))
        model = g.out(g.node("MultiGPU_WorkUnits", model=model, max_gpus=devices))
    model = g.out(g.node("LongAnimZoLAWindows", model=model, context_length=6, stride=4, max_skip=1,
                         fusion="zola", seed=0, max_windows_per_batch=1))
    latent = g.node("EmptyHunyuanLatentVideo", width=32, height=32, length=4 * FRAMES - 3, batch_size=1)
    sampled = g.node("KSampler", model=model, seed=3, steps=steps, cfg=1.0, sampler_name="euler",
                     scheduler="normal", positive=pos, negative=neg, latent_image=g.out(latent), denoise=1.0)
    save = g.node("SaveLatent", samples=g.out(sampled), filename_prefix=name)
    return g.prompt(), save


def latent_of(server, entry: dict, node: str):
    from safetensors.torch import load_file

    files = server.output_files({"outputs": {node: entry["outputs"][node]}}, kind="latents")
    assert len(files) == 1 and files[0].exists(), entry["outputs"][node]
    return load_file(str(files[0]))["latent_tensor"]


def run(server, devices: int, steps: int = 3, name: str = "e2e_mgpu"):
    prompt, save = graph(devices, steps, name)
    entry = server.run(prompt)
    assert entry["status"]["status_str"] == "success", entry["status"]
    return latent_of(server, entry, save)


def test_two_devices_give_the_one_device_latent(server, engine):
    import torch

    one = run(server, 1, name="e2e_mgpu_one")
    two = run(server, 2, name="e2e_mgpu_two")
    assert one.shape == (1, 16, FRAMES, 4, 4)
    assert torch.equal(one, two), "cfg 1, one window per call: every window's call is the same on either device"
    assert "Creating deepclone of WAN21 for cpu:1" in server.log_text(), "core made the second device's clone"


def test_cancel_mid_run_then_the_next_run_is_unchanged(server, engine):
    import torch

    reference = run(server, 2, name="e2e_mgpu_ref")
    prompt, _ = graph(2, steps=300, name="e2e_mgpu_cancel")
    prompt_id = server.queue(prompt)
    timer = threading.Timer(2.0, server.interrupt)
    timer.start()
    try:
        entry = server.wait(prompt_id, timeout=600)
    finally:
        timer.cancel()
    assert entry["status"]["status_str"] == "error", "the 300-step run was cancelled before its end"
    assert execution_error(entry) is None, "an interrupt, not a crash"
    assert not entry.get("outputs"), "nothing saved"
    time.sleep(0.5)
    assert torch.equal(reference, run(server, 2, name="e2e_mgpu_after")), "nothing of the cancelled run is left"


@pytest.mark.parametrize("core_first", [True, False], ids=["core_node_first", "window_node_first"])
def test_changing_a_longanim_setting_and_running_again(server, engine, core_first):
    """The same graph run again with another window seed, core's node before or after the window node: when it is
    after, core's node runs again and scans the loaded models for the other device's copy (``reuse_loaded=True``;
    in-process that scan fails on a freed patcher, tests/comfy/test_comfy_multigpu.py ``on_two_cpus``); through the
    server every run succeeds."""
    for seed in (0, 1, 2):
        g = Graph()
        model, _vae, pos, neg = g.tiny_model("wan21")
        model = g.out(g.node("TinyTestSecondCPUDevice", model=model))
        windows = {"context_length": 6, "stride": 4, "max_skip": 1, "fusion": "zola", "seed": seed}
        if core_first:
            model = g.out(g.node("MultiGPU_WorkUnits", model=model, max_gpus=2))
        model = g.out(g.node("LongAnimZoLAWindows", model=model, **windows))
        if not core_first:
            model = g.out(g.node("MultiGPU_WorkUnits", model=model, max_gpus=2))
        latent = g.node("EmptyHunyuanLatentVideo", width=32, height=32, length=4 * 12 - 3, batch_size=1)
        sampled = g.node("KSampler", model=model, seed=3, steps=2, cfg=1.0, sampler_name="euler",
                         scheduler="normal", positive=pos, negative=neg, latent_image=g.out(latent), denoise=1.0)
        g.node("SaveLatent", samples=g.out(sampled), filename_prefix=f"e2e_mgpu_rerun_{core_first}_{seed}")
        entry = server.run(g.prompt())
        assert entry["status"]["status_str"] == "success", (seed, execution_error(entry))


# ------------------------------------------------------------------------------------- the example workflow
# workflows/LongAnim - Wan 2.1 text to video on several GPUs, 241 frames.json: core's MultiGPU CFG Split right after
# the loader, LongAnim: ZoLA Windows (Wan), KSampler. On ComfyUI 0.28.0+ every test below runs it fully; on an older
# ComfyUI (the CI's 0.3.75) each checks what it can (the file is current, the rest of the graph validates and runs
# with core's node bypassed, as the workflow's Note tells such a user) and then skips, naming the missing node.
WORKFLOW_KEY = "longanim_wan_t2v_multigpu"
CORE_NODE = "MultiGPU_WorkUnits"


def _mw():
    import pathlib
    import sys

    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tests" / "tools"))
    import make_workflows

    return make_workflows


def _skip_without_core(newer: dict, what: str) -> None:
    if newer:
        pytest.skip(f"{what}; core node(s) {', '.join(f'{t} (ComfyUI {v}+)' for t, v in newer.items())} not in "
                    "this ComfyUI, so the multi-GPU part was not run")


def test_multigpu_workflow_file_is_current_and_declares_the_core_node(object_info):
    """The committed file is what its builder makes from this server's node definitions (else run
    ``tests/tools/make_workflows.py --only longanim_wan_t2v_multigpu``), its Note names the ComfyUI version it needs,
    and on a host with the core node, ``make_workflows.NEWER_CORE`` describes it as the server does."""
    import json

    from test_e2e_families import stale_parts

    mw = _mw()
    path = mw.workflow_path(WORKFLOW_KEY)
    data = json.loads(path.read_text())
    built = mw.build_workflows(object_info, names={WORKFLOW_KEY})[WORKFLOW_KEY]
    stale = stale_parts(data, built, object_info)
    assert not stale, f"{path.name} is stale ({', '.join(stale)}): run make_workflows.py --only {WORKFLOW_KEY}"
    assert [n["type"] for n in data["nodes"]].count(CORE_NODE) == 1
    notes = " ".join(str(v) for n in data["nodes"] if n["type"] == "Note" for v in n["widgets_values"])
    assert f"ComfyUI {mw.NEWER_CORE[CORE_NODE]['since']} or newer" in notes and CORE_NODE in notes, notes
    newer = mw.missing_core_nodes(data, object_info)
    _skip_without_core(newer, "the file is current")
    keys = ("input", "input_order", "output", "output_name", "display_name", "category", "python_module")
    declared = {k: v for k, v in mw.NEWER_CORE[CORE_NODE].items() if k in keys}
    assert declared == {k: object_info[CORE_NODE].get(k) for k in keys}, "make_workflows.NEWER_CORE is out of date"


def test_multigpu_workflow_is_refused_only_for_missing_model_files(server, object_info):
    """POST /prompt of the committed file (as the frontend sends it): the server's validation finds nothing wrong
    but the model files this host does not have: core's node and its max_gpus included (older ComfyUI: with core's
    node bypassed)."""
    import json

    from comfy_client import ServerError
    from test_e2e_families import MODEL_INPUTS

    mw = _mw()
    data = json.loads(mw.workflow_path(WORKFLOW_KEY).read_text())
    newer = mw.missing_core_nodes(data, object_info)
    prompt = mw.to_api(mw.bypassed(data, newer), object_info)
    assert (CORE_NODE in {n["class_type"] for n in prompt.values()}) == (not newer)
    with pytest.raises(ServerError) as err:
        server.queue(prompt)
    body = json.loads(str(err.value).split(": ", 1)[1])
    problems = [(nid, e["type"], e.get("extra_info", {}).get("input_name"))
                for nid, node in body.get("node_errors", {}).items() for e in node["errors"]]
    assert problems and all(p[1] == "value_not_in_list" and p[2] in MODEL_INPUTS for p in problems), body
    _skip_without_core(newer, "the rest of the workflow validates with core's node bypassed")


def test_multigpu_workflow_tiny_variant_runs_on_two_devices(server, object_info):
    """The workflow's tiny variant (same graph, tiny test models, the test pack's second CPU device before core's
    node) through /prompt: core clones the model onto ``cpu:1`` and the video is saved, with no 'windows run on
    one device' notice (the window loop spread the steps). Older ComfyUI: the variant with core's node (and the
    test's second device) bypassed runs on one device."""
    mw = _mw()
    data = mw.build_workflows(object_info, tiny=True, names={WORKFLOW_KEY})[WORKFLOW_KEY]
    newer = mw.missing_core_nodes(data, object_info)
    skip = list(newer) + (["TinyTestSecondCPUDevice"] if newer else [])
    entry = server.run(mw.to_api(mw.bypassed(data, skip), object_info))
    assert entry["status"]["status_str"] == "success", (entry["status"], execution_error(entry))
    files = server.output_files(entry)
    assert len(files) == 1 and files[0].stat().st_size > 0, files
    _skip_without_core(newer, "the tiny variant runs on one device with core's node bypassed")
    log = server.log_text()
    assert "Creating deepclone of WAN21 for cpu:1" in log or "Reusing loaded multigpu deepclone" in log, log[-3000:]
    assert "windows run on one device" not in log, "the window loop fell back to one device"
