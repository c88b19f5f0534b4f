"""Tier 2: the manifest of core symbols (``nodes/comfy/manifest.py``) against the installed host.

The host must match every entry; a changed core signature, attribute, key or abstract method is named in one line
(shown on patched in-memory copies of core objects); and the manifest lists every ComfyUI name that
``nodes/comfy/*.py`` uses.
"""
import ast
import inspect
import pathlib

import comfy.context_windows
import comfy.patcher_extension
import comfy.samplers
import pytest
import torch
from longanim.nodes.comfy import manifest, windows

BOUNDARY = pathlib.Path(__file__).resolve().parents[2] / "nodes" / "comfy"
HOST_ROOTS = {"comfy", "comfy_extras", "comfy_api", "comfy_execution", "folder_paths", "latent_preview", "server",
              "nodes", "execution"}


def test_host_matches_the_manifest():
    mismatches = manifest.check()
    assert mismatches == [], "\n".join(mismatches)


# ---------------------------------------------------------------------------------------------- mismatches named
def _calculate_sigmas(model_sampling, scheduler, steps):  # a core function whose parameter was renamed
    raise AssertionError("not called")


def _ksampler_init(self, sampler_function, extra_options=None):  # inpaint_options removed
    raise AssertionError("not called")


def _ksampler_sample(self, model_wrap, sigmas, extra_args, noise, callback, latent_image=None, denoise_mask=None,
                     disable_pbar=False):  # core would call SAMPLERs with noise before callback
    raise AssertionError("not called")


def _inner_sample(self, noise, latent_image, device, sampler, sigmas, denoise_mask, callback, disable_pbar, seed,
                  latent_shapes=None):  # no longer publishes the schedule to transformer_options
    raise AssertionError("not called")


PATCHES = {
    "renamed parameter": (
        lambda mp: mp.setattr(comfy.samplers, "calculate_sigmas", _calculate_sigmas),
        "comfy.samplers.calculate_sigmas: no parameter 'scheduler_name' (host: (model_sampling, scheduler, steps))"),
    "removed constructor parameter": (
        lambda mp: mp.setattr(comfy.samplers.KSAMPLER, "__init__", _ksampler_init),
        "comfy.samplers.KSAMPLER: no parameter 'inpaint_options' (host: (sampler_function, extra_options))"),
    "reordered call convention": (
        lambda mp: mp.setattr(comfy.samplers.KSAMPLER, "sample", _ksampler_sample),
        "comfy.samplers.KSAMPLER.sample: positional order (model_wrap, sigmas, extra_args, callback, noise, "
        "latent_image, denoise_mask, disable_pbar) expected, host has (model_wrap, sigmas, extra_args, noise, "
        "callback, latent_image, denoise_mask, disable_pbar)"),
    "removed attribute": (
        lambda mp: mp.delattr(comfy.patcher_extension.WrappersMP, "OUTER_SAMPLE"),
        "comfy.patcher_extension.WrappersMP: no attribute 'OUTER_SAMPLE'"),
    "removed symbol": (
        lambda mp: mp.delattr(comfy.samplers, "SCHEDULER_NAMES"),
        "comfy.samplers.SCHEDULER_NAMES: missing on this host"),
    "new abstract method": (
        lambda mp: mp.setattr(comfy.context_windows.ContextHandlerABC, "__abstractmethods__",
                              comfy.context_windows.ContextHandlerABC.__abstractmethods__ | {"prepare_window"}),
        "comfy.context_windows.ContextHandlerABC: abstract method(s) prepare_window that the pack does not "
        "implement"),
    "dropped transformer_options key": (
        lambda mp: mp.setattr(comfy.samplers.CFGGuider, "inner_sample", _inner_sample),
        "comfy.samplers.CFGGuider.inner_sample: its source no longer mentions 'sample_sigmas'"),
}


@pytest.mark.parametrize("case", list(PATCHES))
def test_a_changed_host_is_named_in_one_line(monkeypatch, case):
    patch, line = PATCHES[case]
    patch(monkeypatch)
    assert manifest.check() == [line]


