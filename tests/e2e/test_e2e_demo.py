"""The main job (``longanim.py demo`` runs tests/tools/demo.py): a short run writes a moving animation."""
import os
import pathlib
import subprocess
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
COMFY = pathlib.Path(os.environ.get("LONGANIM_COMFYUI") or ROOT / ".host" / "ComfyUI")  # as tests/e2e/conftest.py
PYTHON = os.environ.get("LONGANIM_PYTHON") or sys.executable
# Latent seam ratio at the isolated run's window border (32 latent frames: frame 16), on seeds 10-12 (the demo runs
# seed 3): isolated 4.11-4.63, LongAnim 0.79-1.37; a LongAnim half that is the isolated run has the isolated seam.
SEAM_THRESHOLD = 2.5
# Mean |LongAnim - isolated| / mean |isolated| of the model-space latents, seeds 10-12: 0.22-0.27 (0 if equal).
LATENT_DIFF_MIN = 0.05
FRAME_CHANGE_MIN = 0.05  # max abs pixel change between frames that counts as motion (the balls are > 0.5 bright)


def test_demo_writes_a_moving_animation(tmp_path):
    """32 latent frames: the side-by-side WEBP has many frames, is not black, and its LongAnim half (right) moves;
    the LongAnim run is not the isolated one (its latents differ, and there is no seam where the isolated windows
    meet); the strip and the printed figures are there."""
    from PIL import Image, ImageSequence

    run = subprocess.run([PYTHON, str(ROOT / "tests" / "tools" / "demo.py"), "--comfyui", str(COMFY), "--frames", "32",
                          "--output", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "frames with the right objects" in run.stdout and "open " in run.stdout
    folder = tmp_path / "longanim_demo"
    webp = sorted(folder.glob("side_by_side_*.webp"))
    assert webp and (folder / "strip_isolated_vs_longanim.png").exists()
    frames = [np.asarray(f.convert("RGB"), dtype=np.float32) / 255
              for f in ImageSequence.Iterator(Image.open(webp[-1]))]
    assert len(frames) > 16
    # the background is (0.10, 0.10, 0.14); balls make pixels far brighter than that
    assert max(float(f.max()) for f in frames) > 0.5
    width = frames[0].shape[1]
    half = (width - 4) // 2  # ImageStitch: isolated | 4 px spacing | LongAnim
    right = [f[:, width - half:] for f in frames]
    assert max(float(f.max()) for f in right) > 0.5, "the LongAnim half is black"
    changes = [float(np.abs(b - a).max()) for a, b in zip(right, right[1:])]
    assert sum(c > FRAME_CHANGE_MIN for c in changes) > len(changes) // 2, ("the LongAnim half does not move", changes)

    import importlib.util

    import safetensors.torch

    sys.path.insert(0, str(COMFY))
    import comfy.latent_formats

    spec = importlib.util.spec_from_file_location("longanim_metrics_demo", ROOT / "nodes" / "algorithms" / "metrics.py")
    metrics = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(metrics)
    z = {}
    for name in ("longanim", "isolated"):
        raw = safetensors.torch.load_file(str(sorted(folder.glob(f"{name}_*.latent"))[-1]))["latent_tensor"]
        z[name] = comfy.latent_formats.Wan21().process_in(raw.float())[0]
    diff = float((z["longanim"] - z["isolated"]).abs().mean() / z["isolated"].abs().mean())
    assert diff > LATENT_DIFF_MIN, ("LongAnim's latent is the isolated run's", diff)
    seam = {name: metrics.seam_ratio(metrics.frame_jumps(lat, frame_axis=1), [16]) for name, lat in z.items()}
    assert seam["isolated"] > SEAM_THRESHOLD > seam["longanim"], seam
