"""Where the video tokens sit in the self-attention of each video DiT family: Wan, LTX-Video, HunyuanVideo.

Owns the token layout the attention expansion and its spectral blend (``wan_attention.ExpansionOverride``) read:
``transformer_options[GRID_KEY]`` = ``(T', H', W')`` when a self-attention call holds exactly the video's tokens
(frame-major: all tokens of frame 0, then frame 1, ...), or ``(T', H', W', side)`` when a joint attention holds
the video's tokens and other tokens (text) in one sequence, ``side`` = ``"after"`` (video first, then the others)
or ``"before"`` (the others first). :func:`grid_recorder` gives the ``DIFFUSION_MODEL`` wrapper that publishes
the layout of a family.

* Wan: ``x`` ``[B, C, T, H, W]``, patch ``patch_size`` (1, 2, 2); every self-attention is the video's tokens
  (reference-image tokens, when present, make the call longer and leave it to full attention).
* LTX-Video: the same layout with ``patchifier.patch_size`` (1, 1, 1); keyframe guides (``keyframe_idxs``) append
  frames at other time positions, so a call with guides publishes nothing and runs unchanged.
* HunyuanVideo: image and text tokens share every double- and single-stream attention (``block_type`` "double" /
  "single" in ``transformer_options``), ``q`` ``[B, heads, L, d]`` (``skip_reshape``), with an optional key
  mask over the text tokens. ComfyUI 0.3.75 puts the image tokens first (``flipped_img_txt`` on the double blocks),
  current ComfyUI the text tokens first (no such attribute). A reference latent prepended to the image tokens
  (``ref_latent``) publishes nothing.

Core hooks used: ``DIFFUSION_MODEL`` wrappers (``comfy.patcher_extension.WrappersMP``) around ``LTXVModel._forward``
``(x, timestep, context, attention_mask, frame_rate, transformer_options, keyframe_idxs)`` and
``HunyuanVideo._forward`` ``(x, timestep, context, y, txt_byt5, clip_fea, guidance, attention_mask,
guiding_frame_index, ref_latent, disable_time_r, control, transformer_options)``; attributes ``patch_size``,
``patchifier.patch_size``, ``double_blocks[0].flipped_img_txt``; ``transformer_options["block_type"]``.
"""
from __future__ import annotations

import torch

GRID_KEY = "LongAnim.attention_grid"
JOINT_BLOCKS = ("double", "single")  # HunyuanVideo's joint image+text blocks (transformer_options["block_type"])


def _grid(x: torch.Tensor, patch) -> tuple[int, int, int]:
    p = tuple(int(v) for v in patch)
    return -(-x.shape[2] // p[0]), -(-x.shape[3] // p[1]), -(-x.shape[4] // p[2])


def _arg(args: tuple, kwargs: dict, index: int, name: str):
    """Argument ``name`` of the wrapped forward, ``index`` = its position after ``x``."""
    if name in kwargs:
        return kwargs[name]
    return args[index] if len(args) > index else None


def _publish(args: tuple, kwargs: dict, index: int, layout: tuple) -> tuple[tuple, dict]:
    """A shallow copy of ``transformer_options`` (position ``index`` after ``x``) carrying ``layout``."""
    if "transformer_options" in kwargs:
        kwargs["transformer_options"] = {**(kwargs["transformer_options"] or {}), GRID_KEY: layout}
    elif len(args) > index:
        args = (*args[:index], {**(args[index] or {}), GRID_KEY: layout}, *args[index + 1:])
    return args, kwargs


class LTXVGridRecorder:
    """``DIFFUSION_MODEL`` wrapper (LTX-Video): publish ``(T', H', W')`` unless keyframe guides are appended."""

    def __call__(self, executor, x, *args, **kwargs):
        guides = _arg(args, kwargs, 5, "keyframe_idxs")
        if isinstance(x, torch.Tensor) and x.ndim == 5 and (guides is None or guides.numel() == 0):
            patch = getattr(getattr(executor.class_obj, "patchifier", None), "patch_size", (1, 1, 1))
            args, kwargs = _publish(args, kwargs, 4, _grid(x, patch))
        return executor(x, *args, **kwargs)


class HunyuanGridRecorder:
    """``DIFFUSION_MODEL`` wrapper (HunyuanVideo): publish ``(T', H', W', side)`` of the joint image+text attention
    unless a reference latent is prepended to the image tokens."""

    def __call__(self, executor, x, *args, **kwargs):
        dm = executor.class_obj
        patch = getattr(dm, "patch_size", ())
        if isinstance(x, torch.Tensor) and x.ndim == 5 and len(patch) == 3 and \
                _arg(args, kwargs, 8, "ref_latent") is None:
            blocks = getattr(dm, "double_blocks", None) or [None]
            side = "after" if getattr(blocks[0], "flipped_img_txt", False) else "before"
            args, kwargs = _publish(args, kwargs, 11, (*_grid(x, patch), side))
        return executor(x, *args, **kwargs)


def grid_recorder(family: str):
    """The ``DIFFUSION_MODEL`` wrapper publishing the token layout of ``family``'s attention (Wan: see
    ``wan_attention.GridRecorder``, which needs it only on hosts without ``grid_sizes``)."""
    if family == "ltxv":
        return LTXVGridRecorder()
    if family == "hunyuan":
        return HunyuanGridRecorder()
    raise ValueError(f"no token layout for family {family!r}")
