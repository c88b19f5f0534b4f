// LongAnim: live schedule preview on the context-window nodes, and greying of inputs a mode does not use.
//
// The picture is drawn by the pack's Python schedule code (GET /longanim/schedule_preview, the same
// nodes/comfy/window_options.schedule_picture the sampler and "LongAnim: Preview Schedule" use): no JavaScript
// port of the math.
// The preview widget is view-only (serialize: false): nothing is saved in the workflow or sent to the backend.
//
// Works with both node renderers of the frontend: the classic canvas (LiteGraph draws every node and calls
// onDrawForeground) and "Nodes 2.0" (setting Comfy.VueNodes.Enabled: nodes are DOM elements, the canvas draws no
// node and never calls onDrawForeground). So preview and greying are also refreshed by one timer over the live
// nodes, and a greyed input is marked both ways the renderers read it: widget.disabled (the canvas, and the DOM
// nodes of frontends that keep it in their reactive widget store, 1.45 to 1.58) and widget.options.disabled (read by
// the DOM nodes of older frontends, 1.32, when a node is added or a workflow loaded; they do not follow later
// changes; newer ones grey a widget when either is set, so both are always written together).
const { app } = window.comfyAPI.app;
const { api } = window.comfyAPI.api;

const ROUTE = "/longanim/schedule_preview";
// Node ids: the current ones and the retired ids saved workflows may still hold (docs/vocabulary.md; the retired
// ones keep their old input names, OLD_NAMES, and the route maps them to the current node).
const ZOLA = ["LongAnimZoLAWindowsV2", "LongAnimZoLAWindows"];
const WAN = ["LongAnimWanZoLAWindowsV2", "LongAnimWanZoLAWindows"];
const GENL = ["LongAnimGenLWindowsV2", "LongAnimGenLWindows"];
const ALL_SCHEDULES = ["LongAnimContextWindowsV2", "LongAnimContextWindows"];
const PREVIEW_SCHEDULE = ["LongAnimPreviewScheduleV2", "LongAnimPreviewSchedule"];
const PREVIEW_NODES = new Set([...ZOLA, ...WAN, ...GENL, ...ALL_SCHEDULES]);
const GREY_NODES = new Set([...PREVIEW_NODES, ...PREVIEW_SCHEDULE]);
// current input name -> its name on the retired node ids
const OLD_NAMES = { context_overlap: "overlap", fuse_method: "fusion", frame_unit: "length_unit" };
// widgets whose values are sent to the route (current names of the nodes' inputs)
const QUERY_WIDGETS = ["context_schedule", "context_length", "stride", "context_overlap", "max_skip", "closed_loop",
    "fuse_method", "seed", "blend_variant", "ends", "skip_until", "frame_unit", "noise"];
// inputs each context_schedule reads (context_schedule.make_windows docstring); the rest are greyed
const USED_BY_SCHEDULE = {
    zola: ["stride", "max_skip", "ends"], uniform: ["stride"], static: ["context_overlap"],
    shifted: ["context_overlap"], looped: ["context_overlap", "closed_loop"], batched: [],
};
const SCHEDULE_INPUTS = ["stride", "context_overlap", "max_skip", "closed_loop", "ends"];
const DEBOUNCE_MS = 150;
const POLL_MS = 250;
const MAX_STEPS = 1000; // the route's limit; it draws at most 12 of the run's steps

// nodes of this pack with greying (and maybe a preview) that are alive on the page
const LIVE = new Set();
let pollTimer = null;

function track(node) {
    LIVE.add(node);
    pollTimer ??= setInterval(() => {
        for (const n of LIVE) {
            if (!n.graph) continue; // created but not added yet, or being moved between graphs
            applyGreying(n);
            n.longanimRefresh?.();
        }
    }, POLL_MS);
}

function untrack(node) {
    LIVE.delete(node);
    if (!LIVE.size && pollTimer !== null) {
        clearInterval(pollTimer);
        pollTimer = null;
    }
}

// the widget of input `name` (its current name, or its name on a retired node id)
function widget(node, name) {
    return node.widgets?.find((w) => w.name === name || (OLD_NAMES[name] !== undefined && w.name === OLD_NAMES[name]));
}

// The video this graph makes: {frames, video, ratio} from its latent node: a video latent node's `length` (video
// frames; temporal compression 8 for LTX-Video, else 4) or an image latent's `batch_size` (latent frames); null
// when the graph has none.
function graphVideo(node) {
    let best = null;
    for (const other of node.graph?._nodes ?? []) {
        if (!/Latent|Video/i.test(other.type ?? "")) continue;
        const length = widget(other, "length");
        const batch = widget(other, "batch_size");
        const found = length && typeof length.value === "number"
            ? { frames: length.value, video: true, ratio: /LTXV/i.test(other.type) ? 8 : 4 }
            : batch && typeof batch.value === "number" ? { frames: batch.value, video: false, ratio: 1 } : null;
        if (found && (!best || found.video > best.video || (found.video === best.video && found.frames > best.frames))) {
            best = found;
        }
    }
    return best;
}

function graphSteps(node) {
    for (const other of node.graph?._nodes ?? []) {
        const w = widget(other, "steps");
        if (w && typeof w.value === "number" && !PREVIEW_SCHEDULE.includes(other.type)) {
            return Math.max(1, Math.min(MAX_STEPS, w.value));
        }
    }
    return 20; // KSampler's default
}

