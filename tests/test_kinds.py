"""Workload kinds: a new kind is one file plus one registration, and the measuring package stands on its own.

The ``Sleep`` kind below lives in this file only: it registers itself, the worker imports this file (the cell's
settings name it, as ``--import`` names a model file), and the real runner measures it into a real store.
"""

from __future__ import annotations

import ast
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from vmibench.measure.cells import Cell, Settings, WorkerResult
from vmibench.measure.kinds import WORKLOADS, register_kind, workload_class
from vmibench.measure.rows import TimedWorkload, timed_record
from vmibench.measure.timing import TimingPolicy
from vmibench.records import OpsRecord

if TYPE_CHECKING:
    import torch

ROOT = Path(__file__).resolve().parents[1]


@register_kind
@dataclass(frozen=True)
class Sleep(TimedWorkload):
    """A trivial kind: each call sleeps ``ms`` milliseconds; its rows go to the ops table as op ``sleep``."""

    KIND: ClassVar[str] = "test-sleep"
    TABLE: ClassVar[str] = "ops"

    ms: float

    def run(self, settings: Settings, device: torch.device) -> WorkerResult:
        from vmibench.measure.steps import Step, time_step

        return time_step(lambda: Step(lambda: time.sleep(self.ms / 1e3)), settings, device)

    def record(self, settings: Settings, fields: dict[str, Any]) -> OpsRecord:
        return timed_record(OpsRecord, settings, fields, batch=1, op="sleep", op_name="sleep", seq_len=1, dim=0)


def test_a_kind_in_one_file_is_planned_run_by_real_workers_and_stored(tmp_path: Path) -> None:
    from vmibench.measure.runner import Runner
    from vmibench.store import ResultStore

    assert WORKLOADS["test-sleep"] is Sleep and workload_class("test-sleep") is Sleep
    policy = TimingPolicy(min_warmup_iters=1, min_warmup_s=0.0, min_iters=4, hard_min_iters=4, max_iters=4,
                          min_time_s=0.0, max_time_s=1.0)  # fmt: skip
    cell = Cell(Sleep(2.0), Settings(threads=1, scan_backend="", policy=policy, imports=(str(Path(__file__)),)))
    assert Cell.from_json(cell.to_json()) == cell
    with ResultStore(tmp_path / "kinds.sqlite") as store:
        summary = Runner(store, rounds=2, cell_timeout_s=120).run([cell])
        assert (summary.measured, summary.failed) == (1, 0)
        row = summary.rows[summary.keys[0]]
        assert row["status"] == "ok" and row["op"] == "sleep" and row["rounds"] == 2 and row["n_processes"] == 2
        assert row["latency_ms_median"] >= 2.0 and row["ci_method"]
        samples = store.samples("ops", [int(row["row_id"])])
    per_round = samples.groupby("round")["ms"].apply(list)
    assert len(per_round) == 2 and all(len(s) >= 2 and min(s) >= 2.0 for s in per_round)


# -- the shape of the package ---------------------------------------------------------------------------------


def _modules() -> dict[str, Path]:
    """Every module of the vmibench package by dotted name (vmibench.baselines is the checkout's baselines/)."""
    out = {}
    for folder, prefix in ((ROOT / "vmibench", "vmibench"), (ROOT / "baselines", "vmibench.baselines")):
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            out[".".join([prefix, *(parts[:-1] if parts[-1] == "__init__" else parts)])] = path
    return out


def _module_level_imports(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    """The imports a module runs when it is imported: not those in functions, nor under ``if TYPE_CHECKING``."""
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If):
            test = node.test
            if not (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING"):
                yield from _module_level_imports(node.body)
            yield from _module_level_imports(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)):
                yield from _module_level_imports(block)
        elif isinstance(node, ast.With):
            yield from _module_level_imports(node.body)


