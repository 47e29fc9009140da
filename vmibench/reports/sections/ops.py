"""*Token mixers vs sequence length*: tables, figures, fitted exponents and crossovers with softmax attention."""

from __future__ import annotations

import math

import pandas as pd

from vmibench.analysis import crossover
from vmibench.analysis.estimates import LATENCY, crossover_estimate, samples_for, slope_table
from vmibench.reports.figures import Builder
from vmibench.reports.selection import OP_GROUP
from vmibench.reports.tables import status_pivot
from vmibench.reports.text import NO_INTERVAL, Section, caption, fmt, md_table, short_setup, with_exponent_text


def section_ops(b: Builder) -> Section:
    d = b.data
    s = Section("Token mixers vs sequence length")
    ops = d.ops
    if ops.empty:
        s.lines.append("*(no ops rows: run `vmibench ops`)*")
        return s
    for (dtype, dim, batch), sub in ops.groupby(["dtype", "dim", "batch"]):
        shown = status_pivot(sub, "op", "seq_len")
        label = f"{dtype}, dim {dim}, batch {batch}"
        s.lines += [f"Median latency (ms) per call, {label} (ops marked * are RECONSTRUCTIONS, see below):", ""]
        recon = set(sub.loc[sub["reconstruction"].astype(bool), "op"])
        shown["op"] = [(f"{o} *" if o in recon else o) + (" (stale)" if b.staleness.mark(o) == "stale" else "")
                       for o in shown["op"]]  # fmt: skip
        s.lines += md_table(shown)
    csv = b.table(ops, "ops_sweep")
    s.lines += ["", caption(ops, f"`{csv}`", "95% CIs in the CSV (latency_ms_ci_low/high)")]
    # latency vs L is question (4)'s figure
    s.lines += b.lines_figure(ops, "ops_memory_vs_L", group="op", x="seq_len", y="peak_mem_mb",
                              title="Token mixers: peak memory vs L", xlabel="sequence length L",
                              ylabel="peak memory rise (MB)", setup=short_setup(ops))  # fmt: skip
    fits = slope_table(ops, d.samples_ops, OP_GROUP, "seq_len", [LATENCY, "peak_mem_mb", "gmacs"])
    if not fits.empty:
        fits_csv = b.table(fits, "ops_fits")
        s.lines += ["", "Fitted exponents (slope of log metric vs log L, upper half of each op's sweep; latency with "
                        "a 95% t-interval over rounds, the slope refitted in each round):", ""]  # fmt: skip
        s.lines += md_table(with_exponent_text(fits), [*OP_GROUP, "metric", "exponent", "r2", "n", "x_min", "x_max"])
        s.lines += ["", caption(ops, f"`{fits_csv}`")]
    cross = ops_crossovers(ops, d.samples_ops)
    if not cross.empty:
        cross_csv = b.table(cross.drop(columns=["crossover"]), "ops_crossovers")
        s.lines += ["", "Crossover with softmax attention: smallest L where the mixer is faster than `sdpa`, with a "
                        "hierarchical bootstrap 95% interval (\"≤ L\": already faster at the smallest L "
                        "measured):", ""]  # fmt: skip
        s.lines += md_table(cross, ["op", "dtype", "dim", "batch", "crossover"])
        s.lines += ["", caption(ops, f"`{cross_csv}`")]
    s.lines += ["", "`vmisa_recurrent` and `vmisa_matrix` are vmibench's RECONSTRUCTION of the causal-mask VMI-SA the "
                    "paper describes (cumulative-sum and L x L lower-triangular-mask forms); the released code has "
                    "only the global form `vmisa`. They are tested to agree numerically."]  # fmt: skip
    return s


def crossover_row(a: pd.DataFrame, b: pd.DataFrame, x_col: str, samples: pd.DataFrame) -> dict[str, object]:
    """Where curve ``a`` becomes cheaper than ``b``: value, interval, share of resamples that never cross, whether
    it is at the smallest shared size, and the printed form.  Without samples: the point crossover, no interval."""
    est = crossover_estimate(a, b, x_col, samples_for(samples, pd.concat([a, b])))
    if est is None:
        point = crossover(a[x_col].tolist(), a[LATENCY].tolist(), b[x_col].tolist(), b[LATENCY].tolist())
        shared = sorted(set(a[x_col]) & set(b[x_col]))
        at_smallest = point is not None and bool(shared) and point <= shared[0]
        return {"crossover_at": point, "crossover_ci_low": math.nan, "crossover_ci_high": math.nan,
                "never_fraction": math.nan, "at_smallest": at_smallest,
                "crossover": f"{fmt(point) or 'none'} ({NO_INTERVAL})"}  # fmt: skip
    return {"crossover_at": est.value, "crossover_ci_low": est.low, "crossover_ci_high": est.high,
            "never_fraction": est.never_fraction, "at_smallest": est.value is not None and est.value <= est.smallest,
            "crossover": est.format()}  # fmt: skip


def ops_crossovers(ops: pd.DataFrame, samples: pd.DataFrame) -> pd.DataFrame:
    """Crossover of every op with ``sdpa`` of the same dtype, dim and batch."""
    rows = []
    ok = ops[ops["status"] == "ok"]
    for (dtype, dim, batch), sub in ok.groupby(["dtype", "dim", "batch"]):
        ref = sub[sub["op"] == "sdpa"]
        if ref.empty:
            continue
        for op, cur in sub.groupby("op"):
            if op == "sdpa":
                continue
            found = crossover_row(cur, ref, "seq_len", samples)
            rows.append({"op": op, "dtype": dtype, "dim": dim, "batch": batch,
                         "faster_than_sdpa_from_L": found.pop("crossover_at"), **found})  # fmt: skip
    return pd.DataFrame(rows)
