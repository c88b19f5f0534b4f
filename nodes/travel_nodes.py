"""Noise-travel nodes: ZoLA section 4.4, Eq. 9, as a SAMPLER and as a MODEL patch.

Noise travel denoises a block of ``jump`` early steps, re-noises the result back to the noise level the block
started from and denoises the block again, so overlapping context windows get a second chance to agree. The
algorithm is ``nodes/algorithms/noise_travel.py``; the ComfyUI side is ``nodes/comfy/travel.py``.
"""
from __future__ import annotations

from . import vocabulary
from .base import LongAnimNode, float_input, int_input, link_input, outputs, seed_input
from .comfy import basics
from .comfy import travel as ct

CATEGORY = "LongAnim/noise travel"

JUMP_TIP = ("Jump length L: sampling steps per travelled block (denoise L steps, re-noise back, denoise them "
            "again). 0 = automatic: 10 % of the steps (at least 1), capped to the travel range. Must fit in the "
            "travel range.")
START_TIP = ("Start of the travel range on the noise schedule, as core's start_percent (ControlNet Apply Advanced, "
             "hooks): 0 = the noisiest level, 1 = clean. A step travels when its noise level lies in the range, so "
             "the range means the same noise levels whatever the step count and scheduler.")
END_TIP = ("End of the travel range on the noise schedule (exclusive), as core's end_percent. ZoLA travels only "
           "the early, high-noise steps: 0.3 = the first 30 % of the schedule (with the normal or simple "
           "scheduler about the first 30 % of the steps; Karras spends more steps at low noise, so fewer). "
           "start_percent = end_percent disables travel.")
REPEATS_TIP = ("How often each block is re-noised and denoised again. 1 = the paper's single second chance. "
               "Extra model calls = blocks x L x repeats. 0 disables travel.")
SEED_TIP = "Seed of the re-noising noise (each jump draws its own noise from this seed and the jump number)."
RECIPE_TIP = ("Optional noise recipe for the re-noising noise. Empty: the recipe the MODEL carries from LongAnim: "
              "Apply Noise To Model, else i.i.d. Gaussian. The paper re-noises with the same recipe as the initial "
              "noise (e.g. Repeat-Mask Noise, Eq. 8): with SamplerCustomAdvanced and a LongAnim NOISE, connect its "
              "recipe here.")


DOC_COMMON = """## What it does (ZoLA section 4.4, Eq. 9, Fig. 3)

With overlapping context windows, neighbouring windows pull a shared frame toward different results, mostly in the
first, high-noise steps where layout and motion are decided. Noise travel runs a block of `jump` = L steps, re-noises
the result back to the noise level where the block started and runs the block again, so the second pass starts from
a state in which the windows have already seen each other's result. Eq. 9 is written for a DDPM schedule,
`v_t = sqrt(prod alpha) v_(t-L) + sqrt(1 - prod alpha) eps`; the pack uses the same forward transition in the
sampler's space: `x += sqrt(sigma_hi^2 - sigma_lo^2) eps` for epsilon / v-prediction models (SD1.5, SDXL,
AnimateDiff, SVD) and `x = c x + sqrt(sigma_hi^2 - (c sigma_lo)^2) eps`, `c = (1 - sigma_hi) / (1 - sigma_lo)` for
rectified-flow models (Wan, Hunyuan, LTX, Flux). Other model types are refused with an error.

## Plan and cost

The travel range is a range of the noise schedule, as core's `start_percent` / `end_percent`: step `i` (which
starts at noise level `sigma_i`) travels when
`percent_to_sigma(end_percent) < sigma_i <= percent_to_sigma(start_percent)`, so a range means the same noise
levels whatever the step count and scheduler (with the normal / simple schedulers about the same share of the
steps; Karras spends more steps at low noise). Blocks of L steps are laid from its first
step; a block travels only if it fits in the range, and is repeated `repeats` times. Model calls = steps + blocks x
L x repeats for one-call samplers (euler, euler_ancestral, dpmpp_2m, ...; two-call samplers such as heun count
twice). Example: 30 normal-schedule steps with the defaults (L = 3, range [0, 0.3) = steps 0-8, 3 blocks) = 30 + 9
= 39 calls. The progress bar counts every call. `jump = 0` picks L = max(1, round(0.1 x steps)), capped to the range;
an explicit L larger than the steps in the range is an error (sampling does not start). `start_percent =
end_percent` or `repeats = 0` turns travel off: the result is then bit-identical to the plain sampler. Workflows
saved with the retired ids (`LongAnimNoiseTravel`, `LongAnimNoiseTravelModel`: `start` / `end`) keep their meaning,
a share of the steps: `start * steps <= i < end * steps`.

## Typical values

- `start_percent = 0`, `end_percent = 0.2-0.4`, `jump = 0` (auto) or 2-5 for 20-50 steps, `repeats = 1` (the paper's
  single second chance; 2-3 for hard scenes at proportional cost).
- `recipe`: the paper re-noises with the same structured noise as the initial noise (ZoLA Eq. 8): connect the
  `recipe` output of the noise node you sample with (e.g. Repeat-Mask Noise, ratio 0.5). Empty = the recipe of
  LongAnim: Apply Noise To Model on the same MODEL, else i.i.d. noise.
  Each jump draws its own noise from `seed` and the jump number.

## Combining

- With LongAnim context windows (ZoLA / Gen-L / Context Windows nodes) every travel pass publishes its number to the
  window loop, so the repeated steps see freshly drawn windows (other offsets and skips): this is what makes travel
  useful. Without windows it still works (plain re-noise / re-denoise), with less benefit.
- Multistep samplers (dpmpp_2m, deis, ipndm, uni_pc, ...) restart their history after each jump (the first step of a
  segment is first-order), which is correct because the re-noised state is off the old trajectory. Ancestral / SDE
  samplers use a different seed for their per-step noise after each jump, so a repeated block does not replay the
  same noise.
- Only ComfyUI's k-diffusion samplers (KSamplerSelect, SamplerEulerAncestral, SamplerDPMPP_2M_SDE, ... and other
  packs' KSAMPLER objects) can be travelled; a SAMPLER without a `sampler_function` (another pack's own loop) is
  refused with an error naming the input.
"""


