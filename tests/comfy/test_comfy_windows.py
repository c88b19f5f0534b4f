"""Tier 2: LongAnim context windows on the real sampler, both tiny model families."""
import comfy.controlnet
import comfy.patcher_extension
import comfy.samplers
import folder_paths
import pytest
import torch
from longanim.nodes import noise_nodes as nn
from longanim.nodes import window_nodes as wn
from longanim.nodes.comfy import windows as ca


def zola(model, length=8, stride=6, skip=2, fusion="zola", seed=0, **kw):
    return wn.LongAnimZoLAWindows().run(model, length, stride, skip, fusion, seed, **kw)[0]


def test_frames_within_one_window_are_bit_identical_to_plain_sampling(host):
    for model, latent in ((host.sd15(), host.sd_latent(8)), (host.wan(), host.wan_latent(8))):
        plain = host.ksample(model, latent, steps=2)
        assert torch.equal(plain, host.ksample(zola(model, length=8), latent, steps=2))
        assert torch.equal(plain, host.ksample(zola(model, length=16), latent, steps=2))


class CallLog:
    """CALC_COND_BATCH wrapper recording the frames each model call received."""

    def __init__(self):
        self.calls = []

    def __call__(self, executor, model, conds, x_in, timestep, model_options):
        window = model_options["transformer_options"].get("context_window")
        self.calls.append((tuple(x_in.shape), list(window.index_list) if window is not None else None))
        return executor(model, conds, x_in, timestep, model_options)


def logged(model):
    m = model.clone()
    log = CallLog()
    m.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.CALC_COND_BATCH, "test.log", log)
    return m, log


@pytest.mark.parametrize("family", ["sd15", "wan21"])
def test_long_video_runs_windowed_deterministic_and_seeded(host, family):
    frames = 24
    model = host.sd15() if family == "sd15" else host.wan()
    latent = host.sd_latent(frames) if family == "sd15" else host.wan_latent(frames)
    patched, log = logged(zola(model, max_windows_per_batch=1))
    a = host.ksample(patched, latent, steps=2)
    assert a.shape == latent["samples"].shape and torch.isfinite(a).all()
    assert log.calls and all(w is not None and len(w) <= 8 for _, w in log.calls), "every call is one window"
    covered = {f for _, w in log.calls for f in w}
    assert covered == set(range(frames))
    assert torch.equal(a, host.ksample(patched, latent, steps=2)), "same seed, same output"
    other = host.ksample(zola(model, seed=1), latent, steps=2)
    assert not torch.equal(a, other), "window seed changes the windows"
    noise = nn.LongAnimMixedNoise().run(seed=1, alpha=0.3)[0]
    b = host.custom_advanced(zola(model), latent, noise, steps=2)
    assert b.shape == a.shape and torch.isfinite(b).all()


