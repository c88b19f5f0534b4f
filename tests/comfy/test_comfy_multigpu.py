"""Tier 2: LongAnim windows across the devices of core's multi-GPU clones (``nodes/comfy/multigpu.py``).

Two CPU "devices": core's own MultiGPU CFG Split machinery (``comfy.multigpu.create_multigpu_deepclones``, what the
``MultiGPU_WorkUnits`` node runs) on a device list that names the CPU twice, ``cpu`` and ``cpu:1`` (torch accepts
``cpu:1`` as a device; core's deep clone is then a second model loaded from the file by core's loader factory, with
its own weights, its own worker thread in core's ``MultiGPUThreadPool``). Core is not patched: only the list of
devices ``get_all_torch_devices`` reports is replaced while the clone is made.

What this CANNOT show without GPUs: the speed-up (the two CPU "devices" share the same cores), copies between
device memories (every tensor here stays in host memory, so a missing ``.to(device)`` would pass), per-device CUDA
streams and the asynchronous copy race core notes in ``_calc_cond_batch_multigpu``, memory limits of a second card,
and numerics of different GPU models. The benchmark (``tests/benchmarks/bench_multigpu.py``) measures the speed on
a GPU machine.
"""
import pathlib
import sys
import threading
import time

import comfy.model_management
import comfy.patcher_extension
import comfy.sample
import comfy.samplers
import folder_paths
import pytest
import torch
from longanim.nodes import window_nodes as wn
from longanim.nodes.comfy import multigpu as mg

try:
    import comfy.multigpu as core_mg
except ImportError:  # ComfyUI 0.3.75 (the CI host): no multi-GPU engine
    core_mg = None

needs_engine = pytest.mark.skipif(
    core_mg is None, reason="this ComfyUI has no multi-GPU engine (comfy/multigpu.py and the MultiGPU_WorkUnits "
                            "node arrived in 0.28.0); run against a 0.28.0+ host, e.g. 0.33.0")

CPU2 = torch.device("cpu", 1)


def on_two_cpus(model, monkeypatch, speeds=None):
    """Core's MultiGPU CFG Split on a host listing two CPU devices: the model's and ``cpu:1``."""
    monkeypatch.setattr(comfy.model_management, "get_all_torch_devices",
                        lambda exclude_current=False: [model.load_device, CPU2])
    options = None
    if speeds is not None:
        options = core_mg.GPUOptionsGroup()
        for device, speed in zip((model.load_device, CPU2), speeds, strict=True):
            options.add(core_mg.GPUOptions(device_index=device.index, relative_speed=speed))
    # reuse_loaded=False: 0.33.0's reuse scan reads ``.model`` of ``loaded_models()`` entries whose patcher was
    # already collected (AttributeError on None) once a test has dropped its models
    return core_mg.create_multigpu_deepclones(model, 2, gpu_options=options, reuse_loaded=False)


def zola(model, length=6, stride=4, **kw):
    return wn.LongAnimZoLAWindows().run(model, length, stride, 1, "zola", 0, **kw)[0]


def recorded(model):
    m = model.clone()
    record = mg.SplitRecord()
    m.model_options["transformer_options"] = dict(m.model_options.get("transformer_options", {}))
    m.model_options["transformer_options"][mg.RECORD_KEY] = record
    return m, record


def sample(host, model, latent, steps=3, cfg=1.0, **kw):
    return host.ksample(model, latent, steps=steps, cfg=cfg, **kw)


def even_spread(record):
    """Every split step used both devices, their model frames at most one batch apart (LPT with equal speeds)."""
    split = [s for s in record.steps if s["mode"] in ("window", "both")]
    return bool(split) and all(len(s["frames"]) == 2 and abs(s["frames"]["cpu"] - s["frames"]["cpu:1"])
                               <= s["largest"] for s in split)


@needs_engine
@pytest.mark.parametrize("family", ["sd15", "wan21"])
def test_windows_spread_over_two_devices_bit_identical_to_one(host, monkeypatch, family):
    model = host.sd15() if family == "sd15" else host.wan()
    latent = host.sd_latent(16) if family == "sd15" else host.wan_latent(24)
    one = sample(host, zola(model, max_windows_per_batch=1), latent)
    # the windows node after core's node, and before it (core re-clones the patched model onto the second device)
    after = zola(on_two_cpus(model, monkeypatch), max_windows_per_batch=1)
    before = on_two_cpus(zola(model, max_windows_per_batch=1), monkeypatch)
    for two in (after, before):
        two, record = recorded(two)
        out = sample(host, two, latent)
        # cfg 1: one cond per window, so every step is a window split; a window's call is the same call on
        # either device, and the fusion sums in schedule order on the first device
        assert [s["mode"] for s in record.steps] == ["window"] * 3, record.steps
        assert even_spread(record), record.steps
        assert record.call_seconds.keys() == {"cpu", "cpu:1"}
        assert torch.equal(one, out)
        assert "multigpu_clones" not in two.model_options and "multigpu_thread_pool" not in two.model_options


