"""e2e (browser): the real frontend (comfyui-frontend-package of the host) in headless chromium via Playwright.

Every ``workflows/*.json`` loads with no unknown node type except declared third-party ones and its widget values
are valid for the server's node definitions; the pack's canvas extension draws the schedule preview and redraws
it when a widget changes, greys unused inputs and serializes nothing, with both node renderers of the frontend:
the classic canvas and "Nodes 2.0" (nodes as DOM elements, setting ``Comfy.VueNodes.Enabled``; skipped where the
frontend has no such setting); tiny-model variants of two workflows are queued from the UI and produce images.
One screenshot per workflow goes to ``bench_out/e2e_browser/``.

Layout: every workflow is connected (no node that does nothing) and, at its saved view in a 1600 x 1000 window
with the frontend's menus and side bars shown, every node is in the window, covered by nothing, drawn with text
(zoom >= ``make_workflows.MIN_SCALE``) and its title is not cut; a screenshot of each at that view goes to
``bench_out/e2e_browser/saved_view_<title>.png``.

Needs ``pip install playwright`` (no ``playwright install``) and Debian's ``/usr/bin/chromium``. Without them the
tests skip, or fail with the reason when ``LONGANIM_REQUIRE_BROWSER=1``.

Template browser: the server lists every workflow of the pack by its title and serves its file and its thumbnail
(the picture ``make_workflows.thumbnail`` draws, not a canvas screenshot); the frontend's template browser shows
each as a card with that title and picture (screenshot ``bench_out/e2e_browser/template_browser.png``).
"""
import json
import os
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "tools"))
import browser  # noqa: E402
import make_workflows  # noqa: E402

ARTIFACTS = ROOT / "bench_out" / "e2e_browser"
THIRD_PARTY_PREFIXES = tuple(make_workflows.THIRD_PARTY_PACKS)
VIRTUAL = {"Note", "MarkdownNote", "Reroute", "PrimitiveNode"}


def _need_browser() -> None:
    reason = None
    if not browser.playwright_available():
        reason = "the playwright python package is missing (pip install playwright; no 'playwright install')"
    elif not browser.find_chromium():
        reason = "chromium is missing (apt-get install -y chromium, or set LONGANIM_CHROMIUM)"
    if reason:
        if os.environ.get("LONGANIM_REQUIRE_BROWSER") == "1":
            pytest.fail(f"browser tests required (LONGANIM_REQUIRE_BROWSER=1) but {reason}")
        pytest.skip(reason)


@pytest.fixture(scope="module")
def frontend(server):
    """The frontend with the classic canvas renderer (set explicitly: newer frontends may default to Nodes 2.0)."""
    _need_browser()
    with browser.Frontend(server.url, settings={browser.VUE_NODES: False}) as fe:
        assert not fe.vue_nodes
        yield fe
    assert not fe.pack_errors(), f"console errors from the pack's js: {fe.pack_errors()}"


@pytest.fixture
def frontend_nodes2(frontend):
    """The same page switched to "Nodes 2.0" (nodes are DOM elements; the canvas never draws nor calls into them),
    switched back to the classic canvas afterwards."""
    if not frontend.offers_vue_nodes():
        pytest.skip(f"this frontend has no Nodes 2.0 renderer (no setting {browser.VUE_NODES})")
    frontend.set_vue_nodes(True)
    try:
        yield frontend
    finally:
        frontend.set_vue_nodes(False)


@pytest.fixture(scope="module")
def object_info(server):
    return server.get("/object_info")


