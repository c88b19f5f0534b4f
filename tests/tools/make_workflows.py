"""Generate the example workflows in ``workflows/`` (ComfyUI UI-format graphs) from the server's node definitions.

    .host/venv/bin/python tests/tools/make_workflows.py              # starts the host server, writes workflows/
    .host/venv/bin/python tests/tools/make_workflows.py --url http://127.0.0.1:8188 --only longanim_wan_t2v_long

Widget values are laid out from ``/object_info`` (``input_order``, defaults, the extra ``control_after_generate``
value after seeds) exactly as the frontend expects, so the files load without shifted widgets. Nodes of other packs
(AnimateDiff-Evolved) are not on the test host: their widgets are declared in ``THIRD_PARTY`` from their source.
``build_workflows(object_info, tiny=True)`` gives the tiny-model variants the browser and e2e tests run (never
written to ``workflows/``); ``to_api`` turns a workflow into the API-format prompt the frontend would queue for it.
``--only KEY`` writes just the workflows of these builder keys.

Template browser: each workflow is written as ``workflows/<title>.json`` (``template_name``: ComfyUI's template
browser shows the file name as the card's title and description) with a same-name ``.jpg``, the card's picture
(``thumbnail``: the title above the schedule preview of the workflow's window node, or the picture of what its
LongAnim node does), drawn with the pack's pure code; no browser needed.

Layout: nodes stand in columns; every node is sized to its title and one-line widget texts (estimated from the
frontend's 14 px title font) and the columns are spaced by their widest node, so no title is cut. A graph too wide
to be shown at ``MIN_SCALE`` in a 1600 x 1000 window is wrapped into two rows of columns; its saved view
(``extra.ds``) shows every node right of the side bar, below the top menu and clear of the minimap
(``saved_view``), checked in the real frontend by tests/e2e/test_e2e_browser.py.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import re
import sys
import uuid

ROOT = pathlib.Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / "workflows"
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
FILE_SUFFIXES = (".safetensors", ".ckpt", ".pth", ".pt", ".bin", ".png", ".jpg", ".jpeg", ".webp", ".mp4", ".gguf")
NODE_WIDTH = 330
VIRTUAL = {"Note", "MarkdownNote", "Reroute", "PrimitiveNode"}  # frontend-only nodes: not in the API prompt
# Width estimates of node_width: px per character of the frontend's fonts (14 px Arial titles measure about
# 7 px per character; 8.2 leaves room for capitals), plus margins (a title is drawn in the node's width minus two
# title heights, 60 px; a widget's label and value need its arrows and a gap). Checked in the browser by
# tests/e2e/test_e2e_families.py against the canvas's own text measurement.
TITLE_CHAR_PX, TITLE_MARGIN_PX = 8.2, 64
WIDGET_CHAR_PX, WIDGET_MARGIN_PX = 7.0, 70
COLUMN_GAP = 30
NODE_GAP = 40  # from a node's bottom to the next one's pos in a column: its title bar and 10 px
TITLE_HEIGHT = 30  # LiteGraph.NODE_TITLE_HEIGHT: a node's title bar is drawn above its pos
ROW_GAP = 80  # between the rows of a wrapped graph
# Saved view (``extra.ds``): where the canvas is not covered by the frontend's chrome in a 1600 x 1000 window, the
# worst case of frontends 1.32 and 1.45 (measured with tests/tools/browser.py): the side tool bar ends at x 59 (the
# canvas panel at 63); the top holds 1.32's "Nodes 2.0" banner, workflow tabs and breadcrumb/graph name down to
# y 130 (1.45: tabs to 38, graph name and run bar to 82); the minimap covers the corner right of x 1343 and below
# y 742. Nodes must be shown at a zoom where LiteGraph draws their text: below MinFontSizeForLOD 8 px / 14 px
# NODE_TEXT_SIZE = 0.571 it draws boxes only; MIN_SCALE leaves room above that.
VIEW_SIZE = (1600, 1000)
VIEW_AREA = (63, 130, 1596, 996)  # left, top, right, bottom
MINIMAP_CORNER = (1343, 742)
VIEW_PAD = 16
MIN_SCALE, MAX_SCALE = 0.65, 1.0
PREVIEW_NODES = {"LongAnimZoLAWindowsV2", "LongAnimWanZoLAWindowsV2", "LongAnimGenLWindowsV2",
                 "LongAnimContextWindowsV2"}
# Third-party nodes the workflows use, as /object_info would describe them (from the packs' INPUT_TYPES).
THIRD_PARTY = {
    "ADE_AnimateDiffLoaderGen1": {  # Kosinkadink/ComfyUI-AnimateDiff-Evolved, animatediff/nodes_gen1.py
        "input": {"required": {"model": ["MODEL"], "model_name": [["mm_sd_v15_v2.ckpt"]],
                               "beta_schedule": [["autoselect", "use existing", "sqrt_linear (AnimateDiff)",
                                                  "linear (AnimateDiff-SDXL)", "linear (HotshotXL/default)",
                                                  "avg(sqrt_linear,linear)", "lcm avg(sqrt_linear,linear)", "lcm",
                                                  "lcm[100_ots]", "lcm[25_ots]", "lcm >> sqrt_linear", "sqrt",
                                                  "cosine", "squaredcos_cap_v2"], {"default": "autoselect"}]},
                  "optional": {"context_options": ["CONTEXT_OPTIONS"], "motion_lora": ["MOTION_LORA"],
                               "ad_settings": ["AD_SETTINGS"], "ad_keyframes": ["AD_KEYFRAMES"],
                               "sample_settings": ["SAMPLE_SETTINGS"], "scale_multival": ["MULTIVAL"],
                               "effect_multival": ["MULTIVAL"], "per_block": ["PER_BLOCK"]}},
        "input_order": {"required": ["model", "model_name", "beta_schedule"],
                        "optional": ["context_options", "motion_lora", "ad_settings", "ad_keyframes",
                                     "sample_settings", "scale_multival", "effect_multival", "per_block"]},
        "output": ["MODEL"], "output_name": ["MODEL"],
    },
}
THIRD_PARTY_PACKS = {"ADE_": "ComfyUI-AnimateDiff-Evolved (Kosinkadink)", "VHS_": "ComfyUI-VideoHelperSuite",
                     "ACN_": "ComfyUI-Advanced-ControlNet"}
# Core nodes newer than the CI's ComfyUI 0.3.75, as current ComfyUI's /object_info describes them, with the
# version that brought them: a workflow using one is built (and checked) on any host; the tests run its core
# part only where the server has the node and compare this declaration with the server's own
# (tests/e2e/test_e2e_multigpu.py).
NEWER_CORE = {
    "MultiGPU_WorkUnits": {  # comfy_extras/nodes_multigpu.py, MultiGPUCFGSplitNode (ComfyUI 0.28.0 to 0.33.0)
        "since": "0.28.0",
        "display_name": "MultiGPU CFG Split", "category": "advanced/multigpu",
        "python_module": "comfy_extras.nodes_multigpu",
        "input": {"required": {"model": ["MODEL", {}], "max_gpus": ["INT", {"default": 2, "min": 1, "step": 1}]}},
        "input_order": {"required": ["model", "max_gpus"]},
        "output": ["MODEL"], "output_name": ["MODEL"], "output_node": False,
    },
}


def combo_options(kind, opts: dict) -> list:
    """The choices of a combo input in either ``/object_info`` format: the list itself as the type (ComfyUI up to
    0.3.x V1 nodes), or the type ``"COMBO"`` with the list under ``options`` (V3 schema nodes, all core nodes of
    current ComfyUI)."""
    return list(kind) if isinstance(kind, list) else list(opts.get("options", []))


def has_control_value(name: str, kind, opts: dict) -> bool:
    """Whether the frontend follows this widget with a ``control_after_generate`` value (saved in
    ``widgets_values`` right after it): INT seeds (named seed / noise_seed unless the spec says otherwise) and combos
    that ask for one."""
    is_combo = isinstance(kind, list) or kind == "COMBO"
    control = opts.get("control_after_generate")
    return bool((kind == "INT" and (control if control is not None else name in ("seed", "noise_seed"))) or
                (is_combo and control))


class Out:
    def __init__(self, node: Node, slot: int):
        self.node, self.slot = node, slot


class Node:
    def __init__(self, wf: Workflow, nid: int, type_: str, info: dict, col: float, title: str | None):
        self.wf, self.id, self.type, self.info, self.col, self.title = wf, nid, type_, info, col, title
        self.inputs: list[dict] = []
        self.outputs = [{"localized_name": n, "name": n, "type": t, "links": None}
                        for t, n in zip(info.get("output", []), info.get("output_name", []), strict=False)]
        self.widgets_values: list = []
        self.height = 0.0

    def __getitem__(self, key: int | str) -> Out:
        if isinstance(key, str):
            key = [o["name"] for o in self.outputs].index(key)
        return Out(self, key)


class Workflow:
    """UI-format graph builder: ``n = wf.node("KSampler", col, seed=1, model=loader[0], ...)``."""

    def __init__(self, object_info: dict, name: str):
        self.info = {**THIRD_PARTY, **NEWER_CORE, **object_info}
        self.name = name
        self.nodes: list[Node] = []
        self.links: list[list] = []
        self.notes: list[tuple[str, float]] = []

    def note(self, text: str, col: float = 0) -> None:
        self.notes.append((text, col))

    def node(self, type_: str, col: float, title: str | None = None, **values) -> Node:
        if type_ not in self.info:
            raise KeyError(f"{self.name}: node type {type_} is not on the server (is its pack installed?)")
        info = self.info[type_]
        node = Node(self, len(self.nodes) + len(self.notes) + 1, type_, info, col, title)
        upload = False
        order = info.get("input_order") or {s: list(info["input"].get(s, {})) for s in ("required", "optional")}
        unknown = set(values) - {n for s in ("required", "optional") for n in order.get(s, [])}
        if unknown:
            raise KeyError(f"{self.name}: {type_} has no input(s) {sorted(unknown)}")
        for section in ("required", "optional"):
            for name in order.get(section, []):
                spec = info["input"][section][name]
                kind, opts = spec[0], (spec[1] if len(spec) > 1 else {})
                is_combo = isinstance(kind, list) or kind == "COMBO"
                slot = {"localized_name": name, "name": name, "type": "COMBO" if is_combo else kind}
                if section == "optional":
                    slot["shape"] = 7
                value = values.get(name)
                if is_combo or (kind in WIDGET_TYPES and not opts.get("forceInput")):
                    slot["widget"] = {"name": name}
                    node.widgets_values += self._widget_values(type_, name, kind, opts, value, is_combo)
                    node.height += 110 if opts.get("multiline") else 24
                    if opts.get("image_upload") or opts.get("video_upload"):
                        upload = True
                else:
                    node.height += 22
                slot["link"] = None
                if isinstance(value, Out):
                    slot["link"] = self._link(value, node, len(node.inputs), slot["type"])
                elif value is not None and "widget" not in slot:
                    raise TypeError(f"{self.name}: {type_}.{name} takes a link, got {value!r}")
                node.inputs.append(slot)
        if upload:  # the frontend adds an upload button after the file combo; its value is saved
            node.inputs.append({"localized_name": "choose file to upload", "name": "upload", "type": "IMAGEUPLOAD",
                                "widget": {"name": "upload"}, "link": None})
            node.widgets_values.append("image")
            node.height += 260
        node.height += 22 * len(node.outputs) + 40
        if type_ in PREVIEW_NODES:  # js/longanim.schedule_preview.js adds a picture below the widgets
            node.height += 190
        self.nodes.append(node)
        return node

    def _widget_values(self, type_, name, kind, opts, value, is_combo) -> list:
        if isinstance(value, Out):
            raise TypeError(f"{self.name}: {type_}.{name} is a widget; converting widgets to links is not supported")
        options = combo_options(kind, opts) if is_combo else []
        if value is None:
            if "default" in opts:
                value = opts["default"]
            elif is_combo and options:
                value = options[0]
            elif is_combo:
                raise ValueError(f"{self.name}: {type_}.{name} needs a value (no options on this server)")
            else:
                value = {"INT": 0, "FLOAT": 0.0, "STRING": "", "BOOLEAN": False}[kind]
        if is_combo:
            if options and value not in options and not str(value).lower().endswith(FILE_SUFFIXES):
                raise ValueError(f"{self.name}: {type_}.{name}={value!r} is not one of {options}")
        elif kind in ("INT", "FLOAT") and not (opts.get("min", -1e308) <= value <= opts.get("max", 1e308)):
            raise ValueError(f"{self.name}: {type_}.{name}={value} outside [{opts.get('min')}, {opts.get('max')}]")
        out = [value]
        if has_control_value(name, kind, opts):
            out.append("fixed")
        return out

    def _link(self, src: Out, dst: Node, dst_slot: int, type_: str) -> int:
        lid = len(self.links) + 1
        out = src.node.outputs[src.slot]
        if type_ not in (out["type"], "*") and out["type"] != "*":
            raise TypeError(f"{self.name}: cannot link {src.node.type}.{out['name']} ({out['type']}) to "
                            f"{dst.type} input {dst_slot} ({type_})")
        out["links"] = (out["links"] or []) + [lid]
        self.links.append([lid, src.node.id, src.slot, dst.id, dst_slot, out["type"]])
        return lid

    def node_width(self, node: Node) -> float:
        """The node's width: at least NODE_WIDTH, wide enough for its title (the display name when it has no title
        of its own) and for the label and value of each one-line widget."""
        title = node.title or node.info.get("display_name") or node.type
        need = len(title) * TITLE_CHAR_PX + TITLE_MARGIN_PX
        values = iter(node.widgets_values)
        for slot in node.inputs:
            if "widget" not in slot:
                continue
            value = next(values, "")
            spec = node.info["input"].get("required", {}).get(slot["name"]) or \
                node.info["input"].get("optional", {}).get(slot["name"]) or [None, {}]
            opts = spec[1] if len(spec) > 1 else {}
            if slot["name"] != "upload" and has_control_value(slot["name"], spec[0], opts):
                next(values, None)
            if opts.get("multiline"):
                continue
            need = max(need, (len(slot["name"]) + len(str(value))) * WIDGET_CHAR_PX + WIDGET_MARGIN_PX)
        return float(max(NODE_WIDTH, 10 * -(-need // 10)))

    def _columns(self) -> list[list[dict]]:
        """The UI-format notes and nodes of each column (left to right), top-down; positions not set yet."""
        cols: dict[float, list[dict]] = {}
        for text, col in self.notes:
            h = 60 + 18 * (len(text) // 50 + text.count("\n") + 1)
            cols.setdefault(col, []).append(
                {"id": sum(map(len, cols.values())) + 1, "type": "Note", "pos": [0.0, 0.0], "size": [NODE_WIDTH, h],
                 "flags": {}, "order": 0, "mode": 0, "inputs": [], "outputs": [], "properties": {},
                 "widgets_values": [text], "color": "#432", "bgcolor": "#653"})
        for order, node in enumerate(self.nodes):
            item = {"id": node.id, "type": node.type, "pos": [0.0, 0.0],
                    "size": [self.node_width(node), max(80.0, node.height)], "flags": {},
                    "order": order + len(self.notes), "mode": 0, "inputs": node.inputs, "outputs": node.outputs,
                    "properties": {"Node name for S&R": node.type}, "widgets_values": node.widgets_values}
            if node.title:
                item["title"] = node.title
            cols.setdefault(node.col, []).append(item)
        return [cols[col] for col in sorted(cols)]

    def to_json(self) -> dict:
        """The UI-format workflow laid out by ``arrange``, with the saved view (``extra.ds``) that shows all of it."""
        nodes, ds = arrange(self._columns())
        nodes.sort(key=lambda n: n["id"])
        return {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, "longanim/" + self.name)), "revision": 0,
                "last_node_id": len(nodes), "last_link_id": len(self.links), "nodes": nodes, "links": self.links,
                "groups": [], "config": {}, "extra": {"ds": ds}, "version": 0.4}


def _stack_height(column: list[dict]) -> float:
    return sum(n["size"][1] for n in column) + NODE_GAP * (len(column) - 1) + TITLE_HEIGHT


def _split_tall(columns: list[list[dict]], limit: float) -> list[list[dict]]:
    """Columns taller than ``limit`` split in two (top-down order kept) at the node boundary nearest half their
    height, until none is, or the tall one is a single node."""
    out: list[list[dict]] = []
    for column in columns:
        todo = [column]
        while todo:
            col = todo.pop(0)
            if _stack_height(col) <= limit or len(col) < 2:
                out.append(col)
                continue
            half = _stack_height(col) / 2
            cut = min(range(1, len(col)), key=lambda k: abs(_stack_height(col[:k]) - half))
            todo[:0] = [col[:cut], col[cut:]]
    return out


def _place(columns: list[list[dict]], split: int | None) -> list[dict]:
    """Copies of the nodes placed column by column (spaced by their widest node, stacked top-down); the columns
    from index ``split`` on form a second row that starts at x 0 below the first row's lowest node."""
    nodes, x, y0, bottom = [], 0.0, 0.0, 0.0
    for k, column in enumerate(columns):
        if k == split:
            x, y0 = 0.0, bottom + ROW_GAP
        y = y0
        for n in column:
            nodes.append(dict(n, pos=[x, y]))
            y += n["size"][1] + NODE_GAP
            bottom = max(bottom, y - NODE_GAP + TITLE_HEIGHT)
        x += max(n["size"][0] for n in column) + COLUMN_GAP
    return nodes


