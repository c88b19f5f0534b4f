"""Context-window nodes: ZoLA re-drawn windows, Gen-L co-denoising, parity schedules, prompts, preview.

Each window node returns a MODEL clone whose every sampler (KSampler, KSamplerAdvanced, SamplerCustomAdvanced,
any guider) runs the model on windows of frames and fuses them. The window loop is the pack's own
(``comfy/windows.py: LongAnimContextHandler``), on ComfyUI 0.3.75 and current ComfyUI alike.
"""
from __future__ import annotations

from . import vocabulary
from .algorithms import context_schedule as cs
from .algorithms import prompt_schedule as ps
from .algorithms.scene_noise import SCENE_RULES
from .base import (
    MAX_FRAMES,
    LongAnimNode,
    combo_input,
    float_input,
    int_input,
    link_input,
    outputs,
    seed_input,
    string_input,
)
from .comfy import basics as cb
from .comfy import window_options as cwo
from .comfy import windows as cw

CATEGORY = "LongAnim/context windows"
D = cs.WINDOW_DEFAULTS  # the one table of defaults (algorithms/window_defaults.py); Gen-L: cs.GENL_DEFAULTS
G = cs.GENL_DEFAULTS

MODEL_IN = link_input("MODEL", "The video model (AnimateDiff-injected SD1.5/SDXL, Wan, ...). It is cloned. With "
                               "AnimateDiff-Evolved: use its loader WITHOUT context options; LongAnim drives "
                               "the motion module window by window.")
LENGTH_TIP = ("Frames the model sees at once (its native window), in frame_unit: 16 for AnimateDiff. For Wan, "
              "HunyuanVideo or LTX-Video set frame_unit = video frames and type the frames you type in the latent "
              "node (81 for Wan 2.1), or use the Wan variant of this node.")
STRIDE_TIP = ("Frames between window starts. Smaller = more overlap = smoother seams but more model calls; "
              "equal to context_length = no overlap, the cheapest: ZoLA's re-drawn borders move every step, but "
              "seams show more than with overlap.")
FUSION_TIP = ("How overlapping windows are merged per frame: flat = plain average (ZoLA sec. 4.3's merge; the ZoLA "
              "nodes' default: the lowest worst seam for the default windows on the exact window benchmark, 1.71 "
              "vs 1.76 least_squares and 1.86 zola); zola = exp(-0.5·|j - f/2|) (ZoLA Eq. 4; best with skip_until "
              "0.55: 0.91 vs flat 1.00); least_squares = squared pyramid weights (Gen-L, its node's default); "
              "pyramid / overlap_linear as in AnimateDiff-Evolved; randomized_blend = StreamingT2V Eq. 8 random cut "
              "per overlap per step.")
BATCH_TIP = ("Windows evaluated in one model call (windows of one length share a call). 0 = auto: as many as "
             "ComfyUI's memory estimate fits in a quarter of the device's memory, at most 16 (the same choice on "
             "every run of a machine; if the estimate fails, one per call and the server log says why); 1 = one at a "
             "time (least memory). Results equal one at a time up to float rounding. With an AnimateDiff-Evolved "
             "motion module, windows share a call too, except when ADE reads each window's frame indices (effect or "
             "scale masks, AnimateLCM-I2V, CameraCtrl, MotionCtrl): then one per call. With prompt schedules or "
             "Window LoRA: always one per call.")
PROMPT_TIP = ("With a LongAnim prompt schedule: zola = each window uses the prompt covering most of its frames; "
              "genl = each window blends the prompts' embeddings (and SDXL's pooled output) by how many of its "
              "frames they cover. Prompts of different token lengths are padded as ComfyUI pads them; if that needs "
              "more than 4x padding (e.g. 1 vs 5 chunks of 75 tokens), those windows use the zola rule and the server "
              "log says so.")