def _check_prompt_values(name: str, prompt: dict, object_info: dict) -> list[str]:
    """Widget values the frontend would send (graphToPrompt) checked against the node definitions."""
    bad = []
    for nid, node in prompt.items():
        info = object_info.get(node["class_type"])
        if info is None:
            continue
        specs = {**info["input"].get("required", {}), **info["input"].get("optional", {})}
        for key, value in node["inputs"].items():
            if isinstance(value, list) and len(value) == 2 and isinstance(value[1], int):
                continue  # a link
            spec = specs.get(key)
            if spec is None:
                bad.append(f"{name}: {node['class_type']}#{nid} sends unknown input {key}={value!r}")
                continue
            kind, opts = spec[0], (spec[1] if len(spec) > 1 else {})
            if isinstance(kind, list) or kind == "COMBO":
                options = kind if isinstance(kind, list) else opts.get("options", [])
                if value not in options and not str(value).lower().endswith(make_workflows.FILE_SUFFIXES):
                    bad.append(f"{name}: {node['class_type']}.{key}={value!r} not in {options[:6]}")
            elif kind in ("INT", "FLOAT"):
                ok = isinstance(value, (int, float)) and not isinstance(value, bool)
                if not ok or not opts.get("min", -1e308) <= value <= opts.get("max", 1e308):
                    bad.append(f"{name}: {node['class_type']}.{key}={value!r} is not a {kind} in range")
            elif kind == "BOOLEAN" and not isinstance(value, bool):
                bad.append(f"{name}: {node['class_type']}.{key}={value!r} is not a BOOLEAN")
            elif kind == "STRING" and not isinstance(value, str):
                bad.append(f"{name}: {node['class_type']}.{key}={value!r} is not a STRING")
    return bad


def _workflow_paths() -> list[pathlib.Path]:
    paths = sorted((ROOT / "workflows").glob("*.json"))
    assert paths, "no workflows/*.json"
    return paths


BYPASS = """(types) => { const app = window.comfyAPI.app.app;
    for (const n of app.graph._nodes) if (types.includes(n.type)) n.mode = 4;
    app.canvas.setDirty(true, true); }"""


