"""Sweeps: models x resolutions x batches x dtypes, and token mixers x sequence lengths, into the store.

Both are resumable: a cell already stored for the same environment (``env_key``: machine, libraries, vmibench
commit) and the same settings is skipped unless ``force``.  Along a resolution (or sequence-length) ladder a
cell that ran out of memory or time stops the larger ones of that line: they are stored as ``skipped`` rows
saying why, so a report shows where each model stopped instead of silently omitting it.  Each sweep first
measures the device's dense-matmul peak (the utilisation denominator) if the store lacks it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from vmibench.env import capture, utc_now
from vmibench.errors import UserError
from vmibench.measure.api import Tracker
from vmibench.measure.runner import plan_cells, run_cell, run_worker, to_record
from vmibench.measure.timing import TimingPolicy
from vmibench.measure.worker import CellSpec, cell_scan_backend, op_row_label
from vmibench.records import (
    STATUS_OK,
    STATUS_OOM,
    STATUS_SKIPPED,
    STATUS_TIMEOUT,
    OpsRecord,
    PeakRecord,
    TimedRecord,
)
from vmibench.resolution import label
from vmibench.store import ResultStore

GPU_LADDER = [(224, 224), (512, 512), (1024, 1024), (1536, 1536), (2048, 2048)]
# One model per family, the sizes the paper compares at (Tiny / ~1 GMAC class) plus DeiT-T as softmax reference.
REPRESENTATIVE = ["vminet_t", "vim_t", "vmamba_t", "effvmamba_t", "mlla_t", "flatten_swin_t", "deit_t", "swin_t"]
OPS_SEQ = [256, 1024, 4096, 16384, 65536]


@dataclass(frozen=True)
class Group:
    """One block of a sweep: every combination of these models, resolutions, batches and dtypes."""

    models: tuple[str, ...] | None  # None = every registered model
    resolutions: tuple[tuple[int, int], ...]
    batches: tuple[int, ...] = (1,)
    dtypes: tuple[str, ...] = ("fp32",)


@dataclass(frozen=True)
class Preset:
    """A named sweep: model groups, a token-mixer sweep, and the timing budgets for both."""

    name: str
    description: str
    groups: tuple[Group, ...]
    policy: TimingPolicy
    cell_timeout_s: float
    ops: tuple[str, ...] | None = None  # None = every op
    seq_lens: tuple[int, ...] = tuple(OPS_SEQ)
    op_dim: int = 64
    op_batch: int = 1
    op_dtypes: tuple[str, ...] = ("fp32",)
    time_cap_s: float = 5.0
    mem_cap_mb: float = 4096.0
    threads: int | None = None  # None = every usable core
    processes: int = 1


PRESETS: dict[str, Preset] = {
    "cpu-default": Preset(
        name="cpu-default",
        description="every registered model at 224, batch 1, fp32; a ladder 224/512/768/1024 for one model per family "
        "and the softmax references; token mixers at L = 256 ... 65536 (dim 64); 1 thread per worker and 2 "
        "worker processes per cell (on a shared 2-core machine, 2-thread timings of one cell varied by up to a "
        "third between processes); about 20 min on 2 cores",
        groups=(
            Group(models=None, resolutions=((224, 224),)),
            Group(models=tuple(REPRESENTATIVE), resolutions=((512, 512), (768, 768), (1024, 1024))),
        ),
        policy=TimingPolicy(
            min_warmup_iters=2,
            min_warmup_s=0.2,
            min_iters=5,
            min_time_s=0.5,
            max_time_s=2.0,
            rel_precision=0.02,
            max_warmup_s=4.0,
        ),
        cell_timeout_s=300.0,
        time_cap_s=8.0,
        mem_cap_mb=6144.0,
        threads=1,
        processes=2,
    ),
    "gpu-default": Preset(
        name="gpu-default",
        description="every registered model at 224 ... 2048, batch 1 and a throughput batch (64, at 224 and "
        "512), fp32 and bf16; token mixers up to L = 2^18 in fp32 and bf16",
        groups=(
            Group(models=None, resolutions=tuple(GPU_LADDER), batches=(1,), dtypes=("fp32", "bf16")),
            Group(models=None, resolutions=((224, 224), (512, 512)), batches=(64,), dtypes=("fp32", "bf16")),
        ),
        policy=TimingPolicy(
            min_warmup_iters=3,
            min_warmup_s=0.2,
            min_iters=10,
            min_time_s=0.3,
            max_time_s=2.0,
            rel_precision=0.01,
            max_warmup_s=20.0,
        ),
        cell_timeout_s=120.0,
        seq_lens=(256, 1024, 4096, 16384, 65536, 262144),
        op_dim=256,
        op_dtypes=("fp32", "bf16"),
        time_cap_s=2.0,
        mem_cap_mb=60_000.0,
    ),
}


def get_preset(name: str) -> Preset:
    """Preset by name, or :class:`UserError` listing the valid ones."""
    if name not in PRESETS:
        raise UserError(f"unknown preset '{name}': use one of {', '.join(PRESETS)}")
    return PRESETS[name]


# -- resume / skip -----------------------------------------------------------------------------------------


def _settings_key(spec: CellSpec, scan_backend: str) -> dict[str, Any]:
    return {
        "device": spec.device,
        "dtype": spec.dtype,
        "threads": spec.threads,
        "batch": spec.batch,
        "channels_last": int(spec.channels_last),
        "compile": int(spec.compile),
        "scan_backend": scan_backend,
    }


def _done(store: ResultStore, table: str, env_key: str, retry_failed: bool) -> set[tuple[Any, ...]]:
    """Keys of cells stored for this environment (failures count as done unless ``retry_failed``)."""
    frame = store.read(table, {"env_key": env_key})
    if frame.empty:
        return set()
    if retry_failed:
        frame = frame[frame["status"].isin([STATUS_OK, STATUS_OOM, STATUS_SKIPPED])]
    ident = ["model", "res"] if table == "latency" else ["op", "seq_len", "dim"]
    cols = [*ident, "device", "dtype", "threads", "batch", "channels_last", "compile", "scan_backend"]
    return {tuple(_norm(v) for v in row) for row in frame[cols].itertuples(index=False)}


def _norm(value: Any) -> Any:
    # SQLite hands back bools as 0/1 and numbers as numpy scalars: compare on plain Python values.
    return value.item() if hasattr(value, "item") else value


# -- matmul peak ------------------------------------------------------------------------------------------


def ensure_peak(store: ResultStore, spec: CellSpec, *, n: int | None = None, force: bool = False) -> PeakRecord | None:
    """Measure (once per environment, dtype and thread count) the dense-matmul GFLOP/s the device reaches."""
    env = capture(spec.device)
    key = env.key(spec.device)
    where = {"env_key": key, "device": spec.device, "dtype": spec.dtype, "threads": spec.threads, "status": STATUS_OK}
    if not force and store.exists(PeakRecord.TABLE, where):
        return None
    size = n or (8192 if spec.device.startswith("cuda") else 2048)
    cell = replace(spec, mode="matmul", matmul_n=size, count_flops=False, model="", height=0, width=0)
    result = run_worker(cell, timeout_s=300)
    rec = PeakRecord(
        timestamp=utc_now(), env=env, env_key=key, device=spec.device, dtype=spec.dtype, threads=spec.threads,
        matmul_n=size, status=result.get("status", "crashed"), error=result.get("error", ""),
    )  # fmt: skip
    stats = result.get("stats")
    if stats:
        rec.latency_ms_median, rec.n_iters = stats["median_ms"], stats["n"]
        rec.peak_gflops = 2 * size**3 / (stats["median_ms"] / 1e3) / 1e9
    store.add(rec)
    return rec


# -- model sweep -------------------------------------------------------------------------------------------


@dataclass
class SweepSummary:
    """What a sweep did: counts by outcome."""

    measured: int = 0
    skipped_existing: int = 0
    skipped_by_cap: int = 0
    failed: int = 0
    not_reached: int = 0  # cells left for a later (resumed) run when the sweep's time budget ran out
    records: list[TimedRecord] = field(default_factory=list)


def expand_groups(groups: Iterable[Group], base: CellSpec) -> list[CellSpec]:
    """All cells of ``groups`` (validated), ordered so each model's resolutions ascend (for the OOM ladder)."""
    from vmibench.registry import list_models

    everyone = tuple(m.name for m in list_models())
    cells: list[CellSpec] = []
    seen: set[tuple[Any, ...]] = set()
    for group in groups:
        for dtype in group.dtypes:
            planned = plan_cells(
                list(group.models or everyone), list(group.resolutions), list(group.batches), replace(base, dtype=dtype)
            )
            for spec in planned:
                key = (spec.model, spec.height, spec.width, spec.batch, spec.dtype)
                if key not in seen:
                    seen.add(key)
                    cells.append(spec)
    cells.sort(key=lambda s: (s.dtype, s.batch, s.model, s.height * s.width))
    return cells