KEEP_FIRST_TIP = ("Image-to-video (Wan 2.1/2.2 I2V, Wan 2.2 5B TI2V, LTX-Video, HunyuanVideo I2V): turn on so every "
                  "window also sees frame 0, the start image, and keeps its look and identity over the whole "
                  "video. Frame 0 (its latent and its image conditioning) is added in front of each window that "
                  "does not hold it, and that extra frame's output is thrown away: the window's own frames are "
                  "unchanged. Costs one frame per window. Leave off for text-to-video and SD/AnimateDiff. Not "
                  "with looped / closed_loop windows. (Core's WAN / LTXV Context Windows option of the same name "
                  "writes frame 0 over each window's first frame instead.)")
UNIT_TIP = ("Unit of context_length, stride and context_overlap. latent frames: as the latent holds them. "
            "video frames: the frames you see, as Wan (4n+1), HunyuanVideo (4n+1) and LTX-Video (8n+1) users type "
            "them; "
            "converted with the model's temporal compression ((n - 1) // r + 1, overlap n // r; SD/AnimateDiff: "
            "r = 1, the same numbers).")
FRAME_UNITS = ["latent frames", "video frames"]
RANGE_UNIT_TIP = ("Unit of the frame range. latent frames: as the latent holds them (SD/AnimateDiff: the frames "
                  "themselves). video frames: the frames you see, as typed in the Wan/HunyuanVideo/LTX-Video latent "
                  "node; converted with the model's temporal compression when the sampler runs (a latent frame "
                  "belongs to the range when its first video frame does: latent 0 = frame 0, latent k = frames "
                  "r(k-1)+1 .. rk).")
MAX_SKIP_TIP = ("Largest frame skip r drawn per step (r ~ U{1..max_skip}, ZoLA Eq. 7): a window takes every r-th "
                "frame, linking frames far apart. 1 = contiguous windows (default: skips made the worst seam about "
                "twice as visible on the exact window benchmark, and models trained on contiguous clips, most "
                "Wan/LTX checkpoints, never saw frames r apart). 2 = ZoLA's setting, for AnimateDiff (trained on "
                "strided clips).")
ENDS_TIP = ("How ZoLA's re-drawn windows meet the first and last frame. truncate (recommended): the random offset "
            "tiles the video and the windows that run past an end are cut there, so no window border sits at the "
            "same frames at every step, the ends included; a window cut shorter than half the context length grows "
            "back into its neighbour (a model denoising 1-2 frames sees no motion). shift: ZoLA's rule (sec. 4.3): "
            "the last window is "
            "shifted to end at the last frame; that window and the one before the random start hold the same "
            "two borders at most steps, which can leave a visible seam there. Used by the zola schedule only.")
SKIP_UNTIL_TIP = ("Spanning skip phase, a share of the sampling steps: the first steps up to this share use windows "
                  "whose frames are spread over the whole video (every ceil(frames / context_length)-th frame, each "
                  "frame once, so no extra model calls), letting the high-noise steps settle what every frame "
                  "shares; later steps use the schedule above. 0 = off (default). 0.6 measured best on the exact "
                  "window benchmark (seams below Gen-L's at 1.13 model evaluations per frame-step instead of 1.83) "
                  "and suits models trained on strided clips (AnimateDiff); models that never saw frames far "
                  "apart (most Wan/LTX checkpoints) may give blurred motion: compare on a short clip first. With "
                  "two samplers in a chain (Wan 2.2's experts), set it on the first (high-noise) model's node: the "
                  "share counts the steps of the sampler it runs in.")

