"""Attention-patch nodes: ZS² temporal momentum, Gen-L-Video cross-frame, ZoLA attention expansion (video DiTs and
AnimateDiff's motion module) with the FreeLong / FreeLong++ global blend.

Each node returns a MODEL clone; the input MODEL is never changed, so the patch disappears as soon as the
original model is used again. The math lives in ``nodes/algorithms/attention.py`` and ``spectral_attention.py``; the
ComfyUI hooks in ``nodes/comfy/unet_attention.py``, ``wan_attention.py`` and ``motion_attention.py``.
"""
from __future__ import annotations

from . import vocabulary
from .algorithms import attention as att
from .algorithms import spectral_attention as spa
from .base import LongAnimNode, combo_input, float_input, int_input, link_input, outputs, parse_float_list, string_input
from .comfy import basics
from .comfy import motion_attention as cma
from .comfy import unet_attention as cua
from .comfy import wan_attention as cwa

CATEGORY = "LongAnim/attention"

UNET_MODEL_IN = link_input("MODEL", "An SD1.5/SDXL model (optionally with AnimateDiff) whose latent holds the "
                                    "frames in the batch. It is cloned, not changed.")
START_TIP = ("Fraction of the sampling schedule where the patch starts (0 = first step). Patch only the early "
             "steps (e.g. 0 - 0.5) to fix layout and identity while leaving fine detail free.")
END_TIP = "Fraction of the schedule where the patch stops (1 = last step)."
BLOCKS_TIP = ("Which UNet self-attention blocks are patched: input (down), middle, output (up) or a pair. "
              "all = every block, as in the papers.")
OUT_TIP = "The patched model (a clone); connect it to any sampler. The input model is unchanged."


def _unet_inputs() -> dict:
    return {
        "start_percent": float_input(0.0, 0.0, 1.0, START_TIP, step=0.01),
        "end_percent": float_input(1.0, 0.0, 1.0, END_TIP, step=0.01),
        "blocks": combo_input(list(cua.BLOCK_CHOICES), "all", BLOCKS_TIP),
    }


