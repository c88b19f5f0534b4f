"""Tier 2: noise travel (ZoLA Eq. 9) as a SAMPLER and as a MODEL patch, with and without LongAnim windows."""
import comfy.model_sampling
import comfy.patcher_extension
import comfy.samplers
import pytest
import torch
from comfy_extras.nodes_custom_sampler import Noise_RandomNoise
from longanim.nodes import travel_nodes as tn
from longanim.nodes import window_nodes as wn
from longanim.nodes.algorithms import noise_travel as nt
from longanim.nodes.algorithms.noise import NoiseRecipe
from longanim.nodes.comfy import basics
from longanim.nodes.comfy import travel as cat
from longanim.nodes.comfy import windows as ca

WP = comfy.patcher_extension.WrappersMP


class Recorder:
    """Counts model evaluations (PREDICT_NOISE) and window batches (CALC_COND_BATCH); shared on clone."""

    def __init__(self):
        self.calls = []  # (sigma, travel pass) per sampler model evaluation
        self.windows = []  # (sigma, travel pass, window frames) per window batch

    def __deepcopy__(self, memo):
        return self

    def predict(self, executor, x, timestep, model_options, *args, **kwargs):
        state = model_options.get("transformer_options", {}).get(basics.RUN_STATE_KEY, {})
        self.calls.append((round(float(timestep.reshape(-1)[0]), 5), state.get("pass", 0)))
        return executor(x, timestep, model_options, *args, **kwargs)

    def cond_batch(self, executor, model, conds, x_in, timestep, model_options, *args, **kwargs):
        t_opts = model_options.get("transformer_options", {})
        window = t_opts.get("context_window")
        if window is not None:
            state = t_opts.get(basics.RUN_STATE_KEY, {})
            self.windows.append((round(float(timestep.reshape(-1)[0]), 5), state.get("pass", 0),
                                 tuple(window.index_list)))
        return executor(model, conds, x_in, timestep, model_options, *args, **kwargs)


def recorded(model):
    rec = Recorder()
    m = model.clone()
    m.add_wrapper_with_key(WP.PREDICT_NOISE, "test.count", rec.predict)
    m.add_wrapper_with_key(WP.CALC_COND_BATCH, "test.count", rec.cond_batch)
    return m, rec


def wan_windows(host):
    return ca.patch_model_windows(host.wan(), ca.WindowOptions(schedule="zola", length=4, stride=3, overlap=2,
                                                               max_skip=2, fusion="zola", seed=0, ends="shift",
                                                               max_batch=1))


def euler():
    return comfy.samplers.sampler_object("euler")


def travel(sampler=None, jump=1, start=0.0, end=0.5, repeats=1, seed=3, recipe=None):
    return tn.LongAnimNoiseTravel().run(sampler or euler(), jump, start, end, repeats, seed, recipe)[0]


def run_custom(host, model, latent, sampler, steps=4, seed=1, callback=None):
    """host.custom_advanced with a progress callback."""
    if callback is None:
        return host.custom_advanced(model, latent, Noise_RandomNoise(seed), sampler=sampler, steps=steps)
    guider = comfy.samplers.CFGGuider(model)
    fam = host.family_of(latent)
    guider.set_conds(host.cond("a cat", fam), host.cond("", fam))
    guider.set_cfg(5.0)
    sigmas = comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), "normal", steps).cpu()
    noise = Noise_RandomNoise(seed).generate_noise(latent)
    return guider.sample(noise, latent["samples"], sampler, sigmas, callback=callback, seed=seed).cpu()


