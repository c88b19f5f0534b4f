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
from .window_options import WindowOptions, schedule_picture, shown_steps

log = logging.getLogger("LongAnim")

ROUTE = "/longanim/schedule_preview"
MAX_PREVIEW_FRAMES = 1024  # keeps one request in the tens of milliseconds
MAX_PREVIEW_STEPS = 1000  # the sampler's step count the picture is computed for
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


def _wan_latent(n: int) -> int:
    """Video frames -> Wan latent frames, as ``LongAnimWanZoLAWindows.run`` converts them."""
    return max(1, (int(n) - 1) // 4 + 1)


def preview_request(params) -> tuple[WindowOptions, int, int, int]:
    """Query parameters (the node's widget values) -> ``(WindowOptions, latent frames, steps, sampler_seed)``.

    Mirrors each node's ``run``: ZoLA nodes use schedule ``zola``, Gen-L ``uniform``, the all-schedules nodes
    their ``context_schedule`` widget; the Wan node's lengths (and ``frames``) are video frames. Raises
    ``ValueError`` naming the input for anything the node itself would refuse.
    """
    node = params.get("node", "LongAnimContextWindows")
    if node not in PREVIEW_NODES:
        raise ValueError(f"node must be one of {list(PREVIEW_NODES)}, got {node!r}")
    length = _int(params, "context_length", 16)
    stride = _int(params, "stride", 8)
    frames = _int(params, "frames", 64)
    kw = dict(fusion=params.get("fusion") or "zola", seed=_int(params, "seed", 0) & 0xFFFFFFFFFFFFFFFF,
              max_skip=_int(params, "max_skip", 1), blend_variant=params.get("blend_variant") or "paper",
              skip_until=_float(params, "skip_until", 0.0))
    if node != "LongAnimGenLWindows":
        kw.update(ends=params.get("ends") or "truncate")
    if node in ("LongAnimZoLAWindows", "LongAnimWanZoLAWindows"):
        schedule = "zola"
        if node == "LongAnimWanZoLAWindows":
            length = _wan_latent(length)
            stride = max(1, min(length, _wan_latent(stride)))
            frames = _wan_latent(frames)
    elif node == "LongAnimGenLWindows":
        schedule = "uniform"
    else:
        schedule = params.get("context_schedule") or "zola"
        if schedule not in cs.SCHEDULES:
            raise ValueError(f"context_schedule must be one of {list(cs.SCHEDULES)}, got {schedule!r}")
        kw.update(overlap=_int(params, "overlap", 4), closed_loop=_bool(params, "closed_loop"))
    if not 1 <= frames <= MAX_PREVIEW_FRAMES:
        raise ValueError(f"frames must be in [1, {MAX_PREVIEW_FRAMES}] for the preview, got {frames}")
    steps = _int(params, "steps", 6)
    if not 1 <= steps <= MAX_PREVIEW_STEPS:
        raise ValueError(f"steps must be in [1, {MAX_PREVIEW_STEPS}] for the preview, got {steps}")
    opts = WindowOptions(schedule=schedule, length=length, stride=stride, **kw)
    opts.validate()
    return opts, frames, steps, _int(params, "sampler_seed", 0) & 0xFFFFFFFFFFFFFFFF


def preview_png(params) -> bytes:
    """The PNG bytes of the schedule picture for ``params`` (see :func:`preview_request`)."""
    from PIL import Image

    opts, frames, steps, sampler_seed = preview_request(params)
    image = schedule_picture(opts, frames, steps, sampler_seed, shown=shown_steps(steps, MAX_PREVIEW_BANDS))
    arr = (image[0].clamp(0, 1).numpy() * 255).round().astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


async def _handle_preview(request):
    import asyncio

    from aiohttp import web

    params = dict(request.rel_url.query)
    try:
        png = await asyncio.get_running_loop().run_in_executor(None, preview_png, params)
    except ValueError as e:
        return web.Response(status=400, text=str(e), headers={"Cache-Control": "no-store"})
    return web.Response(body=png, content_type="image/png", headers={"Cache-Control": "max-age=3600"})


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