SCENE_NOISE_DEFAULT = cwo.SCENE_NOISE_DEFAULT
SCENE_NOISE_TIP = ("Initial noise of the window loop, built from the sampler's own noise (same seed, same video), so "
                   "what the first window decides and the prompt leaves open (which objects, their colours, the look "
                   "of the scene) holds to the last window. freenoise (default): every window position reuses the "
                   "first window's noise frames, shuffled in chunks of a quarter window (FreeNoise; as core's "
                   "freenoise option), and in the first half of the steps the random window offsets fall on those "
                   "chunks, so every window holds whole chunks of the first window's noise while the scene is "
                   "decided (later offsets fall anywhere, so no chunk border becomes a seam). tile: the first "
                   "window's noise repeated exactly (ZoLA "
                   "Eq. 8 with every frame masked). blend: the tile mixed 3:1 with fresh noise. off: the sampler's "
                   "i.i.d. noise, every window free to decide anew. A "
                   "LongAnim noise node wins: with Apply Noise To Model on the MODEL, or a LongAnim noise node's "
                   "NOISE on SamplerCustomAdvanced, this node leaves that noise alone.")


# Characters of the distinct prompts of one schedule: 100 prompts of 200 characters. The text encoder's work grows
# with it (a 100,000-character schedule took 47.5 s on a 2-core CPU server).
MAX_SCHEDULE_CHARS = 20000
PROMPT_UNITS = ["latent frames", "video frames (Wan, HunyuanVideo: 4n+1)", "video frames (LTX-Video: 8n+1)"]
PROMPT_UNIT_RATIO = dict(zip(PROMPT_UNITS, (1, 4, 8)))
PROMPT_UNIT_TIP = ("Unit of length and of the ranges. latent frames: as the latent holds them (SD/AnimateDiff: the "
                   "frames themselves). video frames: the frames you see, as typed in the Wan/HunyuanVideo/LTX-Video "
                   "latent node; each latent frame takes the prompt of the range holding its first video frame "
                   "(latent 0 = frame 0, latent k = frames r(k-1)+1 .. rk).")


def _step_schedule_inputs(ends: bool = True) -> dict:
    """The step-dependent schedule controls shared by the window nodes (``context_schedule.make_windows``)."""
    spec = {"skip_until": float_input(D["skip_until"], 0.0, 1.0, SKIP_UNTIL_TIP, step=0.05)}
    if ends:
        spec = {"ends": combo_input(cs.ENDS, D["ends"], ENDS_TIP), **spec}
    return spec
OUT = outputs(("MODEL", "model", "The model with LongAnim context windows; connect it to any sampler."))


def _patch(node, model, **kw):
    cb.claim_patch(model, node.PATCH_ROLE, node.DISPLAY_NAME)
    return (cb.mark_patch(cw.patch_model_windows(model, cwo.WindowOptions(**kw)), node.PATCH_ROLE, node.DISPLAY_NAME),)


def latent_lengths(model, unit: str, length: int, stride: int, overlap: int = 0,
                   node: str = "This node") -> tuple[int, int, int]:
    """(length, stride, overlap) in latent frames; ``unit = "video frames"`` converts with the model's temporal
    compression r: length and stride ``(n - 1) // r + 1`` (stride at most the length), overlap ``n // r``. A video
    model whose r is unknown is refused, naming ``node`` (``basics.temporal_compression``)."""
    if unit == "latent frames":
        return length, stride, overlap
    if unit != "video frames":
        raise ValueError(f"frame_unit must be one of {FRAME_UNITS}, got {unit!r}")
    return cwo.video_lengths_to_latent(cb.temporal_compression(model, node), length, stride, overlap)