def saved_view(nodes: list[dict]) -> dict:
    """``extra.ds`` (LiteGraph's DragAndScale: screen = (pos + offset) * scale) that shows every node with its title
    bar inside ``VIEW_AREA`` less ``VIEW_PAD``, anchored at its top left, clear of the minimap's corner
    (``MINIMAP_CORNER``), as large as fits up to ``MAX_SCALE``; the scale is rounded down to 1/1000."""
    boxes = [(n["pos"][0], n["pos"][1] - TITLE_HEIGHT, n["pos"][0] + n["size"][0], n["pos"][1] + n["size"][1])
             for n in nodes]
    x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
    x1, y1 = max(b[2] for b in boxes), max(b[3] for b in boxes)
    left, top, right, bottom = VIEW_AREA
    left, top, right, bottom = left + VIEW_PAD, top + VIEW_PAD, right - VIEW_PAD, bottom - VIEW_PAD
    scale = min(MAX_SCALE, (right - left) / (x1 - x0), (bottom - top) / (y1 - y0))
    corner_x, corner_y = MINIMAP_CORNER[0] - VIEW_PAD, MINIMAP_CORNER[1] - VIEW_PAD
    for _, _, bx1, by1 in boxes:  # each node ends left of the minimap or above it
        scale = min(scale, max((corner_x - left) / (bx1 - x0), (corner_y - top) / (by1 - y0)))
    scale = int(scale * 1000) / 1000
    return {"scale": scale, "offset": [round(left / scale - x0, 1), round(top / scale - y0, 1)]}


def _merge_short(columns: list[list[dict]], limit: float) -> list[list[dict]]:
    """Neighbouring columns stacked into one (left one on top) while the stack stays within ``limit``."""
    out = [list(columns[0])]
    for column in columns[1:]:
        if _stack_height(out[-1] + column) <= limit:
            out[-1] = out[-1] + column
        else:
            out.append(list(column))
    return out


def arrange(columns: list[list[dict]]) -> tuple[list[dict], dict]:
    """``(nodes, extra.ds)``: the first layout, simplest first, whose saved view reaches ``MIN_SCALE`` (else the
    one with the largest view): the columns as built in one row; columns taller than the view holds at
    ``MIN_SCALE`` (or 3/4, 0.6 of it) split, each also with short neighbouring columns stacked; then each of these
    wrapped into two rows (first row: the columns before the wrap)."""
    limit = (VIEW_AREA[3] - VIEW_AREA[1] - 2 * VIEW_PAD) / MIN_SCALE
    variants = [columns]
    for part in (1, 0.75, 0.6):  # splits into ever shorter columns
        split = _split_tall(columns, limit * part)
        variants += [split, _merge_short(split, limit)]
    layouts = [_place(v, None) for v in variants]
    layouts += [_place(v, k) for v in variants for k in range(1, len(v))]
    best = None
    for nodes in layouts:
        ds = saved_view(nodes)
        if ds["scale"] >= MIN_SCALE:
            return nodes, ds
        if best is None or ds["scale"] > best[1]["scale"]:
            best = (nodes, ds)
    return best


# ------------------------------------------------------------------------------------------------ shared pieces
NEG = "blurry, low quality, watermark, text, deformed"
MODELS_NOTE = "Models (put them in ComfyUI/models/...):\n"


