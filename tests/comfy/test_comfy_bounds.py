"""Issue 11, generated from the node schemas: every numeric input at its bounds either works or fails with a
ValueError that names an input of that node — never a stack trace from deep inside torch.

Cheap nodes (patches, noise, previews) run in the default suite; nodes that sample (refinement, phased inference,
inversion, metrics) run their bound sweep behind ``-m slow``, on the tiny Wan model with a 4x4 latent of a few frames.
A case whose value makes the run too long to finish (steps = 1000, 256 clips, ...) is run until the diffusion model
has been called ``CALL_BUDGET`` times and then interrupted through ComfyUI's own interrupt flag: validation passed
and sampling started, which is what "the value is accepted" means. A case that ends by itself must give a finite
result of the expected shape. Values beyond the bounds are refused by the server (tests/e2e/test_e2e_reliability.py).
"""
import math
import re

import comfy.model_management
import comfy.samplers
import nodes as comfy_nodes
import pytest
import torch
from longanim.nodes.algorithms.noise import NoiseRecipe
from longanim.nodes.comfy import adapters as cad
from longanim.nodes.comfy import basics
from longanim.nodes.registry import NODE_CLASS_MAPPINGS

# the fuzz runs on the live nodes; a retired id runs its replacement (tests/comfy/test_vocabulary.py)
LIVE = {node_id: cls for node_id, cls in NODE_CLASS_MAPPINGS.items() if not getattr(cls, "DEPRECATED", False)}

SAMPLING = {"LongAnimRandomizedBlendRefineV2", "LongAnimPhasedAnimation", "LongAnimInvert", "LongAnimVideoMetricsV2",
            "LongAnimUpscaleEncode"}
NEEDS_CLIP = {"LongAnimPromptScheduleV2"}
# Refinement gets more frames than one default chunk (24 / overlap 8): two chunks and a blended overlap.
LATENT_FRAMES = {"LongAnimRandomizedBlendRefineV2": 30, "LongAnimPhasedAnimation": 3}
CALL_BUDGET = 64  # diffusion-model calls before a sampling case is interrupted (the longest default case: 40)
UNET_ONLY = {"LongAnimTemporalMomentumAttention", "LongAnimCrossFrameAttention", "LongAnimWindowLoRAV2",
             "LongAnimMotionAttentionExpansion"}


def value_for(kind, opts, node_id, host):
    unet = node_id in UNET_ONLY
    if kind == "MODEL":
        return host.sd15() if unet else host.wan()
    if kind == "LATENT":
        return host.sd_latent(6) if unet else host.wan_latent(LATENT_FRAMES.get(node_id, 6))
    if kind == "CONDITIONING":
        return host.cond("a cat", "sd15" if unet else "wan21")
    if kind == "LONGANIM_NOISE":
        return NoiseRecipe("mixed", {"alpha": 0.5})
    if kind == "SAMPLER":
        return comfy.samplers.sampler_object("euler")
    if kind == "IMAGE":
        return torch.rand(6, 32, 32, 3, generator=torch.Generator().manual_seed(0))
    if kind == "VAE":
        return comfy_nodes.VAELoader().load_vae("longanim_tiny_taesd.safetensors")[0]
    if isinstance(kind, list):
        return opts.get("default", kind[0])
    if kind in ("INT", "FLOAT", "STRING", "BOOLEAN"):
        return opts.get("default", {"INT": 0, "FLOAT": 0.0, "STRING": "", "BOOLEAN": False}[kind])
    return None


def cases(node_ids):
    out = []
    for node_id in sorted(node_ids):
        spec = NODE_CLASS_MAPPINGS[node_id].INPUT_TYPES()
        for section in ("required", "optional"):
            for name, entry in spec.get(section, {}).items():
                opts = entry[1] if len(entry) > 1 else {}
                if entry[0] in ("INT", "FLOAT") and "min" in opts and "max" in opts and name != "seed":
                    out += [(node_id, name, "min"), (node_id, name, "max")]
    return out