class LongAnimZoLAWindowsV2(LongAnimNode):
    NODE_ID = "LongAnimZoLAWindowsV2"
    PATCH_ROLE = "context windows"
    DISPLAY_NAME = "LongAnim: ZoLA Windows"
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "Start here for long videos. ZoLA denoising-path expansion (Eqs. 5-7): at every sampling step the windows "
        "are re-drawn with a random start offset (and, with max_skip above 1, a random frame skip), so a window "
        "border sits between two given frames at only about one step in `stride` instead of at every step, and "
        "seams wash out. Overlaps are merged by the fuse_method input's weights. Lengths in latent frames by default "
        "(AnimateDiff: the frames themselves); for Wan, HunyuanVideo and LTX-Video set frame_unit = video frames, "
        "or pick the Wan variant."
    )
    RETURN_TYPES, RETURN_NAMES, OUTPUT_TOOLTIPS = OUT

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": MODEL_IN,
            "context_length": int_input(D["length"], 1, 1024, LENGTH_TIP),
            "stride": int_input(D["stride"], 1, 1024, STRIDE_TIP),
            "max_skip": int_input(D["max_skip"], 1, 64, MAX_SKIP_TIP),
            "fuse_method": combo_input(cwo.FUSIONS, D["fusion"], FUSION_TIP),
            "seed": seed_input("Seed of the window offsets and skips (mixed with the sampler's seed)."),
        }, "optional": {
            "max_windows_per_batch": int_input(D["max_batch"], 0, 64, BATCH_TIP),
            "prompt_rule": combo_input(["zola", "genl"], D["prompt_rule"], PROMPT_TIP),
            "retain_first_frame": ("BOOLEAN", {"default": D["keep_first_frame"], "tooltip": KEEP_FIRST_TIP}),
            "frame_unit": combo_input(FRAME_UNITS, "latent frames", UNIT_TIP),
            **_step_schedule_inputs(),
            "noise": combo_input(list(SCENE_RULES), SCENE_NOISE_DEFAULT, SCENE_NOISE_TIP),
        }}

    def run(self, model, context_length, stride, max_skip, fuse_method, seed, max_windows_per_batch=D["max_batch"],
            prompt_rule=D["prompt_rule"], retain_first_frame=D["keep_first_frame"], frame_unit="latent frames",
            ends=D["ends"], skip_until=D["skip_until"], noise=SCENE_NOISE_DEFAULT):
        context_length, stride, _ = latent_lengths(model, frame_unit, context_length, stride,
                                                   node=self.DISPLAY_NAME)
        return _patch(self, model, schedule="zola", length=context_length, stride=stride, max_skip=max_skip,
                      fusion=fuse_method, seed=seed, max_batch=max_windows_per_batch, prompt_rule=prompt_rule,
                      keep_first_frame=bool(retain_first_frame), ends=ends, skip_until=float(skip_until),
                      scene_noise=noise)


class LongAnimWanZoLAWindowsV2(LongAnimZoLAWindowsV2):
    NODE_ID = "LongAnimWanZoLAWindowsV2"
    DISPLAY_NAME = "LongAnim: ZoLA Windows (Wan, video frames)"
    DESCRIPTION = (
        "ZoLA Windows for Wan 2.1/2.2 and HunyuanVideo, with lengths in the video frames you type in the latent "
        "node (81, 61: converted to latent frames as (n - 1) // r + 1 with the model's temporal compression r: 4 "
        "for Wan and HunyuanVideo, 8 for LTX-Video). Image models (SD/AnimateDiff) are refused: use ZoLA Windows. "
        + LongAnimZoLAWindowsV2.DESCRIPTION.split(". ", 1)[1]
    )

    @classmethod
    def INPUT_TYPES(cls):
        spec = super().INPUT_TYPES()
        spec["required"]["context_length"] = int_input(cs.WAN_VIDEO_DEFAULTS["length"], 1, 4097, "Video frames the "
                                                       "model sees at once (81 for Wan 2.1 = 21 latent frames).",
                                                       step=4)
        spec["required"]["stride"] = int_input(cs.WAN_VIDEO_DEFAULTS["stride"], 1, 4097,
                                               "Video frames between window starts.", step=4)
        del spec["optional"]["frame_unit"]  # always video frames
        return spec

    def run(self, model, context_length, stride, *args, **kwargs):
        kwargs.pop("frame_unit", None)
        ratio = cb.temporal_compression(model)  # Wan / HunyuanVideo 4, LTX-Video 8: read from the model
        if ratio == 1:
            raise ValueError(f"model: {self.DISPLAY_NAME} takes lengths in video frames of a video model (Wan, "
                             f"HunyuanVideo, LTX-Video), but {cb.family_label(model)} holds one frame per latent "
                             "frame; use LongAnim: ZoLA Windows with frame_unit = latent frames (16 for AnimateDiff)")
        length, stride, _ = cwo.video_lengths_to_latent(ratio, context_length, stride)
        return super().run(model, length, stride, *args, **kwargs)