def test_windows_redraw_on_repeated_pass_and_call_count(host):
    model, rec = recorded(wan_windows(host))
    latent = host.wan_latent(6)
    progress = []
    out = run_custom(host, model, latent, travel(jump=1, end=0.5), steps=3,
                     callback=lambda i, x0, x, total: progress.append((i, total)))
    # 3 steps, range [0, 0.5) = steps 0, 1 -> 2 blocks of L = 1, 1 repeat: 3 + 2 * 1 * 1 model calls
    plan = cat.TravelSettings(jump=1, end=0.5).plan(3)
    assert len(rec.calls) == 3 + 2 * 1 * 1 == nt.count_model_calls(plan)
    sig = [s for s, _ in rec.calls]
    assert sig[0] == sig[1] and sig[2] == sig[3] and len(set(sig)) == 3, "each block's step is run twice"
    assert [p for _, p in rec.calls] == [0, 1, 1, 2, 2], "the travel pass is published per segment"
    assert progress == [(i, 5) for i in range(5)], "progress shows every model evaluation of the true total"
    first = {w for s, p, w in rec.windows if s == sig[0] and p == 0}
    again = {w for s, p, w in rec.windows if s == sig[0] and p == 1}
    assert first and again and first != again, "the repeated step must see re-drawn windows"
    assert torch.isfinite(out).all() and out.shape == latent["samples"].shape
    assert torch.equal(out, run_custom(host, wan_windows(host), latent, travel(jump=1, end=0.5), steps=3))


def test_no_travel_is_bit_identical_repeats_count_and_seed(host):
    model, rec = recorded(host.wan())
    latent = host.wan_latent(4)
    plain = run_custom(host, model, latent, euler(), steps=3)
    assert len(rec.calls) == 3
    for sampler in (travel(start=0.3, end=0.3), travel(repeats=0)):  # empty range / no repeat: plain sampling
        rec.calls.clear()
        assert torch.equal(plain, run_custom(host, model, latent, sampler, steps=3))
        assert len(rec.calls) == 3
    rec.calls.clear()
    # range [0, 0.67) of 3 steps = steps 0..2 -> one block of L = 2, travelled twice: 3 + 1 * 2 * 2 calls
    out = run_custom(host, model, latent, travel(jump=2, end=0.67, repeats=2), steps=3)
    assert len(rec.calls) == 3 + 1 * 2 * 2
    assert [p for _, p in rec.calls] == [0, 0, 1, 1, 2, 2, 2]
    assert not torch.equal(out, plain)
    assert not torch.equal(out, run_custom(host, model, latent, travel(jump=2, end=0.67, repeats=2, seed=4),
                                           steps=3))


@pytest.mark.parametrize("name", ["dpmpp_2m", "euler_ancestral"])
def test_other_inner_samplers(host, name):
    model, rec = recorded(host.wan())
    latent = host.wan_latent(4)
    out = run_custom(host, model, latent, travel(comfy.samplers.sampler_object(name), jump=1, end=0.3), steps=3)
    assert torch.isfinite(out).all() and len(rec.calls) == 3 + 1


def test_model_patch_with_windows_does_not_leak(host):
    base = wn.LongAnimZoLAWindows().run(host.sd15(), context_length=5, stride=3, max_skip=2, fusion="zola",
                                        seed=0, max_windows_per_batch=2)[0]
    latent = host.sd_latent(6)
    (patched,) = tn.LongAnimNoiseTravelModel().run(base, jump=0, start=0.0, end=0.3, repeats=1, seed=3)
    patched, rec = recorded(patched)
    plain_before = host.ksample(base, latent, seed=5, steps=1)
    with_patch = host.ksample(patched, latent, seed=5, steps=1)
    # auto L = max(1, round(0.1)) = 1; range [0, 0.3) of 1 step = step 0 -> one block: 1 + 1 * 1 * 1 calls
    assert [p for _, p in rec.calls] == [0, 1]
    assert {p for _, p, _ in rec.windows} == {0, 1}, "windows ran in both passes"
    plain_after = host.ksample(base, latent, seed=5, steps=1)
    assert torch.equal(plain_before, plain_after), "the patch leaked into the original MODEL"
    assert not torch.equal(with_patch, plain_before)
    assert cat.WRAPPER_TRAVEL not in str(base.model_options.get("transformer_options", {}).get("wrappers", {}))


