"""The defaults of LongAnim's context windows: one table that every layer reads (pure).

The window nodes' input defaults, :class:`~nodes.comfy.window_options.WindowOptions`' field defaults,
:func:`~.window_schedules.make_windows`' ``ends`` default and the canvas preview route's fallbacks for a missing
query value all come from here (the canvas itself sends the widgets' values), so a default changed here changes
it everywhere; ``tests/unit/test_window_defaults.py`` checks that every layer agrees.

Keys are the option names of ``WindowOptions`` (the nodes call ``length`` ``context_length``, ``max_batch``
``max_windows_per_batch`` and ``schedule`` ``context_schedule``). Why each value:

- ``stride = 12`` (3/4 of the 16-frame length) with ``ends = "truncate"`` and ``max_skip = 1``: measured on the
  exact window benchmark (``tests/benchmarks/bench_schedules.py``): no pinned border at about 1.3 model
  evaluations per frame-step; frame skips doubled the worst seam; see the README's benchmark section.
- ``fusion = "flat"``, by measurement: on the exact window benchmark (``bench_schedules.py``, its "Default fusion"
  table) the default schedule above has a worst seam of 1.71 with flat, 1.76 with least squares and 1.86 with
  Eq. 4 (hard case, 96 frames; 1.71 / 1.73 / 1.85 at 256 frames, 1.70 / 1.73 / 1.84 on the easy kernel), at the
  same cost. Flat is ZoLA sec. 4.3's own merge of the denoising-path windows ("will be averaged"); Eq. 4 measured
  better only together with the spanning skip phase (``skip_until`` 0.55: 0.91 vs least squares 0.93, flat 1.00),
  so a user who turns that phase on should pick ``fusion = "zola"`` too.
- ``max_batch = 0``: automatic (as many windows per model call as the memory estimate allows).
- ``skip_until = 0``: the spanning skip phase is off (it needs a model trained on strided clips).
"""
from __future__ import annotations

from types import MappingProxyType

WINDOW_DEFAULTS = MappingProxyType({
    "schedule": "zola",
    "length": 16,
    "stride": 12,
    "overlap": 4,
    "max_skip": 1,
    "closed_loop": False,
    "fusion": "flat",
    "blend_variant": "paper",
    "seed": 0,
    "max_batch": 0,
    "prompt_rule": "zola",
    "keep_first_frame": False,
    "ends": "truncate",
    "skip_until": 0.0,
    "scene_noise": "off",
    "scene_share": 0.75,
})

#: ZoLA Windows (and its Wan variant): the table plus the scene-carrying noise ``freenoise`` (FreeNoise of the
#: sampler's own noise, window offsets on its chunks; ``scene_noise.py``), measured to keep the scene the first window
#: picks (``tests/benchmarks/bench_consistency.py``). The other window users (Context Windows, Gen-L, refinement,
#: inversion) keep the sampler's noise (``scene_noise = "off"``).
ZOLA_DEFAULTS = MappingProxyType({**WINDOW_DEFAULTS, "scene_noise": "freenoise"})

#: Gen-L Windows (Gen-L-Video sec. 3.2): fixed clips at half the length, least-squares fusion (supp. III), prompts
#: blended by the frames they cover.
GENL_DEFAULTS = MappingProxyType({
    **WINDOW_DEFAULTS, "schedule": "uniform", "stride": 8, "fusion": "least_squares", "prompt_rule": "genl",
})

#: ZoLA Windows (Wan, video frames): lengths in video frames (Wan 2.1's 81-frame clips = 21 latent frames).
WAN_VIDEO_DEFAULTS = MappingProxyType({"length": 81, "stride": 61})

#: The Preview Schedule node and the canvas preview: latent frames and sampler steps drawn.
PREVIEW_DEFAULTS = MappingProxyType({"frames": 64, "steps": 6})

__all__ = ["GENL_DEFAULTS", "PREVIEW_DEFAULTS", "WAN_VIDEO_DEFAULTS", "WINDOW_DEFAULTS", "ZOLA_DEFAULTS"]