class LongAnimGenLWindowsV2(LongAnimNode):
    NODE_ID = "LongAnimGenLWindowsV2"
    PATCH_ROLE = "context windows"
    DISPLAY_NAME = "LongAnim: Gen-L Windows"
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "Gen-L-Video temporal co-denoising (section 3.2): fixed clips of context_length at a stride, the last one "
        "shifted to end at the last frame, merged by the least-squares optimum (supplementary III). Gen-L uses "
        "stride = length/2 or length/4. Pick it to reproduce the paper or as a baseline; ZoLA Windows costs fewer "
        "model calls for slightly more visible seams (exact window benchmark: 1.34 vs 1.83 model evaluations per "
        "frame-step, worst seam 1.71 vs 1.53)."
    )
    RETURN_TYPES, RETURN_NAMES, OUTPUT_TOOLTIPS = OUT

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": MODEL_IN,
            "context_length": int_input(G["length"], 1, 1024, LENGTH_TIP),
            "stride": int_input(G["stride"], 1, 1024, STRIDE_TIP),
            "fuse_method": combo_input(cwo.FUSIONS, G["fusion"], FUSION_TIP),
        }, "optional": {
            "max_windows_per_batch": int_input(G["max_batch"], 0, 64, BATCH_TIP),
            "prompt_rule": combo_input(["zola", "genl"], G["prompt_rule"], PROMPT_TIP),
            "seed": seed_input("Seed of the randomized-blend cuts: only used with fuse_method = randomized_blend "
                               "(the only random draw of Gen-L's fixed windows), so it is optional here."),
            "retain_first_frame": ("BOOLEAN", {"default": G["keep_first_frame"], "tooltip": KEEP_FIRST_TIP}),
            "frame_unit": combo_input(FRAME_UNITS, "latent frames", UNIT_TIP),
            **_step_schedule_inputs(ends=False),
        }}

    def run(self, model, context_length, stride, fuse_method, max_windows_per_batch=G["max_batch"],
            prompt_rule=G["prompt_rule"], seed=G["seed"], retain_first_frame=G["keep_first_frame"],
            frame_unit="latent frames", skip_until=G["skip_until"]):
        context_length, stride, _ = latent_lengths(model, frame_unit, context_length, stride,
                                                   node=self.DISPLAY_NAME)
        return _patch(self, model, schedule="uniform", length=context_length, stride=stride, fusion=fuse_method,
                      seed=seed, max_batch=max_windows_per_batch, prompt_rule=prompt_rule,
                      keep_first_frame=bool(retain_first_frame), skip_until=float(skip_until))


def _schedule_inputs() -> dict:
    return {
        "context_schedule": combo_input(cs.SCHEDULES, D["schedule"],
                                        "zola: random offset + skip per step; uniform: Gen-L fixed stride; "
                                        "static: fixed windows with overlap; shifted: windows shifted per step "
                                        "(AnimateDiff-Evolved uniform); looped: shifted, wrapping around the end; "
                                        "batched: no overlap, the video split into near-equal windows."),
        "context_length": int_input(D["length"], 1, 1024, LENGTH_TIP),
        "stride": int_input(D["stride"], 1, 1024, STRIDE_TIP + " Used by zola and uniform."),
        "context_overlap": int_input(D["overlap"], 0, 1023, "Frames shared by neighbouring windows. Used by "
                                     "static, shifted, looped."),
        "max_skip": int_input(D["max_skip"], 1, 64, MAX_SKIP_TIP + " Used by zola."),
        "closed_loop": ("BOOLEAN", {"default": D["closed_loop"], "tooltip": "looped: let windows wrap around the end "
                                                                        "so the video loops seamlessly."}),
        "seed": seed_input("Seed of the window offsets, skips and blend cuts (mixed with the sampler's seed)."),
    }


