"""The shape of the code: no import cycle inside the library (lazy imports included), no module
much over 400 lines, and scripts that import the installed package without editing sys.path."""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "syntriever"
MAX_LINES = 420  # "about 400"


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> the library modules it imports anywhere in its body (also inside functions)."""
    files = {module_name(p, package.parent): p for p in package.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # from .x import y
                    package = name.split(".")[: len(name.split(".")) - node.level + (path.stem == "__init__")]
                    base = ".".join([*package, *([base] if base else [])])
                targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            graph[name] |= {t for t in targets if t in files and t != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path ``[a, b, ..., a]``, or None."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_cycle_finder_finds_a_cycle(tmp_path: Path) -> None:
    pkg = tmp_path / "syntriever"
    (pkg / "llm").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "llm" / "__init__.py").write_text("")
    (pkg / "llm" / "batch.py").write_text("from syntriever.llm.config import LLMConfig\n")
    (pkg / "llm" / "config.py").write_text("def run():\n    from syntriever.llm import batch\n")
    (pkg / "low.py").write_text("from . import high\n")
    (pkg / "high.py").write_text("import os\n")
    graph = import_graph(pkg)
    assert "syntriever.high" in graph["syntriever.low"]  # a relative import
    cycle = find_cycle(graph)
    assert cycle is not None and set(cycle) == {"syntriever.llm.batch", "syntriever.llm.config"}


def test_library_has_no_import_cycle() -> None:
    graph = import_graph()
    assert "syntriever.llm.runner" in graph and graph["syntriever.llm.runner"]
    assert find_cycle(graph) is None, f"import cycle: {' -> '.join(find_cycle(graph) or [])}"


def test_modules_stay_short() -> None:
    long = {module_name(p): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def _scripts() -> list[Path]:
    tracked = subprocess.run(["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True)
    if tracked.returncode != 0:
        pytest.skip("not a git checkout")
    return [ROOT / f for f in tracked.stdout.split() if not f.startswith(("syntriever/", "tests/"))]


def test_scripts_do_not_edit_sys_path() -> None:
    scripts = _scripts()
    assert any(p.name == "run_pipeline.py" for p in scripts)
    offenders = [str(p.relative_to(ROOT)) for p in scripts if "sys.path" in p.read_text(encoding="utf-8")]
    assert not offenders, f"scripts editing sys.path: {offenders}"
