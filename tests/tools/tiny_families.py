"""Tiny random-weight models of the video families people animate with (run with the host's python).

    python tests/tools/tiny_families.py --comfyui .host/ComfyUI            # write the files
    python tests/tools/tiny_families.py --comfyui .host/ComfyUI --report   # also load each one and print what
                                                                          # ComfyUI's own detection makes of it

Each model is built with the host's own model class and written to ``models/diffusion_models/`` only when missing or
of an older recipe (idempotent, deterministic: fixed seeds, atomic writes; helpers shared with ``tiny_models.py``).
``comfy.sd.load_diffusion_model`` detects them from their weights alone (``comfy/model_detection.py``):

=============================================  ===========================  ======================================
file                                           built as                     detected as (ComfyUI 0.3.75 and 0.28)
=============================================  ===========================  ======================================
``longanim_tiny_wan21_i2v.safetensors``        ``WanModel`` i2v, in 36      ``WAN21_I2V``: 16 latent + 4 mask + 16
                                                                            image channels; CLIP-vision ``img_emb``
``longanim_tiny_wan22_i2v_high.safetensors``   ``WanModel`` t2v, in 36      ``WAN21_T2V`` (Wan 2.2 A14B I2V has no
``longanim_tiny_wan22_i2v_low.safetensors``    (two experts, two seeds)     ``img_emb``; its 36 inputs make it I2V)
``longanim_tiny_wan22_ti2v5b.safetensors``     ``WanModel`` t2v, in/out 48  ``WAN22_T2V`` (Wan 2.2 5B TI2V)
``longanim_tiny_ltxv.safetensors``             ``LTXVModel``, 32 heads x 4  ``LTXV``
``longanim_tiny_hunyuan_t2v.safetensors``      ``HunyuanVideo``, in 16      ``HunyuanVideo``
``longanim_tiny_hunyuan_i2v.safetensors``      ``HunyuanVideo``, in 33      ``HunyuanVideoI2V`` (16 + 16 image + 1
                                                                            mask channels)
=============================================  ===========================  ======================================

The sizes the detectors derive from the weights fix some widths: Wan takes ``num_heads = dim // 128``, so
``dim = 128`` with one head; LTXV takes ``attention_head_dim = inner_dim // 32`` with 32 heads, so 32 heads of 4;
HunyuanVideo takes ``num_heads = hidden // 128`` and rotary axes ``[16, 56, 56]`` (128 per head), so hidden 128
with one head, and ``vector_in`` forces a 768-wide pooled input (CLIP-L). Text widths are the real ones (4096:
umT5 for Wan, T5 for LTXV, Llama for HunyuanVideo) so conditioning shapes match real workflows.

``LATENTS`` lists what the pack needs to know about each family's latent (channels, compression, how latent frames
map to video frames, which core node makes the latent). Weights are random (std 0.02): outputs are noise; the
files exercise the real loaders and the real sampling code only.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tiny_models import WAN_CONFIG, _randomize, is_fresh, save_model  # noqa: E402  (same folder; shared helpers)

RECIPE = "longanim-tiny-families-v1"

WAN21_I2V = "longanim_tiny_wan21_i2v.safetensors"
WAN22_I2V_HIGH = "longanim_tiny_wan22_i2v_high.safetensors"
WAN22_I2V_LOW = "longanim_tiny_wan22_i2v_low.safetensors"
WAN22_TI2V5B = "longanim_tiny_wan22_ti2v5b.safetensors"
LTXV = "longanim_tiny_ltxv.safetensors"
HUNYUAN_T2V = "longanim_tiny_hunyuan_t2v.safetensors"
HUNYUAN_I2V = "longanim_tiny_hunyuan_i2v.safetensors"

WAN21_I2V_CONFIG = dict(WAN_CONFIG, model_type="i2v", in_dim=36, out_dim=16)
WAN22_I2V_CONFIG = dict(WAN_CONFIG, model_type="t2v", in_dim=36, out_dim=16)
WAN22_TI2V5B_CONFIG = dict(WAN_CONFIG, model_type="t2v", in_dim=48, out_dim=48)
LTXV_CONFIG = dict(in_channels=128, cross_attention_dim=128, attention_head_dim=4, num_attention_heads=32,
                   caption_channels=4096, num_layers=2)
HUNYUAN_CONFIG = dict(in_channels=16, out_channels=16, vec_in_dim=768, context_in_dim=4096, hidden_size=128,
                      mlp_ratio=4.0, num_heads=1, depth=1, depth_single_blocks=1, axes_dim=[16, 56, 56], theta=256,
                      patch_size=[1, 2, 2], qkv_bias=True, guidance_embed=True, byt5=False, meanflow=False,
                      use_cond_type_embedding=False, vision_in_dim=None)
HUNYUAN_I2V_CONFIG = dict(HUNYUAN_CONFIG, in_channels=33)

# Latent facts per family: channels; temporal and spatial compression of the family's VAE; latent frames from video
# frames n (``(n - 1) // t + 1``: the first latent frame holds one video frame, every other one t frames, so the
# lengths users type are t*k + 1); the core node that makes the latent; what carries an input image.
LATENTS = {
    "wan21": dict(channels=16, temporal=4, spatial=8, frames="4k+1", empty="EmptyHunyuanLatentVideo",
                  i2v="WanImageToVideo: concat_latent_image [B,16,T,h,w] + concat_mask [1,1,T,h,w] (frame 0 = 0) "
                      "+ clip_vision_output -> c_concat [B,20,T,h,w] and clip_fea [B,257,1280]"),
    "wan22_a14b": dict(channels=16, temporal=4, spatial=8, frames="4k+1", empty="EmptyHunyuanLatentVideo",
                       i2v="WanImageToVideo without clip_vision_output -> c_concat [B,20,T,h,w]; two experts "
                           "(high noise, low noise) run by two KSamplerAdvanced"),
    "wan22_5b": dict(channels=48, temporal=4, spatial=16, frames="4k+1", empty="Wan22ImageToVideoLatent",
                     i2v="Wan22ImageToVideoLatent: image written INTO latent frame 0 + noise_mask (frame 0 = 0); "
                         "WAN22 turns the mask into a per-frame timestep (model_conds denoise_mask)"),
    "ltxv": dict(channels=128, temporal=8, spatial=32, frames="8k+1", empty="EmptyLTXVLatentVideo",
                 i2v="LTXVImgToVideo: image INTO latent frame 0 + noise_mask [B,1,T,1,1] (1 - strength); "
                     "LTXVAddGuide: guide latents APPENDED after the video frames + keyframe_idxs (pixel coords "
                     "of the guide tokens) + noise_mask; LTXVCropGuides strips them after sampling"),
    "hunyuan": dict(channels=16, temporal=4, spatial=8, frames="4k+1", empty="EmptyHunyuanLatentVideo",
                    i2v="HunyuanImageToVideo v1 (concat): concat_latent_image [B,16,1,h,w] + concat_mask "
                        "[1,1,T,h,w] -> c_concat [B,17,T,h,w] (image zero-padded on T); v2 (replace): image INTO "
                        "latent frame 0 + noise_mask + guiding_frame_index"),
}


def _ops():
    import comfy.ops

    return comfy.ops.disable_weight_init


def build_wan21_i2v():
    """Wan 2.1 I2V: 36 input channels (noise 16 + mask 4 + image 16) and the CLIP-vision projection ``img_emb``."""
    from comfy.ldm.wan.model import WanModel

    return WanModel(**WAN21_I2V_CONFIG, operations=_ops())


def build_wan22_i2v():
    """One Wan 2.2 A14B I2V expert: 36 input channels, no ``img_emb`` (Wan 2.2 dropped CLIP vision)."""
    from comfy.ldm.wan.model import WanModel

    return WanModel(**WAN22_I2V_CONFIG, operations=_ops())


def build_wan22_ti2v5b():
    """Wan 2.2 5B TI2V: 48 latent channels in and out (its VAE compresses 16x spatially)."""
    from comfy.ldm.wan.model import WanModel

    return WanModel(**WAN22_TI2V5B_CONFIG, operations=_ops())


def build_ltxv():
    """LTX-Video: 128 latent channels, 32 attention heads of width 4."""
    from comfy.ldm.lightricks.model import LTXVModel

    return LTXVModel(**LTXV_CONFIG, operations=_ops())


def hunyuan_params(config: dict) -> dict:
    """``config`` fitted to the installed host's ``HunyuanVideoParams`` (a dataclass whose fields vary by version).

    ``HunyuanVideo`` passes its keyword arguments to that dataclass, which has no defaults, so every field must be
    given and no other. The host's fields are read from the class itself (``dataclasses.fields``): a bool field our
    config does not name is a feature switch of a newer model version and is set off (``False``), which is what
    ``comfy/model_detection.py`` derives for weights without that feature's tensors; a key of ours the host does not
    have is dropped when it is off (``False`` / ``None``). Anything else missing or extra is an error naming the
    field, never a guess at its value.
    """
    import dataclasses

    from comfy.ldm.hunyuan_video.model import HunyuanVideoParams

    fields = {f.name: f for f in dataclasses.fields(HunyuanVideoParams)}
    out = {}
    for key, value in config.items():
        if key in fields:
            out[key] = value
        elif value not in (False, None):
            raise RuntimeError(f"this host's HunyuanVideoParams has no field {key!r} (needed: {value!r})")
    for name, field in fields.items():
        if name in out or field.default is not dataclasses.MISSING \
                or field.default_factory is not dataclasses.MISSING:
            continue
        if field.type in (bool, "bool"):
            out[name] = False
        else:
            raise RuntimeError(f"this host's HunyuanVideoParams needs {name!r} ({field.type}); no value known")
    return out


def build_hunyuan_t2v():
    """HunyuanVideo T2V: 16 latent channels, guidance embedding, 768-wide pooled (CLIP-L) input."""
    from comfy.ldm.hunyuan_video.model import HunyuanVideo

    return HunyuanVideo(**hunyuan_params(HUNYUAN_CONFIG), operations=_ops())


def build_hunyuan_i2v():
    """HunyuanVideo I2V: 33 input channels (noise 16 + image 16 + inverted mask 1)."""
    from comfy.ldm.hunyuan_video.model import HunyuanVideo

    return HunyuanVideo(**hunyuan_params(HUNYUAN_I2V_CONFIG), operations=_ops())


# file -> (builder, seed, latent family)
JOBS = {
    WAN21_I2V: (build_wan21_i2v, 21, "wan21"),
    WAN22_I2V_HIGH: (build_wan22_i2v, 22, "wan22_a14b"),
    WAN22_I2V_LOW: (build_wan22_i2v, 23, "wan22_a14b"),
    WAN22_TI2V5B: (build_wan22_ti2v5b, 24, "wan22_5b"),
    LTXV: (build_ltxv, 25, "ltxv"),
    HUNYUAN_T2V: (build_hunyuan_t2v, 26, "hunyuan"),
    HUNYUAN_I2V: (build_hunyuan_i2v, 27, "hunyuan"),
}


def ensure(comfyui: str | Path) -> dict[str, Path]:
    """Write every tiny family model under ``<comfyui>/models/diffusion_models`` when missing or stale.

    Needs ComfyUI importable (``comfy`` on ``sys.path``); returns the paths by file name.
    """
    folder = Path(comfyui) / "models" / "diffusion_models"
    paths = {}
    for name, (build, seed, _) in JOBS.items():
        path = folder / name
        paths[name] = path
        if not is_fresh(path, RECIPE):
            save_model(_randomize(build(), seed), path, RECIPE)
    return paths


def report(paths: dict[str, Path]) -> None:
    """Load each file through ``comfy.sd.load_diffusion_model`` and print the detected class, size and latent."""
    import comfy.sd

    print(f"{'file':44} {'detected':18} {'params':>9} {'MiB':>6} {'load s':>6}  latent")
    for name, path in paths.items():
        t0 = time.perf_counter()
        patcher = comfy.sd.load_diffusion_model(str(path))
        dt = time.perf_counter() - t0
        params = sum(p.numel() for p in patcher.model.diffusion_model.parameters())
        fam = LATENTS[JOBS[name][2]]
        print(f"{name:44} {type(patcher.model.model_config).__name__:18} {params:9d} "
              f"{path.stat().st_size / 2**20:6.1f} {dt:6.2f}  {fam['channels']} ch, /{fam['temporal']} t "
              f"({fam['frames']}), /{fam['spatial']} hw, {fam['empty']}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    root = Path(__file__).resolve().parents[2]
    ap.add_argument("--comfyui", default=os.environ.get("LONGANIM_COMFYUI") or str(root / ".host" / "ComfyUI"))
    ap.add_argument("--report", action="store_true", help="load every file and print what ComfyUI detects")
    args = ap.parse_args(argv)
    comfyui = Path(args.comfyui).resolve()
    sys.path.insert(0, str(comfyui))
    import comfy.cli_args

    comfy.cli_args.args.cpu = True
    paths = ensure(comfyui)
    if args.report:
        report(paths)
    return 0


if __name__ == "__main__":
    sys.exit(main())
