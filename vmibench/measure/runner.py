"""Runner: plans cells, starts one worker process per cell, turns every outcome into a record.

A cell that runs out of memory, raises, crashes the interpreter or exceeds its time budget becomes a row with
``status`` in ``oom | error | crashed | timeout`` and a one-line ``error``; the run goes on with the next cell.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from vmibench.env import Environment, capture, utc_now
from vmibench.measure.timing import summarize
from vmibench.measure.worker import CellSpec, op_row_label
from vmibench.records import STATUS_CRASHED, STATUS_OK, STATUS_TIMEOUT, LatencyRecord, OpsRecord, TimedRecord
from vmibench.resolution import label


def worker_env(threads: int) -> dict[str, str]:
    """Environment of a worker: thread counts fixed before OpenMP/MKL initialise."""
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(threads)
    env.setdefault("PYTHONWARNINGS", "ignore")
    return env


def run_worker(spec: CellSpec, timeout_s: float) -> dict[str, Any]:
    """Run one worker process; returns its JSON result or a synthesized failure result."""
    with tempfile.TemporaryDirectory(prefix="vmibench-cell-") as tmp:
        spec_path, result_path = Path(tmp, "spec.json"), Path(tmp, "result.json")
        spec_path.write_text(spec.to_json())
        cmd = [sys.executable, "-m", "vmibench.measure.worker", str(spec_path), str(result_path)]
        try:
            proc = subprocess.run(cmd, env=worker_env(spec.threads), capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return {"status": STATUS_TIMEOUT, "error": f"cell exceeded its budget of {timeout_s:.0f}s (--cell-timeout)"}
        if result_path.exists():
            return json.loads(result_path.read_text())
        return {"status": STATUS_CRASHED, "error": _crash_message(proc.returncode, proc.stderr)}


def _crash_message(returncode: int, stderr: str) -> str:
    if returncode < 0:
        sig = signal.Signals(-returncode).name
        hint = " (likely the out-of-memory killer)" if sig == "SIGKILL" else ""
        return f"worker killed by {sig}{hint}"
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    return f"worker exited with status {returncode}: {lines[-1][:300] if lines else 'no message'}"


def to_record(spec: CellSpec, result: dict[str, Any], fallback_env: Environment | None = None) -> TimedRecord:
    """Turn a worker result into a typed row (settings from the spec, numbers from the result).

    A worker that died before reporting its environment is described by ``fallback_env`` (default: the
    runner's own CPU environment).
    """
    env = Environment(**result["env"]) if "env" in result else (fallback_env or capture("cpu"))
    common: dict[str, Any] = dict(
        timestamp=utc_now(),
        env=env,
        env_key=env.key(spec.device),
        batch=spec.batch,
        device=spec.device,
        dtype=spec.dtype,
        threads=spec.threads,
        channels_last=spec.channels_last,
        compile=spec.compile,
        status=result.get("status", STATUS_CRASHED),
        error=result.get("error", ""),
        params_m=result.get("params_m"),
        gmacs=result.get("gmacs"),
        gflops=result.get("gflops"),
        scan_backend=result.get("scan_backend", ""),
        timer=result.get("timer", ""),
        interop_threads=result.get("interop_threads"),
        wall_s=result.get("wall_s"),
    )
    rec: TimedRecord
    if spec.mode == "op":
        from vmibench.ops.mixers import OPS

        info = OPS.get(spec.op)
        rec = OpsRecord(
            **common,
            op=op_row_label(spec.op, common["scan_backend"]),
            op_name=spec.op,
            seq_len=spec.seq_len,
            dim=spec.dim,
            expected_complexity=info.expected_complexity if info else "",
            reconstruction=bool(info and info.reconstruction),
        )
    else:
        hw = (spec.height, spec.width)
        rec = LatencyRecord(**common, model=spec.model, res=label(hw), height=hw[0], width=hw[1])
    _fill_timing(rec, result)
    return rec


def _fill_timing(rec: TimedRecord, result: dict[str, Any]) -> None:
    extra = {k: result[k] for k in ("flops_error",) if k in result}
    rec.extra = json.dumps(extra) if extra else ""
    stats, mem = result.get("stats"), result.get("memory")
    medians = result.get("process_medians_ms") or ([stats["median_ms"]] if stats else [])
    rec.n_processes = max(1, len(medians))
    if len(medians) > 1:
        rec.process_spread = (max(medians) - min(medians)) / stats["median_ms"]
    if stats:
        rec.latency_ms_median = stats["median_ms"]
        rec.latency_ms_iqr = stats["iqr_ms"]
        rec.latency_ms_p10 = stats["p10_ms"]
        rec.latency_ms_p90 = stats["p90_ms"]
        rec.latency_ms_mean = stats["mean_ms"]
        rec.latency_ms_min = stats["min_ms"]
        rec.n_iters = stats["n"]
        rec.rel_se = stats["rel_se"]
        rec.converged = stats["converged"]
        rec.warmup_iters = stats["warmup_iters"]
        rec.throughput_ips = rec.batch / (stats["median_ms"] / 1e3)
    if mem:
        rec.peak_mem_mb = mem["peak_mb"]
        rec.peak_mem_total_mb = mem["total_mb"]
        rec.peak_mem_reserved_mb = mem["reserved_mb"]
        rec.mem_method = mem["method"]


def run_cell(spec: CellSpec, timeout_s: float) -> dict[str, Any]:
    """Run ``spec.processes`` workers for one cell and pool their samples (pyperf's answer to the spread
    between processes: memory layout and thread placement differ from one process to the next).

    The pooled result keeps every per-call sample, the largest memory peak, and each process's median
    (``process_medians_ms``).  If any process fails, its failure is the cell's result.
    """
    results = []
    for i in range(max(1, spec.processes)):
        # FLOPs do not change between processes: count them once
        result = run_worker(spec if i == 0 else replace(spec, count_flops=False), timeout_s)
        if result.get("status") != STATUS_OK or "stats" not in result:
            return result
        results.append(result)
    if len(results) == 1:
        return results[0]
    stats = [r["stats"] for r in results]
    pooled = summarize(
        [x for st in stats for x in st["samples_ms"]],
        converged=all(st["converged"] for st in stats),
        warmup_iters=min(st["warmup_iters"] for st in stats),
        warmup_s=min(st["warmup_s"] for st in stats),
    )
    merged = dict(results[0])  # keeps the first process's FLOPs count
    merged["stats"] = asdict(pooled)
    merged["memory"] = max((r["memory"] for r in results), key=lambda m: m["peak_mb"])
    merged["process_medians_ms"] = [st["median_ms"] for st in stats]
    merged["wall_s"] = sum(r.get("wall_s", 0.0) for r in results)
    return merged


def measure_cells(
    specs: Iterable[CellSpec],
    *,
    cell_timeout_s: float = 600.0,
    on_record: Callable[[TimedRecord], None] | None = None,
) -> list[TimedRecord]:
    """Measure each cell in its own worker(s); ``on_record`` sees each row as soon as it exists (store it there)."""
    records = []
    for spec in specs:
        rec = to_record(spec, run_cell(spec, cell_timeout_s))
        if on_record is not None:
            on_record(rec)
        records.append(rec)
    return records


def plan_cells(
    models: list[str],
    resolutions: list[tuple[int, int]],
    batches: list[int],
    base: CellSpec,
) -> list[CellSpec]:
    """The cross product models x resolutions x batches, validated before anything runs.

    Raises :class:`vmibench.errors.UserError` for an unknown model or a resolution a model does not accept, so a
    bad argument fails at once instead of after an hour of measurements.
    """
    from vmibench.registry import resolve

    for name in models:
        info = resolve(name).info
        for hw in resolutions:
            info.check_resolution(hw)
    return [
        replace(base, model=m, height=h, width=w, batch=b) for m in models for (h, w) in resolutions for b in batches
    ]
