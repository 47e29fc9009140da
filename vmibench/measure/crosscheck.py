"""Cross-check of the timing engine against ``torch.utils.benchmark`` (not a test: a benchmark command)."""

from __future__ import annotations

import statistics
from dataclasses import replace

import pandas as pd

from vmibench.env import usable_cores
from vmibench.errors import UserError
from vmibench.measure.api import Tracker, base_spec
from vmibench.measure.runner import plan_cells, run_worker


def timer_crosscheck(
    models: list[str], res: int, *, threads: int | None = None, repeats: int = 2, track: Tracker | None = None
) -> pd.DataFrame:
    """Median latency by vmibench's engine and by ``Timer.blocked_autorange`` for each model, same threads.

    Each model gets ``repeats`` fresh worker processes; inside each, the two timers alternate three times on the
    same model instance, so both see the same process (allocation, thread placement).  Each timer's figure is
    the median over all its rounds.  Returns one row per model with both medians, their ratio, and each
    timer's latency ratio to the first model.
    """
    threads = threads or usable_cores()
    base = base_spec(device="cpu", threads=threads, count_flops=False)
    specs = plan_cells(models, [(res, res)], [1], replace(base, mode="crosscheck"))
    jobs = [spec for _ in range(repeats) for spec in specs]
    if track is not None:
        jobs = list(track(jobs, len(jobs), "cross-checking", lambda s: s.model))
    ours: dict[str, list[float]] = {}
    theirs: dict[str, list[float]] = {}
    for spec in jobs:
        result = run_worker(spec, timeout_s=900)
        if result.get("status") != "ok":
            raise UserError(f"{spec.model} failed in the cross-check worker: {result.get('error', 'unknown error')}")
        ours.setdefault(spec.model, []).extend(result["ours_ms"])
        theirs.setdefault(spec.model, []).extend(result["timer_ms"])
    first = models[0]
    ref_ours, ref_timer = statistics.median(ours[first]), statistics.median(theirs[first])
    rows = []
    for name in models:
        a, b = statistics.median(ours[name]), statistics.median(theirs[name])
        ratio_ours, ratio_timer = a / ref_ours, b / ref_timer
        rows.append(
            {
                "model": name,
                "res": res,
                "threads": threads,
                "vmibench_median_ms": a,
                "timer_median_ms": b,
                "vmibench_over_timer": a / b,
                f"ratio_to_{first}_vmibench": ratio_ours,
                f"ratio_to_{first}_timer": ratio_timer,
                "ratio_agreement": ratio_ours / ratio_timer,
                "within_10pct": abs(a / b - 1) <= 0.10 and abs(ratio_ours / ratio_timer - 1) <= 0.10,
                "rounds": len(ours[name]),
                "processes": repeats,
            }
        )
    return pd.DataFrame(rows)
