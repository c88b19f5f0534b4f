"""Window LoRA: adapters whose strength changes per context window (ZoLA sec. 4.5, motion customization).

Owns loading a LoRA file as a :class:`WindowAdapter` (core's own key mapping and patch objects, classified per
layer), :func:`install` of a weighted set of adapters for one window (with its undo), and
:func:`patch_model_window_lora`, which chains adapters on a MODEL clone. The per-window weights are
``nodes/algorithms/adapter_weights.py``.

How (both ways measured with ``tests/tools/tiny_lora.py --bench``): ComfyUI applies a LoRA by adding it to
``ModelPatcher.patches`` and baking ``W + s*dW`` into the weights when the model is loaded
(``patch_weight_to_device`` -> ``comfy.lora.calculate_weight``); hooks (``comfy/hooks.py``) re-bake weights when a
conditioning's hook group changes. Neither can change the strength per context window. Two exact ways to do it were
implemented and timed:

- ``"forward"`` (default): while a window is evaluated, a torch forward hook on each LoRA-targeted Linear/Conv
  adds ``w * scale * up(down(x))`` (low-rank, for plain LoRA) or ``w * (x * dW)`` (dense dW at strength 1, for
  other adapters that are linear in the strength: LoCon mid, LoHa, LoKr, full diffs) to the layer's output.
  ``x W^T + w x dW^T == x (W + w dW)^T``: equal to core's baked LoRA within float rounding. A window switch only
  registers/removes hooks (no weight traffic), weights stay untouched, works with lowvram/offloaded weights.
- ``"patch"``: before a window, ``W <- calculate_weight(W, patches at w)`` in place (core's own maths, so exact
  for every adapter type incl. DoRA/OFT/BOFT/GLoRA whose effect is not linear in the strength), restored after.
  Used automatically when an adapter is not linear in the strength.
Adapter-free windows (all weights 0) install nothing. Measured (tiny SD UNet, CPU, 1 thread, 4 frames 4x4, best of
5): plain window 168 ms; forward: switch 2.0 ms, window 175 ms; patch: switch 34 ms, window 231 ms.

Core hooks used: ``folder_paths.get_full_path`` (the ``loras`` folder), ``comfy.utils.load_torch_file``,
``comfy.lora_convert.convert_lora``, ``comfy.lora.model_lora_keys_unet`` / ``load_lora`` / ``calculate_weight``
(core's own LoRA maths), ``comfy.utils.get_attr``; an ``APPLY_MODEL`` wrapper (``comfy.patcher_extension.WrappersMP``)
for model calls outside LongAnim's windows, and the window loop's ``WINDOW_CALLBACKS`` (``windows.py``) inside them.
"""
from __future__ import annotations

import inspect
import logging
import math
import os
from dataclasses import dataclass, field

import comfy.lora
import comfy.patcher_extension
import comfy.utils
import folder_paths
import torch
import torch.nn.functional as F

from ..algorithms import adapter_weights as aw
from ..algorithms import prompt_schedule as ps
from .basics import set_wrapper
from .windows import WINDOW_CALLBACKS

log = logging.getLogger("LongAnim")

SPEC_KEY = "LongAnim.window_lora"  # transformer_options: tuple of WindowAdapter (chained nodes append)
ACTIVE_KEY = "LongAnim.window_lora_active"  # transformer_options flag while the window callback has installed
WRAPPER_LORA = "LongAnim.window_lora"
MODES = ("forward", "patch")


# ---------------------------------------------------------------------------------------------- loading
def lora_names() -> list[str]:
    """The LoRA files of the host's ``models/loras`` folder (the ``lora_name`` choices)."""
    return list(folder_paths.get_filename_list(folder_name="loras"))


@dataclass(eq=False)
class _KeyPatch:
    module: str  # module path inside the BaseModel, e.g. "diffusion_model.input_blocks.1.1.proj_in"
    param: str  # "weight" or "bias"
    key: str  # the state-dict key, for core's calculate_weight
    patch: object  # what core's load_lora produced (an adapter object or a ("diff", ...) tuple)
    kind: str = "nonlinear"  # "lowrank" | "dense" | "nonlinear"
    tensors: tuple = ()  # lowrank: (down, up, scale); dense: (delta,)


