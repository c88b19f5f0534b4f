"""The training scripts' defaults are the recipes of the committed models: running a script with no options
re-trains the committed model, and its README's recipe is the one in the file."""
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "tools"))
import synthworld  # noqa: E402
import train_tiny  # noqa: E402
import train_tiny_image  # noqa: E402

# option -> metadata key of the committed file (every training option the scripts record)
RECIPE_KEYS = ("steps", "batch", "lr", "warmup", "decay", "final_lr", "ema", "seed", "threads")
MODELS = [(train_tiny, "longanim_world_wan21.safetensors"),
          (train_tiny_image, "longanim_world_sd15.compact.safetensors")]


def recipe_mismatches(script, model_file: str) -> dict:
    """{option: (script default, committed value)} for every recorded option whose default differs."""
    defaults = vars(script.build_parser().parse_args(["--comfyui", "unused"]))
    with safe_open(str(ROOT / "tests" / "models" / model_file), "pt") as f:
        meta = f.metadata()
    assert meta["longanim_recipe"] == script.RECIPE and meta["script_version"] == script.SCRIPT_VERSION
    assert meta["trained_steps"] == meta["steps"], "the committed file is an intermediate checkpoint"
    out = {}
    for key in RECIPE_KEYS:
        default = defaults[key]
        committed = type(default)(meta[key])
        if committed != default:
            out[key] = (default, committed)
    return out


@pytest.mark.parametrize("script,model_file", MODELS, ids=["video", "image"])
def test_script_defaults_are_the_committed_recipe(script, model_file):
    assert recipe_mismatches(script, model_file) == {}


def test_a_changed_default_is_noticed(monkeypatch):
    parser = train_tiny_image.build_parser

    def changed():
        ap = parser()
        ap.set_defaults(steps=3000)
        return ap

    monkeypatch.setattr(train_tiny_image, "build_parser", changed)
    assert recipe_mismatches(train_tiny_image, MODELS[1][1]) == {"steps": (3000, 4000)}


def _clips(prompts, seed, frames=16, noise=0.0):
    lat = torch.stack([synthworld.clip(seed + i, frames, synthworld.World(), colours=synthworld.parse_prompt(p))[0]
                       for i, p in enumerate(prompts)])
    return lat + noise * torch.randn(lat.shape, generator=torch.Generator().manual_seed(seed))


def test_a_model_that_moves_its_balls_like_the_world_passes_the_gate():
    """The gate can be met: clips of the world itself with a little latent noise (std 0.1 against codes of 2.5,
    which puts tracker jitter of a few hundredths of a pixel on every ball) pass; read against the exact truth's ~0
    acceleration (floored at 1e-3) they could not. Balls that jump every frame, or the wrong colours, fail."""
    prompts = list(train_tiny.GATE_PROMPTS)
    real = train_tiny.gate_figures(_clips(prompts, 10_000), prompts)
    good = train_tiny.gate_figures(_clips(prompts, 0, noise=0.1), prompts)
    assert good["accel_p90"] / max(real["accel_p90"], 1e-3) > 2.0  # the former criterion: "2x real"
    assert train_tiny.gate_verdict(good)["passed"], good
    jumpy = _clips(prompts, 0)
    jumpy = jumpy[:, :, torch.randperm(jumpy.shape[2], generator=torch.Generator().manual_seed(0))]
    verdict = train_tiny.gate_verdict(train_tiny.gate_figures(jumpy, prompts))
    assert not verdict["passed"] and verdict["accel_p90"] > train_tiny.GATE["accel_p90"], verdict
    swapped = ["green yellow" if p == "red blue" else p for p in prompts]  # draws green + yellow for "red blue"
    verdict = train_tiny.gate_verdict(train_tiny.gate_figures(_clips(swapped, 0), prompts))
    assert not verdict["passed"] and verdict["count_accuracy"] < train_tiny.GATE["count_accuracy"], verdict


@pytest.mark.parametrize("script", [train_tiny, train_tiny_image], ids=["video", "image"])
def test_the_gate_is_reported_on_seeds_that_did_not_select_the_checkpoint(script):
    args = script.build_parser().parse_args(["--comfyui", "unused"])
    assert args.gate_for == "report"
    clips = 1000  # far more than any gate run samples
    select = train_tiny.gate_seed("select")
    report = train_tiny.gate_seed(args.gate_for)
    used_select = set(range(select, select + clips)) | set(range(select + train_tiny.REAL_OFFSET,
                                                                 select + train_tiny.REAL_OFFSET + clips))
    used_report = set(range(report, report + clips)) | set(range(report + train_tiny.REAL_OFFSET,
                                                                 report + train_tiny.REAL_OFFSET + clips))
    assert not used_select & used_report