class LongAnimTemporalMomentumAttention(LongAnimNode):
    NODE_ID = "LongAnimTemporalMomentumAttention"
    PATCH_ROLE = "frame attention"
    DISPLAY_NAME = "LongAnim: Temporal Momentum Attention (ZS²)"
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "ZS² temporal momentum attention (section 4.1, Eq. 2) for SD1.5/SDXL video (frames in the batch): each "
        "frame's self-attention keys/values become a running average over the previous frames, "
        "K''_i = μ·K''_(i-1) + (1-μ)·K_i, so every frame looks back at the frames before it. Higher μ = more "
        "consistent appearance, less change; 0 = off (the model is returned unpatched), 1 = every frame attends "
        "to the first frame. Paper: μ = 0.98. With LongAnim context windows the average runs inside each window, "
        "starting at the window's first frame. Cond and uncond never mix. Keeps your attention backend."
    )
    RETURN_TYPES, RETURN_NAMES, OUTPUT_TOOLTIPS = outputs(("MODEL", "model", OUT_TIP))
    DOC_EXTRA = """## Paper and math

ZS² (Zero-Shot Video Sampling from Image), section 4.1, Eq. 2: K''_1 = K_1 and
K''_i = μ_i·K''_(i-1) + (1 - μ_i)·K_i for i = 2..F (same for V); the queries stay per frame. The node applies the
recurrence to the post-norm hidden states before `to_k`/`to_v` (bias-free in SD1.5/SDXL, so this equals the
recurrence on K and V) with an O(F) scan: no frames × frames tensor is ever built.

## Typical values

- `momentum` 0.98 (paper): strong appearance consistency. 0.9: more motion. 0: off, the model comes back
  unpatched. 1: every frame attends to frame 1 only (same as Cross-Frame Attention `first_frame`).
- `start_percent` 0 / `end_percent` 0.5-1: patching only the early steps fixes layout and identity while the
  late steps keep per-frame detail.
- `momentum_per_frame`: e.g. `0, 0.98, 0.98, 0.9, ...`, one value per latent frame of the video (or of the
  context window); a wrong count is reported when sampling starts.

## Combining

- Frames are the latent batch (Empty Latent Image `batch_size` = frames), optionally with AnimateDiff.
- With LongAnim context windows the recurrence runs inside each window, in window order, starting at the
  window's first frame; a per-frame list is indexed by the absolute frame ids of the window.
- cond and uncond halves of a CFG batch are processed separately (they never mix).
- Only the K/V source changes, so the host's attention backend (sdpa, xformers, sage...) keeps running and
  other `attn1_patch` users (IPAdapter, ...) keep working. Applying the node again replaces the earlier
  LongAnim attention patch instead of stacking it.
- Not for Wan or other native video DiTs: use Attention Expansion (ZoLA) there."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": UNET_MODEL_IN,
            "momentum": float_input(att.DEFAULT_MU, 0.0, 1.0, "μ of ZS² Eq. 2: weight of the past frames in the "
                                    "keys/values. 0.98 (paper) = strong consistency; 0.8-0.9 = more motion; 0 = "
                                    "off; 1 = every frame attends to the first frame.", step=0.001),
            **_unet_inputs(),
        }, "optional": {
            "momentum_per_frame": string_input("", "Optional μ per latent frame, comma separated (overrides "
                                               "momentum): one value per frame of the video (or of the context "
                                               "window). The first value is unused (frame 1 has no past)."),
        }}

    def run(self, model, momentum, start_percent, end_percent, blocks, momentum_per_frame=""):
        basics.claim_patch(model, self.PATCH_ROLE, self.DISPLAY_NAME)
        mu = att.validate_mu(float(momentum))
        mu_list = parse_float_list(momentum_per_frame, "momentum_per_frame")
        if mu_list is not None:
            try:
                mu_list = att.validate_mu(mu_list)
            except ValueError as e:
                raise ValueError(f"momentum_per_frame: {e}") from e
        gates = _unet_gates(model, start_percent, end_percent, blocks, self.DISPLAY_NAME)
        # μ = 0 is plain self-attention: no patch at all (also a per-frame list of zeros after its first value)
        if (mu_list is None and mu == 0.0) or (mu_list is not None and all(v == 0.0 for v in mu_list[1:])):
            return (basics.mark_patch(cua.patch_frame_attention(model, None), self.PATCH_ROLE, self.DISPLAY_NAME),)
        patch = cua.FrameAttentionPatch("momentum", mu=mu, mu_list=mu_list, **gates)
        return (basics.mark_patch(cua.patch_frame_attention(model, patch), self.PATCH_ROLE, self.DISPLAY_NAME),)


class LongAnimCrossFrameAttention(LongAnimNode):
    NODE_ID = "LongAnimCrossFrameAttention"
    PATCH_ROLE = "frame attention"
    DISPLAY_NAME = "LongAnim: Cross-Frame Attention (Gen-L)"
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "Cross-frame self-attention for SD1.5/SDXL video (frames in the batch). bidirectional_anchor (Gen-L-Video "
        "section 4): frame j attends to its neighbour toward the anchor and to the anchor, the middle frame of "
        "the video or of each context window, so appearance spreads from the middle both ways. first_frame "
        "(Text2Video-Zero): every frame attends to the first frame. Cond and uncond never mix; keeps your "
        "attention backend. bidirectional_anchor doubles the keys/values (about 2x self-attention cost)."
    )
    RETURN_TYPES, RETURN_NAMES, OUTPUT_TOOLTIPS = outputs(("MODEL", "model", OUT_TIP))
    DOC_EXTRA = """## Paper and math

