"""A synthetic world with known truth, for training and judging the tiny video models (pure torch).

The world is a dark box with 1-2 coloured round objects that move at constant velocity and bounce off the
walls. Everything is deterministic from a seed (explicit ``torch.Generator`` everywhere).

Layouts and spaces
- Positions are ``(y, x)`` in *latent pixels* (one latent pixel = ``PIXELS_PER_LATENT`` image pixels); one world
  frame is one latent frame.
- ``render_latent`` writes the latent the diffusion model works in (ComfyUI's *model space*, i.e. after the
  latent format's ``process_in``): ``[16, T, H, W]`` (Wan 2.1 layout without the batch axis). The background is
  0; an object of colour ``k`` adds ``blob(t, y, x) * CODES[k]``, a fixed 16-vector (the codes are orthogonal,
  so :func:`colour_maps` recovers each object's blob exactly by projection).
- ``render_rgb`` draws the same scene as an IMAGE batch ``[T, H*s, W*s, 3]`` in [0, 1].
- ``decode_rgb`` is the exact linear palette -> RGB decoder of model-space latents: ``rgb = A @ z + b`` per latent
  pixel (:func:`decoder_matrix`), then nearest-neighbour upsampling; on a clean latent it gives the render at
  latent resolution.
- Conditioning names what is in the scene: :func:`prompt_embedding` maps a prompt such as ``"red blue"`` to a fixed
  ``[1, PROMPT_TOKENS, 4096]`` tensor (one fixed random token per named colour, zeros after); the empty prompt is
  all zeros (the unconditional embedding used for classifier-free guidance).
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field

import torch

PALETTE = ("red", "green", "blue", "yellow")
PALETTE_RGB = torch.tensor([
    [0.92, 0.16, 0.12],
    [0.15, 0.80, 0.25],
    [0.20, 0.35, 0.98],
    [0.96, 0.85, 0.15],
])
BACKGROUND_RGB = torch.tensor([0.10, 0.10, 0.14])
LATENT_CHANNELS = 16
TEXT_DIM = 4096
PROMPT_TOKENS = 16
# the SD1.5-family image model's layout: 4 latent channels, CLIP-shaped [1, 77, 768] conditioning
IMAGE_CHANNELS = 4
IMAGE_TEXT_DIM = 768
IMAGE_PROMPT_TOKENS = 77
PIXELS_PER_LATENT = 8
# Colour codes of the 16-channel video layout: rows of a 16x16 Hadamard matrix scaled to +-CODE_AMPLITUDE in every
# channel. The video model is sampled with Wan's flow shift 8, which spends most steps at sigma > 0.7; there a dark
# box with small balls of amplitude 1 per channel is buried in the noise (matched-filter SNR about 6 over a
# 16-frame track at sigma 0.9) and the model can only guess where the balls are: 2.5 gives it six times the signal
# power. Equal magnitudes in all channels keep the raw latent (mean + std * z) inside the range the TAEHV
# decoder's input clamp 3 tanh(raw / 3) still resolves in float32.
CODE_AMPLITUDE = 2.5
CODE_NORM = CODE_AMPLITUDE * LATENT_CHANNELS ** 0.5
_HADAMARD_ROWS = (1, 2, 4, 8)
# The image model's 4 channels: orthogonal random codes of norm 2 (amplitude 1 per channel; SD1.5's schedule
# leaves its high-noise phase early enough for that).
IMAGE_CODE_NORM = 2.0
_CODE_SEED = 20260417
_TOKEN_SEED = 20260418


@dataclass(frozen=True)
class World:
    """Box size, object look and motion law (all in latent pixels / frames)."""

    height: int = 8
    width: int = 8
    blob_sigma: float = 0.8
    margin: float = 1.0  # object centres stay in [margin, size - 1 - margin]
    speeds: tuple = (0.25, 0.5)
    directions: int = 8  # angles (i + 0.5) * 2 pi / directions
    min_objects: int = 1
    max_objects: int = 2
    extra: dict = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def codes(channels: int = LATENT_CHANNELS) -> torch.Tensor:
    """``[K, channels]`` orthogonal colour codes: Hadamard rows of +-``CODE_AMPLITUDE`` for the 16-channel video
    layout; random orthogonal rows (seed ``_CODE_SEED``) of norm ``IMAGE_CODE_NORM`` for the image model's 4."""
    if channels == LATENT_CHANNELS:
        h = torch.ones(1, 1)
        while h.shape[0] < channels:  # Sylvester's construction
            h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)], 0)
        return h[list(_HADAMARD_ROWS)] * CODE_AMPLITUDE
    g = torch.Generator().manual_seed(_CODE_SEED)
    q, _ = torch.linalg.qr(torch.randn(channels, len(PALETTE), generator=g, dtype=torch.float64))
    return (q.T * IMAGE_CODE_NORM).to(torch.float32)