def _every_import(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import of a module: at module level, deferred into functions, and under ``if TYPE_CHECKING``."""
    for stmt in body:
        yield from (n for n in ast.walk(stmt) if isinstance(n, (ast.Import, ast.ImportFrom)))


def _imported(node: ast.Import | ast.ImportFrom, module: str, is_package: bool, known: set[str]) -> list[str]:
    """Dotted names ``node`` imports (``from a import b`` is module ``a.b`` when that is a module)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        package = (module if is_package else module.rpartition(".")[0]).split(".")
        base = ".".join([*package[: len(package) - node.level + 1], *([node.module] if node.module else [])])
    return [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]


def import_graph(
    imports: Callable[[list[ast.stmt]], Iterator[ast.Import | ast.ImportFrom]] = _module_level_imports,
    allowed: frozenset[tuple[str, str]] = frozenset(),
) -> dict[str, set[str]]:
    """module -> the vmibench modules importing it runs.  Importing ``a.b.c`` runs the packages ``a`` and ``a.b``
    too, except those the importer is inside (they are already being imported, as timm's models/__init__ is when
    its model files import ``._registry``).  ``imports`` picks a module's imports (by default those run when it is
    imported); ``allowed`` lists (module, imported module) edges left out."""
    modules = _modules()
    known = set(modules)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges = set()
        for node in imports(ast.parse(path.read_text()).body):
            for target in _imported(node, name, path.name == "__init__.py", known):
                if (name, target) in allowed:
                    continue
                parts = target.split(".")
                for i in range(1, len(parts) + 1):
                    step = ".".join(parts[:i])
                    if step in known and step != name and not name.startswith(step + "."):
                        edges.add(step)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            w = next(children, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                component = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    component.append(w)
                    if w == v:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_package_import_graph_has_no_cycle() -> None:
    graph = import_graph()
    assert len(graph) > 50 and "vmibench.measure.kinds.registry" in graph["vmibench.measure.kinds.forward"]
    assert cycles(graph) == []
    # the checker sees one when there is one
    assert cycles({**graph, "vmibench.measure.cells": {"vmibench.measure.kinds.forward"}}) != []


# The one circle deferred imports may close: a cell read from JSON looks its kind up in the registry, which
# imports the built-in kinds on first use (a plugin registry; the kinds build on vmibench.measure.cells).
DEFERRED_CIRCLES = frozenset({("vmibench.measure.cells", "vmibench.measure.kinds.registry")})


def test_no_cycle_even_with_deferred_and_type_checking_imports() -> None:
    """Counting the imports inside functions and under ``if TYPE_CHECKING`` too, the package has no import
    circle but the ones listed in DEFERRED_CIRCLES (a deferred import only postpones a circle; a TYPE_CHECKING one
    still ties the two modules' designs together)."""
    graph = import_graph(_every_import, DEFERRED_CIRCLES)
    assert "vmibench.reports.report" in graph["vmibench.resultset"]  # a deferred import is counted
    assert cycles(graph) == []
    # the exception is still needed: without it, the cells and the registry are in one circle
    circles = cycles(import_graph(_every_import))
    assert len(circles) == 1 and {"vmibench.measure.cells", "vmibench.measure.kinds.registry"} <= set(circles[0])


def test_nothing_under_measure_imports_the_planner() -> None:
    """vmibench.measure plans its own peak, bandwidth and cross-check cells: no import of vmibench.sweep at all,
    deferred ones included."""
    offenders = []
    for path in sorted((ROOT / "vmibench" / "measure").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            else:
                continue
            if any(n == "vmibench.sweep" or n.startswith("vmibench.sweep.") for n in names):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


def test_the_registry_knows_no_kind() -> None:
    """registry.py names no kind and no kind module; the kinds package imports them all."""
    text = (ROOT / "vmibench" / "measure" / "kinds" / "registry.py").read_text()
    tree = ast.parse(text)
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not {m for m in imported if m and m.startswith("vmibench.measure.kinds.")}
    assert {"forward", "maxbatch", "op", "matmul", "triad", "crosscheck"} <= set(WORKLOADS)
    for cls in WORKLOADS.values():
        assert cls.__name__ not in text
