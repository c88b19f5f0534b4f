"""Unit tests for nodes/algorithms/attention.py (ZS^2 Eq. 2, Gen-L-Video sec. 4, ZoLA Eqs. 3-4).

Everything here is deterministic math (no sampling), so tolerances are float-rounding bounds, not
statistical ones: float64 comparisons use 1e-10 (O(1) data, <= 512 terms: 512 * 1.1e-16 << 1e-10);
float32 bounds are derived where used (eps32 = 6e-8; a float16 result is rounded once: 2e-3 > 4 * 4.9e-4).
"""
from __future__ import annotations

import math

import pytest
import torch
from longanim.nodes.algorithms import attention as A
from torch.overrides import TorchFunctionMode


def _gen(seed: int) -> torch.Generator:
    g = torch.Generator(device="cpu")
    g.manual_seed(seed)
    return g


def _randn(*shape: int, seed: int = 0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.randn(*shape, generator=_gen(seed), dtype=torch.float32).to(dtype)


# ----------------------------------------------------------------------------------------------------------
# momentum: scan == loop == matrix
# ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["sequential", "blocked"])
@pytest.mark.parametrize("frames", [1, 2, 5, 16, 17, 40, 300])
def test_scan_equals_loop_and_matrix_scalar_mu(method: str, frames: int) -> None:
    x = _randn(2, frames, 3, 4, seed=frames)
    mu = 0.98 if frames % 2 else 0.37
    ref = A.momentum_loop(x, mu)
    assert torch.allclose(A.momentum_matrix(x, mu), ref, atol=1e-10, rtol=0)
    assert torch.allclose(A.momentum_scan(x, mu, method=method), ref, atol=1e-10, rtol=0)


@pytest.mark.parametrize("method", ["sequential", "blocked"])
def test_scan_equals_loop_per_frame_mu(method: str) -> None:
    frames = 70  # > 4 blocks of 16 with a ragged tail: exercises padding and the recursive carry
    x = _randn(3, frames, 5, 2, seed=1)
    mu = torch.rand(frames, generator=_gen(2), dtype=torch.float64)
    mu[10] = 0.0  # hard reset in the middle
    mu[40:50] = 1.0  # frozen stretch
    ref = A.momentum_loop(x, mu)
    assert torch.allclose(A.momentum_matrix(x, mu), ref, atol=1e-10, rtol=0)
    assert torch.allclose(A.momentum_scan(x, mu.tolist(), method=method), ref, atol=1e-10, rtol=0)
    # explicit check of the recursion at one frame (guards against all three sharing a bug)
    i = 30
    assert torch.allclose(ref[:, i], mu[i] * ref[:, i - 1] + (1 - mu[i]) * x[:, i], atol=1e-12)
    # the reset frame equals its input, the frozen stretch repeats frame 39
    assert torch.allclose(ref[:, 10], x[:, 10], atol=1e-12)
    assert torch.allclose(ref[:, 49], ref[:, 39], atol=1e-12)


@pytest.mark.parametrize("method", ["sequential", "blocked"])
def test_scan_float32_long_sequence_mu_near_one(method: str) -> None:
    frames, mu = 512, 0.999
    x = _randn(1, frames, 8, 4, seed=3, dtype=torch.float32)
    ref = A.momentum_loop(x.double(), mu)
    out = A.momentum_scan(x, mu, method=method)
    assert out.dtype == torch.float32
    # a recursive filter run in float32 sees mu rounded by up to eps32 = 6e-8 and each step rounded by
    # eps32 |y|; both errors are amplified by the filter's memory 1 / (1 - mu), so the bound is
    # 2 * eps32 / (1 - mu) * max|x| (= 4.8e-4 here; a wrong recursion errs by O(0.1))
    bound = 2 * 6e-8 / (1 - mu) * x.abs().max().item()
    err = (out.double() - ref).abs().max().item()
    assert err < bound, (err, bound)
    half = A.momentum_scan(x.half(), 0.98, method=method)  # half in -> computed in float32, half out
    assert half.dtype == torch.float16
    assert torch.allclose(half.double(), A.momentum_loop(x.half().double(), 0.98), atol=2e-3)


def test_mu_first_entry_unused() -> None:
    x = _randn(2, 6, 3, 3, seed=4)
    mu = [0.5] * 6
    other = [0.0] + [0.5] * 5
    for method in ("sequential", "blocked"):
        assert torch.equal(A.momentum_scan(x, mu, method=method), A.momentum_scan(x, other, method=method))


@pytest.mark.parametrize("method", ["sequential", "blocked"])
def test_mu_zero_identity_and_mu_one_first_frame(method: str) -> None:
    x = _randn(2, 37, 4, 3, seed=5, dtype=torch.float32)
    assert torch.equal(A.momentum_scan(x, 0.0, method=method), x)
    out = A.momentum_scan(x, 1.0, method=method)
    assert torch.equal(out, x[:, :1].expand_as(x))
    assert not torch.equal(A.momentum_scan(x, 0.5, method=method), x)


def test_frame_dim_layouts() -> None:
    x = _randn(2, 4, 9, 3, 3, seed=6)  # [B, C, T, H, W], frames on axis 2
    ref = A.momentum_loop(x, 0.8, frame_dim=2)
    moved = A.momentum_scan(x.movedim(2, 1).contiguous(), 0.8).movedim(1, 2)
    assert torch.allclose(ref, moved, atol=1e-12)
    for method in ("sequential", "blocked"):
        assert torch.allclose(A.momentum_scan(x, 0.8, frame_dim=2, method=method), ref, atol=1e-12)
    assert torch.allclose(A.momentum_matrix(x, 0.8, frame_dim=2), ref, atol=1e-12)
    y = _randn(7, 5, 3, seed=7)  # [F, N, C] with frame_dim 0
    assert torch.allclose(A.momentum_scan(y, 0.9, frame_dim=0), A.momentum_loop(y, 0.9, frame_dim=0))


@pytest.mark.parametrize("method", ["sequential", "blocked"])
def test_momentum_chunks_never_mix(method: str) -> None:
    x = _randn(3, 20, 4, 5, seed=8)
    base = A.momentum_scan(x, 0.9, method=method)
    x2 = x.clone()
    x2[1] += 10.0
    pert = A.momentum_scan(x2, 0.9, method=method)
    assert torch.equal(pert[0], base[0]) and torch.equal(pert[2], base[2])
    assert not torch.allclose(pert[1], base[1])


def test_momentum_is_linear_so_projection_commutes() -> None:
    # EMA(h) W^T == EMA(h W^T) for bias-free linear to_k/to_v (docstring claim)
    h = _randn(2, 12, 6, 8, seed=9)
    w = _randn(5, 8, seed=10)
    lhs = A.momentum_scan(h, 0.98) @ w.T
    rhs = A.momentum_scan(h @ w.T, 0.98)
    assert torch.allclose(lhs, rhs, atol=1e-12)


class _ShapeRecorder(TorchFunctionMode):
    """Records the shape of every tensor a torch function returns. (A TorchDispatchMode would also see
    temporaries inside composite ops, but its first use imports torch._dynamo, several seconds; the scan
    only calls elementwise ops, cumprod, cat and a batched matmul whose internal broadcast copy is
    [G * blocks, 16, 16], so the function level sees every frame-sized allocation.)"""

    def __init__(self) -> None:
        super().__init__()
        self.shapes: list[tuple[int, ...]] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, tuple | list) else (out,):
            if isinstance(t, torch.Tensor):
                self.shapes.append(tuple(t.shape))
        return out


