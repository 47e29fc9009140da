"""Cross-check of the timing engine against ``torch.utils.benchmark`` (not a test: a benchmark command)."""

from __future__ import annotations

import statistics

import pandas as pd

from vmibench.env import usable_cores
from vmibench.errors import UserError
from vmibench.measure.api import run_settings
from vmibench.measure.executor import Executor
from vmibench.measure.kinds.crosscheck import crosscheck_cells
from vmibench.measure.runner import Progress, Runner


def timer_crosscheck(
    models: list[str],
    res: int,
    *,
    threads: int | None = None,
    repeats: int = 2,
    progress: Progress | None = None,
    executor: Executor | None = None,
) -> pd.DataFrame:
    """Median latency by vmibench's engine and by ``Timer.blocked_autorange`` for each model, same threads.

    Each model gets ``repeats`` fresh worker processes (the runner's rounds, interleaved in random order); inside
    each, the two timers alternate three times on the same model instance, so both see the same process
    (allocation, thread placement).  Each timer's figure is
    the median over all its rounds.  Returns one row per model with both medians, their ratio, and each
    timer's latency ratio to the first model.
    """
    threads = threads or usable_cores()
    settings = run_settings(device="cpu", threads=threads, count_flops=False)
    cells = crosscheck_cells(models, res, settings)
    summary = Runner(None, rounds=repeats, cell_timeout_s=900, progress=progress, executor=executor).run(cells)
    ours: dict[str, list[float]] = {}
    theirs: dict[str, list[float]] = {}
    for cell, key in zip(cells, summary.keys, strict=True):
        name = cell.workload.model  # type: ignore[attr-defined]
        for result in summary.results.get(key, []):
            if not result.ok:
                raise UserError(f"{name} failed in the cross-check worker: {result.error or 'unknown error'}")
            ours.setdefault(name, []).extend(result.values["ours_ms"])
            theirs.setdefault(name, []).extend(result.values["timer_ms"])
    models = list(dict.fromkeys(models))
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


def repeat_comparison(
    models: list[str],
    hw: tuple[int, int],
    *,
    runs: int = 2,
    rounds: int = 3,
    threads: int = 1,
    max_time_s: float = 3.0,
    progress: Progress | None = None,
    executor: Executor | None = None,
) -> pd.DataFrame:
    """Run the same comparison of ``models`` ``runs`` times; each model's latency ratio to the first, per run.

    Every run is a fresh :class:`Runner` (its own zygotes and random order) measuring each model in ``rounds``
    interleaved rounds; the ratio's 95% interval is the paired t over rounds
    (:func:`vmibench.analysis.bootstrap.ratio_ci`).  ``overlap_all_runs`` says whether the CIs of all runs share
    a point: if they do not, the machine moved more between runs than the intervals admit.
    """
    from dataclasses import replace

    from vmibench.analysis.bootstrap import ratio_ci
    from vmibench.measure.kinds.forward import plan_cells
    from vmibench.measure.timing import TimingPolicy

    policy = TimingPolicy(min_warmup_iters=2, min_warmup_s=0.2, min_iters=6, min_time_s=max_time_s / 3,
                          max_time_s=max_time_s, rel_precision=0.02, max_warmup_s=4.0)  # fmt: skip
    settings = replace(run_settings(device="cpu", threads=threads, count_flops=False), policy=policy)
    cells = plan_cells(models, [hw], [1], settings)
    rows = []
    for run in range(1, runs + 1):
        summary = Runner(None, rounds=rounds, cell_timeout_s=600, progress=progress, executor=executor).run(cells)
        per_model = {}
        for cell, key in zip(cells, summary.keys, strict=True):
            results = summary.results.get(key, [])
            if not results or not all(r.ok for r in results):
                error = results[0].error if results else "no result"
                raise UserError(f"{cell.describe()} failed in run {run}: {error}")
            per_model[cell.workload.model] = [list(r.samples_ms) for r in results]  # type: ignore[attr-defined]
        ref = per_model[models[0]]
        for name in models:
            est = ratio_ci(per_model[name], ref)
            rows.append({"model": name, "baseline": models[0], "run": run, "ratio": est.value,
                         "ci_low": est.low, "ci_high": est.high, "rounds": rounds,
                         "median_ms": statistics.median([x for r in per_model[name] for x in r])})  # fmt: skip
    frame = pd.DataFrame(rows)
    overlap = {}
    for name, sub in frame.groupby("model"):
        overlap[name] = bool(sub["ci_low"].max() <= sub["ci_high"].min())
    frame["overlap_all_runs"] = frame["model"].map(overlap)
    return frame
