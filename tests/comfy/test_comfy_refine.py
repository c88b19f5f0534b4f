"""Tier 2: randomized-blend refinement (StreamingT2V sec. 4.3) and phased animation (CLIA sec. 3.4) on the tiny
models, through the nodes and ComfyUI's own samplers."""
import pytest
import torch
from longanim.nodes import refine_nodes as rn
from longanim.nodes.comfy import refine as car


@pytest.fixture(autouse=True)
def _no_grad():
    with torch.inference_mode():  # as ComfyUI's executor runs nodes
        yield


def _video(family, frames, seed=0):
    g = torch.Generator().manual_seed(seed)
    if family == "sd15":
        return {"samples": torch.randn(frames, 4, 4, 4, generator=g)}
    return {"samples": torch.randn(1, 16, frames, 4, 4, generator=g)}


def _model(host, family):
    return host.sd15() if family == "sd15" else host.wan()


def _refine(host, family, latent, mode="randomized_blend", seed=1, chunk=6, overlap=2, steps=2, denoise=0.5,
            **kw):
    return rn.LongAnimRandomizedBlendRefine().run(
        _model(host, family), host.cond("a fox", family), host.cond("", family), latent, denoise, steps, 5.0,
        "euler", "normal", chunk, overlap, seed, mode, **kw)[0]["samples"]


def _frames(t, idx):
    axis = 0 if t.ndim == 4 else 2
    return t.index_select(axis, torch.tensor(idx))


@pytest.mark.parametrize("family", ["sd15", "wan21"])
def test_refine_through_the_node_is_deterministic_and_windowed(host, family):
    lat = _video(family, 11 if family == "wan21" else 8)
    a = _refine(host, family, lat)
    assert a.shape == lat["samples"].shape and torch.isfinite(a).all()
    assert not torch.allclose(a, lat["samples"])
    if family == "sd15":  # the tiny SD UNet is slow on CPU: one run is enough there
        return
    assert torch.equal(a, _refine(host, family, lat)), "same seed, same output"
    assert not torch.equal(a, _refine(host, family, lat, seed=2))
    assert not torch.equal(a, _refine(host, family, lat, mode="shared_noise_only"))
    assert torch.equal(lat["samples"], _video(family, 11)["samples"]), "the input latent was changed"
    out = rn.LongAnimRandomizedBlendRefine().run(
        _model(host, family), host.cond("a fox", family), host.cond("", family), lat, 0.5, 1, 5.0, "euler", "normal",
        6, 2, 1, "naive")[0]
    assert out["longanim_windows"] == [list(range(0, 6)), list(range(4, 10)), list(range(5, 11))]  # for the metrics


def test_chunk_longer_than_video_is_plain_sdedit_of_the_whole_video(host):
    lat = _video("wan21", 7)
    one = _refine(host, "wan21", lat, chunk=24, overlap=8)
    plain = host.ksample(host.wan(), lat, seed=1, steps=2, cfg=5.0, positive=host.cond("a fox", "wan21"),
                         negative=host.cond("", "wan21"), denoise=0.5)
    assert torch.equal(one, plain)


def test_naive_equals_independent_refinement_of_each_chunk(host):
    T, chunk, overlap = 11, 6, 2  # chunks [0..5], [4..9], [5..10] (last one shifted)
    lat = _video("wan21", T)
    out = _refine(host, "wan21", lat, mode="naive", chunk=chunk, overlap=overlap)
    chunks = car.refine_chunks(T, chunk, overlap)
    keep = car.naive_keep(chunks)
    assert chunks == [list(range(0, 6)), list(range(4, 10)), list(range(5, 11))]
    assert keep == [list(range(0, 6)), list(range(6, 10)), [10]]
    assert sorted(f for k in keep for f in k) == list(range(T)), "every frame from exactly one chunk"
    for i, (c, own) in enumerate(zip(chunks, keep, strict=True)):
        part = {"samples": _frames(lat["samples"], c)}
        alone = host.ksample(host.wan(), part, seed=car.chunk_seed(1, i), steps=2, cfg=5.0,
                             positive=host.cond("a fox", "wan21"), negative=host.cond("", "wan21"), denoise=0.5)
        assert torch.equal(_frames(out, own), _frames(alone, [c.index(f) for f in own])), f"chunk {i}"