def decoder_matrix(channels: int = LATENT_CHANNELS) -> tuple[torch.Tensor, torch.Tensor]:
    """``(A [3, channels], b [3])`` with ``A @ (m * CODES[k]) + b = BACKGROUND + m * (PALETTE_RGB[k] - BACKGROUND)``."""
    c = codes(channels).double()
    proj = c / (c * c).sum(1, keepdim=True)  # [K, 16]: proj[k] @ z = blob amplitude of colour k
    a = ((PALETTE_RGB - BACKGROUND_RGB).double().T @ proj).float()
    return a, BACKGROUND_RGB.clone()


# --------------------------------------------------------------------------------------------------
# scenes and motion
# --------------------------------------------------------------------------------------------------


@dataclass
class Scene:
    colours: list  # palette indices, distinct
    pos: torch.Tensor  # [K, 2] (y, x) at frame 0
    vel: torch.Tensor  # [K, 2] per frame

    @property
    def prompt(self) -> str:
        return " ".join(PALETTE[c] for c in sorted(self.colours))


def sample_scene(g: torch.Generator, world: World = World(), n_objects: int | None = None,
                 colours: list | None = None) -> Scene:
    """Draw a scene: distinct colours, uniform positions inside the margins, a speed and direction from the sets."""
    if colours is None:
        if n_objects is None:
            n_objects = int(torch.randint(world.min_objects, world.max_objects + 1, (1,), generator=g))
        colours = torch.randperm(len(PALETTE), generator=g)[:n_objects].tolist()
    k = len(colours)
    lo = world.margin
    hi = torch.tensor([world.height - 1 - world.margin, world.width - 1 - world.margin])
    pos = lo + torch.rand(k, 2, generator=g) * (hi - lo)
    speed = torch.tensor(world.speeds)[torch.randint(len(world.speeds), (k,), generator=g)]
    ang = (torch.randint(world.directions, (k,), generator=g).float() + 0.5) * (2 * math.pi / world.directions)
    vel = torch.stack([speed * torch.sin(ang), speed * torch.cos(ang)], dim=1)
    return Scene(colours=list(colours), pos=pos, vel=vel)


def reflect(x: torch.Tensor, lo, hi):
    """Closed form of motion between two walls: ``x`` unfolded coordinate -> position in ``[lo, hi]``.

    A point moving at constant velocity and reflecting exactly at ``lo`` and ``hi`` is at the triangle wave of
    its unfolded position: ``y = (x - lo) mod 2L``, ``p = lo + (y if y <= L else 2L - y)`` with ``L = hi - lo``.
    Returns ``(position, fold)`` where ``fold = floor((x - lo) / L)`` changes by one at each bounce.
    """
    span = hi - lo
    y = torch.remainder(x - lo, 2 * span)
    pos = lo + torch.where(y <= span, y, 2 * span - y)
    return pos, torch.floor((x - lo) / span)


def _walls(world: World):
    lo = torch.full((2,), world.margin, dtype=torch.float64)
    hi = torch.tensor([world.height - 1 - world.margin, world.width - 1 - world.margin], dtype=torch.float64)
    return lo, hi


def trajectories(pos: torch.Tensor, vel: torch.Tensor, frames: int, world: World = World(), start=0):
    """Vectorized :func:`simulate`: ``pos, vel [..., 2]`` -> ``traj [frames, ..., 2]``, ``bounce [frames, ...]``.

    ``start`` (int or tensor broadcastable to ``pos.shape[:-1]``) is the time of the first frame.
    """
    lo, hi = _walls(world)
    t = torch.arange(frames, dtype=torch.float64).view(-1, *([1] * pos.ndim))
    t = t + torch.as_tensor(start, dtype=torch.float64).unsqueeze(-1)
    unfolded = pos.double() + vel.double() * t
    p, fold = reflect(unfolded, lo, hi)
    prev = reflect(unfolded - vel.double(), lo, hi)[1]
    return p.float(), (fold != prev).any(-1)


