"""Unit tests for nodes/algorithms/spectral_attention.py (FreeLong Eq. 7, FreeLong++ multi-band fusion).

Deterministic math: float64 comparisons use 1e-10 (O(1) data, FFTs of <= 64 points: error ~ 64 * 1.1e-16 * log2(64)
<< 1e-10); float32 ones 1e-5 (a few float32 roundings of O(1) values through an FFT of <= 64 points and one attention,
~ 1e-6, with a margin). Equal branches must come back bit-exactly (the fuse adds exact zeros).
"""
from __future__ import annotations

import pytest
import torch
from longanim.nodes.algorithms import attention as A
from longanim.nodes.algorithms import spectral_attention as S


def _randn(*shape: int, seed: int = 0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float32).to(dtype)


def _fuse_reference(branches, masks, frame_dim=1):
    """IFFT(sum_k B_k FFT(x_k)) written literally (FreeLong++ multi-band fusion)."""
    t = branches[0].shape[frame_dim]
    shape = [1] * branches[0].ndim
    shape[frame_dim] = t // 2 + 1
    spec = sum(torch.fft.rfft(x, dim=frame_dim) * masks[k].to(x.dtype).view(shape) for k, x in enumerate(branches))
    return torch.fft.irfft(spec, n=t, dim=frame_dim)


def test_band_windows_and_edges():
    assert S.band_windows(64, 16, "off") == []
    assert S.band_windows(16, 16, "freelong") == []
    assert S.band_windows(64, 16, "freelong") == [16]
    assert S.band_windows(64, 16, "freelong++") == [16, 32]
    assert S.band_windows(65, 16, "freelong++") == [16, 32, 64]
    # T = 64: window 16 resolves nu >= 1/16 -> bins >= 4; window 32 -> bins >= 2
    assert S.band_edges(64, [16, 32]) == [4, 2]
    assert S.band_edges(64, [16], cutoff=2.0) == [8]
    assert S.band_edges(64, [16], cutoff=100.0) == [33]  # clamped to the number of bins
    assert S.band_edges(10, [9]) == [2]  # ceil(10 / 9)


