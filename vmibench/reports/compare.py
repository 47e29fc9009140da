"""`vmibench compare`: latency ratios of stored rows to a baseline model's, with 95% t-intervals over rounds.

Like pyperf's ``compare_to``: each model's newest stored ok row is set against the baseline's newest row measured
under the same settings (device, dtype, threads, batch, resolution, flags) and of the same mode and task (an
inference row is never set against a training step, nor a classifier against a backbone), and the ratio gets the
95% t-interval over rounds of :func:`vmibench.analysis.estimates.ratio_estimate` -- paired by round when both rows
come from one run.  The verdict is the three-way one of :func:`vmibench.analysis.intervals.ratio_verdict` with its
10% margin: faster or slower by at least the margin, equivalent within it, or undetermined.
"""

from __future__ import annotations

import pandas as pd

from vmibench.analysis.estimates import ratio_estimate, same_run
from vmibench.analysis.intervals import ratio_verdict
from vmibench.errors import UserError
from vmibench.reports.selection import row_modes, row_tasks
from vmibench.store import ResultStore

SETTINGS = ("device", "dtype", "threads", "batch", "res", "channels_last", "compile", "mode", "task")


def _newest_ok(frame: pd.DataFrame) -> pd.DataFrame:
    ok = frame[frame["status"] == "ok"]
    return ok.sort_values("row_id").drop_duplicates(["model", *SETTINGS], keep="last")


def compare(
    store: ResultStore,
    models: list[str],
    baseline: str,
    res: str,
    *,
    batch: int = 1,
    device: str | None = None,
    mode: str = "infer",
    task: str = "classify",
) -> pd.DataFrame:
    """One row per model: its median and CI, and its latency ratio to ``baseline`` with a 95% interval and the
    three-way verdict; only rows of ``mode`` (infer, train) and ``task`` (classify, backbone) are compared.

    Raises :class:`UserError` when the store has no ok row of the baseline at ``res`` (and ``device``, ``mode``,
    ``task``).
    """
    rows = store.read("latency", {"res": res, "batch": batch}, keep_row_id=True)
    if not rows.empty:
        rows = rows.assign(mode=row_modes(rows), task=row_tasks(rows))  # rows older than modes and tasks: infer
        rows = rows[(rows["mode"] == mode) & (rows["task"] == task)]
    if not rows.empty and device is not None:
        rows = rows[rows["device"] == device]
    rows = _newest_ok(rows) if not rows.empty else rows
    base = rows[rows["model"] == baseline] if not rows.empty else rows
    if base.empty:
        where = f" on {device}" if device else ""
        raise UserError(f"no ok row of {baseline} at {res}, batch {batch}, mode {mode}, task {task}{where} in "
                        f"{store.path}: measure it first (vmibench latency --models {baseline} --res {res} "
                        "--rounds 3)")  # fmt: skip
    b = base.iloc[-1]
    same = rows
    for col in SETTINGS:
        same = same[same[col].astype(str) == str(b[col])]
    samples = store.samples("latency", same["row_id"].tolist())
    out = []
    for name in dict.fromkeys(models):
        match = same[same["model"] == name]
        if match.empty:
            out.append({"model": name, "baseline": baseline, "res": res, "status": "not stored with these settings"})
            continue
        a = match.iloc[-1]
        est = ratio_estimate(a, b, samples)
        out.append({
            "model": name, "baseline": baseline, "res": res, "latency_ms_median": a["latency_ms_median"],
            "latency_ms_ci_low": a.get("latency_ms_ci_low"), "latency_ms_ci_high": a.get("latency_ms_ci_high"),
            "ratio": None if est is None else est.value, "ratio_ci_low": None if est is None else est.low,
            "ratio_ci_high": None if est is None else est.high,
            "verdict": "no samples stored" if est is None else ratio_verdict(est), "paired": same_run(a, b),
            "rounds": a.get("rounds"), "measured_at": a["timestamp"], "git_commit": a.get("git_commit"),
            "status": "ok",
        })  # fmt: skip
    return pd.DataFrame(out)
