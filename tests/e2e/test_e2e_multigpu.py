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
