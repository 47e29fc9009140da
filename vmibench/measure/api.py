"""Entry points the CLI and the sweep share: validated cell settings and measure-then-store loops."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from vmibench.env import resolve_device, usable_cores
from vmibench.errors import UserError
from vmibench.measure.runner import measure_cells, plan_cells
from vmibench.measure.timing import TimingPolicy
from vmibench.measure.worker import DTYPES, CellSpec
from vmibench.records import TimedRecord

Tracker = Callable[[Iterable[Any], int, str, Callable[[Any], str]], Iterator[Any]]


def check_dtype(dtype: str) -> str:
    """Validate a ``--dtype`` name."""
    if dtype not in DTYPES:
        raise UserError(f"unknown dtype '{dtype}': use one of {', '.join(DTYPES)}")
    return dtype


def base_spec(
    *,
    device: str | None = None,
    dtype: str = "fp32",
    threads: int | None = None,
    channels_last: bool = False,
    compile_: bool = False,
    scan_backend: str = "auto",
    min_time: float = 1.0,
    max_time: float = 10.0,
    precision: float = 0.01,
    count_flops: bool = True,
    processes: int = 1,
) -> CellSpec:
    """Settings shared by every cell of a run (model, size and batch are filled in per cell)."""
    from vmibench.ops import BACKENDS

    check_dtype(dtype)
    if scan_backend not in BACKENDS:
        raise UserError(f"unknown scan backend '{scan_backend}': use one of {', '.join(BACKENDS)}")
    if threads is not None and threads <= 0:
        raise UserError(f"bad --threads {threads}: must be a positive integer")
    if processes <= 0:
        raise UserError(f"bad --processes {processes}: must be a positive integer")
    if min_time < 0 or max_time <= 0 or not 0 < precision < 1:
        raise UserError("timing budget must satisfy 0 <= --min-time, 0 < --max-time and 0 < --precision < 1")
    policy = TimingPolicy(min_time_s=min_time, max_time_s=max(max_time, min_time), rel_precision=precision)
    return CellSpec(
        model="",
        height=0,
        width=0,
        device=resolve_device(device),
        dtype=dtype,
        threads=threads or usable_cores(),
        channels_last=channels_last,
        compile=compile_,
        scan_backend=scan_backend,
        policy=policy,
        count_flops=count_flops,
        processes=processes,
    )


def run_and_store(
    models: list[str],
    resolutions: list[tuple[int, int]],
    batches: list[int],
    base: CellSpec,
    *,
    db: str | None = None,
    cell_timeout: float = 600.0,
    track: Tracker | None = None,
    skip: Callable[[CellSpec], bool] | None = None,
) -> list[TimedRecord]:
    """Validate the grid, then measure each cell in a worker and store each row as soon as it exists.

    ``skip(spec)`` drops cells (resume logic); ``track`` wraps the cell iterator with a progress display.
    """
    from vmibench.store import ResultStore

    specs = [s for s in plan_cells(models, resolutions, batches, base) if skip is None or not skip(s)]
    cells: Iterable[CellSpec] = specs
    if track is not None:
        cells = track(specs, len(specs), "measuring", lambda s: f"{s.model} {s.height}x{s.width} b{s.batch}")
    with ResultStore(db) as store:
        return measure_cells(cells, cell_timeout_s=cell_timeout, on_record=store.add)