@dataclass(eq=False)
class WindowAdapter:
    """One LoRA of a Window LoRA node: its patches, its scale alpha and its frame tags (immutable after build)."""

    name: str
    scale: float
    intervals: tuple
    patches: list = field(default_factory=list)
    mode: str = "forward"
    _cache: dict = field(default_factory=dict)

    def __deepcopy__(self, memo):  # shared, immutable: never duplicate LoRA tensors on ModelPatcher.clone()
        return self

    def cast(self, device, dtype) -> dict:
        """The forward-mode tensors on ``device``/``dtype`` (one cached copy, replaced when either changes)."""
        key = (str(device), dtype)
        if key not in self._cache:
            self._cache.clear()
            self._cache[key] = {id(p): tuple(t.to(device=device, dtype=dtype) if isinstance(t, torch.Tensor) else t
                                             for t in p.tensors) for p in self.patches if p.kind != "nonlinear"}
        return self._cache[key]


_FILE_CACHE: dict = {}


def _parameters(fn) -> set[str]:
    """Parameter names of a host function (feature detection of optional keywords)."""
    try:
        return set(inspect.signature(fn).parameters)
    except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
        return set()


def _load_file(path: str) -> dict:
    stamp = (path, os.path.getmtime(path))
    if stamp not in _FILE_CACHE:
        if len(_FILE_CACHE) >= 4:
            _FILE_CACHE.pop(next(iter(_FILE_CACHE)))
        _FILE_CACHE[stamp] = comfy.utils.load_torch_file(ckpt=path, safe_load=True)
    return _FILE_CACHE[stamp]


def _classify(kp: _KeyPatch, module: torch.nn.Module, weight: torch.Tensor) -> None:
    """Decide how the forward hook applies one patch (low-rank, dense dW, or only by weight patching)."""
    is_linear = isinstance(module, torch.nn.Linear)
    is_conv = isinstance(module, (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d))
    if not (is_linear or is_conv) or (is_conv and getattr(module, "padding_mode", "zeros") != "zeros"):
        return
    p = kp.patch
    name = getattr(p, "name", None)
    if kp.param == "bias":
        if isinstance(p, tuple) and p[0] == "diff":
            kp.kind, kp.tensors = "dense", (p[1][0].float(),)
        return
    if isinstance(p, tuple):
        if p[0] == "diff" and p[1][0].shape == weight.shape:
            kp.kind, kp.tensors = "dense", (p[1][0].float(),)
        return
    v = getattr(p, "weights", None)
    if name == "lora" and v is not None and v[4] is None and v[5] is None:
        up, down, alpha, mid = v[0], v[1], v[2], v[3]
        scale = (float(alpha) / down.shape[0]) if alpha is not None else 1.0
        if mid is None and up.shape[0] == weight.shape[0] and math.prod(up.shape[2:]) == 1 and \
                (is_linear or getattr(module, "groups", 1) == 1) and down.ndim == weight.ndim:
            kp.kind, kp.tensors = "lowrank", (down.float(), up.float(), scale)
            return
    dora = None if v is None or not v else (v[4] if name == "lora" else v[-1])
    reshape = v[5] if name == "lora" and v is not None else None
    if name in ("lora", "loha", "lokr") and dora is None and reshape is None:
        # linear in the strength without DoRA: dW = calculate_weight(0, strength 1)
        zero = torch.zeros(weight.shape, dtype=torch.float32)
        delta = comfy.lora.calculate_weight(patches=[(1.0, p, 1.0, None, None)], weight=zero, key=kp.key)
        kp.kind, kp.tensors = "dense", (delta,)