- `bidirectional_anchor`: Gen-L-Video section 4 (tuning-free text-to-video, bi-directional cross-frame
  attention). With anchor a = the middle frame (index F // 2 of the video or of each context window), frame j
  uses Q from z_j and K/V from [z_(j+1), z_a] if j < a, [z_(j-1), z_a] if j > a; the anchor uses z_a. Keys and
  values are doubled (2N tokens), so self-attention costs about twice as much.
- `first_frame`: Text2Video-Zero / FateZero cross-frame attention, K/V of every frame = frame 1 (N tokens).

## Typical values

`start_percent` 0, `end_percent` 1 as in the papers; ending at 0.5-0.7 keeps more per-frame detail.

## Combining

Same hook and guarantees as Temporal Momentum Attention: frames in the latent batch, cond and uncond never
mix, LongAnim windows get their own anchor (the window's middle frame), the host's attention backend keeps
running. The two nodes replace each other (the last one applied wins). SD1.5/SDXL UNet only."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": UNET_MODEL_IN,
            "mode": combo_input(list(att.CROSS_FRAME_MODES), "bidirectional_anchor",
                                "bidirectional_anchor: frame j sees [its neighbour toward the anchor, the anchor] "
                                "(Gen-L-Video); first_frame: every frame sees frame 1 (Text2Video-Zero)."),
            **_unet_inputs(),
        }}

    def run(self, model, mode, start_percent, end_percent, blocks):
        basics.claim_patch(model, self.PATCH_ROLE, self.DISPLAY_NAME)
        att.validate_cross_frame(mode)
        patch = cua.FrameAttentionPatch(mode, **_unet_gates(model, start_percent, end_percent, blocks,
                                                             self.DISPLAY_NAME))
        return (basics.mark_patch(cua.patch_frame_attention(model, patch), self.PATCH_ROLE, self.DISPLAY_NAME),)