class LongAnimContextWindowsV2(LongAnimNode):
    NODE_ID = "LongAnimContextWindowsV2"
    PATCH_ROLE = "context windows"
    DISPLAY_NAME = "LongAnim: Context Windows (all schedules)"
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "Every schedule and fusion of the pack in one node, including the anchors' schedules (static, shifted, "
        "looped, batched) for comparison. Inputs that a schedule does not use are ignored (greyed on the canvas). "
        "Pick it to compare schedules or for a looping video (looped + closed_loop); for a first video use ZoLA "
        "Windows."
    )
    RETURN_TYPES, RETURN_NAMES, OUTPUT_TOOLTIPS = OUT

    @classmethod
    def INPUT_TYPES(cls):
        req = {"model": MODEL_IN, **_schedule_inputs(),
               "fuse_method": combo_input(cwo.FUSIONS, D["fusion"], FUSION_TIP)}
        return {"required": req, "optional": {
            "blend_variant": combo_input(cs.BLEND_VARIANTS, D["blend_variant"],
                                         "randomized_blend: paper = cut f_thr ~ U{0..O} (Eq. 8); official = the "
                                         "authors' code (cut from O values)."),
            "max_windows_per_batch": int_input(D["max_batch"], 0, 64, BATCH_TIP),
            "prompt_rule": combo_input(["zola", "genl"], D["prompt_rule"], PROMPT_TIP),
            "retain_first_frame": ("BOOLEAN", {"default": D["keep_first_frame"], "tooltip": KEEP_FIRST_TIP}),
            "frame_unit": combo_input(FRAME_UNITS, "latent frames", UNIT_TIP),
            **_step_schedule_inputs(),
        }}

    def run(self, model, context_schedule, context_length, stride, context_overlap, max_skip, closed_loop, seed,
            fuse_method, blend_variant=D["blend_variant"], max_windows_per_batch=D["max_batch"],
            prompt_rule=D["prompt_rule"], retain_first_frame=D["keep_first_frame"], frame_unit="latent frames",
            ends=D["ends"], skip_until=D["skip_until"]):
        context_length, stride, overlap = latent_lengths(model, frame_unit, context_length, stride, context_overlap,
                                                         node=self.DISPLAY_NAME)
        return _patch(self, model, schedule=context_schedule, length=context_length, stride=stride, overlap=overlap,
                      max_skip=max_skip, closed_loop=closed_loop, fusion=fuse_method, blend_variant=blend_variant,
                      seed=seed, max_batch=max_windows_per_batch, prompt_rule=prompt_rule,
                      keep_first_frame=bool(retain_first_frame), ends=ends, skip_until=float(skip_until))


class LongAnimPreviewScheduleV2(LongAnimNode):
    NODE_ID = "LongAnimPreviewScheduleV2"
    DISPLAY_NAME = "LongAnim: Preview Schedule"
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "Draws the windows a schedule uses: one band per sampling step (top = first step, numbered on the left), "
        "columns = frames (numbered below), windows that do not overlap share a row; skipped frames show as grey "
        "gaps and, with randomized_blend, frames a window does not own are dimmed; a legend explains the colours. "
        "Uses the same code as sampling. Pick it to compare schedules side by side or to save a schedule's "
        "picture; the window nodes show the same picture live on the canvas."
    )
    RETURN_TYPES, RETURN_NAMES, OUTPUT_TOOLTIPS = outputs(("IMAGE", "image", "The schedule picture (steps × frames)."))

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "length": int_input(cs.PREVIEW_DEFAULTS["frames"], 1, 2048, "Latent frames of the whole video (the "
                                "picture is capped at 2048 frames)."),
            "steps": int_input(cs.PREVIEW_DEFAULTS["steps"], 1, 50, "The sampler's steps; every step is drawn, "
                               "labelled with its number (skip_until is a share of them)."),
            **_schedule_inputs(),
            "fuse_method": combo_input(cwo.FUSIONS, D["fusion"], FUSION_TIP),
        }, "optional": {
            "blend_variant": combo_input(cs.BLEND_VARIANTS, D["blend_variant"],
                                         "randomized_blend rule (see Context Windows)."),
            "sampler_seed": seed_input("The sampler's seed (windows depend on it too, as in sampling)."),
            **_step_schedule_inputs(),
        }}

    def run(self, length, steps, context_schedule, context_length, stride, context_overlap, max_skip, closed_loop,
            seed, fuse_method, blend_variant=D["blend_variant"], sampler_seed=0, ends=D["ends"],
            skip_until=D["skip_until"]):
        opts = cwo.WindowOptions(schedule=context_schedule, length=context_length, stride=stride,
                                 overlap=context_overlap, max_skip=max_skip, closed_loop=closed_loop,
                                 fusion=fuse_method, blend_variant=blend_variant, seed=seed, ends=ends,
                                 skip_until=float(skip_until))
        opts.validate()
        return (cwo.schedule_picture(opts, length, steps, sampler_seed),)