@pytest.mark.parametrize("path", _workflow_paths(), ids=[p.stem for p in _workflow_paths()])
def test_every_workflow_loads_in_the_frontend(frontend, object_info, path):
    """The workflow loads with no unknown node type but declared third-party ones, keeps its widget values, and the
    prompt the frontend makes of it holds valid values. A workflow using a core node of a newer ComfyUI
    (``make_workflows.NEWER_CORE``) on an older one: the frontend reports exactly those nodes missing, and with
    them bypassed (what its Note tells the user) it makes the prompt ``make_workflows.to_api`` makes of the
    bypassed workflow, all values valid; then the test skips, naming the missing core node."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    problems = []
    data = json.loads(path.read_text())
    newer = make_workflows.missing_core_nodes(data, object_info)
    missing = frontend.load(data, path.stem)
    unexpected = [t for t in missing if not t.startswith(THIRD_PARTY_PREFIXES) and t not in newer]
    if unexpected:
        problems.append(f"{path.name}: node types unknown to the frontend: {unexpected}")
    if sorted(set(newer) - set(missing)):
        problems.append(f"{path.name}: the frontend knows {sorted(set(newer) - set(missing))}, the server not")
    saved = {n["id"]: n for n in frontend.serialized()["nodes"]}
    for node in data["nodes"]:
        back = saved.get(node["id"], {})
        if node["type"] not in missing and back.get("widgets_values", []) != node.get("widgets_values", []):
            problems.append(f"{path.name}: {node['type']}#{node['id']} widgets_values changed on load: "
                            f"{node.get('widgets_values')} -> {back.get('widgets_values')}")
    frontend.screenshot_png(ARTIFACTS / f"{path.stem}.png")
    if newer:
        frontend.evaluate(BYPASS, list(newer))
    prompt = frontend.evaluate("async () => (await window.comfyAPI.app.app.graphToPrompt()).output")
    problems += _check_prompt_values(path.name, prompt, object_info)
    if newer:
        made = {k: {"class_type": v["class_type"], "inputs": v["inputs"]} for k, v in prompt.items()}
        expected = make_workflows.to_api(make_workflows.bypassed(data, newer), object_info)
        if made != expected:
            problems.append(f"{path.name} with {sorted(newer)} bypassed: the frontend queues {made}, "
                            f"make_workflows.to_api gives {expected}")
    assert not problems, "\n".join(problems)
    if newer:
        pytest.skip(f"{path.name}: core node(s) {', '.join(f'{t} (ComfyUI {v}+)' for t, v in newer.items())} not "
                    "in this ComfyUI: the frontend reports them missing; the workflow with them bypassed was checked")


def test_every_workflow_is_connected(object_info):
    """No workflow has a node that does nothing (no output linked and not an output node, or a required link
    input left open)."""
    bad = [f"{p.name}: {b}" for p in _workflow_paths()
           for b in make_workflows.unconnected_nodes(json.loads(p.read_text()), object_info)]
    assert not bad, "\n".join(bad)


# Where the error panel lies in the 1600 x 1000 window, right-aligned under the run bar from y 90 to 94 (measured):
# 1.49.6 and 1.58.1: 320 to 480 px wide (left edge at x 1112 or more), 121 px tall with a one-line message, up to 160
# with the three lines it clamps a message to; 1.45.21 (on a 0.33 backend): 320 px wide, one line per kind of error
# (missing nodes, models, inputs, media), down to y 309 with three of them, about 335 with all four.
ERROR_PANEL_CORNER = (1108, 340)


def _error_panel_problems(frontend, path, data) -> list[str]:
    """The error panel is open: it lies in ``ERROR_PANEL_CORNER`` and covers no node that names a file (a model,
    an image): the nodes it is about, which the user must see beside it."""
    view = frontend.saved_view()
    px0, py0, px1, py1 = view["error_panel"]["rect"]
    problems = []
    if px0 < ERROR_PANEL_CORNER[0] or py1 > ERROR_PANEL_CORNER[1]:
        problems.append(f"{path.name}: the error panel at {[round(v) for v in (px0, py0, px1, py1)]} reaches out of "
                        f"the top-right corner right of x {ERROR_PANEL_CORNER[0]}, above y {ERROR_PANEL_CORNER[1]}")
    names_file = {n["id"] for n in data["nodes"] if any(
        isinstance(v, str) and v.lower().endswith(make_workflows.FILE_SUFFIXES) for v in n.get("widgets_values") or [])}
    for node in view["nodes"]:
        nx0, ny0, nx1, ny1 = node["rect"]
        if node["id"] in names_file and nx1 > px0 and nx0 < px1 and ny1 > py0 and ny0 < py1:
            problems.append(f"{path.name}: {node['title']}#{node['id']} names a missing file and lies under the error "
                            f"panel {[round(v) for v in (px0, py0, px1, py1)]}")
    return problems


CUT_TITLES = """() => {
    const app = window.comfyAPI.app.app, ctx = document.createElement('canvas').getContext('2d');
    const room = (n) => n.size[0] - 2 * window.LiteGraph.NODE_TITLE_HEIGHT;
    const width = (n) => { ctx.font = n.titleFontStyle ?? app.canvas.title_text_font;
                           return ctx.measureText(n.getTitle()).width; };
    return app.graph._nodes.map((n) => [n.getTitle(), width(n), room(n)]).filter(([, w, r]) => w > r);
}"""


def test_every_workflow_shows_all_nodes_at_its_saved_view(frontend):
    """At the view a workflow is saved with (``extra.ds``, ``make_workflows.saved_view``), in the 1600 x 1000
    window with the frontend's menus and side bars: every node with its title bar lies in the window and nothing
    covers it (no side bar, menu, tab bar or minimap over any point of it), the zoom is at least
    ``make_workflows.MIN_SCALE`` and above LiteGraph's low-quality threshold (where it stops drawing text), and no
    title is cut (its width in the canvas's title font fits what the node draws it in: width minus two title
    heights). One screenshot per workflow: ``bench_out/e2e_browser/saved_view_<title>.png``.

    Newer frontends (seen: 1.45.21 on ComfyUI 0.33, 1.49.6, 1.58.1; not 1.32.9) show an error panel at the top
    right when a workflow names model files that are not installed (every example workflow on a fresh install). It
    is a notice with a close button, shown until the models are installed; the saved views are not shrunk for it
    (that would cost every user zoom, also those who have the models). What the user
    sees: the panel stays in the top-right corner (``ERROR_PANEL_CORNER``), no node that names a file (the nodes
    the panel is about, outlined in red) is under it, and once closed it covers nothing (screenshot
    ``saved_view_<title>_panel.png`` with it open)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    frontend.show_chrome()
    problems, scales, panels = [], {}, {}
    panel_wait = 3.0  # until this frontend has shown the panel once; then it is awaited on every workflow
    for path in _workflow_paths():
        data = json.loads(path.read_text())
        frontend.load(data, path.stem)
        frontend.settle()
        if frontend.wait_error_panel(panel_wait):
            panel_wait = 10.0
            problems += _error_panel_problems(frontend, path, data)
            frontend.page.screenshot(path=str(ARTIFACTS / f"saved_view_{path.stem}_panel.png"))
            panels[path.stem] = frontend.saved_view()["error_panel"]["text"]
            frontend.dismiss_error_panel()
        view = frontend.saved_view()
        scales[path.stem] = view["scale"]
        if abs(view["scale"] - data["extra"]["ds"]["scale"]) > 1e-6:
            problems.append(f"{path.name}: the frontend shows scale {view['scale']}, saved {data['extra']['ds']}")
        if view["scale"] < make_workflows.MIN_SCALE or view["low_quality"] or (
                view["threshold"] and view["scale"] < view["threshold"]):
            problems.append(f"{path.name}: scale {view['scale']} (low quality {view['low_quality']}, threshold "
                            f"{view['threshold']}, wanted >= {make_workflows.MIN_SCALE})")
        x0, y0, x1, y1 = view["canvas"]
        for node in view["nodes"]:
            nx0, ny0, nx1, ny1 = node["rect"]
            if nx0 < x0 or ny0 < y0 or nx1 > x1 or ny1 > y1:
                problems.append(f"{path.name}: {node['title']}#{node['id']} at {[round(v) for v in node['rect']]} "
                                f"leaves the canvas {view['canvas']}")
            if node["covered"]:
                problems.append(f"{path.name}: {node['title']}#{node['id']} is covered at {node['covered']}")
        cut = frontend.evaluate(CUT_TITLES)
        if cut:
            problems.append(f"{path.name}: titles cut (title, text px, room px): {cut}")
        frontend.page.screenshot(path=str(ARTIFACTS / f"saved_view_{path.stem}.png"))
    print("saved-view scales:", json.dumps(scales, indent=1))
    print("error panels:", json.dumps(panels, indent=1) if panels else "none shown by this frontend")
    assert not problems, "\n".join(problems)