@needs_engine
def test_automatic_batch_leaves_a_batch_for_every_device(host, monkeypatch):
    # the automatic windows-per-call fills one device's memory (here: every window of a step in one call); when
    # the step is spread it is capped at ceil(windows / devices), so the result equals batched windows within
    # the loop's batched-vs-one-by-one float32 rounding (test_comfy_windows.test_batched_windows_equal_one_by_one)
    model, latent = host.wan(), host.wan_latent(24)
    one = sample(host, zola(model), latent)
    two, record = recorded(zola(on_two_cpus(model, monkeypatch)))
    assert torch.allclose(one, sample(host, two, latent), atol=1e-4, rtol=1e-4)
    assert even_spread(record), record.steps


@needs_engine
def test_cfg_steps_mix_window_and_cond_split_within_core_cond_split_rounding(host, monkeypatch):
    model, latent = host.wan(), host.wan_latent(24)
    one = sample(host, zola(model, max_windows_per_batch=1), latent, cfg=5.0)
    two, record = recorded(zola(on_two_cpus(model, monkeypatch), max_windows_per_batch=1))
    out = sample(host, two, latent, cfg=5.0)
    modes = [s["mode"] for s in record.steps]
    assert "both" in modes, modes  # a step with an odd window count: the last window's cond/uncond split
    # core's cond split evaluates cond and uncond as two batch-1 calls instead of one batch-2 call: float32
    # GEMM rounding of a different batch shape (~1e-6 per step on these O(1) latents), as core's own split
    # without LongAnim shows here
    plain = sample(host, model, host.wan_latent(6), cfg=5.0)
    core_split = sample(host, on_two_cpus(model, monkeypatch), host.wan_latent(6), cfg=5.0)
    assert 0 < (plain - core_split).abs().max() < 1e-4
    assert 0 < (one - out).abs().max() < 1e-4


def _progress(host, model, latent, steps=3):
    seen = []
    noise = comfy.sample.prepare_noise(latent["samples"], 1)
    comfy.sample.sample(model, noise, steps, 1.0, "euler", "normal", host.cond("a cat", "wan21"),
                        host.cond("", "wan21"), latent["samples"], callback=lambda s, *a: seen.append(s),
                        disable_pbar=True, seed=1)
    return seen


@needs_engine
def test_progress_reports_the_same_steps(host, monkeypatch):
    model, latent = host.wan(), host.wan_latent(20)
    assert _progress(host, zola(model), latent) == _progress(host, zola(on_two_cpus(model, monkeypatch)), latent)


@needs_engine
def test_what_makes_a_window_travels_with_it(host, monkeypatch):
    """Per-window prompts, the reference frame (keep_first_frame), Window LoRA weights, ControlNet hints."""
    import comfy.controlnet
    from longanim.nodes.comfy import adapters

    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tools"))
    import tiny_lora

    tiny_lora.ensure(pathlib.Path(folder_paths.base_path))
    wan, lat = host.wan(), host.wan_latent(20)
    cat, dog = host.cond("a cat", "wan21"), host.cond("a dog", "wan21")
    prompts = wn.tag_conditioning(cat, 0, 9) + wn.tag_conditioning(dog, 10, 19)
    lora = adapters.patch_model_window_lora(wan, tiny_lora.WAN, 0.8, "0-9", mode="forward")
    cases = [
        ("prompts", wan, dict(positive=prompts), {}),
        ("keep_first_frame", wan, {}, dict(keep_first_frame=True, max_windows_per_batch=2)),
        ("window lora", lora, {}, {}),
    ]
    for name, base, kw, zkw in cases:
        one = sample(host, zola(base, **zkw), lat, **kw)
        two, record = recorded(zola(on_two_cpus(base, monkeypatch), **zkw))
        assert torch.equal(one, sample(host, two, lat, **kw)), name
        assert even_spread(record), (name, record.steps)
    sd = host.sd15()
    control = comfy.controlnet.load_controlnet(
        folder_paths.get_full_path_or_raise("controlnet", "longanim_tiny_controlnet_sd15.safetensors"))
    hint = torch.linspace(0, 1, 16).view(16, 1, 1, 1).expand(16, 3, 32, 32)
    control = control.copy().set_cond_hint(hint, 0.9, (0.0, 1.0))
    positive = [[c[0], {**c[1], "control": control}] for c in host.cond("a cat")]
    one = sample(host, zola(sd, length=4, stride=4), host.sd_latent(16), positive=positive)
    two, record = recorded(zola(on_two_cpus(sd, monkeypatch), length=4, stride=4))
    assert torch.equal(one, sample(host, two, host.sd_latent(16), positive=positive)), "controlnet"
    assert even_spread(record), record.steps
    assert control.cond_hint_original.shape[0] == 16, "the full hint is restored"


@needs_engine
def test_a_feature_needing_windows_in_order_runs_on_one_device_and_says_so(host, monkeypatch, caplog):
    from longanim.nodes.comfy import window_conds

    model, latent = host.wan(), host.wan_latent(20)
    one = sample(host, zola(model), latent)
    two, record = recorded(zola(on_two_cpus(model, monkeypatch)))
    two.model_options["transformer_options"][mg.SERIAL_KEY] = "a test feature keeps state across windows"
    window_conds._WARNED.difference_update({m for m in window_conds._WARNED if "a test feature" in m})
    with caplog.at_level("WARNING"):
        out = sample(host, two, latent)
        sample(host, two, latent)
    assert torch.equal(one, out)
    assert {s["mode"] for s in record.steps} == {"serial"}
    said = [r for r in caplog.records if "a test feature keeps state across windows" in r.getMessage()]
    assert len(said) == 1 and "one device" in said[0].getMessage()


