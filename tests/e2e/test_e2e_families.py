"""e2e: every video model family's example workflow through the real server.

Families and the builder keys of their files (``workflows/<title>.json``, written by
``tests/tools/make_workflows.py``): Wan 2.1 I2V (``longanim_wan21_i2v_long``), Wan 2.2 A14B I2V with its two experts
(``longanim_wan22_i2v_two_experts``), Wan 2.2 5B TI2V (``longanim_wan22_ti2v_5b``), LTX-Video (``longanim_ltxv_long``)
and HunyuanVideo T2V (``longanim_hunyuan_t2v_long``).

Each test queues the tiny-model variant of a family workflow (``make_workflows.build_workflows(tiny=True)``: the
host's random-weight family models of ``tests/tools/tiny_families.py``, 2-4 steps, 32-64 px) as the API prompt the
frontend would send for it (``make_workflows.to_api``). The test adds read-out nodes to the prompt, never to the
workflow: ``SaveLatent`` on every sampler's output (shape, finite values) and ``LongAnimVideoMetrics`` with
``PreviewAny``, whose report names the window schedule the LongAnim window loop recorded for that output (so the
windows ran inside that sampler). Decoded videos are checked for their frame count and size.

The committed full-size workflows are checked against the server too: they are what the builders make from this
server's node definitions and ``/prompt`` refuses them only for the model and image files the test host does not
have (connections, saved view and titles of every workflow: tests/e2e/test_e2e_browser.py).
"""
import json
import pathlib
import re
import sys

import pytest
from comfy_client import ServerError, execution_error

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "tools"))
import make_workflows as mw  # noqa: E402

FAMILIES = list(mw.FAMILY_BUILDERS)
SAMPLERS = {"KSampler", "KSamplerAdvanced"}
# Tiny variants: latent [channels, latent frames, h, w] of each sampler's output, decoded video frames (None: the
# tiny variant saves the LATENT; no tiny VAE of that family on the host).
EXPECTED = {
    "longanim_wan21_i2v_long": ((16, 11, 4, 4), 41),
    "longanim_wan22_i2v_two_experts": ((16, 11, 4, 4), 41),
    "longanim_wan22_ti2v_5b": ((48, 11, 4, 4), None),
    "longanim_ltxv_long": ((128, 13, 2, 2), None),
    "longanim_hunyuan_t2v_long": ((16, 11, 4, 4), 41),
}
WINDOWS_RE = re.compile(r"recorded by the LongAnim window loop \((\d+) windows of the run's last step\)")
BORDERS_RE = re.compile(r"^Window borders: .*$", re.M)


# Test conditioning families the tiny variants need beyond the text tokens: what the model reads besides them.
NEEDS_FAMILY = {"longanim_ltxv_long": ("ltxv", "T5's attention_mask, an argument of LTXVModel"),
                "longanim_hunyuan_t2v_long": ("hunyuan", "CLIP-L's pooled_output, HunyuanVideo's vector_in")}


def tiny_workflow(object_info: dict, name: str) -> dict:
    family, what = NEEDS_FAMILY.get(name, (None, ""))
    if family and family not in object_info["TinyTestConditioning"]["input"]["required"]["family"][0]:
        # a test pack without the family is a broken test setup, not a reason to leave the family untested
        pytest.fail(f"tests/testpack's TinyTestConditioning has no family {family!r} ({what}); add it there")
    return mw.build_workflows(object_info, tiny=True, names={name})[name]


def test_a_test_pack_without_a_family_fails_the_test():
    """The family tests cannot pass by skipping: a test pack that lacks a family's conditioning fails them."""
    info = {"TinyTestConditioning": {"input": {"required": {"family": [["sd15", "wan21"]]}}}}
    with pytest.raises(BaseException) as caught:
        tiny_workflow(info, "longanim_ltxv_long")
    assert isinstance(caught.value, pytest.fail.Exception), type(caught.value)
    assert "no family 'ltxv'" in str(caught.value)


