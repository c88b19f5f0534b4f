"""Shared basics of the ComfyUI boundary: cancel, progress, the latent's frame axis, the run state, model family.

Owns:
- :func:`check_interrupt` (the injected ``check_interrupt`` of every pure loop) and the progress bar / KSampler-style
  progress callback (with latent preview) every LongAnim sampling entry point reports through;
- :func:`frame_axis_of`: frames are the batch (axis 0) for SD/AnimateDiff latents ``[T, C, H, W]`` and axis 2 for
  video latents ``[B, C, T, H, W]``;
- the per-run state the pack's wrappers publish to its window loop (``transformer_options["LongAnim.run"]``);
- model-family detection (UNet with frames in the batch, Wan video DiT), the family's temporal compression, the
  check that a latent's layout fits the model, and percent -> sigma of the model's schedule.

Core hooks used: ``comfy.model_management.throw_exception_if_processing_interrupted``, ``comfy.utils.ProgressBar``
and ``PROGRESS_BAR_ENABLED``, ``latent_preview.prepare_callback``, ``ModelPatcher.get_model_object`` and
``model_sampling.percent_to_sigma``; ``BaseModel.latent_format`` (``latent_channels``,
``temporal_downscale_ratio`` where the host has it); the model classes ``UNetModel`` and ``WanModel`` for family
detection.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import comfy.model_management
import comfy.patcher_extension
import comfy.samplers
import comfy.utils
import torch

log = logging.getLogger("LongAnim")

RUN_STATE_KEY = "LongAnim.run"  # transformer_options key holding {"seed": int, "pass": int}

try:  # the canvas preview + progress bar KSampler uses (top-level ComfyUI module)
    import latent_preview as _latent_preview
except ImportError:  # pragma: no cover - outside a ComfyUI process
    _latent_preview = None

try:  # feature detection of the model classes (both exist in 0.3.75 and current ComfyUI)
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel as _UNetModel
except ImportError:  # pragma: no cover - layout drift
    _UNetModel = None
try:
    from comfy.ldm.wan.model import WanModel as _WanModel
except ImportError:  # pragma: no cover - very old hosts
    _WanModel = None
try:
    from comfy.ldm.lightricks.model import LTXVModel as _LTXVModel
except ImportError:  # pragma: no cover - old hosts
    _LTXVModel = None
try:
    from comfy.ldm.hunyuan_video.model import HunyuanVideo as _HunyuanVideo
except ImportError:  # pragma: no cover - old hosts
    _HunyuanVideo = None


# ---------------------------------------------------------------------------------------------- cancel, progress
def check_interrupt() -> None:
    """Raise ComfyUI's interrupt exception if the user pressed Cancel."""
    comfy.model_management.throw_exception_if_processing_interrupted()


class Progress:
    """A ComfyUI progress bar (node-level, shown on the canvas)."""

    def __init__(self, total: int):
        self.bar = comfy.utils.ProgressBar(total=max(1, int(total)))

    def __call__(self, done: int, total: int | None = None) -> None:
        self.bar.update_absolute(value=done, total=total)


def progress_callback(model, total: int) -> Callable:
    """KSampler-style ``callback(step, x0, x, total_steps)``: canvas progress (+ latent preview) out of ``total``.

    ``total`` replaces the sampler's ``total_steps`` so that several sampler runs (naive chunks) or extra model
    calls (phased clips) fill one bar.
    """
    if _latent_preview is not None:
        try:
            inner = _latent_preview.prepare_callback(model=model, steps=total)
        except Exception:  # pragma: no cover - previewer unavailable (odd latent formats)
            inner = None
        if inner is not None:
            return lambda step, x0, x, _total: inner(min(step, total - 1), x0, x, total)
    bar = Progress(total)
    return lambda step, x0, x, _total: bar(min(step + 1, total), total)


def pbar_disabled() -> bool:
    """Whether ComfyUI runs without console progress bars (``--disable-progress-bars`` style flag)."""
    return not getattr(comfy.utils, "PROGRESS_BAR_ENABLED", True)