class LongAnimAttentionExpansionV2(LongAnimNode):
    NODE_ID = "LongAnimAttentionExpansionV2"
    PATCH_ROLE = "attention expansion"
    DISPLAY_NAME = "LongAnim: Attention Expansion (ZoLA)"
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "ZoLA spatiotemporal attention expansion (section 4.3, Eqs. 3-4) for native video models (Wan 2.1/2.2, "
        "LTX-Video, HunyuanVideo): "
        "inside the model's self-attention the latent frames are split into windows of the trained length at a "
        "stride, attention runs inside each window and the results are merged with ZoLA's weights "
        "exp(-|j - f/2|/2). The model then sees clips longer than it was trained on without the quality loss of "
        "full attention over all frames. Attention cost drops from (T·HW)² to about (T/s)·(f·HW)²; memory keeps "
        "one float32 copy of the attention output. No effect when the video is not longer than context_length. "
        "global_blend (FreeLong / FreeLong++) adds attention over all frames for the slow changes (what the scene "
        "is), keeping the windows for fast ones (detail and motion); try it when a long video drifts in look or "
        "content, and compare with off on your model (on the toy model it empties the scene)."
    )
    RETURN_TYPES, RETURN_NAMES, OUTPUT_TOOLTIPS = outputs(
        ("MODEL", "model", "The video model with windowed self-attention (a clone); connect it to any sampler."))
    DOC_EXTRA = """## Paper and math

ZoLA section 4.3. Eq. 3: the latent frames z are split into windows z^i = z[:, i·s : i·s + f] (a last window
ending at the final frame is added so every frame is covered); self-attention runs inside each window (all
tokens of its f frames). Eq. 4: a frame's output is the weighted mean of the windows covering it with
w[j] = exp(-|j - floor(f/2)| / 2), j = the frame's position in the window (normalised by the covering weights).
RoPE positions stay absolute, so relative positions inside a window are the ones the model was trained on.

## Typical values

- Wan 2.1/2.2 14B / 1.3B: `context_length` 21 (81 video frames), `stride` 0 (= 10).
- LTX-Video: `context_length` 16 (121 video frames at 8 per latent frame; 97 frames = 13).
- HunyuanVideo: `context_length` 33 (129 video frames at 4 per latent frame).
- Smaller `stride` = more overlap = smoother but slower (about T / s windows).

## Cost

Full self-attention over T latent frames costs ∝ (T·HW)²; the expansion costs ∝ W·(f·HW)² with W ≈ (T - f) / s + 1
windows, so it is cheaper for long videos (e.g. T = 81, f = 21, s = 10: about 0.5× the full attention). Memory:
the windows' q/k/v copies (all windows at once with `max_windows_per_batch` 0; set 1-4 to cap it) plus one float32
accumulator of the attention output. Nothing changes when T ≤ `context_length`.

## Combining

- Works with any sampler and with LongAnim context windows (each window longer than `context_length` is expanded).
- An attention override already on the model (another pack's) is chained: it runs for every window.
- Cross-attention (text / image) is untouched. Calls with reference-image tokens prepended to the video tokens
  are left to full attention, and so are LTX-Video calls with keyframe guides (`LTXVAddGuide`: their frames sit
  at other times) and HunyuanVideo calls with a reference latent.
- HunyuanVideo attends over image and text tokens together: the video tokens of a window attend to that window
  and to every text token; the text tokens attend to everything (one extra call, cheap: few tokens).
- Not for SD1.5/SDXL UNets: use Temporal Momentum or Cross-Frame Attention there.

## Global blend (FreeLong, FreeLong++)

`global_blend` off (default) is the expansion above, unchanged. `freelong` (arXiv 2407.19918, SpectralBlend
attention, Eq. 7) also runs attention over all frames of the call (the global branch) and fuses the two outputs
along the frame axis by temporal frequency: x = IFFT(P_low · FFT(x_global) + (1 - P_low) · FFT(x_windows)), where
P_low keeps the frequencies below 1 / context_length cycles per frame (periods longer than a window: what the scene is),
so the windows supply only faster changes (detail and motion). `freelong++` (arXiv 2507.00162, multi-band fusion)
adds windows of 2, 4, ... × context_length shorter than the video; each supplies the band between its own and the next
shorter window's cutoff. Departures from the papers: the FFT runs along the frames only (FreeLong filters time and
space in 3-D) and the band edges are ideal (0/1). Every branch runs through the same attention kernel (no
frames² or tokens² matrix is built by LongAnim; the global branch costs what full attention costs on your
backend), so `freelong` costs about one full attention more than the expansion, `freelong++` one expansion more per
extra band. Inside LongAnim's window loop "all frames" means the frames of one context window (blend only acts
on windows longer than context_length)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": link_input("MODEL", "A Wan 2.1/2.2, LTX-Video or HunyuanVideo model (latent [B, C, T, H, "
                                "W]). It is cloned."),
            "context_length": int_input(21, 1, 4096, "f: the model's native length, the latent frames it was "
                                        "trained on (21 = 81 video frames for Wan 2.1/2.2, 16 = 121 frames for "
                                        "LTX-Video, 33 = 129 frames for HunyuanVideo): the window of the split "
                                        "attention. Videos up to this length are left untouched."),
            "stride": int_input(0, 0, 4096, "s: latent frames between window starts, 1..context_length. 0 = ZoLA "
                                "default context_length // 2 (every frame in about two windows)."),
        }, "optional": {
            "max_windows_per_batch": int_input(0, 0, 1024, "Windows evaluated in one attention call. 0 = all at "
                                               "once (fastest); 1 = one at a time (least memory)."),
            "global_blend": combo_input(list(spa.BLEND_MODES), "off",
                                        "off = windows only. freelong = also attend over all frames and take the "
                                        "slow changes (periods longer than context_length: what the scene is) from "
                                        "there, the fast ones from the windows; costs one full attention more. "
                                        "freelong++ = several window sizes (context_length x 1, 2, 4, ...) as "
                                        "frequency bands; one more pass per band."),
        }}

    def run(self, model, context_length, stride, max_windows_per_batch=0, global_blend="off"):
        base, stride, per_call = _expansion_args(self.DISPLAY_NAME, context_length, stride, max_windows_per_batch,
                                                 global_blend)
        basics.require_video_dit(model, self.DISPLAY_NAME)
        basics.claim_patch(model, self.PATCH_ROLE, self.DISPLAY_NAME)
        return (basics.mark_patch(cwa.patch_attention_expansion(model, base, stride, per_call, global_blend),
                                  self.PATCH_ROLE, self.DISPLAY_NAME),)


class LongAnimMotionAttentionExpansion(LongAnimNode):
    NODE_ID = "LongAnimMotionAttentionExpansion"
    PATCH_ROLE = "motion attention expansion"
    DISPLAY_NAME = "LongAnim: Motion Attention Expansion (AnimateDiff)"
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "Attention expansion and the FreeLong global blend inside AnimateDiff's motion module (SD1.5/SDXL with "
        "AnimateDiff-Evolved): the motion module's temporal attention over the frames of one model call runs as "
        "windows of context_length frames (ZoLA Eqs. 3-4), so a call may hold more frames than the motion model "
        "was trained on (e.g. LongAnim context windows of 24-32 frames for a 16-frame motion model). "
        "global_blend (FreeLong / FreeLong++) adds attention over all frames of the call for the slow changes "
        "(what the scene is) and keeps the windows for fast ones (detail and motion): try it when appearance "
        "drifts inside long context windows. No effect on calls of context_length frames or fewer. Needs an "
        "AnimateDiff-Evolved motion model on the same MODEL (before or after this node)."
    )
    RETURN_TYPES, RETURN_NAMES, OUTPUT_TOOLTIPS = outputs(
        ("MODEL", "model", "The model whose motion module attends in windows (a clone); connect it to any sampler."))
    DOC_EXTRA = """## Paper and math

