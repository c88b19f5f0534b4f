"""The layers of the pack, checked on the source (house rules 1 and 3).

- ``nodes/algorithms`` imports nothing from ComfyUI and nothing above it;
- node modules (``nodes/*.py``) import no ComfyUI module directly: only the boundary ``nodes/comfy/`` does;
- imports run one way, node modules -> ``nodes/comfy/`` -> ``nodes/algorithms/``, with no circle.
"""
import ast
import importlib
import pathlib

NODES = pathlib.Path(__file__).resolve().parents[2] / "nodes"
ALGORITHMS = NODES / "algorithms"
BOUNDARY = NODES / "comfy"
HOST = {"comfy", "comfy_api", "comfy_extras", "comfy_execution", "folder_paths", "server", "nodes", "execution",
        "latent_preview"}
LAYER = {"node": 0, "boundary": 1, "algorithm": 2}  # an import may only go to the same or a higher number


def _imports(path: pathlib.Path):
    """(absolute module names, relative imports as (level, module, names)) of one file, anywhere in it."""
    absolute, relative = [], []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            absolute += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module:
                absolute.append(node.module)
            elif node.level:
                relative.append((node.level, node.module, [a.name for a in node.names]))
    return absolute, relative


def _host_imports(files) -> list[str]:
    out = []
    for path in files:
        absolute, _ = _imports(path)
        out += [f"{path.relative_to(NODES)}: {n}" for n in absolute if n.split(".")[0] in HOST]
    return out


def test_algorithms_import_no_comfyui():
    files = sorted(ALGORITHMS.glob("*.py"))
    assert files, "no algorithm modules found"
    offenders = _host_imports(files)
    for path in files:  # nor anything above them (node modules, the boundary)
        offenders += [f"{path.name}: {'.' * level}{module or ''}" for level, module, _ in _imports(path)[1]
                      if level > 1]
    assert not offenders, offenders


def test_algorithms_import_without_comfyui():
    for path in sorted(ALGORITHMS.glob("*.py")):
        if path.stem != "__init__":
            importlib.import_module(f"longanim.nodes.algorithms.{path.stem}")


def test_node_modules_import_no_comfyui_directly():
    files = sorted(NODES.glob("*.py"))
    assert len(files) > 5, "no node modules found"
    offenders = _host_imports(files)
    assert not offenders, f"node modules reach ComfyUI through nodes/comfy/ only: {offenders}"


# ---------------------------------------------------------------------------------------------- import graph
def _module_of(path: pathlib.Path) -> str:
    rel = path.relative_to(NODES).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts) or "__init__"


def _layer(module: str) -> str:
    if module.startswith("algorithms"):
        return "algorithm"
    if module.startswith("comfy"):
        return "boundary"
    return "node"


def import_graph() -> dict[str, set[str]]:
    """Pack-internal imports between the modules of ``nodes/``: ``{"window_nodes": {"comfy.windows", ...}}``."""
    modules = {_module_of(p): p for p in NODES.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        package = module.split(".")[:-1] if path.name != "__init__.py" else module.split(".")
        if module == "__init__":
            package = []
        for level, target, names in _imports(path)[1]:
            base = package[:len(package) - (level - 1)] if level > 1 else package
            stem = base + (target.split(".") if target else [])
            candidates = [".".join(stem + [n]) for n in names] + [".".join(stem)]
            for c in candidates:
                if c in modules and c != module:
                    graph[module].add(c)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One circle of imports (``[a, b, ..., a]``), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str):
        state[m] = 1
        stack.append(m)
        for n in sorted(graph.get(m, ())):
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state:
                found = visit(n)
                if found:
                    return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state:
            found = visit(m)
            if found:
                return found
    return None


def test_cycle_finder_finds_a_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_import_graph_is_read():
    graph = import_graph()
    assert "comfy.windows" in graph["window_nodes"]
    assert "comfy.window_options" in graph["comfy.windows"]
    assert "algorithms.context_schedule" in graph["comfy.windows"]
    assert "comfy.basics" in graph["comfy.refine"]


def test_imports_run_one_way_without_a_circle():
    graph = import_graph()
    cycle = find_cycle(graph)
    assert cycle is None, f"import circle: {' -> '.join(cycle)}"
    upward = sorted(f"{m} -> {n}" for m, targets in graph.items() for n in targets
                    if LAYER[_layer(n)] < LAYER[_layer(m)])
    assert upward == [], f"imports must run node modules -> nodes/comfy -> nodes/algorithms: {upward}"
