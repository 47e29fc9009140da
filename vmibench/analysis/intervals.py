"""Calibrated intervals: Student-t intervals on per-round statistics, and three-way verdicts with a margin.

Why not the bootstrap.  A cell's variance lives between worker processes (rounds): each process settles on its
own level (memory layout, frequency, allocator state) and its calls scatter around that level.  With K rounds the
hierarchical bootstrap's interval can be no wider than the spread of the K round medians, and with K = 3 such an
interval covers the true level about three times in four, not 95 times in a hundred (``vmibench check calibrate``
measures it).  The round medians are the independent units, so the textbook interval on them is the one to use:
with ``m_r`` the median of round ``r``, ``log m_r`` ~ level + process effect, and

    exp( mean(log m_r) +/- t_{K-1, (1+level)/2} * sd(log m_r) / sqrt(K) )

has its nominal coverage when the log process levels are roughly normal, for any K >= 2.  The same holds for
paired per-round differences: a ratio of two cells measured in the same rounds is the t-interval of the
per-round log ratios (drift common to both cells in a round cancels), and an exponent is refitted in each round
across the sizes of that round, so two models' exponents are compared through the per-round difference of their
fits.  What coverage this really reaches under the measured variance structure, with adaptive rounds included,
is what the calibration study (:mod:`vmibench.analysis.calibration`) reports, and every interval is labelled
with that.

Verdicts.  A comparison has three outcomes with a practical margin (default 10%): decided different by at least
the margin, equivalent within the margin, or undetermined on this machine.  No verdict hangs on an interval's
edge touching 1.0: an interval that crosses a margin boundary is undetermined.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

DEFAULT_LEVEL = 0.95
DEFAULT_MARGIN = 0.10  # practical margin: 10% on a ratio, 0.10 on an exponent
METHOD_T = "t-rounds"  # t-interval on per-round log statistics (the default)
METHOD_BOOTSTRAP = "bootstrap"  # hierarchical percentile bootstrap (kept for the calibration study)

FASTER, SLOWER, EQUIVALENT, UNDETERMINED = "faster", "slower", "equivalent", "undetermined"
HIGHER, LOWER = "higher", "lower"
NO_INTERVAL = "no interval"


# -- Student t quantile (no scipy dependency) ----------------------------------------------------------------------


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the regularised incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c if abs(1.0 + aa / c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c if abs(1.0 + aa / c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-14:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    lbeta = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(lbeta) * _betacf(a, b, x) / a
    return 1.0 - math.exp(lbeta) * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """Student-t cumulative distribution function with ``df`` degrees of freedom."""
    x = df / (df + t * t)
    tail = 0.5 * _betainc(df / 2.0, 0.5, x)
    return 1.0 - tail if t > 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom (bisection on :func:`t_cdf`)."""
    if not 0.0 < p < 1.0 or df <= 0:
        raise ValueError(f"t_quantile needs 0 < p < 1 and df > 0, got p={p}, df={df}")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


# -- intervals ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Interval:
    """``center`` with ``[low, high]`` at nominal ``level``, from ``n`` independent units by ``method``.

    On the log scale for latencies and ratios (``log=True``: the bounds are exponentiated), linear for exponents.
    """

    value: float
    low: float
    high: float
    level: float
    n: int
    method: str = METHOD_T

    @property
    def has_interval(self) -> bool:
        return math.isfinite(self.low) and math.isfinite(self.high)


def _t_bounds(values: np.ndarray, level: float) -> tuple[float, float, float]:
    """(mean, low, high) of a t-interval on ``values``; NaN bounds below two values or with no spread info."""
    k = values.size
    mean = float(values.mean()) if k else math.nan
    if k < 2:
        return mean, math.nan, math.nan
    half = t_quantile(0.5 + level / 2.0, k - 1) * float(values.std(ddof=1)) / math.sqrt(k)
    return mean, mean - half, mean + half


def t_interval(values: Sequence[float], *, level: float = DEFAULT_LEVEL, log: bool = False) -> Interval:
    """t-interval of the mean of ``values`` (of their logs, exponentiated back, with ``log``)."""
    arr = np.asarray(values, dtype=float)
    arr = arr[np.isfinite(arr)]
    if log:
        arr = np.log(arr[arr > 0])
    mean, low, high = _t_bounds(arr, level)
    if log:
        mean, low, high = math.exp(mean) if math.isfinite(mean) else math.nan, math.exp(low), math.exp(high)
    return Interval(mean, low, high, level, int(arr.size))


