"""The README is a short first page that links the reference pages in docs/; every link resolves.

What a newcomer reads must lead somewhere real: a link to a missing file or heading, a docs page nothing links to,
or a benchmark table with no script named are the failures this guards.
"""
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _anchor(heading: str) -> str:
    """GitHub's anchor for a markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(path: pathlib.Path) -> set[str]:
    return {_anchor(m.group(1)) for m in re.finditer(r"^#{1,6} (.+)$", path.read_text(), re.M)}


def _local_links(path: pathlib.Path) -> list[str]:
    return [t for t in LINK.findall(path.read_text()) if not re.match(r"[a-z]+:", t)]


def test_there_are_docs_pages():
    assert len(PAGES) >= 6, "the reference lives in docs/*.md"


@pytest.mark.parametrize("page", [README, *PAGES], ids=lambda p: p.name)
def test_every_local_link_resolves(page):
    for target in _local_links(page):
        file, _, anchor = target.partition("#")
        dest = (page.parent / file).resolve() if file else page
        assert dest.exists(), f"{page.name}: link to missing {target}"
        if anchor and dest.suffix == ".md":
            assert anchor in _anchors(dest), f"{page.name}: no heading for #{anchor} in {dest.name}"


def test_readme_links_every_docs_page():
    linked = {(README.parent / t.partition("#")[0]).resolve() for t in _local_links(README)}
    missing = [p.name for p in PAGES if p.resolve() not in linked]
    assert not missing, f"docs pages the README does not link: {missing}"


def test_readme_is_a_first_page():
    text = README.read_text()
    assert len(text.splitlines()) <= 120, "keep the README a two-minute read; reference goes to docs/"
    assert "js/docs/demo_side_by_side.webp" in text and (ROOT / "js/docs/demo_side_by_side.webp").exists()
    for command in ("python3 tests/tools/longanim.py demo", "python3 tests/tools/longanim.py test"):
        assert command in text
    assert "comfy node install" not in text, "the pack is not on the registry: say what works today"


@pytest.mark.parametrize("page", [README, *PAGES], ids=lambda p: p.name)
def test_no_notes_on_how_it_was_made(page):
    text = page.read_text()
    assert not re.search(r"\bissues? #?\d+", text, re.I), f"{page.name} cites an issue number"
    assert not re.search(r"\bsessions?\b", text, re.I), f"{page.name} talks about sessions"


def test_every_benchmark_table_names_its_script():
    lines = (DOCS / "benchmarks.md").read_text().splitlines()
    for i, line in enumerate(lines):
        if line.startswith("|") and not lines[i - 1].startswith("|"):
            j = i - 1
            while j > 0 and not lines[j].strip():
                j -= 1
            start = j
            while start > 0 and lines[start - 1].strip():
                start -= 1
            before = " ".join(lines[start:j + 1])  # the paragraph just above the table
            m = re.search(r"`(tests/benchmarks/\w+\.py)`", before)
            assert m, f"benchmarks.md line {i + 1}: the paragraph above the table does not name its script"
            assert (ROOT / m.group(1)).exists(), m.group(1)


def test_pyproject_tells_the_truth():
    tomllib = pytest.importorskip("tomllib")
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "github.com/longanim/longanim" not in (ROOT / "pyproject.toml").read_text(), "that repository does not exist"
    # the oldest ComfyUI the suite runs on (the host tests/tools/longanim.py installs)
    assert meta["tool"]["comfy"]["requires-comfyui"] == ">=0.3.75"
