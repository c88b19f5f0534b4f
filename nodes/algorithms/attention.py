"""Pure math of the attention patches: temporal momentum, cross-frame context, attention expansion.

Papers and sections implemented here:

* ZS^2 (Zero-Shot Video Sampling from Image), section 4.1, Eq. 2 (temporal momentum attention, TMA),
  "Efficient computation" paragraph and appendix D Listing 2; default mu = 0.98 (section 6 setup).
  -> :func:`momentum_scan` (production), :func:`momentum_loop` and :func:`momentum_matrix` (references).
* Gen-L-Video, section 4 "Tuning-free Text-to-Video" (bi-directional cross-frame attention: the anchor is
  the middle frame of the clip; frame j attends to [its neighbour toward the anchor, the anchor]).
  -> :func:`cross_frame_context` (production, also the Text2Video-Zero/FateZero "first_frame" form) and
  :func:`cross_frame_attention_reference` (per-frame loop reference).
* ZoLA, section 4.3, Eqs. 3-4 (spatiotemporal attention expansion: windows of the base length f at stride
  s = floor(f/2), merged with w[j] = exp(-|j - floor(f/2)| / 2)).
  -> :func:`expansion_windows`, :func:`expansion_weights`, :func:`expanded_attention`.

How a host uses this (ComfyUI SD1.5/SDXL ``attn1_patch``): the patch receives the post-norm hidden states
``n`` of shape ``[B, N, C]`` before ``to_q/to_k/to_v``, with ``B = G * F`` (G cond/uncond chunks, each a
consecutive block of F frames). View it as ``[G, F, N, C]``, call :func:`momentum_scan` or
:func:`cross_frame_context`, reshape back to ``[G * F, N', C]`` and return it as the key/value context.
Because ``to_k``/``to_v`` are linear maps WITHOUT bias in SD, projecting a per-frame affine combination of
hidden states equals the same combination of the projected K and V (with a bias this would still hold for
weights summing to 1, which the momentum weights do). Chunks (G) never mix: every function here only
combines frames inside one chunk.

Nothing here imports ComfyUI; everything is pure torch and deterministic (no randomness at all).
"""
from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence

import torch

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_MU",
    "CROSS_FRAME_MODES",
    "validate_mu",
    "validate_expansion",
    "validate_cross_frame",
    "momentum_scan",
    "momentum_loop",
    "momentum_matrix",
    "cross_frame_context",
    "cross_frame_attention_reference",
    "attention",
    "expansion_windows",
    "expansion_weights",
    "expanded_attention",
]

DEFAULT_MU = 0.98
"""ZS^2 default momentum (all mu_i = 0.98, paper section 6 "Implementation details")."""

CROSS_FRAME_MODES = ("first_frame", "bidirectional_anchor")

#: Block length of the blocked scan. Within a block the recurrence is one small [B, B] matmul; the carries
#: between blocks are scanned recursively, so no tensor ever grows like frames x frames.
_SCAN_BLOCK = 16

MuLike = float | Sequence[float] | torch.Tensor
AttnFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, int], torch.Tensor]


