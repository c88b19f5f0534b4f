"""Reliability through the real ComfyUI server: prompts on the tiny models, a cancel helper, an RSS curve over
consecutive runs and cancel sweeps at several progress points. Used by tests/e2e/test_e2e_reliability.py; as a
script it starts its own server and writes tests/reliability.md:

    .host/venv/bin/python tests/tools/reliability_sweep.py [--runs 20] [--out tests/reliability.md]

Every prompt saves its result with SaveLatent (the tiny VAEs cost more CPU than sampling), so outputs compare as
tensors and as file bytes.

Cancels are sent at progress points of a node (its websocket ``progress`` messages), never after a delay, so they
land at the same place of the run however fast or loaded the machine is. Current ComfyUI throttles progress updates
closer than 100 ms (``comfy.utils.ProgressBar``), and with them the server's interrupt check in the progress hook,
except updates that carry a preview image: the server is started with ``--preview-method latent2rgb``
(:data:`SERVER_ARGS`) so that every step of the fast tiny models is a progress point on every ComfyUI version.
"""
from __future__ import annotations

import argparse
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from comfy_client import ComfyServer, Graph, execution_error, status_messages  # noqa: E402

# every sampler step reports progress (a preview image exempts the update from ComfyUI's progress throttle)
SERVER_ARGS = ["--preview-method", "latent2rgb"]
WAN = "longanim_tiny_wan21.safetensors"
SD = "longanim_tiny_sd15.safetensors"


# ---------------------------------------------------------------------------------------------------- prompts
def wan_prompt(steps: int = 2, length: int = 21, seed: int = 3, prefix: str = "rel_wan", travel: bool = True,
               size: int = 32) -> tuple[dict, str]:
    """Tiny Wan: LongAnim ZoLA windows + repeat-mask noise (+ noise travel sampler); returns (prompt, sampler id).

    ``seed`` seeds the noise and the travel: with a flow model, travel from ``start_percent=0`` re-noises to sigma = 1,
    pure noise, so the result then depends on the travel seed only (by design, not a leak).
    """
    g = Graph()
    model = g.out(g.node("UNETLoader", unet_name=WAN, weight_dtype="default"))
    pos = g.node("TinyTestConditioning", text="a fox", family="wan21")
    neg = g.node("TinyTestConditioning", text="", family="wan21")
    model = g.out(g.node("LongAnimWanZoLAWindowsV2", model=model, context_length=9, stride=5, max_skip=2,
                         fuse_method="zola", seed=0))
    noise = g.node("LongAnimRepeatMaskNoiseV2", seed=seed, ratio=0.5, context_length=3)
    guider = g.node("CFGGuider", model=model, positive=g.out(pos), negative=g.out(neg), cfg=5.0)
    sampler = g.node("KSamplerSelect", sampler_name="euler")
    if travel:
        sampler = g.node("LongAnimNoiseTravelV2", sampler=g.out(sampler), jump=1, start_percent=0.0,
                         end_percent=0.4, repeats=1, seed=seed, recipe=g.out(noise, 1))
    sigmas = g.node("BasicScheduler", model=model, scheduler="simple", steps=steps, denoise=1.0)
    latent = g.node("EmptyHunyuanLatentVideo", width=size, height=size, length=length, batch_size=1)
    sampled = g.node("SamplerCustomAdvanced", noise=g.out(noise), guider=g.out(guider), sampler=g.out(sampler),
                     sigmas=g.out(sigmas), latent_image=g.out(latent))
    g.node("SaveLatent", samples=g.out(sampled), filename_prefix=prefix)
    return g.prompt(), sampled


