"""e2e, reliability through the real server: cancel leaves nothing behind, determinism, isolation of
patched and plain models in one prompt, bad inputs rejected with the input named and the server still serving.

ComfyUI caches node outputs between prompts with the same inputs, so every comparison below checks (through the
``execution_cached`` status message) that the sampler really ran again; the classic cache drops results of nodes
missing from the newest prompt, so running another prompt in between forces a re-run. Prompts and helpers live in
tests/tools/reliability_sweep.py (also the script that measured tests/reliability.md).
"""
import json
import math

import pytest
import torch
from comfy_client import ServerError, execution_error
from reliability_sweep import (
    cancel_at_progress,
    cancel_same_prompt,
    cancel_sweep,
    evict_prompt,
    invert_prompt,
    latents,
    phased_prompt,
    refine_phased_cancel_sweep,
    refine_prompt,
    rss_curve,
    run_ok,
    sd_prompt,
    wan_prompt,
)


def bits(t: torch.Tensor) -> bytes:
    return t.contiguous().numpy().tobytes()


def same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and bits(a) == bits(b)


def wan_latent(server, prefix, seed=3, **kw):
    prompt, sampler = wan_prompt(prefix=prefix, seed=seed, **kw)
    return latents(server, run_ok(server, prompt, must_run=[sampler]))[prefix][0]


def test_cancel_leaves_no_state_behind(server):
    ref = wan_latent(server, "rel_c_ref")
    long_prompt, sampler = wan_prompt(steps=40, length=97, seed=11, prefix="rel_c_long")  # minutes if not cancelled
    res = cancel_at_progress(server, long_prompt, sampler, 0.05, timeout=60)  # an early progress point
    assert res["interrupted"] and res["status"] == "error", res["entry"].get("status")
    assert res["stopped_in"] == sampler and res["at"][0] < res["at"][1], res
    assert execution_error(res["entry"]) is None  # an interrupt, not a crash
    assert not res["entry"].get("outputs")
    first = wan_latent(server, "rel_c_1")
    other = wan_latent(server, "rel_c_seed", seed=4)  # also evicts the cached sampler result
    second = wan_latent(server, "rel_c_2")
    assert same(first, ref) and same(second, ref), "a run after the cancel differs from the run before it"
    assert torch.isfinite(ref).all() and not torch.equal(other, ref)


def check_cancel_rows(rows):
    """Every cancel point (a progress fraction of the refine/phased node) stops that node, is reported as an
    interrupt and leaves the next run of the same prompt equal to the uninterrupted reference."""
    print(*rows, sep="\n")
    for r in rows:
        assert r["interrupted"] and r["stopped_in"] == r["node"] and r["status"] == "error", rows
        assert r["error"] is None and not r["outputs"], rows  # an interrupt, not a crash; nothing saved
        assert r["after_equals_ref"] and r["finite"], rows  # the same prompt again == uninterrupted reference
        assert r["stop_latency_s"] < 30, rows


def test_cancel_refine_and_phased_leaves_no_state_behind(server):
    """Cancel half-way through a refinement, a phased-inference and an inversion run, then run the same prompt to
    the end."""
    check_cancel_rows(cancel_same_prompt(server, refine_prompt, fractions=(0.5,)))
    check_cancel_rows(cancel_same_prompt(server, phased_prompt, fractions=(0.5,)))
    check_cancel_rows(cancel_same_prompt(server, invert_prompt, fractions=(0.5,)))


@pytest.mark.slow
def test_cancel_sweep_refine_and_phased(server):
    sweep = refine_phased_cancel_sweep(server)
    for rows in sweep.values():
        check_cancel_rows(rows)