def third_party_note(*packs: str) -> str:
    return "Needs custom node pack(s): " + ", ".join(packs) + " (install with ComfyUI-Manager).\n"


def sd_base(wf: Workflow, tiny: bool, frames: int, prompt: str, size: int = 512):
    """Loader, prompts and empty latent for SD1.5 (tiny: the test UNet, TinyTestConditioning, 32 px)."""
    if tiny:
        model = wf.node("UNETLoader", 0, unet_name="longanim_tiny_sd15.safetensors")[0]
        vae = wf.node("VAELoader", 0, vae_name="longanim_tiny_taesd.safetensors")[0]
        pos = wf.node("TinyTestConditioning", 1, text=prompt, family="sd15")[0]
        neg = wf.node("TinyTestConditioning", 1, text="", family="sd15")[0]
        latent = wf.node("EmptyLatentImage", 1, width=32, height=32, batch_size=min(frames, 16))[0]
        return model, None, vae, pos, neg, latent
    ckpt = wf.node("CheckpointLoaderSimple", 0, ckpt_name="v1-5-pruned-emaonly.safetensors")
    pos = wf.node("CLIPTextEncode", 1, title="positive prompt", text=prompt, clip=ckpt[1])[0]
    neg = wf.node("CLIPTextEncode", 1, title="negative prompt", text=NEG, clip=ckpt[1])[0]
    latent = wf.node("EmptyLatentImage", 1, width=size, height=size, batch_size=frames)[0]
    return ckpt[0], ckpt[1], ckpt[2], pos, neg, latent


def wan_base(wf: Workflow, tiny: bool, video_frames: int, prompt: str | None, size: tuple[int, int] = (832, 480),
             latent_title: str | None = None):
    if tiny:
        model = wf.node("UNETLoader", 0, unet_name="longanim_tiny_wan21.safetensors")[0]
        vae = wf.node("VAELoader", 0, vae_name="longanim_tiny_taew21.safetensors")[0]
        pos = wf.node("TinyTestConditioning", 1, text=prompt or "a fox", family="wan21")[0]
        neg = wf.node("TinyTestConditioning", 1, text="", family="wan21")[0]
        latent = wf.node("EmptyHunyuanLatentVideo", 1, width=64, height=64, length=min(video_frames, 41))[0]
        return model, None, vae, pos, neg, latent
    model = wf.node("UNETLoader", 0, unet_name="wan2.1_t2v_1.3B_fp16.safetensors")[0]
    model = wf.node("ModelSamplingSD3", 0, model=model, shift=8.0)[0]
    clip = wf.node("CLIPLoader", 0, clip_name="umt5_xxl_fp8_e4m3fn_scaled.safetensors", type="wan")[0]
    vae = wf.node("VAELoader", 0, vae_name="wan_2.1_vae.safetensors")[0]
    pos = wf.node("CLIPTextEncode", 1, title="positive prompt", text=prompt or "", clip=clip)[0] if prompt else None
    neg = wf.node("CLIPTextEncode", 1, title="negative prompt", text=NEG, clip=clip)[0]
    latent = wf.node("EmptyHunyuanLatentVideo", 1, title=latent_title, width=size[0], height=size[1],
                     length=video_frames)[0]
    return model, clip, vae, pos, neg, latent


def sample_and_save(wf: Workflow, tiny: bool, model, pos, neg, latent, vae, prefix: str, steps: int, cfg: float,
                    fps: float, col: float = 3, sampler: str = "euler", scheduler: str = "normal", denoise=1.0,
                    save_col: float | None = None):
    """KSampler in column ``col``, decode and save in ``save_col`` (default: the next column)."""
    if tiny:
        steps, sampler, scheduler = 2, "euler", "normal"
    s = wf.node("KSampler", col, seed=42, steps=steps, cfg=cfg, sampler_name=sampler, scheduler=scheduler,
                denoise=denoise, model=model, positive=pos, negative=neg, latent_image=latent)[0]
    return save_video(wf, s, vae, prefix, fps, col + 1 if save_col is None else save_col)


def save_video(wf: Workflow, samples, vae, prefix: str, fps: float, col: float):
    images = wf.node("VAEDecode", col, samples=samples, vae=vae)[0]
    wf.node("SaveAnimatedWEBP", col, images=images, filename_prefix=f"LongAnim/{prefix}", fps=fps, quality=90)
    return images


# ------------------------------------------------------------------------------------------------ the workflows
def zero_shot_sd15(wf: Workflow, tiny: bool) -> None:
    wf.note("Zero-shot video from an IMAGE model (Free-Bloom/ZS² idea): no motion module. Dependency noise "
            "(ZS² Algorithm 1) makes neighbouring frames' noise similar; temporal momentum attention (ZS² Eq. 2) "
            "lets every frame look back at the previous ones. Raise lam for more change between frames, lower "
            "momentum for more motion.\n" + MODELS_NOTE + "- checkpoints/v1-5-pruned-emaonly.safetensors")
    model, _, vae, pos, neg, latent = sd_base(wf, tiny, 16, "a red fox walking through fresh snow, forest, "
                                              "golden hour, highly detailed")
    recipe = wf.node("LongAnimDependencyNoise", 1, seed=7, lam=0.01)
    model = wf.node("LongAnimApplyNoiseToModel", 2, model=model, recipe=recipe[1])[0]
    model = wf.node("LongAnimTemporalMomentumAttention", 2, model=model, momentum=0.98)[0]
    sample_and_save(wf, tiny, model, pos, neg, latent, vae, "zero_shot_sd15", 25, 7.0, 8)


def animatediff_zola_256(wf: Workflow, tiny: bool) -> None:
    wf.note(third_party_note("ComfyUI-AnimateDiff-Evolved") +
            "256 frames with an AnimateDiff motion module (16-frame windows). ZoLA repeat-mask noise (Eq. 8) keeps "
            "the scene, ZoLA windows (Eqs. 4-7) are re-drawn every step so seams wash out, and noise travel "
            "(Eq. 9) re-noises the early steps so windows agree. Do NOT add ADE context options: LongAnim owns "
            "the window loop.\n" + MODELS_NOTE + "- checkpoints/v1-5-pruned-emaonly.safetensors\n"
            "- animatediff_models/mm_sd_v15_v2.ckpt")
    model, _, vae, pos, neg, latent = sd_base(wf, tiny, 256, "a koi pond seen from above, koi fish swimming, "
                                              "lily pads, ripples, photorealistic")
    if not tiny:
        model = wf.node("ADE_AnimateDiffLoaderGen1", 1, model=model, model_name="mm_sd_v15_v2.ckpt")[0]
    recipe = wf.node("LongAnimRepeatMaskNoiseV2", 1, seed=7, ratio=0.5, context_length=16)
    model = wf.node("LongAnimApplyNoiseToModel", 2, model=model, recipe=recipe[1])[0]
    model = wf.node("LongAnimZoLAWindowsV2", 2, model=model, context_length=8 if tiny else 16,
                    stride=8 if tiny else 12, max_skip=2, seed=0)[0]
    model = wf.node("LongAnimNoiseTravelModelV2", 2, model=model, jump=0, start_percent=0.0, end_percent=0.3,
                    repeats=1, seed=0, recipe=recipe[1])[0]
    sample_and_save(wf, tiny, model, pos, neg, latent, vae, "animatediff_zola_256", 25, 7.5, 8)


def wan_t2v_long(wf: Workflow, tiny: bool) -> None:
    wf.note("Native Wan 2.1 text-to-video LONGER than the model's 81-frame window: 241 frames, sampled in "
            "81-frame ZoLA windows re-drawn every step. Lengths on the window node are VIDEO frames.\n" +
            MODELS_NOTE + "- diffusion_models/wan2.1_t2v_1.3B_fp16.safetensors\n"
            "- text_encoders/umt5_xxl_fp8_e4m3fn_scaled.safetensors\n- vae/wan_2.1_vae.safetensors")
    model, _, vae, pos, neg, latent = wan_base(wf, tiny, 241, "a paper boat drifting down a rainy street, "
                                               "cinematic, reflections")
    model = wf.node("LongAnimWanZoLAWindowsV2", 2, model=model, context_length=17 if tiny else 81,
                    stride=13 if tiny else 61, max_skip=1, seed=0)[0]
    sample_and_save(wf, tiny, model, pos, neg, latent, vae, "wan_t2v_long", 30, 6.0, 16, sampler="uni_pc",
                    scheduler="simple")


def wan_t2v_multigpu(wf: Workflow, tiny: bool) -> None:
    wf.note("The Wan 2.1 text-to-video workflow (241 frames, ZoLA windows) on SEVERAL GPUs: core's MultiGPU CFG "
            "Split right after the model loader gives every GPU its own copy of the model, and LongAnim's window "
            "loop spreads each step's windows over them (docs/multigpu.md). Needs ComfyUI 0.28.0 or newer: older "
            "versions report MultiGPU_WorkUnits as a missing node (it is a core node, no pack installs it); update "
            "ComfyUI, or bypass that node (select it, Ctrl+B) to run on one GPU. Set max_gpus to your GPU count; "
            "each GPU needs the memory one GPU would. Keep the node right after the loader: changing a LongAnim "
            "setting then does not re-run it. " + "Lengths on the window node are VIDEO frames.\n" +
            MODELS_NOTE + "- diffusion_models/wan2.1_t2v_1.3B_fp16.safetensors\n"
            "- text_encoders/umt5_xxl_fp8_e4m3fn_scaled.safetensors\n- vae/wan_2.1_vae.safetensors")
    if tiny:  # the test server's device list names the CPU twice, so core's node makes a second CPU 'device'
        model = wf.node("UNETLoader", 0, unet_name="longanim_tiny_wan21.safetensors")[0]
        model = wf.node("TinyTestSecondCPUDevice", 0, model=model)[0]
        model = wf.node("MultiGPU_WorkUnits", 0, model=model, max_gpus=2)[0]
        vae = wf.node("VAELoader", 0, vae_name="longanim_tiny_taew21.safetensors")[0]
        pos, neg = tiny_text(wf, "a fox")
        latent = wf.node("EmptyHunyuanLatentVideo", 1, width=64, height=64, length=41)[0]
    else:
        model = wf.node("UNETLoader", 0, unet_name="wan2.1_t2v_1.3B_fp16.safetensors")[0]
        model = wf.node("MultiGPU_WorkUnits", 0, model=model, max_gpus=2)[0]
        model = wf.node("ModelSamplingSD3", 0, model=model, shift=8.0)[0]
        clip = wf.node("CLIPLoader", 0, clip_name="umt5_xxl_fp8_e4m3fn_scaled.safetensors", type="wan")[0]
        vae = wf.node("VAELoader", 0, vae_name="wan_2.1_vae.safetensors")[0]
        pos, neg = wan_text(wf, "a paper boat drifting down a rainy street, cinematic, reflections", clip)
        latent = wf.node("EmptyHunyuanLatentVideo", 1, width=832, height=480, length=241)[0]
    model = wf.node("LongAnimWanZoLAWindowsV2", 2, model=model, context_length=17 if tiny else 81,
                    stride=13 if tiny else 61, max_skip=1, seed=0)[0]
    sample_and_save(wf, tiny, model, pos, neg, latent, vae, "wan_t2v_multigpu", 30, 6.0, 16, sampler="uni_pc",
                    scheduler="simple")


