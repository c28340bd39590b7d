"""The layout's rules, checked on the source: layers, no import circles, no benchmark code in the product."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("app", "training")


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Each product module -> the product modules it imports (at the top or inside a function)."""
    modules = {_module(p): p for package in PACKAGES for p in (ROOT / package).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_module_of_the_product_imports_one_that_imports_it_back():
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_training_is_a_library_that_never_imports_the_app():
    graph = import_graph()
    assert not [
        (m, t) for m, targets in graph.items() if m.startswith("training") for t in targets if t.startswith("app")
    ]


def test_the_product_loads_no_benchmark_or_experiment_code():
    code = (
        "import sys, app, training, app.web, app.worker, app.cli, app.memory.consolidation, app.policy.rounds;"
        "print([m for m in sys.modules if m.split('.')[0] in ('benchmarks', 'scripts', 'tests')])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True, timeout=300
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_the_training_subpackages_depend_on_each_other_one_way():
    """seal, memory, routing, policy, language: no two import each other, even through a third."""
    subpackage = {}
    for module, targets in import_graph().items():
        if module.startswith("training.") and module.count(".") >= 2:
            mine = ".".join(module.split(".")[:2])
            subpackage.setdefault(mine, set())
            subpackage[mine] |= {
                ".".join(t.split(".")[:2]) for t in targets if t.startswith("training.") and t.count(".") >= 2
            } - {mine}
    for targets in list(subpackage.values()):
        for target in targets:
            subpackage.setdefault(target, set())
    assert len(subpackage) >= 5 and cycles(subpackage) == []


def test_a_deployer_has_at_most_twenty_settings():
    from app.settings import Settings

    assert len(Settings.model_fields) <= 20, sorted(Settings.model_fields)


def test_docs_hold_no_weights_and_no_internal_process_words():
    docs = [p for p in (ROOT / "docs").rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in docs) <= 5 * 1024 * 1024
    assert not [p for p in docs if p.suffix in {".safetensors", ".bin", ".pt", ".pkl"}]
    pattern = re.compile(r"\bsessions? [0-9]+", re.IGNORECASE)
    texts = [ROOT / "README.md", *docs, *(p for d in ("app", "training", "tests") for p in (ROOT / d).rglob("*.py"))]
    found = [str(p) for p in texts if p.suffix in {".md", ".py", ".json"} and pattern.search(p.read_text("utf-8"))]
    assert found == []
