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
* Windows of one length share a model call when :func:`windows_share_call` finds nothing in ADE's state that reads
  ``sub_idxs``. ADE's temporal layers fold ``(b f)`` with one ``video_length`` per call. The positional encoding
  takes ``pe[:, :f]`` by length alone (ADE's ``PositionalEncoding.forward`` ignores ``sub_idxs``), and its
  group-norm hack normalises each ``context_length``-frame clip of the batch by itself. So a batch of equal-length
  windows gives each window what a call of its own gives. ``sub_idxs`` (one list per call) are read only by
  per-frame inputs: mask-valued (tensor) effect / scale / CameraCtrl effect, AnimateLCM-I2V image latents,
  CameraCtrl poses and MotionCtrl camera matrices. With any of those, windows run one per call.
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


def _ade_contexts(params) -> list:
    """The context options behind ``params.context_options.context_length`` (none without a context length)."""
    if _ade_context_length(params) is None:
        return []
    return list(getattr(params.context_options, "contexts", None) or [])


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


_MASK_FIELDS = ("scale_multival", "effect_multival", "cameractrl_multival", "current_scale", "current_effect",
                "current_cameractrl_effect", "combined_scale", "combined_effect", "combined_cameractrl_effect")
_PER_FRAME_INPUTS = ("orig_img_latents", "orig_camera_entries", "orig_RT")
_BLOCK_LISTS = ("per_block_list", "current_per_block_list", "combined_per_block_list")


def _motion_groups(state) -> list:
    return list((getattr(state, "motion_models_devices", None) or {}).values()) or [state.motion_models]


def _reads_sub_idxs(attachment) -> bool:
    """Whether an ADE motion-model attachment holds a per-frame input that ADE indexes by ``sub_idxs``."""
    if any(isinstance(getattr(attachment, name, None), torch.Tensor) for name in _MASK_FIELDS):
        return True
    if any(getattr(attachment, name, None) is not None for name in _PER_FRAME_INPUTS):
        return True
    for name in _BLOCK_LISTS:  # per-block effect / scale may be masks too
        for block in getattr(attachment, name, None) or ():
            if any(isinstance(v, torch.Tensor) for v in vars(block).values()):
                return True
    return False


def windows_share_call(state) -> bool:
    """Whether equal-length windows may share one model call with ADE's motion models in ``state`` (ADGS).

    True only when every motion model's attachment (``MotionModelPatcher.get_attachment("ADE")``) is found and none
    of it reads ``sub_idxs`` (see the module docstring); an unknown layout answers False (one window per call).
    """
    for group in _motion_groups(state):
        models = getattr(group, "models", None)
        if models is None:
            return False
        for mm in models:
            get = getattr(mm, "get_attachment", None)
            attachment = get(ADE_KEY) if get is not None else None
            if attachment is None or _reads_sub_idxs(attachment):
                return False
    return True


def set_window(state, windows: list[list[int]], num_frames: int) -> Callable[[], None]:
    """What ADE's own window loop does per window, for one model call over ``windows`` (all of one length).

    Motion models get the windows' length as ``video_length``; ``sub_idxs`` (one list per call in ADE) are the first
    window's, which is exact for one window and unread when several share a call (:func:`windows_share_call`).
    """
    groups = _motion_groups(state)
    idxs = list(windows[0])
    if any(len(w) != len(idxs) for w in windows):
        raise ValueError("windows that share an AnimateDiff-Evolved call must have one length")
    for g in groups:
        g.set_sub_idxs(idxs)
        g.set_video_length(len(idxs), num_frames)
    params = getattr(state, "params", None)
    if params is not None:
        params.sub_idxs = idxs
    # ADE's group-norm hack (AD v1, PIA) counts the clips of a call as batch // context_length: a window shorter
    # than LongAnim's window length (ends = "truncate") needs its own length there (ADE's own windows all have
    # context_length frames)
    contexts = _ade_contexts(params)
    saved = [c.context_length for c in contexts]
    for c in contexts:
        c.context_length = len(idxs)

    def undo() -> None:
        for c, n in zip(contexts, saved, strict=True):
            c.context_length = n
        length = _ade_context_length(params) or num_frames
        for g in groups:
            g.set_sub_idxs(None)
            g.set_video_length(length, num_frames)
        if params is not None:
            params.sub_idxs = None

    return undo
