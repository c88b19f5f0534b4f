"""Tier 2: the ZoLA window node's scene-carrying noise on the host's own samplers: it is the sampler's noise
restructured (bit-equal to the same structure drawn by a noise node), it leaves a LongAnim noise node's choice alone,
and with add_noise disabled or a video of one window it changes nothing."""
import pytest
import torch
from longanim.nodes import noise_nodes as nn
from longanim.nodes import window_nodes as wn
from longanim.nodes.algorithms.noise import NoiseRecipe

FRAMES = 40


def _zola(model, noise, length=16):
    return wn.LongAnimZoLAWindows().run(model, context_length=length, stride=12, max_skip=1, fusion="zola", seed=0,
                                        noise=noise)[0]


def test_default_noise_is_freenoise_of_the_samplers_own_noise(host):
    """KSampler on the node's MODEL with its default equals the same node on a MODEL that starts from core's
    FreeNoise of the sampler's seed (Apply Noise To Model + FreeNoise Shuffle, window 16, stride 4; the recipe wins,
    the windows are the same): bit-equal, so the default noise is that FreeNoise."""
    base, latent = host.wan(), host.wan_latent(FRAMES)
    assert wn.SCENE_NOISE_DEFAULT == "freenoise"

    def default(m):
        return wn.LongAnimZoLAWindows().run(m, context_length=16, stride=12, max_skip=1, fusion="zola", seed=0)[0]

    got = host.ksample(default(base), latent, seed=11, steps=2)
    recipe = nn.LongAnimFreeNoiseShuffle().run(seed=0, window_length=16, stride=4)[1]
    ref = host.ksample(default(nn.LongAnimApplyNoiseToModel().run(base, recipe)[0]), latent, seed=11, steps=2)
    assert torch.equal(got, ref)
    assert not torch.equal(got, host.ksample(_zola(base, "off"), latent, seed=11, steps=2))
    assert torch.equal(got, host.ksample(default(base), latent, seed=11, steps=2))  # same seed, same video


def test_the_loop_aligns_the_offsets_only_in_the_early_steps(host, monkeypatch):
    """The sampler's windows with the default noise, as the loop records them: the first steps' offsets on the
    FreeNoise chunk grid, the later ones the unaligned draw (``scene_noise.FREENOISE_ALIGN_UNTIL``)."""
    from longanim.nodes.algorithms import context_schedule as cs
    from longanim.nodes.algorithms import scene_noise as sn
    from longanim.nodes.comfy import windows as cw

    seen = {}
    orig = cw.ScheduleRecord.note

    def note(rec, step, windows):
        seen.setdefault(step, [list(w) for w in windows])
        return orig(rec, step, windows)

    monkeypatch.setattr(cw.ScheduleRecord, "note", note)
    model = wn.LongAnimZoLAWindowsV2().run(host.wan(), context_length=16, stride=12, max_skip=1,
                                           fuse_method="flat", seed=0)[0]
    steps, frames = 8, 64
    host.ksample(model, host.wan_latent(frames), seed=2, steps=steps)
    opts = model.model_options["context_handler"].options
    seed = opts.step_seed(2, 0)
    first_free = cs.skip_phase_steps(sn.FREENOISE_ALIGN_UNTIL, steps)
    kw = dict(length=16, stride=12, overlap=0, max_skip=1, ends="truncate")
    assert sorted(seen) == list(range(steps))
    for step, wins in seen.items():
        want = cs.make_windows("zola", frames, step, seed, align=4 if step < first_free else 1, **kw)
        assert wins == want, step


@pytest.mark.parametrize("rule", ["tile", "blend"])
def test_rules_differ_from_the_plain_noise(host, rule):
    base, latent = host.wan(), host.wan_latent(FRAMES)
    off = host.ksample(_zola(base, "off"), latent, seed=3, steps=2)
    assert not torch.equal(host.ksample(_zola(base, rule), latent, seed=3, steps=2), off)


