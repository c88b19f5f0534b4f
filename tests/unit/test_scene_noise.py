"""Scene-carrying noise of the window loop (nodes/algorithms/scene_noise.py): exact structure of each rule."""
import math

import pytest
import torch
from longanim.nodes.algorithms import noise as noise_alg
from longanim.nodes.algorithms import scene_noise as sn


def _eps(frames=70, axis=2):
    shape = [1, 3, 5, 2, 2]
    shape[axis] = frames
    return torch.randn(shape, generator=torch.Generator().manual_seed(7))


def test_tile_gives_every_window_the_first_windows_frames_at_any_offset():
    eps = _eps()
    out = sn.scene_noise(eps, 2, 16, "tile")
    first = {out[:, :, j].numpy().tobytes() for j in range(16)}
    for start in range(0, 70 - 16 + 1):  # ZoLA draws any offset: every window, not only aligned ones
        assert {out[:, :, j].numpy().tobytes() for j in range(start, start + 16)} == first
    assert torch.equal(out[:, :, :16], eps[:, :, :16])


def test_blend_is_the_tile_plus_fresh_noise_exactly():
    eps = _eps()
    for a in (0.25, 0.75):
        out = sn.scene_noise(eps, 2, 16, "blend", share=a)
        assert torch.equal(out[:, :, :16], eps[:, :, :16])  # the first window keeps the sampler's noise
        j = torch.arange(16, 70)
        ref = math.sqrt(a) * eps[:, :, j % 16] + math.sqrt(1 - a) * eps[:, :, j]
        assert torch.allclose(out[:, :, 16:], ref, atol=1e-6, rtol=0)  # float32 rounding of one multiply-add
    assert torch.equal(sn.scene_noise(eps, 2, 16, "blend", share=1.0), sn.scene_noise(eps, 2, 16, "tile"))
    assert torch.equal(sn.scene_noise(eps, 2, 16, "blend", share=0.0), eps)


def test_blend_keeps_unit_variance_and_sets_the_lag_correlation():
    """Statistics over 200k positions: variance 1 and lag-f correlation sqrt(a) within 5 standard errors."""
    eps = torch.randn(40, 200_000, generator=torch.Generator().manual_seed(3))
    out = sn.scene_noise(eps, 0, 8, "blend", share=0.64)
    se = 5 / math.sqrt(200_000)
    assert abs(float(out[20].var()) - 1.0) < 5 * math.sqrt(2 / 200_000)
    assert abs(float((out[3] * out[27]).mean()) - 0.8) < se * 2  # first window vs late: sqrt(a) = 0.8
    assert abs(float((out[11] * out[19]).mean()) - 0.64) < se * 2  # two late frames share the tile: a
    assert abs(float((out[12] * out[13]).mean())) < se  # neighbours stay independent


def test_freenoise_is_cores_shuffle_of_the_samplers_noise():
    eps = _eps(axis=0, frames=50)[:, 0]  # [T, C, H, W]-like: 4-D, frames first
    out = sn.scene_noise(eps, 0, 16, "freenoise", seed=123)
    assert torch.equal(out, noise_alg.apply_freenoise(eps, 0, 16, 4, 123))
    assert not torch.equal(out, sn.scene_noise(eps, 0, 16, "freenoise", seed=124))


def test_off_and_short_videos_keep_the_noise():
    eps = _eps()
    for rule in sn.SCENE_RULES:
        short = eps[:, :, :16]
        got = sn.scene_noise(short, 2, 16, rule)
        assert torch.equal(got, short) and got.data_ptr() != short.data_ptr()
    assert torch.equal(sn.scene_noise(eps, 2, 16, "off"), eps)


def test_bad_parameters_name_the_fix():
    with pytest.raises(ValueError, match="one of"):
        sn.scene_noise(_eps(), 2, 16, "repeat")
    with pytest.raises(ValueError, match="window"):
        sn.scene_noise(_eps(), 2, 0, "tile")
    with pytest.raises(ValueError, match="share"):
        sn.scene_noise(_eps(), 2, 16, "blend", share=1.5)


def test_aligned_zola_windows_hold_whole_freenoise_chunks():
    """align = FreeNoise's chunk: every inner window starts and ends on a chunk border, so with stride a multiple of
    the chunk it holds whole chunks; the offsets still take every allowed value; align 1 = the unaligned draw."""
    from longanim.nodes.algorithms import context_schedule as cs

    chunk = sn.freenoise_chunk(16)
    assert chunk == 4 and sn.freenoise_chunk(3) == 1
    offsets = set()
    for step in range(40):
        wins = cs.make_windows("zola", 100, step, 7, length=16, stride=12, overlap=0, max_skip=1, ends="truncate",
                               align=chunk)
        inner = wins[1:-1]  # the end windows' sizes are drawn (the shortest-window floor)
        assert all(w[0] % chunk == 0 and (w[-1] + 1) % chunk == 0 for w in inner), wins
        assert sorted({f for w in wins for f in w}) == list(range(100))
        offsets.add(inner[0][0] % 12)
        plain = cs.make_windows("zola", 100, step, 7, length=16, stride=12, overlap=0, max_skip=1, ends="truncate")
        assert cs.make_windows("zola", 100, step, 7, length=16, stride=12, overlap=0, max_skip=1, ends="truncate",
                               align=1) == plain
    assert offsets == {0, 4, 8}


def test_offsets_leave_the_chunk_grid_after_align_until():
    """``align_until``: the steps ``skip_phase_steps`` counts keep their offsets on the chunk grid, the later steps
    draw exactly the unaligned windows, so late window edges land on every transition (with the grid at every step
    they sit on 3 of the 12 and the chunk borders become seams); without the step count every step is aligned."""
    from longanim.nodes.algorithms import context_schedule as cs

    chunk, steps, until = 4, 12, sn.FREENOISE_ALIGN_UNTIL
    assert 0.0 < until < 1.0
    first_free = cs.skip_phase_steps(until, steps)
    assert 0 < first_free < steps
    kw = dict(length=16, stride=12, overlap=0, max_skip=1, ends="truncate", align=chunk)
    late_edges = set()
    for seed in range(6):
        for step in range(steps):
            wins = cs.make_windows("zola", 100, step, seed, num_steps=steps, align_until=until, **kw)
            plain = cs.make_windows("zola", 100, step, seed, length=16, stride=12, overlap=0, max_skip=1,
                                    ends="truncate")
            grid = cs.make_windows("zola", 100, step, seed, **kw)
            assert cs.make_windows("zola", 100, step, seed, align_until=until, **kw) == grid  # no step count
            assert wins == (grid if step < first_free else plain), (seed, step)
            if step >= first_free:
                late_edges |= {w[0] % chunk for w in wins[1:-1]}
    assert late_edges == {0, 1, 2, 3}
    with pytest.raises(ValueError, match="align_until"):
        cs.make_windows("zola", 100, 0, 0, num_steps=steps, align_until=1.5, **kw)
