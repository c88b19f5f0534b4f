"""Noise travel (ZoLA section 4.4, Eq. 9) on ComfyUI's sampler objects.

Two ways in, one implementation:

* :class:`TravelKSampler` -- a SAMPLER running a ``comfy.samplers.KSAMPLER`` (output of ``LongAnimNoiseTravel``, for
  SamplerCustom / SamplerCustomAdvanced) whose ``sampler_function`` (:class:`TravelFunction`) runs
  ``noise_travel.sample_with_travel`` with the wrapped sampler's own ``sampler_function`` + ``extra_options``
  as ``inner``.
* :func:`patch_model_travel` -- a MODEL clone with a ``SAMPLER_SAMPLE`` wrapper (key ``LongAnim.noise_travel``)
  that swaps the sampler of that one call (``executor.class_obj``, the KSAMPLER plain KSampler built from
  ``sampler_name``) for a :class:`TravelKSampler` wrapping it; the rest of the wrapper chain runs unchanged.

Choices:

* Only k-diffusion samplers (objects with ``sampler_function``: every core sampler node and ``KSAMPLER``s of
  other packs) can be travelled; other ``SAMPLER`` objects are refused with an error naming the input, since
  their ``.sample()`` re-applies ``noise_scaling`` to its inputs and owns its own loop, so it cannot be run
  segment by segment without guessing its internals.
* Re-noising follows the model's forward process, read from its ``model_sampling``: models that inherit
  core's ``EPS.noise_scaling`` (eps, v-prediction, EDM, x0: sigma space) -> ``"eps"``; ``CONST`` models that
  inherit ``CONST.noise_scaling`` (rectified flow: Wan, Hunyuan, LTX, Flux) -> ``"flow"``; anything else
  (image-to-image types, Cosmos RFlow, new types with their own noising rule) is refused. Current ComfyUI's
  ``model_sampling.noise_scale`` multiplies the re-noising noise, as it multiplies the initial noise.
* Before every segment the travel pass (segment index, added to any pass already published) is written to
  ``transformer_options["LongAnim.run"]["pass"]`` so LongAnim context windows re-draw their windows for the
  repeated steps; the sampler's own per-step noise (ancestral / SDE samplers) uses a seed mixed with the
  segment index for segments after the first, so a repeated block does not replay the same ancestral noise.
* The progress callback sees a global step index and the true total of steps run
  (``noise_travel.count_model_calls``), so the bar reaches 100 % after the extra model calls.

Core hooks used: ``comfy.samplers.KSAMPLER`` (owned by :class:`TravelKSampler`, see ``basics.PackSampler``) and its
``sampler_function`` / ``extra_options`` / ``inpaint_options``; the ``SAMPLER_SAMPLE`` wrapper chain
(``comfy.patcher_extension.WrapperExecutor.new_class_executor``); ``comfy.model_sampling.EPS`` / ``CONST`` and
their ``noise_scaling`` to recognise the noising rule; ``model_sampling.noise_scale`` where the host has it.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import types
from typing import Any

import comfy.model_sampling
import comfy.patcher_extension
import comfy.samplers
import torch

from ..algorithms import context_schedule as cs
from ..algorithms import noise_travel as nt
from ..algorithms.noise import NoiseRecipe
from .basics import RUN_STATE_KEY, PackSampler, check_interrupt, frame_axis_of, set_wrapper
from .noise import model_recipe

log = logging.getLogger("LongAnim")

WRAPPER_TRAVEL = "LongAnim.noise_travel"
_SEGMENT_SEED_STREAM = 0x54524156  # "TRAV": sampler-noise seed of segment k > 0


# ---------------------------------------------------------------------------------------------- settings
def steps_in_range(num_steps: int, start: float, end: float) -> int:
    """Sampling steps ``i`` with ``start * n <= i < end * n`` (the travel range of ``noise_travel.travel_plan``)."""
    eps = 1e-9  # same guard as travel_plan
    first = max(0, math.ceil(start * num_steps - eps))
    stop = min(num_steps, math.ceil(end * num_steps - eps))
    return max(0, stop - first)


def percent_range_steps(sigmas, model_sampling, start: float, end: float) -> tuple[int, int]:
    """``(first, stop)``: the sampling steps ``first <= i < stop`` whose noise level lies in the range
    ``[start, end)`` of the noise schedule, with core's meaning of ``start_percent`` / ``end_percent``
    (``model_sampling.percent_to_sigma``, as ControlNet Apply Advanced and the hooks read them): step ``i``, which
    starts at ``sigmas[i]``, is in the range when ``percent_to_sigma(end) < sigmas[i] <= percent_to_sigma(start)``.
    The same range selects the same noise levels whatever the step count and scheduler."""
    n = int(sigmas.shape[-1]) - 1
    if n < 1 or start >= end:
        return 0, 0
    hi = float(model_sampling.percent_to_sigma(float(start)))
    lo = float(model_sampling.percent_to_sigma(float(end)))
    inside = [lo < float(sigmas[i]) <= hi for i in range(n)]
    if not any(inside):
        return 0, 0
    first = inside.index(True)
    stop = first
    while stop < n and inside[stop]:
        stop += 1
    return first, stop


@dataclasses.dataclass(frozen=True)
class TravelSettings:
    """The node inputs of noise travel; plain values only (deep-copied with the model on ComfyUI 0.3.75).

    ``jump = 0`` means automatic: ``noise_travel.default_jump(steps)`` capped to the steps in the range.
    ``start == end`` (an empty range) or ``repeats = 0`` means no travel: plain sampling. ``percent`` (the nodes'
    ``start_percent`` / ``end_percent``): the range is a range of the noise schedule (:func:`percent_range_steps`),
    turned into the steps of each run by :meth:`for_run`; ``percent = False``: a share of the run's steps
    (``start * n <= i < end * n``), how workflows saved with the retired ``start`` / ``end`` read.
    """

    jump: int = 0
    start: float = nt.DEFAULT_START
    end: float = nt.DEFAULT_END
    repeats: int = nt.DEFAULT_REPEATS
    seed: int = 0
    recipe: NoiseRecipe | None = None
    percent: bool = False

    def for_run(self, sigmas, model_sampling) -> TravelSettings:
        """These settings with the range as a share of this run's steps (``percent`` resolved against
        ``sigmas``)."""
        if not self.percent:
            return self
        n = int(sigmas.shape[-1]) - 1
        first, stop = percent_range_steps(sigmas, model_sampling, self.start, self.end)
        return dataclasses.replace(self, start=first / max(n, 1), end=stop / max(n, 1), percent=False)

    def validate(self) -> None:
        """Cheap step-independent checks; ``ValueError`` naming the input (jump, start, end, repeats, seed, recipe)."""
        nt.validate_travel(1, self.jump, self.start, self.end, self.repeats)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}")
        if self.recipe is not None:
            if not isinstance(self.recipe, NoiseRecipe):
                raise ValueError(f"recipe: expected a LONGANIM_NOISE recipe from a LongAnim noise node, got "
                                 f"{type(self.recipe).__name__}; connect e.g. LongAnim: Repeat-Mask Noise")
            self.recipe.validate()

    def jump_for(self, num_steps: int) -> int:
        """The jump length ``L`` used for ``num_steps`` (0 = no travel); raises if an explicit L does not fit."""
        self.validate()
        nt.validate_travel(num_steps, self.jump, self.start, self.end, self.repeats)
        if self.repeats == 0 or self.start == self.end:
            return 0
        in_range = steps_in_range(num_steps, self.start, self.end)
        if self.jump == 0:
            return min(nt.default_jump(num_steps), in_range)
        if self.jump > in_range:
            raise ValueError(
                f"jump must be <= the {in_range} sampling steps in the travel range [start_percent={self.start}, "
                f"end_percent={self.end}) of {num_steps} steps, got jump={self.jump}; lower jump, widen "
                "start_percent / end_percent, use more steps, or set jump = 0 (automatic)")
        return self.jump

    def plan(self, num_steps: int) -> list[nt.Segment]:
        """``noise_travel.travel_plan`` for ``num_steps`` steps (a single segment when travel is off)."""
        length = self.jump_for(num_steps)
        if length == 0:
            return [nt.Segment(0, num_steps)]
        return nt.travel_plan(num_steps, length, self.start, self.end, self.repeats)


# ---------------------------------------------------------------------------------------------- model type
def travel_parameterization(model_sampling) -> tuple[str, float]:
    """``("eps" | "flow", noise_scale)`` for a ComfyUI ``model_sampling`` object; ``ValueError`` if unsupported.

    Decided by the forward (noising) rule the model's sampling uses, not by its name: inheriting core's
    ``EPS.noise_scaling`` is sigma space, ``CONST.noise_scaling`` is rectified flow; a type that overrides
    ``noise_scaling`` or is an image-to-image type has a noising rule we do not know, so it is refused.
    """
    cls = type(model_sampling)
    names = [c.__name__ for c in cls.__mro__]
    ns = getattr(cls, "noise_scaling", None)
    eps_cls = getattr(comfy.model_sampling, "EPS", None)
    const_cls = getattr(comfy.model_sampling, "CONST", None)
    kind = None
    if not any(n.startswith("IMG_TO_IMG") for n in names):
        if const_cls is not None and isinstance(model_sampling, const_cls) and ns is const_cls.noise_scaling:
            kind = "flow"
        elif eps_cls is not None and isinstance(model_sampling, eps_cls) and ns is eps_cls.noise_scaling:
            kind = "eps"
    if kind is None:
        mixins = [n for n in names if n.isupper()] or names[:2]
        raise ValueError(
            f"model: noise travel supports epsilon / v-prediction models (SD1.5, SDXL, AnimateDiff, SVD) and "
            f"rectified-flow models (Wan, Hunyuan, LTX, Flux); this model's sampling type ({', '.join(mixins)}) "
            "noises latents by its own rule, so it cannot be re-noised correctly; remove the noise travel node")
    scale = getattr(model_sampling, "noise_scale", 1.0)
    return kind, float(scale) if scale is not None else 1.0


def model_sampling_of(model) -> Any:
    """``model_sampling`` seen from a k-diffusion model (``KSamplerX0Inpaint`` -> guider -> BaseModel)."""
    guider = getattr(model, "inner_model", None)
    base = getattr(guider, "inner_model", None)
    ms = getattr(base, "model_sampling", None)
    if ms is None:
        patcher = getattr(guider, "model_patcher", None)
        if patcher is not None and hasattr(patcher, "get_model_object"):
            ms = patcher.get_model_object(name="model_sampling")
    if ms is None:
        raise ValueError("sampler: noise travel could not find the model's sampling type (model.inner_model."
                         "inner_model.model_sampling); run it through a core guider (CFGGuider, BasicGuider) or "
                         "KSampler")
    return ms


# ---------------------------------------------------------------------------------------------- sampler
def _frame_axis(x: torch.Tensor) -> int:
    return frame_axis_of(x, "latent")


def make_noise_fn(recipe: NoiseRecipe | None, seed: int, x: torch.Tensor, scale: float = 1.0):
    """``noise_fn(jump_index, shape)`` for ``sample_with_travel``: the recipe (default i.i.d.) drawn on CPU with a
    seed derived from ``(seed, jump_index)``, moved to ``x``'s device/dtype and multiplied by ``scale``."""
    if recipe is None:
        base = nt.iid_noise_fn(seed)
        axis = None
    else:
        base = None
        axis = _frame_axis(x)

    def noise_fn(jump_index: int, shape: tuple[int, ...]) -> torch.Tensor:
        if base is not None:
            noise = base(jump_index, shape)
        else:  # same (seed, jump) -> seed rule as iid_noise_fn, so recipe "iid" == the default
            noise = recipe.draw(shape, axis, nt._jump_seed(seed, jump_index))
        noise = noise.to(device=x.device, dtype=x.dtype)
        return noise * scale if scale != 1.0 else noise

    return noise_fn


