"""The training scripts' defaults are the recipes of the committed models: running a script with no options
re-trains the committed model, and its README's recipe is the one in the file."""
import sys
from pathlib import Path

import pytest
from safetensors import safe_open

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "tools"))
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