def _line(spec: CellSpec) -> tuple[Any, ...]:
    """Cells on one ladder share everything but their size."""
    return (spec.model or spec.op, spec.scan_backend, spec.batch, spec.dtype)


def _cell_key(spec: CellSpec) -> tuple[Any, ...]:
    """How a cell is identified in the store (see :func:`_done`): what it measures plus its settings."""
    backend = cell_scan_backend(spec)
    if spec.mode == "op":
        ident: tuple[Any, ...] = (op_row_label(spec.op, backend), spec.seq_len, spec.dim)
    else:
        ident = (spec.model, label((spec.height, spec.width)))
    return (*ident, *_settings_key(spec, backend).values())


def _resume_and_run(
    cells: list[CellSpec],
    table: str,
    *,
    db: str | None,
    force: bool,
    retry_failed: bool,
    cell_timeout_s: float,
    track: Tracker | None,
    predict_over_cap: Callable[[CellSpec, TimedRecord], str] | None = None,
    budget_s: float | None = None,
) -> SweepSummary:
    """Measure the matmul peak if missing, drop cells already stored for this environment, run the rest."""
    summary = SweepSummary()
    if not cells:
        return summary
    with ResultStore(db) as store:
        for dtype in sorted({c.dtype for c in cells}):
            ensure_peak(store, next(c for c in cells if c.dtype == dtype), force=force)
        env_key = capture(cells[0].device).key(cells[0].device)
        done = set() if force else _done(store, table, env_key, retry_failed)
        todo = [spec for spec in cells if _cell_key(spec) not in done]
        summary.skipped_existing = len(cells) - len(todo)
        deadline = None if budget_s is None else time.monotonic() + budget_s
        _run_ladders(todo, store, summary, cell_timeout_s, track, _describe, predict_over_cap, deadline)
    return summary