PREVIEW_STATE = """(id) => {
    const node = window.comfyAPI.app.app.graph.getNodeById(id);
    const img = node.longanimPreview.img;
    if (!img.complete || !img.naturalWidth) return null;
    const c = document.createElement('canvas');
    c.width = img.naturalWidth; c.height = img.naturalHeight;
    const ctx = c.getContext('2d'); ctx.drawImage(img, 0, 0);
    const px = ctx.getImageData(0, 0, c.width, c.height).data;
    let sum = 0;
    for (let i = 0; i < px.length; i += 4) sum = (sum * 31 + px[i] + 7 * px[i + 1] + 13 * px[i + 2]) % 1000000007;
    return {w: c.width, h: c.height, sum, src: img.src, caption: node.longanimPreview.caption.textContent};
}"""


def _preview(frontend, nid, previous=None):
    frontend.page.wait_for_function(
        f"(() => {{ const s = ({PREVIEW_STATE})({nid}); return s && s.src !== {json.dumps(previous or '')}; }})()",
        timeout=30000)
    return frontend.evaluate(PREVIEW_STATE, nid)


def _add_context_windows_node(frontend, node_id: str = "LongAnimContextWindowsV2") -> int:
    """A fresh all-schedules window node (default widget values) alone on the graph. The other nodes are removed
    one by one rather than with ``graph.clear()``: that resets the node ids, and frontend 1.49 keeps widget state in
    a store keyed by node id that ``clear`` does not empty, so a new node #1 would take the values (and greying) of
    the previous node #1."""
    return frontend.evaluate("""(nodeId) => {
        const app = window.comfyAPI.app.app;
        for (const n of [...app.graph._nodes]) app.graph.remove(n);
        const node = window.LiteGraph.createNode(nodeId);
        node.pos = [100, 100]; app.graph.add(node); app.canvas.setDirty(true, true);
        const fresh = node.widgets.find((w) => w.name === 'context_schedule').value;
        if (fresh !== 'zola') throw new Error(`a new node starts with context_schedule ${fresh}, not its default`);
        return node.id; }""", node_id)


