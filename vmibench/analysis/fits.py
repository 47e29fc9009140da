"""Analysis of stored measurements: complexity fits, crossover points, utilisation.

* :func:`fit_loglog` -- least-squares slope of log(y) against log(x) on the *upper* part of a sweep (the
  largest sizes, where fixed overheads no longer dominate), with the fit range and R^2.  An O(L) cost has slope
  ~1, an O(L^2) cost ~2.
* :func:`crossover` -- the smallest x where one cost curve falls below another (interpolated in log-log space).
* :func:`add_utilisation` -- achieved GFLOP/s = gflops * batch / latency, and utilisation = achieved / the
  dense-matmul peak measured in the same environment (same device, dtype and thread count).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Fit:
    """y ~ exp(intercept) * x^slope, fitted on points with x in [x_min, x_max]."""

    slope: float
    intercept: float
    r2: float
    n: int
    x_min: float
    x_max: float


def fit_point_indices(
    x: Sequence[float | None], y: Sequence[float | None], *, upper_fraction: float = 0.5, min_points: int = 3
) -> list[int]:
    """Indices of the points :func:`fit_loglog` fits, ordered by (x, y).

    Points with non-positive or missing values are dropped, the rest sorted by x, and the upper
    ``max(min_points, ceil(n * upper_fraction))`` kept.  Empty if fewer than two usable points remain.  Shared with
    the bootstrap (:func:`vmibench.analysis.bootstrap.slope_ci`) so that its replicates are refitted on exactly the
    points the point estimate uses.
    """
    usable = sorted(
        ((float(a), float(b)), i)
        for i, (a, b) in enumerate(zip(x, y, strict=True))
        if a is not None and b is not None and not (math.isnan(a) or math.isnan(b)) and a > 0 and b > 0
    )
    if len(usable) < 2:
        return []
    keep = max(min_points, math.ceil(len(usable) * upper_fraction))
    return [i for _, i in usable[-keep:]]


def fit_loglog(
    x: Sequence[float], y: Sequence[float], *, upper_fraction: float = 0.5, min_points: int = 3
) -> Fit | None:
    """Fit log(y) = a + b log(x) on the upper ``upper_fraction`` of the x range (at least ``min_points`` points).

    Points with non-positive or missing values are dropped; ``None`` if fewer than two points remain.
    """
    idx = fit_point_indices(x, y, upper_fraction=upper_fraction, min_points=min_points)
    if not idx:
        return None
    pairs = [(float(x[i]), float(y[i])) for i in idx]
    lx = np.log([p[0] for p in pairs])
    ly = np.log([p[1] for p in pairs])
    slope, intercept = np.polyfit(lx, ly, 1)
    pred = intercept + slope * lx
    ss_res = float(np.sum((ly - pred) ** 2))
    ss_tot = float(np.sum((ly - ly.mean()) ** 2))
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0
    return Fit(float(slope), float(intercept), r2, len(pairs), pairs[0][0], pairs[-1][0])


def fit_table(
    frame: pd.DataFrame, group_cols: Sequence[str], x_col: str, y_cols: Sequence[str], **fit_kwargs: float
) -> pd.DataFrame:
    """One row per (group, metric) with the fitted slope, R^2 and fit range (ok rows only)."""
    rows = []
    ok = frame[frame["status"] == "ok"] if "status" in frame.columns else frame
    for key, sub in ok.groupby(list(group_cols), sort=True):
        key = key if isinstance(key, tuple) else (key,)
        for metric in y_cols:
            fit = fit_loglog(sub[x_col].tolist(), sub[metric].tolist(), **fit_kwargs)  # type: ignore[arg-type]
            if fit is None:
                continue
            rows.append({**dict(zip(group_cols, key, strict=True)), "metric": metric, **asdict(fit)})
    return pd.DataFrame(rows)


def crossover(x_a: Sequence[float], y_a: Sequence[float], x_b: Sequence[float], y_b: Sequence[float]) -> float | None:
    """Smallest x at which curve a becomes cheaper than curve b (log-log interpolation between shared x).

    Returns the first shared x if a is already cheaper there, ``None`` if a never gets cheaper on the shared
    range (or they share fewer than one x).
    """
    a = dict(zip(x_a, y_a, strict=True))
    b = dict(zip(x_b, y_b, strict=True))
    xs = sorted(x for x in set(a) & set(b) if a[x] > 0 and b[x] > 0)
    if not xs:
        return None
    if a[xs[0]] < b[xs[0]]:
        return float(xs[0])
    for lo, hi in itertools.pairwise(xs):
        d_lo = math.log(a[lo]) - math.log(b[lo])
        d_hi = math.log(a[hi]) - math.log(b[hi])
        if d_lo >= 0 > d_hi:
            t = d_lo / (d_lo - d_hi)
            return float(math.exp(math.log(lo) + t * (math.log(hi) - math.log(lo))))
    return None


def add_utilisation(timed: pd.DataFrame, peak: pd.DataFrame) -> pd.DataFrame:
    """Add ``achieved_gflops`` and ``utilisation`` (vs the matmul peak of the same env, dtype, threads).

    The peak is the best of every peak row of that environment: each matrix size's fastest round
    (``peak_gflops_best``, or ``peak_gflops`` for rows stored before it existed), the largest of those.  A roof is
    an upper bound, so the best process at the best size is the one to hold the models against."""
    out = timed.copy()
    work = out["gflops"].astype(float) * out["batch"].astype(float)
    out["achieved_gflops"] = work / (out["latency_ms_median"].astype(float) / 1e3)
    out["peak_gflops"] = np.nan
    if not peak.empty:
        ok = peak[peak["status"] == "ok"]
        best = pd.to_numeric(ok["peak_gflops"], errors="coerce")
        if "peak_gflops_best" in ok.columns:
            best = np.fmax(best, pd.to_numeric(ok["peak_gflops_best"], errors="coerce"))
        table: dict[tuple[object, ...], float] = {}
        for r, value in zip(ok.itertuples(index=False), best, strict=True):
            k = (r.env_key, r.device, r.dtype, int(r.threads))
            table[k] = float(np.fmax(table.get(k, np.nan), value))
        out["peak_gflops"] = [
            table.get((r.env_key, r.device, r.dtype, int(r.threads)), np.nan) for r in out.itertuples(index=False)
        ]
    out["utilisation"] = out["achieved_gflops"] / out["peak_gflops"]
    return out
