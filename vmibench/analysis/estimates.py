"""Estimates with intervals from stored rows and their raw samples: latencies, fitted exponents, ratios, crossovers.

The rows are frames read from the store with their ``row_id``; ``samples`` is the store's ``samples`` table for
those rows (``row_id, round, iter, ms``).  Every function here is pure (frames in, frames or estimates out).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from vmibench.analysis.bootstrap import CrossoverEstimate, Estimate, crossover_ci, ratio_ci, slope_ci
from vmibench.analysis.fits import fit_loglog

LATENCY = "latency_ms_median"
CI_COLUMNS = ("latency_ms_ci_low", "latency_ms_ci_high")  # a row's stored 95% interval of its median


def rounds_of(samples: pd.DataFrame | None) -> dict[int, list[list[float]]]:
    """``{row_id: [[ms of round 0], [ms of round 1], ...]}`` from a samples frame."""
    if samples is None or samples.empty:
        return {}
    out: dict[int, list[list[float]]] = {}
    for (row_id, _), grp in samples.sort_values(["row_id", "round", "iter"]).groupby(["row_id", "round"]):
        out.setdefault(int(row_id), []).append(grp["ms"].astype(float).tolist())
    return out


def _row_rounds(frame: pd.DataFrame, by_row: dict[int, list[list[float]]]) -> list[list[list[float]] | None]:
    if "row_id" not in frame.columns:
        return [None] * len(frame)
    return [by_row.get(int(r)) if not pd.isna(r) else None for r in frame["row_id"]]


def slope_table(
    frame: pd.DataFrame,
    samples: pd.DataFrame | None,
    group_cols: Sequence[str],
    x_col: str,
    metrics: Sequence[str] = (LATENCY, "peak_mem_mb", "gmacs"),
) -> pd.DataFrame:
    """One row per (group, metric): log-log slope on the upper half of the sweep, R^2, range, and for latency a
    95% t-interval (``slope_ci_low``/``slope_ci_high``) from the rows' raw samples (NaN where none are stored;
    memory and GMACs are single deterministic numbers per size)."""
    rows = []
    ok = frame[frame["status"] == "ok"] if "status" in frame.columns else frame
    by_row = rounds_of(samples)
    for key, sub in ok.groupby(list(group_cols), sort=True):
        key = key if isinstance(key, tuple) else (key,)
        for metric in metrics:
            if metric not in sub.columns:
                continue
            fit = fit_loglog(sub[x_col].tolist(), sub[metric].astype(float).tolist())
            if fit is None:
                continue
            low = high = np.nan
            if metric == LATENCY:
                per_size = _row_rounds(sub, by_row)
                if all(p is not None for p in per_size):
                    est = slope_ci(sub[x_col].astype(float).tolist(), per_size)  # type: ignore[arg-type]
                    if est is not None:
                        low, high = est.low, est.high
            rows.append({**dict(zip(group_cols, key, strict=True)), "metric": metric, "slope": fit.slope,
                         "slope_ci_low": low, "slope_ci_high": high, "r2": fit.r2, "n": fit.n, "x_min": fit.x_min,
                         "x_max": fit.x_max})  # fmt: skip
    return pd.DataFrame(rows)


def slope_estimate(fits: pd.DataFrame, col: str, value: str, metric: str = LATENCY) -> Estimate | None:
    """A slope of ``fits`` (from :func:`slope_table`) as an :class:`Estimate` (interval may be NaN)."""
    if fits.empty:
        return None
    row = fits[(fits[col] == value) & (fits["metric"] == metric)]
    if row.empty:
        return None
    r = row.iloc[0]
    return Estimate(float(r["slope"]), float(r["slope_ci_low"]), float(r["slope_ci_high"]))


def same_run(a: pd.Series, b: pd.Series) -> bool:
    """Whether two rows were measured by one run (their round i ran close in time), so a ratio may pair them.

    Rows stored before runs were recorded are taken as one run, as the sweeps that made them were."""
    ra, rb = a.get("run_id"), b.get("run_id")
    if not isinstance(ra, str) or not isinstance(rb, str) or not ra or not rb:
        return True
    return ra == rb


def ratio_estimate(a: pd.Series, b: pd.Series, samples: pd.DataFrame | None) -> Estimate | None:
    """Latency ratio of row ``a`` to row ``b`` with its 95% t-interval over rounds, paired by round when both rows
    come from one run (:func:`same_run`); None without samples."""
    by_row = rounds_of(samples)
    ra, rb = by_row.get(int(a["row_id"])), by_row.get(int(b["row_id"]))
    if not ra or not rb:
        return None
    return ratio_ci(ra, rb, paired=same_run(a, b))


def crossover_estimate(
    a: pd.DataFrame, b: pd.DataFrame, x_col: str, samples: pd.DataFrame | None
) -> CrossoverEstimate | None:
    """Where curve ``a`` (rows over ``x_col``) becomes cheaper than ``b``, with a bootstrap interval."""
    by_row = rounds_of(samples)
    pa, pb = _row_rounds(a, by_row), _row_rounds(b, by_row)
    keep_a = [i for i, p in enumerate(pa) if p]
    keep_b = [i for i, p in enumerate(pb) if p]
    if not keep_a or not keep_b:
        return None
    return crossover_ci([float(a[x_col].iloc[i]) for i in keep_a], [pa[i] for i in keep_a],  # type: ignore[misc]
                        [float(b[x_col].iloc[i]) for i in keep_b], [pb[i] for i in keep_b])  # type: ignore[misc]  # fmt: skip


def as_float(value: object) -> float:
    """A stored number as float; NaN for missing (None, NaN, absent column, text)."""
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def latency_estimate(row: pd.Series) -> Estimate:
    """A row's median latency with its stored 95% interval (by the row's ``ci_method``: the t-interval over rounds
    by default); NaN bounds when not stored."""
    return Estimate(as_float(row.get(LATENCY)), as_float(row.get(CI_COLUMNS[0])), as_float(row.get(CI_COLUMNS[1])))


def samples_for(samples: pd.DataFrame, rows: Iterable[pd.Series] | pd.DataFrame) -> pd.DataFrame:
    """The samples of ``rows`` only: the estimate helpers regroup whatever frame they get, so keep it small."""
    if samples.empty or (isinstance(rows, pd.DataFrame) and "row_id" not in rows.columns):
        return samples.iloc[0:0]
    ids = rows["row_id"] if isinstance(rows, pd.DataFrame) else pd.Series([r.get("row_id") for r in rows])
    return samples[samples["row_id"].isin(set(pd.to_numeric(ids, errors="coerce").dropna().astype(int)))]


def ratio_of(a: pd.Series, b: pd.Series, samples: pd.DataFrame) -> Estimate:
    """Latency ratio a / b with its 95% interval (:func:`ratio_estimate`); the bare ratio of medians without
    samples."""
    est = None
    if not pd.isna(a.get("row_id")) and not pd.isna(b.get("row_id")):
        est = ratio_estimate(a, b, samples_for(samples, [a, b]))
    return est if est is not None else Estimate(as_float(a[LATENCY]) / as_float(b[LATENCY]), math.nan, math.nan)