def controlnet_long(wf: Workflow, tiny: bool) -> None:
    wf.note(third_party_note("ComfyUI-AnimateDiff-Evolved") +
            "ControlNet-guided long video: load a pose video (already rendered as OpenPose skeletons, one frame "
            "per latent frame; the latent batch must equal the number of hint frames). Core ControlNet objects get "
            "each window's hint frames from LongAnim's window loop.\n" + MODELS_NOTE +
            "- checkpoints/v1-5-pruned-emaonly.safetensors\n- animatediff_models/mm_sd_v15_v2.ckpt\n"
            "- controlnet/control_v11p_sd15_openpose.pth\n- input/pose_video.mp4 (your pose video, 96 frames)")
    model, _, vae, pos, neg, latent = sd_base(wf, tiny, 96, "an astronaut dancing on the moon, earth in the sky, "
                                              "cinematic lighting")
    if tiny:
        hint = wf.node("EmptyImage", 0, width=32, height=32, batch_size=16, color=0)[0]
        cn = wf.node("ControlNetLoader", 0, control_net_name="longanim_tiny_controlnet_sd15.safetensors")[0]
    else:
        video = wf.node("LoadVideo", 0, file="pose_video.mp4")[0]
        hint = wf.node("GetVideoComponents", 0, video=video)[0]
        hint = wf.node("ImageScale", 0, image=hint, upscale_method="bilinear", width=512, height=512,
                       crop="center")[0]
        cn = wf.node("ControlNetLoader", 0, control_net_name="control_v11p_sd15_openpose.pth")[0]
        model = wf.node("ADE_AnimateDiffLoaderGen1", 1, model=model, model_name="mm_sd_v15_v2.ckpt")[0]
    applied = wf.node("ControlNetApplyAdvanced", 2, positive=pos, negative=neg, control_net=cn, image=hint,
                      strength=0.9, start_percent=0.0, end_percent=1.0)
    model = wf.node("LongAnimZoLAWindowsV2", 2, model=model, context_length=8 if tiny else 16,
                    stride=8 if tiny else 12, max_skip=1, seed=0)[0]
    sample_and_save(wf, tiny, model, applied[0], applied[1], latent, vae, "controlnet_long", 25, 7.0, 12)


def multi_prompt_long(wf: Workflow, tiny: bool) -> None:
    wf.note("Multi-prompt long video: one prompt per frame range, in VIDEO frames like every length in this "
            "workflow (241 video frames = 61 latent frames; Prompt Schedule's frame_unit converts). Each window uses "
            "the prompt covering most of its frames (ZoLA rule) or blends them (genl rule, set on the window "
            "node).\n" + MODELS_NOTE +
            "- diffusion_models/wan2.1_t2v_1.3B_fp16.safetensors\n"
            "- text_encoders/umt5_xxl_fp8_e4m3fn_scaled.safetensors\n- vae/wan_2.1_vae.safetensors")
    model, clip, vae, pos, neg, latent = wan_base(wf, tiny, 241, None)
    if tiny:
        a = wf.node("LongAnimConditioningFramesV2", 2, conditioning=pos, start_frame=0, end_frame=5)[0]
        pos = wf.node("ConditioningCombine", 2, conditioning_1=a, conditioning_2=wf.node(
            "LongAnimConditioningFramesV2", 2, conditioning=pos, start_frame=6, end_frame=10)[0])[0]
    else:
        pos = wf.node("LongAnimPromptScheduleV2", 1, clip=clip, length=241, schedule=(
            "# video frames 0-240\n0-80: a hot air balloon rising over green hills at dawn\n"
            "81-160: a hot air balloon floating above the clouds, bright sun\n"
            "161-: a hot air balloon drifting over a city at sunset"),
            frame_unit="video frames (Wan, HunyuanVideo: 4n+1)")[0]
    model = wf.node("LongAnimWanZoLAWindowsV2", 2, model=model, context_length=17 if tiny else 81,
                    stride=13 if tiny else 61, max_skip=1, seed=0, prompt_rule="zola")[0]
    sample_and_save(wf, tiny, model, pos, neg, latent, vae, "multi_prompt_long", 30, 6.0, 16, sampler="uni_pc",
                    scheduler="simple")


def randomized_blend_refine(wf: Workflow, tiny: bool) -> None:
    wf.note("StreamingT2V-style refinement: a long low-resolution Wan video (ZoLA windows) is upscaled, VAE-encoded "
            "and refined in overlapping chunks of 21 video frames (6 latent frames; the paper's chunks are 24 "
            "frames), overlap 8 video frames, with randomized blending (Eq. 8) and shared noise on the overlaps "
            "(Eq. 7): sharper frames, no fixed seam. Every length here is in video frames.\n" + MODELS_NOTE +
            "- diffusion_models/wan2.1_t2v_1.3B_fp16.safetensors\n"
            "- text_encoders/umt5_xxl_fp8_e4m3fn_scaled.safetensors\n- vae/wan_2.1_vae.safetensors")
    model, _, vae, pos, neg, latent = wan_base(wf, tiny, 161, "a lighthouse on a cliff in a storm, waves crashing",
                                               size=(416, 240), latent_title="low-res latent")
    windowed = wf.node("LongAnimWanZoLAWindowsV2", 2, model=model, context_length=17 if tiny else 81,
                       stride=13 if tiny else 61, max_skip=1, seed=0)[0]
    low = wf.node("KSampler", 3, seed=42, steps=2 if tiny else 30, cfg=6.0, sampler_name="euler" if tiny else
                  "uni_pc", scheduler="simple", denoise=1.0, model=windowed, positive=pos, negative=neg,
                  latent_image=latent)[0]
    images = wf.node("VAEDecode", 4, samples=low, vae=vae)[0]
    up = wf.node("LongAnimUpscaleEncode", 4, images=images, vae=vae, scale=1.0 if tiny else 2.0)[0]
    refined = wf.node("LongAnimRandomizedBlendRefineV2", 5, model=model, positive=pos, negative=neg, latent=up,
                      denoise=0.5, steps=2 if tiny else 30, cfg=6.0, sampler_name="euler" if tiny else "uni_pc",
                      scheduler="simple", context_length=21, context_overlap=8, seed=7, frame_unit="video frames")[0]
    save_video(wf, refined, vae, "randomized_blend_refine", 16, 6)


def phased_image_animation(wf: Workflow, tiny: bool) -> None:
    wf.note("Phased image animation (Controllable Long Image Animation, Eqs. 9-12): clip 1 is sampled fully; later "
            "clips reuse its first gamma x steps and only re-sample the rest, so the look stays and ~1/(1-gamma) "
            "fewer model calls are spent.\n" + MODELS_NOTE +
            "- diffusion_models/wan2.1_i2v_480p_14B_fp8_e4m3fn.safetensors\n"
            "- text_encoders/umt5_xxl_fp8_e4m3fn_scaled.safetensors\n- vae/wan_2.1_vae.safetensors\n"
            "- clip_vision/clip_vision_h.safetensors\n- input/example.png (your image)")
    if tiny:
        model, _, vae, pos, neg, latent = wan_base(wf, tiny, 17, "a fox")
    else:
        model = wf.node("UNETLoader", 0, unet_name="wan2.1_i2v_480p_14B_fp8_e4m3fn.safetensors")[0]
        model = wf.node("ModelSamplingSD3", 0, model=model, shift=8.0)[0]
        clip = wf.node("CLIPLoader", 0, clip_name="umt5_xxl_fp8_e4m3fn_scaled.safetensors", type="wan")[0]
        vae = wf.node("VAELoader", 0, vae_name="wan_2.1_vae.safetensors")[0]
        image = wf.node("LoadImage", 0, image="example.png")[0]
        vision = wf.node("CLIPVisionLoader", 1, clip_name="clip_vision_h.safetensors")[0]
        vision_out = wf.node("CLIPVisionEncode", 1, clip_vision=vision, image=image, crop="none")[0]
        pos = wf.node("CLIPTextEncode", 1, title="positive prompt", clip=clip,
                      text="the girl turns her head and smiles, hair moving in the wind")[0]
        neg = wf.node("CLIPTextEncode", 1, title="negative prompt", text=NEG, clip=clip)[0]
        i2v = wf.node("WanImageToVideo", 2, positive=pos, negative=neg, vae=vae, width=832, height=480,
                      length=81, clip_vision_output=vision_out, start_image=image)
        pos, neg, latent = i2v[0], i2v[1], i2v[2]
    phased = wf.node("LongAnimPhasedAnimation", 3, model=model, positive=pos, negative=neg, latent=latent,
                     num_clips=2 if tiny else 4, steps=2 if tiny else 25, cfg=5.0, scheduler="simple",
                     gamma=0.5 if tiny else 0.8, omega=0.2, seed=7)
    save_video(wf, phased[0], vae, "phased_image_animation", 16, 4)


# ------------------------------------------------------------------------------------------------ model families
# Tiny variants run on the test host's random-weight family models (tests/tools/tiny_families.py) with test
# conditioning; where the host has no tiny VAE of the family (Wan 2.2 5B: 48 channels, LTX-Video: 128) the tiny
# variant samples from an empty latent and saves the LATENT instead of decoding it.
WAN_UNITS = ("Frame counts: the length of the latent node and context_length / stride of the window node are VIDEO "
             "frames (4n+1); the latent holds (n - 1) / 4 + 1 latent frames, latent frame 0 = video frame 0.")
WAN_TEXT = "- text_encoders/umt5_xxl_fp8_e4m3fn_scaled.safetensors\n"