def test_windows_are_redrawn_every_step_and_mixed_with_the_sampler_seed(host):
    model, log = logged(zola(host.wan(), length=6, stride=6, skip=2))
    host.ksample(model, host.wan_latent(20), steps=3, seed=1)
    per_call = [tuple(w) for _, w in log.calls]
    first = per_call[: len(per_call) // 3]
    assert len(set(per_call)) > len(set(first)), "windows differ between steps"
    log.calls.clear()
    host.ksample(model, host.wan_latent(20), steps=3, seed=2)
    assert [tuple(w) for _, w in log.calls] != per_call


def test_a_run_without_noise_does_not_depend_on_what_ran_before(host):
    """A sampler with add_noise off (start step 2 of 4) on a latent no earlier run produced gives the same output
    whether or not a run of the same shape stopped at that sigma before (it used to inherit that run's seed and step
    offset, so its windows, and its output, depended on the server's history)."""
    model = zola(host.wan(), length=6, stride=4, skip=2)
    start = {"samples": torch.randn(1, 16, 20, 4, 4, generator=torch.Generator().manual_seed(3))}
    second = dict(seed=7, steps=4, disable_noise=True, start_step=2, last_step=4)
    alone = host.ksample(model, start, **second)
    host.ksample(model, host.wan_latent(20), seed=1, steps=4, start_step=0, last_step=2)  # something else first
    assert torch.equal(alone, host.ksample(model, start, **second))


def test_auto_batch_that_cannot_size_says_why_once_per_run(host, monkeypatch, caplog):
    """max_windows_per_batch = 0 on a model whose memory estimate fails: one window per call, the same output as
    max_windows_per_batch = 1, and one warning per run naming the cause."""
    model, latent = host.wan(), host.wan_latent(20)
    one = host.ksample(zola(model, length=6, stride=4, skip=1, max_windows_per_batch=1), latent, steps=2)

    real = model.model.memory_required

    def broken(*args, **kwargs):  # fails for the window batch only (core's own estimate passes cond_shapes)
        if "cond_shapes" not in kwargs:
            raise RuntimeError("no estimate for this model")
        return real(*args, **kwargs)

    monkeypatch.setattr(model.model, "memory_required", broken)
    patched, log = logged(zola(model, length=6, stride=4, skip=1))
    for run in (1, 2):
        caplog.clear()
        with caplog.at_level("WARNING"):
            assert torch.equal(one, host.ksample(patched, latent, steps=2))
        said = [r.getMessage() for r in caplog.records if "could not size the batch" in r.getMessage()]
        assert len(said) == 1 and "no estimate for this model" in said[0], (run, said)
    assert all(shape[0] == 1 for shape, _ in log.calls), "one window per model call"


def test_auto_batches_windows_by_memory_estimate_and_equals_one_by_one(host):
    """max_windows_per_batch = 0 (the node default): several windows per call on this machine, the same choice every
    run, the same result as one window per call up to float rounding, and the sampler's memory estimate reserves it."""
    model, latent = host.wan(), host.wan_latent(40)
    auto = ca.auto_windows_per_call(model.model, latent["samples"].shape, 2, 6, "cpu")
    assert 1 < auto <= ca.AUTO_BATCH_CAP
    assert auto == ca.auto_windows_per_call(model.model, latent["samples"].shape, 2, 6, "cpu")
    patched, log = logged(zola(model, length=6, stride=4, skip=1, ends="shift"))
    many = host.ksample(patched, latent, steps=2)
    # Wan: windows are stacked on the batch axis; every step's windows (fewer than `auto`, all of one length with
    # ends 'shift') go in ONE call
    assert len(log.calls) == 2 and all(1 < shape[0] <= auto for shape, _ in log.calls), log.calls
    one = host.ksample(zola(model, length=6, stride=4, skip=1, max_windows_per_batch=1, ends="shift"), latent,
                       steps=2)
    assert torch.allclose(one, many, atol=1e-4, rtol=1e-4)
    assert torch.equal(many, host.ksample(patched, latent, steps=2))
    seen = []
    wrapper = ca._PrepareSamplingWrapper(6, 0)
    wrapper(lambda m, shape, *a, **k: seen.append(shape), model, [1, 16, 40, 4, 4])
    assert seen == [[auto, 16, 6, 4, 4]]
    # what the loop adds to a window is reserved too: frame 0 (keep_first_frame) and LTX-Video guide latents
    # (keyframe_idxs: h*w tokens per guide frame; 2 guides here), passed as core passes conds (third, positional)
    seen.clear()
    guides = {"positive": [{"keyframe_idxs": torch.zeros(1, 3, 2 * 16)}], "negative": []}
    ca._PrepareSamplingWrapper(6, 2, keep_first=True)(lambda m, shape, *a, **k: seen.append(shape), model,
                                                     [1, 16, 40, 4, 4], guides)
    assert seen == [[2, 16, 9, 4, 4]]


def test_batched_windows_equal_one_by_one(host):
    model, latent = host.wan(), host.wan_latent(20)
    one = host.ksample(zola(model, length=6, stride=4, skip=1, max_windows_per_batch=1), latent, steps=2)
    many = host.ksample(zola(model, length=6, stride=4, skip=1, max_windows_per_batch=4), latent, steps=2)
    assert torch.allclose(one, many, atol=1e-4, rtol=1e-4)


def test_patch_does_not_leak_into_original_model(host):
    model, latent = host.wan(), host.wan_latent(20)
    before = host.ksample(model, latent, steps=2)
    zola(model)
    assert "context_handler" not in model.model_options
    assert torch.equal(before, host.ksample(model, latent, steps=2))


def test_multi_prompt_windows_use_their_prompt(host):
    model, latent = host.wan(), host.wan_latent(16)
    cat, dog = host.cond("a cat", "wan21"), host.cond("a dog", "wan21")
    both_cat = wn.tag_conditioning(cat, 0, 7) + wn.tag_conditioning(cat, 8, 15)
    patched = zola(model, length=8, stride=8, skip=1)
    # a schedule whose every interval holds the same prompt equals that prompt
    assert torch.allclose(host.ksample(patched, latent, steps=2, positive=both_cat),
                          host.ksample(patched, latent, steps=2, positive=cat), atol=1e-5)
    mixed = wn.tag_conditioning(cat, 0, 7) + wn.tag_conditioning(dog, 8, 15)
    out = host.ksample(patched, latent, steps=2, positive=mixed)
    all_cat = host.ksample(patched, latent, steps=2, positive=cat)
    all_dog = host.ksample(patched, latent, steps=2, positive=dog)
    assert not torch.allclose(out, all_cat) and not torch.allclose(out, all_dog)
    genl = wn.LongAnimZoLAWindows().run(model, 8, 8, 1, "zola", 0, prompt_rule="genl")[0]
    assert torch.isfinite(host.ksample(genl, latent, steps=2, positive=mixed)).all()


def test_controlnet_hint_is_sliced_per_window(host):
    frames = 12
    model = zola(host.sd15(), length=4, stride=4, skip=1, max_windows_per_batch=1)
    control = comfy.controlnet.load_controlnet(
        folder_paths.get_full_path_or_raise("controlnet", "longanim_tiny_controlnet_sd15.safetensors"))
    hint = torch.arange(frames, dtype=torch.float32).view(frames, 1, 1, 1).expand(frames, 32, 32, 3) / frames
    seen = []
    original = type(control).get_control

    def spy(self, x_noisy, t, cond, batched_number, *args, **kwargs):
        seen.append(self.cond_hint_original[:, 0, 0, 0].mul(frames).round().long().tolist())
        return original(self, x_noisy, t, cond, batched_number, *args, **kwargs)

    control = control.copy().set_cond_hint(hint.movedim(-1, 1), 0.8, (0.0, 1.0))
    control.get_control = spy.__get__(control)
    positive = [[c[0], {**c[1], "control": control}] for c in host.cond("a cat")]
    out = host.ksample(model, host.sd_latent(frames), steps=1, positive=positive)
    assert torch.isfinite(out).all()
    # windows cut at the video ends (ends 'truncate', the default) are shorter: their hints too
    assert seen and all(1 <= len(s) <= 4 for s in seen) and any(len(s) < 4 for s in seen)
    assert sorted({f for s in seen for f in s}) == list(range(frames))
    assert all(s == list(range(s[0], s[0] + len(s))) for s in seen), "each call sees its own window's frames"
    assert control.cond_hint_original.shape[0] == frames, "the full hint is restored"


def test_bad_controlnet_hint_length_is_refused_before_sampling(host):
    control = comfy.controlnet.load_controlnet(
        folder_paths.get_full_path_or_raise("controlnet", "longanim_tiny_controlnet_sd15.safetensors"))
    control = control.copy().set_cond_hint(torch.zeros(5, 3, 32, 32), 1.0, (0.0, 1.0))
    positive = [[c[0], {**c[1], "control": control}] for c in host.cond("a cat")]
    with pytest.raises(ValueError, match="ControlNet image: it has 5 frames but the latent has 12"):
        host.ksample(zola(host.sd15(), length=4, stride=4, skip=1), host.sd_latent(12), steps=1, positive=positive)


@pytest.mark.parametrize("kw,needle", [
    (dict(length=0), "context_length"), (dict(stride=0), "stride"), (dict(stride=9), "stride"),
    (dict(skip=0), "max_skip"),
])
def test_bad_window_inputs_name_the_input(host, kw, needle):
    with pytest.raises(ValueError, match=needle):
        zola(host.wan(), **kw)


def test_foreign_context_handler_is_refused(host):
    import comfy.context_windows as cw

    m = host.wan().clone()
    m.model_options["context_handler"] = cw.IndexListContextHandler(
        cw.ContextSchedule("standard_static", cw.create_windows_static_standard), cw.get_matching_fuse_method("flat"),
        context_length=8, context_overlap=2, dim=2)
    with pytest.raises(ValueError, match="already has context windows"):
        zola(m)
    # the other order: core windows put on top of LongAnim's are detected when sampling starts
    patched = zola(host.wan()).clone()
    patched.model_options["context_handler"] = m.model_options["context_handler"]
    with pytest.raises(ValueError, match="replaced LongAnim's windows"):
        host.ksample(patched, host.wan_latent(20), steps=1)


def test_step_index_matches_schedule_and_substeps():
    sigmas = torch.tensor([14.6, 7.0, 3.0, 1.0, 0.0])
    mo = {"transformer_options": {"sample_sigmas": sigmas}}
    assert ca.step_index(torch.tensor([7.0, 7.0]), mo) == 1
    assert ca.step_index(torch.tensor([5.0]), mo) == 1  # a midpoint belongs to the step above it
    assert ca.step_index(torch.tensor([14.6]), mo) == 0


def test_video_latent_into_an_image_unet_is_refused_by_name(host):
    """A Wan-style [B, C, T, H, W] latent into SD1.5 names the mismatch and the fix (not a conv2d error)."""
    video = {"samples": torch.randn((1, 4, 12, 8, 8), generator=torch.Generator().manual_seed(3))}  # not empty:
    # core re-shapes an all-zero latent to the model's layout itself
    with pytest.raises(ValueError, match=r"latent_image: a video latent .*Empty Latent Image"):
        host.ksample(zola(host.sd15()), video, steps=1)


def test_new_window_options_off_are_the_plain_loop_bit_for_bit(host):
    """keep_first_frame off and length_unit 'latent frames' (the defaults) change nothing; on SD (one video frame
    per latent) 'video frames' gives the same numbers."""
    for model, latent in ((host.sd15(), host.sd_latent(20)), (host.wan(), host.wan_latent(20))):
        plain = host.ksample(zola(model), latent, steps=2)
        explicit = zola(model, keep_first_frame=False, length_unit="latent frames")
        assert torch.equal(plain, host.ksample(explicit, latent, steps=2))
    sd = host.sd15()
    opts = zola(sd, length_unit="video frames").model_options["context_handler"].options
    assert (opts.length, opts.stride) == (8, 6)


def test_a_continued_run_counts_on_from_the_finished_run_step():
    """Two KSamplerAdvanced halves (the second adds no noise, starts where the first stopped and samples its output)
    see global steps; any other latent of the same shape starts a new run."""
    sig = torch.tensor([14.6, 7.0, 3.0, 1.0, 0.0])
    shape = (1, 16, 9, 4, 4)
    out = ca._fingerprint(torch.full(shape, 0.25))
    ca.note_finished_run(out, 3.0, seed=5, step=2)
    assert ca.continued_run(out, sig[2:], torch.zeros(shape)) == (5, 2)
    assert ca.continued_run(out, sig[2:], torch.ones(shape)) is None, "fresh noise: a new run"
    assert ca.continued_run(ca._fingerprint(torch.zeros(shape)), sig[2:], torch.zeros(shape)) is None, "other latent"
    assert ca.continued_run(out, sig[1:], torch.zeros(shape)) is None, "another sigma"
    mo = {"transformer_options": {"sample_sigmas": sig[2:], "LongAnim.run": {"step_offset": 2}}}
    assert ca.step_index(torch.tensor([1.0]), mo) == 3


class SigmaLog(CallLog):
    """CALC_COND_BATCH wrapper recording (sigma, frames) of every window call."""

    def __call__(self, executor, model, conds, x_in, timestep, model_options):
        window = model_options["transformer_options"].get("context_window")
        if window is not None:
            self.calls.append((round(float(timestep.reshape(-1)[0]), 5), tuple(window.index_list)))
        return executor(model, conds, x_in, timestep, model_options)


def sigma_logged(model):
    """The model with a window-call log; core's post-CFG hook (called once per model evaluation, after every
    window of it) marks where each evaluation ends."""
    m = model.clone()
    log = SigmaLog()
    m.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.CALC_COND_BATCH, "test.sigmalog", log)

    def end_of_evaluation(args):
        log.calls.append(None)
        return args["denoised"]

    m.set_model_sampler_post_cfg_function(end_of_evaluation)
    return m, log