def test_sd_windows_travel_momentum_is_deterministic(server):
    prompt, (sampler,) = sd_prompt(("a",), seed=3, prefix="rel_det1")
    one = latents(server, run_ok(server, prompt, must_run=[sampler]))["rel_det1_a"][0]
    prompt, (sampler,) = sd_prompt(("a",), seed=4, prefix="rel_det_seed")
    other = latents(server, run_ok(server, prompt, must_run=[sampler]))["rel_det_seed_a"][0]
    prompt, (sampler,) = sd_prompt(("a",), seed=3, prefix="rel_det2")
    two = latents(server, run_ok(server, prompt, must_run=[sampler]))["rel_det2_a"][0]
    assert one.shape == (8, 4, 4, 4) and torch.isfinite(one).all()
    assert same(one, two), "same prompt, same seed, different latent"
    assert not torch.equal(one, other), "a different seed gave the same latent"


def test_patched_and_plain_branches_do_not_affect_each_other(server):
    single = {}
    for kind in ("plain", "a", "b"):
        prompt, (sampler,) = sd_prompt((kind,), prefix=f"rel_iso1_{kind}")
        single[kind] = latents(server, run_ok(server, prompt, must_run=[sampler]))[f"rel_iso1_{kind}_{kind}"][0]
    run_ok(server, evict_prompt())  # drops the cached single-branch results
    for order in (("plain", "a", "b"), ("b", "a", "plain")):  # the branches run in both orders
        prompt, samplers = sd_prompt(order, prefix="rel_iso3")
        got = latents(server, run_ok(server, prompt, must_run=samplers))
        for kind in order:
            assert same(got[f"rel_iso3_{kind}"][0], single[kind]), f"branch {kind} changed by its neighbours"
        run_ok(server, evict_prompt())
    assert not torch.equal(single["plain"], single["a"]) and not torch.equal(single["a"], single["b"])


def post_error(server, prompt) -> dict:
    with pytest.raises(ServerError) as info:
        server.queue(prompt)
    text = str(info.value)
    assert "HTTP 400" in text, text
    return json.loads(text.split(": ", 1)[1])


def test_values_beyond_max_are_rejected_naming_the_input(server, object_info):
    prompt, _ = sd_prompt(("a",), prefix="rel_bad")
    windows = next(k for k, v in prompt.items() if v["class_type"] == "LongAnimZoLAWindowsV2")
    top = object_info["LongAnimZoLAWindowsV2"]["input"]["required"]["context_length"][1]["max"]
    prompt[windows]["inputs"]["context_length"] = top + 1
    body = post_error(server, prompt)
    errors = body["node_errors"][windows]["errors"]
    assert any(e["extra_info"].get("input_name") == "context_length" and e["type"] == "value_bigger_than_max"
               for e in errors), errors
    prompt, (sampler,) = sd_prompt(("a",), prefix="rel_bad")
    momentum = next(k for k, v in prompt.items() if v["class_type"] == "LongAnimTemporalMomentumAttention")
    prompt[momentum]["inputs"]["end_percent"] = 1.5
    body = post_error(server, prompt)
    assert any(e["extra_info"].get("input_name") == "end_percent"
               for e in body["node_errors"][momentum]["errors"]), body
    prompt, (sampler,) = sd_prompt(("a",), seed=21, prefix="rel_bad_ok")
    assert run_ok(server, prompt, must_run=[sampler])


def test_nan_latent_does_not_take_the_server_down(server):
    """A NaN multiplier (JSON NaN passes ComfyUI's min/max checks) turns the empty latent into NaN."""
    prompt, (sampler,) = sd_prompt(("a",), prefix="rel_nan")
    empty = next(k for k, v in prompt.items() if v["class_type"] == "EmptyLatentImage")
    prompt["nan"] = {"class_type": "LatentMultiply", "inputs": {"samples": [empty, 0], "multiplier": math.nan}}
    prompt[sampler]["inputs"]["latent_image"] = ["nan", 0]
    prompt[sampler]["inputs"]["denoise"] = 0.5  # keep the NaN input in the mix
    entry = server.run(prompt, timeout=120)
    err = execution_error(entry)  # the LongAnim-patched model refuses the NaN latent before sampling
    assert err is not None and err["exception_type"] == "ValueError", err
    assert "latent_image" in err["exception_message"], err
    prompt, (sampler,) = sd_prompt(("a",), seed=22, prefix="rel_nan_ok")
    out = latents(server, run_ok(server, prompt, must_run=[sampler]))["rel_nan_ok_a"][0]
    assert torch.isfinite(out).all()


