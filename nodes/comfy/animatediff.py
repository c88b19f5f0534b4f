"""The AnimateDiff-Evolved bridge: LongAnim's windows drive ADE's motion module.

ADE >= 1.5 (wrapper-based; checked by hand with ADE 1.5.7, ``tests/tools/ade_interop_notes.md``; contract mirrored by
``tests/comfy/ade_standin.py``). ADE is never imported: everything here is duck-typed on the objects ADE leaves on
the ModelPatcher, and every function is a no-op when ADE is absent.

* Outside sampling, ADE refuses more frames than the motion module's positional encoding (24/32) unless its own
  context options give a context length. :func:`bridge_window_length`, called by LongAnim's OUTER_SAMPLE wrapper
  (first in the chain, so it runs before ADE's), hands ADE, for this run only, a copy of its params whose context
  length is LongAnim's window length. ADE then sizes the motion module, its group-norm hack and its memory estimate
  for one window, as it does for its own windows.
* Inside sampling, LongAnim's window loop drops ADE's sliding-window CALC_COND_BATCH wrapper from its private copy
  of the options (:func:`drop_sliding_loop`: one window loop only) and, per window, does what ADE's own loop does
  (:func:`set_window`): motion models' ``set_sub_idxs`` / ``set_video_length`` and ``ADGS.params.sub_idxs``.
* ADE's own context options are a second window loop: :func:`has_context_options` lets the window loop refuse them.

Core hooks used: ``ModelPatcher.get_attachment`` / ``set_attachments`` / ``additional_models`` (where ADE keeps its
params and motion models) and ``comfy.patcher_extension.WrappersMP.CALC_COND_BATCH`` (ADE's sliding loop key).
"""
from __future__ import annotations

import copy
from collections.abc import Callable

import comfy.patcher_extension
import torch

ADE_KEY = "ADE"  # AnimateDiff-Evolved's wrapper / additional-models key
ADE_PARAMS = "ADE_params"  # AnimateDiff-Evolved's InjectionParams attachment on the ModelPatcher
ADE_STATE = "ADGS"  # AnimateDiff-Evolved's per-run global state in transformer_options


def _ade_params(model):
    get = getattr(model, "get_attachment", None)
    return get(key=ADE_PARAMS) if get is not None else None


def _ade_context_length(params) -> int | None:
    try:
        return params.context_options.context_length
    except AttributeError:
        return None


def _has_ade_motion(model) -> bool:
    return bool((getattr(model, "additional_models", {}) or {}).get(ADE_KEY))


_BRIDGED: set[int] = set()  # ids of ADE params copies LongAnim made for a running sample (not the user's options)


def _ade_params_for_windows(params, length: int):
    """A copy of ADE's InjectionParams whose (single, default) context has LongAnim's window length."""
    clone = params.clone()
    group = clone.context_options
    if len(group.contexts) != 1:
        return None
    first = group.contexts[0]
    ctx = first.clone() if hasattr(first, "clone") else copy.copy(first)
    ctx.context_length = length
    new_group = type(group)()
    new_group.extras = group.extras
    new_group.add(ctx)
    clone.set_context(new_group)
    return clone


# ---------------------------------------------------------------------------------------------- outside sampling
def bridge_window_length(patcher, latent_image, length: int) -> Callable[[], None] | None:
    """Give ADE LongAnim's window ``length`` as its context length for one run; returns ``undo()`` or None.

    Only when an ADE motion module without ADE context options sits on ``patcher`` and the latent is an SD-family
    latent (frames in the batch) longer than one window.
    """
    params = _ade_params(patcher) if patcher is not None else None
    bridged = None
    if params is not None and _has_ade_motion(patcher) and _ade_context_length(params) is None \
            and isinstance(latent_image, torch.Tensor) and latent_image.ndim == 4 \
            and latent_image.shape[0] > length:  # ADE: SD-family frames in the batch
        bridged = _ade_params_for_windows(params, length)
    if bridged is None:
        return None
    patcher.set_attachments(key=ADE_PARAMS, attachment=bridged)
    _BRIDGED.add(id(bridged))

    def undo() -> None:
        _BRIDGED.discard(id(bridged))
        patcher.set_attachments(key=ADE_PARAMS, attachment=params)

    return undo


def has_context_options(model) -> bool:
    """Whether the user gave ADE its own context options (ADE's window loop), not a bridged copy of LongAnim's."""
    params = _ade_params(model)
    return params is not None and id(params) not in _BRIDGED and _ade_context_length(params) is not None


# ---------------------------------------------------------------------------------------------- inside sampling
def ade_run_state(t_opts: dict):
    """ADE's per-run state when an ADE motion module takes part in this sampling run, else None."""
    state = t_opts.get(ADE_STATE)
    if state is None or getattr(state, "motion_models", None) is None:
        return None
    return state


def drop_sliding_loop(t_opts: dict) -> None:
    """Remove ADE's sliding-window CALC_COND_BATCH wrapper from ``t_opts`` (a private copy of the options)."""
    wrappers = t_opts.get("wrappers")
    ccb = comfy.patcher_extension.WrappersMP.CALC_COND_BATCH
    if wrappers and ADE_KEY in wrappers.get(ccb, {}):
        t_opts["wrappers"] = dict(wrappers)
        t_opts["wrappers"][ccb] = {k: v for k, v in wrappers[ccb].items() if k != ADE_KEY}


def set_window(state, window: list[int], num_frames: int) -> Callable[[], None]:
    """What ADE's own window loop does per window: motion modules see this window's frames and length."""
    groups = list((getattr(state, "motion_models_devices", None) or {}).values()) or [state.motion_models]
    idxs = list(window)
    for g in groups:
        g.set_sub_idxs(idxs)
        g.set_video_length(len(idxs), num_frames)
    params = getattr(state, "params", None)
    if params is not None:
        params.sub_idxs = idxs

    def undo() -> None:
        length = _ade_context_length(params) or num_frames
        for g in groups:
            g.set_sub_idxs(None)
            g.set_video_length(length, num_frames)
        if params is not None:
            params.sub_idxs = None

    return undo
