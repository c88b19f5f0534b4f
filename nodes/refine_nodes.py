"""Refinement and phased-inference nodes.

- StreamingT2V (sec. 4.3, Eqs. 7-8): randomized-blend refinement of a long video with a short video model, chunk
  by chunk (F = 24, O = 8) with shared noise, plus an upscale-and-encode companion.
- Controllable Long Image Animation (sec. 3.4, Eqs. 9-12): phased inference with shared noise reschedule.
"""
from __future__ import annotations

from . import vocabulary
from . import window_nodes as wn
from .algorithms import context_schedule as cs
from .algorithms import phased as ph
from .base import MAX_FRAMES, LongAnimNode, combo_input, float_input, int_input, link_input, outputs, seed_input
from .comfy import basics
from .comfy import phased as cp
from .comfy import refine as cr

CATEGORY = "LongAnim/refine"

MODE_TIP = ("randomized_blend (StreamingT2V): shared noise + a random cut per overlap after every step - smooth "
            "chunk transitions. shared_noise_only: same chunks and noise, overlaps averaged evenly (the paper's "
            "B+S ablation). naive: each chunk refined alone with its own noise and concatenated (ablation B).")


class LongAnimRandomizedBlendRefineV2(LongAnimNode):
    NODE_ID = "LongAnimRandomizedBlendRefineV2"
    DISPLAY_NAME = "LongAnim: Randomized-Blend Refine (StreamingT2V)"
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "Refines (enhances) a long video latent with a short video model, StreamingT2V style: the video is "
        "re-noised once to the strength 'denoise' (SDEdit) and denoised in overlapping chunks of context_length "
        "frames; the chunks share the noise on their overlaps (Eq. 7) and after every step each overlap is cut "
        "at a random frame (Eq. 8), so no fixed seam survives. Typical: chunk 24, overlap 8, denoise 0.4-0.6. "
        "Feed it the upscaled and VAE-encoded low-resolution video (LongAnim: Upscale + Encode)."
    )
    RETURN_TYPES, RETURN_NAMES, OUTPUT_TOOLTIPS = outputs(
        ("LATENT", "latent", "The refined long video latent (same shape as the input)."))
    DOC_EXTRA = """
## What it does (StreamingT2V section 4.3, Eqs. 7-8)

The long latent is cut into chunks of `context_length` = F frames starting every F - O frames
(`context_overlap` = O); the last chunk is shifted left to end at the last frame, so any frame count works (it then
overlaps its neighbour by more than O). A video no longer than one chunk is refined as one chunk (plain SDEdit).
The video is re-noised ONCE to the start noise level of `denoise` (SDEdit, like KSampler's denoise), and the whole
video is sampled by ComfyUI's own KSampler on a model clone carrying LongAnim's window loop (the same loop as Gen-L
Windows, schedule `uniform`):

- **Shared noise (Eq. 7).** The paper builds each chunk's noise from the previous chunk's last O frames plus
  F - O fresh frames. Slicing one noise tensor for the whole video gives exactly that, for the SDEdit noise and for
  the per-step noise of stochastic samplers (euler_ancestral, dpmpp_sde, ...), which is drawn for the whole latent.
- **Randomized blending (Eq. 8).** After every step each overlap is cut at a random frame f_thr ~ U{0..O}: overlap
  frame f comes from the left chunk with probability 1 - f/(O+1). The pack cuts the chunks' *denoised predictions*
  (x0) at every model evaluation instead of the chunk latents after the step. For one-evaluation samplers whose step
  is a fixed linear combination of the current latent, the prediction and fresh noise (euler, euler_ancestral, ddim,
  ddpm, lcm) this is the same thing: all chunks start the step from the same (blended) latent, so cutting
  `a x + b x0_chunk + c noise` equals `a x + b cut(x0) + c noise`. Multistep samplers (dpmpp_2m, lms, ...) and
  two-evaluation samplers (heun, dpmpp_2s, ...) keep the blended prediction in their history, which differs slightly
  from blending per-chunk states; they work, but euler / euler_ancestral are the paper-exact choice.

## Modes (the paper's ablation, sec. 9.3: flow-std 8.72 naive, 6.01 shared noise, 3.32 randomized blending)

- `randomized_blend`: the method.
- `shared_noise_only` (B+S): the same chunks and shared noise, overlaps averaged with equal weights every step (the
  paper does not say how B+S merges the overlap; plain averaging is the neutral deterministic choice).
- `naive` (B): each chunk is refined by its own KSampler run with its own noise (seed + chunk index), and the
  chunks are concatenated: every frame comes from the first chunk that holds it (later chunks' overlaps are
  dropped). Per-frame conditioning (prompt schedules, per-frame ControlNet hints) is not sliced per chunk in this
  mode; use it as an ablation baseline.

## Typical values and combining

Chunk 24 / overlap 8 / denoise 0.6 (T' = 600 of 1000) are the paper's; set context_length to your refiner's
native clip length in latent frames (16 for AnimateDiff, 21 for Wan 2.1 81-frame clips) and context_overlap to
about a third of it.
Workflow: long low-res video -> VAE Decode -> **Upscale + Encode** (refiner VAE, scale 2-3) -> **Randomized-Blend
Refine** (refiner model) -> VAE Decode. The refiner MODEL may carry other LongAnim patches (noise, attention); it must
not carry context windows of its own (the refine node installs them). Progress and Cancel work as in KSampler.
"""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": link_input("MODEL", "The refiner: a video model (AnimateDiff-injected SD, Wan, ...). It is "
                                         "cloned, not changed."),
            "positive": link_input("CONDITIONING", "Positive prompt of the refiner."),
            "negative": link_input("CONDITIONING", "Negative prompt of the refiner."),
            "latent": link_input("LATENT", "The long video to refine, already encoded at the target resolution "
                                           "([frames, C, H, W] for SD/AnimateDiff, [B, C, frames, H, W] Wan)."),
            "denoise": float_input(0.6, 0.01, 1.0, "SDEdit strength: how far the video is re-noised before "
                                   "refining (StreamingT2V: T' = 600 of 1000 steps = 0.6). Lower keeps more of "
                                   "the input, 1 re-generates it."),
            "steps": int_input(20, 1, 1000, "Sampling steps run, as KSampler runs them with denoise < 1: the "
                               "schedule is stretched so that these steps cover the re-noised part."),
            "cfg": float_input(7.0, 0.0, 100.0, "Classifier-free guidance scale.", step=0.1),
            "sampler_name": (basics.sampler_names(), {
                "tooltip": "Sampler. First-order samplers (euler, euler_ancestral, ddim, ddpm, lcm) make the "
                           "per-step blend exactly the paper's; others work too (see the help page)."}),
            "scheduler": (basics.scheduler_names(), {"tooltip": "Noise schedule of the sampler."}),
            "context_length": int_input(24, 1, 4096, "Frames per chunk (a chunk is a context window), in "
                                        "frame_unit: the refiner's native clip length (paper: 24; AnimateDiff: 16; "
                                        "Wan 2.1: 21 latent = 81 video frames). A video shorter than this is refined "
                                        "as one chunk."),
            "context_overlap": int_input(8, 0, 4095, "Frames shared by consecutive chunks, in frame_unit (paper: "
                                         "8). Must be smaller than context_length. The last chunk is shifted to end "
                                         "at the last frame."),
            "seed": seed_input("Seed of the SDEdit noise, the sampler's noise and the blend cuts."),
            "mode": combo_input(cr.REFINE_MODES, "randomized_blend", MODE_TIP),
        }, "optional": {
            "recipe": link_input("LONGANIM_NOISE", "Optional noise recipe (LongAnim noise nodes) for the SDEdit "
                                                   "noise, drawn with this node's seed. Default: i.i.d. noise."),
            "blend_variant": combo_input(cs.BLEND_VARIANTS, "paper",
                                         "randomized_blend cut rule: paper = f_thr ~ U{0..O} (Eq. 8); official = "
                                         "the authors' code (cut from O values)."),
            "frame_unit": combo_input(wn.FRAME_UNITS, "latent frames", wn.UNIT_TIP.replace(
                "context_length, stride and context_overlap", "context_length and context_overlap")),
        }}

    def run(self, model, positive, negative, latent, denoise, steps, cfg, sampler_name, scheduler, context_length,
            context_overlap, seed, mode, recipe=None, blend_variant="paper", frame_unit="latent frames"):
        basics.check_finite(latent, "latent", self.DISPLAY_NAME)
        # video frames -> latent frames as the window nodes convert them (overlap n // r, below the chunk)
        chunk_length, _, overlap = wn.latent_lengths(model, frame_unit, context_length, context_length,
                                                     context_overlap, node=self.DISPLAY_NAME)
        cr.validate_refine(denoise=denoise, chunk_length=chunk_length, overlap=overlap, steps=steps, mode=mode)
        return (cr.refine_video(model, positive, negative, latent, denoise=denoise, steps=steps, cfg=cfg,
                                 sampler_name=sampler_name, scheduler=scheduler, chunk_length=chunk_length,
                                 overlap=overlap, seed=seed, mode=mode, recipe=recipe,
                                 blend_variant=blend_variant),)