def windows_per_sigma(log) -> list[tuple[float, set]]:
    """[(sigma, {windows})] per model evaluation, in sampler order (needs cfg != 1: the post-CFG marker)."""
    out: list[tuple[float, set]] = []
    group = None
    for entry in log.calls:
        if entry is None:
            if group is not None:
                out.append(group)
            group = None
            continue
        sig, w = entry
        group = group or (sig, set())
        group[1].add(w)
    return out


def test_skip_until_spans_the_video_for_its_share_of_the_steps_then_the_schedule(host):
    """skip_until 0.5 on 4 steps: steps 0-1 (ceil(0.5 * 3) = 2) use spanning windows (frames ceil(20/6) = 4 apart,
    every frame once), steps 2-3 the ZoLA windows; the run is deterministic and skip_until 0 is the plain loop."""
    from longanim.nodes.algorithms import context_schedule as cs

    model, latent = host.wan(), host.wan_latent(20)
    patched, log = sigma_logged(zola(model, length=6, stride=6, skip=1, max_windows_per_batch=1, skip_until=0.5))
    a = host.ksample(patched, latent, steps=4)
    evals = windows_per_sigma(log)
    assert len(evals) == 4, evals
    spanning = {tuple(w) for w in cs.spanning_windows(20, 6)}
    assert evals[0][1] == spanning and evals[1][1] == spanning
    for _, ws in evals[2:]:
        assert all(w == tuple(range(w[0], w[0] + len(w))) for w in ws), "contiguous ZoLA windows after the phase"
    assert torch.equal(a, host.ksample(patched, latent, steps=4))
    assert torch.equal(host.ksample(zola(model, length=6, stride=6, skip=1), latent, steps=4),
                       host.ksample(zola(model, length=6, stride=6, skip=1, skip_until=0.0), latent, steps=4))