class LongAnimPromptScheduleV2(LongAnimNode):
    NODE_ID = "LongAnimPromptScheduleV2"
    DISPLAY_NAME = "LongAnim: Prompt Schedule"
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "Several prompts over a long video, one per frame range, e.g. '0-63: a cat walks' and '64-: a cat sleeps'. "
        "Feed it to a sampler's positive input on a model with LongAnim windows: each window then uses its "
        "prompt (ZoLA rule) or a blend (Gen-L rule), set on the window node."
    )
    RETURN_TYPES, RETURN_NAMES, OUTPUT_TOOLTIPS = outputs(
        ("CONDITIONING", "conditioning", "One conditioning entry per line, each tagged with its frame range."))

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "clip": link_input("CLIP", "The text encoder (from your checkpoint loader)."),
            "schedule": string_input("0-31: a red fox walks through snow\n32-: a red fox runs through a forest",
                                     "One line per prompt: 'start-end: prompt' (inclusive frames, in "
                                     "frame_unit), 'start-: prompt' to the end, '#' for comments. Every frame "
                                     "needs a prompt.",
                                     multiline=True),
            "length": int_input(64, 1, MAX_FRAMES, "Frames of the video, in frame_unit: the latent's batch size "
                                "for SD/AnimateDiff; for Wan/HunyuanVideo/LTX-Video the length you typed in the "
                                "latent node, with frame_unit = video frames."),
        }, "optional": {
            "frame_unit": combo_input(PROMPT_UNITS, PROMPT_UNITS[0], PROMPT_UNIT_TIP),
        }}

    def run(self, clip, schedule, length, frame_unit=PROMPT_UNITS[0]):
        if frame_unit not in PROMPT_UNITS:
            raise ValueError(f"frame_unit must be one of {PROMPT_UNITS}, got {frame_unit!r}")
        intervals = ps.parse_prompt_schedule(schedule, length)
        chars = sum(len(p) for p in {iv.prompt for iv in intervals})
        if chars > MAX_SCHEDULE_CHARS:
            raise ValueError(f"schedule: its prompts hold {chars:,} characters, more than {MAX_SCHEDULE_CHARS:,} "
                             f"({self.DISPLAY_NAME}); the text encoder encodes every prompt, which at this size "
                             "blocks the queue for a long time. Shorten the prompts (a prompt is rarely over 1,000 "
                             "characters) or use fewer lines")
        ratio = PROMPT_UNIT_RATIO[frame_unit]
        if ratio > 1:
            intervals = ps.video_intervals_to_latent(intervals, ratio, length)
        out, encoded_once = [], {}
        for iv in intervals:
            if iv.prompt not in encoded_once:  # a prompt used on several ranges is encoded once
                encoded_once[iv.prompt] = clip.encode_from_tokens_scheduled(clip.tokenize(iv.prompt))
            encoded = encoded_once[iv.prompt]
            out += tag_conditioning(encoded, iv.start, iv.end,
                                    f"{self.DISPLAY_NAME} (schedule line '{iv.start}-{iv.end}: {iv.prompt[:40]}')")
        return (out,)


