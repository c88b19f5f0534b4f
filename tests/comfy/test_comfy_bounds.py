"""Issue 11, generated from the node schemas: every numeric input at its bounds either works or fails with a
ValueError that names an input of that node — never a stack trace from deep inside torch.

Cheap nodes (patches, noise, previews) run in the default suite; nodes that sample (refinement, phased inference,
inversion, metrics) run their bound sweep behind ``-m slow``, on the tiny Wan model with a 4x4 latent of a few frames.
A case whose value makes the run too long to finish (steps = 1000, 256 clips, ...) is run until the diffusion model
has been called ``CALL_BUDGET`` times and then interrupted through ComfyUI's own interrupt flag: validation passed
and sampling started, which is what "the value is accepted" means. A case that ends by itself must give a finite
result of the expected shape. Values beyond the bounds are refused by the server (tests/e2e/test_e2e_reliability.py).
"""
import re

import comfy.model_management
import comfy.samplers
import nodes as comfy_nodes
import pytest
import torch
from longanim.nodes.algorithms.noise import NoiseRecipe
from longanim.nodes.registry import NODE_CLASS_MAPPINGS

SAMPLING = {"LongAnimRandomizedBlendRefine", "LongAnimPhasedAnimation", "LongAnimInvert", "LongAnimVideoMetrics",
            "LongAnimUpscaleEncode"}
NEEDS_CLIP = {"LongAnimPromptSchedule"}
# Refinement gets more frames than one default chunk (24 / overlap 8): two chunks and a blended overlap.
LATENT_FRAMES = {"LongAnimRandomizedBlendRefine": 30, "LongAnimPhasedAnimation": 3}
CALL_BUDGET = 64  # diffusion-model calls before a sampling case is interrupted (the longest default case: 40)
UNET_ONLY = {"LongAnimTemporalMomentumAttention", "LongAnimCrossFrameAttention", "LongAnimWindowLoRA"}


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


# In-schema values the node may refuse, with the reason: overlap's max (4095) is only valid with a chunk_length
# above it; with the default chunk_length (24) it must be refused naming overlap.
REFUSAL_ALLOWED = {("LongAnimRandomizedBlendRefine", "overlap", "max")}


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
    if node_id in ("LongAnimRandomizedBlendRefine", "LongAnimInvert"):
        assert tensors[0].shape == kwargs["latent"]["samples"].shape
    if node_id == "LongAnimPhasedAnimation":
        shape = list(kwargs["latent"]["samples"].shape)
        shape[2] *= kwargs["num_clips"]
        assert list(tensors[0].shape) == shape
    return f"{prefix}ok"


CHEAP = set(NODE_CLASS_MAPPINGS) - SAMPLING - NEEDS_CLIP
OUTCOMES: dict = {}


@pytest.mark.parametrize("node_id,name,which", cases(CHEAP))
def test_numeric_bounds_of_cheap_nodes(host, node_id, name, which):
    run_case(host, node_id, name, which)


@pytest.mark.slow
@pytest.mark.parametrize("node_id,name,which", cases(SAMPLING))
def test_numeric_bounds_of_sampling_nodes(host, node_id, name, which):
    OUTCOMES[node_id, name, which] = run_sampling_case(host, node_id, name, which)
    print(f"{node_id}.{name}={which}: {OUTCOMES[node_id, name, which]}")
