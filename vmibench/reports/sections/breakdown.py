"""*Where the time goes*: each profiled model's time by operator class (``vmibench profile``), against its FLOP and
byte shares and each class's own roof, and the profiler's cost.

Shares, not absolute times, are compared: profiling slows a call (``profile_overhead``).  Each class's roof is the
matmul peak, the elementwise roof (a large fused-free add) or the transcendental roof (exp): which class is held
against which roof is :data:`vmibench.attribution.classes.ROOF_OF`, and a depthwise convolution against the
elementwise roof is an assumption (it is memory-bound on a CPU, not a dense kernel).
"""

from __future__ import annotations

import math

import pandas as pd

from vmibench.reports import plots
from vmibench.reports.figures import Builder
from vmibench.reports.selection import ReportData
from vmibench.reports.text import Section, caption, md_table, short_setup
from vmibench.resolution import pixels

ALL = "*"
COLUMNS = ["model", "res", "op_class", "time_share", "time_share_ci_low", "time_share_ci_high", "flop_share",
           "byte_share", "roof", "rounds"]  # fmt: skip


def class_rows(d: ReportData) -> pd.DataFrame:
    """The breakdown over all blocks: one row per (model, size, class), in ladder order."""
    if d.breakdown.empty:
        return d.breakdown
    rows = d.breakdown[d.breakdown["block"] == ALL].copy()
    rows["pixels"] = [pixels(r) for r in rows["res"]]
    return rows.sort_values(["model", "pixels", "time_share"], ascending=[True, True, False])


def share_text(r: pd.Series) -> str:
    """``59% [52, 66]`` of a class's time share."""
    low, high = float(r["time_share_ci_low"]), float(r["time_share_ci_high"])
    if math.isfinite(low) and math.isfinite(high):
        return f"{r['time_share']:.0%} [{low:.0%}, {high:.0%}]"
    return f"{r['time_share']:.0%} (no interval)"


def excess(rows: pd.DataFrame, top: int = 5) -> pd.DataFrame:
    """The (model, size, class) cells whose time share exceeds their FLOP share by the most."""
    out = rows.assign(excess=rows["time_share"] - rows["flop_share"].fillna(0.0))
    return out.sort_values("excess", ascending=False).head(top)


def section_breakdown(b: Builder) -> Section:
    d = b.data
    s = Section("Where the time goes (profiled)")
    rows = class_rows(d)
    if rows.empty:
        s.lines.append("*(no profile rows: `vmibench profile --models ... --res ...`)*")
        return s
    csv = b.table(d.breakdown, "breakdown")
    prof = d.profile
    checks = [f"{r.model} {r.res}: profiled {r.profiled_ms_median:.3g} ms vs {r.latency_ms_median:.3g} ms unprofiled "
              f"(x{r.profile_overhead:.2f}); classes account for {r.class_sum_frac:.0%} of a profiled call"
              for r in prof.itertuples(index=False)]  # fmt: skip
    s.lines += ["Each model's profiled call split by operator class (time share with a 95% t-interval over rounds) "
                "beside the class's share of GMACs and of bytes moved (counted by the same classes). Profiling "
                "slows a call, so shares, not times, are compared with the latency rows:", "",
                *[f"- {c}" for c in checks], ""]  # fmt: skip
    top = excess(rows)
    s.lines += ["Time share furthest above FLOP share: " + "; ".join(
        f"{r.model} {r.res} {r.op_class} {share_text(pd.Series(r._asdict()))} of time vs {r.flop_share:.0%} of "
        f"GMACs" for r in top.itertuples(index=False)) + ".", ""]  # fmt: skip
    if not d.roofs.empty:
        roofs = ", ".join(f"{r.roof} {r.roof_gbs:.3g} GB/s ({r.roof_gelems:.3g} G elements/s)"
                          for r in d.roofs.sort_values("roof").itertuples(index=False))  # fmt: skip
        s.lines += [f"Class roofs measured beside the matmul peak and the triad: {roofs}. Matmul, dense convolution "
                    "and attention are held against the matmul peak; elementwise, layout, norm, reduction and (an "
                    "assumption) depthwise convolution against the elementwise roof; transcendental ops and the "
                    "selective scan against the exp roof.", ""]  # fmt: skip
    shares = rows.pivot_table(index=["model", "res"], columns="op_class", values="time_share", aggfunc="first")
    shares = shares.fillna(0.0).sort_index(key=lambda idx: idx.map(str))
    shares.index = [f"{m} {r}" for m, r in shares.index]
    setup = short_setup(prof)
    rel = b.figure(lambda p: plots.stacked_shares(shares, path=p, title="Time by operator class (profiled)",
                                                  setup=setup), "time_by_class")  # fmt: skip
    s.lines += [f"![time by class]({rel})", "", *md_table(rows, COLUMNS), "", caption(rows, f"`{csv}`")]
    return s