def test_model_patch_equals_travel_sampler(host):
    latent = host.wan_latent(4)
    (patched,) = tn.LongAnimNoiseTravelModel().run(host.wan(), jump=1, start=0.0, end=0.5, repeats=1, seed=3)
    patched, rec = recorded(patched)
    with_patch = host.ksample(patched, latent, seed=5, steps=3)
    assert len(rec.calls) == 3 + 2
    via_sampler = host.custom_advanced(host.wan(), latent, Noise_RandomNoise(5), sampler=travel(jump=1, end=0.5),
                                       steps=3)
    assert torch.equal(with_patch, via_sampler)
    # a travel SAMPLER on a travel MODEL travels once, not twice
    rec.calls.clear()
    twice = host.custom_advanced(patched, latent, Noise_RandomNoise(5), sampler=travel(jump=1, end=0.5), steps=3)
    assert len(rec.calls) == 3 + 2 and torch.equal(twice, via_sampler)


def test_recipe_noise(host):
    x = torch.zeros(1, 16, 6, 4, 4)
    iid = cat.make_noise_fn(NoiseRecipe.iid(), 7, x)
    default = cat.make_noise_fn(None, 7, x)
    assert torch.equal(iid(2, tuple(x.shape)), default(2, tuple(x.shape)))
    assert not torch.equal(default(1, tuple(x.shape)), default(2, tuple(x.shape)))
    scaled = cat.make_noise_fn(None, 7, x, scale=2.0)
    assert torch.equal(scaled(1, tuple(x.shape)), 2.0 * default(1, tuple(x.shape)))
    recipe = NoiseRecipe("repeat_mask", {"ratio": 0.5, "base_length": 2})
    model, rec = recorded(host.wan())
    out = run_custom(host, model, host.wan_latent(6), travel(jump=1, end=0.3, recipe=recipe), steps=3)
    assert torch.isfinite(out).all() and len(rec.calls) == 4


def test_parameterization_from_model_sampling(host):
    assert cat.travel_parameterization(host.sd15().get_model_object("model_sampling")) == ("eps", 1.0)
    assert cat.travel_parameterization(host.wan().get_model_object("model_sampling")) == ("flow", 1.0)

    class Scaled(comfy.model_sampling.CONST):
        noise_scale = 0.5

    assert cat.travel_parameterization(Scaled()) == ("flow", 0.5)

    class CustomNoising(comfy.model_sampling.EPS):
        def noise_scaling(self, sigma, noise, latent_image, max_denoise=False):
            return noise

    for unsupported in (comfy.model_sampling.COSMOS_RFLOW(), comfy.model_sampling.IMG_TO_IMG(), CustomNoising(),
                        object()):
        with pytest.raises(ValueError, match="^model: noise travel supports"):
            cat.travel_parameterization(unsupported)


class ForeignSampler:
    def sample(self, *args, **kwargs):  # a SAMPLER from another pack, without sampler_function
        raise AssertionError("must not be called")


@pytest.mark.parametrize("kwargs,needle", [
    (dict(start=0.5, end=0.2), "^start must be <= end"),
    (dict(start=-0.1), "^start must be"),
    (dict(end=1.5), "^end must be"),
    (dict(jump=-1), "^jump must be"),
    (dict(repeats=-1), "^repeats must be"),
    (dict(sampler="euler"), "^sampler: expected a SAMPLER"),
    (dict(sampler=ForeignSampler()), "^sampler: noise travel runs a k-diffusion sampler"),
    (dict(recipe="repeat_mask"), "^recipe: expected a LONGANIM_NOISE"),
    (dict(recipe=NoiseRecipe("mixed", {"alpha": 2.0})), "alpha"),
])
def test_bad_inputs_name_the_input(kwargs, needle):
    args = dict(sampler=euler(), jump=1, start=0.0, end=0.3, repeats=1, seed=0, recipe=None)
    args.update(kwargs)
    with pytest.raises(ValueError, match=needle):
        tn.LongAnimNoiseTravel().run(**args)
    if "sampler" not in kwargs:
        args.pop("sampler")
        with pytest.raises(ValueError, match=needle):
            tn.LongAnimNoiseTravelModel().run(model=_FakeModel(), **args)


class _FakeModel:
    model_options: dict = {}

    def clone(self):
        raise AssertionError("validation must come first")