def simulate(scene: Scene, frames: int, world: World = World(), start: int = 0):
    """Trajectories ``[frames, K, 2]`` from frame ``start`` on, and bounce flags ``[frames, K]``.

    Exact reflection at the walls ``[margin, size - 1 - margin]``; ``bounce[t, k]`` is True when object ``k``
    reflected between frame ``t - 1`` and ``t``.
    """
    return trajectories(scene.pos, scene.vel, frames, world, start)


# --------------------------------------------------------------------------------------------------
# rendering
# --------------------------------------------------------------------------------------------------


def blobs(traj: torch.Tensor, height: int, width: int, sigma: float, scale: int = 1) -> torch.Tensor:
    """Gaussian blobs ``[T, K, H*scale, W*scale]`` (peak 1) at the positions ``traj [T, K, 2]``."""
    ys = (torch.arange(height * scale, dtype=torch.float32) + 0.5) / scale - 0.5
    xs = (torch.arange(width * scale, dtype=torch.float32) + 0.5) / scale - 0.5
    dy = ys.view(1, 1, -1, 1) - traj[..., 0].view(*traj.shape[:2], 1, 1)
    dx = xs.view(1, 1, 1, -1) - traj[..., 1].view(*traj.shape[:2], 1, 1)
    return torch.exp(-(dy * dy + dx * dx) / (2 * sigma * sigma))


def render_latent(traj: torch.Tensor, colours: list, world: World = World(),
                  channels: int = LATENT_CHANNELS) -> torch.Tensor:
    """Model-space latent ``[channels, T, H, W]``: ``sum_k blob_k * CODES[colour_k]``."""
    b = blobs(traj, world.height, world.width, world.blob_sigma)  # [T, K, H, W]
    c = codes(channels)[torch.tensor(colours, dtype=torch.long)]  # [K, channels]
    return torch.einsum("tkhw,kc->cthw", b, c)


def render_rgb(traj: torch.Tensor, colours: list, world: World = World(),
               scale: int = PIXELS_PER_LATENT) -> torch.Tensor:
    """IMAGE ``[T, H*scale, W*scale, 3]``: background plus each blob times its colour offset, clamped to [0, 1]."""
    b = blobs(traj, world.height, world.width, world.blob_sigma, scale)
    off = (PALETTE_RGB - BACKGROUND_RGB)[torch.tensor(colours, dtype=torch.long)]  # [K, 3]
    return (BACKGROUND_RGB + torch.einsum("tkhw,kc->thwc", b, off)).clamp(0, 1)


def decode_rgb(latent: torch.Tensor, scale: int = PIXELS_PER_LATENT) -> torch.Tensor:
    """Exact linear decoder of a model-space latent ``[C, T, H, W]`` (C = 16, or 4 for the image model) to IMAGE
    ``[T, H*scale, W*scale, 3]``."""
    a, b = decoder_matrix(latent.shape[0])
    rgb = torch.einsum("rc,cthw->thwr", a, latent.float()) + b
    rgb = rgb.repeat_interleave(scale, 1).repeat_interleave(scale, 2)
    return rgb.clamp(0, 1)


def colour_maps(latent: torch.Tensor) -> torch.Tensor:
    """Per-colour blob amplitude ``[T, K, H, W]`` of a model-space latent ``[16, T, H, W]`` (projection on CODES)."""
    c = codes()
    return torch.einsum("kc,cthw->tkhw", c / (c * c).sum(1, keepdim=True), latent.float())


# --------------------------------------------------------------------------------------------------
# conditioning
# --------------------------------------------------------------------------------------------------


def _colour_tokens(dim: int = TEXT_DIM) -> torch.Tensor:
    g = torch.Generator().manual_seed(_TOKEN_SEED)
    return torch.randn(len(PALETTE), dim, generator=g)