# ----------------------------------------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------------------------------------
def validate_mu(mu: MuLike, num_frames: int | None = None) -> float | list[float]:
    """Check the ZS^2 momentum ``mu`` (Eq. 2) and return it as a float or a list of floats.

    ``mu`` is either one float used for every frame, or one value per frame (``mu[i]`` is mu_{i+1} of
    Eq. 2, so ``mu[0]`` -- the paper's mu_1 -- is unused because K''_1 = K_1 by definition). Every value must
    be finite and in [0, 1]: 0 is plain self-attention, 1 is cross-frame attention to frame 1. When
    ``num_frames`` is given a per-frame list must have exactly that many entries.

    Raises ``ValueError`` naming "momentum mu", the allowed range and the fix.
    """
    if isinstance(mu, torch.Tensor):
        if mu.ndim == 0:
            mu = float(mu.item())
        elif mu.ndim == 1:
            mu = [float(v) for v in mu.detach().cpu().tolist()]
        else:
            raise ValueError(
                f"momentum mu must be a float or a 1-D list with one value per frame, got a tensor of "
                f"shape {tuple(mu.shape)}; pass a single float in [0, 1] or one value per frame"
            )
    if isinstance(mu, bool):
        raise ValueError("momentum mu must be a number in [0, 1], got a bool; use e.g. 0.98")
    if isinstance(mu, int | float):
        values = [float(mu)]
        scalar = True
    elif isinstance(mu, Sequence) and not isinstance(mu, str):
        try:
            values = [float(v) for v in mu]
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"momentum mu list must hold numbers in [0, 1], got {mu!r}; e.g. [0.98, 0.98, ...]"
            ) from exc
        scalar = False
        if len(values) == 0:
            raise ValueError(
                "momentum mu list is empty; give a single float in [0, 1] or one value per frame"
            )
    else:
        raise ValueError(
            f"momentum mu must be a float in [0, 1] or a list of floats (one per frame), "
            f"got {type(mu).__name__}"
        )
    for v in values:
        if not math.isfinite(v) or v < 0.0 or v > 1.0:
            raise ValueError(
                f"momentum mu must be in [0, 1], got {v}; use 0 for plain self-attention, 1 for cross-frame "
                f"attention to frame 1, {DEFAULT_MU} is the ZS^2 default"
            )
    if not scalar and num_frames is not None and len(values) != num_frames:
        raise ValueError(
            f"momentum mu list has {len(values)} values but there are {num_frames} frames; give one value "
            f"per frame (the first one is unused) or a single float in [0, 1]"
        )
    return values[0] if scalar else values


