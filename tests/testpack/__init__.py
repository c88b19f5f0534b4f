"""Test-only ComfyUI node pack: conditioning without a multi-GB text encoder.

Linked into ``custom_nodes/longanim_testpack`` by ``tests/tools/longanim.py`` for the test host only; it is not
part of the LongAnim pack. ``TinyTestConditioning`` turns a prompt into a deterministic random embedding of the
shape the tiny models expect (SD1.5 family: [1, 77, 768]; Wan 2.1 family: [1, 16, 4096]), so different prompts
give different conditioning and the same prompt always gives the same one.
"""
import hashlib

import torch

SHAPES = {"sd15": (1, 77, 768), "wan21": (1, 16, 4096)}


class TinyTestConditioning:
    DESCRIPTION = "Test only: a deterministic random text embedding for the tiny test models."
    CATEGORY = "testing/longanim"
    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "encode"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "text": ("STRING", {"multiline": True, "default": "a cat walks", "tooltip": "hashed into the embedding"}),
            "family": (list(SHAPES), {"tooltip": "which tiny model the conditioning is for"}),
        }}

    def encode(self, text, family):
        seed = int.from_bytes(hashlib.sha256(f"{family}:{text}".encode()).digest()[:8], "little")
        g = torch.Generator().manual_seed(seed)
        return ([[torch.randn(SHAPES[family], generator=g), {}]],)


NODE_CLASS_MAPPINGS = {"TinyTestConditioning": TinyTestConditioning}
NODE_DISPLAY_NAME_MAPPINGS = {"TinyTestConditioning": "Tiny test conditioning (LongAnim tests)"}
