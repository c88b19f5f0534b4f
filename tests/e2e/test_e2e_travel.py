"""e2e: noise travel through /prompt: a SamplerCustomAdvanced graph with the travel SAMPLER and LongAnim windows,
a plain KSampler graph with the travel MODEL patch, and input errors that name the input."""
from comfy_client import Graph, execution_error


def wan_travel_graph(start=0.0, end=0.5, jump=1, steps=2):
    g = Graph()
    model, vae, pos, neg = g.tiny_model("wan21")
    model = g.out(g.node("LongAnimWanZoLAWindows", model=model, context_length=9, stride=5, max_skip=2,
                         fusion="zola", seed=0))
    noise = g.node("LongAnimRepeatMaskNoise", seed=3, ratio=0.5, base_length=3)
    guider = g.node("CFGGuider", model=model, positive=pos, negative=neg, cfg=5.0)
    inner = g.node("KSamplerSelect", sampler_name="euler")
    sampler = g.node("LongAnimNoiseTravel", sampler=g.out(inner), jump=jump, start=start, end=end, repeats=1,
                     seed=0, recipe=g.out(noise, 1))
    sigmas = g.node("BasicScheduler", model=model, scheduler="simple", steps=steps, denoise=1.0)
    latent = g.node("EmptyHunyuanLatentVideo", width=32, height=32, length=21, batch_size=1)
    sampled = g.node("SamplerCustomAdvanced", noise=g.out(noise), guider=g.out(guider), sampler=g.out(sampler),
                     sigmas=g.out(sigmas), latent_image=g.out(latent))
    images = g.node("VAEDecode", samples=g.out(sampled), vae=vae)
    g.node("SaveImage", images=g.out(images), filename_prefix="e2e_travel_wan")
    return g


def sd_ksampler_travel_graph(jump=0, frames=4, steps=1):
    g = Graph()
    model, vae, pos, neg = g.tiny_model("sd15")
    model = g.out(g.node("LongAnimNoiseTravelModel", model=model, jump=jump, start=0.0, end=0.3, repeats=1, seed=0))
    latent = g.node("EmptyLatentImage", width=32, height=32, batch_size=frames)
    g.ksample_decode(model, pos, neg, g.out(latent), vae, seed=1, steps=steps, save="e2e_travel_sd")
    return g


def test_wan_sampler_custom_advanced_with_travel_and_windows(server):
    entry = server.run(wan_travel_graph().prompt())
    assert execution_error(entry) is None, execution_error(entry)
    assert len(server.output_files(entry)) == 21


def test_sd_ksampler_with_travel_model_patch(server):
    entry = server.run(sd_ksampler_travel_graph().prompt())
    assert execution_error(entry) is None, execution_error(entry)
    assert len(server.output_files(entry)) == 4


def test_travel_input_errors_name_the_input(server):
    entry = server.run(wan_travel_graph(start=0.5, end=0.2).prompt())
    err = execution_error(entry)
    assert err is not None and err["node_type"] == "LongAnimNoiseTravel"
    assert err["exception_message"].startswith("start must be <= end")
    # only known once the steps are: L = 2 does not fit the 1 step of [0, 0.3) of 1 step
    entry = server.run(sd_ksampler_travel_graph(jump=2).prompt())
    err = execution_error(entry)
    assert err is not None and err["node_type"] == "KSampler"
    assert err["exception_message"].startswith("jump must be <= the 1 sampling steps")