# ---------------------------------------------------------------------------------------------- wrappers
def set_wrapper(model, wrapper_type: str, key: str, wrapper) -> None:
    """Install ``wrapper`` under ``key`` on ``model`` (a fresh clone), replacing one already there under that key.

    ``wrapper_type`` is a ``comfy.patcher_extension.WrappersMP`` member; keys are namespaced ``LongAnim.*``.
    """
    model.remove_wrappers_with_key(wrapper_type=wrapper_type, key=key)
    model.add_wrapper_with_key(wrapper_type=wrapper_type, key=key, wrapper=wrapper)


# ---------------------------------------------------------------------------------------------- one patch per role
PATCHES_KEY = "LongAnim.patches"  # model_options key: role -> display name of the LongAnim node that installed it

# Roles a second node may add to rather than replace (Window LoRA: each node adds one adapter on its own ranges).
STACKING_ROLES = ("window LoRA",)


def claim_patch(model, role: str, node: str) -> None:
    """Refuse a second LongAnim node of one role on a MODEL, naming both nodes.

    Each role (context windows, frame attention, attention expansion, initial noise, noise travel) is one slot on
    the model: a second node of the role would silently replace the first one's settings, so the run would ignore a
    node the user can see on the canvas. Call before patching; :func:`mark_patch` records the role on the clone.
    """
    owner = (getattr(model, "model_options", None) or {}).get(PATCHES_KEY, {}).get(role)
    if owner is not None and role not in STACKING_ROLES:
        raise ValueError(f"model: this MODEL already went through {owner}; {node} after it would silently replace "
                         f"its {role} (one {role} per MODEL). Remove one of the two nodes, or to compare their "
                         "settings connect each to its own branch from the model loader")


def mark_patch(model, role: str, node: str):
    """Record on ``model`` (a fresh clone) that ``node`` installed its ``role``, and install the pack's input checks
    (:class:`_InputCheckWrapper`) on it; returns ``model``."""
    model.model_options[PATCHES_KEY] = {**model.model_options.get(PATCHES_KEY, {}), role: node}
    set_wrapper(model, comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, WRAPPER_INPUT_CHECKS, _InputCheckWrapper())
    return model


WRAPPER_INPUT_CHECKS = "LongAnim.input_checks"


class _InputCheckWrapper:
    """OUTER_SAMPLE wrapper on every MODEL a LongAnim node patched: before core processes the latent, refuse one
    whose layout the model cannot take (:func:`check_latent_fits_model`: e.g. a Wan video latent into an SD1.5 UNet
    with a frame-attention patch, which core would fail on deep in a convolution) or that holds NaN / inf."""

    def __call__(self, executor, noise, latent_image, *args, **kwargs):
        patcher = getattr(getattr(executor, "class_obj", None), "model_patcher", None)
        if patcher is not None:
            check_latent_fits_model(patcher, latent_image)
        check_finite_latent(latent_image)
        return executor(noise, latent_image, *args, **kwargs)


def check_frames_for_windows(samples) -> None:
    """Refuse a batch of one-frame videos ``[B > 1, C, 1, H, W]`` for context windows, which run over the frame axis
    and would do nothing. ComfyUI makes one from an image-batch latent (Empty Latent Image, batch_size = frames) for a
    video model (``fix_empty_latent_channels`` adds a frame axis of length 1)."""
    if isinstance(samples, torch.Tensor) and samples.ndim == 5 and samples.shape[2] == 1 and samples.shape[0] > 1:
        raise ValueError(f"latent_image: {list(samples.shape)} is {samples.shape[0]} one-frame videos (an image-batch "
                         "latent such as Empty Latent Image with batch_size = frames, which ComfyUI turns into "
                         "one-frame videos for a video model); LongAnim windows run over the frames of one video and "
                         "would do nothing. Make the latent with the model family's video latent node (e.g. "
                         "EmptyHunyuanLatentVideo for Wan, length = frames)")