def tiny_prompt(object_info: dict, name: str) -> dict:
    return mw.to_api(tiny_workflow(object_info, name), object_info)


def add_readouts(prompt: dict, tag: str) -> dict[str, dict]:
    """Per sampler node: a SaveLatent and a Video Metrics report of its output, ``{sampler id: {latent, report}}``."""
    out = {}
    for nid in sorted((k for k, v in prompt.items() if v["class_type"] in SAMPLERS), key=int):
        ids = [str(max(map(int, prompt)) + i) for i in (1, 2, 3)]
        prompt[ids[0]] = {"class_type": "SaveLatent", "inputs": {"samples": [nid, 0],
                                                                "filename_prefix": f"e2e_families/{tag}_{nid}"}}
        prompt[ids[1]] = {"class_type": "LongAnimVideoMetrics", "inputs": {"latent": [nid, 0], "window_length": 0,
                                                                           "mawe_max_side": 0}}
        prompt[ids[2]] = {"class_type": "PreviewAny", "inputs": {"source": [ids[1], 4]}}
        out[nid] = {"latent": ids[0], "report": ids[2]}
    return out


def run(server, prompt: dict) -> dict:
    entry = server.run(prompt, timeout=300)
    err = execution_error(entry)
    assert err is None, f"{err['node_type']}: {err['exception_message']}\n{''.join(err.get('traceback', [])[-6:])}"
    assert entry["status"]["status_str"] == "success", entry["status"]
    return entry


def load_latent(server, entry: dict, node: str):
    from safetensors.torch import load_file

    files = server.output_files({"outputs": {node: entry["outputs"][node]}}, kind="latents")
    assert len(files) == 1 and files[0].exists(), entry["outputs"][node]
    return load_file(str(files[0]))["latent_tensor"]


def report(entry: dict, node: str) -> str:
    return "".join(entry["outputs"][node]["text"])


def windows_in(text: str) -> int:
    found = WINDOWS_RE.search(text)
    assert found, f"the sampler's output carries no LongAnim window record:\n{text}"
    return int(found.group(1))


def video_frames(server, entry: dict) -> list[tuple[int, tuple[int, int]]]:
    """(frames, size) of every animated WEBP the prompt saved."""
    from PIL import Image

    out = []
    for path in server.output_files(entry):
        with Image.open(path) as im:
            out.append((getattr(im, "n_frames", 1), im.size))
    return out


# ------------------------------------------------------------------------------------------ tiny runs
@pytest.mark.parametrize("name", FAMILIES)
def test_family_workflow_runs_with_windows(server, object_info, name):
    """The tiny variant runs; every sampler's output has the family's latent shape, finite values and a window record
    of at least two windows (the video is longer than one window); decoded videos have every frame."""
    prompt = tiny_prompt(object_info, name)
    readouts = add_readouts(prompt, name)
    assert readouts, "the workflow has no sampler"
    entry = run(server, prompt)
    shape, frames = EXPECTED[name]
    for sampler, ids in readouts.items():
        x = load_latent(server, entry, ids["latent"])
        assert tuple(x.shape) == (1, *shape), (sampler, tuple(x.shape))
        assert x.isfinite().all(), sampler
        assert windows_in(report(entry, ids["report"])) >= 2
    videos = video_frames(server, entry)
    assert videos == ([(frames, (32, 32))] if frames else []), videos


def test_wan21_i2v_retain_first_frame_reaches_the_window_loop(server, object_info):
    """The same prompt with retain_first_frame off gives another video: the workflow's setting is what ran."""
    name = "longanim_wan21_i2v_long"
    results = []
    for keep in (True, False):
        prompt = tiny_prompt(object_info, name)
        for node in prompt.values():
            if node["class_type"] == "LongAnimWanZoLAWindowsV2":
                assert node["inputs"]["retain_first_frame"] is True
                node["inputs"]["retain_first_frame"] = keep
        ids = add_readouts(prompt, f"{name}_keep{int(keep)}")
        entry = run(server, prompt)
        results.append(load_latent(server, entry, next(iter(ids.values()))["latent"]))
    assert not results[0].equal(results[1])