def test_ends_truncate_cuts_windows_at_the_ends_and_shift_keeps_full_windows(host):
    model, latent = host.wan(), host.wan_latent(20)
    for ends in ("shift", "truncate"):
        patched, log = sigma_logged(zola(model, length=6, stride=4, skip=1, max_windows_per_batch=1, ends=ends))
        host.ksample(patched, latent, steps=3)
        evals = windows_per_sigma(log)
        assert len(evals) == 3
        for _, ws in evals:
            assert set().union(*map(set, ws)) == set(range(20)), "every frame in a window at every step"
        lengths = {len(w) for _, ws in evals for w in ws}
        if ends == "shift":
            assert lengths == {6}, lengths
        else:
            assert max(lengths) == 6 and min(lengths) < 6, lengths


def test_randomized_blend_with_heun_keeps_one_window_set_per_step(host):
    """Heun evaluates a step twice (at sigma_i and, the corrector, at sigma_i+1); with randomized blending both
    evaluations of a step use that step's windows and cut (StreamingT2V Eq. 8: one cut per denoising step)."""
    model, latent = host.wan(), host.wan_latent(20)
    patched, log = sigma_logged(zola(model, length=6, stride=4, skip=2, fusion="randomized_blend",
                                     max_windows_per_batch=1))
    host.ksample(patched, latent, steps=3, sampler="heun")
    evals = windows_per_sigma(log)
    # heun: 2 evaluations per step, the last step (to sigma 0) one: 5 evaluations
    assert len(evals) == 5, [s for s, _ in evals]
    assert evals[0][1] == evals[1][1] and evals[2][1] == evals[3][1], "corrector = its step's windows"
    assert evals[1][0] == evals[2][0], "corrector of step 0 and step 1's first evaluation share a sigma"
    assert evals[1][1] != evals[2][1] or evals[2][1] != evals[4][1], "windows are still re-drawn per step"
    # fusions other than randomized_blend keep numbering evaluations by noise level (the benchmarked rule)
    patched, log = sigma_logged(zola(model, length=6, stride=4, skip=2, max_windows_per_batch=1))
    host.ksample(patched, latent, steps=3, sampler="heun")
    evals = windows_per_sigma(log)
    assert evals[1][1] == evals[2][1], "by noise level, Heun's corrector sees the next step's windows"


