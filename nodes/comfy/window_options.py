"""The options of LongAnim's window loop and the picture of the schedule they give.

Owns :class:`WindowOptions` (schedule, window length, stride/overlap/skip, the ends rule and the spanning skip
phase, fusion, seeds, windows per call, prompt rule, keep_first_frame: plain values, so they deep-copy with the
model) and :func:`schedule_picture`, the drawing of the windows every sampling step uses. Both are shared by the
window nodes, the Preview Schedule node, the window loop (``windows.py``) and the canvas preview route
(``routes.py``): one source of truth for what sampling does.

Core hooks used: none (pure: ``nodes/algorithms/context_schedule.py`` only), so both sides can import it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..algorithms import context_schedule as cs
from ..algorithms import scene_noise as sn

FUSIONS = (*cs.WEIGHT_METHODS, "randomized_blend")
D = cs.WINDOW_DEFAULTS  # the one table of defaults (algorithms/window_defaults.py)
SCENE_NOISE_DEFAULT = cs.ZOLA_DEFAULTS["scene_noise"]  # the ZoLA window nodes' (bench_consistency.py)


@dataclass(frozen=True)
class WindowOptions:
    """Everything the window loop needs; plain values only (deep-copied with the model on 0.3.75). Defaults: the
    ZoLA Windows node's, from ``context_schedule.WINDOW_DEFAULTS``."""

    schedule: str = D["schedule"]
    length: int = D["length"]
    stride: int = D["stride"]
    overlap: int = D["overlap"]
    max_skip: int = D["max_skip"]
    closed_loop: bool = D["closed_loop"]
    fusion: str = D["fusion"]
    blend_variant: str = D["blend_variant"]
    seed: int = D["seed"]
    max_batch: int = D["max_batch"]
    prompt_rule: str = D["prompt_rule"]
    keep_first_frame: bool = D["keep_first_frame"]
    ends: str = D["ends"]
    skip_until: float = D["skip_until"]
    scene_noise: str = D["scene_noise"]
    scene_share: float = D["scene_share"]
    extra: dict = field(default_factory=dict)

    def _params(self) -> dict:
        """The inputs this schedule uses; the others are neutralised so a hidden default cannot fail validation."""
        uses_overlap = self.schedule in ("static", "shifted", "looped")
        return dict(length=self.length,
                    stride=self.stride if self.schedule in ("zola", "uniform") else self.length,
                    overlap=self.overlap if uses_overlap else 0,
                    max_skip=self.max_skip if self.schedule == "zola" else 1)

    def validate(self) -> None:
        p = self._params()
        cs.validate_window_params(p["length"], stride=p["stride"], overlap=p["overlap"], max_skip=p["max_skip"],
                                  schedule=self.schedule)
        if self.fusion not in FUSIONS:
            raise ValueError(f"fuse_method must be one of {list(FUSIONS)}, got {self.fusion!r}")
        if self.blend_variant not in cs.BLEND_VARIANTS:
            raise ValueError(f"blend_variant must be one of {list(cs.BLEND_VARIANTS)}, got {self.blend_variant!r}")
        if self.prompt_rule not in ("zola", "genl"):
            raise ValueError(f"prompt_rule must be 'zola' or 'genl', got {self.prompt_rule!r}")
        if self.keep_first_frame and (self.schedule == "looped" or self.closed_loop):
            raise ValueError("retain_first_frame: windows that wrap around the end (schedule 'looped' or "
                             "closed_loop) put frame 0 in the middle of a window; use another schedule or turn "
                             "retain_first_frame off")
        if self.ends not in cs.ENDS:
            raise ValueError(f"ends must be one of {list(cs.ENDS)}, got {self.ends!r}")
        if not 0.0 <= float(self.skip_until) <= 1.0:
            raise ValueError(f"skip_until must be a share of the sampling steps in [0, 1] (0 = off), got "
                             f"{self.skip_until!r}")
        if self.scene_noise not in sn.SCENE_RULES:
            raise ValueError(f"noise must be one of {list(sn.SCENE_RULES)}, got {self.scene_noise!r}")
        sn.validate_scene_params(self.scene_noise, self.length, self.scene_share)
        if self.max_batch < 0:
            raise ValueError(f"max_windows_per_batch must be >= 0 (0 = auto), got {self.max_batch}")

    def windows(self, num_frames: int, step: int, seed: int, num_steps: int | None = None) -> list[list[int]]:
        """The windows of sampling step ``step`` of a run of ``num_steps`` steps (needed when ``skip_until > 0``:
        the spanning skip phase is a share of the run's steps, ``context_schedule.skip_phase_steps``)."""
        skip_until = float(self.skip_until)
        align = self.window_align()
        steps = max(1, int(num_steps)) if num_steps else None
        return cs.make_windows(self.schedule, num_frames, step, seed, closed_loop=self.closed_loop, ends=self.ends,
                               skip_until=skip_until, num_steps=(steps or 1) if skip_until else steps,
                               align=align, align_until=sn.FREENOISE_ALIGN_UNTIL if align > 1 else 1.0,
                               **self._params())

    def window_align(self) -> int:
        """Frames ZoLA's random offsets are a multiple of: FreeNoise's chunk (a quarter window) with the freenoise
        scene noise, so every window holds whole chunks of the first window's noise; 1 otherwise. Applies to the
        first ``scene_noise.FREENOISE_ALIGN_UNTIL`` of the steps when the step count is known (``windows``)."""
        return sn.freenoise_chunk(self.length) if self.scene_noise == "freenoise" else 1

    def blend_masks(self, windows, num_frames: int, step: int, seed: int):
        if self.fusion != "randomized_blend":
            return None
        gen = cs.step_generator(seed, step, cs.STREAM_BLEND)
        return cs.randomized_blend_masks(windows, num_frames, gen, variant=self.blend_variant)

    def step_seed(self, run_seed: int, travel_pass: int) -> int:
        """The seed of this run's window draws: the node's seed mixed with the sampler's seed and the pass."""
        return cs.mix_seed(self.seed, run_seed, 1000 + int(travel_pass))


