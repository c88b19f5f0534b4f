"""Node ids and input names are public API: saved workflows must keep loading.

``tests/node_api.json`` freezes, per node id, its input names. A node or input may be ADDED (then refreeze with
``.host/venv/bin/python tests/tools/freeze_api.py``); one that disappears or is renamed fails
here unless ``tests/node_api.json`` lists it under ``"deprecated"`` and the old id is still registered.
"""
import json
import pathlib

API = pathlib.Path(__file__).resolve().parents[1] / "node_api.json"


def current_api() -> dict:
    from longanim.nodes.registry import NODE_CLASS_MAPPINGS

    api = {}
    for node_id, cls in sorted(NODE_CLASS_MAPPINGS.items()):
        spec = cls.INPUT_TYPES()
        api[node_id] = {section: sorted(spec.get(section, {})) for section in ("required", "optional")}
    return api


def test_frozen_node_ids_and_inputs_still_exist():
    frozen = json.loads(API.read_text())
    deprecated = set(frozen.pop("deprecated", []))
    now = current_api()
    for node_id, sections in frozen.items():
        assert node_id in now, f"node id {node_id} disappeared (keep it registered, deprecated)"
        for section, names in sections.items():
            have = set(now[node_id].get("required", [])) | set(now[node_id].get("optional", []))
            missing = [n for n in names if n not in have and f"{node_id}.{n}" not in deprecated]
            assert not missing, f"{node_id}: inputs {missing} disappeared or were renamed"
            if section == "optional":
                newly_required = [n for n in names if n in now[node_id].get("required", [])]
                assert not newly_required, f"{node_id}: optional inputs {newly_required} became required"


def test_class_names_match_node_ids():
    from longanim.nodes.registry import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

    for node_id, cls in NODE_CLASS_MAPPINGS.items():
        assert node_id.startswith("LongAnim") and cls.__name__ == node_id
        assert NODE_DISPLAY_NAME_MAPPINGS[node_id].startswith("LongAnim: ")
        assert cls.CATEGORY.startswith("LongAnim/")
