"""e2e: the pack loads in the real server, documents itself, and runs long-video workflows through /prompt."""
import json
import pathlib

import pytest
from comfy_client import Graph, execution_error

ROOT = pathlib.Path(__file__).resolve().parents[2]
THIRD_PARTY = {  # node types the example workflows may use from other packs (declared in docs/workflows.md)
    "ADE_AnimateDiffLoaderGen1", "ADE_LoadAnimateDiffModel", "ADE_ApplyAnimateDiffModelSimple",
    "ADE_UseEvolvedSampling", "VHS_VideoCombine", "VHS_LoadVideo", "ACN_AdvancedControlNetApply",
}


def pack_nodes(object_info):
    return {k: v for k, v in object_info.items() if k.startswith("LongAnim")}


def test_every_pack_node_is_listed_and_documented(object_info):
    import sys

    sys.path.insert(0, str(ROOT / "tests"))
    nodes = pack_nodes(object_info)
    api = json.loads((ROOT / "tests" / "node_api.json").read_text())
    api.pop("deprecated", None)
    assert set(api) <= set(nodes), f"missing from the server: {sorted(set(api) - set(nodes))}"
    for node_id, info in nodes.items():
        assert info["description"].strip(), f"{node_id} has no description"
        assert info["display_name"].startswith("LongAnim: "), node_id
        assert info["category"].startswith("LongAnim/"), node_id
        for section in ("required", "optional"):
            for name, spec in info["input"].get(section, {}).items():
                opts = spec[1] if len(spec) > 1 else {}
                assert opts.get("tooltip", "").strip(), f"{node_id}.{name} has no tooltip"
        tips = info.get("output_tooltips") or []
        assert len(tips) == len(info["output"]) and all(t.strip() for t in tips), f"{node_id} output tooltips"


WORKFLOWS = sorted((ROOT / "workflows").glob("*.json"))


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.stem for p in WORKFLOWS])
def test_workflow_files_use_known_node_types(object_info, path):
    """Every node type of the workflow is on this server, or a declared third-party node, or a core node of a newer
    ComfyUI (``make_workflows.NEWER_CORE``): then everything else is checked here and the test skips naming it."""
    import sys

    sys.path.insert(0, str(ROOT / "tests" / "tools"))
    import make_workflows

    data = json.loads(path.read_text())
    types = {n["type"] for n in data.get("nodes", []) if n.get("type") not in make_workflows.VIRTUAL}
    assert types, f"{path.name} has no nodes"
    newer = make_workflows.missing_core_nodes(data, object_info)
    unknown = types - set(object_info) - THIRD_PARTY - set(newer)
    assert not unknown, f"{path.name} uses unknown node types {sorted(unknown)}"
    assert any(t.startswith("LongAnim") and t in object_info for t in types), f"{path.name} uses no LongAnim node"
    if newer:
        pytest.skip(f"{path.name}: core node(s) {', '.join(f'{t} (ComfyUI {v}+)' for t, v in newer.items())} not "
                    "in this ComfyUI; its other node types are known")


def sd_graph(frames=24, windows=True, size=32, steps=2, seed=7, extra_model=None):
    g = Graph()
    model, vae, pos, neg = g.tiny_model("sd15")
    recipe = g.node("LongAnimRepeatMaskNoise", seed=0, ratio=0.5, base_length=8)
    model = g.out(g.node("LongAnimApplyNoiseToModel", model=model, recipe=g.out(recipe, 1)))
    if windows:
        model = g.out(g.node("LongAnimZoLAWindows", model=model, context_length=8, stride=8, max_skip=2,
                             fusion="zola", seed=0))
    if extra_model:
        model = extra_model(g, model)
    latent = g.node("EmptyLatentImage", width=size, height=size, batch_size=frames)
    g.ksample_decode(model, pos, neg, g.out(latent), vae, seed=seed, steps=steps, save="e2e_sd")
    return g


def test_sd_long_video_through_prompt(server):
    entry = server.run(sd_graph().prompt())
    assert execution_error(entry) is None, execution_error(entry)
    files = server.output_files(entry)
    assert len(files) == 24 and all(f.exists() for f in files)


def test_wan_long_video_through_sampler_custom_advanced(server):
    g = Graph()
    model, vae, pos, neg = g.tiny_model("wan21")
    model = g.out(g.node("LongAnimWanZoLAWindows", model=model, context_length=33, stride=25, max_skip=2,
                         fusion="zola", seed=0))
    noise = g.node("LongAnimProgressiveNoise", seed=3, alpha=0.6)
    guider = g.node("CFGGuider", model=model, positive=pos, negative=neg, cfg=5.0)
    sampler = g.node("KSamplerSelect", sampler_name="euler")
    sigmas = g.node("BasicScheduler", model=model, scheduler="simple", steps=3, denoise=1.0)
    latent = g.node("EmptyHunyuanLatentVideo", width=64, height=64, length=93, batch_size=1)
    sampled = g.node("SamplerCustomAdvanced", noise=g.out(noise), guider=g.out(guider), sampler=g.out(sampler),
                     sigmas=g.out(sigmas), latent_image=g.out(latent))
    images = g.node("VAEDecode", samples=g.out(sampled), vae=vae)
    g.node("SaveImage", images=g.out(images), filename_prefix="e2e_wan")
    entry = server.run(g.prompt())
    assert execution_error(entry) is None, execution_error(entry)
    assert len(server.output_files(entry)) > 0


def test_runtime_error_names_the_input_and_server_survives(server):
    def bad(g, model):
        return g.out(g.node("LongAnimContextWindows", model=model, context_schedule="uniform", context_length=8,
                            stride=12, overlap=2, max_skip=1, closed_loop=False, seed=0, fusion="flat"))

    entry = server.run(sd_graph(frames=12, windows=False, extra_model=bad).prompt())
    err = execution_error(entry)
    assert err is not None and "stride" in err["exception_message"]
    assert err["node_type"] == "LongAnimContextWindows"
    entry = server.run(sd_graph(frames=4, windows=False, steps=1).prompt())
    assert execution_error(entry) is None


@pytest.mark.parametrize("frames", [1])
def test_single_frame_latent_works(server, frames):
    entry = server.run(sd_graph(frames=frames, steps=1).prompt())
    assert execution_error(entry) is None, execution_error(entry)