@pytest.mark.slow
def test_rss_flat_over_20_runs(server):
    rows = rss_curve(server, 20)
    first = rows[0]["rss_mb"]
    growth = max(r["rss_mb"] for r in rows[1:]) / first - 1
    assert growth < 0.05, rows


@pytest.mark.slow
def test_cancel_sweep(server):
    """Cancel a long windowed Wan run at six progress points of its sampler (start to 95 %): each stops inside the
    sampler and the next run of a short prompt equals the reference."""
    rows = cancel_sweep(server)
    print(*rows, sep="\n")
    for r in rows:
        assert r["interrupted"] and r["stopped_in"] == r["node"] and r["status"] == "error", rows
        assert r["after_equals_ref"] and r["stop_latency_s"] < 30, rows


@pytest.mark.parametrize("make", [refine_prompt, phased_prompt], ids=["refine", "phased"])
@pytest.mark.parametrize("side", ["max", "min"])
def test_sampling_node_values_beyond_bounds_are_rejected(server, object_info, make, side):
    """Every numeric input of the refine / phased node (from /object_info) one step past its bound, all at once:
    HTTP 400 naming each of them; the node never runs, the server keeps serving."""
    prompt, node = make(prefix="rel_beyond")
    spec = object_info[prompt[node]["class_type"]]["input"]
    beyond = {}
    for name, entry in {**spec.get("required", {}), **spec.get("optional", {})}.items():
        if entry[0] in ("INT", "FLOAT") and side in entry[1] and name != "seed":
            step = 1 if entry[0] == "INT" else 0.5
            beyond[name] = entry[1][side] + (step if side == "max" else -step)
    assert len(beyond) >= 4, beyond
    prompt[node]["inputs"].update(beyond)
    errors = post_error(server, prompt)["node_errors"][node]["errors"]
    named = {e["extra_info"].get("input_name") for e in errors
             if e["type"] == ("value_bigger_than_max" if side == "max" else "value_smaller_than_min")}
    assert named == set(beyond), errors


@pytest.mark.parametrize("query,name", [
    ("node=LongAnimZoLAWindows&frames=inf", "frames"),
    ("node=LongAnimZoLAWindows&steps=1e400", "steps"),
    ("node=LongAnimZoLAWindows&context_length=inf", "context_length"),
    ("node=LongAnimContextWindows&overlap=-inf&context_schedule=static", "overlap"),
    ("node=LongAnimZoLAWindows&seed=nan", "seed"),
    ("node=LongAnimZoLAWindows&skip_until=nan", "skip_until"),
    ("node=LongAnimWanZoLAWindows&context_length=0&stride=0", "context_length"),
    ("node=LongAnimZoLAWindows&max_skip=1000000", "max_skip"),
    ("node=LongAnimContextWindows&overlap=99&context_schedule=static", "overlap"),
    ("node=LongAnimPreviewSchedule&frames=99999999999999999999999", "frames"),  # a retired id: its old name
    ("node=LongAnimPreviewScheduleV2&length=99999999999999999999999", "length"),
    ("node=LongAnimContextWindowsV2&context_overlap=99&context_schedule=static", "context_overlap"),
])
def test_preview_route_answers_400_naming_the_input(server, query, name):
    """Infinite, NaN, overflowing and out-of-bounds query values: HTTP 400 with the input named (the canvas shows
    the text), never a 500 with a traceback; the route keeps serving."""
    import urllib.error

    with pytest.raises(urllib.error.HTTPError) as info:
        server.get_bytes(f"/longanim/schedule_preview?{query}")
    assert info.value.code == 400, info.value.code
    text = info.value.read().decode()
    assert name in text, text
    assert server.get_bytes("/longanim/schedule_preview?node=LongAnimZoLAWindows&frames=32&steps=2")[:4] == b"\x89PNG"