function applyGreying(node) {
    const schedule = ALL_SCHEDULES.includes(node.comfyClass) || PREVIEW_SCHEDULE.includes(node.comfyClass)
        ? widget(node, "context_schedule")?.value : null;
    const used = schedule ? USED_BY_SCHEDULE[schedule] ?? SCHEDULE_INPUTS : SCHEDULE_INPUTS;
    let changed = false;
    const setDisabled = (name, off) => {
        const w = widget(node, name);
        if (w && (!!w.disabled !== off || !!w.options?.disabled !== off)) {
            w.disabled = off;
            if (w.options) w.options.disabled = off;
            changed = true;
        }
    };
    if (schedule) for (const name of SCHEDULE_INPUTS) setDisabled(name, !used.includes(name));
    const blend = widget(node, "fuse_method")?.value === "randomized_blend";
    setDisabled("blend_variant", !blend);
    if (GENL.includes(node.comfyClass)) setDisabled("seed", !blend);
    if (changed) node.setDirtyCanvas?.(true, false);
}

function previewQuery(node) {
    const wan = WAN.includes(node.comfyClass);
    const params = new URLSearchParams({ node: node.comfyClass });
    for (const name of QUERY_WIDGETS) {
        const w = widget(node, name);
        if (w !== undefined && w.value !== undefined && w.value !== null) params.set(w.name, String(w.value));
    }
    const g = graphVideo(node) ?? (wan ? { frames: 241, video: true, ratio: 4 } : { frames: 64, video: false, ratio: 1 });
    params.set("frames", String(Math.min(g.frames, g.video ? 4093 : 1024)));
    params.set("frames_unit", g.video ? "video frames" : "latent frames");
    params.set("temporal_compression", String(g.video ? g.ratio : 1));
    params.set("steps", String(graphSteps(node)));
    return params.toString();
}

function addPreview(node) {
    const box = document.createElement("div");
    box.className = "longanim-schedule-preview";
    Object.assign(box.style, { display: "flex", flexDirection: "column", width: "100%", height: "100%",
        overflow: "hidden" });
    const img = document.createElement("img");
    img.alt = "LongAnim schedule preview";
    Object.assign(img.style, { flex: "1 1 auto", minHeight: "0", width: "100%", objectFit: "contain",
        imageRendering: "pixelated", background: "#111" });
    const caption = document.createElement("div");
    Object.assign(caption.style, { font: "11px sans-serif", color: "#aaa", padding: "2px 4px",
        whiteSpace: "nowrap", overflow: "hidden", textOverflow: "ellipsis" });
    box.append(img, caption);

    const previewWidget = node.addDOMWidget("longanim_schedule_preview", "longanim_preview", box, {
        serialize: false, hideOnZoom: false, getValue: () => undefined, setValue: () => {},
        getMinHeight: () => 110,
    });
    previewWidget.serialize = false;

    const state = { query: null, timer: null, controller: null, url: null };
    node.longanimPreview = { state, img, caption };

    async function load(query) {
        state.controller?.abort();
        const controller = new AbortController();
        state.controller = controller;
        try {
            const res = await fetch(api.apiURL(`${ROUTE}?${query}`), { signal: controller.signal });
            if (!res.ok) {
                caption.textContent = res.status === 400 ? await res.text() : `preview unavailable (HTTP ${res.status})`;
                caption.style.color = "#e88";
                img.style.opacity = "0.3";
                return;
            }
            const blob = await res.blob();
            if (controller.signal.aborted) return;
            if (state.url) URL.revokeObjectURL(state.url);
            state.url = URL.createObjectURL(blob);
            img.src = state.url;
            img.style.opacity = "1";
            const p = new URLSearchParams(query);
            const steps = Number(p.get("steps"));
            const note = res.headers.get("X-LongAnim-Note");
            caption.style.color = note ? "#eb6" : "#aaa";
            caption.title = note ?? "";
            caption.textContent = note ?? `windows of ${p.get("frames")} ${p.get("frames_unit")}, one band per step (`
                + `${steps <= 12 ? `all ${steps}` : `12 of ${steps}`} steps, sampler seed 0)`;
        } catch (e) {
            if (e?.name !== "AbortError") {
                caption.textContent = "preview unavailable (server not reachable)";
                caption.style.color = "#e88";
            }
        } finally {
            if (state.controller === controller) state.controller = null;
        }
    }

    // Called on every draw of the node: cheap; fetches only when the query (widgets, latent size, steps) changed.
    node.longanimRefresh = () => {
        const query = previewQuery(node);
        if (query === state.query) return;
        state.query = query;
        clearTimeout(state.timer);
        state.timer = setTimeout(() => load(query), DEBOUNCE_MS);
    };
    node.longanimDispose = () => {
        clearTimeout(state.timer);
        state.controller?.abort();
        if (state.url) URL.revokeObjectURL(state.url);
        state.url = null;
    };
    const [w, h] = node.size;
    node.setSize([Math.max(w, 320), Math.max(h, node.computeSize()[1])]);
}

function chain(object, property, fn) {
    const original = object[property];
    object[property] = function (...args) {
        const result = original?.apply(this, args);
        fn.apply(this, args);
        return result;
    };
}

app.registerExtension({
    name: "LongAnim.SchedulePreview",
    async beforeRegisterNodeDef(nodeType, nodeData) {
        if (!GREY_NODES.has(nodeData?.name)) return;
        const preview = PREVIEW_NODES.has(nodeData.name);
        chain(nodeType.prototype, "onNodeCreated", function () {
            if (preview) addPreview(this);
            applyGreying(this);
            track(this);
        });
        chain(nodeType.prototype, "onConfigure", function () {
            applyGreying(this);
        });
        chain(nodeType.prototype, "onWidgetChanged", function () {
            applyGreying(this);
        });
        chain(nodeType.prototype, "onDrawForeground", function () {
            applyGreying(this);
            this.longanimRefresh?.();
        });
        chain(nodeType.prototype, "onRemoved", function () {
            untrack(this);
            this.longanimDispose?.();
        });
    },
});