class _Tripwire:
    """CALC_COND_BATCH wrapper: on the n-th call (any thread; with ``only_model``: the n-th call on another model
    than that one) press Cancel or raise. With ``hold_model``: the trip waits until the first call on that model
    has begun, and that call waits until the trip has fired and then runs ``hold_s`` seconds longer, so a call is
    in flight on that device when the other one fails. ``active``: calls running."""

    def __init__(self, n, action, only_model=None, hold_model=None, hold_s=0.0):
        self.n, self.action, self.only_model, self.calls, self.all_calls = n, action, only_model, 0, 0
        self.hold_model, self.hold_s, self.held, self.active = hold_model, hold_s, False, 0
        self.fired, self.holding = threading.Event(), threading.Event()
        self.lock = threading.Lock()

    def __call__(self, executor, model, conds, x_in, timestep, model_options):
        with self.lock:
            self.all_calls += 1
            self.active += 1
            if self.only_model is None or model is not self.only_model:
                self.calls += 1
            hit = self.calls == self.n
            hold = self.hold_model is not None and model is self.hold_model and not self.held
            self.held = self.held or hold
        try:
            if hold:
                self.holding.set()
                self.fired.wait(60)
                time.sleep(self.hold_s)
            if hit:
                if self.hold_model is not None:
                    self.holding.wait(60)
                self.fired.set()
                if self.action == "cancel":
                    comfy.model_management.interrupt_current_processing(True)
                else:
                    raise RuntimeError("device failure in a test")
            return executor(model, conds, x_in, timestep, model_options)
        finally:
            with self.lock:
                self.active -= 1


CORE_JOIN_S = 5.0  # MultiGPUThreadPool.shutdown: t.join(timeout=5.0) per worker


@needs_engine
@pytest.mark.parametrize("action", ["cancel", "error"])
def test_cancel_or_error_stops_every_device_and_leaves_nothing_behind(host, monkeypatch, action):
    """Cancel, or an error on ``cpu:1``, while the first device is inside a call that outlasts core's own wait for
    its workers: the error reaches the caller only after every device has ended its call (none running, no new
    thread alive: core's pool would leave a worker running past its 5 s join if the loop did not wait), each
    device starts no further call, the cancel is consumed once, and the next run is unchanged."""
    model, latent = host.wan(), host.wan_latent(40)
    two, record = recorded(zola(on_two_cpus(model, monkeypatch), max_windows_per_batch=1))
    reference = sample(host, two, latent)
    before = set(threading.enumerate())
    tripped = two.clone()
    # the trip on the second call of cpu:1, while the first device's first call is held past core's 5 s join
    wire = _Tripwire(2, action, only_model=model.model, hold_model=model.model, hold_s=CORE_JOIN_S + 2.0)
    tripped.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.CALC_COND_BATCH, "test.trip", wire)
    expected = comfy.model_management.InterruptProcessingException if action == "cancel" else RuntimeError
    with pytest.raises(expected):
        sample(host, tripped, latent, steps=6)
    running, left = wire.active, [t for t in threading.enumerate() if t not in before and t.is_alive()]
    assert wire.fired.is_set() and wire.held, "the trip fired while the first device was inside a call"
    assert running == 0, f"{running} model call(s) still running when the {action} reached the caller"
    assert not left, f"threads left behind after the {action}: {left}"
    per_step = sum(record.steps[0]["windows"].values())
    assert per_step >= 8
    # each device ends the call it is in and starts no other: at most n + 1 calls on one device, 2 on the other
    assert wire.all_calls <= wire.n + 3 < per_step, (wire.all_calls, per_step)
    assert not comfy.model_management.processing_interrupted(), "the cancel was consumed once, as on one device"
    assert torch.equal(reference, sample(host, two, latent)), "the next run is unaffected"


@needs_engine
def test_relative_speed_gives_the_faster_device_more_windows(host, monkeypatch):
    model, latent = host.wan(), host.wan_latent(40)
    two, record = recorded(zola(on_two_cpus(model, monkeypatch, speeds=(2.0, 1.0)), max_windows_per_batch=1))
    out = sample(host, two, latent, steps=2)
    assert torch.equal(out, sample(host, zola(model, max_windows_per_batch=1), latent, steps=2))
    for step in record.steps:
        assert step["windows"]["cpu"] > step["windows"]["cpu:1"], record.steps


def test_without_the_engine_the_loop_runs_as_before(host):
    """On every host: no ``multigpu_clones`` in the options -> no split (the hook hands co_denoise nothing)."""
    split = mg.WindowSplit(None, {"transformer_options": {}}, [None], type("L", (), {"total": 8})(), 0, None,
                           None, None)
    with split as run:
        assert run is None