# ---------------------------------------------------------------------------------------------- samplers
class PackSampler(comfy.samplers.Sampler):
    """A SAMPLER of the pack running a k-diffusion ``sampler_function`` through a core ``KSAMPLER`` it owns.

    Composition, not a ``KSAMPLER`` subclass: ``KSAMPLER.sample`` is the host's implementation of noise scaling,
    inpainting and callback plumbing, which changes between versions; the pack builds one by keyword
    (``sampler_function``, ``extra_options``, ``inpaint_options``: checked by ``manifest.py``) and hands its
    ``sample`` the arguments core passed in, in core's SAMPLER order (``model_wrap, sigmas, extra_args, callback,
    noise, latent_image, denoise_mask, disable_pbar``, also checked). Subclassing ``comfy.samplers.Sampler`` is
    safe: it has no constructor and one method to override (``sample``); it keeps ``isinstance(x, Sampler)`` true
    for other packs. ``sampler_function`` / ``extra_options`` / ``inpaint_options`` read through, so code that
    unwraps a k-diffusion SAMPLER (noise travel of a travelled sampler) sees the KSAMPLER's.
    """

    def __init__(self, sampler_function, extra_options: dict | None = None, inpaint_options: dict | None = None):
        self.ksampler = comfy.samplers.KSAMPLER(sampler_function=sampler_function,
                                                extra_options=dict(extra_options or {}),
                                                inpaint_options=dict(inpaint_options or {}))

    @property
    def sampler_function(self):
        return self.ksampler.sampler_function

    @property
    def extra_options(self) -> dict:
        return self.ksampler.extra_options

    @property
    def inpaint_options(self) -> dict:
        return self.ksampler.inpaint_options

    def sample(self, *args, **kwargs):
        return self.ksampler.sample(*args, **kwargs)


# ---------------------------------------------------------------------------------------------- host choices
def sampler_names() -> list[str]:
    """The host's sampler names, KSampler's ``sampler_name`` choices (they differ between ComfyUI versions)."""
    return comfy.samplers.KSampler.SAMPLERS


def scheduler_names() -> list[str]:
    """The host's scheduler names, KSampler's ``scheduler`` choices (they differ between ComfyUI versions)."""
    return comfy.samplers.KSampler.SCHEDULERS


# ---------------------------------------------------------------------------------------------- latents
def frame_axis_of(samples: torch.Tensor, input_name: str = "latent") -> int:
    """Frame axis of a ComfyUI latent: 0 for SD/AnimateDiff ``[T, C, H, W]``, 2 for video ``[B, C, T, H, W]``."""
    if samples.ndim == 4:
        return 0
    if samples.ndim == 5:
        return 2
    raise ValueError(f"{input_name}: expected a video latent [frames, C, H, W] (SD/AnimateDiff) or "
                     f"[B, C, frames, H, W] (Wan and other video models), got shape {list(samples.shape)}")


def num_frames_of(samples: torch.Tensor, input_name: str = "latent") -> int:
    return int(samples.shape[frame_axis_of(samples, input_name)])


def check_finite_latent(latent_image) -> None:
    """A latent with NaN/inf would silently give an all-NaN video: refuse it before sampling."""
    check_finite(latent_image, "latent_image", "the LongAnim-patched sampler")


def check_finite(value, input_name: str, node: str) -> None:
    """Refuse a LATENT (dict or tensor) or IMAGE holding NaN or infinite values, naming ``node`` and ``input_name``.

    The one finite check of the pack: every node that reads a latent or an image calls it first, and the sampler
    wrappers before sampling. A non-finite value would otherwise give an all-NaN video or fail deep in torch (an
    eigen-decomposition, a convolution) with a message that names nothing the user can act on. ComfyUI's own bounds
    checks let JSON ``NaN`` through (e.g. Latent Multiply by NaN), and fp16 VAE decodes can overflow to inf.
    """
    t = value.get("samples") if isinstance(value, dict) else value
    if not (isinstance(t, torch.Tensor) and t.is_floating_point()) or bool(torch.isfinite(t).all()):
        return
    nan = int(torch.isnan(t).sum())
    inf = int(torch.isinf(t).sum())
    kind = "image" if input_name.startswith("image") else "latent"
    raise ValueError(f"{input_name}: {node} got a {kind} with {nan} NaN and {inf} infinite values (of {t.numel()}); "
                     f"check the node that made it (e.g. a Latent Multiply by NaN, an fp16 VAE decode that "
                     f"overflowed) and feed a finite {kind}")


