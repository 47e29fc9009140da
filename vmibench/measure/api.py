"""Entry points the CLI shares: validated run settings, and measure-into-the-store with the one runner."""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from vmibench.errors import UserError
from vmibench.measure.cells import Cell, Settings
from vmibench.measure.runner import CapPredictor, Progress, Runner, RunSummary
from vmibench.measure.timing import TimingPolicy
from vmibench.questions import Comparison

DTYPE_NAMES = ("fp32", "bf16", "fp16")
# Rounds (worker processes) per cell unless a preset or --rounds says otherwise: the calibration study
# (`vmibench check calibrate`) shows the t-interval over rounds at its nominal level from 3 rounds on; more
# rounds narrow it, and the adaptive phase spends them where a comparison is still open.
DEFAULT_ROUNDS = 3


def check_dtype(dtype: str) -> str:
    """Validate a ``--dtype`` name."""
    if dtype not in DTYPE_NAMES:
        raise UserError(f"unknown dtype '{dtype}': use one of {', '.join(DTYPE_NAMES)}")
    return dtype


def check_rounds(rounds: int) -> int:
    """Validate ``--rounds``."""
    if rounds < 1:
        raise UserError(f"bad --rounds {rounds}: must be a positive integer (3 is the CPU presets' default)")
    return rounds


def check_timeout(seconds: float) -> float:
    """Validate ``--cell-timeout``: a positive, finite number of seconds."""
    if not math.isfinite(seconds) or seconds <= 0:
        raise UserError(f"bad --cell-timeout {seconds}: must be a positive number of seconds")
    return seconds


def check_scan_backend(backend: str, device: str) -> str:
    """Refuse a scan backend that cannot run on ``device`` here (before any cell is measured)."""
    import importlib.util

    if backend not in ("mamba_ssm", "triton"):
        return backend
    why = ""
    if importlib.util.find_spec(backend) is None:
        why = f"the {backend} package is not installed"
    elif not device.startswith("cuda") and not (backend == "triton" and os.environ.get("TRITON_INTERPRET") == "1"):
        why = "it needs CUDA"
    if why:
        raise UserError(f"scan backend '{backend}' cannot run here ({why}): use --scan-backend auto or torch")
    return backend


def run_settings(
    *,
    device: str | None = None,
    dtype: str = "fp32",
    threads: int | None = None,
    channels_last: bool = False,
    compile_: bool = False,
    scan_backend: str = "auto",
    policy: TimingPolicy | None = None,
    min_time: float = 1.0,
    max_time: float = 10.0,
    precision: float = 0.01,
    count_flops: bool = True,
    cuda_graph: bool = False,
) -> Settings:
    """Settings shared by every cell of a run, validated (``policy`` overrides the three timing numbers)."""
    from vmibench.backends import BACKENDS
    from vmibench.env import resolve_device, usable_cores

    check_dtype(dtype)
    if scan_backend not in BACKENDS:
        raise UserError(f"unknown scan backend '{scan_backend}': use one of {', '.join(BACKENDS)}")
    if threads is not None and threads <= 0:
        raise UserError(f"bad --threads {threads}: must be a positive integer")
    if threads is not None and threads > usable_cores():
        # more threads than cores time the scheduler, not the model: such rows would be hundreds of times slow
        raise UserError(f"bad --threads {threads}: this process may use {usable_cores()} cores; give at most that")
    if policy is None:
        if not (math.isfinite(min_time) and math.isfinite(max_time)) or min_time < 0 or max_time <= 0:
            raise UserError("timing budget must satisfy 0 <= --min-time and 0 < --max-time (finite seconds)")
        if not 0 < precision < 1:
            raise UserError(f"bad --precision {precision}: must be between 0 and 1 (e.g. 0.01)")
        policy = TimingPolicy(min_time_s=min_time, max_time_s=max(max_time, min_time), rel_precision=precision)
    resolved = resolve_device(device)
    check_scan_backend(scan_backend, resolved)
    if cuda_graph and not resolved.startswith("cuda"):
        raise UserError(f"--cuda-graph needs a CUDA device, not {resolved} (it replays a captured CUDA graph)")
    return Settings(device=resolved, dtype=dtype, threads=threads or usable_cores(), channels_last=channels_last,
                    compile=compile_, scan_backend=scan_backend, policy=policy, count_flops=count_flops,
                    cuda_graph=cuda_graph)  # fmt: skip