def tiny_text(wf: Workflow, prompt: str, family: str = "wan21", col: float = 1):
    """Positive and negative test conditionings of the tiny models ([1, 16, 4096]: the width of umT5, T5 and Llama
    embeddings alike; families ``ltxv`` / ``hunyuan`` add T5's attention mask / CLIP-L's pooled output)."""
    pos = wf.node("TinyTestConditioning", col, title="positive prompt", text=prompt, family=family)[0]
    neg = wf.node("TinyTestConditioning", col, title="negative prompt", text="", family=family)[0]
    return pos, neg


def wan_text(wf: Workflow, prompt: str, clip, col: float = 1):
    pos = wf.node("CLIPTextEncode", col, title="positive prompt", text=prompt, clip=clip)[0]
    neg = wf.node("CLIPTextEncode", col, title="negative prompt", text=NEG, clip=clip)[0]
    return pos, neg


def wan21_i2v_long(wf: Workflow, tiny: bool) -> None:
    wf.note("Wan 2.1 image-to-video LONGER than the model's 81-frame window: 161 video frames from one start image "
            "(core WanImageToVideo), sampled in 81-frame ZoLA windows re-drawn every step. retain_first_frame is on: "
            "every window also sees latent frame 0, which holds the start image, so the look and identity stay "
            "over the whole video.\n" + WAN_UNITS + "\n" + MODELS_NOTE +
            "- diffusion_models/wan2.1_i2v_480p_14B_fp8_e4m3fn.safetensors\n" + WAN_TEXT +
            "- vae/wan_2.1_vae.safetensors\n- clip_vision/clip_vision_h.safetensors\n- input/example.png (your "
            "start image)")
    prompt = "the girl turns her head and smiles, hair moving in the wind, cinematic"
    if tiny:  # no CLIP vision: the tiny host has no CLIP-ViT-H; WanImageToVideo takes it as optional
        model = wf.node("UNETLoader", 0, unet_name="longanim_tiny_wan21_i2v.safetensors")[0]
        vae = wf.node("VAELoader", 0, vae_name="longanim_tiny_taew21.safetensors")[0]
        image = wf.node("LoadImage", 1, image="example.png")[0]
        pos, neg = tiny_text(wf, prompt)
        vision = None
    else:
        model = wf.node("UNETLoader", 0, unet_name="wan2.1_i2v_480p_14B_fp8_e4m3fn.safetensors")[0]
        model = wf.node("ModelSamplingSD3", 0, model=model, shift=5.0)[0]
        clip = wf.node("CLIPLoader", 0, clip_name="umt5_xxl_fp8_e4m3fn_scaled.safetensors", type="wan")[0]
        vae = wf.node("VAELoader", 0, vae_name="wan_2.1_vae.safetensors")[0]
        image = wf.node("LoadImage", 1, image="example.png")[0]
        clip_vision = wf.node("CLIPVisionLoader", 1, clip_name="clip_vision_h.safetensors")[0]
        vision = wf.node("CLIPVisionEncode", 1, clip_vision=clip_vision, image=image, crop="none")[0]
        pos, neg = wan_text(wf, prompt, clip)
    i2v = wf.node("WanImageToVideo", 2, positive=pos, negative=neg, vae=vae, width=32 if tiny else 832,
                  height=32 if tiny else 480, length=41 if tiny else 161, clip_vision_output=vision,
                  start_image=image)
    model = wf.node("LongAnimWanZoLAWindowsV2", 2, model=model, context_length=17 if tiny else 81,
                    stride=13 if tiny else 61, max_skip=1, seed=0, retain_first_frame=True)[0]
    sample_and_save(wf, tiny, model, i2v[0], i2v[1], i2v[2], vae, "wan21_i2v_long", 30, 5.0, 16, sampler="uni_pc",
                    scheduler="simple", save_col=3)


def wan22_i2v_two_experts(wf: Workflow, tiny: bool) -> None:
    wf.note("Wan 2.2 A14B image-to-video, 161 video frames, with its two experts: the high-noise model runs steps "
            "0-9, the low-noise model continues at step 10 of the same 20-step run (two KSamplerAdvanced, the "
            "second continues the first's leftover noise). Both models go through LongAnim windows with the SAME "
            "lengths and seed: the windows are a function of the global step, so the second sampler continues the "
            "first one's window schedule. retain_first_frame keeps the start image (latent frame 0) in every "
            "window.\n" + WAN_UNITS + " Steps (start/end_at_step) count sampling steps.\n" + MODELS_NOTE +
            "- diffusion_models/wan2.2_i2v_high_noise_14B_fp8_scaled.safetensors\n"
            "- diffusion_models/wan2.2_i2v_low_noise_14B_fp8_scaled.safetensors\n" + WAN_TEXT +
            "- vae/wan_2.1_vae.safetensors (Wan 2.2 A14B uses the Wan 2.1 VAE)\n- input/example.png (your start "
            "image)")
    prompt = "a sailing boat on a stormy sea, waves splashing over the deck, cinematic"
    if tiny:
        high = wf.node("UNETLoader", 0, title="high-noise expert",
                       unet_name="longanim_tiny_wan22_i2v_high.safetensors")[0]
        low = wf.node("UNETLoader", 0, title="low-noise expert",
                      unet_name="longanim_tiny_wan22_i2v_low.safetensors")[0]
        vae = wf.node("VAELoader", 1, vae_name="longanim_tiny_taew21.safetensors")[0]
        image = wf.node("LoadImage", 1, image="example.png")[0]
        pos, neg = tiny_text(wf, prompt)
    else:
        high = wf.node("UNETLoader", 0, title="high-noise expert",
                       unet_name="wan2.2_i2v_high_noise_14B_fp8_scaled.safetensors")[0]
        high = wf.node("ModelSamplingSD3", 0, title="high-noise shift", model=high, shift=8.0)[0]
        low = wf.node("UNETLoader", 0, title="low-noise expert",
                      unet_name="wan2.2_i2v_low_noise_14B_fp8_scaled.safetensors")[0]
        low = wf.node("ModelSamplingSD3", 0, title="low-noise shift", model=low, shift=8.0)[0]
        clip = wf.node("CLIPLoader", 1, clip_name="umt5_xxl_fp8_e4m3fn_scaled.safetensors", type="wan")[0]
        vae = wf.node("VAELoader", 1, vae_name="wan_2.1_vae.safetensors")[0]
        image = wf.node("LoadImage", 1, image="example.png")[0]
        pos, neg = wan_text(wf, prompt, clip, col=2)
    i2v = wf.node("WanImageToVideo", 2, positive=pos, negative=neg, vae=vae, width=32 if tiny else 832,
                  height=32 if tiny else 480, length=41 if tiny else 161, start_image=image)
    windows = dict(context_length=17 if tiny else 81, stride=13 if tiny else 61, max_skip=1, seed=0,
                   retain_first_frame=True)
    high = wf.node("LongAnimWanZoLAWindowsV2", 3, title="windows: high-noise expert", model=high, **windows)[0]
    low = wf.node("LongAnimWanZoLAWindowsV2", 3, title="windows: low-noise expert", model=low, **windows)[0]
    steps, switch = (4, 2) if tiny else (20, 10)
    sampler = dict(noise_seed=42, steps=steps, cfg=3.5, sampler_name="euler", scheduler="simple", positive=i2v[0],
                   negative=i2v[1])
    first = wf.node("KSamplerAdvanced", 4, title=f"high-noise expert: steps 0-{switch - 1}", model=high,
                    add_noise="enable", latent_image=i2v[2], start_at_step=0, end_at_step=switch,
                    return_with_leftover_noise="enable", **sampler)[0]
    second = wf.node("KSamplerAdvanced", 4, title=f"low-noise expert: steps {switch}-{steps - 1}", model=low,
                     add_noise="disable", latent_image=first, start_at_step=switch, end_at_step=10000,
                     return_with_leftover_noise="disable", **sampler)[0]
    save_video(wf, second, vae, "wan22_i2v_two_experts", 16, 4)


def wan22_ti2v_5b(wf: Workflow, tiny: bool) -> None:
    wf.note("Wan 2.2 5B text+image-to-video LONGER than its 121-frame window: 241 video frames at 24 fps. Core "
            "Wan22ImageToVideoLatent writes the start image INTO latent frame 0 and masks it from denoising; the "
            "ZoLA windows keep that frame in every window (retain_first_frame). Remove the Load Image link for "
            "text-to-video.\n" + WAN_UNITS + " (This model's VAE compresses 16x in space.)\n" + MODELS_NOTE +
            "- diffusion_models/wan2.2_ti2v_5B_fp16.safetensors\n" + WAN_TEXT + "- vae/wan2.2_vae.safetensors\n"
            "- input/example.png (your start image)")
    prompt = "a hummingbird hovering at a red flower, slow motion, macro shot"
    if tiny:  # text-to-video: the host's tiny 48-channel decoder cannot encode a start image
        model = wf.node("UNETLoader", 0, unet_name="longanim_tiny_wan22_ti2v5b.safetensors")[0]
        vae = wf.node("VAELoader", 0, vae_name="longanim_tiny_taew21.safetensors")[0]
        image = None
        pos, neg = tiny_text(wf, prompt)
    else:
        model = wf.node("UNETLoader", 0, unet_name="wan2.2_ti2v_5B_fp16.safetensors")[0]
        model = wf.node("ModelSamplingSD3", 0, model=model, shift=8.0)[0]
        clip = wf.node("CLIPLoader", 0, clip_name="umt5_xxl_fp8_e4m3fn_scaled.safetensors", type="wan")[0]
        vae = wf.node("VAELoader", 0, vae_name="wan2.2_vae.safetensors")[0]
        image = wf.node("LoadImage", 1, image="example.png")[0]
        pos, neg = wan_text(wf, prompt, clip)
    latent = wf.node("Wan22ImageToVideoLatent", 2, vae=vae, width=64 if tiny else 1280, height=64 if tiny else 704,
                     length=41 if tiny else 241, start_image=image)[0]
    model = wf.node("LongAnimWanZoLAWindowsV2", 2, model=model, context_length=17 if tiny else 121,
                    stride=13 if tiny else 89, max_skip=1, seed=0, retain_first_frame=True)[0]
    if tiny:
        s = wf.node("KSampler", 3, seed=42, steps=2, cfg=5.0, sampler_name="euler", scheduler="normal",
                    denoise=1.0, model=model, positive=pos, negative=neg, latent_image=latent)[0]
        wf.node("SaveLatent", 3, samples=s, filename_prefix="LongAnim/wan22_ti2v_5b")
        return
    sample_and_save(wf, tiny, model, pos, neg, latent, vae, "wan22_ti2v_5b", 30, 5.0, 24, sampler="uni_pc",
                    scheduler="simple", save_col=3)


