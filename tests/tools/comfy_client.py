"""Start a real ComfyUI server and talk to it over HTTP (stdlib only). Used by the e2e tier and the demo.

    with ComfyServer(comfyui_dir, python) as server:
        result = server.run(prompt)          # POST /prompt, wait on /history, return outputs

``Graph`` builds API-format prompts: ``g.node("KSampler", seed=1, model=g.out(loader, 0), ...)``.

``LONGANIM_FRONTEND_ROOT=<folder>`` serves another frontend than the host's installed one (ComfyUI's
``--front-end-root``): the ``static`` folder of an unpacked ``comfyui-frontend-package`` wheel, e.g.
``.../comfyui_frontend_package/static``. The browser tests then run against that frontend.
"""
from __future__ import annotations

import itertools
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path


class ServerError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Graph:
    """API-format prompt builder."""

    def __init__(self):
        self.nodes: dict[str, dict] = {}
        self._ids = itertools.count(1)

    def node(self, class_type: str, **inputs) -> str:
        nid = str(next(self._ids))
        self.nodes[nid] = {"class_type": class_type, "inputs": inputs}
        return nid

    @staticmethod
    def out(nid: str, index: int = 0) -> list:
        return [nid, index]

    def prompt(self) -> dict:
        return json.loads(json.dumps(self.nodes))

    TINY = {"sd15": ("longanim_tiny_sd15.safetensors", "longanim_tiny_taesd.safetensors"),
            "wan21": ("longanim_tiny_wan21.safetensors", "longanim_tiny_taew21.safetensors")}

    def tiny_model(self, family: str = "sd15", text: str = "a fox", negative: str = "") -> tuple:
        """The project's tiny random model of ``family``, its tiny VAE and test conditionings (built by
        tests/tools/tiny_models.py): ``(model, vae, positive, negative)`` as links."""
        unet, vae = self.TINY[family]
        model = self.out(self.node("UNETLoader", unet_name=unet, weight_dtype="default"))
        vae = self.out(self.node("VAELoader", vae_name=vae))
        pos = self.out(self.node("TinyTestConditioning", text=text, family=family))
        neg = self.out(self.node("TinyTestConditioning", text=negative, family=family))
        return model, vae, pos, neg

    def ksample_decode(self, model, positive, negative, latent, vae, *, seed: int = 7, steps: int = 2,
                       cfg: float = 5.0, save: str | None = None) -> tuple[str, str]:
        """KSampler (euler / normal) -> VAEDecode [-> SaveImage]; returns the sampler and decode node ids."""
        sampled = self.node("KSampler", model=model, seed=seed, steps=steps, cfg=cfg, sampler_name="euler",
                            scheduler="normal", positive=positive, negative=negative, latent_image=latent,
                            denoise=1.0)
        images = self.node("VAEDecode", samples=self.out(sampled), vae=vae)
        if save:
            self.node("SaveImage", images=self.out(images), filename_prefix=save)
        return sampled, images


class ComfyServer:
    def __init__(self, comfyui: str | Path, python: str | Path | None = None, port: int | None = None,
                 output_dir: str | Path | None = None, extra_args: list[str] | None = None,
                 start_timeout: float = 180.0):
        self.comfyui = Path(comfyui)
        self.python = str(python or sys.executable)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.output_dir = Path(output_dir or tempfile.mkdtemp(prefix="longanim-out-"))
        self.extra_args = extra_args or []
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen | None = None
        self.log_path = Path(tempfile.mkdtemp(prefix="longanim-log-")) / "server.log"
        self.client_id = uuid.uuid4().hex
        self.start_seconds: float | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> ComfyServer:
        t0 = time.time()
        self._log = open(self.log_path, "w")
        cmd = [self.python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(self.port),
               "--disable-auto-launch", "--output-directory", str(self.output_dir), *self.extra_args]
        frontend = os.environ.get("LONGANIM_FRONTEND_ROOT")
        if frontend and "--front-end-root" not in self.extra_args:
            if not (Path(frontend) / "index.html").is_file():
                raise ServerError(f"LONGANIM_FRONTEND_ROOT={frontend} has no index.html: name the static folder of "
                                  "an unpacked comfyui-frontend-package wheel (comfyui_frontend_package/static)")
            cmd += ["--front-end-root", str(Path(frontend).resolve())]
        env = dict(os.environ, PYTHONUNBUFFERED="1", LONGANIM_TESTPACK="1")  # the test-only node (tests/testpack)
        self.proc = subprocess.Popen(cmd, cwd=self.comfyui, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        while time.time() - t0 < self.start_timeout:
            if self.proc.poll() is not None:
                raise ServerError(f"ComfyUI exited with code {self.proc.returncode} during start; log:\n"
                                  f"{self.log_tail()}")
            try:
                self.get("/object_info/KSampler", timeout=2)
                self.start_seconds = time.time() - t0
                return self
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                time.sleep(0.5)
        self.stop()
        raise ServerError(f"ComfyUI did not answer within {self.start_timeout} s; log:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "_log", None):
            self._log.close()

    def __enter__(self) -> ComfyServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, n: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-n:])

    # ------------------------------------------------------------------ http
    def get(self, path: str, timeout: float = 30):
        with urllib.request.urlopen(self.url + path, timeout=timeout) as r:
            return json.loads(r.read() or b"null")

    def get_bytes(self, path: str, timeout: float = 30) -> bytes:
        with urllib.request.urlopen(self.url + path, timeout=timeout) as r:
            return r.read()

    def post(self, path: str, payload: dict | None = None, timeout: float = 30):
        data = json.dumps(payload or {}).encode()
        req = urllib.request.Request(self.url + path, data=data, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                body = r.read()
                return json.loads(body) if body else None
        except urllib.error.HTTPError as e:
            body = e.read().decode(errors="replace")
            raise ServerError(f"POST {path} -> HTTP {e.code}: {body}") from e

    # ------------------------------------------------------------------ prompts
    def queue(self, prompt: dict) -> str:
        res = self.post("/prompt", {"prompt": prompt, "client_id": self.client_id})
        return res["prompt_id"]

    def wait(self, prompt_id: str, timeout: float = 600) -> dict:
        t0 = time.time()
        while time.time() - t0 < timeout:
            hist = self.get(f"/history/{prompt_id}")
            if hist and prompt_id in hist:
                entry = hist[prompt_id]
                if entry.get("status", {}).get("completed") is not None or entry.get("outputs"):
                    if entry.get("status", {}).get("status_str") in ("success", "error") or entry.get("outputs"):
                        return entry
            if self.proc and self.proc.poll() is not None:
                raise ServerError(f"ComfyUI died while running {prompt_id}; log:\n{self.log_tail()}")
            time.sleep(0.2)
        raise ServerError(f"prompt {prompt_id} did not finish within {timeout} s")

    def run(self, prompt: dict, timeout: float = 600) -> dict:
        """Queue ``prompt`` and wait; returns the /history entry (``outputs``, ``status``)."""
        return self.wait(self.queue(prompt), timeout=timeout)

    def interrupt(self) -> None:
        self.post("/interrupt", {})

    def output_files(self, entry: dict, kind: str = "images") -> list[Path]:
        files = []
        for node_out in entry.get("outputs", {}).values():
            for item in node_out.get(kind, []):
                if item.get("type") != "output":
                    continue
                files.append(self.output_dir / item.get("subfolder", "") / item["filename"])
        return files


def status_messages(entry: dict) -> list:
    return entry.get("status", {}).get("messages", [])


def execution_error(entry: dict) -> dict | None:
    for kind, data in status_messages(entry):
        if kind == "execution_error":
            return data
    return None
