"""Drive the real ComfyUI frontend in headless Debian chromium with Playwright (no ``playwright install``).

    with Frontend("http://127.0.0.1:8188") as fe:
        missing = fe.load(workflow_json)      # app.loadGraphData; returns node types the frontend does not know
        fe.screenshot_jpg(path)               # the whole graph fitted into the canvas

The browser gets a fresh profile (``--user-data-dir``) and no network beyond the server. ``GET /settings`` is
answered by the driver (tutorial done, no missing-node/model dialogs, plus ``settings=`` given to ``Frontend``) and
settings writes are swallowed, so the host's user settings are never changed. Console errors and page errors are
collected in ``errors``.

Startup: the frontend loads a workflow of its own once the app exists (the previous session's, the default graph,
or on a first run a blank graph and the template browser); a workflow loaded before that is replaced. ``Frontend``
returns from ``__enter__`` only after that load is done (the workflow store has an active workflow).

Node renderers: ``Frontend(url, settings={VUE_NODES: True})`` starts the frontend with "Nodes 2.0" (nodes as DOM
elements ``[data-node-id]`` instead of drawn on the canvas) and ``set_vue_nodes(on)`` switches it as the settings
dialog does; ``offers_vue_nodes()`` says whether this frontend has that setting, ``vue_nodes`` whether it is on.

Template browser: ``template_cards(module)`` opens it on a custom node pack's category and reads the cards (title,
description, picture size); ``close_dialog()`` closes it.

One ``Frontend`` at a time per thread (Playwright's sync API).
"""
from __future__ import annotations

import io
import json
import os
import pathlib
import shutil
import tempfile
import time

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage"]
SETTINGS = {"Comfy.TutorialCompleted": True, "Comfy.Workflow.ShowMissingNodesWarning": False,
            "Comfy.Workflow.ShowMissingModelsWarning": False, "Comfy.Validation.Workflows": True}
VUE_NODES = "Comfy.VueNodes.Enabled"  # the frontend's "Modern Node Design (Nodes 2.0)" setting
VIEWPORT = {"width": 1600, "height": 1000}
APP_READY = ("window.LiteGraph?.registered_node_types?.KSampler && window.comfyAPI?.app?.app?.graph "
             "&& window.comfyAPI.app.app.canvas")
# set by the workflow service when the frontend's own startup load (restored, default or blank graph) is done
STARTUP_LOADED = "!!window.comfyAPI.app.app.extensionManager?.workflow?.activeWorkflow"
# the frontend's menus, side bars, minimap and toasts, hidden for screenshots of the canvas alone
HIDE_CHROME = (".comfyui-body-top, .comfyui-body-left, .comfyui-body-right, .comfyui-body-bottom, "
               ".splitter-overlay-root, .p-toast { visibility: hidden !important; }")


