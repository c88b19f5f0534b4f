"""Every ComfyUI symbol the pack touches, what it relies on about each, and a check against the running host.

The boundary calls core functions by keyword, subclasses only core's documented base types, and reads attributes and
``transformer_options`` keys core sets. Each of those facts is one :class:`Core` entry below: the parameters the pack
passes by name (``params``), the leading positional parameters core itself uses to call the pack back (``order``:
wrapper and SAMPLER call conventions, the executor argument order), the attributes it reads or writes (``attrs``),
the strings core's code must still contain (``keys``: dict keys such as ``transformer_options["sample_sigmas"]``),
and, for an ABC the pack subclasses, that no abstract method exists beyond those it implements.

:func:`check` resolves every entry on the host that is running and returns one line per mismatch, e.g.
``comfy.samplers.calculate_sigmas: no parameter 'scheduler_name' (host: (model_sampling, scheduler, steps))``.
``tests/comfy/test_core_manifest.py`` runs it on the test host, shows that a changed signature is named, and checks
the list is complete (every ``comfy.*`` name used in ``nodes/comfy/*.py`` is an entry). Run it by hand against
another ComfyUI with ``python -c "from <pack>.nodes.comfy import manifest; print(*manifest.check(), sep='\\n')"``
from a process that has that ComfyUI on ``sys.path``.

Core hooks used: none at import time; :func:`check` imports the listed modules.
"""
from __future__ import annotations

import importlib
import inspect
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Core:
    """One core symbol (``module`` + attribute path ``name``) and what the pack relies on about it."""

    module: str
    name: str
    use: str  # how the pack uses it: call / construct / subclass / read / wrapper order
    params: tuple[str, ...] = ()  # parameters the pack passes by keyword
    order: tuple[str, ...] = ()  # leading positional parameters (self excluded) core calls the pack's code with
    attrs: tuple[str, ...] = ()  # attributes read or written (class attribute, or assigned in the class's source)
    keys: tuple[str, ...] = ()  # strings the object's source must contain (transformer_options keys)
    abstract: bool = False  # an ABC the pack subclasses: its abstract methods must all be in ``attrs``
    optional: bool = False  # feature-detected by the pack: absence is fine, a present symbol is still checked

    @property
    def path(self) -> str:
        return f"{self.module}.{self.name}"


SAMPLER_ORDER = ("model_wrap", "sigmas", "extra_args", "callback", "noise", "latent_image", "denoise_mask",
                 "disable_pbar")