def _describe(spec: CellSpec) -> str:
    return f"{spec.op} L={spec.seq_len}" if spec.mode == "op" else f"{spec.model} {spec.height}x{spec.width}"


def run_sweep(
    cells: list[CellSpec],
    *,
    db: str | None = None,
    force: bool = False,
    retry_failed: bool = False,
    cell_timeout_s: float = 600.0,
    track: Tracker | None = None,
    budget_s: float | None = None,
) -> SweepSummary:
    """Measure ``cells`` (from :func:`expand_groups`) into the store, resuming and stopping ladders on OOM.

    ``budget_s`` bounds the whole sweep's wall time (no cell starts after it; rerun to resume).
    """
    return _resume_and_run(cells, "latency", db=db, force=force, retry_failed=retry_failed,
                           cell_timeout_s=cell_timeout_s, track=track, budget_s=budget_s)  # fmt: skip


def _run_ladders(
    todo: list[CellSpec],
    store: ResultStore,
    summary: SweepSummary,
    cell_timeout_s: float,
    track: Tracker | None,
    describe: Callable[[CellSpec], str],
    predict_over_cap: Callable[[CellSpec, TimedRecord], str] | None,
    deadline: float | None = None,
) -> None:
    """Run cells in order; after a failure (or a cap prediction) the rest of that ladder becomes skipped rows.

    Past ``deadline`` (time.monotonic) no new cell starts; those cells get no row, so a resumed sweep runs them.
    """
    stopped: dict[tuple[Any, ...], str] = {}
    if not todo:
        return
    env = capture(todo[0].device)
    cells: Iterator[CellSpec] = iter(todo)
    if track is not None:
        cells = iter(track(todo, len(todo), "measuring", describe))
    for i, spec in enumerate(cells):
        if deadline is not None and time.monotonic() > deadline:
            summary.not_reached = len(todo) - i
            break
        line = _line(spec)
        if line in stopped:
            skipped = {"status": STATUS_SKIPPED, "error": stopped[line], "scan_backend": cell_scan_backend(spec)}
            rec = to_record(spec, skipped, env)
            summary.skipped_by_cap += 1
        else:
            rec = to_record(spec, run_cell(spec, cell_timeout_s), env)
            if rec.status == STATUS_OK:
                summary.measured += 1
                reason = predict_over_cap(spec, rec) if predict_over_cap else ""
                if reason:
                    stopped[line] = reason
            else:
                summary.failed += 1
                if rec.status in (STATUS_OOM, STATUS_TIMEOUT, "crashed"):
                    stopped[line] = f"not run: {rec.status} at a smaller size ({describe(spec)})"
        store.add(rec)
        summary.records.append(rec)