def welch_interval(
    a: Sequence[float], b: Sequence[float], *, level: float = DEFAULT_LEVEL, log: bool = True
) -> Interval:
    """Welch t-interval of mean(a) - mean(b) for two sets of units that do not pair (cells of different runs);
    with ``log`` of mean(log a) - mean(log b), exponentiated: a ratio."""
    la, lb = (np.asarray([x for x in v if math.isfinite(x)], dtype=float) for v in (a, b))
    if log:
        la, lb = np.log(la[la > 0]), np.log(lb[lb > 0])
    n = int(min(la.size, lb.size))
    diff = float(la.mean() - lb.mean()) if la.size and lb.size else math.nan
    low = high = math.nan
    if la.size >= 2 and lb.size >= 2:
        va, vb = la.var(ddof=1) / la.size, lb.var(ddof=1) / lb.size
        se = math.sqrt(va + vb)
        df = (va + vb) ** 2 / (va**2 / (la.size - 1) + vb**2 / (lb.size - 1)) if se > 0 else 1.0
        half = t_quantile(0.5 + level / 2.0, df) * se
        low, high = diff - half, diff + half
    if log:
        return Interval(math.exp(diff), math.exp(low), math.exp(high), level, n)
    return Interval(diff, low, high, level, n)


def round_medians(samples_by_round: Sequence[Sequence[float]]) -> list[float]:
    """The median of each non-empty round: the independent units of a cell."""
    return [float(np.median(np.asarray(r, dtype=float))) for r in samples_by_round if len(r)]


def round_slopes(xs: Sequence[float], medians_by_size: Sequence[Sequence[float]]) -> list[float]:
    """Log-log slope refitted in each round: ``medians_by_size[j][r]`` is round ``r``'s median at size ``xs[j]``.

    Rounds present at every size are used (a round index means one time window across a ladder's sizes)."""
    k = min((len(m) for m in medians_by_size), default=0)
    lx = np.log(np.asarray(xs, dtype=float))
    dx = lx - lx.mean()
    sxx = float(dx @ dx)
    if k == 0 or sxx == 0 or len(xs) < 2:
        return []
    ly = np.log(np.asarray([list(m[:k]) for m in medians_by_size], dtype=float))  # sizes x rounds
    return list(((ly - ly.mean(axis=0)).T @ dx) / sxx)


# -- verdicts -------------------------------------------------------------------------------------------------------


class HasBounds(Protocol):
    """What a verdict reads: an :class:`Interval`, or a bootstrap ``Estimate`` (which this module never imports)."""

    @property
    def low(self) -> float: ...

    @property
    def high(self) -> float: ...

    @property
    def has_interval(self) -> bool: ...


def ratio_verdict(e: HasBounds | None, margin: float = DEFAULT_MARGIN) -> str:
    """Three-way verdict on a latency ratio a/b: ``faster`` (a at least ``margin`` faster: high < 1/(1+margin)),
    ``slower`` (low > 1+margin), ``equivalent`` (inside both bounds), else ``undetermined``."""
    if e is None or not e.has_interval:
        return NO_INTERVAL
    up, down = 1.0 + margin, 1.0 / (1.0 + margin)
    if e.high < down:
        return FASTER
    if e.low > up:
        return SLOWER
    if e.low > down and e.high < up:
        return EQUIVALENT
    return UNDETERMINED


def difference_verdict(e: HasBounds | None, margin: float = DEFAULT_MARGIN) -> str:
    """Three-way verdict on a difference (an exponent minus another, or minus a reference such as 1):
    ``higher``/``lower`` by at least ``margin``, ``equivalent`` within it, else ``undetermined``."""
    if e is None or not e.has_interval:
        return NO_INTERVAL
    if e.low > margin:
        return HIGHER
    if e.high < -margin:
        return LOWER
    if e.low > -margin and e.high < margin:
        return EQUIVALENT
    return UNDETERMINED


def decided(verdict: str) -> bool:
    """Whether a verdict is decided (a difference by the margin, or equivalence within it)."""
    return verdict not in (UNDETERMINED, NO_INTERVAL)
