"""Typed measurement records; every row carries its settings and environment.

Column names the issues fixed (``model, res, batch, device, dtype, threads, params_m, gmacs, gflops,
latency_ms_median, latency_ms_iqr, latency_ms_p10, latency_ms_p90, n_iters, throughput_ips, peak_mem_mb,
mem_method, status, error``) are kept verbatim and come first; more columns follow them.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar

from vmibench.env import Environment

STATUS_OK = "ok"
STATUS_OOM = "oom"
STATUS_ERROR = "error"
STATUS_TIMEOUT = "timeout"
STATUS_CRASHED = "crashed"
STATUS_SKIPPED = "skipped"  # not run: a cap predicted it over the limits, or a smaller size of its ladder failed
STATUSES = (STATUS_OK, STATUS_OOM, STATUS_ERROR, STATUS_TIMEOUT, STATUS_CRASHED, STATUS_SKIPPED)
FAILED = (STATUS_ERROR, STATUS_TIMEOUT, STATUS_CRASHED)  # what --retry-failed re-opens (with their skips)
SKIP_AFTER_FAILURE = "after_failure"  # skip_reason of a cell not run because a smaller size failed
SKIP_CAP = "cap"  # skip_reason of a cell predicted over --time-cap / --mem-cap


@dataclass(kw_only=True)
class Record:
    """Base: a record flattens to one row: ``LEADING`` columns, its other fields, then provenance."""

    TABLE: ClassVar[str] = ""  # the results-store table this kind of record goes to
    LEADING: ClassVar[tuple[str, ...]] = ()  # columns that come first, in this order

    timestamp: str
    env: Environment | None = None
    env_key: str = ""

    def to_row(self) -> dict[str, Any]:
        own = [f.name for f in fields(self) if f.name not in ("timestamp", "env", "env_key")]
        order = [c for c in self.LEADING if c in own] + [c for c in own if c not in self.LEADING]
        row = {c: getattr(self, c) for c in order}
        row.update(timestamp=self.timestamp, env_key=self.env_key)
        if self.env is not None:
            row.update(self.env.as_dict())
        return row


@dataclass(kw_only=True)
class RunRecord(Record):
    """A row the runner measured: how it was measured and where its raw samples are."""

    cell_key: str = ""  # identity of the cell: hash of (environment key, workload, settings)
    run_id: str = ""  # the runner that measured it: rows of one run share round times (ratios pair them)
    rounds: int = 0  # worker processes (rounds) whose samples are pooled in this row
    latency_ms_ci_low: float | None = None  # interval of the cell's level: ci_method at nominal ci_level
    latency_ms_ci_high: float | None = None
    ci_method: str = ""  # "t-rounds": t-interval on the rounds' log medians (vmibench.analysis.intervals)
    ci_level: float | None = None  # nominal level; the actual coverage is what `vmibench check calibrate` measures
    timing_policy: str = ""  # JSON of the cell's TimingPolicy (its whole budget)
    round_policy: str = ""  # JSON of the TimingPolicy each round ran under (the cell's, split over the rounds)
    error_detail: str = ""  # traceback and stderr tail of a failed worker
    skip_reason: str = ""  # for skipped rows: "after_failure" or "cap"


@dataclass(kw_only=True)
class TimedRecord(RunRecord):
    """Timing, throughput and memory of one cell, with the settings it ran under."""

    batch: int
    device: str
    dtype: str
    threads: int
    params_m: float | None = None
    gmacs: float | None = None  # per image (per sample for ops), fvcore convention: 1 MAC = 1 FLOP
    gflops: float | None = None  # 2 * gmacs
    gbytes_moved: float | None = None  # per image (sample): bytes read + written by every aten op, 1e9 (roofline)
    latency_ms_median: float | None = None
    latency_ms_iqr: float | None = None
    latency_ms_p10: float | None = None
    latency_ms_p90: float | None = None
    n_iters: int = 0
    throughput_ips: float | None = None  # samples/s = batch / median latency
    peak_mem_mb: float | None = None
    mem_method: str = ""
    status: str = STATUS_OK
    error: str = ""
    channels_last: bool = False
    compile: bool = False
    cuda_graph: bool = False  # the forward captured once in a CUDA graph and replayed
    scan_backend: str = ""  # selective-scan backend that ran ("" where nothing scans)
    latency_ms_mean: float | None = None
    latency_ms_min: float | None = None
    rel_se: float | None = None
    converged: bool | None = None
    warmup_iters: int = 0
    peak_mem_total_mb: float | None = None
    peak_mem_reserved_mb: float | None = None
    timer: str = ""
    interop_threads: int | None = None
    wall_s: float | None = None
    n_processes: int = 1  # worker processes whose samples are pooled in this row (= rounds)
    process_spread: float | None = None  # (max - min) / median of the per-process medians
    extra: str = ""  # JSON for anything else a worker reports


_TIMED_LEADING = (
    "batch", "device", "dtype", "threads", "params_m", "gmacs", "gflops", "latency_ms_median", "latency_ms_iqr",
    "latency_ms_p10", "latency_ms_p90", "n_iters", "throughput_ips", "peak_mem_mb", "mem_method", "status", "error",
    "rounds", "latency_ms_ci_low", "latency_ms_ci_high",
)  # fmt: skip


@dataclass(kw_only=True)
class LatencyRecord(TimedRecord):
    """One (model, resolution, batch, settings) cell of the latency / throughput / memory engine."""

    TABLE: ClassVar[str] = "latency"
    LEADING: ClassVar[tuple[str, ...]] = ("model", "res", *_TIMED_LEADING)

    model: str
    res: str  # "224" or "HxW"
    height: int = 0
    width: int = 0
    mode: str = "infer"  # "infer": one forward; "train": forward + backward + SGD step (peak_mem_mb includes grads)
    task: str = "classify"  # or "backbone": multi-scale features without the head (timm features_only)
    model_source: str = ""  # SHA-256 (16 hex) of the --import file defining the model; "" for vmibench's and timm's


@dataclass(kw_only=True)
class MaxBatchRecord(TimedRecord):
    """Largest batch that fits a memory limit, and the throughput at it (``batch`` = ``max_batch``)."""

    TABLE: ClassVar[str] = "maxbatch"
    LEADING: ClassVar[tuple[str, ...]] = ("model", "res", "mode", "max_batch", *_TIMED_LEADING)

    model: str
    res: str
    height: int = 0
    width: int = 0
    mode: str = "infer"
    max_batch: int | None = None
    mem_limit_gb: float | None = None  # the limit the search ran under (CUDA free memory when not given)
    mem_limit_method: str = ""  # rlimit_as (CPU: address space above the worker's start) or cuda_memory_fraction
    probes: str = ""  # JSON {batch: "ok" | "oom"} of every batch tried, in order


@dataclass(kw_only=True)
class OpsRecord(TimedRecord):
    """One (token mixer, sequence length) cell of the ops sweep; ``throughput_ips`` counts sequences/s."""

    TABLE: ClassVar[str] = "ops"
    LEADING: ClassVar[tuple[str, ...]] = ("op", "seq_len", "dim", *_TIMED_LEADING)

    op: str  # label, with the scan backend for the selective scan: "selective_scan[torch]"
    seq_len: int
    dim: int
    op_name: str = ""  # registry name without the backend
    expected_complexity: str = ""
    reconstruction: bool = False


@dataclass(kw_only=True)
class PairRecord(TimedRecord):
    """Two cells timed in one process per round, in strict alternation (call ``i`` is member ``a`` for even ``i``,
    ``b`` for odd, in the ``samples`` table): the latency ratio ``a / b`` with its interval, paired call by call
    within a round and by round across processes.  The ``latency_ms_*`` columns describe the pair's cycle (one
    call of each); each member's own latency is ``a_ms_median`` / ``b_ms_median``."""

    TABLE: ClassVar[str] = "pairs"
    LEADING: ClassVar[tuple[str, ...]] = ("a", "b", "at", "member_table", "ratio", "ratio_ci_low", "ratio_ci_high",
                                          *_TIMED_LEADING)  # fmt: skip

    a: str  # the members' names, as comparisons name them (model or op)
    b: str
    at: int  # the members' size: square resolution, or sequence length
    member_table: str  # where each member's own cell goes: "latency" or "ops"
    a_cell: str = ""  # the members' workloads, described
    b_cell: str = ""
    a_ms_median: float | None = None
    b_ms_median: float | None = None
    ratio: float | None = None  # geometric mean of the per-round ratios of medians (a / b)
    ratio_ci_low: float | None = None  # t-interval over rounds of the per-round log ratios (ci_method, ci_level)
    ratio_ci_high: float | None = None