MANIFEST: tuple[Core, ...] = (
    # ---------------------------------------------------------------- cancel, progress, host lists (basics.py)
    Core("comfy.model_management", "throw_exception_if_processing_interrupted", "call, no arguments"),
    Core("comfy.model_management", "get_total_memory", "call: device memory for the automatic window batch",
         params=("dev",)),
    Core("comfy.model_management", "intermediate_device", "call, no arguments"),
    Core("comfy.utils", "ProgressBar", "construct", params=("total",)),
    Core("comfy.utils", "ProgressBar.update_absolute", "call", params=("value", "total")),
    Core("comfy.utils", "PROGRESS_BAR_ENABLED", "read", optional=True),
    Core("latent_preview", "prepare_callback", "call: KSampler's progress + preview callback",
         params=("model", "steps")),
    Core("comfy.samplers", "KSampler", "read: the host's sampler and scheduler choices",
         attrs=("SAMPLERS", "SCHEDULERS")),
    Core("comfy.samplers", "SCHEDULER_NAMES", "read: valid scheduler names"),
    Core("folder_paths", "get_filename_list", "call: the LoRA choices", params=("folder_name",)),
    Core("folder_paths", "get_full_path", "call: a LoRA file's path", params=("folder_name", "filename")),
    # ---------------------------------------------------------------- model patcher and wrappers
    Core("comfy.model_patcher", "ModelPatcher", "read / write on MODEL objects",
         attrs=("clone", "model", "model_options", "wrappers", "object_patches", "additional_models",
                "load_device")),
    Core("comfy.model_patcher", "ModelPatcher.get_model_object", "call", params=("name",)),
    Core("comfy.model_patcher", "ModelPatcher.add_wrapper_with_key", "call",
         params=("wrapper_type", "key", "wrapper")),
    Core("comfy.model_patcher", "ModelPatcher.remove_wrappers_with_key", "call", params=("wrapper_type", "key")),
    Core("comfy.model_patcher", "ModelPatcher.get_attachment", "call (AnimateDiff-Evolved's params)",
         params=("key",)),
    Core("comfy.model_patcher", "ModelPatcher.set_attachments", "call (AnimateDiff-Evolved's params)",
         params=("key", "attachment")),
    Core("comfy.patcher_extension", "WrappersMP", "read: wrapper types",
         attrs=("OUTER_SAMPLE", "SAMPLER_SAMPLE", "PREPARE_SAMPLING", "PREDICT_NOISE", "CALC_COND_BATCH",
                "APPLY_MODEL", "DIFFUSION_MODEL")),
    # step caches (step_cache.py): how core's caches register decides whether they run inside the windows
    Core("comfy_extras.nodes_easycache", "EasyCacheNode.execute", "read: EasyCache registers per-call wrappers",
         keys=('"easycache"', "DIFFUSION_MODEL", "CALC_COND_BATCH"), optional=True),
    Core("comfy_extras.nodes_easycache", "LazyCacheNode.execute", "read: LazyCache wraps predict_noise (whole step)",
         keys=('"lazycache"', "PREDICT_NOISE"), optional=True),
    Core("comfy_extras.nodes_easycache", "EasyCacheHolder", "read: the holder names its node", attrs=("name",),
         optional=True),
    Core("comfy.patcher_extension", "WrapperExecutor", "read on the executor a wrapper gets",
         attrs=("class_obj", "wrappers", "idx", "execute")),
    Core("comfy.patcher_extension", "WrapperExecutor.new_class_executor", "call: run the rest of a wrapper chain",
         params=("original", "class_obj", "wrappers", "idx")),
    Core("comfy.sampler_helpers", "prepare_model_patcher", "read: ModelPatcher wrappers reach transformer_options",
         keys=("wrappers",)),
    # wrapper call conventions: core calls the pack's wrappers with these arguments first, in this order
    Core("comfy.samplers", "CFGGuider.outer_sample", "OUTER_SAMPLE wrapper order", order=("noise", "latent_image")),
    Core("comfy.sampler_helpers", "prepare_sampling", "PREPARE_SAMPLING wrapper order (conds: LTXV guide count)",
         order=("model", "noise_shape", "conds")),
    Core("comfy.samplers", "KSAMPLER.sample", "SAMPLER_SAMPLE wrapper order, SAMPLER.sample order, called",
         order=SAMPLER_ORDER),
    Core("comfy.model_base", "BaseModel._apply_model", "APPLY_MODEL wrapper order",
         order=("x", "t", "c_concat", "c_crossattn", "control", "transformer_options")),
    Core("comfy.ldm.wan.model", "WanModel._forward", "DIFFUSION_MODEL wrapper order (Wan)",
         order=("x", "timestep", "context", "clip_fea", "time_dim_concat", "transformer_options"), optional=True),
    # ---------------------------------------------------------------- multi-GPU work units (multigpu.py; 0.28.0+)
    Core("comfy.samplers", "_calc_cond_batch_multigpu", "read: clones and worker pool in model_options",
         keys=("multigpu_clones", "multigpu_thread_pool"), optional=True),
    Core("comfy.multigpu", "GPUOptionsGroup.register", "read: relative speeds per device",
         keys=("multigpu_options", "relative_speed"), optional=True),
    Core("comfy.multigpu", "MultiGPUThreadPool", "call: one job per device, then its result",
         attrs=("submit", "get_result", "devices"), optional=True),
    Core("comfy.multigpu", "MultiGPUThreadPool.submit", "call", order=("device", "fn"), optional=True),
    Core("comfy.multigpu", "MultiGPUThreadPool.get_result", "call", order=("device",), optional=True),
    Core("comfy.controlnet", "ControlBase.get_instance_for_device", "call: a ControlNet's copy for a device",
         order=("device",), optional=True),
    Core("comfy.samplers", "cast_transformer_options", "call: patches moved to a device", params=("device",),
         order=("transformer_options",), optional=True),
    Core("comfy.model_patcher", "create_model_options_clone", "call: private options per device",
         order=("orig_model_options",)),
    Core("comfy.model_management", "processing_interrupted", "call: the cancel flag, not cleared"),
    # ---------------------------------------------------------------- sampling objects
    Core("comfy.samplers", "Sampler", "subclass (basics.PackSampler, inversion._InvertSampler)", attrs=("sample",)),
    Core("comfy.samplers", "KSAMPLER", "construct (owned by basics.PackSampler), read",
         params=("sampler_function", "extra_options", "inpaint_options"),
         attrs=("sampler_function", "extra_options", "inpaint_options", "sample")),
    Core("comfy.samplers", "CFGGuider", "construct, read", params=("model_patcher",),
         attrs=("model_patcher", "model_options", "conds", "inner_model", "set_conds", "set_cfg", "sample")),
    Core("comfy.samplers", "CFGGuider.set_conds", "call", params=("positive", "negative")),
    Core("comfy.samplers", "CFGGuider.set_cfg", "call", params=("cfg",)),
    Core("comfy.samplers", "CFGGuider.sample", "call",
         params=("noise", "latent_image", "sampler", "sigmas", "callback", "disable_pbar", "seed")),
    Core("comfy.samplers", "CFGGuider.inner_sample", "read: the schedule reaches the window loop",
         keys=("sample_sigmas",)),
    Core("comfy.samplers", "calculate_sigmas", "call", params=("model_sampling", "scheduler_name", "steps")),
    Core("comfy.samplers", "KSamplerX0Inpaint", "read: the k-diffusion model's guider", attrs=("inner_model",)),
    Core("comfy.samplers", "KSamplerX0Inpaint.__call__", "call: the k-diffusion denoiser model(x, sigma, ...)",
         order=("x", "sigma")),
    Core("comfy.k_diffusion.sampling", "sample_euler", "call: the k-diffusion sampler_function contract",
         order=("model", "x", "sigmas"), params=("extra_args", "callback", "disable")),
    Core("comfy.sample", "sample", "call: one KSampler run",
         params=("model", "noise", "steps", "cfg", "sampler_name", "scheduler", "positive", "negative",
                 "latent_image", "denoise", "noise_mask", "callback", "disable_pbar", "seed")),
    Core("comfy.sample", "fix_empty_latent_channels", "call", params=("model", "latent_image")),
    Core("comfy.model_sampling", "EPS", "read: sigma-space noising rule (isinstance, noise_scaling identity)",
         attrs=("noise_scaling",)),
    Core("comfy.model_sampling", "CONST", "read: rectified-flow noising rule (isinstance, noise_scaling identity)",
         attrs=("noise_scaling",)),
    Core("comfy.model_sampling", "EPS.noise_scaling", "call", params=("sigma", "noise", "latent_image",
                                                                       "max_denoise")),
    Core("comfy.model_sampling", "CONST.noise_scaling", "call", params=("sigma", "noise", "latent_image",
                                                                         "max_denoise")),
    Core("comfy.model_sampling", "ModelSamplingDiscrete.percent_to_sigma", "call", params=("percent",)),
    Core("comfy.model_sampling", "ModelSamplingDiscreteFlow.percent_to_sigma", "call", params=("percent",)),
    Core("comfy.model_sampling", "ModelSamplingDiscrete", "read", attrs=("sigma_max",)),
    Core("comfy.model_sampling", "IMG_TO_IMG", "read: refused by travel / phased", optional=True),
    Core("comfy.model_sampling", "IMG_TO_IMG_FLOW", "read: refused by phased", optional=True),
    Core("comfy.model_sampling", "IMG_TO_IMG_VELOCITY", "read: refused by phased", optional=True),
    Core("comfy.model_sampling", "V_PREDICTION_DDPM", "read: refused by phased", optional=True),
    Core("comfy.latent_formats", "LatentFormat.process_in", "call", params=("latent",)),
    Core("comfy.latent_formats", "LatentFormat", "read: basics.temporal_compression (video formats)",
         attrs=("latent_dimensions",)),
    Core("comfy.sd", "VAE.encode", "call", params=("pixel_samples",)),
    Core("comfy.utils", "common_upscale", "call", params=("samples", "width", "height", "upscale_method", "crop")),
    # ---------------------------------------------------------------- window loop (windows.py)
    Core("comfy.context_windows", "ContextHandlerABC", "subclass (windows.LongAnimContextHandler)", abstract=True,
         attrs=("should_use_context", "get_resized_cond", "execute")),
    Core("comfy.context_windows", "ContextHandlerABC.should_use_context", "core calls it",
         order=("model", "conds", "x_in", "timestep", "model_options")),
    Core("comfy.context_windows", "ContextHandlerABC.get_resized_cond", "core calls it",
         order=("cond_in", "x_in", "window")),
    Core("comfy.context_windows", "ContextHandlerABC.execute", "core calls it",
         order=("calc_cond_batch", "model", "conds", "x_in", "timestep", "model_options")),
    Core("comfy.samplers", "calc_cond_batch", "read: the context_handler slot", keys=("context_handler",)),
    Core("comfy.samplers", "_calc_cond_batch_outer", "call: the calc_cond_batch execute() gets",
         params=("model", "conds", "x_in", "timestep", "model_options")),
    Core("comfy.samplers", "_calc_cond_batch", "read: per-call transformer_options",
         keys=("cond_or_uncond", "sigmas")),
    Core("comfy.model_base", "BaseModel", "read", attrs=("diffusion_model", "model_sampling", "latent_format",
                                                          "memory_required")),
    Core("comfy.model_base", "BaseModel.memory_required", "call", params=("input_shape",)),
    Core("comfy.conds", "CONDRegular", "read", attrs=("cond",)),
    Core("comfy.conds", "CONDRegular._copy_with", "call: a sliced / mixed per-window cond", params=("cond",)),
    Core("comfy.controlnet", "ControlBase", "read / write: per-window hint frames of core ControlNets",
         attrs=("cond_hint_original", "cond_hint", "previous_controlnet")),
    # ---------------------------------------------------------------- attention (unet_attention.py, wan_attention.py)
    Core("comfy.ldm.modules.attention", "BasicTransformerBlock.forward", "read: attn1_patch contract",
         keys=("attn1_patch",)),
    Core("comfy.ldm.modules.attention", "wrap_attn", "read: the attention override slot",
         keys=("optimized_attention_override",)),
    Core("comfy.ldm.modules.attention", "attention_pytorch", "override receives the backend's arguments",
         order=("q", "k", "v", "heads", "mask")),
    Core("comfy.ldm.modules.diffusionmodules.openaimodel", "UNetModel", "read: family detection", optional=True),
    Core("comfy.ldm.modules.diffusionmodules.openaimodel", "UNetModel._forward", "read: transformer_options keys",
         keys=("original_shape", "block"), optional=True),
    Core("comfy.ldm.wan.model", "WanModel", "read: family detection, patch size", attrs=("patch_size",),
         optional=True),
    # -------------------------------------------------------- LTX-Video / HunyuanVideo attention (dit_attention.py)
    Core("comfy.ldm.lightricks.model", "LTXVModel", "read: family detection, token grid (patch size)",
         attrs=("patchifier",), optional=True),
    Core("comfy.ldm.lightricks.model", "LTXVModel._forward", "DIFFUSION_MODEL wrapper order (LTX-Video)",
         order=("x", "timestep", "context", "attention_mask", "frame_rate", "transformer_options",
                "keyframe_idxs"), optional=True),
    Core("comfy.ldm.lightricks.symmetric_patchifier", "SymmetricPatchifier", "read: patch_size (1, p, p)",
         attrs=("patch_size",), optional=True),
    Core("comfy.ldm.lightricks.model", "CrossAttention.forward", "read: self-attention through "
         "optimized_attention with transformer_options", keys=("optimized_attention", "transformer_options"),
         optional=True),
    Core("comfy.ldm.hunyuan_video.model", "HunyuanVideo", "read: family detection, patch size, double blocks "
         "(image-first joint tokens where double_blocks[0].flipped_img_txt is set: 0.3.75; text first without it)",
         attrs=("patch_size", "double_blocks"), optional=True),
    Core("comfy.ldm.hunyuan_video.model", "HunyuanVideo._forward", "DIFFUSION_MODEL wrapper order (HunyuanVideo)",
         order=("x", "timestep", "context", "y", "txt_byt5", "clip_fea", "guidance", "attention_mask",
                "guiding_frame_index", "ref_latent", "disable_time_r", "control", "transformer_options"),
         optional=True),
    Core("comfy.ldm.hunyuan_video.model", "HunyuanVideo.forward_orig", "read: joint blocks named in "
         "transformer_options", keys=("block_type", "double", "single"), optional=True),
    Core("comfy.ldm.flux.math", "attention", "read: joint attention calls optimized_attention with skip_reshape "
         "([B, heads, L, d]) and a key mask", keys=("skip_reshape=True", "transformer_options"), optional=True),
    # ---------------------------------------------------------------- Window LoRA (adapters.py)
    Core("comfy.utils", "load_torch_file", "call", params=("ckpt", "safe_load")),
    Core("comfy.utils", "get_attr", "call", params=("obj", "attr")),
    Core("comfy.lora_convert", "convert_lora", "call", params=("sd",), optional=True),
    Core("comfy.lora", "model_lora_keys_unet", "call", params=("model", "key_map")),
    Core("comfy.lora", "load_lora", "call (log_missing only where the host has it)", params=("lora", "to_load")),
    Core("comfy.lora", "calculate_weight", "call: core's LoRA maths", params=("patches", "weight", "key")),
    Core("comfy.weight_adapter.lora", "LoRAAdapter", "read: plain-LoRA patch objects", attrs=("name", "weights"),
         optional=True),
    # ---------------------------------------------------------------- server route (routes.py)
    Core("server", "PromptServer", "read: the aiohttp route table", attrs=("instance", "routes"), optional=True),
)


