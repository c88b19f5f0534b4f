"""Creative controls: per-window motion LoRAs (ZoLA sec. 4.5) and long-video inversion (Gen-L sec. 3.1).

SDEdit-style editing of a long video with a LongAnim noise recipe is done by the refinement node
(``LongAnimRandomizedBlendRefine``, optional ``recipe`` input); inversion here is the deterministic alternative.
"""
from __future__ import annotations

from . import vocabulary
from . import window_nodes as wn
from .base import LongAnimNode, combo_input, float_input, int_input, link_input, outputs, seed_input, string_input
from .comfy import adapters as cad
from .comfy import basics
from .comfy import inversion as cinv

CATEGORY = "LongAnim/creative"


def _lora_names() -> list[str]:
    try:
        return cad.lora_names()
    except Exception:  # pragma: no cover - folder not configured
        return []


class LongAnimWindowLoRAV2(LongAnimNode):
    NODE_ID = "LongAnimWindowLoRAV2"
    PATCH_ROLE = "window LoRA"  # stacks: each node adds one adapter (basics.STACKING_ROLES)
    DISPLAY_NAME = "LongAnim: Window LoRA (motion per frame range)"
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "ZoLA motion customization/alternation (sec. 4.5): a LoRA (e.g. a camera-motion or MotionDirector "
        "adapter) that acts only on the frames you tag. For every window the sampler denoises, the LoRA's weight "
        "is strength × (fraction of the window's frames tagged), so motions cross-fade where windows straddle two "
        "ranges. Chain several of these nodes for several adapters. Put it after a LongAnim window node; without "
        "windows (or a latent shorter than one window) the whole video is one window: weight = strength × "
        "fraction of all frames tagged."
    )
    RETURN_TYPES, RETURN_NAMES, OUTPUT_TOOLTIPS = outputs(
        ("MODEL", "model", "The model with this LoRA applied per window; connect it to any sampler (or another "
                           "Window LoRA to add one more adapter)."))
    DOC_EXTRA = """## Notes

- **Equation** (ZoLA sec. 4.5): for a window W and adapter a with scale α_a, `w_a(W) = α_a · |W ∩ tagged_a| / |W|`.
  A window with half its frames tagged 'left' and half 'up' gets α/2 of each adapter. Untagged frames get the
  adapter-free model. Tags of one adapter may overlap; tags of different adapters are independent (a frame tagged by
  two adapters gets both).
- **Frames** are latent frames by default (SD/AnimateDiff: the batch index; Wan: `(video_frame - 1) // 4 + 1`); with
  `frame_unit = video frames` they are the frames typed in the latent node, converted with the model's temporal
  compression (a latent frame is tagged when its first video frame is). An interval
  whose end is past the last frame is clamped (`64-` = to the end); one that starts past the end is an error.
- **How it is applied**: a forward hook on each LoRA layer adds `w · up(down(x))` while a window is evaluated
  (exact: equal to core's Load LoRA at strength w). Measured on the tiny test UNet (CPU, 1 thread, 4 frames): a
  window switch costs 2 ms of hook bookkeeping and a window +4% (175 vs 168 ms), against 34 ms and +37% (231 ms)
  for re-writing the weights every window. Adapters whose effect is not linear in the strength (DoRA, OFT) fall
  back to that exact per-window weight patching.
- **Combine**: `UNETLoader → LongAnim ZoLA Windows → Window LoRA (left, 0-31) → Window LoRA (up, 32-) → KSampler`.
  The windows must come from LongAnim (any window node) or core Context Windows; both work. Typical strength:
  the LoRA's usual strength (0.6-1.0).
- Loading the LoRA also through core's LoRA loader applies it everywhere on top: use one or the other per LoRA.
"""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": link_input("MODEL", "The video model, best with LongAnim windows already applied. Cloned."),
            "lora_name": (_lora_names(), {"tooltip": "The adapter from models/loras (a LoRA made for this model "
                                                     "family, e.g. a motion/camera LoRA)."}),
            "strength": float_input(1.0, -10.0, 10.0, "α: the LoRA's weight on fully tagged windows (as in core's "
                                    "Load LoRA). Partly tagged windows get α × tagged fraction."),
            "frame_intervals": string_input("0-", "Frames (in frame_unit) where this adapter acts: ranges like "
                                            "'0-31, 64-95', '64-' (to the end) or '7' (one frame), comma "
                                            "separated."),
        }, "optional": {
            "frame_unit": combo_input(wn.FRAME_UNITS, "latent frames", wn.RANGE_UNIT_TIP.replace(
                "when the sampler runs", "of this model")),
        }}

    def run(self, model, lora_name, strength, frame_intervals, frame_unit="latent frames"):
        if frame_unit not in wn.FRAME_UNITS:
            raise ValueError(f"frame_unit must be one of {wn.FRAME_UNITS}, got {frame_unit!r}")
        ratio = basics.temporal_compression(model) if frame_unit == "video frames" else 1
        return (cad.patch_model_window_lora(model, lora_name, strength, frame_intervals, ratio=ratio),)