def ltxv_long(wf: Workflow, tiny: bool) -> None:
    wf.note("LTX-Video image-to-video LONGER than its window: 257 video frames at 25 fps from a start image (core "
            "LTXVImgToVideo: the image goes INTO latent frame 0) and a keyframe guide at video frame 160 (core "
            "LTXVAddGuide: the guide's latent is APPENDED after the video's latent frames; LongAnim adds it only to "
            "the windows holding its target frame). LTXVCropGuides removes the guide frames before decoding. "
            "The window node's frame_unit is 'video frames': context_length 97 and stride 73 are VIDEO frames "
            "(8n+1; the latent holds (n - 1) / 8 + 1 frames, 257 -> 33); LTXVAddGuide's frame_idx is a VIDEO "
            "frame.\n" + MODELS_NOTE + "- checkpoints/ltx-video-2b-v0.9.5.safetensors\n"
            "- text_encoders/t5xxl_fp16.safetensors\n- input/example.png (start image), input/keyframe.png "
            "(the keyframe)")
    prompt = "a red kite flying over green hills on a windy day, clouds moving, wide shot"
    if tiny:  # text-to-video from an empty latent: the host has no tiny LTX-Video VAE to encode images with
        model = wf.node("UNETLoader", 0, unet_name="longanim_tiny_ltxv.safetensors")[0]
        pos, neg = tiny_text(wf, prompt, family="ltxv")
        pos, neg = _pair(wf.node("LTXVConditioning", 1, positive=pos, negative=neg, frame_rate=25.0))
        latent = wf.node("EmptyLTXVLatentVideo", 1, width=64, height=64, length=97)[0]
    else:
        ckpt = wf.node("CheckpointLoaderSimple", 0, ckpt_name="ltx-video-2b-v0.9.5.safetensors")
        model, vae = ckpt[0], ckpt[2]
        clip = wf.node("CLIPLoader", 0, clip_name="t5xxl_fp16.safetensors", type="ltxv")[0]
        image = wf.node("LoadImage", 1, title="start image", image="example.png")[0]
        keyframe = wf.node("LoadImage", 1, title="keyframe", image="keyframe.png")[0]
        pos = wf.node("CLIPTextEncode", 0, title="positive prompt", text=prompt, clip=clip)[0]
        neg = wf.node("CLIPTextEncode", 0, title="negative prompt", text=NEG, clip=clip)[0]
        pos, neg = _pair(wf.node("LTXVConditioning", 2, positive=pos, negative=neg, frame_rate=25.0))
        i2v = wf.node("LTXVImgToVideo", 3, positive=pos, negative=neg, vae=vae, image=image, width=768, height=512,
                      length=257, strength=1.0)
        guide = wf.node("LTXVAddGuide", 3, positive=i2v[0], negative=i2v[1], vae=vae, latent=i2v[2],
                        image=keyframe, frame_idx=160, strength=1.0)
        pos, neg, latent = guide[0], guide[1], guide[2]
    model = wf.node("LongAnimZoLAWindowsV2", 3, model=model, context_length=41 if tiny else 97,
                    stride=33 if tiny else 73, max_skip=1, seed=0, retain_first_frame=True,
                    frame_unit="video frames")[0]
    s = wf.node("KSampler", 4, seed=42, steps=2 if tiny else 30, cfg=3.0, sampler_name="euler",
                scheduler="normal" if tiny else "simple", denoise=1.0, model=model, positive=pos, negative=neg,
                latent_image=latent)[0]
    if tiny:
        wf.node("SaveLatent", 4, samples=s, filename_prefix="LongAnim/ltxv_long")
        return
    cropped = wf.node("LTXVCropGuides", 4, positive=pos, negative=neg, latent=s)[2]
    save_video(wf, cropped, vae, "ltxv_long", 25, 4)


def _pair(node: Node) -> tuple[Out, Out]:
    return node[0], node[1]


def hunyuan_t2v_long(wf: Workflow, tiny: bool) -> None:
    wf.note("HunyuanVideo text-to-video LONGER than its 129-frame window: 257 video frames at 24 fps in ZoLA "
            "windows. HunyuanVideo is guidance-distilled: FluxGuidance sets the guidance the model is conditioned "
            "on and the sampler runs at cfg 1 (the zeroed negative is never evaluated). The window node's "
            "frame_unit is 'video frames': context_length 129 and stride 97 are VIDEO frames (4n+1); "
            "EmptyHunyuanLatentVideo's length is VIDEO frames too (257 -> 65 latent frames).\n" + MODELS_NOTE +
            "- diffusion_models/hunyuan_video_t2v_720p_bf16.safetensors\n- text_encoders/clip_l.safetensors\n"
            "- text_encoders/llava_llama3_fp8_scaled.safetensors\n- vae/hunyuan_video_vae_bf16.safetensors")
    prompt = "a steam train crossing a stone bridge in the mountains, autumn forest, drone shot"
    if tiny:
        model = wf.node("UNETLoader", 0, unet_name="longanim_tiny_hunyuan_t2v.safetensors")[0]
        vae = wf.node("VAELoader", 0, vae_name="longanim_tiny_taew21.safetensors")[0]
        pos = wf.node("TinyTestConditioning", 1, title="positive prompt", text=prompt, family="hunyuan")[0]
    else:
        model = wf.node("UNETLoader", 0, unet_name="hunyuan_video_t2v_720p_bf16.safetensors")[0]
        clip = wf.node("DualCLIPLoader", 0, clip_name1="clip_l.safetensors",
                       clip_name2="llava_llama3_fp8_scaled.safetensors", type="hunyuan_video")[0]
        vae = wf.node("VAELoader", 0, vae_name="hunyuan_video_vae_bf16.safetensors")[0]
        pos = wf.node("CLIPTextEncode", 1, title="positive prompt", text=prompt, clip=clip)[0]
    pos = wf.node("FluxGuidance", 1, conditioning=pos, guidance=6.0)[0]
    neg = wf.node("ConditioningZeroOut", 1, title="negative (unused at cfg 1)", conditioning=pos)[0]
    latent = wf.node("EmptyHunyuanLatentVideo", 1, width=32 if tiny else 848, height=32 if tiny else 480,
                     length=41 if tiny else 257)[0]
    model = wf.node("LongAnimZoLAWindowsV2", 2, model=model, context_length=17 if tiny else 129,
                    stride=13 if tiny else 97, max_skip=1, seed=0, frame_unit="video frames")[0]
    sample_and_save(wf, tiny, model, pos, neg, latent, vae, "hunyuan_t2v_long", 30, 1.0, 24, scheduler="simple",
                    save_col=3)


FAMILY_BUILDERS = {
    "longanim_wan21_i2v_long": wan21_i2v_long,
    "longanim_wan22_i2v_two_experts": wan22_i2v_two_experts,
    "longanim_wan22_ti2v_5b": wan22_ti2v_5b,
    "longanim_ltxv_long": ltxv_long,
    "longanim_hunyuan_t2v_long": hunyuan_t2v_long,
}

BUILDERS = {
    "longanim_zero_shot_sd15": zero_shot_sd15,
    "longanim_animatediff_zola_256": animatediff_zola_256,
    "longanim_wan_t2v_long": wan_t2v_long,
    "longanim_controlnet_long": controlnet_long,
    "longanim_multi_prompt_long": multi_prompt_long,
    "longanim_randomized_blend_refine": randomized_blend_refine,
    "longanim_phased_image_animation": phased_image_animation,
    "longanim_wan_t2v_multigpu": wan_t2v_multigpu,
    **FAMILY_BUILDERS,
}


# ------------------------------------------------------------------------------------------------ template browser
# ComfyUI lists a pack's example workflows by file name alone (server: GET /workflow_templates gives the *.json
# names of each custom_nodes folder's example_workflows/ or workflows/; frontend 1.32 and 1.45 make each a card
# whose title is the name, whose description is the name with "-" and "_" shown as spaces, and whose picture is
# /api/workflow_templates/<pack>/<name>.jpg, fitted into a square). So a workflow's file name is its title: plain
# words, no "_", no character a URL or Windows file name would mangle (# ? % : * " < > | / \), one prefix for all.
TEMPLATE_PREFIX = "LongAnim - "
TITLES = {
    "longanim_zero_shot_sd15": "SD1.5 zero-shot video, 16 frames",
    "longanim_animatediff_zola_256": "AnimateDiff 256 frames, ZoLA windows",
    "longanim_wan_t2v_long": "Wan 2.1 text to video, 241 frames",
    "longanim_controlnet_long": "AnimateDiff + ControlNet pose, 96 frames",
    "longanim_multi_prompt_long": "Wan 2.1 three prompts, 241 frames",
    "longanim_randomized_blend_refine": "Wan 2.1 low-res pass + refine, 161 frames",
    "longanim_phased_image_animation": "Wan 2.1 phased image animation, 4 clips",
    "longanim_wan_t2v_multigpu": "Wan 2.1 text to video on several GPUs, 241 frames",
    "longanim_wan21_i2v_long": "Wan 2.1 image to video, 161 frames",
    "longanim_wan22_i2v_two_experts": "Wan 2.2 A14B image to video, two experts",
    "longanim_wan22_ti2v_5b": "Wan 2.2 5B text+image to video, 241 frames",
    "longanim_ltxv_long": "LTX-Video image + keyframe, 257 frames",
    "longanim_hunyuan_t2v_long": "HunyuanVideo text to video, 257 frames",
}
UNSAFE_NAME_CHARS = set('_#?%:*"<>|/\\')


def template_name(key: str) -> str:
    """The file name (without ``.json`` / ``.jpg``) of a workflow: its title in the template browser."""
    return TEMPLATE_PREFIX + TITLES[key]


def workflow_path(key: str, folder: pathlib.Path = WORKFLOWS) -> pathlib.Path:
    return pathlib.Path(folder) / f"{template_name(key)}.json"


def build_workflows(object_info: dict, tiny: bool = False, names=None) -> dict[str, dict]:
    """``{name: UI-format workflow}`` for every builder (``tiny``: test-host models, 2 steps, few frames)."""
    out = {}
    for name, build in BUILDERS.items():
        if names and name not in names:
            continue
        wf = Workflow(object_info, name)
        build(wf, tiny)
        out[name] = wf.to_json()
    return out


