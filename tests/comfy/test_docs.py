"""Every node has a help page in js/docs/<NodeId>.md; generated pages match their node class; docs/nodes.md lists
every node."""
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "tools"))


def test_every_node_has_a_current_help_page():
    import make_docs
    from longanim.nodes.registry import NODE_CLASS_MAPPINGS

    for node_id, cls in NODE_CLASS_MAPPINGS.items():
        path = ROOT / "js" / "docs" / f"{node_id}.md"
        assert path.exists(), f"{node_id} has no help page: run tests/tools/make_docs.py"
        text = path.read_text()
        if make_docs.MARKER in text:
            assert text == make_docs.render(cls), f"{path.name} is stale: run tests/tools/make_docs.py"
        else:
            assert len(text) > 200 and cls.DISPLAY_NAME.split(": ", 1)[-1].split(" (")[0] in text, path.name


def test_docs_nodes_page_lists_every_node():
    from longanim.nodes.registry import NODE_CLASS_MAPPINGS

    page = (ROOT / "docs" / "nodes.md").read_text()
    missing = [node_id for node_id, cls in NODE_CLASS_MAPPINGS.items()
               if not getattr(cls, "DEPRECATED", False) and f"| {cls.DISPLAY_NAME} |" not in page]
    assert not missing, f"docs/nodes.md has no row for {missing}"