def tag_conditioning(conditioning, start: int, end: int, source: str = "", unit: str = "latent frames"):
    """Tag every entry with the inclusive frame range ``start..end`` (in ``unit``) and the node that tagged it."""
    extra = {cw.TAG_SOURCE_KEY: source} if source else {}
    if unit != "latent frames":
        extra[cw.TAG_UNIT_KEY] = unit
    return [[c[0], {**c[1], cw.TAG_KEY: (int(start), int(end)), **extra}] for c in conditioning]


class LongAnimConditioningFramesV2(LongAnimNode):
    NODE_ID = "LongAnimConditioningFramesV2"
    DISPLAY_NAME = "LongAnim: Conditioning Frame Range"
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "Tags any conditioning with a frame range so LongAnim windows use it only there. Combine several tagged "
        "conditionings with core's Conditioning (Combine) to build a multi-prompt video from any text encoder. "
        "The range acts only on a MODEL with a LongAnim window node: without one the sampler ignores it and uses "
        "the conditioning on every frame."
    )
    RETURN_TYPES, RETURN_NAMES, OUTPUT_TOOLTIPS = outputs(
        ("CONDITIONING", "conditioning", "The conditioning, tagged with the frame range."))

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "conditioning": link_input("CONDITIONING", "Conditioning from any text encode node."),
            "start_frame": int_input(0, 0, MAX_FRAMES, "First frame (inclusive, in frame_unit) that uses it."),
            "end_frame": int_input(15, 0, MAX_FRAMES, "Last frame (inclusive, in frame_unit) that uses it."),
        }, "optional": {
            "frame_unit": combo_input(FRAME_UNITS, "latent frames", RANGE_UNIT_TIP),
        }}

    def run(self, conditioning, start_frame, end_frame, frame_unit="latent frames"):
        if frame_unit not in FRAME_UNITS:
            raise ValueError(f"frame_unit must be one of {FRAME_UNITS}, got {frame_unit!r}")
        if end_frame < start_frame:
            raise ValueError(f"end_frame must be >= start_frame ({start_frame}), got {end_frame}")
        unit = "" if frame_unit == "latent frames" else ", video frames"
        source = f"{self.DISPLAY_NAME} (start_frame {start_frame}, end_frame {end_frame}{unit})"
        return (tag_conditioning(conditioning, start_frame, end_frame, source, frame_unit),)


NODES = [
    LongAnimZoLAWindowsV2,
    LongAnimWanZoLAWindowsV2,
    LongAnimGenLWindowsV2,
    LongAnimContextWindowsV2,
    LongAnimPreviewScheduleV2,
    LongAnimPromptScheduleV2,
    LongAnimConditioningFramesV2,
]
# retired ids (docs/vocabulary.md): saved workflows keep loading with their old input names
LongAnimZoLAWindows = vocabulary.alias(LongAnimZoLAWindowsV2)
LongAnimWanZoLAWindows = vocabulary.alias(LongAnimWanZoLAWindowsV2)
LongAnimGenLWindows = vocabulary.alias(LongAnimGenLWindowsV2)
LongAnimContextWindows = vocabulary.alias(LongAnimContextWindowsV2)
LongAnimPreviewSchedule = vocabulary.alias(LongAnimPreviewScheduleV2)
LongAnimPromptSchedule = vocabulary.alias(LongAnimPromptScheduleV2)
LongAnimConditioningFrames = vocabulary.alias(LongAnimConditioningFramesV2)
DEPRECATED_NODES = [LongAnimZoLAWindows, LongAnimWanZoLAWindows, LongAnimGenLWindows, LongAnimContextWindows,
                    LongAnimPreviewSchedule, LongAnimPromptSchedule, LongAnimConditioningFrames]