def sd_branch(g: Graph, base: list, kind: str, seed: int = 3, frames: int = 8, steps: int = 2,
              prefix: str = "rel_sd", latent: list | None = None) -> str:
    """One SD KSampler branch from the loaded ``base`` model; returns the KSampler node id.

    kind: "plain" (the model as loaded), "a" (momentum 0.9 + ZoLA windows 5/3 + travel model patch),
    "b" (momentum 0.5 on the output blocks + flat uniform context windows 4/2). cfg 1 (one model call a step).
    """
    pos = g.node("TinyTestConditioning", text="a fox", family="sd15")
    neg = g.node("TinyTestConditioning", text="", family="sd15")
    model = base
    if kind == "a":
        model = g.out(g.node("LongAnimTemporalMomentumAttention", model=model, momentum=0.9, start_percent=0.0,
                             end_percent=1.0, blocks="all"))
        model = g.out(g.node("LongAnimZoLAWindowsV2", model=model, context_length=5, stride=3, max_skip=2,
                             fuse_method="zola", seed=0, max_windows_per_batch=2))
        model = g.out(g.node("LongAnimNoiseTravelModelV2", model=model, jump=1, start_percent=0.0,
                             end_percent=0.4, repeats=1, seed=0))
    elif kind == "b":
        model = g.out(g.node("LongAnimTemporalMomentumAttention", model=model, momentum=0.5, start_percent=0.0,
                             end_percent=1.0, blocks="output"))
        model = g.out(g.node("LongAnimContextWindowsV2", model=model, context_schedule="uniform", context_length=4,
                             stride=2, context_overlap=2, max_skip=1, closed_loop=False, seed=0,
                             fuse_method="flat"))
    elif kind != "plain":
        raise ValueError(kind)
    if latent is None:
        latent = g.out(g.node("EmptyLatentImage", width=32, height=32, batch_size=frames))
    sampled = g.node("KSampler", model=model, seed=seed, steps=steps, cfg=1.0, sampler_name="euler",
                     scheduler="normal", positive=g.out(pos), negative=g.out(neg), latent_image=latent, denoise=1.0)
    g.node("SaveLatent", samples=g.out(sampled), filename_prefix=prefix)
    return sampled


def sd_prompt(kinds=("a",), seed: int = 3, prefix: str = "rel_sd", steps: int = 2) -> tuple[dict, list[str]]:
    """SD prompt with one branch per kind, all from ONE loader; returns (prompt, KSampler ids in kinds order)."""
    g = Graph()
    base = g.out(g.node("UNETLoader", unet_name=SD, weight_dtype="default"))
    ids = [sd_branch(g, base, k, seed=seed, steps=steps, prefix=f"{prefix}_{k}") for k in kinds]
    return g.prompt(), ids


def refine_prompt(steps: int = 12, length: int = 49, seed: int = 5, prefix: str = "rel_refine",
                  size: int = 32) -> tuple[dict, str]:
    """Tiny Wan: a sampled low-quality video refined by LongAnim Randomized-Blend Refine (chunks 5 / overlap 2,
    denoise 0.6, euler); returns (prompt, refine node id). The source latent comes from a 1-step KSampler."""
    g = Graph()
    model, _, pos, neg = g.tiny_model("wan21")
    empty = g.node("EmptyHunyuanLatentVideo", width=size, height=size, length=length, batch_size=1)
    low = g.node("KSampler", model=model, seed=1, steps=1, cfg=5.0, sampler_name="euler", scheduler="normal",
                 positive=pos, negative=neg, latent_image=g.out(empty), denoise=1.0)
    refined = g.node("LongAnimRandomizedBlendRefineV2", model=model, positive=pos, negative=neg, latent=g.out(low),
                     denoise=0.6, steps=steps, cfg=5.0, sampler_name="euler", scheduler="normal", context_length=5,
                     context_overlap=2, seed=seed, mode="randomized_blend")
    g.node("SaveLatent", samples=g.out(refined), filename_prefix=prefix)
    return g.prompt(), refined


def phased_prompt(steps: int = 20, num_clips: int = 4, length: int = 21, seed: int = 5, prefix: str = "rel_phased",
                  size: int = 32) -> tuple[dict, str]:
    """Tiny Wan: LongAnim Phased Animation (gamma 0.5, omega 0.2, cfg 5); returns (prompt, phased node id)."""
    g = Graph()
    model, _, pos, neg = g.tiny_model("wan21")
    empty = g.node("EmptyHunyuanLatentVideo", width=size, height=size, length=length, batch_size=1)
    phased = g.node("LongAnimPhasedAnimation", model=model, positive=pos, negative=neg, latent=g.out(empty),
                    num_clips=num_clips, steps=steps, cfg=5.0, scheduler="simple", gamma=0.5, omega=0.2, seed=seed)
    g.node("SaveLatent", samples=g.out(phased, 0), filename_prefix=prefix)
    return g.prompt(), phased