def _travel_inputs() -> dict:
    return {
        "jump": int_input(0, 0, 10000, JUMP_TIP),
        "start_percent": float_input(0.0, 0.0, 1.0, START_TIP),
        "end_percent": float_input(0.3, 0.0, 1.0, END_TIP),
        "repeats": int_input(1, 0, 100, REPEATS_TIP),
        "seed": seed_input(SEED_TIP),
    }


def _settings(jump, start, end, repeats, seed, recipe, range_in_steps=False) -> ct.TravelSettings:
    """``range_in_steps``: the range is a share of the run's steps (workflows saved with the retired ids'
    ``start`` / ``end``); else a range of the noise schedule, core's ``start_percent`` / ``end_percent``."""
    settings = ct.TravelSettings(jump=jump, start=float(start), end=float(end), repeats=repeats, seed=seed,
                                  recipe=recipe, percent=not range_in_steps)
    settings.validate()
    return settings


class LongAnimNoiseTravelV2(LongAnimNode):
    NODE_ID = "LongAnimNoiseTravelV2"
    PATCH_ROLE = "noise travel"
    DISPLAY_NAME = "LongAnim: Noise Travel (sampler)"
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "ZoLA noise travel (section 4.4, Eq. 9): during the early steps, denoise a block of L steps, re-noise the "
        "result back to the block's starting noise level and denoise the block again. With LongAnim context "
        "windows the repeated steps see freshly drawn windows, so seams and conflicts between windows are "
        "resolved. Wraps any ComfyUI sampler for SamplerCustom / SamplerCustomAdvanced. Cost: the extra model "
        "calls (about +30 % with the defaults). Multistep samplers restart their history at each jump."
    )
    DOC_EXTRA = DOC_COMMON + """
Workflow: KSamplerSelect -> **Noise Travel (sampler)** -> SamplerCustomAdvanced `sampler`; the model (with LongAnim
windows) goes to the guider as usual. For plain KSampler use **Noise Travel (model)** instead.
"""
    RETURN_TYPES, RETURN_NAMES, OUTPUT_TOOLTIPS = outputs(
        ("SAMPLER", "sampler", "The sampler with noise travel; connect it to SamplerCustomAdvanced's sampler input."))

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "sampler": link_input("SAMPLER", "The sampler to run with noise travel (KSamplerSelect or any "
                                             "ComfyUI sampler node): euler, dpmpp_2m, ..."),
            **_travel_inputs(),
        }, "optional": {
            "recipe": link_input("LONGANIM_NOISE", RECIPE_TIP),
        }}

    def run(self, sampler, jump, start_percent, end_percent, repeats, seed, recipe=None, range_in_steps=False):
        ct.check_sampler(sampler, "sampler")
        if isinstance(sampler, ct.TravelKSampler):
            raise ValueError(f"sampler: it already runs noise travel (from {self.DISPLAY_NAME}); a second "
                             f"{self.DISPLAY_NAME} would travel inside each travelled block. Remove one of the "
                             "two nodes, or set jump / repeats on the one you keep")
        settings = _settings(jump, start_percent, end_percent, repeats, seed, recipe, range_in_steps)
        return (ct.travel_sampler(sampler, settings),)