def measure_cells(
    cells: Sequence[Cell],
    *,
    db: str | None = None,
    rounds: int = 1,
    cell_timeout_s: float = 600.0,
    force: bool = False,
    retry_failed: bool = False,
    budget_s: float | None = None,
    cap_predictor: CapPredictor | None = None,
    progress: Progress | None = None,
    with_peak: bool = True,
    stop_ladders: bool = True,
    reference_db: str | None = None,
    comparisons: Sequence[Comparison] = (),
    max_rounds: int | None = None,
    adaptive_budget_s: float | None = None,
    margin: float = 0.10,
) -> RunSummary:
    """Measure ``cells`` into the store with one :class:`Runner` (resuming), the matmul peak and the triad
    bandwidth of their environment first where the store lacks them; returns the summary with every requested
    cell's row.

    ``stop_ladders=False`` runs every cell even after a smaller size of its model failed (``vmibench latency``).
    ``reference_db`` is a store (opened read-only) whose rows count as already measured: a scaled-out job writes
    its shard and skips what the main store has.

    ``comparisons`` with ``max_rounds > rounds``: after the run, the adaptive phase
    (:func:`vmibench.measure.adaptive.settle`) tops up the cells of undecided comparisons, one round per pass, within
    ``adaptive_budget_s``; the summary's rows are the final ones.
    """
    from vmibench.measure.adaptive import settle
    from vmibench.measure.executor import LocalExecutor
    from vmibench.measure.kinds.peak import peak_cells
    from vmibench.measure.kinds.profile import ModelProfile, class_roof_cells
    from vmibench.measure.kinds.triad import bandwidth_cells
    from vmibench.store import ResultStore

    check_rounds(rounds)
    check_timeout(cell_timeout_s)
    executor = LocalExecutor(threads=max((c.settings.threads for c in cells), default=1))
    reference = ResultStore(reference_db, readonly=True) if reference_db and Path(reference_db).exists() else None
    try:
        with ResultStore(db) as store:
            if with_peak and cells:
                # a profile holds each operator class against its own roof: those are measured with the other two
                profiled = [c for c in cells if c.workload.KIND == ModelProfile.KIND]
                roofs = [*peak_cells(cells), *bandwidth_cells(cells), *class_roof_cells(profiled)]
                peaks = [replace(c, settings=replace(c.settings, policy=_PEAK_POLICY)) for c in roofs]
                Runner(store, rounds=PEAK_ROUNDS, cell_timeout_s=max(cell_timeout_s, 300.0), executor=executor,
                       reference=reference).run(peaks)  # fmt: skip

            def runner(k: int, **first: Any) -> Runner:
                return Runner(store, rounds=k, cell_timeout_s=cell_timeout_s, stop_ladders=stop_ladders,
                              progress=progress, executor=executor, reference=reference, **first)  # fmt: skip

            summary = runner(rounds, force=force, retry_failed=retry_failed, budget_s=budget_s,
                             cap_predictor=cap_predictor).run(cells)  # fmt: skip
            if comparisons and max_rounds is not None and max_rounds > rounds and not summary.not_reached:
                settled = settle(store, cells, comparisons, min_rounds=rounds, max_rounds=max_rounds,
                                 budget_s=adaptive_budget_s, runner_factory=runner, margin=margin,
                                 log=lambda m: print(m, file=sys.stderr))  # fmt: skip
                summary.adaptive_passes = settled.passes
                summary.open_comparisons = settled.open_after
                summary.rows = runner(max_rounds).stored_rows(list(dict.fromkeys(cells)), summary.keys)
            return summary
    finally:
        executor.close()
        if reference is not None:
            reference.close()


# the matmul peak and the triad are single kernels: a short measurement per process, in a few processes (a roof is
# the best process, and one process was seen to land a third below it)
PEAK_ROUNDS = 3
_PEAK_POLICY = TimingPolicy(min_warmup_iters=2, min_warmup_s=0.2, min_iters=5, min_time_s=0.5, max_time_s=3.0)
