"""e2e: per-window LoRA and long-video inversion through the real server (/prompt)."""
import pathlib
import sys

from comfy_client import Graph, execution_error

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "tools"))
import tiny_lora  # noqa: E402


def _sd_model(g, lora=None, intervals="0-3"):
    model = g.out(g.node("UNETLoader", unet_name="longanim_tiny_sd15.safetensors", weight_dtype="default"))
    model = g.out(g.node("LongAnimGenLWindows", model=model, context_length=2, stride=2, fusion="flat"))
    if lora:
        model = g.out(g.node("LongAnimWindowLoRA", model=model, lora_name=lora, strength=0.8,
                             frame_intervals=intervals))
    return model


def test_invert_then_ksampler_advanced_add_noise_disable(server):
    tiny_lora.ensure(server.comfyui)  # the server lists loras on demand (folder_paths rescans)
    g = Graph()
    model = _sd_model(g, lora=tiny_lora.SD15, intervals="0-1")
    pos = g.out(g.node("TinyTestConditioning", text="a fox", family="sd15"))
    vae = g.out(g.node("VAELoader", vae_name="longanim_tiny_taesd.safetensors"))
    src = g.node("EmptyLatentImage", width=32, height=32, batch_size=4)
    # a non-empty source video: one KSampler pass from the empty latent
    video = g.node("KSampler", model=model, seed=1, steps=1, cfg=1.0, sampler_name="euler", scheduler="simple",
                   positive=pos, negative=pos, latent_image=g.out(src), denoise=1.0)
    inv = g.node("LongAnimInvert", model=model, positive=pos, latent=g.out(video), steps=2, scheduler="simple", seed=5)
    rec = g.node("KSamplerAdvanced", model=model, add_noise="disable", noise_seed=5, steps=2, cfg=1.0,
                 sampler_name="euler", scheduler="simple", positive=pos, negative=pos, latent_image=g.out(inv),
                 start_at_step=0, end_at_step=10000, return_with_leftover_noise="disable")
    g.node("SaveImage", images=g.out(g.node("VAEDecode", samples=g.out(rec), vae=vae)), filename_prefix="e2e_inv")
    entry = server.run(g.prompt())
    assert execution_error(entry) is None, execution_error(entry)
    assert len(server.output_files(entry)) == 4


def test_window_lora_bad_file_is_a_clear_error(server):
    tiny_lora.ensure(server.comfyui)
    g = Graph()
    model = _sd_model(g, lora=tiny_lora.WAN)
    pos = g.out(g.node("TinyTestConditioning", text="a fox", family="sd15"))
    lat = g.node("EmptyLatentImage", width=32, height=32, batch_size=4)
    out = g.node("KSampler", model=model, seed=1, steps=1, cfg=1.0, sampler_name="euler", scheduler="simple",
                 positive=pos, negative=pos, latent_image=g.out(lat), denoise=1.0)
    g.node("SaveLatent", samples=g.out(out), filename_prefix="e2e_bad_lora")
    entry = server.run(g.prompt())
    err = execution_error(entry)
    assert err is not None and err["node_type"] == "LongAnimWindowLoRA"
    assert tiny_lora.WAN in err["exception_message"] and "lora_name" in err["exception_message"]