def _set_widget(frontend, nid, name, value, canvas_event: bool) -> None:
    """Set a widget as its renderer does: value + callback; the classic canvas also calls onWidgetChanged (DOM
    nodes do not, so with Nodes 2.0 the pack must notice the change by itself)."""
    frontend.evaluate("""([id, name, value, canvasEvent]) => {
        const n = window.comfyAPI.app.app.graph.getNodeById(id), w = n.widgets.find((w) => w.name === name);
        const old = w.value; w.value = value; w.callback?.(value);
        if (canvasEvent) { n.onWidgetChanged?.(name, value, old, w); n.setDirtyCanvas(true, true); } }""",
                      [nid, name, value, canvas_event])


def _greyed_flags(frontend, nid) -> dict:
    return frontend.evaluate("""(id) => Object.fromEntries(window.comfyAPI.app.app.graph.getNodeById(id).widgets
        .filter((w) => w.name).map((w) => [w.name, !!w.disabled]))""", nid)


def _matches(greyed: dict, expected: dict) -> bool:
    return all(greyed.get(name) == off for name, off in expected.items())


def _wait_dom_greyed(frontend, nid, expected: dict) -> dict:
    """The DOM node's greyed widgets once they match ``expected`` (or after 10 s, for the assertion message)."""
    for _ in range(40):
        greyed = (frontend.dom_node_state(nid) or {}).get("widgets", {})
        if _matches(greyed, expected):
            break
        frontend.page.wait_for_timeout(250)
    return greyed


ZOLA_GREYED = {"stride": False, "max_skip": False, "context_overlap": True, "closed_loop": True,
               "blend_variant": True}
STATIC_GREYED = {"stride": True, "max_skip": True, "context_overlap": False, "closed_loop": True,
                 "blend_variant": True}


def _old_names(greyed: dict) -> dict:
    """The same expectations under the input names of the retired id LongAnimContextWindows."""
    return {{"context_overlap": "overlap"}.get(name, name): off for name, off in greyed.items()}


@pytest.mark.parametrize("renderer", ["classic", "nodes2"])
def test_schedule_preview_redraws_and_greys_unused_inputs(request, server, renderer):
    import urllib.error

    try:
        png = server.get_bytes("/longanim/schedule_preview?node=LongAnimZoLAWindowsV2&frames=32&steps=2")
    except urllib.error.HTTPError as e:
        pytest.fail(f"GET /longanim/schedule_preview -> HTTP {e.code}: the route is registered by the node family "
                    "'ui_nodes' (nodes/ui_nodes.py); is it listed in nodes/registry.py FAMILIES?")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    frontend = request.getfixturevalue("frontend" if renderer == "classic" else "frontend_nodes2")
    classic = renderer == "classic"
    nid = _add_context_windows_node(frontend)
    first = _preview(frontend, nid)
    assert first["w"] > 0 and first["h"] > 0 and "frames" in first["caption"], first
    if not classic:  # the picture is inside the node's DOM element, laid out with a size
        dom = frontend.dom_node_state(nid)
        assert dom is not None, "Nodes 2.0 is on but the node has no [data-node-id] element"
        assert any(w == first["w"] and rw > 50 and rh > 50 for w, rw, rh in dom["images"]), dom["images"]
        greyed = _wait_dom_greyed(frontend, nid, ZOLA_GREYED)
        assert _matches(greyed, ZOLA_GREYED), f"the DOM node does not grey the inputs zola does not read: {greyed}"
    assert _matches(_greyed_flags(frontend, nid), ZOLA_GREYED), _greyed_flags(frontend, nid)
    # a widget change redraws the picture (computed by the server's schedule code)
    _set_widget(frontend, nid, "stride", 6, classic)
    second = _preview(frontend, nid, first["src"])
    assert second["sum"] != first["sum"] or (second["w"], second["h"]) != (first["w"], first["h"])
    # inputs the chosen schedule does not read are greyed
    _set_widget(frontend, nid, "context_schedule", "static", classic)
    frontend.page.wait_for_function(f"""(() => {{ const n = window.comfyAPI.app.app.graph.getNodeById({nid});
        return n.widgets.find((w) => w.name === 'stride').disabled; }})()""", timeout=10000)
    state = _greyed_flags(frontend, nid)
    assert _matches(state, STATIC_GREYED), state
    assert state["blend_variant"], "blend_variant applies only to fuse_method randomized_blend"
    # the preview widget is view-only: not in the saved workflow, not in the prompt
    saved, widgets = frontend.evaluate("""(id) => { const n = window.comfyAPI.app.app.graph.getNodeById(id);
        return [n.serialize(), n.widgets.map((w) => w.name)]; }""", nid)
    assert "longanim_schedule_preview" in widgets, widgets
    assert len(saved["widgets_values"]) == len(widgets) - 1, (saved["widgets_values"], widgets)
    frontend.screenshot_png(ARTIFACTS / f"schedule_preview_node_{renderer}.png")


