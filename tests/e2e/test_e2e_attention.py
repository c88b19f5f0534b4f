"""e2e: attention patches through /prompt: SD KSampler with temporal momentum + LongAnim windows, Wan with expansion.

Outputs are saved as latents (SaveLatent): the tiny VAEs cost more CPU than the sampling itself, and the decode is
covered by test_e2e_server.
"""
import safetensors.torch
import torch
from comfy_client import Graph, execution_error


def saved_latent(server, entry) -> torch.Tensor:
    files = server.output_files(entry, kind="latents")
    assert len(files) == 1 and files[0].exists(), files
    return safetensors.torch.load_file(str(files[0]))["latent_tensor"]


def sd_prompt(momentum_node: dict, frames: int = 8, windows: bool = True) -> dict:
    g = Graph()
    model = g.out(g.node("UNETLoader", unet_name="longanim_tiny_sd15.safetensors", weight_dtype="default"))
    pos = g.node("TinyTestConditioning", text="a fox", family="sd15")
    neg = g.node("TinyTestConditioning", text="", family="sd15")
    model = g.out(g.node("LongAnimTemporalMomentumAttention", model=model, **momentum_node))
    if windows:
        model = g.out(g.node("LongAnimZoLAWindows", model=model, context_length=5, stride=3, max_skip=2,
                             fusion="zola", seed=0, max_windows_per_batch=2))
    latent = g.node("EmptyLatentImage", width=32, height=32, batch_size=frames)
    sampled = g.node("KSampler", model=model, seed=3, steps=1, cfg=1.0, sampler_name="euler", scheduler="normal",
                     positive=g.out(pos), negative=g.out(neg), latent_image=g.out(latent), denoise=1.0)
    g.node("SaveLatent", samples=g.out(sampled), filename_prefix="e2e_attention_sd")
    return g.prompt()


def test_sd_ksampler_with_momentum_and_windows(server):
    entry = server.run(sd_prompt(dict(momentum=0.98, start_percent=0.0, end_percent=1.0, blocks="all")))
    assert execution_error(entry) is None, execution_error(entry)
    latent = saved_latent(server, entry)
    assert latent.shape == (8, 4, 4, 4) and torch.isfinite(latent).all()


def test_sd_momentum_list_of_wrong_length_is_a_clear_error(server):
    entry = server.run(sd_prompt(dict(momentum=0.98, start_percent=0.0, end_percent=1.0, blocks="all",
                                      momentum_per_frame="0, 0.9, 0.9"), frames=4, windows=False))
    err = execution_error(entry)
    assert err is not None and "momentum_per_frame" in err["exception_message"]


def test_wan_with_attention_expansion(server):
    g = Graph()
    model = g.out(g.node("UNETLoader", unet_name="longanim_tiny_wan21.safetensors", weight_dtype="default"))
    pos = g.node("TinyTestConditioning", text="a fox", family="wan21")
    neg = g.node("TinyTestConditioning", text="", family="wan21")
    model = g.out(g.node("LongAnimAttentionExpansion", model=model, base_length=3, stride=0,
                         max_windows_per_batch=0))
    latent = g.node("EmptyHunyuanLatentVideo", width=64, height=64, length=25, batch_size=1)
    sampled = g.node("KSampler", model=model, seed=3, steps=2, cfg=5.0, sampler_name="euler", scheduler="simple",
                     positive=g.out(pos), negative=g.out(neg), latent_image=g.out(latent), denoise=1.0)
    g.node("SaveLatent", samples=g.out(sampled), filename_prefix="e2e_attention_wan")
    entry = server.run(g.prompt())
    assert execution_error(entry) is None, execution_error(entry)
    latent = saved_latent(server, entry)
    assert latent.shape == (1, 16, 7, 8, 8) and torch.isfinite(latent).all()
