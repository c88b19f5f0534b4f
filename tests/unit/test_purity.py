"""nodes/algorithms imports nothing from ComfyUI (house rule 1), checked on the source."""
import ast
import pathlib

ALGORITHMS = pathlib.Path(__file__).resolve().parents[2] / "nodes" / "algorithms"
BANNED = {"comfy", "comfy_api", "comfy_extras", "folder_paths", "server", "nodes", "execution", "latent_preview"}


def test_algorithms_import_no_comfyui():
    files = sorted(ALGORITHMS.glob("*.py"))
    assert files, "no algorithm modules found"
    offenders = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in BANNED]
    assert not offenders, offenders


def test_algorithms_import_without_comfyui():
    import importlib

    for path in sorted(ALGORITHMS.glob("*.py")):
        if path.stem != "__init__":
            importlib.import_module(f"longanim.nodes.algorithms.{path.stem}")