class LongAnimInvert(LongAnimNode):
    NODE_ID = "LongAnimInvert"
    DISPLAY_NAME = "LongAnim: Invert Video (DDIM)"
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "Gen-L-Video video editing (Fig. 1 right, sec. 3.1): runs the deterministic sampler backwards (DDIM / "
        "Euler ODE, low to high noise) to turn a long video's latent into the noise that regenerates it, using "
        "the model's LongAnim windows so any length works. Sample from it with new prompts to edit the video. "
        "Use the SAME model (windows, seed), steps and scheduler in the sampler, with sampler euler or ddim: "
        "KSamplerAdvanced with add_noise = disable on the latent output, or SamplerCustomAdvanced with the noise "
        "output."
    )
    RETURN_TYPES = ("LATENT", "NOISE")
    RETURN_NAMES = ("latent", "noise")
    OUTPUT_TOOLTIPS = (
        "The inverted video latent at the highest noise level: feed KSamplerAdvanced (add_noise = disable, same "
        "steps/scheduler/seed, start_at_step 0). For flow models whose schedule starts at sigma = 1 (Wan with "
        "simple/normal) use the noise output instead.",
        "The same inverted start as a NOISE for SamplerCustomAdvanced (with the source latent or an empty one, "
        "same sigmas): works for every model type, flow models included.",
    )
    DOC_EXTRA = """## Notes

- **Equation** (Gen-L sec. 3.1, DDIM inversion): `x_{t+Δ}/√a_{t+Δ} = x_t/√a_t + (√((1-a_{t+Δ})/a_{t+Δ}) -
  √((1-a_t)/a_t)) ε(x_t, t)`, i.e. the Euler step of `dx/dσ = (x - D(x, σ))/σ` walked from σ = 0 up to σ_max with
  the denoiser evaluated at the target σ. The denoiser is the MODEL through core's CFGGuider, so LongAnim (or core)
  context windows co-denoise the whole video at every step (Gen-L's long-video inversion).
- **Sigmas**: the same as KSampler's for `steps` and `scheduler`. EPS/V models (SD1.5, AnimateDiff): σ from 0 to
  ~14.6, latent = x(σ_max). Flow models (Wan; ComfyUI CONST): σ in [0, 1], x = (1-σ)·x0 + σ·ε; at σ = 1 the
  sampler's add_noise = disable would start from (1-1)·latent = 0, so use the noise output with
  SamplerCustomAdvanced (latent output is then scaled by 1/(1-σ_max) when σ_max < 1).
- **cfg = 1** (default): inversion follows the conditional ODE; CFG > 1 is not a consistent ODE in reverse and
  amplifies the error (Mokady et al., null-text inversion), and cfg 1 halves the cost (no negative pass). Edit with
  any cfg afterwards; reconstruction is best with the sampler at cfg 1 too.
- **Windows** are drawn per step from the sampler's seed: give the sampler the same `seed` as this node so the
  windows match (needed for an exact reconstruction with ZoLA's random windows).
- **fixed_point_iterations** > 0 refines each step (x' = x + Δσ·d(x', σ')) so inversion becomes the exact inverse of
  the euler sampler (converges when the step is small); each iteration costs one more model call per step.
- A latent shorter than one window is inverted in one piece. Editing by re-noising instead (SDEdit with a LongAnim
  noise recipe) is done by LongAnim Randomized Blend Refine (optional `recipe` input).
- Typical: 25-50 steps for real models; more steps = closer reconstruction.
"""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": link_input("MODEL", "The video model with LongAnim windows (the same MODEL the sampler that "
                                         "reconstructs or edits will use)."),
            "positive": link_input("CONDITIONING", "The prompt describing the SOURCE video (inversion follows "
                                                   "this conditioning's ODE)."),
            "latent": link_input("LATENT", "The long video's latent (VAE Encode of its frames)."),
            "steps": int_input(25, 1, 1000, "Inversion steps: use the same number in the sampler. More steps = "
                               "closer reconstruction."),
            "scheduler": combo_input(basics.scheduler_names(), "normal", "Noise schedule: use the same one "
                                     "in the sampler."),
            "seed": seed_input("The sampler seed the windows are drawn with: use the same seed in the sampler."),
        }, "optional": {
            "negative": link_input("CONDITIONING", "Only used when cfg > 1."),
            "cfg": float_input(1.0, 0.0, 30.0, "Guidance during inversion. 1 (default) = plain conditional ODE, the "
                               "stable choice; > 1 needs negative and reconstructs worse.", step=0.1),
            "fixed_point_iterations": int_input(0, 0, 20, "Extra model calls per step that refine the inversion "
                                                "(0 = classic DDIM inversion)."),
        }}

    def run(self, model, positive, latent, steps, scheduler, seed, negative=None, cfg=1.0, fixed_point_iterations=0):
        basics.check_finite(latent, "latent", self.DISPLAY_NAME)
        if cfg != 1.0 and negative is None:
            raise ValueError("negative: cfg > 1 (or < 1) needs a negative conditioning; connect one or set cfg to 1")
        out, noise, _ = cinv.invert_latent(model, positive, negative, latent, steps, scheduler, cfg=cfg, seed=seed,
                                          fixed_point_iters=fixed_point_iterations)
        return (out, noise)


NODES = [LongAnimWindowLoRAV2, LongAnimInvert]
LongAnimWindowLoRA = vocabulary.alias(LongAnimWindowLoRAV2)
DEPRECATED_NODES = [LongAnimWindowLoRA]