def load_window_lora(model, lora_name: str, strength: float, frame_intervals: str,
                     mode: str | None = None, ratio: int = 1) -> WindowAdapter:
    """Load ``loras/<lora_name>`` for ``model`` (a ModelPatcher) as a per-window adapter.

    ``ratio > 1``: ``frame_intervals`` are video frames, converted to latent frames with the model's temporal
    compression ``ratio`` (``prompt_schedule.video_range_to_latent``: a latent frame belongs to a range when its first
    video frame does). Raises ``ValueError`` naming ``lora_name`` when the file is missing or none of its keys match
    the model.
    """
    intervals = tuple(aw.parse_intervals(frame_intervals, "frame_intervals"))
    if int(ratio) > 1:
        intervals = tuple(aw.FrameInterval(*ps.video_range_to_latent(iv.start, iv.end, ratio, "frame_intervals"))
                          for iv in intervals)
    aw.validate_scale(strength)
    if mode is not None and mode not in MODES:
        raise ValueError(f"mode must be one of {list(MODES)}, got {mode!r}")
    path = folder_paths.get_full_path(folder_name="loras", filename=lora_name)
    if path is None:
        raise ValueError(f"lora_name: {lora_name!r} is not in the loras folder; put the file in models/loras and "
                         "refresh the page")
    lora = _load_file(path)
    try:
        import comfy.lora_convert

        lora = comfy.lora_convert.convert_lora(sd=lora)
    except (ImportError, AttributeError):  # pragma: no cover - older hosts
        pass
    base = model.model
    key_map = comfy.lora.model_lora_keys_unet(model=base, key_map={})
    quiet = {"log_missing": False} if "log_missing" in _parameters(comfy.lora.load_lora) else {}
    loaded = comfy.lora.load_lora(lora=lora, to_load=key_map, **quiet)
    sd = base.state_dict()
    adapter = WindowAdapter(name=lora_name, scale=float(strength), intervals=intervals)
    for key, patch in loaded.items():
        if not isinstance(key, str) or key not in sd:
            continue  # offset/function keys (fused qkv) are left to weight patching below
        module_path, _, param = key.rpartition(".")
        try:
            module = base.get_submodule(module_path)
        except AttributeError:
            continue
        kp = _KeyPatch(module_path, param, key, patch)
        _classify(kp, module, sd[key])
        adapter.patches.append(kp)
    if not adapter.patches:
        sample = ", ".join(list(lora)[:3])
        raise ValueError(f"lora_name: none of the {len(lora)} tensors of {lora_name!r} match this model (first keys: "
                         f"{sample}); it is a LoRA for another model family, pick one made for this model")
    linear = all(p.kind != "nonlinear" for p in adapter.patches)
    adapter.mode = mode or ("forward" if linear else "patch")
    if adapter.mode == "forward" and not linear:
        raise ValueError(f"lora_name: {lora_name!r} has adapter types whose effect is not linear in the strength "
                         "(DoRA/OFT/...); they can only be applied by weight patching (mode 'patch')")
    log.info("LongAnim: window LoRA %s: %d patched tensors, mode %s", lora_name, len(adapter.patches), adapter.mode)
    return adapter


# ---------------------------------------------------------------------------------------------- applying
def _conv(ndim: int):
    return {3: F.conv1d, 4: F.conv2d, 5: F.conv3d}[ndim]


def _make_hook(items: list):
    """One forward hook per module: output += sum_i w_i * delta_i(x). ``items``: (kind, param, tensors, w)."""

    def hook(module, args, output):
        x = args[0]
        extra = None
        for kind, param, tensors, w in items:
            if kind == "lowrank":
                down, up, scale = tensors
                if down.ndim == 2:
                    d = F.linear(F.linear(x, down.to(x.device, x.dtype)), up.to(x.device, x.dtype))
                else:
                    conv = _conv(down.ndim)
                    h = conv(x, down.to(x.device, x.dtype), None, module.stride, module.padding, module.dilation, 1)
                    d = conv(h, up.to(x.device, x.dtype))
                d = d * (scale * w)
            elif param == "bias":
                (db,) = tensors
                shape = [1] * output.ndim
                shape[-1 if isinstance(module, torch.nn.Linear) else 1] = -1
                d = (db.to(output.device, output.dtype) * w).view(shape)
            else:
                (dw,) = tensors
                if dw.ndim == 2:
                    d = F.linear(x, dw.to(x.device, x.dtype)) * w
                else:
                    conv = _conv(dw.ndim)
                    d = conv(x, dw.to(x.device, x.dtype), None, module.stride, module.padding, module.dilation,
                             module.groups) * w
            extra = d if extra is None else extra + d
        return output if extra is None else output + extra.to(output.dtype)

    return hook


