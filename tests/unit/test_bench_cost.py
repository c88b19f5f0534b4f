"""bench_trained.py's cost column is counted, not computed: every graph it samples carries the test pack's
evaluation counter on the loaded model, and no method carries a cost formula."""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests" / "tools"))
import bench_trained  # noqa: E402


def _counted_loader(prompt: dict) -> bool:
    """The counter's input is a loader and every other node that takes the loader's model goes through it."""
    loaders = {nid for nid, n in prompt.items() if n["class_type"] == "UNETLoader"}
    counters = [n for n in prompt.values() if n["class_type"] == "TinyTestCountEvaluations"]
    if not counters or any(n["inputs"]["model"][0] not in loaders for n in counters):
        return False
    return not any(v[0] in loaders for n in prompt.values() if n["class_type"] != "TinyTestCountEvaluations"
                   for v in n["inputs"].values() if isinstance(v, list) and len(v) == 2)


def test_every_bench_graph_counts_the_model_calls():
    for method, build in bench_trained.METHODS.items():
        assert build is None or callable(build), f"{method}: a method is a graph builder, not a cost formula"
        assert _counted_loader(bench_trained.graph(method, 64, 0, "red blue", 12, "t")), method
    for method in bench_trained.IMAGE_METHODS:
        assert _counted_loader(bench_trained.image_graph(method, 16, 0, "red blue", 20, "t")), method