def test_preview_draws_the_windows_sampling_uses_with_skip_phase_and_ends():
    """The canvas route and the Preview Schedule node give the same picture for the same widget values, from the
    same windows the loop draws (window_options.schedule_picture); bad values name the input."""
    from longanim.nodes import window_nodes as wn2
    from longanim.nodes.comfy import routes

    q = dict(node="LongAnimContextWindowsV2", context_schedule="zola", context_length="6", stride="4", max_skip="2",
             fuse_method="randomized_blend", seed="3", frames="30", steps="8", ends="truncate", skip_until="0.5")
    opts, frames, steps, _ = routes.preview_request(q)
    assert (opts.ends, opts.skip_until, frames, steps) == ("truncate", 0.5, 30, 8)
    img = wn2.LongAnimPreviewScheduleV2().run(30, 8, "zola", 6, 4, 4, 2, False, 3, "randomized_blend",
                                              ends="truncate", skip_until=0.5)[0]
    from longanim.nodes.comfy import window_options as cwo

    assert torch.equal(img, cwo.schedule_picture(opts, 30, 8, 0))
    assert not torch.equal(img, cwo.schedule_picture(ca.WindowOptions(**{**opts.__dict__, "skip_until": 0.0}),
                                                     30, 8, 0))
    assert routes.preview_png(q)[:8] == b"\x89PNG\r\n\x1a\n"
    assert cwo.shown_steps(8, 12) == list(range(8)) and cwo.shown_steps(30, 4) == [0, 10, 19, 29]
    for bad, needle in ((dict(skip_until="1.5"), "skip_until"), (dict(ends="wrap"), "ends"),
                        (dict(skip_until="x"), "skip_until")):
        with pytest.raises(ValueError, match=needle):
            routes.preview_request({**q, **bad})


