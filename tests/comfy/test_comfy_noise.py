"""Tier 2: noise nodes drive SamplerCustomAdvanced and (through the model patch) plain KSampler."""
import pytest
import torch
from longanim.nodes import noise_nodes as nn
from longanim.nodes.algorithms.noise import NoiseRecipe

NODES = {
    nn.LongAnimRepeatMaskNoise: dict(ratio=0.5, base_length=4),
    nn.LongAnimDependencyNoise: dict(lam=0.05, candidates=4, iterations=5, variant="halve_step"),
    nn.LongAnimMixedNoise: dict(alpha=0.5),
    nn.LongAnimProgressiveNoise: dict(alpha=0.7),
    nn.LongAnimFreeNoiseShuffle: dict(window_length=4, stride=2),
}


@pytest.mark.parametrize("family", ["sd15", "wan21"])
@pytest.mark.parametrize("cls", list(NODES), ids=lambda c: c.NODE_ID)
def test_noise_node_outputs_match_and_drive_sampler(host, cls, family):
    latent = host.sd_latent(10) if family == "sd15" else host.wan_latent(10)
    model = host.sd15() if family == "sd15" else host.wan()
    noise, recipe = cls().run(seed=3, **NODES[cls])
    drawn = noise.generate_noise(latent)
    assert drawn.shape == latent["samples"].shape
    axis = 0 if family == "sd15" else 2
    assert torch.equal(drawn, recipe.draw(tuple(latent["samples"].shape), axis, 3))
    assert torch.equal(drawn, cls().run(seed=3, **NODES[cls])[0].generate_noise(latent))
    assert not torch.equal(drawn, cls().run(seed=4, **NODES[cls])[0].generate_noise(latent))
    out = host.custom_advanced(model, latent, noise, steps=2)
    assert out.shape == latent["samples"].shape and torch.isfinite(out).all()


@pytest.mark.parametrize("family", ["sd15", "wan21"])
def test_model_patch_replaces_ksampler_noise_and_does_not_leak(host, family):
    latent = host.sd_latent(8) if family == "sd15" else host.wan_latent(8)
    base = host.sd15() if family == "sd15" else host.wan()
    recipe = NoiseRecipe("mixed", {"alpha": 0.9})
    (patched,) = nn.LongAnimApplyNoiseToModel().run(base, recipe)
    plain_before = host.ksample(base, latent, seed=5, steps=2)
    with_patch = host.ksample(patched, latent, seed=5, steps=2)
    plain_after = host.ksample(base, latent, seed=5, steps=2)
    assert torch.equal(plain_before, plain_after), "the patch leaked into the original MODEL"
    assert not torch.equal(with_patch, plain_before)
    # the patched KSampler equals SamplerCustomAdvanced driven by the same recipe and seed
    noise = nn.LongAnimMixedNoise().run(seed=5, alpha=0.9)[0]
    via_custom = host.custom_advanced(base, latent, noise, steps=2)
    assert torch.allclose(with_patch, via_custom, atol=1e-5)


def _validate(node, inputs, monkeypatch):
    """ComfyUI's own validation of one node of a prompt (what the server does before running a saved workflow)."""
    import asyncio

    import execution
    import nodes as comfy_nodes

    monkeypatch.setitem(comfy_nodes.NODE_CLASS_MAPPINGS, node.NODE_ID, node)
    prompt = {"1": {"class_type": node.NODE_ID, "inputs": inputs}}
    valid, errors, _ = asyncio.run(execution.validate_inputs("test", prompt, "1", {}))
    return valid, errors


def test_dependency_noise_loads_the_old_variant_names_as_the_new(host, monkeypatch):
    """'algorithm1' / 'listing1' (saved before the variants were named for what they do) pass ComfyUI's validation
    and give exactly the noise of 'halve_step' / 'fifth_step'; a value that never existed is refused by name."""
    cls = nn.LongAnimDependencyNoise
    base = dict(seed=3, lam=0.05, candidates=10, iterations=5)
    latent = host.wan_latent(10)
    for old, new in (("algorithm1", "halve_step"), ("listing1", "fifth_step")):
        for value in (old, new):
            assert _validate(cls, {**base, "variant": value}, monkeypatch)[0], value
        assert torch.equal(cls().run(variant=old, **base)[0].generate_noise(latent),
                           cls().run(variant=new, **base)[0].generate_noise(latent))
    valid, errors = _validate(cls, {**base, "variant": "paper"}, monkeypatch)
    assert not valid and "variant" in str(errors) and "halve_step" in str(errors)
    assert "'algorithm1'" not in str(cls.INPUT_TYPES()["required"]["variant"][0])


def test_dependency_noise_candidates_is_retired(host):
    """The random search's pick is replaced by the drift guard for every λ below about 1.6, so the input is ignored
    (kept so saved workflows load): any value gives the noise of the paper's 10 draws, and the tooltip says so."""
    cls = nn.LongAnimDependencyNoise
    latent = host.wan_latent(10)
    for lam in (0.01, 2.0):  # below and above the range where the search picks
        ten = cls().run(seed=3, lam=lam, candidates=10, iterations=5, variant="halve_step")
        one = cls().run(seed=3, lam=lam, candidates=1, iterations=5, variant="halve_step")
        assert torch.equal(ten[0].generate_noise(latent), one[0].generate_noise(latent))
        assert one[1].params["candidates"] == 10
    assert cls.INPUT_TYPES()["required"]["candidates"][1]["tooltip"].startswith("Retired: ignored")


def test_model_patch_respects_disabled_noise(host):
    latent = {"samples": torch.randn(6, 4, 4, 4, generator=torch.Generator().manual_seed(0))}
    base = host.sd15()
    (patched,) = nn.LongAnimApplyNoiseToModel().run(base, NoiseRecipe("mixed", {"alpha": 0.9}))
    a = host.ksample(base, latent, seed=5, steps=3, disable_noise=True, start_step=1)
    b = host.ksample(patched, latent, seed=5, steps=3, disable_noise=True, start_step=1)
    assert torch.equal(a, b)


def test_preview_node_image(host):
    recipe = nn.LongAnimProgressiveNoise().run(seed=0, alpha=0.8)[1]
    (img,) = nn.LongAnimNoisePreviewV2().run(recipe, seed=1, length=24)
    assert img.ndim == 4 and img.shape[0] == 1 and img.shape[-1] == 3
    assert 0 <= float(img.min()) and float(img.max()) <= 1
    (img5,) = nn.LongAnimNoisePreviewV2().run(recipe, seed=1, length=24, latent=host.wan_latent(9))
    assert img5.ndim == 4


@pytest.mark.parametrize("cls,params,needle", [
    (nn.LongAnimRepeatMaskNoise, dict(ratio=1.5, base_length=16), "ratio"),
    (nn.LongAnimRepeatMaskNoise, dict(ratio=0.5, base_length=0), "base_length"),
    (nn.LongAnimMixedNoise, dict(alpha=-0.1), "alpha"),
    (nn.LongAnimDependencyNoise, dict(lam=-1.0, candidates=10, iterations=15, variant="algorithm1"), "lam"),
])
def test_bad_input_names_the_input(cls, params, needle):
    with pytest.raises(ValueError, match=needle):
        cls().run(seed=0, **params)
