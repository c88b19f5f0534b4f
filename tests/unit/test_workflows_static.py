"""Static checks of the example workflows (``workflows/*.json``, UI format) without ComfyUI.

The browser test (tests/e2e/test_e2e_browser.py) loads them in the real frontend; these checks catch a broken
file, a dangling link, a LongAnim node whose inputs differ from the frozen API (tests/node_api.json) or widget
values that cannot line up with the node's widgets, in milliseconds.
"""
import json
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / "workflows").glob("*.json"))
API = json.loads((ROOT / "tests" / "node_api.json").read_text())
THIRD_PARTY = {"ADE_": "AnimateDiff-Evolved", "VHS_": "VideoHelperSuite", "ACN_": "Advanced-ControlNet"}
VIRTUAL = {"Note", "MarkdownNote", "Reroute", "PrimitiveNode"}
SEED_NAMES = {"seed", "noise_seed"}  # INT widgets the frontend follows with a control_after_generate value


def test_there_are_workflows():
    assert len(WORKFLOWS) >= 7, [p.name for p in WORKFLOWS]


@pytest.fixture(params=WORKFLOWS, ids=[p.stem for p in WORKFLOWS])
def workflow(request):
    return request.param, json.loads(request.param.read_text())


def test_format_and_thumbnail(workflow):
    path, data = workflow
    assert data.get("version") == 0.4 and isinstance(data.get("links"), list) and isinstance(data.get("groups"), list)
    assert any(n["type"] not in VIRTUAL for n in data["nodes"]), "no nodes"
    ids = [n["id"] for n in data["nodes"]]
    assert len(ids) == len(set(ids)), "duplicate node ids"
    assert data["last_node_id"] >= max(ids) and data["last_link_id"] >= max([lk[0] for lk in data["links"]] or [0])
    thumb = path.with_suffix(".jpg")
    assert thumb.exists(), f"{path.name} has no same-name .jpg thumbnail"
    assert thumb.read_bytes()[:3] == b"\xff\xd8\xff", f"{thumb.name} is not a JPEG"


def test_links_reference_existing_slots(workflow):
    _, data = workflow
    nodes = {n["id"]: n for n in data["nodes"]}
    for lid, src, src_slot, dst, dst_slot, type_ in data["links"]:
        assert src in nodes and dst in nodes, f"link {lid} joins missing nodes {src} -> {dst}"
        out = nodes[src]["outputs"][src_slot]
        assert lid in (out.get("links") or []), f"link {lid} not listed on {nodes[src]['type']} output {src_slot}"
        inp = nodes[dst]["inputs"][dst_slot]
        assert inp["link"] == lid, f"link {lid} not on {nodes[dst]['type']} input {inp['name']}"
        assert type_ == out["type"], f"link {lid} type {type_} != output type {out['type']}"
        assert inp["type"] in (type_, "*") or type_ == "*", f"link {lid}: {type_} into {inp['name']} ({inp['type']})"
    linked = {lk[0] for lk in data["links"]}
    for node in data["nodes"]:
        for inp in node.get("inputs", []):
            assert inp.get("link") is None or inp["link"] in linked, f"{node['type']}.{inp['name']} dangling link"


def test_widget_values_line_up(workflow):
    _, data = workflow
    for node in data["nodes"]:
        if node["type"] in VIRTUAL:
            assert node.get("widgets_values"), f"empty {node['type']}"
            continue
        widgets = [i["name"] for i in node.get("inputs", []) if "widget" in i]
        expected = len(widgets) + sum(1 for w in widgets if w in SEED_NAMES)
        assert len(node.get("widgets_values", [])) == expected, (
            f"{node['type']}#{node['id']}: {len(node.get('widgets_values', []))} widget values for widgets "
            f"{widgets} (+1 control value per seed)")
        for name, value in zip(widgets, node["widgets_values"], strict=False):
            if name in SEED_NAMES:
                break  # positions after a seed shift by its control value; checked by the count above
            assert value not in ("fixed", "randomize", "increment", "decrement"), \
                f"{node['type']}.{name} holds a seed control value: widget order is off"


def test_longanim_nodes_match_frozen_api(workflow):
    _, data = workflow
    for node in data["nodes"]:
        if not node["type"].startswith("LongAnim") or node["type"] not in API:
            continue  # nodes newer than the freeze are checked by the browser test against /object_info
        api = API[node["type"]]
        names = [i["name"] for i in node.get("inputs", [])]
        assert set(names) == set(api["required"]) | set(api["optional"]), (
            f"{node['type']}: inputs {sorted(names)} != frozen {sorted(api['required'] + api['optional'])}")
        linked = {i["name"] for i in node["inputs"] if i.get("link") is not None}
        links_only = {i["name"] for i in node["inputs"] if "widget" not in i}
        missing = (links_only & set(api["required"])) - linked
        assert not missing, f"{node['type']}: required inputs not connected: {sorted(missing)}"


def test_third_party_packs_are_declared_in_a_note(workflow):
    path, data = workflow
    notes = " ".join(str(v) for n in data["nodes"] if n["type"] in VIRTUAL for v in n.get("widgets_values", []))
    for node in data["nodes"]:
        for prefix, pack in THIRD_PARTY.items():
            if node["type"].startswith(prefix):
                assert pack in notes, f"{path.name} uses {node['type']} but no Note names {pack}"


def test_models_are_named_in_a_note(workflow):
    path, data = workflow
    notes = " ".join(str(v) for n in data["nodes"] if n["type"] in VIRTUAL for v in n.get("widgets_values", []))
    for node in data["nodes"]:
        for value in node.get("widgets_values") or []:
            if isinstance(value, str) and value.endswith((".safetensors", ".ckpt", ".pth")):
                assert value in notes, f"{path.name}: model file {value} is not listed in the Note"
