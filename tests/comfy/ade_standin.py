"""A stand-in for AnimateDiff-Evolved's contract with other packs, for the tests (ADE itself cannot be installed in CI).

It reproduces, on a real ComfyUI ModelPatcher and a real tiny SD1.5 UNet, exactly the pieces of AnimateDiff-Evolved
1.5.7 (Kosinkadink/ComfyUI-AnimateDiff-Evolved d8d163c, read and hand-checked: tests/tools/ade_interop_notes.md)
that LongAnim's window loop meets:

* the ``ADE_params`` attachment (``InjectionParams``: ``context_options`` group with ``contexts``, ``add``, ``clone``,
  ``context_length``; ``clone``, ``set_context``, ``sub_idxs``, ``full_length``), motion models under the additional
  models key ``"ADE"``;
* ADE's OUTER_SAMPLE wrapper (key ``"ADE"``): clones the params, refuses more frames than the motion module's
  positional encoding (32) without a context length, sets the motion modules' video length, and publishes its
  per-run state as ``transformer_options["ADGS"]``;
* ADE's CALC_COND_BATCH wrapper (key ``"ADE"``): its own sliding-window loop over ``full_length`` when a context
  length is set (so it indexes past the end when it runs inside a shorter LongAnim window, as ADE does);
* the motion module: it reshapes ``(b f) c h w -> b f c h w`` with its *own* ``video_length`` (an einops error when the
  batch does not divide, as ADE's does), adds a positional encoding chosen by length alone (``pe[:f]``, as ADE's
  ``PositionalEncoding.forward``, which ignores ``sub_idxs``) and mixes the frames of each clip, so any window mix-up
  changes the output;
* the motion-model attachment (``get_attachment("ADE")`` on each of ``MotionModelGroup.models``, ADE's
  ``MotionModelAttachment`` field names): an ``effect_multival`` mask (a per-frame tensor over the full video) is
  indexed as ADE's ``get_effect_mask`` does, ``mask[sub_idxs * (batch // video_length)]``: one ``sub_idxs`` per call.

* with ``apply_ade(..., attention=True)``: a temporal *attention* layer instead of the frame mixing, with the
  calling convention of ADE's ``VersatileAttention`` (``animatediff/motion_module_ad.py``, ``utils_motion.py`` at
  d8d163c): ``"(b f) d c -> (b d) f c"`` with the group's ``video_length``, the positional encoding ``pe[:f]`` added,
  bias-free ``to_q/to_k/to_v``, then ``self.actual_attention(q, k, v, self.heads, mask)`` (core's
  ``attention_pytorch``, never given ``transformer_options``), ``to_out``; attributes ``attention_mode``
  ("Temporal"), ``is_cross_attention``, ``heads``. The module lives in the motion model's module tree, reached as
  ADE's are: ``transformer_options["ADGS"].motion_models.models[i].model``.

Nothing here is ADE's code; it is the behaviour, written from the notes.
"""
from __future__ import annotations

import comfy.model_management
import comfy.model_patcher
import comfy.patcher_extension
import torch
from comfy.ldm.modules.attention import attention_pytorch

ENCODING_MAX_LEN = 32  # AnimateDiff v2 / v3 positional encoding length


class Context:
    def __init__(self, context_length: int | None = None):
        self.context_length = context_length

    def clone(self) -> Context:
        return Context(self.context_length)


class ContextGroup:
    def __init__(self):
        self.contexts: list[Context] = []
        self.extras = None
        self._current: Context | None = None

    @classmethod
    def default(cls) -> ContextGroup:
        g = cls()
        g.add(Context())
        return g

    def add(self, context: Context) -> None:
        self.contexts.append(context)
        self._current = self.contexts[0]

    def clone(self) -> ContextGroup:  # shallow in the contexts, like ADE's
        g = ContextGroup()
        g.extras = self.extras
        g.contexts = list(self.contexts)
        g._current = g.contexts[0] if g.contexts else None
        return g

    @property
    def context_length(self) -> int | None:
        return self._current.context_length