@dataclass(kw_only=True)
class ProfileRecord(TimedRecord):
    """One profiled (model, resolution, batch, mode) cell: its unprofiled latency (the timed samples), the profiled
    call's latency beside it, and how much of that call the operator classes account for.  Its breakdown by block
    and operator class is in the ``breakdown`` table (one row per block and class, ``profile_row_uid`` = this
    row's ``row_uid``)."""

    TABLE: ClassVar[str] = "profile"
    LEADING: ClassVar[tuple[str, ...]] = ("model", "res", "mode", *_TIMED_LEADING)

    model: str
    res: str
    height: int = 0
    width: int = 0
    mode: str = "infer"
    task: str = "classify"
    model_source: str = ""
    profiled_ms_median: float | None = None  # median wall time of a profiled call (profiler on)
    profile_overhead: float | None = None  # profiled / unprofiled median latency
    class_sum_frac: float | None = None  # sum of class times / profiled call time (median over calls)
    unclassified_ms: float | None = None  # self time of non-operator events per call (scopes, autograd wrappers)
    other_ops: str = ""  # operators that fell into class "other" (comma-separated)
    clock: str = ""  # "cpu" (host self time) or "cuda" (kernel time)


@dataclass(kw_only=True)
class RoofKernelRecord(RunRecord):
    """A roof of one operator class (see vmibench.attribution.classes): a large fused-free add (elementwise) or
    exp (transcendental) on ``roof_n`` elements, out of cache."""

    TABLE: ClassVar[str] = "roofs"
    LEADING: ClassVar[tuple[str, ...]] = ("device", "dtype", "threads", "roof", "roof_n", "roof_gbs", "roof_gelems")

    device: str
    dtype: str
    threads: int
    roof: str = ""  # "elementwise" or "transcendental"
    roof_n: int = 0
    roof_gbs: float | None = None  # bytes read + written per second at the median time, 1e9
    roof_gelems: float | None = None  # elements per second at the median time, 1e9
    latency_ms_median: float | None = None
    n_iters: int = 0
    status: str = STATUS_OK
    error: str = ""