def invert_prompt(steps: int = 20, length: int = 21, seed: int = 5, prefix: str = "rel_invert",
                  size: int = 32) -> tuple[dict, str]:
    """Tiny Wan: a sampled video inverted by LongAnim Invert Video through LongAnim windows (cfg 1, one
    fixed-point iteration); returns (prompt, invert node id). Its LATENT output is saved."""
    g = Graph()
    model, _, pos, neg = g.tiny_model("wan21")
    model = g.out(g.node("LongAnimWanZoLAWindows", model=model, context_length=3, stride=2, max_skip=2,
                         fusion="zola", seed=0))
    empty = g.node("EmptyHunyuanLatentVideo", width=size, height=size, length=length, batch_size=1)
    src = g.node("KSampler", model=model, seed=1, steps=1, cfg=5.0, sampler_name="euler", scheduler="normal",
                 positive=pos, negative=neg, latent_image=g.out(empty), denoise=1.0)
    inverted = g.node("LongAnimInvert", model=model, positive=pos, latent=g.out(src), steps=steps,
                      scheduler="normal", seed=seed, fixed_point_iterations=1)
    g.node("SaveLatent", samples=g.out(inverted, 0), filename_prefix=prefix)
    return g.prompt(), inverted


def evict_prompt() -> dict:
    """A prompt that samples nothing: running it drops every cached sampler result (ComfyUI's classic cache keeps
    only the nodes of the newest prompt)."""
    g = Graph()
    g.node("SaveLatent", samples=g.out(g.node("EmptyLatentImage", width=16, height=16, batch_size=1)),
           filename_prefix="rel_evict")
    return g.prompt()


# ---------------------------------------------------------------------------------------------------- running
def cached_nodes(entry: dict) -> set[str]:
    out = set()
    for kind, data in status_messages(entry):
        if kind == "execution_cached":
            out |= set(data.get("nodes", []))
    return out


def latents(server: ComfyServer, entry: dict) -> dict[str, tuple]:
    """{SaveLatent filename_prefix stem: (tensor, file bytes)} for one finished prompt."""
    import safetensors.torch

    out = {}
    for path in server.output_files(entry, kind="latents"):
        data = path.read_bytes()
        out[path.name.rsplit("_", 2)[0]] = (safetensors.torch.load(data)["latent_tensor"], data)
    return out


def run_ok(server: ComfyServer, prompt: dict, must_run: list[str] = (), timeout: float = 300) -> dict:
    """Run a prompt that must succeed; ``must_run`` node ids must have executed (not come from ComfyUI's cache)."""
    entry = server.run(prompt, timeout=timeout)
    err = execution_error(entry)
    assert err is None, err
    hit = cached_nodes(entry) & set(must_run)
    assert not hit, f"nodes {sorted(hit)} came from the cache; the test would compare a result with itself"
    return entry


def rss_mb(server: ComfyServer) -> float:
    import psutil

    return psutil.Process(server.proc.pid).memory_info().rss / 2**20


def rss_curve(server: ComfyServer, runs: int = 20) -> list[dict]:
    """Run the longest tiny workflow ``runs`` times (a new seed each time, so nothing is cached); RSS after each."""
    rows = []
    for i in range(runs):
        prompt, sampler = wan_prompt(steps=4, length=49, seed=100 + i, prefix=f"rel_rss{i}", size=48)
        t0 = time.time()
        run_ok(server, prompt, must_run=[sampler])
        rows.append({"run": i + 1, "seconds": time.time() - t0, "rss_mb": rss_mb(server)})
    return rows