class LongAnimUpscaleEncode(LongAnimNode):
    NODE_ID = "LongAnimUpscaleEncode"
    DISPLAY_NAME = "LongAnim: Upscale + Encode (for refining)"
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "Prepares a decoded low-resolution video for the refiner as StreamingT2V does: bilinear upscale of every "
        "frame by 'scale' (sizes rounded to multiples of 8), then VAE encode. Connect the result to "
        "Randomized-Blend Refine."
    )
    RETURN_TYPES, RETURN_NAMES, OUTPUT_TOOLTIPS = outputs(
        ("LATENT", "latent", "The upscaled video encoded by the refiner's VAE."))
    DOC_EXTRA = """
## Why (StreamingT2V section 4.3)

The paper's refiner works at a higher resolution than the base video: each low-resolution frame is upscaled with
bilinear interpolation, encoded with the refiner's image encoder, then re-noised and denoised (SDEdit). This node
does the first two steps for any VAE: ComfyUI's bilinear `common_upscale` on every frame (width and height rounded to
multiples of 8) and `vae.encode`. For Wan-style video VAEs the frame count becomes (N - 1) / 4 + 1 latent frames.
Connect its LATENT to **Randomized-Blend Refine**.
"""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "images": link_input("IMAGE", "The decoded video frames (an IMAGE batch, one image per frame)."),
            "vae": link_input("VAE", "The refiner model's VAE."),
            "scale": float_input(2.0, 0.1, 8.0, "Upscale factor of width and height (StreamingT2V: 256 -> 720, "
                                 "about 2.8). 1 = encode only."),
        }}

    def run(self, images, vae, scale):
        basics.check_finite(images, "images", self.DISPLAY_NAME)
        return (cr.upscale_encode(images, vae, scale),)