@dataclass(kw_only=True)
class PeakRecord(RunRecord):
    """Dense-matmul throughput of a device: the denominator of utilisation."""

    TABLE: ClassVar[str] = "peak"
    LEADING: ClassVar[tuple[str, ...]] = ("device", "dtype", "threads", "matmul_n", "peak_gflops")

    device: str
    dtype: str
    threads: int
    matmul_n: int
    peak_gflops: float | None = None  # 2*n^3 / median time of one n x n @ n x n matmul
    peak_gflops_best: float | None = None  # 2*n^3 / the fastest round's median: the roof (the best process)
    latency_ms_median: float | None = None
    n_iters: int = 0
    status: str = STATUS_OK
    error: str = ""


@dataclass(kw_only=True)
class BandwidthRecord(RunRecord):
    """STREAM-triad memory bandwidth of a device: the slope of the roofline (see vmibench.analysis.roofline)."""

    TABLE: ClassVar[str] = "bandwidth"
    LEADING: ClassVar[tuple[str, ...]] = ("device", "dtype", "threads", "triad_n", "bw_peak_gbs")

    device: str
    dtype: str
    threads: int
    triad_n: int  # elements per array (3 arrays: a = b + s*c)
    bw_peak_gbs: float | None = None  # 3 * n * element bytes / median time of one triad, 1e9 bytes/s
    latency_ms_median: float | None = None
    n_iters: int = 0
    status: str = STATUS_OK
    error: str = ""


@dataclass(kw_only=True)
class FlopsRecord(Record):
    """FLOPs and parameters of one model at one input size, beside its published numbers."""

    TABLE: ClassVar[str] = "flops"
    LEADING: ClassVar[tuple[str, ...]] = ("model", "res")

    model: str
    res: str
    batch: int
    params: int | None = None
    params_m: float | None = None
    gmacs: float | None = None  # per image, fvcore convention with vmibench's handles (see vmibench.flops)
    gflops: float | None = None
    gmacs_torch: float | None = None  # torch.utils.flop_counter cross-check (matmul/conv/attention/scan only)
    scan_gmacs: float | None = None  # part of gmacs credited to selective scans
    gbytes_moved: float | None = None  # per image: unfused lower bound of memory traffic (vmibench.bytes_moved)
    uncounted_ops: str = ""
    published_params_m: float | None = None
    published_gmacs: float | None = None
    published_res: int | None = None
    published_flops_rule: str = ""
    published_source: str = ""
    note: str = ""
    status: str = STATUS_OK
    error: str = ""
    height: int = 0
    width: int = 0
    model_source: str = ""  # SHA-256 (16 hex) of the --import file defining the model; "" for vmibench's and timm's
