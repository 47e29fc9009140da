"""Question (4): what does the causal mask of VMI-SA cost?  (Reconstruction: the released code has no causal mask.)"""

from __future__ import annotations

import pandas as pd

from vmibench.analysis import Estimate
from vmibench.reports.selection import ReportData, main_ops
from vmibench.reports.text import (
    LATENCY,
    Tally,
    as_float,
    exponent_clause,
    fmt_estimate,
    fmt_latency,
    ratio_clause,
    ratio_of,
)


def _op_ratio(rows: pd.DataFrame, a: str, b: str, samples: pd.DataFrame, tally: Tally) -> str | None:
    """``at L=16384, a 1.2 ms [..] vs b 0.2 ms [..]: ratio 6.0x [..]: a slower than b`` at the largest shared L."""
    ra, rb = rows[rows["op"] == a].set_index("seq_len"), rows[rows["op"] == b].set_index("seq_len")
    common = sorted(set(ra.index) & set(rb.index))
    if not common:
        return None
    L = common[-1]
    return (f"at L={L}, {a} {fmt_latency(ra.loc[L])} vs {b} {fmt_latency(rb.loc[L])}: "
            f"{ratio_clause(ratio_of(ra.loc[L], rb.loc[L], samples), a, b, tally)}")  # fmt: skip


def _op_slope(fits: pd.DataFrame, group: pd.DataFrame, op: str) -> tuple[Estimate, pd.Series] | None:
    """An op's latency exponent (with interval) in the dtype/dim/batch of ``group``."""
    if fits.empty or group.empty:
        return None
    first = group.iloc[0]
    sel = fits[(fits["op"] == op) & (fits["metric"] == LATENCY) & (fits["dtype"] == first["dtype"])
               & (fits["dim"] == first["dim"]) & (fits["batch"] == first["batch"])]  # fmt: skip
    if sel.empty:
        return None
    r = sel.iloc[0]
    return Estimate(float(r["slope"]), as_float(r["slope_ci_low"]), as_float(r["slope_ci_high"])), r


def question_causal(d: ReportData, op_fits: pd.DataFrame, tally: Tally) -> list[str]:
    head = "**(4) What does the causal mask in VMI-SA cost?** (reconstruction: the released code has no causal mask) "
    ops = d.ops
    main = main_ops(ops) if not ops.empty else ops
    if main.empty:
        return [head + "Not measured here: run `vmibench ops --ops vmisa,vmisa_recurrent,vmisa_matrix,sdpa`."]
    ok = main[main["status"] == "ok"]
    bits = []
    ratio = _op_ratio(ok, "vmisa_recurrent", "vmisa", d.samples_ops, tally)
    if ratio:
        bits.append(f"the recurrent (cumulative-sum) form against the released global-context mixer, {ratio}")
    for op, role in (("vmisa_recurrent", ""), ("vmisa_matrix", ""), ("vmisa", " (released, O(L) reference)"),
                     ("sdpa", " (softmax attention)")):  # fmt: skip
        found = _op_slope(op_fits, main, op)
        if found is not None:
            e, r = found
            bits.append(f"{op}{role} latency exponent {fmt_estimate(e)} (R^2 {r['r2']:.2f}, L={int(r['x_min'])}-"
                        f"{int(r['x_max'])})")  # fmt: skip
    rec, glob = _op_slope(op_fits, main, "vmisa_recurrent"), _op_slope(op_fits, main, "vmisa")
    if rec is not None and glob is not None:
        bits.append("exponent of the recurrent form against the global one: "
                    + exponent_clause(rec[0], glob[0], "vmisa", tally, name_a="vmisa_recurrent"))  # fmt: skip
    ratio = _op_ratio(ok, "vmisa_matrix", "vmisa_recurrent", d.samples_ops, tally)
    if ratio:
        bits.append(f"the matrix (L x L mask) form against the recurrent one, {ratio}")
    skipped = main[(main["op"] == "vmisa_matrix") & (main["status"] != "ok")]
    if not skipped.empty:
        first = skipped.sort_values("seq_len").iloc[0]
        bits.append(f"vmisa_matrix was not run from L={int(first['seq_len'])} ({first['status']}: {first['error']})")
    if not bits:
        return [head + "Not measured here: run `vmibench ops --ops vmisa,vmisa_recurrent,vmisa_matrix,sdpa`."]
    first = main.iloc[0]
    return [head + f"In {first['dtype']}, dim {first['dim']}, batch {first['batch']}: " + "; ".join(bits) + ". "
            "(Tables: `tables/ops_sweep.csv`, `tables/ops_fits.csv`; figures `ops_latency_vs_L.png`, "
            "`ops_memory_vs_L.png`.)"]  # fmt: skip