class TravelFunction:
    """k-diffusion ``sampler_function`` running ``inner_function`` with noise travel (ZoLA Eq. 9).

    Plain attributes only, so it deep-copies and can be introspected/nested like any KSAMPLER function.
    """

    def __init__(self, inner_function, inner_options: dict, settings: TravelSettings):
        self.inner_function = inner_function
        self.inner_options = dict(inner_options or {})
        self.settings = settings

    def __call__(self, model, x, sigmas, extra_args=None, callback=None, disable=None, **kwargs):
        extra_args = {} if extra_args is None else extra_args
        options = {**self.inner_options, **kwargs}
        if int(sigmas.shape[-1]) < 2:  # no step to run (e.g. a 1-entry SplitSigmas): the inner sampler decides
            return self.inner_function(model, x, sigmas, extra_args=extra_args, callback=callback, disable=disable,
                                       **options)
        ms = model_sampling_of(model)
        plan = self.settings.for_run(sigmas, ms).plan(int(sigmas.shape[-1]) - 1)
        kind, scale = travel_parameterization(ms)
        # ZoLA Eq. 9 re-noises with the initial noise's distribution: an explicit recipe, else the one the MODEL
        # carries (Apply Noise To Model), else i.i.d.
        recipe = self.settings.recipe or model_recipe(extra_args.get("model_options"))
        if recipe is not None:
            recipe.validate(num_frames=int(x.shape[_frame_axis(x)]))
        noise_fn = make_noise_fn(recipe, self.settings.seed, x, scale)

        t_opts = extra_args.setdefault("model_options", {}).setdefault("transformer_options", {})
        had_state = RUN_STATE_KEY in t_opts
        saved = t_opts.get(RUN_STATE_KEY)
        base_state = dict(saved or {})
        base_state.setdefault("seed", int(extra_args.get("seed") or 0))
        base_pass = int(base_state.get("pass", 0) or 0)
        run_seed = extra_args.get("seed")
        inner = self.inner_function
        segment = [0]

        def run_segment(m, xs, sig, extra_args=None, callback=None, disable=None, **opts):
            k = segment[0]
            segment[0] += 1
            t_opts[RUN_STATE_KEY] = {**base_state, "pass": base_pass + k}
            args = extra_args
            if k > 0 and run_seed is not None and extra_args is not None:
                args = {**extra_args, "seed": cs.mix_seed(int(run_seed), k, _SEGMENT_SEED_STREAM)}
            return inner(m, xs, sig, extra_args=args, callback=callback, disable=disable, **opts)

        if len(plan) > 1:
            log.debug("LongAnim noise travel: %d segments, %d jumps, %s steps run (%s)", len(plan),
                      nt.num_jumps(plan), nt.count_model_calls(plan), kind)
        try:
            return nt.sample_with_travel(model, x, sigmas, extra_args, callback, disable, inner=run_segment,
                                         inner_options=options, plan=plan, noise_fn=noise_fn,
                                         parameterization=kind, check_interrupt=check_interrupt)
        finally:
            if had_state:
                t_opts[RUN_STATE_KEY] = saved
            else:
                t_opts.pop(RUN_STATE_KEY, None)