def test_nodes2_greying_follows_changes(frontend_nodes2):
    """With Nodes 2.0 a DOM node shows a changed greying at once (frontends that keep widget state reactively)."""
    nid = _add_context_windows_node(frontend_nodes2)
    if not frontend_nodes2.dom_follows_widget_state(nid):
        pytest.skip("this frontend's DOM nodes copy widget options once when a node is added and afterwards "
                    "update only values, so no extension can change their greying (frontend 1.32)")
    assert _matches(_wait_dom_greyed(frontend_nodes2, nid, ZOLA_GREYED), ZOLA_GREYED)
    for schedule, expected in (("static", STATIC_GREYED), ("zola", ZOLA_GREYED)):
        _set_widget(frontend_nodes2, nid, "context_schedule", schedule, False)
        greyed = _wait_dom_greyed(frontend_nodes2, nid, expected)
        assert _matches(greyed, expected), f"{schedule}: the DOM node shows {greyed}"


def test_retired_window_node_id_keeps_preview_and_greying(frontend):
    """A workflow saved with the retired id LongAnimContextWindows (old input names: overlap, fusion) still gets its
    picture, from the route's mapping to LongAnimContextWindowsV2, and the greying of the inputs its schedule does
    not read."""
    nid = _add_context_windows_node(frontend, "LongAnimContextWindows")
    first = _preview(frontend, nid)
    assert first["w"] > 0 and "frames" in first["caption"], first
    assert _matches(_greyed_flags(frontend, nid), _old_names(ZOLA_GREYED)), _greyed_flags(frontend, nid)
    _set_widget(frontend, nid, "context_schedule", "static", True)
    frontend.page.wait_for_function(f"""(() => {{ const n = window.comfyAPI.app.app.graph.getNodeById({nid});
        return n.widgets.find((w) => w.name === 'stride').disabled; }})()""", timeout=10000)
    assert _matches(_greyed_flags(frontend, nid), _old_names(STATIC_GREYED)), _greyed_flags(frontend, nid)
    static = _preview(frontend, nid, first["src"])
    _set_widget(frontend, nid, "overlap", 8, True)  # an old-name widget reaches the route under its new name
    second = _preview(frontend, nid, static["src"])
    assert second["sum"] != static["sum"] or (second["w"], second["h"]) != (static["w"], static["h"])


# ------------------------------------------------------------------------------------------ template browser
TEMPLATE_MODULE = "LongAnim"  # the pack's folder in custom_nodes/: the template browser's category for it
TITLES = {make_workflows.template_name(k): k for k in make_workflows.BUILDERS}
# Mean absolute difference (0-255 levels) allowed between the served thumbnail and the picture drawn afresh, both
# decoded after the same JPEG encoding (make_workflows.save_thumbnail): 0 with the same libjpeg (the bytes are
# equal), a fraction of a level where another libjpeg build rounds differently; the two most alike thumbnails (two
# Wan 2.1 workflows with the same windows and other captions) differ by 2.1, a canvas screenshot by tens.
JPEG_TOLERANCE = 0.5