def run_case(host, node_id, name, which):
    cls, spec, kwargs = node_kwargs(host, node_id)
    opts = dict(spec.get("required", {}), **spec.get("optional", {}))[name][1]
    kwargs[name] = opts[which]
    names = set(kwargs) | {"ControlNet", "model", "latent"}
    try:
        getattr(cls(), cls.FUNCTION)(**kwargs)
    except ValueError as e:
        assert error_names_input(str(e), names), f"{node_id}.{name}={kwargs[name]}: error names no input: {e}"


def error_names_input(message: str, names) -> bool:
    return any(re.search(rf"(?<![A-Za-z_]){re.escape(n)}(?![A-Za-z_])", message) for n in names)


def node_kwargs(host, node_id):
    cls = NODE_CLASS_MAPPINGS[node_id]
    spec = cls.INPUT_TYPES()
    kwargs = {}
    for section in ("required", "optional"):
        for key, entry in spec.get(section, {}).items():
            value = value_for(entry[0], entry[1] if len(entry) > 1 else {}, node_id, host)
            assert value is not None, f"{node_id}.{key}: no test value for type {entry[0]}; add one to value_for"
            kwargs[key] = value
    return cls, spec, kwargs


class CallBudget:
    """Counts diffusion-model calls; after ``budget`` calls it raises ComfyUI's interrupt flag (Cancel)."""

    def __init__(self, model, budget: int):
        self.net, self.budget, self.calls, self.fired = model.model.diffusion_model, budget, 0, False

    def __enter__(self):
        comfy.model_management.interrupt_current_processing(False)
        self.handle = self.net.register_forward_pre_hook(self.hook)
        return self

    def hook(self, module, args):
        self.calls += 1
        if self.calls > self.budget:
            self.fired = True
            comfy.model_management.interrupt_current_processing(True)
            comfy.model_management.throw_exception_if_processing_interrupted()

    def __exit__(self, *exc):
        self.handle.remove()
        comfy.model_management.interrupt_current_processing(False)


def finite_tensors(out):
    for item in out if isinstance(out, (tuple, list)) else (out,):
        t = item.get("samples") if isinstance(item, dict) else item
        if isinstance(t, torch.Tensor):
            assert torch.isfinite(t).all(), "non-finite output"
            yield t


# In-schema values the node may refuse, with the reason: context_overlap's max (4095) is only valid with a
# context_length above it; with the default context_length (24) it must be refused naming context_overlap. gamma = 1
# shares every step, so clips 2..K would be copies of clip 1: refused naming gamma and steps.
REFUSAL_ALLOWED = {("LongAnimRandomizedBlendRefineV2", "context_overlap", "max"),
                   ("LongAnimPhasedAnimation", "gamma", "max")}


def first_named_input(message: str, names) -> str | None:
    hits = [(m.start(), n) for n in names
            for m in [re.search(rf"(?<![A-Za-z_]){re.escape(n)}(?![A-Za-z_])", message)] if m]
    return min(hits)[1] if hits else None


def call_node(cls, kwargs, budget):
    if budget is None:
        return getattr(cls(), cls.FUNCTION)(**kwargs)
    with budget:
        return getattr(cls(), cls.FUNCTION)(**kwargs)