@pytest.mark.parametrize("t,windows", [(64, [16]), (64, [16, 32]), (65, [16, 32, 64]), (7, [3]), (256, [16, 32])])
def test_band_masks_partition_unity(t, windows):
    m = S.band_masks(t, windows)
    assert m.shape == (len(windows) + 1, t // 2 + 1)
    assert torch.equal(m.sum(0), torch.ones(t // 2 + 1))
    assert set(m.unique().tolist()) <= {0.0, 1.0}
    assert m[-1, 0] == 1.0, "the DC bin (the frames' mean) comes from the global branch"
    assert m[0, -1] == 1.0, "the highest bin comes from the shortest window"


def test_lowpass_keeps_constant_and_drops_nyquist():
    t = 32
    x = torch.full((2, t, 3, 4), 1.7, dtype=torch.float64)
    spec = torch.fft.rfft(x, dim=1) * S.lowpass_mask(t, 1, torch.float64).view(1, -1, 1, 1)
    assert torch.allclose(torch.fft.irfft(spec, n=t, dim=1), x, atol=1e-10)
    alt = torch.tensor([(-1.0) ** i for i in range(t)], dtype=torch.float64).view(1, t, 1, 1).expand(2, t, 3, 4)
    spec = torch.fft.rfft(alt, dim=1) * S.lowpass_mask(t, t // 2, torch.float64).view(1, -1, 1, 1)
    assert torch.fft.irfft(spec, n=t, dim=1).abs().max() < 1e-10


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.float64])
def test_fuse_equal_branches_exact(dtype):
    x = _randn(2, 40, 5, 6, seed=1, dtype=dtype)
    for n in (2, 3):
        out = S.spectral_fuse([x] * n, S.band_edges(40, [8, 16][: n - 1]))
        assert out.dtype == dtype and torch.equal(out, x)


@pytest.mark.parametrize("t,windows,frame_dim", [(64, [16], 1), (64, [16, 32], 1), (33, [5, 10, 20], 2),
                                                  (8, [3], 0)])
def test_fuse_equals_band_mask_reference(t, windows, frame_dim):
    shape = [3, 4, 5]
    shape.insert(frame_dim, t)
    branches = [_randn(*shape, seed=10 + k) for k in range(len(windows) + 1)]
    edges = S.band_edges(t, windows)
    out = S.spectral_fuse(branches, edges, frame_dim=frame_dim)
    ref = _fuse_reference(branches, S.band_masks(t, windows), frame_dim)
    assert torch.allclose(out, ref, atol=1e-10), (out - ref).abs().max()


def test_fuse_takes_low_band_from_global_and_high_from_local():
    t = 64
    n = torch.arange(t, dtype=torch.float64)
    slow, fast = torch.cos(2 * torch.pi * 2 * n / t), torch.cos(2 * torch.pi * 20 * n / t)  # bins 2 and 20
    glob = (3 * slow + 5 * fast).view(1, t, 1)
    loc = (7 * slow + 11 * fast).view(1, t, 1)
    out = S.spectral_fuse([loc, glob], S.band_edges(t, [16]))  # edge = bin 4
    assert torch.allclose(out, (3 * slow + 11 * fast).view(1, t, 1), atol=1e-10)


def test_fuse_rejects_mismatched_edges():
    with pytest.raises(ValueError, match="one more branch than band edges"):
        S.spectral_fuse([torch.zeros(1, 4, 1)] * 2, [])


def test_validate_blend():
    with pytest.raises(ValueError, match="global blend must be one of"):
        S.validate_blend("freelong+++")
    for bad in (0, -1.0, float("nan"), True):
        with pytest.raises(ValueError, match="spectral cutoff"):
            S.validate_blend("off", bad)


class Counter:
    """Attention kernel that records the key lengths it was called with (no [L, L] beyond the reference)."""

    def __init__(self):
        self.calls = []

    def __call__(self, q, k, v, heads):
        self.calls.append((q.shape[0], q.shape[1]))
        return A.attention(q, k, v, heads)


def test_spectral_attention_off_and_short_is_expansion():
    q, k, v = (_randn(2, 12 * 3, 8, seed=s, dtype=torch.float32) for s in (1, 2, 3))
    ref = A.expanded_attention(q, k, v, 2, 12, 3, 4, 2)
    assert torch.equal(S.spectral_attention(q, k, v, 2, 12, 3, 4, 2, mode="off"), ref)
    full = A.attention(q, k, v, 2)
    assert torch.equal(S.spectral_attention(q, k, v, 2, 12, 3, 12, mode="freelong++"), full)


@pytest.mark.parametrize("mode,lengths", [("freelong", [4 * 3, 24 * 3]), ("freelong++", [4 * 3, 8 * 3, 16 * 3,
                                                                                      24 * 3])])
def test_spectral_attention_equals_branches_fused(mode, lengths):
    t, n, base = 24, 3, 4
    q, k, v = (_randn(2, t * n, 8, seed=s, dtype=torch.float32) for s in (4, 5, 6))
    rec = Counter()
    out = S.spectral_attention(q, k, v, 2, t, n, base, 2, mode=mode, attn_fn=rec)
    assert sorted({c[1] for c in rec.calls}) == lengths, "one kernel call per branch, window-sized"
    windows = S.band_windows(t, base, mode)
    branches = [A.expanded_attention(q, k, v, 2, t, n, w, w // 2) for w in windows] + [A.attention(q, k, v, 2)]
    branches = [b.view(2, t, n, -1).double() for b in branches]
    ref = _fuse_reference(branches, S.band_masks(t, windows)).reshape(2, t * n, -1)
    assert out.dtype == q.dtype and torch.allclose(out.double(), ref, atol=1e-5), (out.double() - ref).abs().max()
    # the low band really is the global branch: the frame mean of the output equals the global branch's
    glob = branches[-1].mean(1)
    assert torch.allclose(out.view(2, t, n, -1).double().mean(1), glob, atol=1e-5)
    assert not torch.allclose(out.double(), branches[0].reshape(2, t * n, -1), atol=1e-3)


# ------------------------------------------------------------------ joint attention: text tokens beside the frames
def _windowed_with_text(q, k, v, ek, ev, heads, t, n, base, stride):
    """Reference: each window's video queries attend to the window's video keys and every text key; frames merged
    with ZoLA's Eq. 4 weights, one window at a time (no stacking)."""
    b, _, c = q.shape
    w = A.expansion_weights(base).double()
    acc = torch.zeros(b, t, n, c, dtype=torch.float64)
    den = torch.zeros(t, dtype=torch.float64)
    q4, k4, v4 = (x.view(b, t, n, c) for x in (q, k, v))
    for win in A.expansion_windows(t, base, stride):
        qw, kw, vw = (x[:, win].reshape(b, base * n, c) for x in (q4, k4, v4))
        o = A.attention(qw, torch.cat([kw, ek], 1), torch.cat([vw, ev], 1), heads).view(b, base, n, c)
        acc[:, win] += o.double() * w.view(1, -1, 1, 1)
        den[win] += w
    return (acc / den.view(1, -1, 1, 1)).reshape(b, t * n, c)


def test_expansion_with_text_tokens_equals_window_reference():
    t, n, base, stride = 10, 3, 4, 2
    q, k, v = (_randn(2, t * n, 8, seed=s, dtype=torch.float32) for s in (11, 12, 13))
    ek, ev = (_randn(2, 5, 8, seed=s, dtype=torch.float32) for s in (14, 15))
    ref = _windowed_with_text(q, k, v, ek, ev, 2, t, n, base, stride)
    for per_call in (None, 1, 3):
        out = A.expanded_attention(q, k, v, 2, t, n, base, stride, max_windows_per_batch=per_call, extra_k=ek,
                                   extra_v=ev)
        assert torch.allclose(out.double(), ref, atol=1e-6), (out.double() - ref).abs().max()
    # a video that fits the base length is plain joint attention over video + text keys
    full = A.attention(q, torch.cat([k, ek], 1), torch.cat([v, ev], 1), 2)
    assert torch.equal(A.expanded_attention(q, k, v, 2, t, n, t, extra_k=ek, extra_v=ev), full)
    with pytest.raises(ValueError, match="extra_k and extra_v"):
        A.expanded_attention(q, k, v, 2, t, n, base, extra_k=ek)


def test_spectral_attention_with_text_tokens_takes_low_band_from_joint_global_attention():
    t, n, base = 16, 2, 4
    q, k, v = (_randn(1, t * n, 8, seed=s, dtype=torch.float32) for s in (21, 22, 23))
    ek, ev = (_randn(1, 6, 8, seed=s, dtype=torch.float32) for s in (24, 25))
    glob = A.attention(q, torch.cat([k, ek], 1), torch.cat([v, ev], 1), 2)
    out = S.spectral_attention(q, k, v, 2, t, n, base, 2, "freelong++", extra_k=ek, extra_v=ev)
    windows = S.band_windows(t, base, "freelong++")
    edge = S.band_edges(t, windows)[-1]  # bins below it come from the global branch
    low = torch.fft.rfft(out.view(1, t, n, -1).double(), dim=1)[:, :edge]
    low_ref = torch.fft.rfft(glob.view(1, t, n, -1).double(), dim=1)[:, :edge]
    assert torch.allclose(low, low_ref, atol=1e-5), (low - low_ref).abs().max()
    local = A.expanded_attention(q, k, v, 2, t, n, base, 2, extra_k=ek, extra_v=ev)
    high = torch.fft.rfft(out.view(1, t, n, -1).double(), dim=1)[:, S.band_edges(t, windows)[0]:]
    high_ref = torch.fft.rfft(local.view(1, t, n, -1).double(), dim=1)[:, S.band_edges(t, windows)[0]:]
    assert torch.allclose(high, high_ref, atol=1e-5)
    # a cutoff that gives every frequency to the global branch is the global branch
    every = S.spectral_attention(q, k, v, 2, t, n, base, 2, "freelong", cutoff=1e6, extra_k=ek, extra_v=ev)
    assert torch.allclose(every, glob, atol=1e-6), (every - glob).abs().max()
    assert not torch.allclose(local, glob, atol=1e-3)