def test_template_listing_serves_every_workflow_with_its_thumbnail(server, object_info):
    """What the template browser reads from the server: ``GET /workflow_templates`` lists every workflow of the pack
    (its file name = its title, see ``make_workflows.template_name``) under the pack's folder, each title is safe
    in a URL and a file name, ``/api/workflow_templates/LongAnim/<title>.json`` is the file and ``<title>.jpg`` a
    JPEG of ``THUMBNAIL_SIZE`` that is the picture ``make_workflows.thumbnail`` draws for it."""
    import io
    import urllib.parse

    import numpy as np
    from PIL import Image

    listed = server.get("/workflow_templates").get(TEMPLATE_MODULE)
    assert listed, f"/workflow_templates has no entry {TEMPLATE_MODULE!r}"
    assert sorted(listed) == sorted(TITLES), (sorted(listed), sorted(TITLES))
    assert sorted(p.stem for p in (ROOT / "workflows").glob("*.json")) == sorted(TITLES)
    bad = []
    for name in listed:
        unsafe = set(name) & make_workflows.UNSAFE_NAME_CHARS
        assert not unsafe, f"{name!r} holds {sorted(unsafe)}"
        url = f"/api/workflow_templates/{TEMPLATE_MODULE}/{urllib.parse.quote(name)}"
        data = json.loads(make_workflows.workflow_path(TITLES[name]).read_text())
        assert json.loads(server.get_bytes(url + ".json")) == data, name
        jpg = Image.open(io.BytesIO(server.get_bytes(url + ".jpg")))
        assert jpg.format == "JPEG" and jpg.size == make_workflows.THUMBNAIL_SIZE, (name, jpg.format, jpg.size)
        encoded = io.BytesIO()
        make_workflows.save_thumbnail(make_workflows.thumbnail(TITLES[name], data, object_info), encoded)
        drawn = np.asarray(Image.open(io.BytesIO(encoded.getvalue())).convert("RGB"), np.float32)
        diff = float(np.abs(np.asarray(jpg.convert("RGB"), np.float32) - drawn).mean())
        if diff > JPEG_TOLERANCE:
            bad.append(f"{name}.jpg differs from make_workflows.thumbnail by {diff:.2f} levels on average: "
                       f"run tests/tools/make_workflows.py --only {TITLES[name]}")
    assert not bad, "\n".join(bad)


def test_template_browser_shows_titles_and_thumbnails(frontend):
    """In the frontend's template browser the pack's category shows one card per workflow with its title and its
    512 x 512 picture, and the user can read each workflow's full title. Frontends up to 1.45 show a description
    under the title (the frontend makes it of the file name: the title with - and _ as spaces), which must be that
    text. Frontends 1.49 and later show no description on any card and cut the title to one line: there the title
    element carries the full title as its hover text, and the title drawn in the picture
    (``make_workflows.THUMBNAIL_TITLE_BOX``) is covered by none of the card's badges."""
    width, height = make_workflows.THUMBNAIL_SIZE
    x0, y0, x1, y1 = make_workflows.THUMBNAIL_TITLE_BOX
    cards = frontend.template_cards(TEMPLATE_MODULE, picture_box=(x0 / width, y0 / height, x1 / width, y1 / height))
    if cards is None:
        pytest.skip("this frontend has no template browser command (Comfy.BrowseTemplates)")
    try:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        frontend.page.screenshot(path=str(ARTIFACTS / "template_browser.png"))
    finally:
        frontend.close_dialog()
    by_name = {c["name"]: c for c in cards}
    assert sorted(by_name) == sorted(TITLES), sorted(by_name)
    with_description = [c for c in cards if c["description"] is not None]
    assert len(with_description) in (0, len(cards)), f"some cards show a description, some not: {with_description}"
    print("cards:", "descriptions shown" if with_description else "no descriptions (title and picture only)",
          f"titles cut: {sum(c['title_cut'] for c in cards)} of {len(cards)}")
    problems = []
    for name, card in by_name.items():
        if card["title"] != name:
            problems.append(f"{name}: card title {card['title']!r}")
        if with_description and card["description"].split() != name.replace("-", " ").replace("_", " ").split():
            problems.append(f"{name}: card description {card['description']!r}")
        if card["title_cut"] and card["title_tooltip"] != name:
            problems.append(f"{name}: the card cuts the title and its hover text is {card['title_tooltip']!r}")
        if card["picture_covered"]:
            problems.append(f"{name}: the title drawn in the picture is covered at {card['picture_covered']}")
        if card["image"] != list(make_workflows.THUMBNAIL_SIZE):
            problems.append(f"{name}: card picture {card['image']} (not loaded, or not the 512 x 512 thumbnail)")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", ["longanim_zero_shot_sd15", "longanim_wan_t2v_long"])