class LongAnimPhasedAnimation(LongAnimNode):
    NODE_ID = "LongAnimPhasedAnimation"
    DISPLAY_NAME = "LongAnim: Phased Animation (shared noise reschedule)"
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "Makes a long animation of num_clips clips with a text/image-to-video model, Controllable Long Image "
        "Animation style: clip 1 is sampled fully; clips 2..K reuse its first gamma x steps (appearance and "
        "layout are decided there) and re-sample only the rest with the predicted noise plus omega x fresh "
        "noise, shuffled across clips (Eqs. 9-12). About 1/(1-gamma) times fewer model calls for the later "
        "clips. gamma 0.8 and omega 0.2 are the paper's values; gamma 1 copies clip 1, gamma 0 = independent."
    )
    RETURN_TYPES = ("LATENT", "INT", "STRING")
    RETURN_NAMES = ("latent", "model_calls_saved", "report")
    OUTPUT_TOOLTIPS = (
        "The K clips concatenated on the frame axis (K x the input's frames).",
        "Model evaluations saved versus sampling every clip fully (K x steps).",
        "A one-line summary: model calls used / full sampling, saved, the split step M.",
    )
    DOC_EXTRA = """
## What it does (Controllable Long Image Animation, section 3.4, Eqs. 9-12)

A long animation is K clips of the latent's length. Early, high-noise steps fix appearance and layout; late steps
form the detailed motion. **Phased inference (Eq. 9):** clip 1 is sampled fully (T = `steps`); clips 2..K take clip
1's trajectory for the first M = ceil(gamma T) steps and re-sample only the last T - M steps. **Shared noise
reschedule (Eqs. 10-12):** in those steps each clip's noise is its predicted noise plus omega x fresh noise, and the
noise of clips 2..K is concatenated and frame-shuffled, so the clips differ while staying correlated. Model calls:
T + (K - 1)(T - M) instead of K T (T = 25, gamma 0.8, K = 16: 100 instead of 400, the paper's "about 4x").

Built from ComfyUI parts: core's CFGGuider (your positive/negative and cfg) with a KSAMPLER whose sampling function is
the pack's `phased_sample`; the step rule is DDIM / Euler (deterministic), in sigma space for eps / v models and in
flow space for rectified-flow models (Wan, Hunyuan, LTX). Every model call sees ONE clip (temporal layers never see K
clips at once), and the conditioning is prepared for one clip, so image-to-video conditioning (e.g. WanImageToVideo)
applies to every clip. Clip k starts from KSampler noise of seed + k - 1: clip 1 equals a plain Euler KSampler run
with `seed`, and gamma = 0 gives K independent clips (gamma = 1: K copies of clip 1). With T - M = 1 the last step
lands on the shared prediction, so all clips are equal: keep at least 2 re-sampled steps.

## Typical values and combining

gamma 0.8, omega 0.2, 25 steps (paper). Lower gamma (0.5-0.7) for more different clips. Empty latent of one clip
(e.g. 16 AnimateDiff frames, or 21 Wan latent frames) -> **Phased Animation** -> VAE Decode. The output LATENT has K
times the frames. A noise mask on the input latent is ignored. The `report` output can be shown with any text
display node.
"""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": link_input("MODEL", "A text-to-video or image-to-video model (eps, v or flow prediction)."),
            "positive": link_input("CONDITIONING", "Positive conditioning (with the image, for image-to-video); "
                                                   "used for every clip."),
            "negative": link_input("CONDITIONING", "Negative conditioning."),
            "latent": link_input("LATENT", "An empty latent of ONE clip: its shape is the clip's shape (e.g. "
                                           "Empty Latent for 16 AnimateDiff frames, or a Wan video latent)."),
            "num_clips": int_input(4, 1, 256, "K: number of clips in the long animation."),
            "steps": int_input(25, 1, 1000, "Sampling steps T of every clip."),
            "cfg": float_input(7.0, 0.0, 100.0, "Classifier-free guidance scale.", step=0.1),
            "scheduler": (basics.scheduler_names(), {"tooltip": "Noise schedule of the sampler (the "
                                                                         "step rule is DDIM/Euler)."}),
            "gamma": float_input(ph.DEFAULT_GAMMA, 0.0, 1.0, "Share of the steps clips 2..K copy from clip 1 "
                                 "(M = ceil(gamma x steps)). Paper: 0.8. Higher = more alike and faster."),
            "omega": float_input(ph.DEFAULT_OMEGA, 0.0, ph.OMEGA_MAX, "Fresh randomness added to the predicted "
                                 "noise in the re-sampled steps (Eq. 11). Paper: 0.2. Higher = clips differ more."),
            "seed": seed_input("Seed: clip k starts from KSampler noise of seed + k - 1; also seeds the reschedule."),
        }}

    def run(self, model, positive, negative, latent, num_clips, steps, cfg, scheduler, gamma, omega, seed):
        basics.check_finite(latent, "latent", self.DISPLAY_NAME)
        ph.validate_phased(num_clips, gamma, omega)
        split = ph.phased_split(int(steps), float(gamma))
        if num_clips > 1 and split >= steps:
            raise ValueError(f"gamma / steps: {self.DISPLAY_NAME} shares M = ceil(gamma x steps) = ceil({gamma} x "
                             f"{steps}) = {split} steps, all of them, so clips 2..{num_clips} would be exact copies "
                             f"of clip 1. Lower gamma below {(steps - 1) / steps:.3f} or raise steps (paper: gamma "
                             "0.8 with 25 steps), or set num_clips to 1")
        clip = basics.num_frames_of(latent["samples"], "latent")
        if num_clips * clip > MAX_FRAMES:
            raise ValueError(f"num_clips: {num_clips} clips of {clip} latent frames make {num_clips * clip} frames, "
                             f"more than {self.DISPLAY_NAME} makes ({MAX_FRAMES}); lower num_clips to at most "
                             f"{max(1, MAX_FRAMES // clip)} or use a shorter clip")
        out, stats = cp.phased_animation(model, positive, negative, latent, num_clips=num_clips, steps=steps,
                                          cfg=cfg, scheduler=scheduler, gamma=gamma, omega=omega, seed=seed)
        full = max(1, stats.get("model_calls_full", 0))
        report = (f"phased inference: {num_clips} clips of {clip} latent frames ({num_clips * clip} frames), "
                  f"{steps} steps each: {stats.get('model_calls', 0)} model calls instead of {full} "
                  f"(saved {stats.get('saved', 0)}, {100.0 * stats.get('saved', 0) / full:.0f}%); clips 2..K share "
                  f"the first M = {stats.get('split_step', 0)} of {steps} steps with clip 1")
        return (out, int(stats.get("saved", 0)), report)


NODES = [LongAnimRandomizedBlendRefineV2, LongAnimUpscaleEncode, LongAnimPhasedAnimation]
LongAnimRandomizedBlendRefine = vocabulary.alias(LongAnimRandomizedBlendRefineV2)
DEPRECATED_NODES = [LongAnimRandomizedBlendRefine]