class _TotalCallback:
    """ComfyUI sampler callback ``(step, x0, x, total)`` with ``total`` replaced by the steps travel runs."""

    def __init__(self, callback, total: int):
        self.callback = callback
        self.total = total

    def __call__(self, step, x0, x, total_steps, *args, **kwargs):
        return self.callback(step, x0, x, self.total, *args, **kwargs)


def check_sampler(sampler, input_name: str = "sampler") -> None:
    """``ValueError`` naming ``input_name`` unless ``sampler`` is a k-diffusion SAMPLER that travel can wrap."""
    if sampler is None or not callable(getattr(sampler, "sample", None)):
        raise ValueError(f"{input_name}: expected a SAMPLER (from KSamplerSelect or another sampler node), got "
                         f"{type(sampler).__name__}")
    if not callable(getattr(sampler, "sampler_function", None)):
        raise ValueError(
            f"{input_name}: noise travel runs a k-diffusion sampler in segments and needs its sampler_function; "
            f"the connected sampler ({type(sampler).__name__}) has none (it comes from another pack and owns its "
            "own loop). Use a ComfyUI sampler node (KSamplerSelect, SamplerEulerAncestral, SamplerDPMPP_2M_SDE, "
            "...) instead")


class TravelKSampler(PackSampler):
    """A SAMPLER that runs ``inner`` (a k-diffusion SAMPLER, e.g. a core KSAMPLER) with noise travel."""

    def __init__(self, inner, settings: TravelSettings):
        check_sampler(inner)
        settings.validate()
        self.inner = inner
        self.settings = settings
        super().__init__(TravelFunction(inner.sampler_function, getattr(inner, "extra_options", None) or {},
                                        settings),
                         extra_options={}, inpaint_options=getattr(inner, "inpaint_options", None))

    def sample(self, model_wrap, sigmas, extra_args, callback, noise, *args, **kwargs):
        if callback is not None and int(sigmas.shape[-1]) >= 2:
            ms = model_sampling_of(types.SimpleNamespace(inner_model=model_wrap))  # as KSAMPLER wraps it
            plan = self.settings.for_run(sigmas, ms).plan(int(sigmas.shape[-1]) - 1)
            total = int(math.ceil(nt.count_model_calls(plan)))
            callback = _TotalCallback(callback, total)
        return self.ksampler.sample(model_wrap, sigmas, extra_args, callback, noise, *args, **kwargs)