def test_queue_tiny_workflow_from_the_ui(frontend, server, object_info, name):
    data = make_workflows.build_workflows(object_info, tiny=True, names={name})[name]
    missing = frontend.load(data, name + "_tiny")
    assert not missing, missing
    before = set(server.get("/history") or {})
    frontend.queue()
    frontend.wait_idle(server.get, timeout_s=120)
    new = [v for k, v in (server.get("/history") or {}).items() if k not in before]
    assert len(new) == 1, f"expected one new prompt in /history, got {len(new)}"
    entry = new[0]
    assert entry["status"]["status_str"] == "success", entry["status"]
    files = server.output_files(entry)
    assert files and all(f.exists() and f.stat().st_size > 0 for f in files), files
    frontend.screenshot_png(ARTIFACTS / f"{name}_tiny.png")


def test_help_pages_fit_the_help_sidebar_and_their_pictures_load(server, object_info):
    """What the frontend's node help panel reads: ``/extensions/LongAnim/docs/<NodeId>.md`` for every LongAnim node
    (the panel renders it with relative images resolved against that folder). A page for the narrow panel: no
    markdown table (wide tables were cut off at the panel's default width), no line of code wider than the panel,
    and every picture it shows is served, decodes and is drawn by the pack (PNG/WEBP)."""
    import io
    import re
    import urllib.parse

    from PIL import Image

    nodes = sorted(n for n, info in object_info.items() if n.startswith("LongAnim")
                   and not info.get("deprecated"))
    assert len(nodes) >= 20, nodes
    pictures = 0
    for node in nodes:
        page = server.get_bytes(f"/extensions/{TEMPLATE_MODULE}/docs/{node}.md").decode()
        tables = [line for line in page.splitlines() if line.lstrip().startswith("|")]
        assert not tables, f"{node}.md has a table (cut off in the help panel): {tables[0][:80]}"
        for name in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", page):
            data = server.get_bytes(f"/extensions/{TEMPLATE_MODULE}/docs/{urllib.parse.quote(name)}")
            image = Image.open(io.BytesIO(data))
            assert image.format in ("PNG", "WEBP") and min(image.size) > 50, (node, name, image.format, image.size)
            pictures += 1
    assert pictures >= 10, "the window and noise nodes' pages show their pictures"


def test_canvas_preview_is_the_labelled_schedule_picture(server):
    """The canvas preview's route draws the labelled picture (step numbers, frame axis, legend): the same pixels as
    window_options.schedule_picture for the request's widget values, wider than the bare bands by the step margin."""
    import io

    import numpy as np
    from PIL import Image

    query = "node=LongAnimZoLAWindowsV2&context_length=8&stride=6&max_skip=1&frames=40&steps=6&ends=truncate"
    png = Image.open(io.BytesIO(server.get_bytes(f"/longanim/schedule_preview?{query}"))).convert("RGB")
    sys.path.insert(0, str(ROOT / "tests"))
    import conftest  # noqa: F401  (registers the ``longanim`` alias)
    from longanim.nodes.comfy import window_options as wo

    # no ``noise`` in the query: the route uses the ZoLA node's default scene noise, which aligns the offsets
    opts = wo.WindowOptions(schedule="zola", length=8, stride=6, max_skip=1, ends="truncate", fusion="zola",
                            scene_noise=wo.SCENE_NOISE_DEFAULT)
    drawn = (wo.schedule_picture(opts, 40, 6, 0)[0].clamp(0, 1).numpy() * 255).round().astype(np.uint8)
    assert np.array_equal(np.asarray(png), drawn)
    cell = max(2, min(8, 1024 // 40))
    assert png.size[0] > 40 * cell, "a step-number margin beside the frames"