class LongAnimNoiseTravelModelV2(LongAnimNode):
    NODE_ID = "LongAnimNoiseTravelModelV2"
    PATCH_ROLE = "noise travel"
    DISPLAY_NAME = "LongAnim: Noise Travel (model)"
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "ZoLA noise travel (section 4.4, Eq. 9) for plain KSampler / KSamplerAdvanced: returns a MODEL whose "
        "sampling runs the chosen sampler_name with noise travel (re-noise and re-denoise blocks of L early "
        "steps). Only the returned MODEL is affected. The range is a range of noise levels (core's "
        "start_percent / end_percent), so with several KSamplerAdvanced passes each pass travels the steps of the "
        "range it runs."
    )
    DOC_EXTRA = DOC_COMMON + """
Workflow: model loader -> LongAnim windows -> **Noise Travel (model)** -> KSampler / KSamplerAdvanced; the sampler
chosen by `sampler_name` runs with travel. Only the returned MODEL is affected. The range is a range of noise
levels, so with several KSamplerAdvanced passes (a step slice each) a pass travels the steps of the range it runs;
the high-noise pass usually holds them all. If the sampler is already a Noise Travel (sampler), the MODEL's travel
is skipped for that run (no double travel).
"""
    RETURN_TYPES, RETURN_NAMES, OUTPUT_TOOLTIPS = outputs(
        ("MODEL", "model", "The model whose KSampler runs use noise travel."))

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": link_input("MODEL", "The model to sample with (it is cloned, not changed). Put LongAnim "
                                         "context windows on it before or after, as you like."),
            **_travel_inputs(),
        }, "optional": {
            "recipe": link_input("LONGANIM_NOISE", RECIPE_TIP),
        }}

    def run(self, model, jump, start_percent, end_percent, repeats, seed, recipe=None, range_in_steps=False):
        if not hasattr(model, "clone") or not hasattr(model, "model_options"):
            raise ValueError(f"model: expected a MODEL (from a model loader), got {type(model).__name__}")
        basics.claim_patch(model, self.PATCH_ROLE, self.DISPLAY_NAME)
        settings = _settings(jump, start_percent, end_percent, repeats, seed, recipe, range_in_steps)
        return (basics.mark_patch(ct.patch_model_travel(model, settings), self.PATCH_ROLE, self.DISPLAY_NAME),)


NODES = [LongAnimNoiseTravelV2, LongAnimNoiseTravelModelV2]


def _steps_share(kwargs: dict) -> dict:
    """A workflow saved with the retired ids holds ``start`` / ``end`` as a share of the sampler's steps: keep
    them selecting the same steps."""
    return {**kwargs, "range_in_steps": True}


NOTE = "Its start / end are a share of the steps; the new node's start_percent / end_percent are noise levels."
OLD_RANGE = {  # the retired inputs as they were: a share of the steps
    "start": float_input(0.0, 0.0, 1.0, "Start of the travel range, as a fraction of the sampling steps (0 = the "
                         "first, noisiest step)."),
    "end": float_input(0.3, 0.0, 1.0, "End of the travel range (exclusive), as a fraction of the steps. ZoLA "
                       "travels only early steps: 0.3 = the first 30 %. start = end disables travel."),
}
LongAnimNoiseTravel = vocabulary.alias(LongAnimNoiseTravelV2, convert=_steps_share, note=NOTE, old_inputs=OLD_RANGE)
LongAnimNoiseTravelModel = vocabulary.alias(LongAnimNoiseTravelModelV2, convert=_steps_share, note=NOTE,
                                            old_inputs=OLD_RANGE)
DEPRECATED_NODES = [LongAnimNoiseTravel, LongAnimNoiseTravelModel]