def _has_ff(shapes: list[tuple[int, ...]], f: int) -> bool:
    return any(math.prod(s) == f * f or sum(d == f for d in s) >= 2 for s in shapes)


@pytest.mark.parametrize("method", ["sequential", "blocked"])
def test_scan_never_allocates_frames_by_frames(method: str) -> None:
    f = 512
    x = _randn(2, f, 64, 32, seed=11, dtype=torch.float32)
    rec = _ShapeRecorder()
    with rec:
        A.momentum_scan(x, 0.98, method=method)
    assert len(rec.shapes) > 10, "mode recorded nothing"
    assert not _has_ff(rec.shapes, f), [s for s in rec.shapes if math.prod(s) >= f * f // 4][:5]
    # the detector is not vacuous: the matrix reference does build F x F
    rec2 = _ShapeRecorder()
    with rec2:
        A.momentum_matrix(x[:, :, :1, :1], 0.98)
    assert _has_ff(rec2.shapes, f)


# ----------------------------------------------------------------------------------------------------------
# cross-frame context
# ----------------------------------------------------------------------------------------------------------
def _proj(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return x @ w.T


@pytest.mark.parametrize("frames", [1, 2, 5, 8])
@pytest.mark.parametrize("anchor", [None, 0, "last"])
def test_bidirectional_equals_per_frame_reference(frames: int, anchor: object) -> None:
    g, n, c, heads = 2, 4, 8, 2
    x = _randn(g, frames, n, c, seed=frames)
    wq, wk, wv = (_randn(c, c, seed=20 + i) for i in range(3))
    anc = frames - 1 if anchor == "last" else anchor
    ctx = A.cross_frame_context(x, "bidirectional_anchor", anchor=anc)
    assert ctx.shape == (g, frames, 2 * n, c)
    q = _proj(x, wq).reshape(g * frames, n, c)
    kv = ctx.reshape(g * frames, 2 * n, c)
    fast = A.attention(q, _proj(kv, wk), _proj(kv, wv), heads).reshape(g, frames, n, c)
    ref = A.cross_frame_attention_reference(x, wq, wk, wv, heads, "bidirectional_anchor", anchor=anc)
    assert torch.allclose(fast, ref, atol=1e-10)


def test_bidirectional_sources_explicit() -> None:
    x = torch.arange(6, dtype=torch.float64).view(1, 6, 1, 1).expand(1, 6, 2, 1)  # token value = frame
    ctx = A.cross_frame_context(x, "bidirectional_anchor")  # anchor = 6 // 2 = 3
    got = ctx[0, :, :, 0].tolist()
    want_nb = [1, 2, 3, 3, 3, 4]
    assert got == [[nb, nb, 3, 3] for nb in want_nb]


def test_first_frame_context() -> None:
    x = _randn(2, 5, 3, 4, seed=30)
    ctx = A.cross_frame_context(x, "first_frame")
    assert ctx.shape == x.shape and ctx.is_contiguous()
    assert torch.equal(ctx, x[:, :1].expand_as(x))
    wq, wk, wv = (_randn(4, 4, seed=31 + i) for i in range(3))
    q = _proj(x, wq).reshape(10, 3, 4)
    fast = A.attention(q, _proj(ctx, wk).reshape(10, 3, 4), _proj(ctx, wv).reshape(10, 3, 4), 2)
    ref = A.cross_frame_attention_reference(x, wq, wk, wv, 2, "first_frame")
    assert torch.allclose(fast.reshape(2, 5, 3, 4), ref, atol=1e-10)


def test_cross_frame_chunks_never_mix() -> None:
    x = _randn(3, 7, 2, 3, seed=32)
    for mode in A.CROSS_FRAME_MODES:
        base = A.cross_frame_context(x, mode)
        x2 = x.clone()
        x2[0] += 5
        pert = A.cross_frame_context(x2, mode)
        assert torch.equal(pert[1:], base[1:]) and not torch.equal(pert[0], base[0])


def test_cross_frame_frame_dim() -> None:
    x = _randn(6, 3, 4, seed=33)  # [F, N, C]
    ctx = A.cross_frame_context(x, "bidirectional_anchor", frame_dim=0)
    assert torch.equal(ctx, A.cross_frame_context(x[None], "bidirectional_anchor")[0])


# ----------------------------------------------------------------------------------------------------------
# ZoLA expansion
# ----------------------------------------------------------------------------------------------------------
def test_expansion_windows() -> None:
    assert A.expansion_windows(10, 4) == [list(range(s, s + 4)) for s in (0, 2, 4, 6)]
    assert A.expansion_windows(11, 4) == [list(range(s, s + 4)) for s in (0, 2, 4, 6, 7)]
    assert A.expansion_windows(5, 8) == [[0, 1, 2, 3, 4]]
    assert A.expansion_windows(9, 3, 3) == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    for t, f, s in [(81, 21, None), (21, 11, 5), (30, 7, 7), (17, 1, None), (13, 6, 1)]:
        wins = A.expansion_windows(t, f, s)
        assert sorted({i for w in wins for i in w}) == list(range(t))
        assert all(len(w) == min(f, t) and w == list(range(w[0], w[0] + len(w))) for w in wins)


def test_expansion_weights_eq4() -> None:
    w = A.expansion_weights(5)
    want = [math.exp(-1.0), math.exp(-0.5), 1.0, math.exp(-0.5), math.exp(-1.0)]
    assert torch.allclose(w.double(), torch.tensor(want, dtype=torch.float64), atol=1e-7)
    w4 = A.expansion_weights(4)  # centre floor(4/2) = 2
    assert torch.allclose(w4.double(), torch.tensor([math.exp(-1), math.exp(-0.5), 1, math.exp(-0.5)],
                                                     dtype=torch.float64), atol=1e-7)
    assert w.dtype == torch.float32


def _qkv(b: int, t: int, n: int, hd: int, seed: int) -> tuple[torch.Tensor, ...]:
    return tuple(_randn(b, t * n, hd, seed=seed + i) for i in range(3))


def test_expansion_base_covers_all_is_plain_attention() -> None:
    q, k, v = _qkv(2, 5, 3, 8, seed=40)
    plain = A.attention(q, k, v, 2)
    for base in (5, 9):
        assert torch.equal(A.expanded_attention(q, k, v, 2, 5, 3, base), plain)


def _expanded_loop(q, k, v, heads, t, n, base, stride):  # noqa: ANN001, ANN202
    """Independent per-window, per-frame reference of Eqs. 3-4 (scalar weight bookkeeping)."""
    s = stride
    starts = list(range(0, t - base + 1, s))
    if starts[-1] + base < t:
        starts.append(t - base)
    num = torch.zeros_like(q)
    den = [0.0] * t
    for st in starts:
        sl = slice(st * n, (st + base) * n)
        o = A.attention(q[:, sl], k[:, sl], v[:, sl], heads)
        for j in range(base):
            wj = math.exp(-0.5 * abs(j - base // 2))
            num[:, (st + j) * n:(st + j + 1) * n] += wj * o[:, j * n:(j + 1) * n]
            den[st + j] += wj
    for fr in range(t):
        num[:, fr * n:(fr + 1) * n] /= den[fr]
    return num


@pytest.mark.parametrize(
    "t,base,stride,per_call", [(9, 4, 2, None), (11, 4, 2, 2), (10, 3, 3, 1), (7, 6, 1, None)]
)
def test_expanded_matches_window_loop(t: int, base: int, stride: int, per_call: int | None) -> None:
    q, k, v = _qkv(2, t, 3, 8, seed=50 + t)
    out = A.expanded_attention(q, k, v, 2, t, 3, base, stride, max_windows_per_batch=per_call)
    ref = _expanded_loop(q, k, v, 2, t, 3, base, stride)
    assert torch.allclose(out, ref, atol=1e-10)
    # and it is a genuine approximation, not plain attention
    assert not torch.allclose(out, A.attention(q, k, v, 2), atol=1e-3)


def test_expanded_output_is_convex_combination() -> None:
    # v constant per channel -> every window's attention output is that constant -> so must the merge be
    b, t, n, hd = 1, 12, 2, 4
    q, k, _ = _qkv(b, t, n, hd, seed=60)
    v = torch.tensor([1.0, -2.0, 3.0, 0.5], dtype=torch.float64).expand(b, t * n, hd)
    out = A.expanded_attention(q, k, v, 2, t, n, 5, 2)
    assert torch.allclose(out, v, atol=1e-12)
    # one-hot values: outputs stay inside [min, max] of v per channel (convex hull)
    v2 = _randn(b, t * n, hd, seed=61)
    out2 = A.expanded_attention(q, k, v2, 2, t, n, 5, 2)
    assert (out2 <= v2.amax(1, keepdim=True) + 1e-12).all()
    assert (out2 >= v2.amin(1, keepdim=True) - 1e-12).all()


def test_expanded_custom_attn_fn_and_dtype() -> None:
    calls: list[tuple[int, ...]] = []

    def sdpa(q, k, v, heads):  # noqa: ANN001, ANN202
        calls.append(tuple(q.shape))
        b, length, hd = q.shape
        sh = (b, length, heads, hd // heads)
        o = torch.nn.functional.scaled_dot_product_attention(*(x.view(sh).transpose(1, 2) for x in (q, k, v)))
        return o.transpose(1, 2).reshape(b, length, hd)

    q, k, v = (x.float() for x in _qkv(2, 10, 3, 8, seed=70))
    out = A.expanded_attention(q, k, v, 2, 10, 3, 4, attn_fn=sdpa)
    assert out.dtype == torch.float32
    assert calls == [(2 * 4, 4 * 3, 8)]  # 4 windows stacked on the batch axis, one call
    ref = A.expanded_attention(q, k, v, 2, 10, 3, 4)
    assert torch.allclose(out, ref, atol=1e-5)  # float32 SDPA vs explicit softmax: ~10 eps32 per entry
    bf = A.expanded_attention(q.bfloat16(), k.bfloat16(), v.bfloat16(), 2, 10, 3, 4)
    assert bf.dtype == torch.bfloat16  # merged in float32, rounded once: bf16 eps 7.8e-3 x few from inputs
    assert torch.allclose(bf.float(), ref, atol=0.05)


# ----------------------------------------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), [0.5, 2.0], "x", True, []])
def test_validate_mu_rejects(bad: object) -> None:
    with pytest.raises(ValueError, match="mu"):
        A.validate_mu(bad)


def test_validate_mu_messages_and_accepts() -> None:
    with pytest.raises(ValueError, match=r"momentum mu must be in \[0, 1\], got 1.5"):
        A.validate_mu(1.5)
    with pytest.raises(ValueError, match="3 values but there are 4 frames"):
        A.validate_mu([0.1, 0.2, 0.3], num_frames=4)
    assert A.validate_mu(0.98) == 0.98
    assert A.validate_mu(torch.tensor([0.0, 1.0])) == [0.0, 1.0]
    assert A.validate_mu(1) == 1.0
    with pytest.raises(ValueError, match="mu"):
        A.momentum_scan(_randn(1, 3, 1, 1), [0.5, 0.5])


def test_validate_expansion() -> None:
    assert A.validate_expansion(16) == (16, 8)
    assert A.validate_expansion(1) == (1, 1)
    assert A.validate_expansion(21, 21) == (21, 21)
    with pytest.raises(ValueError, match=r"expansion base must be an integer >= 1"):
        A.validate_expansion(0)
    with pytest.raises(ValueError, match=r"expansion stride must be an integer in \[1, base=8\]"):
        A.validate_expansion(8, 9)
    with pytest.raises(ValueError, match="stride"):
        A.validate_expansion(8, 0)
    with pytest.raises(ValueError, match="tokens"):
        A.expanded_attention(*_qkv(1, 4, 2, 4, seed=80), 2, 5, 2, 3)


def test_validate_cross_frame() -> None:
    with pytest.raises(ValueError, match="mode"):
        A.cross_frame_context(_randn(1, 3, 2, 2), "sparse")
    with pytest.raises(ValueError, match=r"anchor must be in \[0, 2\]"):
        A.cross_frame_context(_randn(1, 3, 2, 2), "bidirectional_anchor", anchor=3)
    with pytest.raises(ValueError, match="frame_dim"):
        A.cross_frame_context(_randn(3, 2, 2), "first_frame", frame_dim=1)
    with pytest.raises(ValueError, match="method"):
        A.momentum_scan(_randn(1, 3, 2, 2), 0.5, method="fft")