def test_missing_module_is_named_unless_optional():
    entry = manifest.Core("comfy.no_such_module", "thing", "call", params=("x",))
    lines = manifest.check((entry,))
    assert len(lines) == 1 and lines[0].startswith("comfy.no_such_module.thing: module comfy.no_such_module cannot "
                                                   "be imported")
    optional = manifest.Core("comfy.no_such_module", "thing", "call", optional=True)
    assert manifest.check((optional,)) == []


# ---------------------------------------------------------------------------------------------- completeness
def _host_names_used(path: pathlib.Path) -> set[str]:
    """Dotted ComfyUI names a boundary module uses: attribute chains on imported host modules, names imported from
    them, and ``getattr(<host module>, "Name")``."""
    tree = ast.parse(path.read_text(), str(path))
    alias: dict[str, str] = {}
    used: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] in HOST_ROOTS:
                    if a.asname:
                        alias[a.asname] = a.name
                    else:
                        alias[a.name.split(".")[0]] = a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                and node.module.split(".")[0] in HOST_ROOTS:
            for a in node.names:
                alias[a.asname or a.name] = f"{node.module}.{a.name}"
                used.add(f"{node.module}.{a.name}")

    def dotted(expr) -> str | None:
        parts = []
        while isinstance(expr, ast.Attribute):
            parts.append(expr.attr)
            expr = expr.value
        if isinstance(expr, ast.Name) and expr.id in alias:
            return ".".join([alias[expr.id], *reversed(parts)])
        return None

    inner = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and id(node) not in inner:
            name = dotted(node)
            if name is not None:
                used.add(name)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr" \
                and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant):
            base = dotted(node.args[0]) if not isinstance(node.args[0], ast.Name) else alias.get(node.args[0].id)
            if base is not None:
                used.add(f"{base}.{node.args[1].value}")
    return used


def _covered(name: str) -> bool:
    for e in manifest.MANIFEST:
        if e.path == name or e.path.startswith(name + ".") or name in (f"{e.path}.{a}" for a in e.attrs):
            return True
    return False


def test_every_core_name_the_boundary_uses_is_in_the_manifest():
    files = sorted(BOUNDARY.glob("*.py"))
    used = {(f.name, n) for f in files for n in _host_names_used(f)}
    assert len({name for _, name in used}) > 30, "the scan found too few core names: is it still reading nodes/comfy?"
    missing = sorted(f"{file}: {name}" for file, name in used if not _covered(name))
    assert missing == [], "add these to nodes/comfy/manifest.py:\n" + "\n".join(missing)


def test_the_scan_sees_aliases_getattr_and_from_imports():
    used = _host_names_used(BOUNDARY / "travel.py") | _host_names_used(BOUNDARY / "windows.py") \
        | _host_names_used(BOUNDARY / "basics.py")
    assert {"comfy.model_sampling.EPS", "comfy.patcher_extension.WrapperExecutor.new_class_executor",
            "comfy.context_windows.ContextHandlerABC", "latent_preview.prepare_callback",
            "comfy.ldm.wan.model.WanModel", "comfy.patcher_extension.WrappersMP.OUTER_SAMPLE"} <= used
    assert not _covered("comfy.samplers.not_listed")


# ---------------------------------------------------------------------------------------------- window view
def test_window_view_has_every_attribute_of_the_hosts_window():
    """Other packs read ``transformer_options["context_window"]`` as core's IndexListContextWindow: LongAnim's own
    view must carry all of the host's attributes and methods, with the same values for the same window."""
    core_cls = comfy.context_windows.IndexListContextWindow
    index_list, total = [4, 5, 7, 9], 12
    params = inspect.signature(core_cls).parameters
    kwargs = {k: v for k, v in {"dim": 0, "total_frames": total}.items() if k in params}
    core = core_cls(index_list=list(index_list), **kwargs)
    view = windows._window_view(list(index_list), 0, total)
    missing = sorted(set(vars(core)) - set(vars(view)))
    methods = {n for n, v in vars(core_cls).items() if callable(v) and not n.startswith("_")}
    missing += sorted(m for m in methods if not callable(getattr(view, m, None)))
    assert missing == [], f"the window view lacks what the host's IndexListContextWindow has: {missing}"
    for name, value in vars(core).items():
        assert getattr(view, name) == value, name
    full = torch.arange(12 * 3, dtype=torch.float32).reshape(12, 3)
    assert torch.equal(view.get_tensor(full), core.get_tensor(full))
