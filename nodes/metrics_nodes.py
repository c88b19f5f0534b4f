"""Evidence nodes: temporal-consistency metrics of a long video, with window borders marked.

Thin glue over ``nodes/algorithms/metrics.py`` (StreamingT2V section 5.1 and appendix 12: SCuts and MAWE; plus the
pack's own seam, drift and repetition diagnostics for window-based samplers).
"""
from __future__ import annotations

import logging
import math

import torch

from . import vocabulary
from .algorithms import metrics as mt
from .base import LongAnimNode, int_input, link_input
from .comfy import basics
from .comfy import windows as cw

log = logging.getLogger("LongAnim")

CATEGORY = "LongAnim/evidence"
WINDOWS_KEY = cw.WINDOWS_KEY  # LATENT key: the window schedule of the last sampling step (list of index lists)
MAWE_DEFAULT_SIDE = 128
MAWE_EPS = 1e-2  # = metrics.mawe's default eps (OFS floor, px^2); kept equal by a test
MAWE_PAIRS_PER_CALL = 8  # frame pairs per flow batch: bounds memory, lets Cancel and the progress bar work
NOT_MEASURED = -1.0


# ---------------------------------------------------------------------------------------------- inputs
def _check_images(images) -> torch.Tensor:
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        shape = list(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images: expected an IMAGE batch [frames, H, W, C] (e.g. from VAE Decode), got {shape}")
    if images.shape[0] < 2:
        raise ValueError(f"images: need at least 2 frames to measure changes between frames, got "
                         f"{images.shape[0]}; connect the decoded video (all frames), not a single image")
    if images.shape[-1] != 3:
        raise ValueError(f"images: expected RGB (3 channels), got {images.shape[-1]}; use an RGB IMAGE batch")
    return images


def _check_latent(latent) -> tuple[torch.Tensor, int]:
    if not isinstance(latent, dict) or not isinstance(latent.get("samples"), torch.Tensor):
        raise ValueError("latent: expected a LATENT (a dict with 'samples'), e.g. the output of a KSampler")
    samples = latent["samples"]
    axis = basics.frame_axis_of(samples, "latent")
    if samples.shape[axis] < 2:
        raise ValueError(f"latent: need at least 2 frames to measure changes between frames, got "
                         f"{samples.shape[axis]}")
    return samples, axis


def carried_windows(latent) -> list[list[int]] | None:
    """The window schedule of the run that produced this LATENT, if any: ``latent["longanim_windows"]`` (the pack's
    own samplers, e.g. refinement chunks, put it there), else the record the window loop filed under the output of
    core KSampler / SamplerCustomAdvanced (``nodes/comfy/windows.py: recorded_windows``).

    Accepts a list of windows (index lists); a list of per-step schedules is read as its last step.
    """
    if not isinstance(latent, dict):
        return None
    wins = latent.get(WINDOWS_KEY)
    if not wins:  # core samplers copy their input dict: look up the run by its output (filed by the window loop)
        wins = cw.recorded_windows(latent.get("samples"))
    if not wins:
        return None
    try:
        wins = list(wins)
        if wins and isinstance(wins[0], (list, tuple)) and wins[0] and isinstance(wins[0][0], (list, tuple)):
            wins = list(wins[-1])  # per-step history: the last step's schedule
        return [[int(f) for f in w] for w in wins]
    except (TypeError, ValueError):
        log.warning("LongAnim metrics: ignoring an unreadable %s entry in the LATENT", WINDOWS_KEY)
        return None


def map_borders(borders: list[int], src_frames: int, dst_frames: int) -> list[int]:
    """Move borders from a latent's frame grid to the decoded video's.

    Equal counts: unchanged (SD/AnimateDiff). Temporally compressed video VAEs (Wan: latent frame 0 = video frame 0,
    latent frame k >= 1 = video frames r(k-1)+1 .. rk with r = (dst - 1) / (src - 1)): border b -> r(b-1) + 1.
    Anything else: scaled proportionally, b -> round(b * dst / src).
    """
    if src_frames == dst_frames:
        out = list(borders)
    elif src_frames > 1 and (dst_frames - 1) % (src_frames - 1) == 0:
        r = (dst_frames - 1) // (src_frames - 1)
        out = [r * (b - 1) + 1 for b in borders]
    else:
        out = [round(b * dst_frames / src_frames) for b in borders]
    return sorted({b for b in out if 1 <= b <= dst_frames - 1})


def mawe_resolution(height: int, width: int, max_side: int) -> tuple[int, int] | None:
    """(H, W) to resize to so that the longer side is at most ``max_side`` (aspect kept); None = keep the size."""
    if max(height, width) <= max_side:
        return None
    scale = max_side / max(height, width)
    return max(8, round(height * scale)), max(8, round(width * scale))


def mawe_streamed(video: torch.Tensor, resolution, pixel_scale: float, progress=None) -> float:
    """``metrics.mawe`` computed block by block (``MAWE_PAIRS_PER_CALL`` pairs), checking Cancel between blocks.

    Same value as ``metrics.mawe(video, resolution, pixel_scale)``: W is the mean over frame pairs and OFS the mean
    over flow vectors, and every pair has the same number of flow vectors, so both are pair-weighted means of the
    blocks' values.
    """
    t = video.shape[0]
    pairs = t - 1
    w_sum = ofs_sum = 0.0
    done = 0
    for start in range(0, pairs, MAWE_PAIRS_PER_CALL):
        basics.check_interrupt()
        stop = min(start + MAWE_PAIRS_PER_CALL, pairs)
        w_err, ofs = mt.warp_error_and_flow_score(video[start:stop + 1], resolution, pixel_scale)
        n = stop - start
        w_sum += w_err * n
        ofs_sum += ofs * n
        done += n
        if progress is not None:
            progress(done)
    return (w_sum / pairs) / max(ofs_sum / pairs, MAWE_EPS)


def latent_pseudo_rgb(frames: torch.Tensor) -> torch.Tensor:
    """Latent frames ``[T, H, W, C]`` -> a pseudo-colour video ``[T, H, W, 3]`` in [0, 1] for the scene-cut detector.

    The 3 principal components of the latent channels over the whole video (channel covariance, C x C), each mapped
    from mean ± 3 std to [0, 1]. Fewer than 3 channels are padded with the first one.
    """
    x = frames.float()
    c = x.shape[-1]
    flat = x.reshape(-1, c)
    mean = flat.mean(0)
    cov = torch.cov((flat - mean).T) if c > 1 else flat.var().reshape(1, 1)
    _, vecs = torch.linalg.eigh(cov.reshape(c, c))
    basis = vecs[:, -3:].flip(-1) if c >= 3 else torch.cat([vecs] + [vecs[:, :1]] * (3 - c), dim=1)
    proj = (x - mean) @ basis
    sd = proj.reshape(-1, 3).std(0).clamp_min(1e-8)
    return (proj / (6.0 * sd) + 0.5).clamp(0.0, 1.0)


def _fmt(v: float) -> str:
    if v == NOT_MEASURED:
        return "not measured"
    return "inf" if math.isinf(v) else f"{v:.4g}"


# ---------------------------------------------------------------------------------------------- node
class LongAnimVideoMetricsV2(LongAnimNode):
    NODE_ID = "LongAnimVideoMetricsV2"
    DISPLAY_NAME = "LongAnim: Video Metrics"
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "Measures how consistent a long video is, to compare long-video settings with numbers instead of by eye. "
        "Connect the decoded frames (IMAGE) and/or the sampled LATENT. seam_ratio = mean frame-to-frame change at "
        "window borders / elsewhere (1 = invisible seams, >> 1 = visible jumps). mawe = motion-aware warp error "
        "(StreamingT2V appendix 12, Eq. 13: warp error / optical-flow score; lower = consistent and moving). "
        "scene_cuts = number of cuts PySceneDetect's AdaptiveDetector would find (SCuts, StreamingT2V 5.1; a long "
        "single-shot video should have 0). drift = colour/latent statistics change between the first and last "
        "window (0 = none). The plot shows the frame-to-frame change with window borders in red. Window borders "
        "come from the LATENT when the LongAnim window loop recorded them, else from context_length."
    )
    RETURN_TYPES = ("FLOAT", "FLOAT", "INT", "FLOAT", "STRING", "IMAGE")
    RETURN_NAMES = ("seam_ratio", "mawe", "scene_cuts", "drift", "report", "plot")
    OUTPUT_TOOLTIPS = (
        "Mean adjacent-frame change at window borders divided by the mean change elsewhere: ~1 = seams invisible, "
        "2+ = visible jumps where windows meet. 1.0 when no borders are known.",
        "Motion-aware warp error (StreamingT2V): warp error / optical-flow score, lower is better. On IMAGE in 8-bit "
        "pixel units at the capped resolution (compare only equal resolutions); on a LATENT in latent units. "
        "-1 = not measured (mawe_max_side = 0).",
        "Number of scene cuts (SCuts, PySceneDetect AdaptiveDetector with default parameters). 0 for a single shot.",
        "Distribution drift between the first and last window: 2-Wasserstein distance of per-channel Gaussians in "
        "units of the whole video's spread (0 = same colours at both ends, ~1 = very different).",
        "A readable summary of all numbers, where the borders came from and how each number was measured. "
        "Show it with a text preview node (e.g. Preview Any).",
        "Bar plot of the frame-to-frame change (one bar per transition) with window borders in red and the mean "
        "non-border change as a grey line. Connect to Preview Image.",
    )

    DOC_EXTRA = """## How each number is measured

- **seam_ratio** = mean |x_(b) - x_(b-1)| over window borders b / the same mean over all other transitions
  (every pixel and channel). Not a paper equation: it measures directly the chunk inconsistency StreamingT2V
  (section 4.3, Fig. 12) and Gen-L-Video (section 3.2) describe. Borders: the windows of the last sampling step
  of the run that produced the LATENT (the window starts and ends, moved to video frames for temporally
  compressed VAEs such as Wan's 4x). LongAnim's window loop records them for core KSampler /
  SamplerCustomAdvanced runs (filed under the output latent's content on this server, newest 16 runs: connect
  the sampler's LATENT directly or through nodes that keep its values), and the refinement node writes its chunks
  into the LATENT (`longanim_windows`). Else every `context_length` frames, else none (then 1.0).
  Typical: plain non-overlapping windows 2-20; Gen-L overlapping windows or ZoLA re-drawn windows close to 1.
- **mawe** = W(V) / OFS(V), StreamingT2V appendix 12, Eq. 13: mean squared warp error between consecutive frames
  (8-bit pixel units) over the mean squared optical-flow magnitude. Flow: a classical pyramidal Lucas-Kanade flow
  (the paper uses a learned one), so values are comparable between runs of this node, not with the paper's table.
  Speed: frames are downscaled so the longer side is at most `mawe_max_side` (default 128; ~0.1-0.5 s per frame on
  a CPU). OFS is floored at 0.01 px² so a static video gives 0 instead of 0/0.
- **scene_cuts** = SCuts (StreamingT2V section 5.1): PySceneDetect's AdaptiveDetector with default parameters,
  re-implemented in torch (HSV content score, ratio to the ±2-frame neighbourhood >= 3, score >= 15, scenes of at
  least 15 frames: cuts in the first ~13 frames are not reported).
- **drift** = distance between per-channel Gaussians fitted to the first and the last window (or quarter of the
  video when `context_length` is 0), in units of the whole video's spread.
- On a LATENT only: the same numbers in latent units; scene cuts run on a 3-component PCA pseudo-colour view of the
  latent channels. Use the decoded IMAGE when you can.

## Typical use

Sample -> VAE Decode -> **Video Metrics** (images = decoded frames, latent = the sampler's LATENT, context_length =
the context length in video frames). Preview `plot` with Preview Image and `report` with Preview Any. Change one
setting at a time (stride, fusion, noise init, noise travel) with the same seed and compare seam_ratio and mawe;
scene_cuts should stay 0 for a single-shot prompt. `tests/benchmarks/analytic_quality.py` runs the same seam
measure on an exact analytic video model for every window technique of the pack.
"""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}, "optional": {
            "images": link_input("IMAGE", "The decoded video frames (VAE Decode output). Preferred: all metrics "
                                          "are defined on pixels. Give this or latent (or both)."),
            "latent": link_input("LATENT", "The sampled latent. Used for window borders if the LongAnim window "
                                           "loop recorded them, and for the metrics when no images are given "
                                           "(then they are in latent units)."),
            "context_length": int_input(0, 0, 4096, "The sampler's context_length, in frames of the measured input "
                                       "(video frames if images are connected, else latent frames). Marks borders "
                                       "at every multiple of it when the latent carries no schedule, and sets the "
                                       "drift/repetition window. 0 = unknown."),
            "mawe_max_side": int_input(MAWE_DEFAULT_SIDE, 0, 1024, "MAWE runs optical flow on frames downscaled "
                                       "so the longer side is at most this many pixels (speed: ~0.1-0.5 s per "
                                       "frame on a CPU at 128). The paper uses 720; only compare MAWE values "
                                       "taken at the same setting. 0 = skip MAWE.", step=16),
        }}

    def run(self, images=None, latent=None, context_length=0, mawe_max_side=MAWE_DEFAULT_SIDE):
        basics.check_finite(images, "images", self.DISPLAY_NAME)
        basics.check_finite(latent, "latent", self.DISPLAY_NAME)
        if images is None and latent is None:
            raise ValueError("images / latent: connect at least one of them (the decoded frames as IMAGE, or the "
                             "sampled LATENT); both are optional but the node needs something to measure")
        if not (isinstance(context_length, int) and context_length >= 0):
            raise ValueError(f"context_length must be an integer >= 0 (0 = unknown), got {context_length!r}")
        if not (isinstance(mawe_max_side, int) and (mawe_max_side == 0 or 16 <= mawe_max_side <= 1024)):
            raise ValueError(f"mawe_max_side must be 0 (skip) or in [16, 1024] pixels, got {mawe_max_side!r}")
        samples = axis = None
        if latent is not None:
            samples, axis = _check_latent(latent)
        lines: list[str] = []
        if images is not None:
            video = _check_images(images)
            frames, frame_axis, channel_axis, on = video, 0, 3, "images"
            lines.append(f"Measured on: IMAGE, {video.shape[0]} frames of {video.shape[2]}x{video.shape[1]} px.")
        else:
            video = samples
            frame_axis, channel_axis, on = axis, 1, "latent"
            frames = mt.to_image_layout(samples, axis)
            extra = " (batch element 0 for MAWE and scene cuts)" if samples.ndim == 5 and samples.shape[0] > 1 else ""
            lines.append(f"Measured on: LATENT {list(samples.shape)}, {frames.shape[0]} latent frames{extra}. "
                         "Latent statistics: numbers are in latent units, not comparable with pixel-based values.")
        num_frames = int(frames.shape[0])

        # borders
        wins = carried_windows(latent)
        if wins is not None and samples is not None:
            lat_frames = int(samples.shape[axis])
            borders = mt.window_borders(wins, lat_frames)
            if on == "images":
                borders = map_borders(borders, lat_frames, num_frames)
            src = (f"the window schedule recorded by the LongAnim window loop ({len(wins)} windows of the run's last "
                   "step)")
        elif context_length > 0:
            borders = list(range(context_length, num_frames, context_length))
            src = f"uniform, every {context_length} frames (context_length; the LATENT carried no schedule)"
        else:
            borders = []
            src = "unknown (no schedule in the LATENT and context_length = 0): seam_ratio is 1.0 by definition"
        basics.check_interrupt()

        jumps = mt.frame_jumps(video, frame_axis)
        seam = mt.seam_ratio(jumps, borders)
        cut_video = frames if on == "images" else latent_pseudo_rgb(frames)
        cuts = mt.scene_cuts(cut_video)
        drift_window = min(context_length, num_frames) if context_length > 0 else max(1, num_frames // 4)
        drift = mt.long_range_drift(video, drift_window, frame_axis=frame_axis, channel_axis=channel_axis)
        rep = mt.lag_correlation(video, frame_axis, context_length) if 0 < context_length < num_frames else None
        basics.check_interrupt()

        if mawe_max_side > 0:
            res = mawe_resolution(int(frames.shape[1]), int(frames.shape[2]), mawe_max_side)
            bar = basics.Progress(num_frames - 1)
            mawe = mawe_streamed(frames, res, 255.0 if on == "images" else 1.0, progress=bar)
            size = res or (int(frames.shape[1]), int(frames.shape[2]))
            how = (f"8-bit pixel units (x255), flow at {size[1]}x{size[0]}" if on == "images"
                   else f"latent units, flow on the {size[1]}x{size[0]} latent grid")
        else:
            mawe, how = NOT_MEASURED, "skipped (mawe_max_side = 0)"
        plot = mt.render_metrics_plot(jumps, borders)

        lines += [
            f"Window borders: {src}" + (f": {borders[:24]}{' ...' if len(borders) > 24 else ''}" if borders else ""),
            f"seam_ratio: {_fmt(seam)} (change at borders / elsewhere; ~1 = invisible seams, >> 1 = visible)",
            f"mawe: {_fmt(mawe)} ({how}; classical Lucas-Kanade flow, lower = consistent and moving)",
            f"scene_cuts: {len(cuts)}" + (f" at frames {cuts}" if cuts else "")
            + (" (on a 3-component PCA pseudo-colour view of the latent)" if on == "latent" else ""),
            f"drift: {_fmt(drift)} (first vs last {drift_window} frames; 0 = same statistics)",
        ]
        if rep is not None:
            lines.append(f"lag correlation at {context_length} frames: {rep:.3f} (repetition; ~1 = the video repeats "
                         "with the window period)")
        lines.append(f"mean frame-to-frame change: {float(jumps.mean()):.4g}, largest: {float(jumps.max()):.4g} "
                     f"at frame {int(jumps.argmax()) + 1}")
        report = "\n".join(lines)
        log.info("LongAnim metrics:\n%s", report)
        return (float(seam), float(mawe), len(cuts), float(drift), report, plot)


NODES: list = [LongAnimVideoMetricsV2]
LongAnimVideoMetrics = vocabulary.alias(LongAnimVideoMetricsV2)
DEPRECATED_NODES = [LongAnimVideoMetrics]