def test_refine_with_a_noise_recipe_and_official_blend(host):
    from longanim.nodes.algorithms.noise import NoiseRecipe

    lat = _video("wan21", 10)
    recipe = NoiseRecipe("mixed", {"alpha": 0.5})
    a = _refine(host, "wan21", lat, recipe=recipe, blend_variant="official")
    assert torch.isfinite(a).all() and not torch.equal(a, _refine(host, "wan21", lat, blend_variant="official"))


@pytest.mark.parametrize("kw,needle", [
    (dict(chunk=6, overlap=6), "overlap"),
    (dict(denoise=0.0), "denoise"),
    (dict(denoise=1.5), "denoise"),
    (dict(mode="blend"), "mode"),
])
def test_refine_bad_input_names_the_input(host, kw, needle):
    with pytest.raises(ValueError, match=needle):
        _refine(host, "wan21", _video("wan21", 8), **kw)


def test_upscale_encode(host):
    import nodes as comfy_nodes

    vae = comfy_nodes.VAELoader().load_vae("longanim_tiny_taesd.safetensors")[0]
    images = torch.rand(3, 16, 24, 3)
    (lat,) = rn.LongAnimUpscaleEncode().run(images, vae, 2.0)
    assert lat["samples"].shape[0] == 3 and tuple(lat["samples"].shape[-2:]) == (4, 6)
    with pytest.raises(ValueError, match="scale"):
        rn.LongAnimUpscaleEncode().run(images, vae, 0.0)


# ---------------------------------------------------------------------------------------------- phased
def _phased(host, family, clip_frames=3, K=3, steps=4, gamma=0.5, omega=0.2, seed=0):
    latent = host.sd_latent(clip_frames) if family == "sd15" else host.wan_latent(clip_frames)
    out, saved, report = rn.LongAnimPhasedAnimation().run(
        _model(host, family), host.cond("a fox", family), host.cond("", family), latent, K, steps, 5.0, "normal",
        gamma, omega, seed)
    return out["samples"], saved, report, latent


def _clips(t, K):
    return list(t.chunk(K, dim=0 if t.ndim == 4 else 2))


@pytest.mark.parametrize("family", [pytest.param("sd15", marks=pytest.mark.slow), "wan21"])  # tiny SD is slow
def test_phased_shares_clip_one_and_saves_calls(host, family):
    # M = ceil(gamma * steps); at least 2 re-sampled steps (a single last step lands on the shared prediction)
    K, steps, gamma, M = (2, 3, 0.3, 1) if family == "sd15" else (3, 4, 0.5, 2)
    out, saved, report, latent = _phased(host, family, K=K, steps=steps, gamma=gamma)
    assert out.shape[0 if family == "sd15" else 2] == 3 * K and torch.isfinite(out).all()
    assert saved == (K - 1) * M and f"saved {saved}" in report
    clips = _clips(out, K)
    assert all(not torch.equal(clips[k], clips[0]) for k in range(1, K)), "clips 2..K re-sampled"
    assert K == 2 or not torch.equal(clips[2], clips[1]), "clips 2..K differ from each other"
    # clip 1 is a plain Euler KSampler run of one clip with the node's seed
    plain = host.ksample(_model(host, family), latent, seed=0, steps=steps, cfg=5.0, sampler="euler",
                         positive=host.cond("a fox", family), negative=host.cond("", family))
    assert torch.allclose(clips[0], plain, atol=1e-4, rtol=1e-4)
    if family == "sd15":
        return
    again = _phased(host, family)[0]
    assert torch.equal(out, again), "deterministic"
    assert not torch.equal(out, _phased(host, family, seed=1)[0])