def run_sampling_case(host, node_id, name, which):
    """One bound case of a sampling node; returns the outcome ("ok", "refused: ...", "accepted, interrupted ...").

    A refusal that names ANOTHER input first (a cross-input rule: chunk_length = 1 with the default overlap 8) is
    retried once with that input at its schema minimum, so the bound itself is still exercised.
    """
    cls, spec, kwargs = node_kwargs(host, node_id)
    inputs = dict(spec.get("required", {}), **spec.get("optional", {}))
    kwargs[name] = inputs[name][1][which]
    model = kwargs.get("model")
    prefix = ""
    for attempt in range(2):
        budget = CallBudget(model, CALL_BUDGET) if model is not None else None
        try:
            out = call_node(cls, kwargs, budget)
        except ValueError as e:
            other = first_named_input(str(e), kwargs)
            assert other is not None, f"{node_id}.{name}={kwargs[name]}: error names no input: {e}"
            if attempt == 0 and other != name and "min" in inputs[other][1]:
                kwargs[other] = inputs[other][1]["min"]
                prefix = f"with {other}={kwargs[other]}: "
                continue
            assert (node_id, name, which) in REFUSAL_ALLOWED, f"{node_id}.{name}={kwargs[name]} refused: {e}"
            return f"{prefix}refused: {e}"
        except comfy.model_management.InterruptProcessingException:
            assert budget is not None and budget.fired, f"{node_id}.{name}: interrupted without a cancel"
            return f"{prefix}accepted, interrupted after {budget.calls - 1} model calls"
        break
    assert budget is None or budget.calls > 0, f"{node_id}: the model was never called"
    tensors = list(finite_tensors(out))
    assert tensors, f"{node_id}: no tensor output"
    if node_id in ("LongAnimRandomizedBlendRefineV2", "LongAnimInvert"):
        assert tensors[0].shape == kwargs["latent"]["samples"].shape
    if node_id == "LongAnimPhasedAnimation":
        shape = list(kwargs["latent"]["samples"].shape)
        shape[2] *= kwargs["num_clips"]
        assert list(tensors[0].shape) == shape
    return f"{prefix}ok"


CHEAP = set(LIVE) - SAMPLING - NEEDS_CLIP
OUTCOMES: dict = {}


@pytest.mark.parametrize("node_id,name,which", cases(CHEAP))
def test_numeric_bounds_of_cheap_nodes(host, node_id, name, which):
    run_case(host, node_id, name, which)


@pytest.mark.slow
@pytest.mark.parametrize("node_id,name,which", cases(SAMPLING))
def test_numeric_bounds_of_sampling_nodes(host, node_id, name, which):
    OUTCOMES[node_id, name, which] = run_sampling_case(host, node_id, name, which)
    print(f"{node_id}.{name}={which}: {OUTCOMES[node_id, name, which]}")


# ------------------------------------------------------------------------------------------- non-finite tensors
def tensor_inputs():
    """Every (node, input) of the registry that reads a LATENT or an IMAGE: a new node is covered by itself."""
    out = []
    for node_id, cls in sorted(LIVE.items()):
        spec = cls.INPUT_TYPES()
        for section in ("required", "optional"):
            out += [(node_id, name) for name, entry in spec.get(section, {}).items() if entry[0] in ("LATENT", "IMAGE")]
    return out


