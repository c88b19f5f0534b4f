"""Issue 11, generated from the node schemas: every numeric input at its bounds either works or fails with a
ValueError that names an input of that node — never a stack trace from deep inside torch.

Cheap nodes (patches, noise, previews) run in the default suite; nodes that sample (refinement, phased inference,
inversion, metrics) run their bound sweep behind ``-m slow``.
"""
import comfy.samplers
import pytest
import torch
from longanim.nodes.algorithms.noise import NoiseRecipe
from longanim.nodes.registry import NODE_CLASS_MAPPINGS

SAMPLING = {"LongAnimRandomizedBlendRefine", "LongAnimPhasedAnimation", "LongAnimInvert", "LongAnimVideoMetrics",
            "LongAnimUpscaleEncode"}
NEEDS_CLIP = {"LongAnimPromptSchedule"}
UNET_ONLY = {"LongAnimTemporalMomentumAttention", "LongAnimCrossFrameAttention", "LongAnimWindowLoRA"}


def value_for(kind, opts, node_id, host):
    unet = node_id in UNET_ONLY
    if kind == "MODEL":
        return host.sd15() if unet else host.wan()
    if kind == "LATENT":
        return host.sd_latent(6) if unet else host.wan_latent(6)
    if kind == "CONDITIONING":
        return host.cond("a cat", "sd15" if unet else "wan21")
    if kind == "LONGANIM_NOISE":
        return NoiseRecipe("mixed", {"alpha": 0.5})
    if kind == "SAMPLER":
        return comfy.samplers.sampler_object("euler")
    if kind == "IMAGE":
        return torch.rand(6, 32, 32, 3, generator=torch.Generator().manual_seed(0))
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
    cls = NODE_CLASS_MAPPINGS[node_id]
    spec = cls.INPUT_TYPES()
    kwargs = {}
    for section in ("required", "optional"):
        for key, entry in spec.get(section, {}).items():
            value = value_for(entry[0], entry[1] if len(entry) > 1 else {}, node_id, host)
            if value is None:
                pytest.skip(f"{node_id}.{key}: no test value for type {entry[0]}")
            kwargs[key] = value
    opts = dict(spec.get("required", {}), **spec.get("optional", {}))[name][1]
    kwargs[name] = opts[which]
    names = set(kwargs) | {"ControlNet", "model", "latent"}
    try:
        getattr(cls(), cls.FUNCTION)(**kwargs)
    except ValueError as e:
        assert any(n in str(e) for n in names), f"{node_id}.{name}={kwargs[name]}: error names no input: {e}"


CHEAP = set(NODE_CLASS_MAPPINGS) - SAMPLING - NEEDS_CLIP


@pytest.mark.parametrize("node_id,name,which", cases(CHEAP))
def test_numeric_bounds_of_cheap_nodes(host, node_id, name, which):
    run_case(host, node_id, name, which)


@pytest.mark.slow
@pytest.mark.parametrize("node_id,name,which", cases(SAMPLING))
def test_numeric_bounds_of_sampling_nodes(host, node_id, name, which):
    run_case(host, node_id, name, which)
