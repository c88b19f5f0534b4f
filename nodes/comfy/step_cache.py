"""Step caches and LongAnim's window loop: which caches compose with the windows, and the pack's window-aware cache.

A step cache reuses a model output from an earlier sampling step when the input has changed little since. Where it
attaches decides whether it can share a model with LongAnim's windows:

* Outside the window loop (``WrappersMP.PREDICT_NOISE`` and above: core's **LazyCache**): it sees the whole video
  and the fused output of all windows, so its cache holds one whole step. It composes; nothing to do.
* Inside the loop (``CALC_COND_BATCH``, ``APPLY_MODEL``, ``DIFFUSION_MODEL`` wrappers, or an object patch on
  ``diffusion_model``: core's **EasyCache**, TeaCache / MagCache style packs): it sees one batch of windows per
  call and keys its cache on the conditioning, so one window's cached residual is added to the next window's call
  (or the call fails when the lengths differ). :func:`foreign_step_cache` finds such a cache by how it registered
  and the window loop refuses it before sampling (:func:`check_no_foreign_cache`), pointing to LazyCache or to
  the pack's own cache.

The pack's cache (``LongAnim: Window Step Cache``) keeps the model output per frame and decides per window and
per cond whether to evaluate it (``nodes/algorithms/step_cache.py``); the window loop calls it through
:func:`run_cache`.

Core hooks used: ``comfy.patcher_extension.WrappersMP`` (wrapper types) and the ModelPatcher's ``wrappers`` /
``object_patches`` and ``model_options["transformer_options"]["wrappers"]`` (read); core's EasyCache / LazyCache
register under the wrapper keys ``"easycache"`` / ``"lazycache"`` and ``transformer_options["easycache"]``
(a holder with ``name``); an ``OUTER_SAMPLE`` wrapper that gives each run a fresh cache.
"""
from __future__ import annotations

import logging

import comfy.patcher_extension

from ..algorithms.step_cache import CacheSettings, WindowStepCache
from .basics import set_wrapper
from .run_record import RECORD_KEY

_INSIDE_WINDOWS = ("CALC_COND_BATCH", "APPLY_MODEL", "DIFFUSION_MODEL")  # WrappersMP members called per window


def _wrapper_dicts(model, model_options: dict | None) -> list[dict]:
    """The wrapper tables that reach a sampling run: the ModelPatcher's and the ones already in model_options."""
    tables = []
    if model is not None and isinstance(getattr(model, "wrappers", None), dict):
        tables.append(model.wrappers)
    opts = model_options if model_options is not None else getattr(model, "model_options", None)
    if isinstance(opts, dict):
        w = opts.get("transformer_options", {}).get("wrappers")
        if isinstance(w, dict):
            tables.append(w)
    return tables


def _mentions_cache(*names) -> bool:
    return any("cache" in str(n or "").lower() for n in names)


def _fn_name(obj) -> str:
    return getattr(obj, "__name__", None) or getattr(getattr(obj, "__func__", None), "__name__", "") or \
        type(obj).__name__


def foreign_step_cache(model, model_options: dict | None = None) -> str | None:
    """Name of a step cache on ``model`` that runs inside LongAnim's window loop, else None.

    Found by how it registered, not by what it claims: a wrapper of a per-call type (``CALC_COND_BATCH``,
    ``APPLY_MODEL``, ``DIFFUSION_MODEL``) whose key or function mentions a cache (core's EasyCache: key
    ``"easycache"``, its holder in ``transformer_options["easycache"]`` names it), or an object patch of the
    diffusion model by a function that mentions one (TeaCache / MagCache style forward replacements). Caches at
    ``PREDICT_NOISE`` or above (core's LazyCache) see the fused whole video and are not reported; neither are the
    pack's own ``LongAnim.*`` keys.
    """
    opts = model_options if model_options is not None else getattr(model, "model_options", {}) or {}
    holder = opts.get("transformer_options", {}).get("easycache")
    inside = {getattr(comfy.patcher_extension.WrappersMP, t) for t in _INSIDE_WINDOWS}
    for table in _wrapper_dicts(model, model_options):
        for wtype, by_key in table.items():
            if wtype not in inside or not isinstance(by_key, dict):
                continue
            for key, fns in by_key.items():
                if str(key).startswith("LongAnim."):
                    continue
                names = [key] + [_fn_name(f) for f in (fns or [])]
                if _mentions_cache(*names):
                    label = getattr(holder, "name", None) if key == "easycache" else None
                    return str(label or key)
    for name, obj in (getattr(model, "object_patches", None) or {}).items():
        if str(name).startswith("diffusion_model") and _mentions_cache(_fn_name(obj)):
            return f"{_fn_name(obj)} (a patch of the diffusion model)"
    return None


def check_no_foreign_cache(model, model_options: dict | None = None) -> None:
    """Refuse a per-call step cache on a model with LongAnim windows (before sampling), naming what to use."""
    other = foreign_step_cache(model, model_options)
    if other is None:
        return
    raise ValueError(
        f"model: {other} cannot run inside LongAnim context windows (the ZoLA / Gen-L / Context Windows nodes): it "
        f"keeps one cached model output per prompt and would add one window's output to another window (or fail "
        f"when windows differ in length). Remove the {other} node and put 'LongAnim: Window Step Cache' after "
        f"the LongAnim window node instead (it caches per frame and follows the windows), or use core's "
        f"LazyCache, which caches whole steps of the fused video and works with LongAnim windows.")


# ---------------------------------------------------------------------------------------------- Window Step Cache
STEP_CACHE_KEY = "LongAnim.step_cache"  # wrapper key and transformer_options key of the running cache
logger = logging.getLogger(__name__)


def run_cache(transformer_options: dict) -> WindowStepCache | None:
    """The Window Step Cache of the running sample, if the model carries one."""
    cache = transformer_options.get(STEP_CACHE_KEY)
    return cache if isinstance(cache, WindowStepCache) else None


class _StepCacheRun:
    """OUTER_SAMPLE wrapper: a fresh :class:`WindowStepCache` for each sampling run, gone after it."""

    def __init__(self, settings: CacheSettings):
        self.settings = settings

    def __call__(self, executor, *args, **kwargs):
        guider = executor.class_obj
        # the window loop's own OUTER_SAMPLE wrapper (always the outermost) has put its run record in place
        if RECORD_KEY not in guider.model_options.get("transformer_options", {}):
            raise ValueError("model: 'LongAnim: Window Step Cache' caches the windows of LongAnim's window loop, and "
                             "this model has none; put a LongAnim window node (ZoLA / Gen-L / Context Windows) "
                             "before it, or use core's EasyCache / LazyCache on a model without windows")
        cache = WindowStepCache(self.settings)
        orig = guider.model_options
        guider.model_options = dict(orig)
        guider.model_options["transformer_options"] = {**orig.get("transformer_options", {}), STEP_CACHE_KEY: cache}
        try:
            out = executor(*args, **kwargs)
        finally:
            guider.model_options = orig
        logger.info("LongAnim Window Step Cache: %.0f %% of the window evaluations reused from the cache "
                    "(threshold %g)", 100 * cache.reuse_share, self.settings.threshold)
        return out


def patch_model_step_cache(model, settings: CacheSettings):
    """Clone ``model`` with the Window Step Cache (read by the window loop of a LongAnim window node)."""
    settings.validate()
    m = model.clone()
    set_wrapper(m, comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, STEP_CACHE_KEY, _StepCacheRun(settings))
    return m
