"""Test-only ComfyUI node pack: conditioning without a multi-GB text encoder.

Linked into ``custom_nodes/longanim_testpack`` by ``tests/tools/longanim.py``; it is not part of the LongAnim pack,
and its node is registered only when ``LONGANIM_TESTPACK=1`` (set by the project's server harness).
``TinyTestConditioning`` turns a prompt into a deterministic random embedding of the shape the tiny models expect
(SD1.5 family: [1, 77, 768]; Wan 2.1 family: [1, 16, 4096]), so different prompts give different conditioning and
the same prompt always gives the same one.

Families ``ltxv`` and ``hunyuan`` add what those models' real text encoders put beside the [1, 16, 4096] tokens:
LTX-Video's T5 encoder an ``attention_mask`` (all 16 tokens valid; ``LTXVModel`` takes it as an argument),
HunyuanVideo's CLIP-L a ``pooled_output`` [1, 768] (the model's ``vector_in``; ``encode_adm`` reads it).

Family ``synthworld`` is for the models trained on the synthetic world (``tests/tools/synthworld.py``): the prompt
names the objects in the scene by colour (``"red blue"``; empty = unconditional) and maps to that world's fixed
``[1, 16, 4096]`` embedding, which the trained model was conditioned on; ``synthworld_sd15`` maps the same
prompt to the ``[1, 77, 768]`` embedding of the SD1.5-family image model trained on that world's frames.

``TinyTestCountEvaluations`` (MODEL -> MODEL) counts what the model is really asked to compute: every call of the
model's ``apply_model`` (ComfyUI's ``APPLY_MODEL`` wrapper, inside every window loop, LongAnim's and core's) adds
the frames of its input (``batch x frames`` for a video latent ``[B, C, T, H, W]``, ``batch`` for an image batch).
``GET /tinytest/evaluations`` returns the counts since the last read and resets them (a benchmark reads them after
each prompt: cost = frame-evaluations / (frames x steps), as the loop ran, not from a formula).
"""
import hashlib
import importlib.util
import os
import sys
from pathlib import Path

import torch

SHAPES = {"sd15": (1, 77, 768), "wan21": (1, 16, 4096), "synthworld": (1, 16, 4096), "ltxv": (1, 16, 4096),
          "hunyuan": (1, 16, 4096), "synthworld_sd15": (1, 77, 768)}


def _synthworld():
    """tests/tools/synthworld.py, found through this pack's real location (it is linked into custom_nodes)."""
    name = "longanim_testpack_synthworld"
    if name not in sys.modules:
        path = Path(__file__).resolve().parents[1] / "tools" / "synthworld.py"
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return sys.modules[name]


class TinyTestConditioning:
    DESCRIPTION = "Test only: a deterministic random text embedding for the tiny test models."
    CATEGORY = "testing/longanim"
    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "encode"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "text": ("STRING", {"multiline": True, "default": "a cat walks",
                                "tooltip": "hashed into the embedding; for synthworld: colours such as 'red blue'"}),
            "family": (list(SHAPES), {"tooltip": "which tiny model the conditioning is for"}),
        }}

    def encode(self, text, family):
        if family == "synthworld":
            return ([[_synthworld().prompt_embedding(text), {}]],)
        if family == "synthworld_sd15":  # the SD1.5-family image model of the same world
            sw = _synthworld()
            return ([[sw.prompt_embedding(text, sw.IMAGE_PROMPT_TOKENS, sw.IMAGE_TEXT_DIM), {}]],)
        seed = int.from_bytes(hashlib.sha256(f"{family}:{text}".encode()).digest()[:8], "little")
        g = torch.Generator().manual_seed(seed)
        cond = torch.randn(SHAPES[family], generator=g)
        extra = {}
        if family == "ltxv":
            extra["attention_mask"] = torch.ones(cond.shape[:2], dtype=torch.long)
        elif family == "hunyuan":
            extra["pooled_output"] = torch.randn((1, 768), generator=g)
        return ([[cond, extra]],)


_COUNTS = {"calls": 0, "frame_evaluations": 0, "max_frames_per_call": 0, "frames_per_call": [], "windows": []}
MAX_LOGGED_CALLS = 4096
COUNT_KEY = "tinytest_count_evaluations"


def frames_in(x: torch.Tensor) -> tuple[int, int]:
    """(frame-evaluations, frames per sequence) of one model input: ``[B, C, T, H, W]`` -> (B * T, T);
    an image batch ``[B, C, H, W]`` -> (B, 1)."""
    if x.ndim == 5:
        return int(x.shape[0] * x.shape[2]), int(x.shape[2])
    return int(x.shape[0]), 1