def travel_sampler(sampler, settings: TravelSettings, input_name: str = "sampler") -> TravelKSampler:
    """The SAMPLER for ``LongAnimNoiseTravel``: ``sampler`` run with noise travel."""
    check_sampler(sampler, input_name)
    return TravelKSampler(sampler, settings)


# ---------------------------------------------------------------------------------------------- model patch
class _TravelSamplerWrapper:
    """SAMPLER_SAMPLE wrapper: run this call's sampler (``executor.class_obj``) with noise travel."""

    def __init__(self, settings: TravelSettings):
        self.settings = settings

    def __call__(self, executor, guider, sigmas, extra_args, callback, noise, *args, **kwargs):
        sampler = executor.class_obj
        if isinstance(sampler, TravelKSampler):  # a LongAnimNoiseTravel sampler already travels: not twice
            log.info("LongAnim: the sampler already runs noise travel; the MODEL's noise travel is skipped")
            return executor(guider, sigmas, extra_args, callback, noise, *args, **kwargs)
        try:
            check_sampler(sampler, "model")
        except ValueError as e:
            raise ValueError(f"{e} (LongAnim: Noise Travel (model) on this MODEL)") from None
        travel = TravelKSampler(sampler, self.settings)
        wrappers = getattr(executor, "wrappers", None)
        idx = getattr(executor, "idx", None)
        if wrappers is not None and isinstance(idx, int):
            nxt = comfy.patcher_extension.WrapperExecutor.new_class_executor(original=travel.sample, class_obj=travel,
                                                                             wrappers=wrappers, idx=idx + 1)
            return nxt.execute(guider, sigmas, extra_args, callback, noise, *args, **kwargs)
        log.warning("LongAnim: unknown wrapper executor; noise travel calls the sampler directly")  # pragma: no cover
        return travel.sample(guider, sigmas, extra_args, callback, noise, *args, **kwargs)  # pragma: no cover


def patch_model_travel(model, settings: TravelSettings):
    """Clone ``model`` so that its plain KSampler / KSamplerAdvanced sampling runs with noise travel."""
    settings.validate()
    m = model.clone()
    set_wrapper(m, comfy.patcher_extension.WrappersMP.SAMPLER_SAMPLE, WRAPPER_TRAVEL, _TravelSamplerWrapper(settings))
    return m