def test_tensor_inputs_are_found():
    """The enumeration sees the nodes it must (a registry that failed to import would make the fuzz vacuous)."""
    found = {node_id for node_id, _ in tensor_inputs()}
    assert {"LongAnimVideoMetricsV2", "LongAnimInvert", "LongAnimRandomizedBlendRefineV2", "LongAnimPhasedAnimation",
            "LongAnimUpscaleEncode", "LongAnimNoisePreviewV2"} <= found, found


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("node_id,name", tensor_inputs())
def test_non_finite_latent_or_image_is_refused_naming_node_and_input(host, node_id, name, bad):
    """One NaN / inf value in a LATENT or IMAGE input: a ValueError naming the node and the input, before the model
    is ever called (a call would trip the zero call budget: an interrupt, not a ValueError)."""
    cls, _, kwargs = node_kwargs(host, node_id)
    value = kwargs[name]
    t = (value["samples"] if isinstance(value, dict) else value).clone()
    t.view(-1)[t.numel() // 2] = bad
    kwargs[name] = {**value, "samples": t} if isinstance(value, dict) else t
    model = kwargs.get("model")
    with pytest.raises(ValueError) as info:
        call_node(cls, kwargs, CallBudget(model, 0) if model is not None else None)
    message = str(info.value)
    assert message.startswith(f"{name}: ") and cls.DISPLAY_NAME in message, message
    assert "NaN" in message and "finite" in message, message


# --------------------------------------------------------------------------------- chained nodes of one role
def patch_nodes():
    """Every node filling a slot on a MODEL (or SAMPLER) it passes on: its class declares PATCH_ROLE."""
    return sorted(node_id for node_id, cls in LIVE.items() if cls.PATCH_ROLE)


def test_every_model_or_sampler_patch_declares_its_role():
    """A node taking a MODEL / SAMPLER and returning one must say which slot it fills, so the chaining fuzz below
    covers it: a new patch node without PATCH_ROLE fails here."""
    for node_id, cls in NODE_CLASS_MAPPINGS.items():
        inputs = {entry[0] for section in cls.INPUT_TYPES().values() for entry in section.values()
                  if isinstance(entry[0], str)}
        passes_on = any(t in inputs and t in cls.RETURN_TYPES for t in ("MODEL", "SAMPLER"))
        assert bool(cls.PATCH_ROLE) == passes_on, f"{node_id}: PATCH_ROLE {cls.PATCH_ROLE!r}, passes on: {passes_on}"


def chained_pairs():
    ids = patch_nodes()
    # a travel SAMPLER on a travel MODEL (one role, two types) travels once: tests/comfy/test_comfy_travel.py
    roles = {node_id: (NODE_CLASS_MAPPINGS[node_id].PATCH_ROLE, NODE_CLASS_MAPPINGS[node_id].RETURN_TYPES[0])
             for node_id in ids}
    return [(a, b) for a in ids for b in ids if roles[a] == roles[b]]


@pytest.mark.parametrize("first,second", chained_pairs())
def test_second_node_of_one_role_is_refused_naming_both(host, first, second):
    """Two LongAnim nodes of one role in a row (ZoLA Windows -> ZoLA Windows, Temporal Momentum -> Cross-Frame,
    Apply Noise -> Apply Noise, ...): the second would silently replace the first, so it is refused naming both
    nodes. Window LoRA stacks instead: the second node adds its adapter."""
    a, b = NODE_CLASS_MAPPINGS[first], NODE_CLASS_MAPPINGS[second]
    out_type = a.RETURN_TYPES[0]
    link = "model" if out_type == "MODEL" else "sampler"
    _, _, kw_a = node_kwargs(host, first)
    patched = call_node(a, kw_a, None)[0]
    _, _, kw_b = node_kwargs(host, second)
    kw_b[link] = patched
    if a.PATCH_ROLE in basics.STACKING_ROLES:
        twice = call_node(b, kw_b, None)[0]
        key = cad.SPEC_KEY
        assert len(twice.model_options["transformer_options"][key]) == 2, "the second Window LoRA did not stack"
        return
    with pytest.raises(ValueError) as info:
        call_node(b, kw_b, None)
    message = str(info.value)
    assert message.startswith(f"{link}: ") and a.DISPLAY_NAME in message and b.DISPLAY_NAME in message, message


# ------------------------------------------------------------------------- the preview route against the nodes
class _ModelSource:
    """A stand-in MODEL output, so ComfyUI's prompt validation can check a window node's widgets alone."""

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}


def widget_defaults(node_id):
    spec = NODE_CLASS_MAPPINGS[node_id].INPUT_TYPES()
    out = {}
    for section in ("required", "optional"):
        for name, entry in spec.get(section, {}).items():
            opts = entry[1] if len(entry) > 1 else {}
            if isinstance(entry[0], list):
                out[name] = opts.get("default", entry[0][0])
            elif entry[0] in ("INT", "FLOAT", "BOOLEAN"):
                out[name] = opts["default"]
    return out