def cancel_sweep(server: ComfyServer, fractions=(0.0, 0.05, 0.25, 0.5, 0.75, 0.95)) -> list[dict]:
    """Interrupt a long Wan run at each progress fraction of its sampler, then check that a short reference prompt
    is unchanged (an unrelated prompt first evicts ComfyUI's cache, so the reference really samples again)."""
    ref_prompt, ref_sampler = wan_prompt(prefix="rel_sweep_ref")
    run_ok(server, evict_prompt())
    ref = latents(server, run_ok(server, ref_prompt, must_run=[ref_sampler]))["rel_sweep_ref"][0]
    rows = []
    for i, frac in enumerate(fractions):
        long_prompt, long_sampler = wan_prompt(steps=16, length=49, seed=50 + i, prefix=f"rel_sweep_long{i}")
        res = cancel_at_progress(server, long_prompt, long_sampler, frac)
        run_ok(server, evict_prompt())
        prompt, sampler = wan_prompt(prefix=f"rel_sweep_after{i}")
        after = latents(server, run_ok(server, prompt, must_run=[sampler]))[f"rel_sweep_after{i}"][0]
        rows.append({"fraction": frac, "at": res["at"], "node": long_sampler, "stopped_in": res["stopped_in"],
                     "interrupted": res["interrupted"], "status": res["status"],
                     "stop_latency_s": res["stop_latency_s"], "after_equals_ref": bool((after == ref).all())})
    return rows


def cancel_at_progress(server: ComfyServer, prompt: dict, node: str, fraction: float, timeout: float = 600) -> dict:
    """Queue ``prompt`` and POST /interrupt {prompt_id} when ``node`` reports progress >= ``fraction`` of its total
    over the websocket (``fraction`` 0: as soon as ``node`` starts executing). The point must lie inside the node:
    a first report at or past the fraction that is already the node's last one (value == max) raises, naming the
    throttled progress as the cause, instead of cancelling after the node. Returns the /history entry, whether and
    in which node the prompt was interrupted, its status, the progress ``(value, max)`` the interrupt was sent at
    and the stop latency."""
    import asyncio
    import json

    import aiohttp

    async def go():
        async with aiohttp.ClientSession() as session:
            ws = await session.ws_connect(f"{server.url}/ws?clientId={server.client_id}")
            pid = server.queue(prompt)
            at = None
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                data = json.loads(msg.data)
                d = data.get("data", {})
                if d.get("prompt_id") not in (None, pid):
                    continue
                started = data["type"] == "executing" and d.get("node") == node and fraction == 0
                if data["type"] == "progress" and d.get("node") == node and d["value"] >= fraction * d["max"]:
                    at = (d["value"], d["max"])
                    if fraction > 0 and d["value"] >= d["max"]:
                        await ws.close()
                        server.wait(pid, timeout=timeout)
                        raise AssertionError(
                            f"node {node} sent no progress between {fraction:.0%} and its end (first report at or "
                            f"past it: {at}); the server throttled its progress updates: start it with "
                            f"{' '.join(SERVER_ARGS)}")
                if started or at:
                    at = at or (0, None)
                    break
                if data["type"] in ("execution_success", "execution_error"):
                    break
            t_int = time.time()
            server.post("/interrupt", {"prompt_id": pid})
            await ws.close()
            return pid, at, t_int

    pid, at, t_int = asyncio.run(go())
    entry = server.wait(pid, timeout=timeout)
    kinds = [k for k, _ in status_messages(entry)]
    stopped = [d for k, d in status_messages(entry) if k == "execution_interrupted"]
    return {"entry": entry, "interrupted": "execution_interrupted" in kinds, "at": at,
            "stopped_in": stopped[0].get("node_id") if stopped else None,
            "status": entry.get("status", {}).get("status_str"), "stop_latency_s": time.time() - t_int}


def cancel_same_prompt(server: ComfyServer, make, fractions=(0.0, 0.25, 0.5, 0.75)) -> list[dict]:
    """Cancel ``make()``'s prompt at each progress fraction of its node, then run the SAME prompt again to the
    end: it must equal the uninterrupted reference bit for bit (no patch, wrapper, cached state or RNG state left
    behind by the cancelled run). ``make`` returns (prompt, node id); the prompt's SaveLatent prefix names its
    latent. Before each run an unrelated prompt evicts ComfyUI's cache, so every run really samples."""
    prompt, node = make()
    prefix = next(v["inputs"]["filename_prefix"] for v in prompt.values() if v["class_type"] == "SaveLatent")
    run_ok(server, evict_prompt())
    t0 = time.time()
    ref = latents(server, run_ok(server, prompt, must_run=[node]))[prefix][0]
    full_s = time.time() - t0
    rows = []
    for frac in fractions:
        run_ok(server, evict_prompt())
        res = cancel_at_progress(server, prompt, node, frac)
        run_ok(server, evict_prompt())
        after = latents(server, run_ok(server, prompt, must_run=[node]))[prefix][0]
        rows.append({"fraction": frac, "at": res["at"], "full_s": full_s, "node": node,
                     "stopped_in": res["stopped_in"], "interrupted": res["interrupted"], "status": res["status"],
                     "error": execution_error(res["entry"]), "outputs": bool(res["entry"].get("outputs")),
                     "stop_latency_s": res["stop_latency_s"],
                     "after_equals_ref": after.shape == ref.shape and bool((after == ref).all()),
                     "finite": bool(ref.isfinite().all())})
    return rows


