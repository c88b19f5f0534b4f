"""The main job (``longanim.py demo`` runs tests/tools/demo.py): a short run writes a moving animation."""
import os
import pathlib
import subprocess
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
COMFY = pathlib.Path(os.environ.get("LONGANIM_COMFYUI") or ROOT / ".host" / "ComfyUI")  # as tests/e2e/conftest.py
PYTHON = os.environ.get("LONGANIM_PYTHON") or sys.executable


def test_demo_writes_a_moving_animation(tmp_path):
    """32 latent frames: the side-by-side WEBP has many frames, is not black, and its frames change; the strip and
    the printed figures are there."""
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
    changes = [float(np.abs(b - a).max()) for a, b in zip(frames, frames[1:])]
    assert sum(c > 0.05 for c in changes) > len(changes) // 2, changes