def missing_core_nodes(workflow: dict, object_info: dict) -> dict[str, str]:
    """``{node type: ComfyUI version that brought it}`` of the core nodes (``NEWER_CORE``) the workflow uses and this
    server does not have (an older ComfyUI)."""
    used = {n["type"] for n in workflow["nodes"]}
    return {t: NEWER_CORE[t]["since"] for t in sorted(used) if t in NEWER_CORE and t not in object_info}


def bypassed(workflow: dict, types) -> dict:
    """A copy of the workflow with the nodes of these types bypassed (mode 4, the frontend's Ctrl+B): what a user
    of an older ComfyUI does with a core node it lacks (``to_api`` links around them, as the frontend does)."""
    out = json.loads(json.dumps(workflow))
    for node in out["nodes"]:
        if node["type"] in set(types):
            node["mode"] = 4
    return out


def to_api(workflow: dict, object_info: dict) -> dict:
    """The API-format prompt of a UI-format workflow written by ``Workflow.to_json``: what the frontend's
    ``graphToPrompt`` queues for it. Frontend-only nodes (``VIRTUAL``) are dropped, a link becomes
    ``[source node id, output slot]``, a widget its value by name; the control value after a seed and the image
    upload button's value are skipped, as the frontend does. A bypassed node (mode 4) is left out and a link from
    its output leads to what feeds its first input of the output's type, as the frontend does."""
    info_all = {**THIRD_PARTY, **NEWER_CORE, **object_info}
    links = {lk[0]: lk for lk in workflow["links"]}
    by_id = {n["id"]: n for n in workflow["nodes"]}

    def source(link_id: int) -> list:
        _, src, src_slot, *_ = links[link_id]
        node = by_id[src]
        while node.get("mode") == 4:
            kind = node["outputs"][src_slot]["type"]
            feed = next((i["link"] for i in node["inputs"] if i["type"] == kind and i.get("link") is not None), None)
            if feed is None:
                raise ValueError(f"bypassed {node['type']}#{node['id']} has no {kind} input to pass on")
            _, src, src_slot, *_ = links[feed]
            node = by_id[src]
        return [str(src), src_slot]

    prompt = {}
    for node in workflow["nodes"]:
        if node["type"] in VIRTUAL or node.get("mode") == 4:
            continue
        info = info_all[node["type"]]
        specs = {**info["input"].get("required", {}), **info["input"].get("optional", {})}
        values = iter(node.get("widgets_values") or [])
        inputs = {}
        for slot in node.get("inputs", []):
            name = slot["name"]
            if "widget" in slot:
                value = next(values)
                if slot["type"] == "IMAGEUPLOAD":
                    continue
                spec = specs[name]
                if has_control_value(name, spec[0], spec[1] if len(spec) > 1 else {}):
                    next(values)
                inputs[name] = value
            if slot.get("link") is not None:
                inputs[name] = source(slot["link"])
        prompt[str(node["id"])] = {"class_type": node["type"], "inputs": inputs}
    return prompt


def unconnected_nodes(workflow: dict, object_info: dict) -> list[str]:
    """Nodes of a UI-format workflow that do nothing: not an output node and no output linked, or a required
    link input left open (``"Type#id"`` with the reason)."""
    info_all = {**THIRD_PARTY, **NEWER_CORE, **object_info}
    used = {lk[1] for lk in workflow["links"]}
    bad = []
    for node in workflow["nodes"]:
        if node["type"] in VIRTUAL:
            continue
        info = info_all.get(node["type"], {})
        if not info.get("output_node") and node["id"] not in used:
            bad.append(f"{node['type']}#{node['id']}: no output is linked and it is not an output node")
        required = info.get("input", {}).get("required", {})
        for slot in node.get("inputs", []):
            if slot["name"] in required and "widget" not in slot and slot.get("link") is None:
                bad.append(f"{node['type']}#{node['id']}: required input {slot['name']} is not linked")
    return bad


# ------------------------------------------------------------------------------------------------ thumbnails
# The picture of each workflow's card: its title above the schedule preview of its own window node (the windows
# the canvas preview shows on that node for these widget values, latent length and steps), or for workflows
# without one what their LongAnim node does: the frame correlation of the dependency noise (zero-shot SD1.5), the
# refinement chunks after the windowed low-res pass (randomized-blend refine), the shared and own steps of each
# clip (phased animation). Drawn with the pack's pure code and its bitmap font, at card size (no resampling).
THUMBNAIL_SIZE = (512, 512)  # the card fits the picture into a square about 250 px wide (object-contain)
THUMBNAIL_QUALITY = 90
_BG, _INK, _ACCENT, _MUTED = (0.07, 0.07, 0.08), (0.93, 0.93, 0.93), (0.98, 0.72, 0.25), (0.62, 0.62, 0.66)
_MARGIN, _TITLE_SCALE, _CAPTION_SCALE = 16, 4, 3
# The title's two lines (x0, y0, x1, y1 in thumbnail pixels). Frontends 1.49 and later show no description under a
# card and cut its title to one line, so the picture is where the full title is read; they also lay a "Node graph"
# badge over the picture's top left (about 0-210 x 0-82 here, measured on 1.58.1 at 1600 px), so the title starts
# below it and the pack's name sits at the top right.
THUMBNAIL_TITLE_BOX = (_MARGIN, 100, THUMBNAIL_SIZE[0] - _MARGIN, 100 + 2 * 7 * _TITLE_SCALE)
# js/longanim.schedule_preview.js: the widgets the canvas sends to the preview route, and the nodes it previews
QUERY_WIDGETS = ("context_schedule", "context_length", "stride", "context_overlap", "max_skip", "closed_loop",
                 "fuse_method", "seed", "blend_variant", "ends", "skip_until", "frame_unit")
CANVAS_PREVIEWED = ("LongAnimZoLAWindowsV2", "LongAnimWanZoLAWindowsV2", "LongAnimGenLWindowsV2",
                    "LongAnimContextWindowsV2")


def _pack():
    """The pack's pure modules, imported under the alias ``longanim`` that ``tests/conftest.py`` registers (the
    repo root must not go on ``sys.path``: ``import nodes`` is ComfyUI's)."""
    import importlib.util
    import types

    if "longanim" not in sys.modules:
        spec = importlib.util.spec_from_file_location("longanim_tests_conftest", ROOT / "tests" / "conftest.py")
        spec.loader.exec_module(importlib.util.module_from_spec(spec))
    from longanim.nodes.algorithms import context_schedule, noise, phased, schedule_preview
    from longanim.nodes.comfy import routes, window_options

    return types.SimpleNamespace(cs=context_schedule, noise=noise, phased=phased, font=schedule_preview,
                                 routes=routes, wo=window_options)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _widgets(node: dict) -> dict:
    """The widget values of an API-format node (its inputs that are not links)."""
    return {k: v for k, v in node["inputs"].items()
            if not (isinstance(v, list) and len(v) == 2 and isinstance(v[1], int))}


def _first(prompt: dict, types_: tuple[str, ...]) -> dict | None:
    return next((n for n in prompt.values() if n["class_type"] in types_), None)


def graph_video(prompt: dict) -> tuple[int, bool, int] | None:
    """``(frames, video, temporal ratio)`` of the graph's latent node as the canvas preview reads it: a video
    latent node's ``length`` (video frames; ratio 8 for LTX-Video, else 4) or an image latent's ``batch_size``
    (latent frames), the video one and then the longest first; None when the graph has none."""
    best = None
    for node in prompt.values():
        if not re.search("latent|video", node["class_type"], re.I):
            continue
        w = _widgets(node)
        if _is_number(w.get("length")):
            found = (True, int(w["length"]), 8 if re.search("ltxv", node["class_type"], re.I) else 4)
        elif _is_number(w.get("batch_size")):
            found = (False, int(w["batch_size"]), 1)
        else:
            continue
        if best is None or found[0] > best[0] or (found[0] == best[0] and found[1] > best[1]):
            best = found
    return None if best is None else (best[1], best[0], best[2])


def graph_steps(prompt: dict) -> int:
    """The sampler steps the canvas preview assumes: the first node with a ``steps`` widget (KSampler's 20 if
    none)."""
    for node in prompt.values():
        steps = _widgets(node).get("steps")
        if _is_number(steps) and node["class_type"] != "LongAnimPreviewScheduleV2":
            return max(1, min(1000, int(steps)))
    return 20


def canvas_preview_params(prompt: dict, node: dict) -> dict[str, str]:
    """The query the canvas preview of window node ``node`` sends to ``/longanim/schedule_preview``
    (``previewQuery`` in js/longanim.schedule_preview.js)."""
    params = {"node": node["class_type"]}
    for name, value in _widgets(node).items():
        if name in QUERY_WIDGETS and value is not None:
            params[name] = str(value).lower() if isinstance(value, bool) else str(value)
    found = graph_video(prompt)
    if found is None:
        found = (241, True, 4) if node["class_type"] == "LongAnimWanZoLAWindowsV2" else (64, False, 1)
    frames, video, ratio = found
    params.update(frames=str(min(frames, 4093 if video else 1024)),
                  frames_unit="video frames" if video else "latent frames",
                  temporal_compression=str(ratio if video else 1), steps=str(graph_steps(prompt)))
    return params


def schedule_image(opts, frames: int, steps: int, sampler_seed: int, width: int, height: int, max_bands: int = 12):
    """The windows (and blend masks) of ``window_options.schedule_picture`` for the ``max_bands`` steps the canvas
    shows (``shown_steps``), drawn as large as fits ``width`` x ``height`` pixels; ``[1, H, W, 3]``."""
    pack = _pack()
    shown = pack.wo.shown_steps(steps, max_bands)
    seed = opts.step_seed(sampler_seed, 0)
    per_step, masks = [], []
    for step in shown:
        windows = opts.windows(frames, step, seed, num_steps=steps)
        per_step.append(windows)
        masks.append(opts.blend_masks(windows, frames, step, seed))
    return pack.cs.render_schedule_preview(per_step, frames, masks, cell=32, axes=True, lanes=True,
                                           max_width=width, max_height=height, step_labels=shown)