def test_jump_larger_than_range_and_foreign_sampler_fail_before_sampling(host):
    model, rec = recorded(host.wan())
    latent = host.wan_latent(4)
    with pytest.raises(ValueError, match=r"^jump must be <= the 1 sampling steps in the travel range"):
        run_custom(host, model, latent, travel(jump=2, end=0.3), steps=3)
    assert rec.calls == []
    (patched,) = tn.LongAnimNoiseTravelModel().run(host.wan(), jump=1, start=0.0, end=0.3, repeats=1, seed=0)
    with pytest.raises(ValueError, match="^model: noise travel runs a k-diffusion sampler"):
        run_custom(host, patched, latent, ForeignSampler(), steps=2)


def test_settings_plan_rules():
    s = cat.TravelSettings()  # auto L, [0, 0.3), 1 repeat
    assert s.jump_for(10) == 1 and nt.count_model_calls(s.plan(10)) == 13
    assert s.jump_for(1) == 1 and nt.count_model_calls(s.plan(1)) == 2
    assert cat.TravelSettings(jump=0, start=0.55, end=0.58).plan(10) == [nt.Segment(0, 10)]
    assert cat.TravelSettings(jump=0, end=0.3).jump_for(40) == 4
    assert cat.steps_in_range(10, 0.0, 0.3) == 3 and cat.steps_in_range(10, 0.3, 0.3) == 0
    with pytest.raises(ValueError, match="^jump must be <="):
        cat.TravelSettings(jump=4, end=0.3).plan(10)


class _NullModel:
    """k-diffusion model chain (KSamplerX0Inpaint -> guider -> BaseModel) that costs nothing: x0 = x / 2."""

    def __init__(self, model_sampling):
        import types

        self.inner_model = types.SimpleNamespace(inner_model=types.SimpleNamespace(model_sampling=model_sampling))
        self.sigmas = []

    def __call__(self, x, sigma, **kwargs):
        self.sigmas.append(float(sigma.reshape(-1)[0]))
        return x * 0.5


def test_travel_function_without_a_model(host):
    ms = host.wan().get_model_object("model_sampling")
    fn = travel(jump=1, end=0.5).sampler_function
    x = torch.randn(1, 16, 3, 2, 2, generator=torch.Generator().manual_seed(0))
    sigmas = comfy.samplers.calculate_sigmas(ms, "normal", 4).cpu()
    null = _NullModel(ms)
    extra = {"seed": 1, "model_options": {"transformer_options": {basics.RUN_STATE_KEY: {"seed": 9, "pass": 0}}}}
    out = fn(null, x, sigmas, extra_args=extra)
    assert len(null.sigmas) == 4 + 2 and torch.isfinite(out).all()
    assert extra["model_options"]["transformer_options"][basics.RUN_STATE_KEY] == {"seed": 9, "pass": 0}, "restored"
    one = sigmas[:1]
    assert torch.equal(fn(null, x, one, extra_args={}), x)  # no step: the inner sampler returns x unchanged


def test_travel_reuses_the_models_noise_recipe(host):
    """With Apply Noise To Model on the MODEL, travel re-noises with that recipe unless one is wired (Eq. 9)."""
    from longanim.nodes.comfy import noise as cnoise

    recipe = NoiseRecipe("repeat_mask", {"ratio": 0.5, "base_length": 2})
    noisy = cnoise.patch_model_noise(host.wan(), recipe)
    latent = host.wan_latent(6)

    def run(**kw):
        (patched,) = tn.LongAnimNoiseTravelModel().run(noisy, jump=1, start=0.0, end=0.5, repeats=1, seed=3, **kw)
        return host.ksample(patched, latent, steps=3)

    implicit, explicit, iid = run(), run(recipe=recipe), run(recipe=NoiseRecipe.iid())
    assert torch.equal(implicit, explicit)
    assert not torch.allclose(implicit, iid)
    # the recipe is published for the run only
    assert cnoise.RECIPE_KEY not in noisy.model_options.get("transformer_options", {})
