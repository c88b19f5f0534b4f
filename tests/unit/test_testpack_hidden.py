"""The test-only node pack registers its node only in servers the project's harness starts."""
import importlib.util
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _load(monkeypatch, value):
    if value is None:
        monkeypatch.delenv("LONGANIM_TESTPACK", raising=False)
    else:
        monkeypatch.setenv("LONGANIM_TESTPACK", value)
    path = ROOT / "tests" / "testpack" / "__init__.py"
    spec = importlib.util.spec_from_file_location("longanim_testpack_probe", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_test_node_is_hidden_from_a_comfyui_started_by_hand(monkeypatch):
    assert _load(monkeypatch, None).NODE_CLASS_MAPPINGS == {}
    assert _load(monkeypatch, "0").NODE_CLASS_MAPPINGS == {}
    assert list(_load(monkeypatch, "1").NODE_CLASS_MAPPINGS) == ["TinyTestConditioning", "TinyTestCountEvaluations",
                                                              "TinyTestSecondCPUDevice"]


def test_the_server_harness_enables_it():
    assert 'LONGANIM_TESTPACK="1"' in (ROOT / "tests" / "tools" / "comfy_client.py").read_text()
