"""Node ids and input names are public API: saved workflows must keep loading.

``tests/node_api.json`` freezes, per node id, its input names. A node or input may be ADDED (then refreeze with
``.host/venv/bin/python tests/tools/freeze_api.py``); one that disappears or is renamed fails here unless
``tests/node_api.json`` lists it under ``"deprecated"``: a node id (the whole node retired) or ``"Id.input"``.
A retired node id must stay registered as a hidden deprecated alias (``nodes.base.deprecated_alias``: ComfyUI's
``DEPRECATED = True``) that still accepts every frozen input name, so saved workflows load and run.
"""
import json
import pathlib

API = pathlib.Path(__file__).resolve().parents[1] / "node_api.json"


def inputs_of(cls) -> dict:
    spec = cls.INPUT_TYPES()
    return {section: sorted(spec.get(section, {})) for section in ("required", "optional")}


def current_api(registry=None, include_deprecated=True) -> dict:
    if registry is None:
        from longanim.nodes.registry import NODE_CLASS_MAPPINGS as registry
    return {node_id: inputs_of(cls) for node_id, cls in sorted(registry.items())
            if include_deprecated or not getattr(cls, "DEPRECATED", False)}


def api_problems(frozen: dict, registry: dict) -> list[str]:
    """Everything that would break a saved workflow (or the deprecation bookkeeping); empty when all is well."""
    frozen = dict(frozen)
    deprecated = set(frozen.pop("deprecated", []))
    live = current_api(registry, include_deprecated=False)
    problems = []
    for node_id, sections in frozen.items():
        cls = registry.get(node_id)
        if node_id not in live:
            if node_id not in deprecated:
                problems.append(f"node id {node_id} left the live node list but is not listed under 'deprecated'")
                continue
            if cls is None or not getattr(cls, "DEPRECATED", False):
                problems.append(f"deprecated node id {node_id} must stay registered with DEPRECATED = True "
                                "(nodes.base.deprecated_alias, a family's DEPRECATED_NODES)")
                continue
        now = inputs_of(cls)
        have = set(now["required"]) | set(now["optional"])
        for section, names in sections.items():
            missing = [n for n in names if n not in have and f"{node_id}.{n}" not in deprecated]
            if missing:
                problems.append(f"{node_id}: inputs {missing} disappeared or were renamed")
            if section == "optional":
                newly_required = [n for n in names if n in now["required"]]
                if newly_required:
                    problems.append(f"{node_id}: optional inputs {newly_required} became required")
    for node_id, cls in registry.items():
        if getattr(cls, "DEPRECATED", False) and not (node_id in deprecated and node_id in frozen):
            problems.append(f"{node_id} is DEPRECATED but not frozen and listed under 'deprecated'")
    for entry in deprecated:
        if "." not in entry and entry not in frozen:
            problems.append(f"deprecated id {entry} has no frozen inputs in node_api.json")
        if "." not in entry and entry in live:
            problems.append(f"deprecated id {entry} is still visible: build it with nodes.base.deprecated_alias")
    return problems


def test_frozen_node_ids_and_inputs_still_exist():
    from longanim.nodes.registry import NODE_CLASS_MAPPINGS

    problems = api_problems(json.loads(API.read_text()), NODE_CLASS_MAPPINGS)
    assert not problems, "\n".join(problems)


def test_freeze_check_accepts_only_registered_deprecated_ids():
    """The check itself, on a made-up registry: a node renamed with a deprecated alias passes; the same rename
    without the alias, without the 'deprecated' entry, or with the alias left visible, fails."""
    from longanim.nodes.base import LongAnimNode, deprecated_alias, int_input

    class LongAnimNew(LongAnimNode):
        NODE_ID, DISPLAY_NAME = "LongAnimNew", "LongAnim: New"

        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"length": int_input(4, 1, 9, "tip")}, "optional": {}}

    alias = deprecated_alias("LongAnimOld", LongAnimNew, {"frames": "length"})
    frozen = {"LongAnimOld": {"required": ["frames"], "optional": []},
              "LongAnimNew": {"required": ["length"], "optional": []}, "deprecated": ["LongAnimOld"]}
    assert api_problems(frozen, {"LongAnimNew": LongAnimNew, "LongAnimOld": alias}) == []
    assert api_problems(frozen, {"LongAnimNew": LongAnimNew})  # alias dropped
    assert api_problems(dict(frozen, deprecated=[]), {"LongAnimNew": LongAnimNew, "LongAnimOld": alias})
    visible = type("LongAnimOld", (alias,), {"DEPRECATED": False})
    assert api_problems(frozen, {"LongAnimNew": LongAnimNew, "LongAnimOld": visible})
    no_rename = deprecated_alias("LongAnimOld", LongAnimNew)  # old input name not migrated
    assert api_problems(frozen, {"LongAnimNew": LongAnimNew, "LongAnimOld": no_rename})
    assert alias.DEPRECATED and alias.__name__ == "LongAnimOld"
    assert alias.DISPLAY_NAME.startswith("LongAnim: ") and alias.CATEGORY == LongAnimNew.CATEGORY


def test_class_names_match_node_ids():
    from longanim.nodes.registry import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

    for node_id, cls in NODE_CLASS_MAPPINGS.items():
        assert node_id.startswith("LongAnim") and cls.__name__ == node_id
        assert NODE_DISPLAY_NAME_MAPPINGS[node_id].startswith("LongAnim: ")
        assert cls.CATEGORY.startswith("LongAnim/")
