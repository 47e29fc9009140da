"""The CLI package's shape: `vmibench/cli/__init__.py` builds the app from one module per command group; no
import circle among them, no module-level torch / timm (start-up stays light), no other module's private names."""

from __future__ import annotations

import ast
from pathlib import Path

CLI = Path(__file__).resolve().parents[1] / "vmibench" / "cli"


def module_imports() -> dict[str, list[tuple[str, str | None, bool]]]:
    """Per module of the package: (imported module, imported name or None, at module level) of every import."""
    found = {}
    for path in CLI.glob("*.py"):
        tree = ast.parse(path.read_text())
        top = {id(node) for node in tree.body}
        rows: list[tuple[str, str | None, bool]] = []
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                rows += [(alias.name, None, id(node) in top) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                rows += [(node.module, alias.name, id(node) in top) for alias in node.names]
        found["vmibench.cli" if path.stem == "__init__" else f"vmibench.cli.{path.stem}"] = rows
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every back edge of a depth-first walk, as the circle it closes."""
    state: dict[str, str] = {}
    found: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for dep in sorted(graph[node]):
            if state.get(dep) == "open":
                found.append([*path[path.index(dep) :], dep])
            elif dep not in state:
                visit(dep, [*path, dep])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def test_no_import_circle_no_torch_at_import_no_private_names() -> None:
    imports = module_imports()
    assert {"vmibench.cli", "vmibench.cli.options", "vmibench.cli.progress", "vmibench.cli.accuracy"} <= set(imports)
    modules = set(imports)  # `from vmibench.cli import accuracy` imports the module vmibench.cli.accuracy
    graph = {mod: {f"{t}.{n}" if f"{t}.{n}" in modules else t for t, n, _ in rows} & modules
             for mod, rows in imports.items()}  # fmt: skip
    assert graph["vmibench.cli.options"] == set(), "options is the bottom layer"
    assert cycles(graph) == []
    heavy = [(mod, target) for mod, rows in imports.items() for target, _, top in rows
             if top and target.split(".")[0] in ("torch", "timm")]  # fmt: skip
    assert heavy == []
    private = [(mod, f"{target}.{name}") for mod, rows in imports.items() for target, name, _ in rows
               if name and name.startswith("_") and not name.startswith("__")]  # fmt: skip
    assert private == []


def test_the_circle_finder_finds_circles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}
    assert cycles(graph) == [["a", "b", "c", "a"]]
