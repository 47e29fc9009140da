"""*Training*: one training step (train-mode forward, cross-entropy, backward, SGD update) per model, its
throughput and peak memory, and its cost relative to the model's forward."""

from __future__ import annotations

import pandas as pd

from vmibench.analysis.estimates import CI_COLUMNS, LATENCY
from vmibench.reports.figures import Builder
from vmibench.reports.text import Section, caption, ci_text, fmt, md_table

COLUMNS = ["model", "res", "batch", LATENCY, "ci95", "throughput_ips", "peak_mem_mb", "forward_ms", "step_per_forward",
           "mem_per_forward_mem", "status"]  # fmt: skip
STEP_RULE = (2.5, 4.0)  # a backward costs about twice a forward: a step within 2.5-4x of the forward is typical


def section_training(b: Builder) -> Section:
    d = b.data
    s = Section("Training")
    train = d.training
    if train.empty:
        s.lines.append("*(no training-step rows: run `vmibench latency --models ... --mode train`)*")
        return s
    infer = d.latency[d.latency["status"] == "ok"] if not d.latency.empty else d.latency
    key = ["model", "res", "batch", "dtype", "threads"]
    fwd = infer.set_index(key)[[LATENCY, "peak_mem_mb"]] if not infer.empty else pd.DataFrame()
    rows = []
    for r in train.itertuples(index=False):
        ident = tuple(getattr(r, k) for k in key)
        f = fwd.loc[ident] if not fwd.empty and ident in fwd.index else None
        if isinstance(f, pd.DataFrame):
            f = f.iloc[0]
        row = r._asdict()
        row["ci95"] = ci_text(*(row.get(c) for c in CI_COLUMNS))
        row["forward_ms"] = None if f is None else float(f[LATENCY])
        row["step_per_forward"] = None if f is None else float(row[LATENCY]) / float(f[LATENCY])
        row["mem_per_forward_mem"] = (None if f is None or not float(f["peak_mem_mb"] or 0) > 0
                                      else float(row["peak_mem_mb"]) / float(f["peak_mem_mb"]))  # fmt: skip
        rows.append(row)
    frame = pd.DataFrame(rows)
    csv = b.table(frame[[c for c in COLUMNS if c in frame.columns and c != "ci95"]], "training")
    s.lines += md_table(frame, COLUMNS)
    ratios = frame.dropna(subset=["step_per_forward"]) if "step_per_forward" in frame else frame.iloc[0:0]
    ratios = ratios[ratios["status"] == "ok"]
    if not ratios.empty:
        low, high = STEP_RULE
        outside = ratios[(ratios["step_per_forward"] < low) | (ratios["step_per_forward"] > high)]
        text = (
            f"A training step costs {fmt(float(ratios['step_per_forward'].min()))}-"
            f"{fmt(float(ratios['step_per_forward'].max()))}x the model's forward at the same size and batch"
        )
        text += (f"; outside the usual {low:g}-{high:g}x: {', '.join(outside['model'])}." if not outside.empty else
                 f", within the usual {low:g}-{high:g}x for every model.")  # fmt: skip
        s.lines += ["", text]
    s.lines += ["", caption(train, f"`{csv}`", "peak_mem_mb = rise above weights and input during the steps "
                                               "(activations kept for backward, gradients, workspaces); SGD without "
                                               "momentum (no optimizer state)")]  # fmt: skip
    return s