def _count_wrapper(executor, x, t, *args, **kwargs):
    n, per = frames_in(x)
    _COUNTS["calls"] += 1
    _COUNTS["frame_evaluations"] += n
    _COUNTS["max_frames_per_call"] = max(_COUNTS["max_frames_per_call"], per)
    if len(_COUNTS["frames_per_call"]) < MAX_LOGGED_CALLS:
        _COUNTS["frames_per_call"].append(per)
        # the frames of each window in the call, where the window loop publishes them (LongAnim's loop sets
        # AnimateDiff's ``ad_params``): [noise level, [[first, last] per window]]
        opts = args[3] if len(args) > 3 and isinstance(args[3], dict) else kwargs.get("transformer_options") or {}
        views = (opts.get("ad_params") or {}).get("sub_idxs_batch") or []
        _COUNTS["windows"].append([float(t.reshape(-1)[0]), [[int(min(v)), int(max(v))] for v in views if v]])
    return executor(x, t, *args, **kwargs)


def read_counts(reset: bool = True) -> dict:
    out = {k: (list(v) if isinstance(v, list) else v) for k, v in _COUNTS.items()}
    if reset:
        _COUNTS.update(calls=0, frame_evaluations=0, max_frames_per_call=0, frames_per_call=[], windows=[])
    return out


class TinyTestCountEvaluations:
    DESCRIPTION = ("Test only: counts the frames the model computes in every call (GET /tinytest/evaluations reads "
                   "and resets the counts).")
    CATEGORY = "testing/longanim"
    RETURN_TYPES = ("MODEL",)
    FUNCTION = "patch"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL", {"tooltip": "the model whose evaluations are counted"})}}

    def patch(self, model):
        import comfy.patcher_extension

        m = model.clone()
        m.remove_wrappers_with_key(comfy.patcher_extension.WrappersMP.APPLY_MODEL, COUNT_KEY)
        m.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.APPLY_MODEL, COUNT_KEY, _count_wrapper)
        return (m,)


class TinyTestSecondCPUDevice:
    DESCRIPTION = ("Test only: makes this server's device list name the CPU twice (cpu and cpu:1), so core's "
                   "MultiGPU CFG Split node (ComfyUI 0.28.0+) gives the model a second CPU 'device'.")
    CATEGORY = "testing/longanim"
    RETURN_TYPES = ("MODEL",)
    FUNCTION = "widen"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL", {"tooltip": "passed through unchanged"})}}

    def widen(self, model):
        import comfy.model_management
        import torch

        listed = comfy.model_management.get_all_torch_devices
        if not getattr(listed, "longanim_second_cpu", False):
            def devices(exclude_current=False):
                return [torch.device("cpu"), torch.device("cpu", 1)]

            devices.longanim_second_cpu = True
            comfy.model_management.get_all_torch_devices = devices  # this test server only, from now on
        return (model,)


def _add_route() -> None:
    # only inside a running ComfyUI server, which imported its ``server`` module before loading custom nodes;
    # importing it anywhere else (a test process with ComfyUI on its path) would start ComfyUI's device setup
    server = sys.modules.get("server")
    prompt_server = getattr(getattr(server, "PromptServer", None), "instance", None)
    if prompt_server is None:
        return
    from aiohttp import web

    @prompt_server.routes.get("/tinytest/evaluations")
    async def _evaluations(request):
        return web.json_response(read_counts(reset=request.query.get("reset", "1") != "0"))


# Registered only in servers the project's tools start (tests/tools/comfy_client.ComfyServer sets
# LONGANIM_TESTPACK=1): a ComfyUI started by hand, the user's own included (``demo --comfyui`` links this folder
# there), does not list a test-only node.
ENABLED = os.environ.get("LONGANIM_TESTPACK") == "1"
NODE_CLASS_MAPPINGS = {"TinyTestConditioning": TinyTestConditioning,
                       "TinyTestCountEvaluations": TinyTestCountEvaluations,
                       "TinyTestSecondCPUDevice": TinyTestSecondCPUDevice} if ENABLED else {}
NODE_DISPLAY_NAME_MAPPINGS = {"TinyTestConditioning": "Tiny test conditioning (LongAnim tests)",
                              "TinyTestCountEvaluations": "Tiny test evaluation counter (LongAnim tests)",
                              "TinyTestSecondCPUDevice": "Tiny test second CPU device (LongAnim tests)"} \
    if ENABLED else {}
if ENABLED:
    _add_route()