def video_frames_to_latent(frames: int, ratio: int) -> int:
    """Latent frames of ``frames`` video frames under a causal VAE of temporal ratio ``ratio``: ``(n - 1) // r + 1``
    (Wan, HunyuanVideo: 4; LTX-Video: 8; SD/AnimateDiff: 1, the same number)."""
    return max(1, (int(frames) - 1) // int(ratio) + 1)


def video_lengths_to_latent(ratio: int, length: int, stride: int, overlap: int = 0) -> tuple[int, int, int]:
    """A window node's (length, stride, overlap) typed in video frames, in latent frames: length and stride
    ``(n - 1) // r + 1`` (stride at most the length), overlap ``n // r`` (below the length)."""
    latent = video_frames_to_latent(length, ratio)
    return (latent, max(1, min(latent, video_frames_to_latent(stride, ratio))),
            min(latent - 1, int(overlap) // int(ratio)) if latent > 1 else 0)


PICTURE_MAX_SIZE = 1280  # pixels, each side: the labelled picture stays readable and cheap at 4096 frames


def shown_steps(num_steps: int, max_bands: int) -> list[int]:
    """The steps a picture of a ``num_steps``-step run draws when it has room for ``max_bands`` bands: all of them,
    or ``max_bands`` steps spread evenly from the first to the last (so the switch of a skip phase shows)."""
    n, m = max(1, int(num_steps)), max(1, int(max_bands))
    if n <= m:
        return list(range(n))
    if m == 1:
        return [0]
    return sorted({round(i * (n - 1) / (m - 1)) for i in range(m)})


def schedule_picture(opts, frames: int, steps: int, sampler_seed: int = 0, shown=None):
    """The windows (and blend masks) sampling would use, drawn with frame and step axes, a legend and one lane per
    set of disjoint windows; shared by the Preview Schedule node and the canvas preview route.

    ``steps`` is the sampler's step count (the spanning skip phase is a share of it); ``shown`` the steps drawn
    (default all), each band labelled with its step number.
    """
    seed = opts.step_seed(sampler_seed, 0)
    shown = list(range(steps)) if shown is None else [int(s) for s in shown]
    per_step, masks = [], []
    for step in shown:
        windows = opts.windows(frames, step, seed, num_steps=steps)
        per_step.append(windows)
        masks.append(opts.blend_masks(windows, frames, step, seed))
    cell = max(2, min(8, 1024 // max(1, frames)))
    return cs.render_schedule_preview(per_step, frames, masks, cell=cell, axes=True, lanes=True,
                                      max_width=PICTURE_MAX_SIZE, max_height=PICTURE_MAX_SIZE, step_labels=shown)
