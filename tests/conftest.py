"""Shared pytest setup.

The repo root is a ComfyUI custom-node package (it has an ``__init__.py``). Tests import it under the
alias ``longanim`` without putting the repo root on ``sys.path`` (``import nodes`` must stay ComfyUI's).
"""
import importlib.util
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _register_alias() -> None:
    if "longanim" in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(
        "longanim", ROOT / "__init__.py", submodule_search_locations=[str(ROOT)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["longanim"] = module
    spec.loader.exec_module(module)


_register_alias()


@pytest.fixture
def generator():
    g = torch_generator(1234)
    return g


def torch_generator(seed: int):
    import torch

    g = torch.Generator(device="cpu")
    g.manual_seed(seed)
    return g