def run_state(model_options: dict) -> dict[str, Any]:
    """Per-run state the pack's wrappers publish to its window loop (seed, noise-travel pass)."""
    return model_options.get("transformer_options", {}).get(RUN_STATE_KEY, {"seed": 0, "pass": 0})


# ---------------------------------------------------------------------------------------------- model family
def _diffusion_model(model) -> Any:
    return getattr(getattr(model, "model", None), "diffusion_model", None)


def model_family(model) -> str:
    """``"unet"`` (SD1.5/SDXL-style UNet, frames in the batch), ``"wan"`` (Wan 2.x DiT) or ``"other"``."""
    dm = _diffusion_model(model)
    if _UNetModel is not None and isinstance(dm, _UNetModel):
        return "unet"
    if _WanModel is not None and isinstance(dm, _WanModel):
        return "wan"
    name = type(dm).__name__
    if name == "UNetModel":
        return "unet"
    if name.startswith("Wan") or "wan" in type(dm).__module__.split("."):
        return "wan"
    return "other"


def family_label(model) -> str:
    """Human-readable name of the model family, e.g. ``WAN21 (WanModel)``."""
    base = type(getattr(model, "model", None)).__name__
    return f"{base} ({type(_diffusion_model(model)).__name__})"


def require_unet(model, node: str) -> None:
    """Frame-in-batch attention patches work on UNet models only; refuse others with a clear message."""
    family = model_family(model)
    if family == "unet":
        return
    hint = ("use LongAnim: Attention Expansion (ZoLA) for Wan models" if family == "wan"
            else "it needs an SD1.5/SDXL-style UNet whose latent holds the frames in the batch")
    raise ValueError(f"model: {node} supports SD1.5/SDXL UNet models (frames in the batch), got "
                     f"{family_label(model)}; {hint}")


def video_dit_family(model) -> str | None:
    """``"wan"``, ``"ltxv"`` or ``"hunyuan"``: the video DiTs whose self-attention LongAnim's attention expansion
    lays out (``dit_attention.py``); None for anything else (LTX-2's audio-video model and HunyuanVideo's 2-D
    image variant hold no single video token grid)."""
    if model_family(model) == "wan":
        return "wan"
    dm = _diffusion_model(model)
    name = type(dm).__name__
    if (_LTXVModel is not None and type(dm) is _LTXVModel) or name == "LTXVModel":
        return "ltxv"
    if ((_HunyuanVideo is not None and isinstance(dm, _HunyuanVideo)) or name == "HunyuanVideo") and \
            len(getattr(dm, "patch_size", ())) == 3:
        return "hunyuan"
    return None


def require_video_dit(model, node: str) -> None:
    """Attention expansion works on the video DiTs of :func:`video_dit_family`; refuse UNets (and unknown
    families) clearly."""
    if video_dit_family(model) is not None:
        return
    if model_family(model) == "unet":
        raise ValueError(f"model: {node} is for native video models (Wan, LTX-Video, HunyuanVideo) that attend "
                         f"over all frames at once, got the UNet {family_label(model)}, whose frames never attend "
                         "to each other; use LongAnim: Temporal Momentum Attention or Cross-Frame Attention "
                         "instead")
    raise ValueError(f"model: {node} supports the video models Wan 2.1/2.2, LTX-Video and HunyuanVideo, got "
                     f"{family_label(model)}")


# latent-format class -> video frames per latent frame, for hosts whose latent formats lack
# ``temporal_downscale_ratio`` (0.3.75); causal video VAEs: latent frame 0 holds one video frame, the others r
_TEMPORAL_RATIO = {"Wan21": 4, "Wan22": 4, "HunyuanVideo": 4, "HunyuanVideo15": 4, "LTXV": 8, "Mochi": 6,
                   "Cosmos1CV8x8x8": 8}