def _window_panel(prompt: dict, width: int, height: int):
    """``(picture, caption lines)`` of the graph's first previewed window node."""
    pack = _pack()
    node = _first(prompt, CANVAS_PREVIEWED)
    params = canvas_preview_params(prompt, node)
    opts, frames, steps, sampler_seed = pack.routes.preview_request(params)
    image = schedule_image(opts, frames, steps, sampler_seed, width, height, pack.routes.MAX_PREVIEW_BANDS)
    w = _widgets(node)
    video = params["frames_unit"] == "video frames"
    total = params["frames"] + (f" ({frames} latent)" if video else "")
    shown = len(pack.wo.shown_steps(steps, pack.routes.MAX_PREVIEW_BANDS))
    caption = [f"{total} frames, window {w.get('context_length')}",
               f"stride {w.get('stride')}, {'all' if shown == steps else shown} of {steps} steps"]
    schedule = _first(prompt, ("LongAnimPromptScheduleV2",))
    if schedule:  # which prompt covers which latent frames (lines "start-end: text", open end = last frame)
        spans = re.findall(r"^\s*(\d+)\s*-\s*(\d*)\s*:", _widgets(schedule)["schedule"], re.M)
        last = int(_widgets(schedule)["length"]) - 1  # in the schedule's own frame unit
        caption[1] = f"{len(spans)} prompts: " + ", ".join(f"{a}-{b or last}" for a, b in spans)
    experts = [_widgets(n) for n in prompt.values() if n["class_type"] == "KSamplerAdvanced"]
    if len(experts) == 2:  # two experts continuing one run: the first ends where the second starts
        switch = experts[0]["end_at_step"]
        caption[1] = f"expert steps 0-{switch - 1}, then {switch}-{steps - 1}"
    return image, caption


def _noise_panel(prompt: dict, width: int, height: int):
    """The frame correlation of plain i.i.d. noise next to that of the graph's dependency noise
    (``render_noise_preview``, as the Noise Preview node draws it; red = alike) for the latent's frames and the
    sampler's seed, which draws the recipe."""
    import torch

    pack = _pack()
    node = _first(prompt, ("LongAnimDependencyNoise",))
    params = {k: v for k, v in _widgets(node).items() if k in ("lam", "candidates", "iterations", "variant")}
    frames = (graph_video(prompt) or (16, False, 1))[0]
    seed = next(_widgets(n)["seed"] for n in prompt.values() if n["class_type"] == "KSampler")
    gap, label_h = 16, 20
    size = min((width - gap) // 2, int((height - label_h) / 1.25)) // frames * frames
    pictures = []
    for label, recipe in (("plain noise", pack.noise.NoiseRecipe.iid()),
                          ("dependency", pack.noise.NoiseRecipe("dependency", params))):
        picture = pack.noise.render_noise_preview(recipe.draw((frames, 4, 16, 16), 0, seed), 0, size=size)[0]
        block = torch.tensor(_BG).repeat(label_h + picture.shape[0], size, 1)
        pack.font.draw_text(block, 0, 0, label, _INK, 2)
        block[label_h:] = picture
        pictures.append(block)
    spacer = torch.tensor(_BG).repeat(pictures[0].shape[0], gap, 1)
    momentum = _widgets(_first(prompt, ("LongAnimTemporalMomentumAttention",)))["momentum"]
    return (torch.cat([pictures[0], spacer, pictures[1]], 1).unsqueeze(0),
            [f"{frames} x {frames} frame correlation, red = alike", f"lam {params['lam']}, momentum {momentum}"])


def _refine_panel(prompt: dict, width: int, height: int):
    """The refinement chunks of the graph's Randomized-Blend Refine node drawn as a schedule with its blend cuts:
    the window options ``refine.refine_window_options`` gives its windowed modes (uniform chunks of context_length at
    stride context_length - context_overlap, the last one shifted to the end) for the latent the windowed pass
    makes."""
    pack = _pack()
    w = _widgets(_first(prompt, ("LongAnimRandomizedBlendRefineV2",)))
    fusion = {"randomized_blend": "randomized_blend", "shared_noise_only": "flat"}.get(w["mode"])
    if fusion is None:
        raise ValueError(f"no schedule picture for refine mode {w['mode']!r}")
    frames, video, ratio = graph_video(prompt)
    latent = pack.wo.video_frames_to_latent(frames, ratio) if video else frames
    chunk, overlap = w["context_length"], w["context_overlap"]
    if w.get("frame_unit") == "video frames":  # as the node converts them
        chunk, _, overlap = pack.wo.video_lengths_to_latent(ratio, chunk, chunk, overlap)
    w = dict(w, context_length=chunk, context_overlap=overlap)
    opts = pack.wo.WindowOptions(schedule="uniform", length=chunk, stride=chunk - overlap, overlap=overlap,
                                 max_skip=1, fusion=fusion, seed=w["seed"])
    image = schedule_image(opts, latent, w["steps"], w["seed"], width, height)
    return image, [f"refine {latent} latent frames in chunks of {w['context_length']},",
                   f"overlap {w['context_overlap']}: a random cut per step"]


def _phased_panel(prompt: dict, width: int, height: int):
    """Phased animation (CLIA Eq. 9): one row per clip, one cell per sampling step; clip 1 samples every step,
    clips 2..K take the first M = ceil(gamma x steps) from clip 1 (grey) and sample the rest themselves."""
    import torch

    pack = _pack()
    w = _widgets(_first(prompt, ("LongAnimPhasedAnimation",)))
    clips, steps = int(w["num_clips"]), int(w["steps"])
    split = pack.phased.phased_split(steps, float(w["gamma"]))
    label_w = pack.font.text_width("CLIP 9", 2) + 8
    cell = max(3, (width - label_w) // steps)
    row = max(cell, min(3 * cell, (height - 40) // clips))
    rows = row * clips
    image = torch.tensor(_BG).repeat(rows + 40, label_w + cell * steps, 1)
    shared = torch.tensor((0.32, 0.32, 0.36))
    own = [(0.98, 0.72, 0.25), (0.35, 0.75, 0.95), (0.55, 0.85, 0.45), (0.95, 0.45, 0.55)]
    for k in range(clips):
        pack.font.draw_text(image, 0, k * row + (row - 10) // 2, f"clip {k + 1}", _INK, 2)
        for s in range(steps):
            colour = shared if k and s < split else torch.tensor(own[k % len(own)])
            y, x = k * row, label_w + s * cell
            image[y + 1:y + row - 1, x + 1:x + cell - 1] = colour
    pack.font.draw_text(image, label_w, rows + 8, f"step 0-{steps - 1}", _INK, 2)
    grey_x = label_w + pack.font.text_width(f"step 0-{steps - 1}", 2) + 24
    image[rows + 8:rows + 18, grey_x:grey_x + 10] = shared
    pack.font.draw_text(image, grey_x + 16, rows + 8, "shared with clip 1", _INK, 2)
    calls = steps + (clips - 1) * (steps - split)
    return image.unsqueeze(0), [f"gamma {w['gamma']}: {split} of {steps} steps shared,",
                                f"{calls} model calls instead of {clips * steps}"]


THUMBNAIL_PANELS = {"longanim_zero_shot_sd15": _noise_panel, "longanim_randomized_blend_refine": _refine_panel,
                    "longanim_phased_image_animation": _phased_panel}


def _wrap(text: str, scale: int, width: int) -> list[str]:
    font, lines = _pack().font, [""]
    for word in text.split():
        joined = f"{lines[-1]} {word}".strip()
        if not lines[-1] or font.text_width(joined, scale) <= width:
            lines[-1] = joined
        else:
            lines.append(word)
    return lines


def thumbnail(key: str, workflow: dict, object_info: dict):
    """The template-browser picture of workflow ``key`` (its UI-format ``workflow``): an RGB ``PIL.Image`` of
    ``THUMBNAIL_SIZE`` with the pack's name, the workflow's title, its panel and the panel's caption."""
    import numpy as np
    import torch
    from PIL import Image

    font = _pack().font
    width, height = THUMBNAIL_SIZE
    inner = width - 2 * _MARGIN
    canvas = torch.tensor(_BG).repeat(height, width, 1)
    font.draw_text(canvas, width - _MARGIN - font.text_width("LongAnim", 2), 14, "LongAnim", _ACCENT, 2)
    y = THUMBNAIL_TITLE_BOX[1]
    for line in _wrap(TITLES[key], _TITLE_SCALE, inner)[:2]:
        font.draw_text(canvas, _MARGIN, y, line, _INK, _TITLE_SCALE)
        y += 7 * _TITLE_SCALE
    top = y + 12
    line_h = 7 * _CAPTION_SCALE
    bottom = height - _MARGIN - 2 * line_h
    panel = THUMBNAIL_PANELS.get(key, _window_panel)
    image, caption = panel(to_api(workflow, object_info), inner, bottom - top - 8)
    image = image[0]
    ph, pw = image.shape[0], image.shape[1]
    y0, x0 = top + (bottom - top - ph) // 2, (width - pw) // 2
    canvas[y0:y0 + ph, x0:x0 + pw] = image
    for k, line in enumerate(caption[:2]):
        font.draw_text(canvas, _MARGIN, bottom + 4 + k * line_h, line, _MUTED, _CAPTION_SCALE)
    arr = (canvas.clamp(0, 1).numpy() * 255).round().astype(np.uint8)
    return Image.fromarray(arr, "RGB")


def save_thumbnail(image, path) -> None:
    """JPEG without chroma subsampling: the one-pixel coloured cells and the font stay sharp."""
    image.save(path, "JPEG", quality=THUMBNAIL_QUALITY, subsampling=0)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", help="a running ComfyUI with LongAnim (default: start the host in .host/ComfyUI)")
    ap.add_argument("--out", default=str(WORKFLOWS))
    ap.add_argument("--only", nargs="+", metavar="KEY", choices=list(BUILDERS),
                    help="write only these workflows, by builder key (default: all)")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT / "tests" / "tools"))
    from comfy_client import ComfyServer

    server = None
    if args.url:
        import urllib.request

        with urllib.request.urlopen(args.url.rstrip("/") + "/object_info", timeout=60) as r:
            object_info = json.loads(r.read())
    else:
        server = ComfyServer(ROOT / ".host" / "ComfyUI", ROOT / ".host" / "venv" / "bin" / "python").start()
        object_info = server.get("/object_info")
    try:
        out = pathlib.Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        workflows = build_workflows(object_info, names=set(args.only or BUILDERS))
        for key, data in workflows.items():
            path = workflow_path(key, out)
            path.write_text(json.dumps(data, indent=1) + "\n")
            save_thumbnail(thumbnail(key, data, object_info), path.with_suffix(".jpg"))
            print(f"wrote {path} ({len(data['nodes'])} nodes) and its .jpg")
    finally:
        if server:
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