def install(base_model, weighted: list, mode: str | None = None):
    """Apply ``[(WindowAdapter, weight)]`` to ``base_model`` (a BaseModel) now; return ``undo()``.

    ``mode``: force "forward" or "patch" (default: each adapter's own mode). Zero weights install nothing.
    """
    weighted = [(a, float(w)) for a, w in weighted if float(w) != 0.0]
    handles, backups = [], []
    per_module: dict[str, list] = {}
    patch_keys: dict[str, list] = {}
    for adapter, w in weighted:
        m = mode or adapter.mode
        if m == "forward":
            ref = comfy.utils.get_attr(obj=base_model, attr=adapter.patches[0].key)
            cast = adapter.cast(ref.device, torch.float32)
            for kp in adapter.patches:
                per_module.setdefault(kp.module, []).append((kp.kind, kp.param, cast[id(kp)], w))
        else:
            for kp in adapter.patches:
                patch_keys.setdefault(kp.key, []).append((w, kp.patch, 1.0, None, None))
    try:
        for module_path, items in per_module.items():
            handles.append(base_model.get_submodule(module_path).register_forward_hook(_make_hook(items)))
        with torch.no_grad():
            for key, patches in patch_keys.items():
                param = comfy.utils.get_attr(obj=base_model, attr=key)
                backups.append((param, param.detach().clone()))
                weight = param.detach().to(torch.float32, copy=True)
                new = comfy.lora.calculate_weight(patches=patches, weight=weight, key=key)
                param.data.copy_(new.to(param.dtype))
    except Exception:
        _undo(handles, backups)
        raise

    def undo():
        _undo(handles, backups)

    return undo


def _undo(handles, backups):
    for h in handles:
        h.remove()
    handles.clear()
    with torch.no_grad():
        for param, old in reversed(backups):
            param.data.copy_(old)
    backups.clear()


def _weights(spec: tuple, frames: list[int], num_frames: int | None) -> list:
    adapters = [(a.scale, a.intervals) for a in spec]
    return list(zip(spec, aw.window_adapter_weights(frames, adapters, num_frames)))


class _WindowCallback:
    """LongAnim window-loop callback: install the ZoLA Eq. 4.5 weights of the window being evaluated."""

    def __init__(self, spec: tuple):
        self.spec = spec

    def __deepcopy__(self, memo):
        return self

    def __call__(self, windows, num_frames, model, model_options):
        frames = [f for w in windows for f in w]
        undo = install(model, _weights(self.spec, frames, num_frames))
        t_opts = model_options.setdefault("transformer_options", {})
        t_opts[ACTIVE_KEY] = True

        def done():
            t_opts.pop(ACTIVE_KEY, None)
            undo()

        return done


class _ApplyModelWrapper:
    """APPLY_MODEL wrapper for model calls the LongAnim window loop did not announce.

    - core Context Windows (or another handler setting ``transformer_options["context_window"]``): that window;
    - no windows at all (latent shorter than a window, or no window node): one window = every frame, so the
      constant weight is alpha x (fraction of the video's frames tagged).
    """

    def __init__(self, spec: tuple):
        self.spec = spec

    def __deepcopy__(self, memo):
        return self

    def __call__(self, executor, x, t, c_concat=None, c_crossattn=None, control=None, transformer_options=None,
                 **kwargs):
        t_opts = transformer_options if transformer_options is not None else {}
        if t_opts.get(ACTIVE_KEY):
            return executor(x, t, c_concat, c_crossattn, control, transformer_options, **kwargs)
        window = t_opts.get("context_window")
        if window is not None and getattr(window, "index_list", None):
            frames = list(window.index_list)
            total = getattr(window, "total_frames", None)
        else:
            if x.ndim == 5:
                num = x.shape[2]
            else:
                num = max(1, x.shape[0] // max(1, len(t_opts.get("cond_or_uncond", [0]))))
            frames, total = list(range(num)), num
        undo = install(executor.class_obj, _weights(self.spec, frames, total))
        try:
            return executor(x, t, c_concat, c_crossattn, control, transformer_options, **kwargs)
        finally:
            undo()


def patch_model_window_lora(model, lora_name: str, strength: float, frame_intervals: str,
                            mode: str | None = None, ratio: int = 1):
    """Clone ``model`` with one more per-window LoRA (chained nodes add adapters); ``ratio``: see
    :func:`load_window_lora`."""
    adapter = load_window_lora(model, lora_name, strength, frame_intervals, mode, ratio)
    m = model.clone()
    t_opts = m.model_options.setdefault("transformer_options", {})
    spec = tuple(t_opts.get(SPEC_KEY, ())) + (adapter,)
    t_opts[SPEC_KEY] = spec
    callbacks = [cb for cb in t_opts.get(WINDOW_CALLBACKS, []) if not isinstance(cb, _WindowCallback)]
    t_opts[WINDOW_CALLBACKS] = callbacks + [_WindowCallback(spec)]
    set_wrapper(m, comfy.patcher_extension.WrappersMP.APPLY_MODEL, WRAPPER_LORA, _ApplyModelWrapper(spec))
    return m