# ---------------------------------------------------------------------------------------------- checker
_MISSING = object()


def _resolve(module: str, name: str):
    obj = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part, _MISSING)
        if obj is _MISSING:
            return _MISSING
    return obj


def _source(obj) -> str:
    """Source of ``obj`` and, for a class, of its bases (the attributes a class's instances get)."""
    parts = []
    for o in (inspect.getmro(obj) if isinstance(obj, type) else (obj,)):
        if o is object:
            continue
        try:
            parts.append(inspect.getsource(o))
        except (OSError, TypeError):
            pass
    return "\n".join(parts)


def _has_attr(obj, attr: str, source: str) -> bool:
    if hasattr(obj, attr):
        return True
    # ``self.attr = ...``, ``self.attr: T = ...`` or a tuple target ``self.attr, self.other = ...``
    pattern = rf"\.{re.escape(attr)}\b(?:\s*:[^=\n]*|(?:\s*,\s*[\w.]+)+)?\s*=(?!=)"
    return re.search(pattern, source) is not None


def _signature(obj):
    if isinstance(obj, type):
        return inspect.signature(obj)  # the constructor's, without self
    return inspect.signature(inspect.unwrap(obj))


def _sig_text(sig) -> str:
    return "(" + ", ".join(p for p in sig.parameters) + ")"


