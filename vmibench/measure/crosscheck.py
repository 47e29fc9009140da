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

    The two timers run in alternating fresh worker processes (``repeats`` pairs per model) so drifts of a
    shared machine hit both; each timer's figure is the median over its repeats.  Returns one row per model
    with both medians, their ratio, and each timer's latency ratio to the first model.
    """
    threads = threads or usable_cores()
    base = base_spec(device="cpu", threads=threads, count_flops=False)
    specs = plan_cells(models, [(res, res)], [1], base)
    jobs = [(spec, mode) for _ in range(repeats) for spec in specs for mode in ("latency", "timer")]
    if track is not None:
        jobs = list(track(jobs, len(jobs), "cross-checking", lambda j: f"{j[0].model} {j[1]}"))
    times: dict[tuple[str, str], list[float]] = {}
    for spec, mode in jobs:
        result = run_worker(replace(spec, mode=mode), timeout_s=600)
        if result.get("status") != "ok":
            raise UserError(f"{spec.model} failed under the {mode} worker: {result.get('error', 'unknown error')}")
        median = result["stats"]["median_ms"] if mode == "latency" else result["median_ms"]
        times.setdefault((spec.model, mode), []).append(median)
    rows = []
    first = models[0]
    ref_ours = statistics.median(times[(first, "latency")])
    ref_timer = statistics.median(times[(first, "timer")])
    for name in models:
        ours = statistics.median(times[(name, "latency")])
        theirs = statistics.median(times[(name, "timer")])
        ratio_ours, ratio_timer = ours / ref_ours, theirs / ref_timer
        rows.append(
            {
                "model": name,
                "res": res,
                "threads": threads,
                "vmibench_median_ms": ours,
                "timer_median_ms": theirs,
                "vmibench_over_timer": ours / theirs,
                f"ratio_to_{first}_vmibench": ratio_ours,
                f"ratio_to_{first}_timer": ratio_timer,
                "ratio_agreement": ratio_ours / ratio_timer,
                "within_10pct": abs(ours / theirs - 1) <= 0.10 and abs(ratio_ours / ratio_timer - 1) <= 0.10,
                "repeats": repeats,
            }
        )
    return pd.DataFrame(rows)
