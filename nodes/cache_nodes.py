"""Step caching that understands LongAnim's windows: ``LongAnim: Window Step Cache``.

The node returns a MODEL clone whose window loop evaluates a window only when its frames' input has moved enough
since they were last evaluated, and answers the others from a per-frame cache (``comfy/step_cache.py``, rule in
``algorithms/step_cache.py``).
"""
from __future__ import annotations

from .algorithms.step_cache import CacheSettings
from .base import LongAnimNode, float_input, link_input, outputs
from .comfy import basics
from .comfy import step_cache as csc

THRESHOLD_DEFAULT = 0.2


class LongAnimWindowStepCache(LongAnimNode):
    NODE_ID = "LongAnimWindowStepCache"
    PATCH_ROLE = "step cache"
    DISPLAY_NAME = "LongAnim: Window Step Cache"
    CATEGORY = "LongAnim/context windows"
    DESCRIPTION = (
        "Fewer model calls for long videos made with LongAnim windows: a window is run again only when the "
        "frames it holds have changed enough since they were last computed; otherwise their last output is "
        "reused, frame by frame, and fused with the windows that ran. Put it after a LongAnim window node (ZoLA, "
        "Gen-L or Context Windows), before the sampler. Use it instead of core's EasyCache, which cannot follow "
        "windows (LazyCache works too, but skips whole steps). threshold 0 = off (the same output as without "
        "the node). Caching trades a little quality for speed: compare a short clip with and without it. When "
        "the video fits in one window there are no windows and nothing is cached.")
    DOC_EXTRA = """
## How it decides (EasyCache's criterion, per window and per frame)

Per frame and per prompt (cond) it keeps the model's last output direction `D = (x - denoised) / sigma` (the
noise for SD models, the velocity for Wan / flow models: what stays nearly constant along a sampling path), how far
the frame's input has moved since (`P`), and the rate `k = |change of D| / |change of input|` measured the last
time the frame was computed again. A window whose predicted relative change
`mean over its frames of (k * P / |D|)`, summed over the steps it was reused, stays below `threshold` is answered
from the cache (`denoised = x - sigma * D`, frame by frame); the others run and refresh their frames. Windows move
every step, so nothing is kept per window: one window's output never lands in another.

## Combining

- Model loader -> LongAnim window node -> **Window Step Cache** -> KSampler. Works with every window node, schedule
  and fusion, prompt schedules, noise travel, Window LoRA, AnimateDiff-Evolved motion modules and every family.
- Core's **EasyCache** cannot run on a model with LongAnim windows (it is refused before sampling); core's
  **LazyCache** can (it skips whole steps of the fused video); a step LazyCache skips never reaches this node.
- Cost and quality on the trained toy model: `docs/benchmarks.md` (`tests/benchmarks/bench_cache.py`).
"""
    RETURN_TYPES, RETURN_NAMES, OUTPUT_TOOLTIPS = outputs(
        ("MODEL", "model", "The model with the step cache; its window loop skips windows that barely changed."))

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": link_input("MODEL", "A model with LongAnim windows (the output of a LongAnim window node). It "
                                         "is cloned."),
            "threshold": float_input(THRESHOLD_DEFAULT, 0.0, 3.0, (
                "How much predicted change of a window's output is tolerated before it is run again (relative, "
                "summed over the steps it was reused; EasyCache's criterion, per window and frame). Higher = fewer "
                "model calls and more drift. 0 = every window every step (off)."), step=0.01),
        }, "optional": {
            "warmup": float_input(0.2, 0.0, 1.0, (
                "Share of the first sampling steps in which every window runs (the layout of the video is "
                "decided there, and the cache learns how fast each frame's output changes)."), step=0.05),
            "final": float_input(0.1, 0.0, 1.0, (
                "Share of the last sampling steps in which every window runs (fine detail)."), step=0.05),
        }}

    def run(self, model, threshold, warmup=0.2, final=0.1):
        basics.claim_patch(model, self.PATCH_ROLE, self.DISPLAY_NAME)
        settings = CacheSettings(threshold=float(threshold), warmup=float(warmup), final=float(final))
        try:
            settings.validate()
        except ValueError as e:
            raise ValueError(f"{self.DISPLAY_NAME}: {e}") from e
        return (basics.mark_patch(csc.patch_model_step_cache(model, settings), self.PATCH_ROLE, self.DISPLAY_NAME),)


NODES = [LongAnimWindowStepCache]