AnimateDiff's motion module attends along time only: for every spatial position, the frames of the call form one
sequence. This node applies ZoLA section 4.3 to that sequence (windows of `context_length` frames every `stride`
frames, merged with w[j] = exp(-|j - floor(f/2)| / 2), Eqs. 3-4) and, with `global_blend`, FreeLong's
SpectralBlend (arXiv 2407.19918, Eq. 7) or FreeLong++'s multi-band fusion (arXiv 2507.00162): attention over all
frames of the call supplies the temporal frequencies below 1 / context_length cycles per frame, the windows (2, 4, ...
× context_length for freelong++) the faster ones. The FFT runs along the frames; band edges are ideal (0/1).

## Typical values

- AnimateDiff v2 / v3 / AnimateLCM (SD1.5) and AnimateDiff-SDXL: `context_length` 16. HotshotXL: 8.
- `stride` 0 = context_length // 2.
- With LongAnim: ZoLA Windows, make the windows longer than this node's `context_length` (the motion model's
  native length) and at most the motion model's positional encoding (32 for v2/v3, 24 for v1): e.g. windows of
  32 frames with `context_length` 16 here.

## Cost

The motion module's attention is a small part of a UNet step: windows cost about (T / s)·f² per position instead
of T², the global branch one more T² attention, `freelong++` one more windowed pass per extra band. Every branch
calls the motion module's own attention kernel; no frames × frames matrix is built by LongAnim.

## Combining

- The frames of one call are what AnimateDiff-Evolved gives its motion module: the whole video without context
  windows (up to its 24 / 32-frame limit), one context window inside LongAnim's window loop. ADE's own context
  options or view options keep working as ADE defines them; the expansion acts inside each of their calls that
  holds more than `context_length` frames.
