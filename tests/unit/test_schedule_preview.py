"""Tests for the schedule picture's axes, lanes, legend and size bounds (nodes/algorithms/schedule_preview.py via
context_schedule.render_schedule_preview). The plain picture is tested in test_context_schedule.py."""

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from longanim.nodes.algorithms import context_schedule as cs
from longanim.nodes.algorithms import schedule_preview as sp

TEXT = torch.tensor(sp._TEXT)


def _zola(T, steps, **kw):
    kw = dict(dict(length=16, stride=12, overlap=0, max_skip=1), **kw)
    return [cs.make_windows("zola", T, s, 3, **kw) for s in range(steps)]


def test_defaults_draw_the_plain_picture():
    steps = _zola(40, 3, max_skip=2)
    plain = cs.render_schedule_preview(steps, 40, cell=4)
    assert plain.shape == (1, sum(len(w) for w in steps) * 4 + 2, 160, 3)
    # the framed renderer without axes, lanes or bounds lays the bands out the same way
    framed = sp._render_framed(steps, 40, None, 4, axes=False, lanes=False, max_width=None, max_height=None,
                               step_labels=None)
    assert torch.equal(framed, plain)


def test_glyphs_are_drawn_where_asked():
    img = torch.zeros(7, 16, 3)
    sp.draw_text(img, 1, 1, "10")
    ink = (img == TEXT).all(-1)
    want = torch.zeros(7, 16, dtype=torch.bool)
    want[1:6, 1:4] = sp._glyph("1")
    want[1:6, 5:8] = sp._glyph("0")
    assert torch.equal(ink, want)
    assert sp.text_width("10") == 7 and sp.text_width("10", 2) == 14
    big = torch.zeros(12, 8, 3)
    sp.draw_text(big, 0, 0, "7", scale=2)
    assert torch.equal((big == TEXT).all(-1)[:10, :6], sp._glyph("7").repeat_interleave(2, 0).repeat_interleave(2, 1))
    sp.draw_text(img, 14, 5, "88")  # clipped at the edge, no error


def test_lanes_share_rows_between_windows_that_do_not_overlap():
    ws = [cs.uniform_windows(64, 16, 8)] * 2  # 7 windows, at most 2 overlap at a frame
    rows = cs.render_schedule_preview(ws, 64, cell=2)
    lanes = cs.render_schedule_preview(ws, 64, cell=2, lanes=True)
    assert rows.shape[1] == 2 * (7 * 2) + 1
    assert lanes.shape[1] == 2 * (2 * 2) + 1
    # every window is still drawn: each frame is coloured in some lane of the band
    band = lanes[0, :4]
    assert bool((band.amax(dim=(0, 2)) > 0.5).all())


def test_axes_add_step_labels_frame_numbers_and_legend():
    T, n = 64, 4
    steps = _zola(T, n, max_skip=2)
    masks = [cs.randomized_blend_masks(w, T, cs.step_generator(3, s, cs.STREAM_BLEND)) for s, w in enumerate(steps)]
    img = cs.render_schedule_preview(steps, T, masks, cell=4, axes=True, lanes=True)[0]
    plain = cs.render_schedule_preview(steps, T, masks, cell=4, lanes=True)[0]
    assert img.shape[0] > plain.shape[0] and img.shape[1] > plain.shape[1]
    ink = (img == TEXT).all(-1)
    # the frame axis: a full-width line of text colour right below the plot, with the plot found inside the frame
    h, w = plain.shape[0], plain.shape[1]
    found = [(y, x) for y in range(img.shape[0] - h + 1) for x in range(img.shape[1] - w + 1)
             if torch.equal(img[y : y + h, x : x + w], plain)]
    assert len(found) == 1
    y0, x0 = found[0]
    scale = 2 if T * 4 >= 400 else 1
    axis = y0 + h + scale
    assert bool(ink[axis, x0 : x0 + w].all())
    # the number "0" under the first frame's tick, the step labels "0".."3" left of their bands
    zero = sp._glyph("0")
    below = ink[axis + 4 * scale : axis + 4 * scale + 5, : x0 + 8]
    assert any(torch.equal(below[:, c : c + 3], zero) for c in range(below.shape[1] - 2))
    left = ink[y0 : y0 + h, :x0]
    for k in range(n):
        g = sp._glyph(str(k))
        assert any(torch.equal(left[r : r + 5, c : c + 3], g)
                   for r in range(left.shape[0] - 4) for c in range(left.shape[1] - 2)), k
    # the legend names the blend cut's dimmed frames when masks are given, not without
    lw = sp._legend_layout(True, True, scale, 10**6)[0]
    assert [t for _, t in lw][-1].startswith("HELD, NOT OWNED")
    assert len(sp._legend_layout(False, False, scale, 10**6)[0]) == 1


@settings(max_examples=25, deadline=None)
@given(T=st.integers(1, 3000), n=st.integers(1, 60), mw=st.integers(64, 1500), mh=st.integers(64, 1500),
       skip=st.booleans())
@example(T=3000, n=60, mw=64, mh=64, skip=True)
@example(T=1, n=1, mw=64, mh=64, skip=False)
@example(T=400, n=60, mw=1500, mh=64, skip=True)
@example(T=2048, n=50, mw=1024, mh=1024, skip=True)
def test_drawn_size_is_bounded(T, n, mw, mh, skip):
    kw = dict(length=16, stride=8, overlap=0, max_skip=1, ends="truncate")
    if skip:
        kw.update(skip_until=0.5, num_steps=n)
    steps = [cs.make_windows("zola", T, s, 1, **kw) for s in range(n)]
    img = cs.render_schedule_preview(steps, T, cell=8, axes=True, lanes=True, max_width=mw, max_height=mh)
    assert img.shape[0] == 1 and img.shape[1] <= mh and img.shape[2] <= mw
    assert img.min() >= 0 and img.max() <= 1
    assert bool((img[0] == TEXT).all(-1).any()), "labels are drawn"


def test_256_frames_fit_and_keep_every_frame_visible():
    steps = _zola(256, 20, ends="truncate", skip_until=0.55, num_steps=20)
    img = cs.render_schedule_preview(steps, 256, cell=4, axes=True, lanes=True, max_width=1024, max_height=1024)
    assert img.shape[1] <= 1024 and img.shape[2] <= 1024
    # no binning needed at 256 frames in 1024 pixels: 3 or 4 pixels per frame
    unbounded = cs.render_schedule_preview(steps, 256, cell=4, lanes=True)
    assert unbounded.shape[2] == 1024
    tall = cs.render_schedule_preview(steps, 256, cell=4, axes=True, lanes=True, max_width=1024, max_height=300)
    assert tall.shape[1] <= 300


def test_framed_validation():
    steps = _zola(40, 2)
    with pytest.raises(ValueError, match="step_labels"):
        cs.render_schedule_preview(steps, 40, axes=True, step_labels=[1])
    with pytest.raises(ValueError, match="max_width"):
        cs.render_schedule_preview(steps, 40, axes=True, max_width=8)
    with pytest.raises(ValueError, match="max_height"):
        cs.render_schedule_preview(steps, 40, axes=True, max_height=10)
    img = cs.render_schedule_preview(steps, 40, axes=True, step_labels=[7, 12])
    assert img.shape[0] == 1
