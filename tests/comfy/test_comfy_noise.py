"""Tier 2: noise nodes drive SamplerCustomAdvanced and (through the model patch) plain KSampler."""
import pytest
import torch
from longanim.nodes import noise_nodes as nn
from longanim.nodes.algorithms.noise import NoiseRecipe

NODES = {
    nn.LongAnimRepeatMaskNoise: dict(ratio=0.5, base_length=4),
    nn.LongAnimDependencyNoise: dict(lam=0.05, candidates=4, iterations=5, variant="algorithm1"),
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


def test_model_patch_respects_disabled_noise(host):
    latent = {"samples": torch.randn(6, 4, 4, 4, generator=torch.Generator().manual_seed(0))}
    base = host.sd15()
    (patched,) = nn.LongAnimApplyNoiseToModel().run(base, NoiseRecipe("mixed", {"alpha": 0.9}))
    a = host.ksample(base, latent, seed=5, steps=3, disable_noise=True, start_step=1)
    b = host.ksample(patched, latent, seed=5, steps=3, disable_noise=True, start_step=1)
    assert torch.equal(a, b)


def test_preview_node_image(host):
    recipe = nn.LongAnimProgressiveNoise().run(seed=0, alpha=0.8)[1]
    (img,) = nn.LongAnimNoisePreview().run(recipe, seed=1, frames=24)
    assert img.ndim == 4 and img.shape[0] == 1 and img.shape[-1] == 3
    assert 0 <= float(img.min()) and float(img.max()) <= 1
    (img5,) = nn.LongAnimNoisePreview().run(recipe, seed=1, frames=24, latent=host.wan_latent(9))
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