- Absolute positional encodings: the windows keep the positions of their frames in the call (as ZoLA keeps RoPE
  positions), so a window late in a 32-frame call sees encodings 16-31 that the motion model met less in
  training. `global_blend` takes the slow changes from the full call, which is what the node is for.
- Spatial attention patches (Temporal Momentum, Cross-Frame Attention) are a different role and combine with it.
- Not for Wan / LTX-Video / HunyuanVideo: use Attention Expansion (ZoLA) there."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": UNET_MODEL_IN,
            "context_length": int_input(16, 1, 4096, "f: the motion model's native length, the frames it was "
                                        "trained on (16 for AnimateDiff v2/v3 and SDXL, 8 for HotshotXL). Calls of up "
                                        "to this many frames are left untouched."),
            "stride": int_input(0, 0, 4096, "s: frames between attention window starts, 1..context_length. 0 = "
                                "context_length // 2 (every frame in about two windows)."),
        }, "optional": {
            "max_windows_per_batch": int_input(0, 0, 1024, "Windows evaluated in one attention call. 0 = all at "
                                               "once (fastest); 1 = one at a time (least memory)."),
            "global_blend": combo_input(list(spa.BLEND_MODES), "off",
                                        "off = windows only. freelong = also attend over all frames of the call "
                                        "and take the slow changes (periods longer than context_length: what the "
                                        "scene is) from there, the fast ones from the windows. freelong++ = "
                                        "several window sizes (context_length x 1, 2, ...) as frequency bands."),
        }}

    def run(self, model, context_length, stride, max_windows_per_batch=0, global_blend="off"):
        base, stride, per_call = _expansion_args(self.DISPLAY_NAME, context_length, stride, max_windows_per_batch,
                                                 global_blend)
        basics.require_unet(model, self.DISPLAY_NAME)
        basics.claim_patch(model, self.PATCH_ROLE, self.DISPLAY_NAME)
        return (basics.mark_patch(cma.patch_motion_attention(model, self.DISPLAY_NAME, base, stride, per_call,
                                                             global_blend), self.PATCH_ROLE, self.DISPLAY_NAME),)


def _expansion_args(node: str, context_length, stride, max_windows_per_batch, global_blend):
    """The checks both attention-expansion nodes share -> (window length, stride, windows per call or None)."""
    try:
        base, stride = att.validate_expansion(int(context_length), int(stride) if int(stride) > 0 else None)
    except ValueError as e:
        raise ValueError(f"{node}: context_length / stride: {e}") from e
    if int(max_windows_per_batch) < 0:
        raise ValueError(f"{node}: max_windows_per_batch must be >= 0 (0 = all at once), got {max_windows_per_batch}")
    try:
        spa.validate_blend(global_blend)
    except ValueError as e:
        raise ValueError(f"{node}: global_blend: {e}") from e
    return base, stride, int(max_windows_per_batch) or None


def _unet_gates(model, start_percent: float, end_percent: float, blocks: str, node: str) -> dict:
    """The checks and gates every UNet frame-attention node shares: its sigma range, blocks and model family."""
    blocks_sel = _blocks(blocks)
    sigma_high, sigma_low = basics.sigma_range(model, start_percent, end_percent)
    basics.require_unet(model, node)
    return {"sigma_high": sigma_high, "sigma_low": sigma_low, "blocks": blocks_sel}


def _blocks(name: str) -> tuple[str, ...]:
    if name not in cua.BLOCK_CHOICES:
        raise ValueError(f"blocks must be one of {list(cua.BLOCK_CHOICES)}, got {name!r}")
    return cua.BLOCK_CHOICES[name]


NODES = [
    LongAnimTemporalMomentumAttention,
    LongAnimCrossFrameAttention,
    LongAnimAttentionExpansionV2,
    LongAnimMotionAttentionExpansion,
]
LongAnimAttentionExpansion = vocabulary.alias(LongAnimAttentionExpansionV2)
DEPRECATED_NODES = [LongAnimAttentionExpansion]