def test_a_noise_node_wins(host):
    """Apply Noise To Model's recipe (either node order) and a noise node's NOISE on SamplerCustomAdvanced are
    left alone by the window node's noise (tile here: its windows are those of noise off, so outputs compare)."""
    base, latent = host.wan(), host.wan_latent(FRAMES)
    recipe = NoiseRecipe("repeat_mask", {"ratio": 0.5, "base_length": 16})
    before = nn.LongAnimApplyNoiseToModel().run(base, recipe)[0]
    ref = host.ksample(_zola(before, "off"), latent, seed=4, steps=2)
    assert not torch.equal(ref, host.ksample(_zola(base, "tile"), latent, seed=4, steps=2))
    assert torch.equal(host.ksample(_zola(before, "tile"), latent, seed=4, steps=2), ref)
    after = nn.LongAnimApplyNoiseToModel().run(_zola(base, "tile"), recipe)[0]
    assert torch.equal(host.ksample(after, latent, seed=4, steps=2), ref)
    noise = nn.LongAnimRepeatMaskNoise().run(seed=4, ratio=0.5, base_length=16)[0]
    a = host.custom_advanced(_zola(base, "tile"), latent, noise, steps=2, scheduler="simple")
    b = host.custom_advanced(_zola(base, "off"), latent, noise, steps=2, scheduler="simple")
    assert torch.equal(a, b)


def test_disabled_noise_and_one_window_videos_are_unchanged(host):
    base = host.wan()
    latent = {"samples": torch.randn(1, 16, FRAMES, 4, 4, generator=torch.Generator().manual_seed(0))}
    a = host.ksample(_zola(base, "off"), latent, seed=5, steps=3, disable_noise=True, start_step=1)
    b = host.ksample(_zola(base, "tile"), latent, seed=5, steps=3, disable_noise=True, start_step=1)
    assert torch.equal(a, b)
    short = host.wan_latent(12)
    assert torch.equal(host.ksample(_zola(base, "tile"), short, seed=5, steps=2),
                       host.ksample(_zola(base, "off"), short, seed=5, steps=2))


# ---------------------------------------------------------------------------------- on the trained toy world
# Empty prompt (the model picks the balls' colours), 128 latent frames, 12 Euler steps, scheduler simple, cfg 1;
# per 16-frame block the colours present in half its frames (tests/benchmarks/bench_consistency.py). Bounds from that
# benchmark's seeds 0-5 at 256 frames (seeds this test does not run): the default noise kept agreement 0.71-0.97 and
# 1.25-2.0 sets per video; with the noise off agreement was 0.16 and 6.7 sets (seeds 0-2). Here (seeds 101, 102) the
# default measured 0.75 / 1.5 and the noise off fails the bound (checked in a scratch run).
TRAINED_SEEDS = (101, 102)
AGREEMENT_MIN_DEFAULT = 0.6
DISTINCT_MAX_DEFAULT = 2.0


def _trained_consistency(rule: str) -> dict:
    import pathlib
    import sys

    import comfy.latent_formats
    import comfy.sd
    import nodes as comfy_nodes

    root = pathlib.Path(__file__).resolve().parents[2]
    sys.path.insert(0, str(root / "tests" / "tools"))
    import synthworld
    from longanim.nodes.algorithms import world_metrics as wm

    base = comfy.sd.load_diffusion_model(str(root / "tests" / "models" / "longanim_world_wan21.safetensors"))
    model = wn.LongAnimZoLAWindows().run(base, context_length=16, stride=12, max_skip=1, fusion="zola", seed=0,
                                         noise=rule)[0]
    empty = [[synthworld.prompt_embedding(""), {}]]
    figs = []
    for seed in TRAINED_SEEDS:
        latent = {"samples": torch.zeros(1, 16, 128, 8, 8)}
        out = comfy_nodes.common_ksampler(model, seed, 12, 1.0, "euler", "simple", empty, empty, latent)[0]
        z = comfy.latent_formats.Wan21().process_in(out["samples"].float())[0]
        det = wm.detect_blobs(wm.code_maps(z, synthworld.codes()))
        figs.append(wm.scene_consistency(wm.window_colour_sets(det["count"], 16)))
    return {k: sum(f[k] for f in figs) / len(figs) for k in figs[0]}


def test_trained_world_keeps_one_scene_with_the_default_noise():
    r = _trained_consistency(wn.SCENE_NOISE_DEFAULT)
    assert r["agreement"] >= AGREEMENT_MIN_DEFAULT and r["distinct"] <= DISTINCT_MAX_DEFAULT, r
