"""The trained world models' plumbing against the host's own classes: the image model's compact file assembles
into the UNet ComfyUI detects, and both palette decoders give synthworld's palette -> RGB map."""
import pathlib
import sys

import pytest
import torch

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "tools"))
import synthworld  # noqa: E402
import tiny_models  # noqa: E402
import train_tiny_image  # noqa: E402

COMPACT = ROOT / "tests" / "models" / tiny_models.WORLD_IMAGE_COMPACT


def test_assemble_rebuilds_the_fixed_tensors_exactly():
    """compact -> assemble keeps every trained tensor (float16) and rebuilds the rest as the training held it."""
    model = train_tiny_image.build_model(0)
    full = model.state_dict()
    rebuilt = train_tiny_image.assemble(train_tiny_image.compact(full))
    assert rebuilt.keys() == full.keys()
    for k, v in full.items():
        if train_tiny_image.is_trained(k):
            assert torch.equal(rebuilt[k], v.to(torch.float16).float()), k
        else:
            assert torch.equal(rebuilt[k], v.float()), k
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert "time_embed.2.weight" in frozen and "middle_block.0.out_layers.3.weight" in frozen


def test_committed_image_model_is_detected_as_sd15(tmp_path):
    import comfy.sd
    from safetensors import safe_open

    if not COMPACT.exists():
        pytest.fail(f"{COMPACT} is missing: train it with tests/tools/train_tiny_image.py")
    assert COMPACT.stat().st_size < 20 * 2**20
    with safe_open(str(COMPACT), "pt") as f:
        meta = f.metadata()
    assert meta["script_version"] == train_tiny_image.SCRIPT_VERSION
    assert meta["longanim_recipe"] == train_tiny_image.RECIPE
    out = tmp_path / "unet.safetensors"
    train_tiny_image.install(COMPACT, out)
    model = comfy.sd.load_diffusion_model(str(out))
    assert type(model.model.model_config).__name__ == "SD15"


@pytest.mark.parametrize("family", ["wan21", "sd15"])
def test_palette_decoders_match_the_linear_map(family):
    """Clean world latents through the decoder module: within 0.01 of synthworld.decode_rgb (measured: 0.009 for
    TAEHV, 0.001 for TAESD; the rest is the piecewise-linear inverse of the decoders' input clamp)."""
    import comfy.latent_formats

    worst = 0.0
    for seed in range(4):
        colours = [seed % 4, (seed + 1) % 4] if seed % 2 else [seed % 4]
        if family == "wan21":
            from comfy.taesd.taehv import TAEHV

            fmt = comfy.latent_formats.Wan21()
            dec = TAEHV(latent_channels=16, latent_format=None)
            dec.load_state_dict(tiny_models.world_vae_state_dict(fmt.latents_mean, fmt.latents_std, dec),
                                strict=False)
            z = synthworld.clip(seed, 6, colours=colours)[0]
            with torch.no_grad():
                got = dec.decode(fmt.process_out(z.unsqueeze(0)))[0].movedim(0, -1).clamp(0, 1)  # [T*4-3, H, W, 3]
            ref = synthworld.decode_rgb(z)[[(i + 3) // 4 for i in range(got.shape[0])]]
        else:
            from comfy.taesd.taesd import TAESD

            dec = TAESD(latent_channels=4)
            dec.load_state_dict(tiny_models.world_taesd_state_dict(dec), strict=False)
            z = synthworld.clip(seed, 6, colours=colours, channels=synthworld.IMAGE_CHANNELS)[0]
            with torch.no_grad():
                out = dec.decode(comfy.latent_formats.SD15().process_out(z.movedim(0, 1)))  # raw SD1.5 latent
            got = ((out + 1) / 2).clamp(0, 1).movedim(1, -1)
            ref = synthworld.decode_rgb(z)
        worst = max(worst, float((got - ref).abs().max()))
    assert worst < 0.01, worst
