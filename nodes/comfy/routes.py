"""HTTP route for the canvas schedule preview.

``GET /longanim/schedule_preview?node=<NodeId>&<input>=<value>...&frames=N&steps=S`` returns a PNG of the windows
the sampling steps of an ``S``-step run use (all steps of a short run, else 12 evenly spread ones, each labelled
with its step number) for the widget values of a context-window node, drawn by
``window_options.schedule_picture`` (the code the sampler and the Preview Schedule node use: one source of truth,
no JavaScript port). Bad values answer ``400`` with the node's own ``ValueError`` text, which the canvas shows.
The frontend extension is ``js/longanim.schedule_preview.js``.

Core hooks used: ComfyUI's ``server.PromptServer.instance.routes`` (aiohttp route table), imported lazily so the
module imports outside a server (tests, tools).
"""
from __future__ import annotations

import io
import logging
import math
import re

import numpy as np

from ..algorithms import context_schedule as cs
from .window_options import (
    SCENE_NOISE_DEFAULT,
    WindowOptions,
    schedule_picture,
    shown_steps,
    video_frames_to_latent,
    video_lengths_to_latent,
)

log = logging.getLogger("LongAnim")

ROUTE = "/longanim/schedule_preview"
MAX_PREVIEW_FRAMES = 1024  # with MAX_PREVIEW_BANDS: one request stays under a second on 2 CPU cores (measured)
MAX_PREVIEW_STEPS = 1000  # the sampler's step count the picture is computed for
NOTE_HEADER = "X-LongAnim-Note"  # a line the canvas shows under the picture (see preview_note)
MAX_PREVIEW_BANDS = 12  # steps drawn: all of a short run, else evenly spread ones (window_options.shown_steps)
PREVIEW_NODES = ("LongAnimZoLAWindowsV2", "LongAnimWanZoLAWindowsV2", "LongAnimGenLWindowsV2",
                 "LongAnimContextWindowsV2", "LongAnimPreviewScheduleV2")
ZOLA_NODES = ("LongAnimZoLAWindowsV2", "LongAnimWanZoLAWindowsV2")
WAN_NODE, GENL_NODE, PREVIEW_NODE = "LongAnimWanZoLAWindowsV2", "LongAnimGenLWindowsV2", "LongAnimPreviewScheduleV2"


def _number(name: str, raw, integer: bool):
    """``raw`` (a query string) as a finite int / float; ``ValueError`` naming ``name`` otherwise (never an
    ``OverflowError`` from ``int(inf)``, which the server would answer with a 500)."""
    if integer:
        try:
            return int(str(raw).strip())  # exact for any integer, e.g. a 64-bit seed
        except ValueError:
            pass
    try:
        value = float(raw)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name} must be {'an integer' if integer else 'a number'}, got {raw!r}") from e
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {raw!r}")
    return int(value) if integer else value


def _int(params, name: str, default: int) -> int:
    raw = params.get(name)
    return default if raw in (None, "") else _number(name, raw, True)


def _float(params, name: str, default: float) -> float:
    raw = params.get(name)
    return default if raw in (None, "") else _number(name, raw, False)


def _bool(params, name: str, default: bool = False) -> bool:
    raw = params.get(name)
    if raw in (None, ""):
        return default
    return str(raw).lower() in ("1", "true", "yes", "on")


# widget types, for callers that run without the node classes (tools); the server uses the nodes' own specs
_TYPES = {**dict.fromkeys(("context_length", "stride", "context_overlap", "max_skip", "seed",
                           "max_windows_per_batch", "length", "steps", "sampler_seed"), "INT"),
          "skip_until": "FLOAT", "closed_loop": "BOOLEAN", "retain_first_frame": "BOOLEAN"}
# node id -> the node class's INPUT_TYPES, handed over by the node layer (ui_nodes.py) when the route is registered
_NODE_INPUTS: dict = {}
# retired node id (a deprecated alias of a preview node) -> (its replacement's id, {old input name: current name})
_RETIRED: dict = {}


def register_preview_nodes(classes) -> None:
    """Give the route the preview nodes' declared inputs (the node layer owns them; this package cannot import it),
    and the retired ids that stand for them (``base.deprecated_alias``: ``DEPRECATED_TARGET``, ``RENAMED_INPUTS``),
    so a workflow saved with an old id still gets its picture."""
    for cls in classes:
        if cls.NODE_ID in PREVIEW_NODES:
            _NODE_INPUTS[cls.NODE_ID] = cls.INPUT_TYPES
        elif getattr(cls, "DEPRECATED_TARGET", None) in PREVIEW_NODES:
            _RETIRED[cls.NODE_ID] = (cls.DEPRECATED_TARGET, dict(getattr(cls, "RENAMED_INPUTS", {})))


