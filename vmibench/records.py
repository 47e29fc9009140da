"""Typed measurement records; every row carries its settings and environment.

Column names the issues fixed (``model, res, batch, device, dtype, threads, params_m, gmacs, gflops,
latency_ms_median, latency_ms_iqr, latency_ms_p10, latency_ms_p90, n_iters, throughput_ips, peak_mem_mb,
mem_method, status, error``) are kept verbatim; more columns follow them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from vmibench.env import Environment

STATUS_OK = "ok"
STATUS_OOM = "oom"
STATUS_ERROR = "error"
STATUS_TIMEOUT = "timeout"
STATUS_CRASHED = "crashed"
STATUSES = (STATUS_OK, STATUS_OOM, STATUS_ERROR, STATUS_TIMEOUT, STATUS_CRASHED)


@dataclass(kw_only=True)
class Record:
    """Base: a record flattens to one row: its own fields, then ``timestamp``, ``env_key`` and the environment."""

    timestamp: str
    env: Environment | None = None
    env_key: str = ""

    TABLE = ""  # the results-store table this kind of record goes to

    def to_row(self) -> dict[str, Any]:
        own = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("timestamp", "env", "env_key")}
        row = dict(own, timestamp=self.timestamp, env_key=self.env_key)
        if self.env is not None:
            row.update(self.env.as_dict())
        return row


@dataclass(kw_only=True)
class LatencyRecord(Record):
    """One (model, resolution, batch, settings) cell of the latency / throughput / memory engine."""

    TABLE = "latency"

    model: str
    res: str  # "224" or "HxW"
    batch: int
    device: str
    dtype: str
    threads: int
    params_m: float | None = None
    gmacs: float | None = None  # per image, fvcore convention (1 MAC = 1 FLOP), as papers print them
    gflops: float | None = None  # 2 * gmacs, per image
    latency_ms_median: float | None = None
    latency_ms_iqr: float | None = None
    latency_ms_p10: float | None = None
    latency_ms_p90: float | None = None
    n_iters: int = 0
    throughput_ips: float | None = None  # images/s = batch / median latency
    peak_mem_mb: float | None = None
    mem_method: str = ""
    status: str = STATUS_OK
    error: str = ""
    height: int = 0
    width: int = 0
    channels_last: bool = False
    compile: bool = False
    scan_backend: str = ""  # selective-scan backend that ran ("" for models without a scan)
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
    extra: str = field(default="")  # free-form JSON for anything else a worker reports


@dataclass(kw_only=True)
class FlopsRecord(Record):
    """FLOPs and parameters of one model at one input size, beside its published numbers."""

    TABLE = "flops"

    model: str
    res: str
    batch: int
    params: int | None = None
    params_m: float | None = None
    gmacs: float | None = None  # fvcore convention with vmibench's handles (see vmibench.flops)
    gflops: float | None = None
    gmacs_torch: float | None = None  # torch.utils.flop_counter cross-check (matmul/conv/attention/scan only)
    scan_gmacs: float | None = None  # part of gmacs credited to selective scans (9*B*L*D*N + B*D*L each)
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
