"""e2e: randomized-blend refinement and phased animation through /prompt on the tiny models."""
from comfy_client import Graph, execution_error


def _wan(g):
    return g.tiny_model("wan21")


def test_refine_prompt_upscale_encode_then_blend(server):
    g = Graph()
    model, vae, pos, neg = _wan(g)
    latent = g.node("EmptyHunyuanLatentVideo", width=16, height=16, length=17, batch_size=1)
    low = g.node("KSampler", model=model, seed=1, steps=1, cfg=5.0, sampler_name="euler", scheduler="normal",
                 positive=pos, negative=neg, latent_image=g.out(latent), denoise=1.0)
    images = g.node("VAEDecode", samples=g.out(low), vae=vae)
    up = g.node("LongAnimUpscaleEncode", images=g.out(images), vae=vae, scale=2.0)
    refined = g.node("LongAnimRandomizedBlendRefine", model=model, positive=pos, negative=neg, latent=g.out(up),
                     denoise=0.5, steps=2, cfg=5.0, sampler_name="euler", scheduler="normal", chunk_length=4,
                     overlap=1, seed=3, mode="randomized_blend")
    out = g.node("VAEDecode", samples=g.out(refined), vae=vae)
    g.node("SaveImage", images=g.out(out), filename_prefix="e2e_refine")
    entry = server.run(g.prompt())
    assert execution_error(entry) is None, execution_error(entry)
    assert len(server.output_files(entry)) > 0


def test_phased_prompt(server):
    def graph(gamma, steps=4):
        g = Graph()
        model, vae, pos, neg = _wan(g)
        latent = g.node("EmptyHunyuanLatentVideo", width=32, height=32, length=5, batch_size=1)
        phased = g.node("LongAnimPhasedAnimation", model=model, positive=pos, negative=neg, latent=g.out(latent),
                        num_clips=3, steps=steps, cfg=5.0, scheduler="simple", gamma=gamma, omega=0.2, seed=0)
        out = g.node("VAEDecode", samples=g.out(phased), vae=vae)
        g.node("SaveImage", images=g.out(out), filename_prefix="e2e_phased")
        return g

    entry = server.run(graph(0.5).prompt())
    assert execution_error(entry) is None, execution_error(entry)
    assert len(server.output_files(entry)) > 0
    entry = server.run(graph(0.8, steps=8).prompt())  # paper defaults: M = ceil(0.8 x 8) = 7 shared steps of 8
    assert execution_error(entry) is None, execution_error(entry)
    entry = server.run(graph(0.8).prompt())  # M = ceil(0.8 x 4) = 4: every clip would be a copy of clip 1
    err = execution_error(entry)
    assert err is not None and "gamma / steps" in str(err), err