def current_params(params) -> dict:
    """``params`` of a retired node id as the parameters of the node that replaced it (its inputs renamed)."""
    params = dict(params)
    node = params.get("node")
    if node in _RETIRED:
        target, renamed = _RETIRED[node]
        params = {renamed.get(k, k): v for k, v in params.items()}
        params["node"] = target
    return params


def widget_values(node: str, params) -> dict:
    """The query parameters that are widgets of ``node``, checked as a queued prompt's values are: an INT or FLOAT
    within the node's declared ``min`` / ``max`` (and finite: ComfyUI refuses an infinite INT, and the node's own
    check a non-finite FLOAT), a combo among its options. ``ValueError`` naming the input, the node and the range."""
    if node in _NODE_INPUTS:
        spec = _NODE_INPUTS[node]()
        inputs = {**spec.get("required", {}), **spec.get("optional", {})}
    else:  # outside a server (tools drawing a workflow's picture): types only, the nodes are not imported
        inputs = {name: (kind, {}) for name, kind in _TYPES.items()}
    values = {}
    for name, raw in params.items():
        entry = inputs.get(name, None if node in _NODE_INPUTS else ("STRING", {}))
        if entry is None or raw in (None, ""):
            continue
        kind, opts = entry[0], (entry[1] if len(entry) > 1 else {})
        if isinstance(kind, list):
            if raw not in kind:
                raise ValueError(f"{name} must be one of {kind} ({node}), got {raw!r}")
            values[name] = raw
        elif kind in ("INT", "FLOAT"):
            value = _number(name, raw, kind == "INT")
            lo, hi = opts.get("min"), opts.get("max")
            if (lo is not None and value < lo) or (hi is not None and value > hi):
                raise ValueError(f"{name} must be in [{lo}, {hi}] ({node}'s bounds), got {raw}")
            values[name] = value
        elif kind == "BOOLEAN":
            values[name] = _bool(params, name)
        elif isinstance(raw, str):
            values[name] = raw
    return values


def preview_request(params) -> tuple[WindowOptions, int, int, int]:
    """:func:`current_request` for ``params``; a refusal for a retired node id names its inputs by the names that
    node shows (its old names)."""
    node = dict(params).get("node")
    try:
        return current_request(params)
    except ValueError as e:
        if node not in _RETIRED:
            raise
        text = str(e)
        for old, new in _RETIRED[node][1].items():
            text = re.sub(rf"\b{re.escape(new)}\b", old, text)
        raise ValueError(text) from None