def test_wan22_low_noise_expert_continues_the_first_experts_windows(server, object_info):
    """Both experts run windows; the second sampler's last step (global step 3 of 4) draws the windows a single
    4-step sampler with the same seed draws at its last step: it continues the first sampler's schedule."""
    name = "longanim_wan22_i2v_two_experts"
    ui = tiny_workflow(object_info, name)
    by_title = {n.get("title"): str(n["id"]) for n in ui["nodes"]}
    high, low = by_title["high-noise expert: steps 0-1"], by_title["low-noise expert: steps 2-3"]
    prompt = mw.to_api(ui, object_info)
    ids = add_readouts(prompt, name)
    entry = run(server, prompt)
    chained = [report(entry, ids[nid]["report"]) for nid in (high, low)]
    assert all(windows_in(text) >= 2 for text in chained)

    single = mw.to_api(ui, object_info)  # the high-noise expert alone, all 4 steps
    single[high]["inputs"].update(end_at_step=10000, return_with_leftover_noise="disable")
    for nid, node in list(single.items()):
        if nid == low or node["class_type"] in ("VAEDecode", "SaveAnimatedWEBP"):
            del single[nid]
    low_windows = by_title["windows: low-noise expert"]
    for nid in (low_windows, single[low_windows]["inputs"]["model"][0]):
        del single[nid]
    one = add_readouts(single, name + "_single")
    text = report(run(server, single), one[high]["report"])
    assert windows_in(text) >= 2
    assert BORDERS_RE.search(text).group(0) == BORDERS_RE.search(chained[1]).group(0), (text, chained[1])


# ------------------------------------------------------------------------------------------ full-size files
LAYOUT = ("size", "inputs", "outputs")  # what a workflow node copies from its node definition


def sockets(node: dict) -> tuple:
    return tuple((s["name"], s["type"]) for s in node.get("inputs") or []), \
        tuple((s["name"], s["type"]) for s in node.get("outputs") or [])


def stale_parts(data: dict, built: dict, object_info: dict) -> list[str]:
    """Where a committed workflow differs from what its builder makes from this server's node definitions.

    The files are made on the CI host. A core node that this server defines with other sockets (current ComfyUI
    gives ``SaveAnimatedWEBP`` an IMAGE output and ``LTXVAddGuide`` two optional inputs) differs there by
    construction: its sockets, its height, the positions of the nodes laid out around it and the saved view fitted
    to them. Those are left out when a core node's sockets differ; everything else (nodes, types, titles, widget
    values, links, the sockets and sizes of LongAnim's and third-party nodes) must be equal on every host.
    """
    if data == built:
        return []
    made = {n["id"]: n for n in built["nodes"]}

    def core(node_type: str) -> bool:  # third-party nodes are not on the server: described by make_workflows
        return not str(object_info.get(node_type, {}).get("python_module", "custom_nodes")).startswith("custom_nodes")

    drift = {n["id"] for n in data["nodes"]
             if n["id"] in made and core(n["type"]) and sockets(n) != sockets(made[n["id"]])}

    def comparable(wf: dict) -> dict:
        if not drift:
            return wf
        nodes = [{k: v for k, v in n.items() if k != "pos" and not (n["id"] in drift and k in LAYOUT)}
                 for n in wf["nodes"]]
        return {**{k: v for k, v in wf.items() if k != "extra"}, "nodes": nodes}

    a, b = comparable(data), comparable(built)
    parts = [k for k in sorted(set(a) | set(b)) if k != "nodes" and a.get(k) != b.get(k)]
    parts += [f"node {x.get('id')} ({x.get('type')})" for x, y in zip(a["nodes"], b["nodes"]) if x != y]
    if len(a["nodes"]) != len(b["nodes"]):
        parts.append(f"{len(a['nodes'])} nodes, the builder makes {len(b['nodes'])}")
    return parts