def find_chromium() -> str | None:
    """Path of a chromium binary: $LONGANIM_CHROMIUM, /usr/bin/chromium, or chromium/google-chrome on PATH."""
    for cand in (os.environ.get("LONGANIM_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                 shutil.which("chromium-browser"), shutil.which("google-chrome")):
        if cand and os.path.exists(cand):
            return cand
    return None


def playwright_available() -> bool:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False
    return True


class Frontend:
    def __init__(self, url: str, chromium: str | None = None, timeout_s: float = 120.0,
                 settings: dict | None = None):
        self.url = url.rstrip("/")
        self.settings = {**SETTINGS, **(settings or {})}
        self.chromium = chromium or find_chromium()
        self.timeout_ms = int(timeout_s * 1000)
        self.errors: list[dict] = []
        self.profile = tempfile.mkdtemp(prefix="longanim-chromium-")
        self._pw = self.context = self.page = None
        self._chrome_style = None  # the style element hiding the frontend's chrome for canvas screenshots

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> Frontend:
        from playwright.sync_api import sync_playwright

        if not self.chromium:
            raise RuntimeError("chromium not found: apt-get install -y chromium (or set LONGANIM_CHROMIUM)")
        self._pw = sync_playwright().start()
        try:
            self.context = self._pw.chromium.launch_persistent_context(
                self.profile, executable_path=self.chromium, headless=True, args=CHROMIUM_FLAGS,
                viewport=VIEWPORT)
            self.page = self.context.pages[0] if self.context.pages else self.context.new_page()
            self.page.on("console", self._on_console)
            self.page.on("pageerror", lambda e: self.errors.append({"type": "pageerror", "text": str(e),
                                                                    "url": "", "stack": e.stack or ""}))
            self.page.route("**/settings", self._settings)
            self.page.route("**/settings/**", self._settings)
            self.page.goto(self.url + "/", timeout=self.timeout_ms)
            self.page.wait_for_function(APP_READY, timeout=self.timeout_ms)
            self.page.wait_for_function(STARTUP_LOADED, timeout=self.timeout_ms)
            self.settle()
        except Exception:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for closer in (getattr(self.context, "close", None), getattr(self._pw, "stop", None)):
            try:
                if closer:
                    closer()
            except Exception:  # noqa: BLE001 - best effort teardown
                pass
        self.context = self._pw = None
        shutil.rmtree(self.profile, ignore_errors=True)

    def _settings(self, route) -> None:
        if route.request.method == "GET" and route.request.url.rstrip("/").endswith("/settings"):
            route.fulfill(status=200, content_type="application/json", body=json.dumps(self.settings))
        elif route.request.method == "GET":
            key = route.request.url.rsplit("/", 1)[-1]
            route.fulfill(status=200, content_type="application/json", body=json.dumps(self.settings.get(key)))
        else:  # never write the host's settings file
            route.fulfill(status=200, content_type="application/json", body="{}")

    def _on_console(self, msg) -> None:
        if msg.type in ("error", "warning"):
            loc = msg.location or {}
            self.errors.append({"type": msg.type, "text": msg.text, "url": loc.get("url", ""), "stack": ""})

    def pack_errors(self) -> list[dict]:
        """Console errors / page errors from the pack: its js (``/extensions/LongAnim/``) or its route failing.

        A 400 from the preview route is the answer to invalid widget values (shown on the node), not a defect;
        the frontend's own look-ups of node ids on api.comfy.org (unreachable here) are not the pack's.
        """
        out = []
        for e in self.errors:
            where = (e["url"] + " " + e["stack"] + " " + e["text"]).lower()
            if e["type"] == "warning" or "api.comfy.org" in e["url"]:
                continue
            if "/extensions/longanim/" in where or "longanim.schedule_preview" in where or (
                    "/longanim/" in e["url"] and "status of 400" not in e["text"]):
                out.append(e)
        return out

    # ------------------------------------------------------------------ graph
    def evaluate(self, script: str, arg=None):
        return self.page.evaluate(script, arg)

    def offers_vue_nodes(self) -> bool:
        """Whether this frontend has the "Nodes 2.0" renderer setting (``Comfy.VueNodes.Enabled``)."""
        return bool(self.evaluate("""(id) => {
            const store = window.comfyAPI.app.app.extensionManager?.setting;
            return !!(store?.settingsById?.[id] ?? store?.settings?.[id]); }""", VUE_NODES))

    def dom_node_state(self, node_id: int) -> dict | None:
        """What a Nodes 2.0 node element ``[data-node-id]`` shows: ``{"widgets": {name: greyed}, "images":
        [[natural width, rendered width, rendered height], ...]}``; None when the node has no DOM element (classic
        canvas). A widget is greyed when its control (found by its ``aria-label``) or the value field inside it is
        disabled (not merely a step button: the decrement button of a number at its minimum is disabled too)."""
        return self.evaluate("""(id) => {
            const el = document.querySelector(`[data-node-id="${id}"]`);
            if (!el) return null;
            const node = window.comfyAPI.app.app.graph.getNodeById(id);
            const off = ':disabled, [aria-disabled="true"], [data-p-disabled="true"], .p-disabled';
            const fields = 'input, select, textarea, [role="combobox"], [role="switch"], [role="spinbutton"]';
            const widgets = {};
            for (const w of node.widgets ?? []) {
                const controls = [...el.querySelectorAll('[aria-label]')].filter(
                    (c) => c.getAttribute('aria-label') === w.name);
                if (!controls.length) continue;
                widgets[w.name] = controls.some((c) => c.matches(off) || c.closest('.p-disabled') !== null
                    || [...c.querySelectorAll(fields)].some((f) => f.matches(off)));
            }
            const images = [...el.querySelectorAll('img')].map((i) => {
                const r = i.getBoundingClientRect();
                return [i.naturalWidth, r.width, r.height];
            });
            return { widgets, images };
        }""", node_id)

    def dom_follows_widget_state(self, node_id: int) -> bool:
        """Whether this frontend's DOM nodes follow later changes of a widget's ``disabled`` (newer frontends keep it
        in a reactive widget store, an accessor on the widget; older ones copy widget options once per node)."""
        return bool(self.evaluate("""(id) => {
            let p = window.comfyAPI.app.app.graph.getNodeById(id).widgets?.[0];
            while (p && !Object.getOwnPropertyDescriptor(p, 'disabled')) p = Object.getPrototypeOf(p);
            return !!p && !!Object.getOwnPropertyDescriptor(p, 'disabled').get; }""", node_id))

    def set_vue_nodes(self, on: bool) -> None:
        """Switch between the classic canvas and Nodes 2.0 through the frontend's setting store (as the settings
        dialog does; the write to the server is swallowed) and wait until the renderer has switched."""
        self.evaluate("async ([id, on]) => { await window.comfyAPI.app.app.extensionManager.setting.set(id, on); }",
                      [VUE_NODES, bool(on)])
        self.page.wait_for_function(f"!!window.LiteGraph.vueNodesMode === {'true' if on else 'false'}",
                                    timeout=self.timeout_ms)
        self.settle()

    @property
    def vue_nodes(self) -> bool:
        """Whether nodes are rendered as DOM elements (Nodes 2.0) rather than drawn on the canvas."""
        return bool(self.evaluate("() => !!window.LiteGraph.vueNodesMode"))

    def load(self, workflow: dict, name: str = "workflow") -> list[str]:
        """Load a UI-format workflow; returns the node types the frontend has no definition for."""
        return self.evaluate("""async ([wf, name]) => {
            const app = window.comfyAPI.app.app;
            await app.loadGraphData(structuredClone(wf), true, true, name);
            const known = window.LiteGraph.registered_node_types;
            return [...new Set(wf.nodes.map((n) => n.type).filter((t) => !known[t]))];
        }""", [workflow, name])

    def serialized(self) -> dict:
        return self.evaluate("() => window.comfyAPI.app.app.graph.serialize()")

    def fit(self, margin: float = 30) -> None:
        """Zoom and pan so that every node is on the canvas."""
        self.evaluate("""(margin) => {
            const app = window.comfyAPI.app.app, nodes = app.graph._nodes;
            if (!nodes.length) return;
            let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
            for (const n of nodes) {
                x0 = Math.min(x0, n.pos[0]); y0 = Math.min(y0, n.pos[1] - 30);
                x1 = Math.max(x1, n.pos[0] + n.size[0]); y1 = Math.max(y1, n.pos[1] + n.size[1]);
            }
            const c = app.canvas.canvas, w = c.clientWidth, h = c.clientHeight;
            const s = Math.min(1.2, (w - 2 * margin) / (x1 - x0), (h - 2 * margin) / (y1 - y0));
            app.canvas.ds.scale = s;
            app.canvas.ds.offset = [(w / s - (x1 - x0)) / 2 - x0, (h / s - (y1 - y0)) / 2 - y0];
            app.canvas.setDirty(true, true);
        }""", margin)

    def settle(self, seconds: float = 0.6) -> None:
        """Let debounced requests (schedule previews) finish and the canvas redraw."""
        self.page.wait_for_timeout(int(seconds * 1000))
        try:
            self.page.wait_for_load_state("networkidle", timeout=5000)
        except Exception:  # noqa: BLE001 - previews may keep nothing pending; a timeout is fine
            pass

    def show_chrome(self) -> None:
        """Show the menus and side bars again after ``screenshot_png`` hid them."""
        if self._chrome_style is not None:
            self._chrome_style.evaluate("(e) => e.remove()")
            self._chrome_style = None
            self.settle()

    def saved_view(self, step: float = 12) -> dict:
        """What the canvas shows at its current view (a loaded workflow's saved ``extra.ds``): ``{"scale",
        "low_quality"`` (LiteGraph draws boxes without text), ``"threshold"`` (its low-quality zoom; 0 when off),
        ``"canvas"`` (window rectangle), ``"nodes": [{"id", "title", "rect": [x0, y0, x1, y1] in window pixels,
        title bar included, "covered": [[x, y, element], ...]}]}``. ``covered`` lists points of a grid ``step``
        pixels apart over the node (and its corners) where the topmost element is neither the canvas nor a node's
        own DOM widget (``.dom-widget``: text areas), e.g. a side bar, the top menu, the minimap or the error panel;
        transient notices (``[role=alert]``, toasts) are not counted. ``"error_panel"``: the window rectangle and text
        of the frontend's error panel (``[data-testid=error-overlay]``, frontends 1.49 and later: missing models,
        nodes or inputs of the loaded workflow), or None where none is shown."""
        return self.evaluate("""(step) => {
            const app = window.comfyAPI.app.app, c = app.canvas, el = c.canvas, r = el.getBoundingClientRect();
            const [s, [ox, oy]] = [c.ds.scale, c.ds.offset];
            const describe = (e) => e ? `${e.tagName.toLowerCase()}.${(e.className?.toString?.() ?? '')
                .trim().split(' ').slice(0, 3).join('.')}` : 'nothing (outside the window)';
            const nodes = app.graph._nodes.map((n) => {
                const title = window.LiteGraph.NODE_TITLE_HEIGHT;
                const x0 = r.left + (n.pos[0] + ox) * s, y0 = r.top + (n.pos[1] - title + oy) * s;
                const x1 = r.left + (n.pos[0] + n.size[0] + ox) * s, y1 = r.top + (n.pos[1] + n.size[1] + oy) * s;
                const xs = [x0 + 1, x1 - 1], ys = [y0 + 1, y1 - 1];
                for (let x = x0 + step; x < x1 - 1; x += step) xs.push(x);
                for (let y = y0 + step; y < y1 - 1; y += step) ys.push(y);
                const covered = [];
                for (const x of xs) for (const y of ys) {
                    const top = document.elementFromPoint(x, y);
                    if (top === el || top?.closest('.dom-widget, [role=alert], .p-toast')) continue;
                    if (covered.length < 5) covered.push([Math.round(x), Math.round(y), describe(top)]);
                }
                return { id: n.id, title: n.getTitle(), rect: [x0, y0, x1, y1], covered };
            });
            const panel = document.querySelector('[data-testid="error-overlay"]');
            const pr = panel?.getBoundingClientRect();
            const error_panel = pr && pr.width > 0 && pr.height > 0
                ? { rect: [pr.left, pr.top, pr.right, pr.bottom], text: panel.innerText.split(/\\s+/).join(' ').trim() }
                : null;
            return { scale: s, low_quality: !!c.low_quality, threshold: c._lowQualityZoomThreshold ?? null,
                     canvas: [r.left, r.top, r.right, r.bottom], nodes, error_panel };
        }""", step)

    def wait_error_panel(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for the frontend's error panel (``[data-testid=error-overlay]``, frontends 1.49
        and later: it appears a moment after a workflow that names missing models loads); whether it is shown."""
        try:
            self.page.locator('[data-testid="error-overlay"]').first.wait_for(state="visible",
                                                                               timeout=int(timeout_s * 1000))
            return True
        except Exception:  # noqa: BLE001 - no panel: this frontend has none, or nothing is missing
            return False

    def dismiss_error_panel(self) -> None:
        """Close the error panel with its close button (1.49+: ``error-overlay-dismiss``; 1.45: "Dismiss") and wait
        until it is gone. The click is dispatched to the button: a toast may lie over it (1.45 on a newer backend
        shows a version warning there)."""
        panel = self.page.locator('[data-testid="error-overlay"]').first
        button = panel.locator('[data-testid="error-overlay-dismiss"]')
        if not button.count():
            button = panel.get_by_role("button", name="Dismiss")
        button.first.dispatch_event("click")
        panel.wait_for(state="hidden", timeout=self.timeout_ms)
        self.settle()

    def screenshot_png(self, path=None) -> bytes:
        if self._chrome_style is None:
            self._chrome_style = self.page.add_style_tag(content=HIDE_CHROME)
        self.fit()
        self.settle()
        return self.page.locator("#graph-canvas").screenshot(path=str(path) if path else None)

    def screenshot_jpg(self, path, width: int = 960) -> None:
        """The fitted canvas as a JPEG thumbnail (Pillow)."""
        from PIL import Image

        image = Image.open(io.BytesIO(self.screenshot_png())).convert("RGB")
        if image.width > width:
            image = image.resize((width, round(image.height * width / image.width)), Image.LANCZOS)
        pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
        image.save(path, "JPEG", quality=85, optimize=True)

    # ------------------------------------------------------------------ template browser
    def template_cards(self, module: str, image_timeout_s: float = 15.0,
                       picture_box: tuple[float, float, float, float] | None = None) -> list[dict] | None:
        """Open the template browser (command ``Comfy.BrowseTemplates``), pick the category of custom node folder
        ``module`` and read its cards: ``[{"name", "title", "title_tooltip"`` (the title element's ``title``
        attribute, shown on hover), ``"title_cut"`` (the title's text overflows its one-line box), ``"description"``
        (None where the card has no description element), ``"image": [natural width, natural height] or None,
        "picture_covered": [[x, y, element], ...]}]``, ``name`` from the card's ``data-testid``
        (``template-workflow-<name>``). ``picture_covered`` lists points of a grid over ``picture_box`` (x0, y0, x1,
        y1 as fractions of the picture, as the card fits it: object-fit contain or cover) where the topmost element
        is not the picture (a badge or label of the card). Each card is scrolled into view first (pictures load
        lazily) and given ``image_timeout_s`` to show its picture. The dialog stays open (``close_dialog``); None
        when this frontend has no such command."""
        has = self.evaluate("""() => !!window.comfyAPI.app.app.extensionManager?.command?.commands
            ?.some((c) => c.id === 'Comfy.BrowseTemplates')""")
        if not has:
            return None
        self.evaluate("async () => { await window.comfyAPI.app.app.extensionManager.command.execute("
                      "'Comfy.BrowseTemplates'); }")
        dialog = self.page.locator('[role="dialog"]').last
        dialog.get_by_role("button", name=module, exact=True).first.click(timeout=self.timeout_ms)
        cards = dialog.locator('[data-testid^="template-workflow-"]')
        cards.first.wait_for(timeout=self.timeout_ms)
        self.page.wait_for_timeout(500)  # the category's cards replace the previous ones
        out = []
        for i in range(cards.count()):
            card = cards.nth(i)
            card.scroll_into_view_if_needed()
            try:
                self.page.wait_for_function("""(c) => { const i = c.querySelector('img');
                    return !!i && i.complete && i.naturalWidth > 0; }""", arg=card.element_handle(),
                                            timeout=int(image_timeout_s * 1000))
            except Exception:  # noqa: BLE001 - no picture: reported as None
                pass
            out.append(card.evaluate("""(c, box) => { const i = c.querySelector('img'), h = c.querySelector('h3');
                const covered = [];
                if (i && box && i.complete && i.naturalWidth) {
                    const r = i.getBoundingClientRect(), fit = getComputedStyle(i).objectFit;
                    const k = (fit === 'cover' ? Math.max : Math.min)(r.width / i.naturalWidth,
                                                                       r.height / i.naturalHeight);
                    const w = i.naturalWidth * k, hh = i.naturalHeight * k;
                    const ox = r.left + (r.width - w) / 2, oy = r.top + (r.height - hh) / 2;
                    for (let fy = box[1]; fy <= box[3] + 1e-9; fy += (box[3] - box[1]) / 4)
                        for (let fx = box[0]; fx <= box[2] + 1e-9; fx += (box[2] - box[0]) / 12) {
                            const x = ox + fx * w, y = oy + fy * hh, top = document.elementFromPoint(x, y);
                            if (top !== i && covered.length < 5)
                                covered.push([Math.round(x), Math.round(y), top
                                    ? `${top.tagName.toLowerCase()}.${top.className}`.slice(0, 60) : null]);
                        }
                }
                return { name: c.dataset.testid.slice('template-workflow-'.length),
                         title: h?.textContent ?? null, title_tooltip: h?.getAttribute('title') ?? null,
                         title_cut: !!h && (h.scrollWidth > h.clientWidth + 1 || h.scrollHeight > h.clientHeight + 1),
                         description: c.querySelector('p')?.textContent ?? null,
                         image: i && i.complete && i.naturalWidth ? [i.naturalWidth, i.naturalHeight] : null,
                         picture_covered: covered }; }""", picture_box))
        cards.first.scroll_into_view_if_needed()  # back to the top; pictures out of view may have been dropped
        try:
            self.page.wait_for_function("""(c) => { const i = c.querySelector('img');
                return !!i && i.complete && i.naturalWidth > 0; }""", arg=cards.first.element_handle(),
                                        timeout=int(image_timeout_s * 1000))
            self.settle()
        except Exception:  # noqa: BLE001 - only the look of a later screenshot depends on it
            pass
        return out

    def close_dialog(self) -> None:
        """Close the open dialog with its close button (the first visible one with the times icon; Escape if none)
        and wait until no dialog is shown."""
        dialog = self.page.locator('[role="dialog"]').last
        button = next((b for b in dialog.locator("button:has(i.pi-times)").all() if b.is_visible()), None)
        if button is not None:
            button.click()
        else:
            self.page.keyboard.press("Escape")
        self.page.locator('[role="dialog"]').first.wait_for(state="hidden", timeout=self.timeout_ms)

    def queue(self) -> None:
        """Press Queue (``app.queuePrompt``)."""
        self.evaluate("async () => { await window.comfyAPI.app.app.queuePrompt(0, 1); }")

    def wait_idle(self, get, timeout_s: float = 120) -> None:
        """Poll the server's /queue until nothing is running or pending (``get`` = ComfyServer.get)."""
        t0 = time.time()
        while time.time() - t0 < timeout_s:
            q = get("/queue")
            if not q["queue_running"] and not q["queue_pending"]:
                return
            time.sleep(0.3)
        raise TimeoutError(f"the queue did not empty within {timeout_s} s")