def _video_format(model) -> bool:
    """Whether the model's latent format holds frames on a time axis (core's ``latent_dimensions = 3``)."""
    fmt = getattr(getattr(model, "model", None), "latent_format", None)
    return getattr(fmt, "latent_dimensions", 2) == 3


def temporal_compression(model, node: str = "This node") -> int:
    """Video frames per latent frame of the model's latent format (Wan / HunyuanVideo 4, LTX-Video 8); 1 for image
    models (SD/AnimateDiff hold one video frame per latent in the batch). A video latent format (core's
    ``latent_dimensions = 3``) whose ratio is unknown is refused, naming ``node`` and the unit: taking it as 1
    would read lengths typed in video frames as latent frames, windows r times too long."""
    fmt = getattr(getattr(model, "model", None), "latent_format", None)
    ratio = getattr(fmt, "temporal_downscale_ratio", None)
    if isinstance(ratio, int) and ratio >= 1:
        return ratio
    known = _TEMPORAL_RATIO.get(type(fmt).__name__)
    if known is not None:
        return known
    if _video_format(model):
        raise ValueError(f"frame_unit: {node} cannot convert video frames for {family_label(model)}: its latent "
                         f"format {type(fmt).__name__} does not say how many video frames one latent frame holds; "
                         "set frame_unit = latent frames and type the lengths in latent frames (the latent's "
                         "frame count)")
    return 1


def check_latent_fits_model(model, samples) -> None:
    """Refuse a latent whose layout the model cannot take, naming the mismatch and the fix (core would fail deep in
    a convolution): a video latent ``[B, C, T, H, W]`` into an image UNet, an image-batch latent into a video DiT, or
    a channel count other than the model's latent format's."""
    if not isinstance(samples, torch.Tensor):
        return
    family, label = model_family(model), family_label(model)
    video = family == "wan" or _video_format(model) or temporal_compression(model) > 1
    if family == "unet" and samples.ndim == 5:
        raise ValueError(f"latent_image: a video latent {list(samples.shape)} ([B, C, frames, H, W], e.g. from a "
                         f"Wan/LTXV/Hunyuan latent node) cannot go into the image model {label}, which takes frames "
                         "in the batch [frames, C, H, W]; use Empty Latent Image with batch_size = frames, or load "
                         "the video model the latent was made for")
    if video and samples.ndim == 4:
        raise ValueError(f"latent_image: an image-batch latent {list(samples.shape)} ([frames, C, H, W]) cannot go "
                         f"into the video model {label}, which takes [B, C, frames, H, W]; make the latent with the "
                         "family's own latent node (e.g. EmptyHunyuanLatentVideo for Wan/Hunyuan, "
                         "EmptyLTXVLatentVideo for LTX-Video)")
    fmt = getattr(getattr(model, "model", None), "latent_format", None)
    channels = getattr(fmt, "latent_channels", None)
    if isinstance(channels, int) and samples.ndim in (4, 5) and samples.shape[1] != channels:
        raise ValueError(f"latent_image: it has {samples.shape[1]} channels but {label} takes {channels}-channel "
                         f"latents ({type(fmt).__name__}); make the latent with the node of this model's family "
                         "(e.g. Wan 2.2 5B takes 48 channels from Wan22ImageToVideoLatent, Wan 2.1/2.2 14B 16)")


def sigma_range(model, start_percent: float, end_percent: float) -> tuple[float, float]:
    """(sigma_high, sigma_low) of a [start_percent, end_percent] range of the sampling schedule."""
    for name, value in (("start_percent", start_percent), ("end_percent", end_percent)):
        if not 0.0 <= float(value) <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {value}")
    if start_percent > end_percent:
        raise ValueError(f"start_percent ({start_percent}) must be <= end_percent ({end_percent}); the patch is "
                         "active from start_percent (early, noisy steps) to end_percent (late steps)")
    ms = model.get_model_object(name="model_sampling")
    return (float(ms.percent_to_sigma(percent=float(start_percent))),
            float(ms.percent_to_sigma(percent=float(end_percent))))