def test_preview_converts_video_frames_and_says_when_one_window_covers_the_video():
    """frame_unit = video frames converts lengths with the latent node's temporal compression (8 for LTX-Video),
    as the node's run does with the model's; a context_length that covers the whole video gets a note."""
    from longanim.nodes.comfy import routes

    q = dict(node="LongAnimZoLAWindowsV2", frame_unit="video frames", context_length="97", stride="65",
             frames="241", frames_unit="video frames", temporal_compression="8")
    opts, frames, _, _ = routes.preview_request(q)
    assert (opts.length, opts.stride, frames) == (13, 9, 31)
    wan = routes.preview_request(dict(node="LongAnimWanZoLAWindowsV2", context_length="81", stride="61", frames="241"))
    assert (wan[0].length, wan[0].stride, wan[1]) == (21, 16, 61)
    latent = routes.preview_request(dict(node="LongAnimZoLAWindowsV2", context_length="16", stride="12",
                                         frames="81", frames_unit="video frames", temporal_compression="4"))
    assert (latent[0].length, latent[1]) == (16, 21), "lengths in latent frames, the video from a length widget"
    assert "covers the whole video" in routes.preview(dict(q, frames="81"))[1]
    assert routes.preview(q)[1] == ""
    with pytest.raises(ValueError, match="temporal_compression"):
        routes.preview_request(dict(q, temporal_compression="0"))
