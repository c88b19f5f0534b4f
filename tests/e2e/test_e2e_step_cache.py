"""Step caches on a model with LongAnim windows, through the real server with core's own cache nodes.

Core's EasyCache keeps one cached residual per conditioning and applies it to whatever model call comes next (one
window of another length: a crash; one of the same length: another window's residual). The window loop refuses it
before sampling with a message naming both nodes and what to use instead. Core's LazyCache caches the whole fused
step (it wraps ``predict_noise``, outside the window loop) and runs. The pack's Window Step Cache runs and saves
model evaluations.
"""
import pytest
from comfy_client import Graph, execution_error

MODEL = "longanim_world_wan21.safetensors"
FRAMES, STEPS = 40, 8  # ZoLA windows of 16 at stride 12, truncated at the ends: windows of several lengths


def _graph(order: list[str], seed: int = 0) -> dict:
    g = Graph()
    model = g.out(g.node("UNETLoader", unet_name=MODEL, weight_dtype="default"))
    for step in order:
        if step == "windows":
            model = g.out(g.node("LongAnimZoLAWindows", model=model, context_length=16, stride=12, max_skip=1,
                                 fusion="zola", seed=0, ends="truncate"))
        elif step in ("EasyCache", "LazyCache"):
            model = g.out(g.node(step, model=model, reuse_threshold=0.2, start_percent=0.15, end_percent=0.95,
                                 verbose=False))
        elif step == "step cache":
            model = g.out(g.node("LongAnimWindowStepCache", model=model, threshold=0.2))
    pos = g.out(g.node("TinyTestConditioning", text="red blue", family="synthworld"))
    neg = g.out(g.node("TinyTestConditioning", text="", family="synthworld"))
    latent = g.out(g.node("EmptyHunyuanLatentVideo", width=64, height=64, length=4 * (FRAMES - 1) + 1,
                          batch_size=1))
    s = g.node("KSampler", model=model, seed=seed, steps=STEPS, cfg=1.0, sampler_name="euler", scheduler="simple",
               positive=pos, negative=neg, latent_image=latent, denoise=1.0)
    g.node("SaveLatent", samples=g.out(s), filename_prefix="stepcache/run")
    return g.prompt()


@pytest.mark.parametrize("order", [["windows", "EasyCache"], ["EasyCache", "windows"]])
def test_easycache_on_windows_is_refused_before_sampling(server, order):
    entry = server.run(_graph(order), timeout=600)
    err = execution_error(entry)
    assert err is not None, "EasyCache on LongAnim windows ran"
    msg = err.get("exception_message", "")
    assert err.get("exception_type", "").endswith("ValueError"), err
    assert "EasyCache" in msg and "LongAnim" in msg and "Window Step Cache" in msg and "LazyCache" in msg, msg
    # refused before the sampler's first step: no progress event was sent for the KSampler
    assert "size of tensor" not in msg


def test_lazycache_on_windows_runs(server):
    entry = server.run(_graph(["windows", "LazyCache"]), timeout=600)
    assert execution_error(entry) is None, execution_error(entry)
    assert "LazyCache - skipped" in server.log_text()


def test_window_step_cache_runs_through_the_server(server):
    entry = server.run(_graph(["windows", "step cache"]), timeout=600)
    assert execution_error(entry) is None, execution_error(entry)
    assert "LongAnim Window Step Cache:" in server.log_text()