def test_phased_gamma_one_copies_and_gamma_zero_is_independent(host):
    """gamma = 1 shares every step: the boundary returns copies of clip 1 (Eq. 9 with M = T), which the node
    refuses naming gamma and steps (a run of identical clips reported as '100 % saved' is never the intent)."""
    from longanim.nodes.comfy import phased as cp

    with pytest.raises(ValueError, match="gamma / steps: .* exact copies of clip 1"):
        _phased(host, "wan21", gamma=1.0)
    out, stats = cp.phased_animation(host.wan(), host.cond("a fox", "wan21"), host.cond("", "wan21"),
                                     host.wan_latent(3), num_clips=3, steps=4, cfg=5.0, scheduler="normal",
                                     gamma=1.0, omega=0.2, seed=0)
    c = _clips(out["samples"], 3)
    assert torch.equal(c[0], c[1]) and torch.equal(c[0], c[2]) and stats["saved"] == 8
    zero, saved0, _, latent = _phased(host, "wan21", gamma=0.0, K=2)
    assert saved0 == 0
    for k, clip in enumerate(_clips(zero, 2)):
        plain = host.ksample(host.wan(), latent, seed=k, steps=4, cfg=5.0, positive=host.cond("a fox", "wan21"),
                             negative=host.cond("", "wan21"))
        assert torch.allclose(clip, plain, atol=1e-4, rtol=1e-4), f"clip {k + 1}"


@pytest.mark.parametrize("kw,needle", [
    (dict(K=0), "num_clips"), (dict(gamma=1.2), "gamma"), (dict(omega=-0.1), "omega"), (dict(omega=2.0), "omega"),
])
def test_phased_bad_input_names_the_input(host, kw, needle):
    with pytest.raises(ValueError, match=needle):
        _phased(host, "wan21", **kw)


def test_refine_lengths_in_video_frames_equal_the_same_lengths_in_latent_frames(host):
    """length_unit = video frames on Wan: chunk 21 / overlap 8 video frames are chunk 6 / overlap 2 latent frames,
    bit for bit (the conversion of the window nodes: (n - 1) // 4 + 1, overlap n // 4)."""
    lat = _video("wan21", 11)
    latent_units = _refine(host, "wan21", lat, chunk=6, overlap=2)
    assert torch.equal(latent_units, _refine(host, "wan21", lat, chunk=21, overlap=8, length_unit="video frames"))
    assert not torch.equal(latent_units, _refine(host, "wan21", lat, chunk=21, overlap=8))


def test_prompt_schedule_in_video_frames_tags_latent_ranges():
    """Prompt Schedule with frame_unit video frames (Wan, 4n+1): '0-40' / '41-' over 81 video frames tag latent
    frames 0-10 / 11-20, what the window loop reads."""
    from longanim.nodes import window_nodes as wn

    class Clip:  # the CLIP interface the node calls (tokenize, encode_from_tokens_scheduled)
        def tokenize(self, text):
            return text

        def encode_from_tokens_scheduled(self, tokens):
            return [[torch.zeros(1, 4, 8), {"text": tokens}]]

    out = wn.LongAnimPromptScheduleV2().run(Clip(), "0-40: a cat\n41-: a dog", 81,
                                            frame_unit="video frames (Wan, HunyuanVideo: 4n+1)")[0]
    from longanim.nodes.comfy import windows as cw

    assert [(c[1]["text"], c[1][cw.TAG_KEY]) for c in out] == [("a cat", (0, 10)), ("a dog", (11, 20))]
    latent = wn.LongAnimPromptScheduleV2().run(Clip(), "0-10: a cat\n11-: a dog", 21)[0]
    assert [c[1][cw.TAG_KEY] for c in latent] == [(0, 10), (11, 20)]