def node_refuses(host, node_id, values) -> bool:
    """Whether a queued prompt with these widget values fails: ComfyUI's own prompt validation (the server's
    ``execution.validate_inputs``: types, min / max, combo options), then the node's ``run`` (its own checks)."""
    import asyncio

    import execution

    prompt = {"1": {"class_type": "LongAnimTestModelSource", "inputs": {}},
              "2": {"class_type": node_id, "inputs": dict(values)}}
    cls = NODE_CLASS_MAPPINGS[node_id]
    if "model" in {n for s in cls.INPUT_TYPES().values() for n in s}:
        prompt["2"]["inputs"]["model"] = ["1", 0]
    saved = dict(comfy_nodes.NODE_CLASS_MAPPINGS)
    comfy_nodes.NODE_CLASS_MAPPINGS.update({"LongAnimTestModelSource": _ModelSource, node_id: cls})
    try:
        valid = asyncio.run(execution.validate_inputs("route-test", prompt, "2", {}))[0]
    finally:
        comfy_nodes.NODE_CLASS_MAPPINGS.clear()
        comfy_nodes.NODE_CLASS_MAPPINGS.update(saved)
    if not valid:
        return True
    kwargs = dict(prompt["2"]["inputs"])  # as converted by the validation (int(), float())
    if "model" in kwargs:
        kwargs["model"] = host.wan()
    try:
        call_node(cls, kwargs, None)
    except ValueError:
        return True
    return False


def route_refuses(node_id, values) -> bool:
    from longanim.nodes.comfy import routes

    params = {"node": node_id, **{k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in values.items()}}
    try:
        routes.preview_request(params)
    except ValueError:
        return True
    return False


def route_cases():
    from longanim.nodes.comfy import routes

    out = []
    for node_id in routes.PREVIEW_NODES:
        spec = NODE_CLASS_MAPPINGS[node_id].INPUT_TYPES()
        for section in ("required", "optional"):
            for name, entry in spec.get(section, {}).items():
                opts = entry[1] if len(entry) > 1 else {}
                if isinstance(entry[0], list):
                    out.append((node_id, name, "bogus"))
                elif entry[0] in ("INT", "FLOAT"):
                    step = 1 if entry[0] == "INT" else opts.get("step", 0.01)
                    out += [(node_id, name, v) for v in (opts["min"] - step, opts["min"], opts["max"],
                                                         opts["max"] + step, math.inf, -math.inf, math.nan)]
    return out


@pytest.mark.parametrize("node_id,name,value", route_cases())
def test_preview_route_refuses_exactly_what_the_node_refuses(host, node_id, name, value):
    """Every numeric widget of every previewed node at, below and beyond its declared bounds, infinite and NaN, and
    every combo with an unknown option: the canvas preview route refuses the value exactly when a queued prompt
    with it fails (ComfyUI's validation or the node's own check), so the canvas never draws a picture for values the
    prompt then fails on."""
    values = {**widget_defaults(node_id), name: value}
    assert route_refuses(node_id, values) == node_refuses(host, node_id, values), values


@pytest.mark.parametrize("node_id,values", [
    ("LongAnimWanZoLAWindowsV2", {"context_length": 0, "stride": 0}),
    ("LongAnimZoLAWindowsV2", {"max_skip": 1000000}),
    ("LongAnimContextWindowsV2", {"context_schedule": "static", "context_overlap": -5}),
    ("LongAnimContextWindowsV2", {"context_schedule": "static", "context_overlap": 99}),
    ("LongAnimContextWindowsV2", {"context_schedule": "looped", "retain_first_frame": True}),
    ("LongAnimContextWindowsV2", {"context_schedule": "static", "context_length": 8, "context_overlap": 8}),
    ("LongAnimGenLWindowsV2", {"context_length": 4, "stride": 9}),
    ("LongAnimZoLAWindowsV2", {"frame_unit": "video frames", "context_length": 17, "stride": 9}),
    # retired ids with their old input names: the route maps them to the current node as the alias does
    ("LongAnimContextWindows", {"context_schedule": "static", "overlap": 99}),
    ("LongAnimContextWindows", {"context_schedule": "looped", "keep_first_frame": True}),
    ("LongAnimZoLAWindows", {"length_unit": "video frames", "context_length": 17, "stride": 9}),
])
def test_preview_route_and_node_agree_on_combinations(host, node_id, values):
    """Values refused only together (a cross-input rule of the node's own check) are refused by both or neither."""
    values = {**widget_defaults(node_id), **values}
    assert route_refuses(node_id, values) == node_refuses(host, node_id, values), values
