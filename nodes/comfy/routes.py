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

import numpy as np

from ..algorithms import context_schedule as cs
from .window_options import (
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
PREVIEW_NODES = ("LongAnimZoLAWindows", "LongAnimWanZoLAWindows", "LongAnimGenLWindows", "LongAnimContextWindows",
                 "LongAnimPreviewSchedule")


def _int(params, name: str, default: int) -> int:
    raw = params.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(float(raw))
    except ValueError as e:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from e


def _float(params, name: str, default: float) -> float:
    raw = params.get(name)
    if raw in (None, ""):
        return default
    try:
        return float(raw)
    except ValueError as e:
        raise ValueError(f"{name} must be a number, got {raw!r}") from e


def _bool(params, name: str, default: bool = False) -> bool:
    raw = params.get(name)
    if raw in (None, ""):
        return default
    return str(raw).lower() in ("1", "true", "yes", "on")


def preview_request(params) -> tuple[WindowOptions, int, int, int]:
    """Query parameters (the node's widget values) -> ``(WindowOptions, latent frames, steps, sampler_seed)``.

    Mirrors each node's ``run``: ZoLA nodes use schedule ``zola``, Gen-L ``uniform``, the all-schedules nodes
    their ``context_schedule`` widget; the Wan node's lengths (and ``frames``) are video frames (ratio 4), and so
    are those of a node with ``length_unit = video frames`` (ratio ``temporal_compression``, which the canvas reads
    off the graph's latent node: 8 for LTX-Video, else 4); ``frames_unit = video frames`` says ``frames`` is a video
    latent node's ``length`` (default for the Wan node), converted the same way. Raises
    ``ValueError`` naming the input for anything the node itself would refuse.
    """
    node = params.get("node", "LongAnimContextWindows")
    if node not in PREVIEW_NODES:
        raise ValueError(f"node must be one of {list(PREVIEW_NODES)}, got {node!r}")
    d = cs.GENL_DEFAULTS if node == "LongAnimGenLWindows" else cs.WINDOW_DEFAULTS  # the nodes' defaults
    wan = cs.WAN_VIDEO_DEFAULTS if node == "LongAnimWanZoLAWindows" else d
    length = _int(params, "context_length", wan["length"])
    stride = _int(params, "stride", wan["stride"])
    frames = _int(params, "frames", cs.PREVIEW_DEFAULTS["frames"])
    kw = dict(fusion=params.get("fusion") or d["fusion"], seed=_int(params, "seed", d["seed"]) & 0xFFFFFFFFFFFFFFFF,
              max_skip=_int(params, "max_skip", d["max_skip"]),
              blend_variant=params.get("blend_variant") or d["blend_variant"],
              skip_until=_float(params, "skip_until", d["skip_until"]))
    if node != "LongAnimGenLWindows":
        kw.update(ends=params.get("ends") or d["ends"])
    video_unit = node == "LongAnimWanZoLAWindows" or (node != "LongAnimPreviewSchedule"
                                                      and params.get("length_unit") == "video frames")
    ratio = 4 if node == "LongAnimWanZoLAWindows" else _int(params, "temporal_compression", 4)
    if not 1 <= ratio <= 64:
        raise ValueError(f"temporal_compression must be in [1, 64], got {ratio}")
    overlap = _int(params, "overlap", d["overlap"])
    if video_unit:  # what the node's run does with the model's temporal compression
        length, stride, overlap = video_lengths_to_latent(ratio, length, stride, overlap)
    if params.get("frames_unit", "video frames" if node == "LongAnimWanZoLAWindows" else "") == "video frames":
        frames = video_frames_to_latent(frames, ratio)  # the length widget of a video latent node
    if node in ("LongAnimZoLAWindows", "LongAnimWanZoLAWindows"):
        schedule = "zola"
    elif node == "LongAnimGenLWindows":
        schedule = "uniform"
    else:
        schedule = params.get("context_schedule") or d["schedule"]
        if schedule not in cs.SCHEDULES:
            raise ValueError(f"context_schedule must be one of {list(cs.SCHEDULES)}, got {schedule!r}")
        kw.update(overlap=overlap, closed_loop=_bool(params, "closed_loop", d["closed_loop"]))
    if not 1 <= frames <= MAX_PREVIEW_FRAMES:
        raise ValueError(f"frames must be in [1, {MAX_PREVIEW_FRAMES}] for the preview, got {frames}")
    steps = _int(params, "steps", cs.PREVIEW_DEFAULTS["steps"])
    if not 1 <= steps <= MAX_PREVIEW_STEPS:
        raise ValueError(f"steps must be in [1, {MAX_PREVIEW_STEPS}] for the preview, got {steps}")
    opts = WindowOptions(schedule=schedule, length=length, stride=stride, **kw)
    opts.validate()
    return opts, frames, steps, _int(params, "sampler_seed", 0) & 0xFFFFFFFFFFFFFFFF


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
    except ValueError as e:
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