def check_entry(entry: Core) -> list[str]:
    """Mismatch lines of one entry on the running host (empty when the host matches)."""
    path = entry.path
    try:
        obj = _resolve(entry.module, entry.name)
    except ImportError as e:
        return [] if entry.optional else [f"{path}: module {entry.module} cannot be imported ({e})"]
    if obj is _MISSING:
        return [] if entry.optional else [f"{path}: missing on this host"]
    lines = []
    if entry.params or entry.order:
        try:
            sig = _signature(obj)
        except (TypeError, ValueError) as e:
            return [f"{path}: no readable signature ({e})"]
        for p in entry.params:
            if p not in sig.parameters:
                lines.append(f"{path}: no parameter '{p}' (host: {_sig_text(sig)})")
        if entry.order:
            positional = [n for n, p in sig.parameters.items() if n not in ("self", "cls") and p.kind in
                          (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)]
            head = positional[:len(entry.order)]
            if head != list(entry.order):
                lines.append(f"{path}: positional order ({', '.join(entry.order)}) expected, host has "
                             f"({', '.join(head)})")
    source = _source(obj) if entry.attrs or entry.keys else ""
    for a in entry.attrs:
        if not _has_attr(obj, a, source):
            lines.append(f"{path}: no attribute '{a}'")
    for k in entry.keys:
        if k not in source:
            lines.append(f"{path}: its source no longer mentions '{k}'")
    if entry.abstract:
        extra = sorted(set(getattr(obj, "__abstractmethods__", ())) - set(entry.attrs))
        if extra:
            lines.append(f"{path}: abstract method(s) {', '.join(extra)} that the pack does not implement")
    return lines


def check(entries: tuple[Core, ...] = MANIFEST) -> list[str]:
    """One line per mismatch between ``entries`` and the running ComfyUI (empty: the host has everything)."""
    return [line for entry in entries for line in check_entry(entry)]
