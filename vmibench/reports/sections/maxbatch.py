"""*Throughput at max batch*: the largest batch that fits a memory limit (DeiT's protocol) and the throughput
there, per model and mode."""

from __future__ import annotations

from vmibench.reports.figures import Builder
from vmibench.reports.text import Section, caption, fmt, md_table

COLUMNS = ["model", "res", "mode", "max_batch", "throughput_ips", "latency_ms_median", "peak_mem_mb", "mem_limit_gb",
           "mem_limit_method", "status", "error"]  # fmt: skip


def section_maxbatch(b: Builder) -> Section | None:
    """The max-batch table, or None (no section at all) where the store has no max-batch rows."""
    frame = b.data.maxbatch
    if frame.empty:
        return None
    s = Section("Throughput at max batch")
    csv = b.table(frame[[c for c in [*COLUMNS, "probes"] if c in frame.columns]], "maxbatch")
    s.lines += md_table(frame.sort_values(["mode", "throughput_ips"], ascending=[True, False]), COLUMNS)
    for mode, sub in frame[frame["status"] == "ok"].groupby("mode"):
        best = sub.loc[sub["throughput_ips"].astype(float).idxmax()]
        if len(sub) > 1:
            s.lines += ["", f"Highest {mode} throughput at max batch: {best['model']} at {fmt(best['throughput_ips'])} "
                            f"images/s (batch {int(best['max_batch'])}) of {len(sub)} models."]  # fmt: skip
    how = (
        "max_batch: powers of two, then bisection to ~12%; rlimit_as = the worker's address space above its "
        "start (CPU, conservative: virtual reservations count); cuda_memory_fraction = the allocator's cap"
    )
    s.lines += ["", caption(frame, f"`{csv}`", how)]
    return s