def current_request(params) -> tuple[WindowOptions, int, int, int]:
    """Query parameters (the node's widget values) -> ``(WindowOptions, latent frames, steps, sampler_seed)``.

    One validation with the node: every widget value is checked against the node's declared bounds and options
    (:func:`widget_values`), then converted as the node's ``run`` converts it and checked by the same
    ``WindowOptions.validate``. ZoLA nodes use schedule ``zola``, Gen-L ``uniform``, the all-schedules nodes their
    ``context_schedule`` widget; the Wan node's lengths (and ``frames``) are video frames, and so are those of a
    node with ``frame_unit = video frames`` (ratio ``temporal_compression``, which the canvas reads off
    the graph's latent node: 8 for LTX-Video, else 4); ``frames_unit = video frames`` says ``frames`` is a video
    latent node's ``length`` (default for the Wan node), converted the same way. ``frames`` and ``steps`` of a
    window node come from the graph's latent node and sampler (capped for the preview); those of the Preview
    Schedule node are its own widgets. Raises ``ValueError`` naming the input for anything the node itself would
    refuse, and for non-numbers, infinities and NaN in any numeric parameter.
    """
    params = current_params(params)
    node = params.get("node", "LongAnimContextWindowsV2")
    if node not in PREVIEW_NODES:
        raise ValueError(f"node must be one of {list(PREVIEW_NODES)}, got {node!r}")
    d = cs.GENL_DEFAULTS if node == GENL_NODE else cs.WINDOW_DEFAULTS  # the nodes' defaults
    wan = cs.WAN_VIDEO_DEFAULTS if node == WAN_NODE else d
    w = widget_values(node, params)
    length = w.get("context_length", wan["length"])
    stride = w.get("stride", wan["stride"])
    frames = w["length"] if "length" in w else _int(params, "frames", cs.PREVIEW_DEFAULTS["frames"])
    kw = dict(fusion=w.get("fuse_method", d["fusion"]), seed=w.get("seed", d["seed"]) & 0xFFFFFFFFFFFFFFFF,
              max_skip=w.get("max_skip", d["max_skip"]), blend_variant=w.get("blend_variant", d["blend_variant"]),
              skip_until=w.get("skip_until", d["skip_until"]),
              keep_first_frame=w.get("retain_first_frame", d["keep_first_frame"]),
              max_batch=w.get("max_windows_per_batch", d["max_batch"]),
              prompt_rule=w.get("prompt_rule", d["prompt_rule"]))
    if node != GENL_NODE:
        kw.update(ends=w.get("ends", d["ends"]))
    video_unit = node == WAN_NODE or w.get("frame_unit") == "video frames"
    ratio = _int(params, "temporal_compression", 4)  # the model's, as the nodes read it (LTX-Video 8)
    if not 1 <= ratio <= 64:
        raise ValueError(f"temporal_compression must be in [1, 64], got {ratio}")
    overlap = w.get("context_overlap", d["overlap"])
    if video_unit:  # what the node's run does with the model's temporal compression
        length, stride, overlap = video_lengths_to_latent(ratio, length, stride, overlap)
    if params.get("frames_unit", "video frames" if node == WAN_NODE else "") == "video frames":
        frames = video_frames_to_latent(frames, ratio)  # the length widget of a video latent node
    if node in ZOLA_NODES:
        schedule = "zola"
        kw.update(scene_noise=params.get("noise") or SCENE_NOISE_DEFAULT)  # freenoise aligns the offsets
    elif node == GENL_NODE:
        schedule = "uniform"
    else:
        schedule = w.get("context_schedule", d["schedule"])
        if schedule not in cs.SCHEDULES:
            raise ValueError(f"context_schedule must be one of {list(cs.SCHEDULES)}, got {schedule!r}")
        kw.update(overlap=overlap, closed_loop=w.get("closed_loop", d["closed_loop"]))
    steps = w["steps"] if "steps" in w else _int(params, "steps", cs.PREVIEW_DEFAULTS["steps"])
    if node != PREVIEW_NODE:  # the graph's latent and sampler: caps of the preview itself
        if not 1 <= frames <= MAX_PREVIEW_FRAMES:
            raise ValueError(f"frames must be in [1, {MAX_PREVIEW_FRAMES}] for the preview, got {frames}")
        if not 1 <= steps <= MAX_PREVIEW_STEPS:
            raise ValueError(f"steps must be in [1, {MAX_PREVIEW_STEPS}] for the preview, got {steps}")
    opts = WindowOptions(schedule=schedule, length=length, stride=stride, **kw)
    opts.validate()
    sampler_seed = w["sampler_seed"] if "sampler_seed" in w else _int(params, "sampler_seed", 0)
    return opts, frames, steps, sampler_seed & 0xFFFFFFFFFFFFFFFF


def preview_note(opts: WindowOptions, frames: int) -> str:
    """A line for the canvas when the widget values make the windows do nothing ('' otherwise)."""
    if opts.length >= frames:
        return (f"context_length ({opts.length} latent frames) covers the whole video ({frames} latent frames): "
                f"one window, no windowing; lower it to the model's native length")
    return ""


def preview_png(params) -> bytes:
    """The PNG bytes of the schedule picture for ``params`` (see :func:`preview_request`)."""
    return preview(params)[0]


def preview(params) -> tuple[bytes, str]:
    """``(PNG bytes, note)`` for ``params``: the schedule picture and :func:`preview_note`."""
    from PIL import Image

    opts, frames, steps, sampler_seed = preview_request(params)
    image = schedule_picture(opts, frames, steps, sampler_seed, shown=shown_steps(steps, MAX_PREVIEW_BANDS))
    arr = (image[0].clamp(0, 1).numpy() * 255).round().astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue(), preview_note(opts, frames)


async def _handle_preview(request):
    import asyncio

    from aiohttp import web

    params = dict(request.rel_url.query)
    try:
        png, note = await asyncio.get_running_loop().run_in_executor(None, preview, params)
    except (ValueError, OverflowError) as e:
        return web.Response(status=400, text=str(e), headers={"Cache-Control": "no-store"})
    headers = {"Cache-Control": "max-age=3600", "Access-Control-Expose-Headers": NOTE_HEADER}
    if note:
        headers[NOTE_HEADER] = note
    return web.Response(body=png, content_type="image/png", headers=headers)


_registered = False


def register_routes() -> bool:
    """Add the preview route to ComfyUI's server, once; False where no server runs (tests, tools)."""
    global _registered
    if _registered:
        return True
    try:
        import server  # ComfyUI's module; absent outside ComfyUI
    except ImportError:
        return False
    instance = getattr(getattr(server, "PromptServer", None), "instance", None)
    routes = getattr(instance, "routes", None)
    if routes is None:
        return False
    routes.get(ROUTE)(_handle_preview)
    _registered = True
    log.debug("LongAnim: registered %s", ROUTE)
    return True