class Params:
    def __init__(self, context_length: int | None = None):
        self.context_options = ContextGroup.default()
        if context_length is not None:
            g = ContextGroup()
            g.add(Context(context_length))
            self.context_options = g
        self.full_length: int | None = None
        self.sub_idxs: list[int] | None = None

    def clone(self) -> Params:
        p = Params()
        p.set_context(self.context_options)
        return p

    def set_context(self, group: ContextGroup | None) -> None:
        self.context_options = group.clone() if group else ContextGroup.default()

    def on_model_patcher_clone(self) -> Params:
        return self.clone()


class Attachment:
    """The fields of ADE's MotionModelAttachment that decide what reads ``sub_idxs`` (all unset: a plain module)."""

    def __init__(self):
        for name in ("scale_multival", "effect_multival", "cameractrl_multival", "current_scale", "current_effect",
                     "current_cameractrl_effect", "combined_scale", "combined_effect", "combined_cameractrl_effect",
                     "orig_img_latents", "orig_camera_entries", "orig_RT"):
            setattr(self, name, None)
        self.per_block_list = self.current_per_block_list = self.combined_per_block_list = None


class MotionGroup:
    """ADE's MotionModelGroup: what the window loop tells the motion modules."""

    def __init__(self):
        self.models: list = []  # the motion-model patchers, each with an "ADE" attachment
        self.video_length = 0
        self.full_length = 0
        self.sub_idxs: list[int] | None = None
        self.seen: list[tuple[int, int, list[int] | None]] = []  # (batch, video_length, sub_idxs) per motion call
        self.groupnorm_hack = False  # AnimateDiff v1 / PIA: group norm per clip, clips = batch // context_length
        self.clips: list[int] = []  # clips per call the group-norm hack counted
        self.attention = None  # the VersatileAttention stand-in when apply_ade(attention=True)

    def set_sub_idxs(self, sub_idxs):
        self.sub_idxs = None if sub_idxs is None else list(sub_idxs)

    def set_video_length(self, video_length: int, full_length: int):
        self.video_length, self.full_length = video_length, full_length