def parse_prompt(text: str) -> list:
    """Palette indices named in ``text`` (sorted, distinct); words are colour names split by spaces/commas/'and'."""
    words = [w for w in re.split(r"[\s,;+]+", text.strip().lower()) if w and w != "and"]
    bad = [w for w in words if w not in PALETTE]
    if bad:
        raise ValueError(f"synthworld prompt words must be colour names {list(PALETTE)}, got {bad} in {text!r}; "
                         "write e.g. 'red blue' (or an empty prompt for the unconditional embedding)")
    return sorted({PALETTE.index(w) for w in words})


def prompt_embedding(text: str, tokens: int = PROMPT_TOKENS, dim: int = TEXT_DIM) -> torch.Tensor:
    """``[1, tokens, dim]``: one fixed token per named colour (in palette order), zeros after (video model:
    ``[1, 16, 4096]``; the image model: ``[1, 77, 768]``)."""
    idx = parse_prompt(text)
    out = torch.zeros(1, tokens, dim)
    if idx:
        out[0, : len(idx)] = _colour_tokens(dim)[torch.tensor(idx)]
    return out


def colours_embedding(colours: list) -> torch.Tensor:
    """Same as :func:`prompt_embedding` for palette indices."""
    return prompt_embedding(" ".join(PALETTE[c] for c in colours))


# --------------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------------


def clip(seed: int, frames: int, world: World = World(), n_objects: int | None = None,
         colours: list | None = None, start: int = 0, channels: int = LATENT_CHANNELS):
    """One ground-truth clip: ``(latent [channels, T, H, W], traj [T, K, 2], bounce [T, K], scene)``."""
    g = torch.Generator().manual_seed(seed)
    scene = sample_scene(g, world, n_objects, colours)
    traj, bounce = simulate(scene, frames, world, start)
    return render_latent(traj, scene.colours, world, channels), traj, bounce, scene


def batch(seed: int, size: int, frames: int, world: World = World(), drop_prompt: float = 0.1,
          channels: int = LATENT_CHANNELS, tokens: int = PROMPT_TOKENS, dim: int = TEXT_DIM):
    """A training batch: ``x0 [B, channels, T, H, W]`` and ``context [B, tokens, dim]``.

    Each sample is a fresh scene from ``seed`` (``min_objects..max_objects`` distinct colours) seen from a random
    start time in ``[0, 64)``; with probability ``drop_prompt`` its context is the empty prompt (zeros) so the
    model also learns the unconditional prediction that classifier-free guidance needs.
    """
    g = torch.Generator().manual_seed(seed)
    k = world.max_objects
    n = torch.randint(world.min_objects, k + 1, (size,), generator=g)
    colours = torch.argsort(torch.rand(size, len(PALETTE), generator=g), dim=1)[:, :k]  # distinct per sample
    present = torch.arange(k).view(1, -1) < n.view(-1, 1)  # [B, K]
    lo, hi = _walls(world)
    pos = lo.float() + torch.rand(size, k, 2, generator=g) * (hi - lo).float()
    speed = torch.tensor(world.speeds)[torch.randint(len(world.speeds), (size, k), generator=g)]
    ang = (torch.randint(world.directions, (size, k), generator=g).float() + 0.5) * (2 * math.pi / world.directions)
    vel = torch.stack([speed * torch.sin(ang), speed * torch.cos(ang)], dim=-1)
    start = torch.randint(0, 64, (size, 1), generator=g)
    traj, _ = trajectories(pos, vel, frames, world, start)  # [T, B, K, 2]
    b = blobs(traj.reshape(frames, size * k, 2), world.height, world.width, world.blob_sigma)
    b = b.view(frames, size, k, world.height, world.width) * present.view(1, size, k, 1, 1)
    code = codes(channels)[colours]  # [B, K, channels]
    x0 = torch.einsum("tbkhw,bkc->bcthw", b, code)
    keep = torch.rand(size, generator=g) >= drop_prompt
    onehot = torch.zeros(size, len(PALETTE))
    onehot.scatter_(1, colours, present.float())
    onehot = onehot * keep.view(-1, 1)
    # palette-ordered tokens of the present colours, zeros after (as prompt_embedding builds them)
    order = torch.argsort(-onehot + torch.arange(len(PALETTE)) * 1e-3, dim=1)
    sel = torch.gather(onehot, 1, order)
    ctx = torch.zeros(size, tokens, dim)
    ctx[:, : len(PALETTE)] = _colour_tokens(dim)[order] * sel.unsqueeze(-1)
    return x0, ctx