def refine_phased_cancel_sweep(server: ComfyServer, fractions=(0.0, 0.1, 0.25, 0.5, 0.75, 0.95)) -> dict:
    """The cancel sweep of refinement, phased inference and video inversion."""
    return {"refine": cancel_same_prompt(server, lambda: refine_prompt(steps=20, length=49, prefix="rel_cref"),
                                         fractions),
            "phased": cancel_same_prompt(server, lambda: phased_prompt(steps=20, num_clips=4, prefix="rel_cph"),
                                         fractions),
            "invert": cancel_same_prompt(server, lambda: invert_prompt(steps=20, prefix="rel_cinv"), fractions)}


# ---------------------------------------------------------------------------------------------------- report
def markdown(rss: list[dict], sweep: list[dict], machine: str) -> str:
    first = rss[0]["rss_mb"]
    lines = ["# Reliability: measured numbers", "",
             f"Measured with `tests/tools/reliability_sweep.py` on {machine}; ComfyUI started with "
             f"`--cpu {' '.join(SERVER_ARGS)}`.", "",
             "## Server RSS over consecutive runs", "",
             "Workflow: tiny Wan 2.1, 49 frames (13 latent frames) at 48x48, LongAnim ZoLA windows 9/5, repeat-mask "
             "noise, noise travel sampler, 4 steps, SaveLatent; a new seed per run so every run samples.", "",
             "| run | seconds | RSS (MiB) | growth vs run 1 |", "|---:|---:|---:|---:|"]
    for r in rss:
        lines.append(f"| {r['run']} | {r['seconds']:.2f} | {r['rss_mb']:.1f} | "
                     f"{100 * (r['rss_mb'] - first) / first:+.2f} % |")
    peak = max(r["rss_mb"] for r in rss)
    lines += ["", f"Max growth after run 1: {100 * (peak - first) / first:+.2f} % (test limit: < 5 %).", "",
              "## Cancel sweep", "",
              "Workflow: tiny Wan, 49 frames, 16 steps, windows + noise travel; POST /interrupt {prompt_id} when the "
              "sampler reports the given fraction of its progress (0: when it starts); then a short reference prompt "
              "must give the same latent as before any cancel.", "",
              "| cancel at | progress sent at | stopped in the sampler | status | stop latency (s) | "
              "next run == reference |", "|---:|---:|:---:|:---:|---:|:---:|"]
    for r in sweep:
        at = f"{r['at'][0]}/{r['at'][1]}" if r["at"] and r["at"][1] else "start"
        lines.append(f"| {r['fraction']:.0%} | {at} | {r['stopped_in'] == r['node']} | {r['status']} | "
                     f"{r['stop_latency_s']:.2f} | {r['after_equals_ref']} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    import os
    import platform

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--out", default=str(ROOT / "tests" / "reliability.md"))
    ap.add_argument("--comfyui", default=os.environ.get("LONGANIM_COMFYUI") or str(ROOT / ".host" / "ComfyUI"))
    args = ap.parse_args(argv)
    with ComfyServer(args.comfyui, sys.executable, extra_args=SERVER_ARGS) as server:
        rss = rss_curve(server, args.runs)
        sweep = cancel_sweep(server)
    machine = f"{platform.machine()}, {os.cpu_count()} CPU cores, torch CPU"
    pathlib.Path(args.out).write_text(markdown(rss, sweep, machine))
    print(markdown(rss, sweep, machine))
    return 0


if __name__ == "__main__":
    sys.exit(main())