def mix_frames(h: torch.Tensor, f: int) -> torch.Tensor:
    """The stand-in temporal layer: pull every frame of a clip of ``f`` frames halfway to the clip's mean."""
    if h.shape[0] % f:
        raise RuntimeError(f"Shape mismatch, can't divide axis of length {h.shape[0]} in chunks of {f}")
    clips = h.reshape(h.shape[0] // f, f, *h.shape[1:])
    return (0.5 * clips + 0.5 * clips.mean(dim=1, keepdim=True)).reshape(h.shape)


def positional_encoding(length: int) -> torch.Tensor:
    """The stand-in's sinusoid, ``[ENCODING_MAX_LEN]`` per frame position; ADE adds ``pe[:, :f]`` (by length)."""
    return 0.1 * torch.sin(torch.arange(length, dtype=torch.float32) * 0.7)


def temporal_layer(h: torch.Tensor, f: int) -> torch.Tensor:
    """The stand-in motion module on ``(b f) ...``: positional encoding ``pe[:f]`` then frame mixing per clip."""
    if h.shape[0] % f:
        raise RuntimeError(f"Shape mismatch, can't divide axis of length {h.shape[0]} in chunks of {f}")
    pe = positional_encoding(ENCODING_MAX_LEN)[:f].to(h).view(1, f, *([1] * (h.ndim - 1)))
    clips = h.reshape(h.shape[0] // f, f, *h.shape[1:]) + pe
    return mix_frames(clips.reshape(h.shape), f)


def effect_mask(mask: torch.Tensor, batch: int, video_length: int, sub_idxs) -> torch.Tensor:
    """ADE's get_effect_mask: the full-length per-frame mask indexed by one ``sub_idxs`` repeated per clip."""
    batched_number = batch // video_length
    idx = list(sub_idxs) * batched_number if sub_idxs is not None else list(range(video_length)) * batched_number
    return mask[idx]


class VersatileAttention(torch.nn.Module):
    """ADE's temporal self-attention (``VersatileAttention`` over ``CrossAttentionMM``), random fixed weights."""

    def __init__(self, channels: int, heads: int = 2):
        super().__init__()
        self.attention_mode = "Temporal"
        self.is_cross_attention = False
        self.heads = heads
        self.actual_attention = attention_pytorch
        gen = torch.Generator().manual_seed(11)
        self.to_q, self.to_k, self.to_v = (torch.nn.Linear(channels, channels, bias=False) for _ in range(3))
        self.to_out = torch.nn.Linear(channels, channels)
        for lin in (self.to_q, self.to_k, self.to_v, self.to_out):
            with torch.no_grad():
                lin.weight.copy_(torch.randn(lin.weight.shape, generator=gen) / channels ** 0.5 * 2.0)
                if lin.bias is not None:
                    lin.bias.zero_()
        self.register_buffer("pe", torch.sin(torch.arange(ENCODING_MAX_LEN, dtype=torch.float32)[:, None]
                                             * torch.linspace(0.1, 1.0, channels)[None]))

    def forward(self, hidden: torch.Tensor, video_length: int) -> torch.Tensor:
        """``hidden`` ``[(b f), d, c]`` -> ``[(b f), d, c]``, ADE's rearranges around the attention."""
        bf, d, c = hidden.shape
        if bf % video_length:
            raise RuntimeError(f"Shape mismatch, can't divide axis of length {bf} in chunks of {video_length}")
        x = hidden.reshape(bf // video_length, video_length, d, c).transpose(1, 2).reshape(-1, video_length, c)
        x = x + self.pe[:video_length].to(x)
        q, k, v = self.to_q(x), self.to_k(x), self.to_v(x)
        out = self.to_out(self.actual_attention(q, k, v, self.heads, None))
        return out.reshape(bf // video_length, d, video_length, c).transpose(1, 2).reshape(bf, d, c)


def attention_layer(module: VersatileAttention, h: torch.Tensor, f: int) -> torch.Tensor:
    """The stand-in's attention motion layer on a ResBlock output ``[(b f), c, H, W]``: residual temporal attention."""
    bf, c, hh, ww = h.shape
    tokens = h.reshape(bf, c, hh * ww).transpose(1, 2)
    return h + module(tokens, f).transpose(1, 2).reshape(bf, c, hh, ww)


class State:  # ADGS
    def __init__(self, params: Params, group: MotionGroup):
        self.params = params
        self.motion_models = group
        self.motion_models_devices: dict = {}


def _hook_target(model_patcher):
    return model_patcher.model.diffusion_model.input_blocks[1][0]  # a ResBlock: called as a module


def outer_sample(executor, *args, **kwargs):
    guider = executor.class_obj
    patcher = guider.model_patcher
    latents = args[1]
    params = patcher.get_attachment("ADE_params").clone()
    params.full_length = latents.shape[0]
    length = params.context_options.context_length
    if length is not None and params.full_length <= length:
        params.set_context(None)  # ADE: "regular sampling activated"
        length = None
    if length is None and params.full_length > ENCODING_MAX_LEN:
        raise ValueError(f"Without a context window, AnimateDiff model has upper limit of {ENCODING_MAX_LEN} frames, "
                         f"but received {params.full_length} latents.")
    group: MotionGroup = patcher.additional_models["ADE"][0].model.group
    group.set_video_length(length or params.full_length, params.full_length)
    state = State(params, group)
    orig = guider.model_options
    guider.model_options = comfy.model_patcher.create_model_options_clone(orig)
    guider.model_options["transformer_options"]["ADGS"] = state

    for mm in group.models:  # ADE: pre_run / prepare_current_keyframe combine the model's effect with the keyframe's
        att = mm.get_attachment("ADE")
        att.combined_effect = att.effect_multival
    effects = [mm.get_attachment("ADE").combined_effect for mm in group.models]

    def motion(module, inputs, output):
        group.seen.append((output.shape[0], group.video_length, group.sub_idxs))
        if group.groupnorm_hack:  # ADE's groupnorm_mm_forward: the clip count from the run's context length
            ctx = state.params.context_options.context_length or params.full_length
            clips = output.shape[0] // ctx
            if clips == 0 or output.shape[0] % clips:
                raise ZeroDivisionError("integer modulo by zero") if clips == 0 else RuntimeError(
                    f"group norm: batch {output.shape[0]} is not {clips} clips")
            group.clips.append(clips)
        if group.attention is not None:
            out = attention_layer(group.attention, output, group.video_length)
        else:
            out = temporal_layer(output, group.video_length)
        for effect in effects:
            if isinstance(effect, torch.Tensor):
                e = effect_mask(effect, output.shape[0], group.video_length, group.sub_idxs)
                e = e.to(output).view(-1, *([1] * (output.ndim - 1)))
                out = output * (1.0 - e) + out * e
        return out

    handle = _hook_target(patcher).register_forward_hook(motion)
    try:
        return executor(*args, **kwargs)
    finally:
        handle.remove()
        guider.model_options = orig
        group.set_video_length(0, 0)


def sliding_calc_cond_batch(executor, model, conds, x_in, timestep, model_options):
    state: State = model_options["transformer_options"]["ADGS"]
    length = state.params.context_options.context_length
    if length is None:
        return executor(model, conds, x_in, timestep, model_options)
    full = state.params.full_length
    starts = list(range(0, full - length + 1, max(1, length // 2)))
    if starts[-1] != full - length:
        starts.append(full - length)
    out = [torch.zeros_like(x_in) for _ in conds]
    count = torch.zeros(x_in.shape[0], 1, 1, 1, dtype=x_in.dtype, device=x_in.device)
    for s in starts:
        idx = list(range(s, s + length))
        sub = x_in[idx]  # IndexError when x_in is shorter than full_length (inside another pack's window)
        state.motion_models.set_sub_idxs(idx)
        res = executor(model, conds, sub, timestep, model_options)
        for o, r in zip(out, res):
            o[idx] += r
        count[idx] += 1
    return [o / count for o in out]


class _MotionHolder(torch.nn.Module):
    def __init__(self, channels: int | None = None):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.group = MotionGroup()
        self.attention = None if channels is None else VersatileAttention(channels)
        self.group.attention = self.attention


def apply_ade(model, context_length: int | None = None, groupnorm_hack: bool = False, attention: bool = False):
    """What ADE's loader (Gen1 or Gen2 'Use Evolved Sampling') leaves on a clone of ``model``; ``groupnorm_hack``:
    an AnimateDiff v1 / PIA motion model, whose group norm counts a call's clips as batch // context_length;
    ``attention``: the motion layer is a temporal self-attention (``VersatileAttention``) instead of frame mixing."""
    m = model.clone()
    dev = comfy.model_management.get_torch_device()
    channels = _hook_target(m).out_channels if attention else None
    holder = comfy.model_patcher.ModelPatcher(_MotionHolder(channels), load_device=dev, offload_device=dev)
    holder.set_attachments("ADE", Attachment())
    holder.model.group.models = [holder]
    holder.model.group.groupnorm_hack = groupnorm_hack
    m.set_additional_models("ADE", [holder])
    m.set_attachments("ADE_params", Params(context_length))
    WP = comfy.patcher_extension.WrappersMP
    m.remove_wrappers_with_key(WP.OUTER_SAMPLE, "ADE")
    m.add_wrapper_with_key(WP.OUTER_SAMPLE, "ADE", outer_sample)
    m.remove_wrappers_with_key(WP.CALC_COND_BATCH, "ADE")
    m.add_wrapper_with_key(WP.CALC_COND_BATCH, "ADE", sliding_calc_cond_batch)
    return m


def motion_group(model) -> MotionGroup:
    return model.additional_models["ADE"][0].model.group


def attachment(model) -> Attachment:
    """The motion model's ADE attachment (set ``effect_multival`` to a ``[frames]`` tensor for an effect mask)."""
    return motion_group(model).models[0].get_attachment("ADE")