def validate_expansion(base: int, stride: int | None = None) -> tuple[int, int]:
    """Check ZoLA attention-expansion parameters (section 4.3, Eq. 3) and return ``(base, stride)``.

    ``base`` is the model's trained length f in LATENT frames (>= 1); ``stride`` is s with 1 <= s <= f
    (the paper requires s <= f so that windows cover every frame). ``stride=None`` means the paper's
    s = floor(f/2), clamped to at least 1 (so base = 1 gives stride 1).
    """
    if isinstance(base, bool) or not isinstance(base, int) or base < 1:
        raise ValueError(
            f"expansion base must be an integer >= 1 (the number of latent frames the model was trained "
            f"on), got {base!r}; e.g. 21 for an 81-frame Wan model"
        )
    if stride is None:
        stride = max(1, base // 2)
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1 or stride > base:
        raise ValueError(
            f"expansion stride must be an integer in [1, base={base}], got {stride!r}; leave it empty for "
            f"the ZoLA default base // 2 = {max(1, base // 2)}"
        )
    return base, stride


def validate_cross_frame(mode: str, num_frames: int | None = None, anchor: int | None = None) -> None:
    """Check the cross-frame ``mode`` (one of :data:`CROSS_FRAME_MODES`) and ``anchor`` (0-based frame)."""
    if mode not in CROSS_FRAME_MODES:
        raise ValueError(f"cross-frame mode must be one of {list(CROSS_FRAME_MODES)}, got {mode!r}")
    if anchor is not None:
        if isinstance(anchor, bool) or not isinstance(anchor, int):
            raise ValueError(f"anchor must be an integer frame index or empty, got {anchor!r}")
        if num_frames is not None and not 0 <= anchor < num_frames:
            raise ValueError(
                f"anchor must be in [0, {num_frames - 1}] (0-based frame index), got {anchor}; leave it "
                f"empty for the middle frame {num_frames // 2}"
            )


# ----------------------------------------------------------------------------------------------------------
# ZS^2 temporal momentum (Eq. 2)
# ----------------------------------------------------------------------------------------------------------
def _mu_list(mu: MuLike, num_frames: int) -> list[float]:
    """Per-frame mu_i (0-based, entry 0 forced to 0.0 since K''_1 = K_1)."""
    checked = validate_mu(mu, num_frames)
    values = [checked] * num_frames if isinstance(checked, float) else list(checked)
    values[0] = 0.0
    return values


def _as_pfd(x: torch.Tensor, frame_dim: int) -> tuple[torch.Tensor, int]:
    """View ``x`` as ``[P, F, D]`` (P = dims before the frame axis, D = dims after). Returns (view, dim)."""
    dim = frame_dim % x.ndim if x.ndim else 0
    if x.ndim == 0:
        raise ValueError("momentum input must have a frame axis, got a 0-d tensor")
    shape = x.shape
    pre = math.prod(shape[:dim])
    post = math.prod(shape[dim + 1:])
    return x.reshape(pre, shape[dim], post), dim


def _block_matrices(a: torch.Tensor) -> torch.Tensor:
    """For ``a`` of shape [K, B] return L of shape [K, B, B] with L[k, i, j] = prod_{t=j+1..i} a[k, t]
    for j <= i and 0 above the diagonal. Built by a masked cumulative product: no division, so exact-ish for
    a = 0 and a = 1, and no underflow beyond what the true product has."""
    k, b = a.shape
    m = a.unsqueeze(2).expand(k, b, b).clone()  # m[k, t, j] = a[k, t]
    upper = torch.ones(b, b, dtype=torch.bool, device=a.device).triu()  # t <= j
    m[:, upper] = 1.0
    return torch.cumprod(m, dim=1).tril()


def _linear_scan_blocked(a: torch.Tensor, b: torch.Tensor, block: int) -> torch.Tensor:
    """h_i = a_i * h_{i-1} + b_i with h_{-1} = 0, along dim 1 of ``b`` [P, F, D]; ``a`` is float64 [F] on
    CPU. Blocked: one batched [block, block] matmul for the in-block recurrence, recursion on block ends."""
    p, f, d = b.shape
    if f <= block:
        mat = _block_matrices(a.unsqueeze(0))[0].to(device=b.device, dtype=b.dtype)
        return torch.matmul(mat, b)
    nb = -(-f // block)
    pad = nb * block - f
    if pad:
        a = torch.cat([a, a.new_ones(pad)])
        b = torch.cat([b, b.new_zeros(p, pad, d)], dim=1)
    a_blk = a.view(nb, block)
    mats = _block_matrices(a_blk)  # [nb, block, block] float64
    carry_in = torch.cumprod(a_blk, dim=1)  # product a[start..i]: how block-start carry reaches row i
    # [nb, block, block] @ [p, nb, block, d] (broadcast over p) -> [p, nb, block, d]
    local = torch.matmul(mats.to(device=b.device, dtype=b.dtype), b.view(p, nb, block, d))
    ends = _linear_scan_blocked(carry_in[:, -1].clone(), local[:, :, -1].contiguous(), block)  # [p, nb, d]
    # add the carry of the previous block (block 0 has none)
    coef = carry_in[1:].to(device=b.device, dtype=b.dtype)  # [nb-1, block]
    local[:, 1:] += coef[None, :, :, None] * ends[:, :-1, None, :]
    out = local.view(p, nb * block, d)
    return out[:, :f] if pad else out


def _linear_scan_sequential(mu: list[float], x: torch.Tensor) -> torch.Tensor:
    """EMA along dim 1 of ``x`` [P, F, D] with in-place ops: y = (1-mu) x, y_i += mu_i y_{i-1}."""
    scale = torch.tensor([1.0 - m for m in mu], dtype=torch.float64).to(device=x.device, dtype=x.dtype)
    y = x * scale.view(1, -1, 1)
    for i in range(1, x.shape[1]):
        if mu[i] != 0.0:
            y[:, i].add_(y[:, i - 1], alpha=mu[i])
    return y


def momentum_scan(
    x: torch.Tensor, mu: MuLike = DEFAULT_MU, frame_dim: int = 1, method: str = "auto"
) -> torch.Tensor:
    """ZS^2 temporal momentum (section 4.1, Eq. 2) along the frame axis, O(F) time and memory.

    K''_1 = K_1 and K''_i = mu_i * K''_{i-1} + (1 - mu_i) * K_i for i = 2..F (same for V).

    Layout: ``x`` is ``[G, F, N, C]`` by default (G cond/uncond chunks, F frames, N tokens, C channels);
    any layout works with ``frame_dim`` naming the frame axis -- every other axis is independent, so chunks
    never mix. Returns a new tensor of the same shape and dtype.

    ``mu``: one float (ZS^2 default 0.98) or one value per frame (``mu[i]`` is mu_{i+1} of Eq. 2; ``mu[0]``
    is unused because frame 1 has no predecessor). mu = 0 returns ``x`` (self-attention), mu = 1 returns
    frame 1 repeated (cross-frame attention to frame 1); both are exact, not approximate.

    Use on hidden states: SD's ``to_k``/``to_v`` are bias-free linear maps, so the momentum of the hidden
    states followed by the projection equals the momentum of K and V -- one scan serves both K and V.

    ``method`` (a choice the paper leaves open; it only gives a loop and an F x F matrix form):
    ``"sequential"`` is an in-place loop over frames (2 vector ops per frame, memory-bound, the fastest on
    CPU); ``"blocked"`` splits frames into blocks of 16, does the in-block recurrence as one batched
    [16, 16] matmul and scans the block carries recursively (O(log F) python steps, GPU-friendly).
    ``"auto"`` picks sequential on CPU, blocked elsewhere. Neither forms an F x F matrix nor divides by
    powers of mu, so both are stable for mu near 1 and hundreds of frames (coefficients are built in
    float64 and cast once). Half inputs are computed in float32 and cast back: a recursive filter in
    float16/bfloat16 would drift (mu = 0.98 is not representable in bfloat16; the rounding error of a
    recursion grows like eps / (1 - mu)). Precision: "blocked" rounds only O(log F) times along the chain,
    "sequential" F times, so at mu = 0.999 in float32 the sequential error is ~1e-5 vs ~1e-6 blocked.
    """
    if method not in ("auto", "sequential", "blocked"):
        raise ValueError(f"momentum method must be 'auto', 'sequential' or 'blocked', got {method!r}")
    x3, dim = _as_pfd(x, frame_dim)
    f = x3.shape[1]
    mus = _mu_list(mu, f)
    if all(m == 0.0 for m in mus):
        return x.clone()
    if method == "auto":
        method = "sequential" if x.device.type == "cpu" else "blocked"
    work = x3.to(torch.promote_types(x.dtype, torch.float32))
    if method == "sequential":
        y = _linear_scan_sequential(mus, work)
    else:
        a = torch.tensor(mus, dtype=torch.float64)
        scale = (1.0 - a).to(device=x.device, dtype=work.dtype)
        y = _linear_scan_blocked(a, work * scale.view(1, -1, 1), _SCAN_BLOCK)
    return y.to(x.dtype).reshape(x.shape)


def momentum_loop(x: torch.Tensor, mu: MuLike = DEFAULT_MU, frame_dim: int = 1) -> torch.Tensor:
    """Reference: Eq. 2 evaluated literally with a python loop (out-of-place, float64 accumulation).

    Note: the paper's Listing 2 ``temporal_momentum_attention`` loop uses ``x[index - 1]`` (the previous
    INPUT frame) instead of the previous momentum output, which contradicts Eq. 2 and the paper's own
    matrix form; we follow Eq. 2 (the recursive definition), which the matrix form also computes.
    Layout and ``mu`` as in :func:`momentum_scan`.
    """
    mus = _mu_list(mu, x.shape[frame_dim])
    frames = x.double().unbind(frame_dim)
    out = [frames[0]]
    for i in range(1, len(frames)):
        out.append(mus[i] * out[-1] + (1.0 - mus[i]) * frames[i])
    return torch.stack(out, dim=frame_dim).to(x.dtype)


def momentum_matrix(x: torch.Tensor, mu: MuLike = DEFAULT_MU, frame_dim: int = 1) -> torch.Tensor:
    """Reference: the paper's "efficient computation" matrix form (section 4.1, Listing 2), F x F.

    [K''_1..K''_F] = [K_1, (1-mu)K_2, ..., (1-mu)K_F] U with U[j, i] = mu^(i-j) for j <= i (upper
    triangular). Generalised to per-frame mu: U[j, i] = prod_{t=j+1..i} mu_t. Builds the F x F matrix in
    float64 -- memory O(F^2), for tests and benchmarks only. Layout and ``mu`` as in :func:`momentum_scan`.
    (Listing 2's ``einsum("ff, fbnc -> fbnc")`` is not a valid einsum; we use "ij,pjd->pid".)
    """
    x3, _ = _as_pfd(x, frame_dim)
    f = x3.shape[1]
    a = torch.tensor(_mu_list(mu, f), dtype=torch.float64)
    lower = _block_matrices(a.unsqueeze(0))[0]  # lower[i, j] = U[j, i]
    coeff = lower * (1.0 - a).unsqueeze(0)  # column j scaled by (1 - mu_j); mu_1 := 0 -> K_1 unscaled
    y = torch.einsum("ij,pjd->pid", coeff.to(x.device), x3.double())
    return y.to(x.dtype).reshape(x.shape)


# ----------------------------------------------------------------------------------------------------------
# cross-frame context (Text2Video-Zero first frame, Gen-L-Video bi-directional)
# ----------------------------------------------------------------------------------------------------------
def _bidirectional_sources(num_frames: int, anchor: int) -> list[int]:
    """Neighbour toward the anchor for every frame (the anchor itself maps to the anchor)."""
    return [j + 1 if j < anchor else (j - 1 if j > anchor else anchor) for j in range(num_frames)]


def cross_frame_context(
    x: torch.Tensor, mode: str, anchor: int | None = None, frame_dim: int = 1
) -> torch.Tensor:
    """Key/value source tokens for cross-frame attention (to feed ``to_k``/``to_v``).

    Layout: ``x`` is ``[G, F, N, C]`` by default (``frame_dim`` names the frame axis; the token axis is the
    one right after it, channels last). Returns ``[G, F, N', C]`` (contiguous, memory O(F * N' * C)).

    * ``"first_frame"`` (Text2Video-Zero / FateZero cross-frame attention): every frame's K/V source is
      frame 1, N' = N. ``anchor`` is ignored.
    * ``"bidirectional_anchor"`` (Gen-L-Video section 4, bi-directional cross-frame attention): with anchor
      a, frame j's source is ``[z_{j+1}, z_a]`` for j < a and ``[z_{j-1}, z_a]`` for j > a, concatenated on
      the token axis, N' = 2N. The paper gives the anchor frame itself only ``z_a`` (N tokens); to keep a
      uniform N' = 2N we return ``[z_a, z_a]``. This is exactly equal for softmax attention: every key is
      duplicated with its value, so each softmax weight is halved and counted twice. Anchor default:
      ``F // 2`` as a 0-based index (the paper's floor(M/2)): the exact middle for odd F, and for even F
      the later of the two middle frames (e.g. index 8 of 0..15), so frames on both sides get the anchor.

    Chunks (G) never mix: neighbours and anchor are taken inside each chunk.
    """
    dim = frame_dim % x.ndim
    if dim > x.ndim - 3:
        raise ValueError(
            f"cross-frame context needs [..., F, N, C] with frame_dim before the token and channel axes, got "
            f"frame_dim={frame_dim} for a {x.ndim}-d tensor"
        )
    validate_cross_frame(mode, x.shape[dim], anchor)
    f = x.shape[dim]
    if mode == "first_frame":
        return x.narrow(dim, 0, 1).expand_as(x).contiguous()
    a = f // 2 if anchor is None else anchor
    idx = torch.tensor(_bidirectional_sources(f, a), device=x.device)
    neighbour = x.index_select(dim, idx)
    anchor_tokens = x.narrow(dim, a, 1).expand_as(x)
    return torch.cat([neighbour, anchor_tokens], dim=dim + 1)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int) -> torch.Tensor:
    """Reference multi-head softmax attention, ComfyUI ``optimized_attention`` calling convention.

    ``q``: [B, Lq, heads*d], ``k``/``v``: [B, Lk, heads*d] -> [B, Lq, heads*d]. softmax(q k^T / sqrt(d)) v,
    computed explicitly (materialises [B, heads, Lq, Lk]; for tests and small shapes).
    """
    b, lq, hd = q.shape
    if hd % heads:
        raise ValueError(f"attention heads must divide the channel count {hd}, got heads={heads}")
    d = hd // heads
    qh = q.reshape(b, lq, heads, d).transpose(1, 2)
    kh = k.reshape(b, k.shape[1], heads, d).transpose(1, 2)
    vh = v.reshape(b, v.shape[1], heads, d).transpose(1, 2)
    w = torch.softmax((qh @ kh.transpose(-1, -2)) * (1.0 / math.sqrt(d)), dim=-1)
    return (w @ vh).transpose(1, 2).reshape(b, lq, hd)


def cross_frame_attention_reference(
    x: torch.Tensor,
    to_q: torch.Tensor,
    to_k: torch.Tensor,
    to_v: torch.Tensor,
    heads: int,
    mode: str,
    anchor: int | None = None,
) -> torch.Tensor:
    """Reference: cross-frame attention written per frame, following the paper formulas literally.

    ``x``: [G, F, N, C] hidden states; ``to_q/to_k/to_v``: weight matrices [C_out, C] (bias-free, as in SD).
    For each chunk g and frame j: Q = W^Q z_j, K = W^K z*_j, V = W^V z*_j with z*_j from Gen-L-Video
    section 4 (the anchor frame uses z_a alone, N tokens, unlike :func:`cross_frame_context`) or frame 1
    for ``"first_frame"``. Returns [G, F, N, C_out]. Slow; for tests.
    """
    validate_cross_frame(mode, x.shape[1], anchor)
    g_count, f = x.shape[:2]
    a = f // 2 if anchor is None else anchor
    rows = []
    for g in range(g_count):
        frames = []
        for j in range(f):
            if mode == "first_frame":
                src = x[g, 0]
            elif j > a:
                src = torch.cat([x[g, j - 1], x[g, a]], dim=0)
            elif j < a:
                src = torch.cat([x[g, j + 1], x[g, a]], dim=0)
            else:
                src = x[g, a]
            q = x[g, j] @ to_q.T
            out = attention(q[None], (src @ to_k.T)[None], (src @ to_v.T)[None], heads)[0]
            frames.append(out)
        rows.append(torch.stack(frames))
    return torch.stack(rows)


# ----------------------------------------------------------------------------------------------------------
# ZoLA spatiotemporal attention expansion (Eqs. 3-4)
# ----------------------------------------------------------------------------------------------------------
def expansion_windows(num_frames: int, base: int, stride: int | None = None) -> list[list[int]]:
    """Frame windows of ZoLA Eq. 3: z^i = z[:, i*s : i*s + f] for i = 0, 1, ...

    ``num_frames`` latent frames, window length ``base`` (f), ``stride`` s (default floor(f/2), >= 1).
    Choice (the paper's slicing would leave a short or missing tail): windows start at 0, s, 2s, ... while
    they fit, and if the last one does not reach the final frame one more window is added ending exactly at
    the last frame (start = num_frames - base), so every window has length f and every frame is covered.
    ``base >= num_frames`` gives the single window of all frames.
    """
    base, stride = validate_expansion(base, stride)
    if isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 1:
        raise ValueError(f"num_frames must be an integer >= 1, got {num_frames!r}")
    if base >= num_frames:
        return [list(range(num_frames))]
    starts = list(range(0, num_frames - base + 1, stride))
    if starts[-1] + base < num_frames:
        starts.append(num_frames - base)
    return [list(range(s, s + base)) for s in starts]


def expansion_weights(base: int) -> torch.Tensor:
    """ZoLA Eq. 4 merge weights inside a window: w[j] = exp(-|j - floor(f/2)| / 2), j = 0..f-1.

    Returns a float32 tensor [base] (1 at the centre frame, decaying toward the window edges).
    """
    validate_expansion(base)
    j = torch.arange(base, dtype=torch.float64)
    return torch.exp(-0.5 * (j - base // 2).abs()).float()


def expanded_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    heads: int,
    num_frames: int,
    tokens_per_frame: int,
    base: int,
    stride: int | None = None,
    attn_fn: AttnFn | None = None,
    max_windows_per_batch: int | None = None,
    extra_k: torch.Tensor | None = None,
    extra_v: torch.Tensor | None = None,
) -> torch.Tensor:
    """ZoLA spatiotemporal attention expansion (section 4.3, Eqs. 3-4) for native video DiTs.

    ``q``, ``k``, ``v``: [B, L, heads*d] with L = num_frames * tokens_per_frame, tokens frame-major (all
    tokens of frame 0, then frame 1, ...), RoPE already applied. Full self-attention is replaced by
    attention inside each window of :func:`expansion_windows` (the tokens of the window's ``base`` frames);
    a frame's output is the Eq. 4-weighted mean of the outputs of the windows covering it,
    out_t = sum_i w[j_i(t)] o_i,t / sum_i w[j_i(t)] (the paper's "weighted interpolation"; normalising by
    the covering weights is our reading, it makes the merge a convex combination). Returns [B, L, heads*d].

    ``attn_fn(q, k, v, heads)`` is the attention kernel (default :func:`attention`; pass the host's
    optimized attention). All windows have the same length, so they are stacked on the batch axis and
    evaluated in ceil(W / max_windows_per_batch) calls (default: one call). Peak extra memory is
    O(windows_per_batch * base * tokens_per_frame * channels) plus one float32 accumulator of the output.
    ``base >= num_frames`` is exactly plain attention (``attn_fn`` on the unchanged inputs).

    ``extra_k``, ``extra_v`` ([B, L_x, heads*d]): keys/values every video query attends to besides its window, in
    every window (the text tokens of a joint image+text attention, as in HunyuanVideo); they are appended after
    the window's keys. Only the video queries are computed here.
    """
    attn = attention if attn_fn is None else attn_fn
    base, stride = validate_expansion(base, stride)
    b, length, hd = q.shape
    if length != num_frames * tokens_per_frame:
        raise ValueError(
            f"expanded attention needs L = num_frames * tokens_per_frame = {num_frames} * {tokens_per_frame}"
            f" = {num_frames * tokens_per_frame} tokens, got {length}"
        )
    if k.shape[:2] != q.shape[:2] or v.shape[:2] != q.shape[:2]:
        raise ValueError("expanded attention is self-attention: q, k and v must share [B, L]")
    if max_windows_per_batch is not None and max_windows_per_batch < 1:
        raise ValueError(f"max_windows_per_batch must be >= 1 or empty, got {max_windows_per_batch}")
    if (extra_k is None) != (extra_v is None) or (extra_k is not None and (
            extra_k.shape[0] != b or extra_v.shape[:2] != extra_k.shape[:2])):
        raise ValueError("extra_k and extra_v must be given together, [B, L_x, C] with the batch of q")
    if base >= num_frames:
        if extra_k is not None:
            return attn(q, torch.cat([k, extra_k], 1), torch.cat([v, extra_v], 1), heads)
        return attn(q, k, v, heads)
    windows = expansion_windows(num_frames, base, stride)
    n = tokens_per_frame
    acc_dtype = torch.promote_types(q.dtype, torch.float32)
    w = expansion_weights(base).to(device=q.device, dtype=acc_dtype)
    acc = torch.zeros(b, num_frames, n, v.shape[-1], dtype=acc_dtype, device=q.device)
    denom = torch.zeros(num_frames, dtype=acc_dtype, device=q.device)
    q4, k4, v4 = (t.reshape(b, num_frames, n, t.shape[-1]) for t in (q, k, v))
    per_call = len(windows) if max_windows_per_batch is None else max_windows_per_batch
    for start in range(0, len(windows), per_call):
        group = windows[start:start + per_call]
        nw = len(group)
        idx = torch.tensor([i for win in group for i in win], device=q.device)

        def gather(t: torch.Tensor, idx: torch.Tensor = idx, nw: int = nw) -> torch.Tensor:
            # [B, nw*base, n, c] -> [nw*B, base*n, c] (window-major batch)
            sel = t.index_select(1, idx).view(b, nw, base * n, t.shape[-1])
            return sel.transpose(0, 1).reshape(nw * b, base * n, t.shape[-1])

        wk, wv = gather(k4), gather(v4)
        if extra_k is not None:  # window-major batch: window i, batch j holds extra row j
            wk = torch.cat([wk, extra_k.repeat(nw, 1, 1)], 1)
            wv = torch.cat([wv, extra_v.repeat(nw, 1, 1)], 1)
        out = attn(gather(q4), wk, wv, heads)
        del wk, wv
        out = out.reshape(nw, b, base, n, -1).to(acc_dtype) * w.view(1, 1, base, 1, 1)
        acc.index_add_(1, idx, out.transpose(0, 1).reshape(b, nw * base, n, -1))
        denom.index_add_(0, idx, w.repeat(nw))
    acc /= denom.view(1, -1, 1, 1)
    return acc.reshape(b, length, -1).to(q.dtype)