# -- ops sweep ---------------------------------------------------------------------------------------------


def ops_cells(
    ops: list[str], seq_lens: list[int], dim: int, batch: int, dtypes: list[str], base: CellSpec
) -> list[CellSpec]:
    """The (op, L, dtype) cells, validated; each op's lengths ascend.

    With ``scan_backend="auto"`` the selective scan is swept once per backend available on the device.
    """
    from vmibench.ops import available_backends
    from vmibench.ops.mixers import OPS

    for op in ops:
        if op not in OPS:
            raise UserError(f"unknown op '{op}': use one of {', '.join(OPS)}")
    for L in seq_lens:
        if L < 1:
            raise UserError(f"bad sequence length {L}: must be a positive integer")
    cells = []
    for dtype in dtypes:
        for op in ops:
            backends = [base.scan_backend]
            if op == "selective_scan" and base.scan_backend == "auto":
                backends = available_backends(base.device)
            for backend in backends:
                for L in sorted(seq_lens):
                    cells.append(
                        replace(base, mode="op", op=op, seq_len=L, dim=dim, batch=batch, dtype=dtype,
                                scan_backend=backend, model="", height=0, width=0)
                    )  # fmt: skip
    return cells


def _exponent(op: str) -> int:
    from vmibench.ops.mixers import OPS

    return 2 if OPS[op].expected_complexity == "O(L^2)" else 1


def cap_predictor(seq_lens: list[int], time_cap_s: float, mem_cap_mb: float) -> Callable[[CellSpec, TimedRecord], str]:
    """Predicts, from a measured cell, whether the next length of its op exceeds the time or memory cap.

    The prediction scales the measurement by the op's expected exponent (L or L^2), so an O(L^2) op stops before
    a size that would take minutes or exhaust memory.
    """
    ordered = sorted(seq_lens)

    def predict(spec: CellSpec, rec: TimedRecord) -> str:
        bigger = [L for L in ordered if spec.seq_len < L]
        if not bigger or rec.latency_ms_median is None:
            return ""
        scale = (bigger[0] / spec.seq_len) ** _exponent(spec.op)
        t = rec.latency_ms_median / 1e3 * scale
        m = (rec.peak_mem_mb or 0.0) * scale
        if t > time_cap_s:
            return f"not run: predicted {t:.1f} s per call from L={spec.seq_len} exceeds --time-cap {time_cap_s:g} s"
        if m > mem_cap_mb:
            return f"not run: predicted {m:.0f} MB from L={spec.seq_len} exceeds --mem-cap {mem_cap_mb:g} MB"
        return ""

    return predict


def run_ops_sweep(
    cells: list[CellSpec],
    *,
    time_cap_s: float,
    mem_cap_mb: float,
    db: str | None = None,
    force: bool = False,
    retry_failed: bool = False,
    cell_timeout_s: float = 600.0,
    track: Tracker | None = None,
    budget_s: float | None = None,
) -> SweepSummary:
    """Measure mixer cells into the ``ops`` table, resuming, with time/memory caps along each op's L ladder."""
    return _resume_and_run(
        cells, OpsRecord.TABLE, db=db, force=force, retry_failed=retry_failed, cell_timeout_s=cell_timeout_s,
        track=track, predict_over_cap=cap_predictor(sorted({c.seq_len for c in cells}), time_cap_s, mem_cap_mb),
        budget_s=budget_s,
    )  # fmt: skip