def test_family_workflow_files_are_current(object_info):
    """Each committed family workflow is what its builder makes from this server's node definitions (else: run
    ``tests/tools/make_workflows.py --only <key>``). That every workflow is connected, shows all its nodes at its
    saved view and cuts no title is checked in the browser test (tests/e2e/test_e2e_browser.py)."""
    built = mw.build_workflows(object_info, names=set(FAMILIES))
    for name in FAMILIES:
        path = mw.workflow_path(name)
        assert path.exists() and path.with_suffix(".jpg").exists(), f"{path.name} or its thumbnail is missing"
        data = json.loads(path.read_text())
        stale = stale_parts(data, built[name], object_info)
        assert not stale, f"{path.name} is stale ({', '.join(stale)}): run tests/tools/make_workflows.py --only {name}"
        notes = " ".join(str(v) for n in data["nodes"] if n["type"] == "Note" for v in n["widgets_values"])
        assert "VIDEO frames" in notes, f"{path.name}: the Note does not say which frame counts are video frames"


MODEL_INPUTS = {"unet_name", "vae_name", "clip_name", "clip_name1", "clip_name2", "ckpt_name", "image"}


@pytest.mark.parametrize("name", FAMILIES)
def test_full_size_workflow_is_refused_only_for_missing_model_files(server, name):
    """POST /prompt of the committed file (as the frontend sends it): the server's validation finds nothing wrong
    but the model and image files this host does not have."""
    data = json.loads(mw.workflow_path(name).read_text())
    prompt = mw.to_api(data, server.get("/object_info"))
    with pytest.raises(ServerError) as err:
        server.queue(prompt)
    body = json.loads(str(err.value).split(": ", 1)[1])
    problems = [(nid, e["type"], e.get("extra_info", {}).get("input_name"), e.get("details", ""))
                for nid, node in body.get("node_errors", {}).items() for e in node["errors"]]
    assert problems, body
    missing_file = [p for p in problems if p[2] in MODEL_INPUTS and (
        p[1] == "value_not_in_list" or (p[1] == "custom_validation_failed" and "Invalid image file" in p[3]))]
    assert len(missing_file) == len(problems), ([p for p in problems if p not in missing_file], body)


@pytest.mark.parametrize("name", ["longanim_ltxv_long", "longanim_hunyuan_t2v_long"])
def test_attention_expansion_global_blend_runs_in_the_family_workflow(server, object_info, name):
    """LongAnim: Attention Expansion with global_blend freelong put between the model and the window node of the
    LTX-Video / HunyuanVideo workflow (windows of 6 / 5 latent frames, attention windows of 3: the windows supply
    the temporal frequencies from 1/3 cycle per frame up): the server runs it,
    the output keeps its shape, is finite and differs from the workflow without the node."""
    outputs = {}
    for blend in (None, "freelong"):
        prompt = tiny_prompt(object_info, name)
        if blend is not None:
            (win,) = [k for k, v in prompt.items() if v["class_type"] == "LongAnimZoLAWindowsV2"]
            nid = str(max(map(int, prompt)) + 1)
            prompt[nid] = {"class_type": "LongAnimAttentionExpansionV2",
                           "inputs": {"model": prompt[win]["inputs"]["model"], "context_length": 3, "stride": 0,
                                      "max_windows_per_batch": 0, "global_blend": blend}}
            prompt[win]["inputs"]["model"] = [nid, 0]
        readouts = add_readouts(prompt, f"{name}_{blend}")
        entry = run(server, prompt)
        (ids,) = readouts.values()
        outputs[blend] = load_latent(server, entry, ids["latent"])
    shape, _ = EXPECTED[name]
    assert tuple(outputs["freelong"].shape) == (1, *shape) and outputs["freelong"].isfinite().all()
    assert (outputs["freelong"] - outputs[None]).abs().max() > 1e-4
