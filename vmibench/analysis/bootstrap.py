"""Bootstrap confidence intervals for latencies, latency ratios, complexity slopes and crossover points.

Why a bootstrap, and why hierarchical.  A benchmark cell is timed in several worker processes ("rounds"), each
making many calls.  Calls inside one process are not independent: the process shares one memory layout, one set
of JIT/allocator decisions, one CPU frequency state, so its latencies cluster around a process-specific level.
Treating the pooled calls as one i.i.d. sample therefore understates the uncertainty -- 2000 calls from 3
processes carry far less information than 6000 independent measurements.  Kalibera & Jones ("Rigorous
benchmarking in reasonable time", ISMM 2013) show that the variation between such higher-level repetitions must
be resampled explicitly; we follow them and resample at the process level first, then within each chosen
process.  With a single process there is nothing to resample at the upper level, and the procedure reduces to
an ordinary bootstrap of that process's calls (which cannot see between-process variation: run more processes).

Data model.  ``samples_by_process[i]`` is the list of per-call latencies (ms) measured by worker process ``i``.
Rounds are numbered consistently across models: round ``i`` of model A and round ``i`` of model B ran close in
time, so a ratio A/B resamples the *same* rounds for both (a paired bootstrap), which cancels drift that affects
both models alike (thermal state, background load) instead of counting it twice.

All intervals are percentile intervals of the replicate statistics, deterministic for a given ``seed``.  Only
numpy is used, and the resampling is vectorised over replicates.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vmibench.analysis.fits import crossover, fit_loglog, fit_point_indices
from vmibench.analysis.intervals import (
    METHOD_BOOTSTRAP,
    METHOD_T,
    Interval,
    round_medians,
    round_slopes,
    t_interval,
    welch_interval,
)

SamplesByProcess = Sequence[Sequence[float]]

# Upper bound on the number of resampled values held at once (int32 ranks: 4 bytes each); replicates are
# processed in chunks of at most this many values so memory stays bounded for long sweeps.
_CHUNK_VALUES = 8_000_000


@dataclass(frozen=True)
class Estimate:
    """A point estimate with a percentile bootstrap interval [low, high] at confidence ``level``."""

    value: float
    low: float
    high: float
    level: float = 0.95
    n_boot: int = 0  # bootstrap replicates, or the independent units (rounds) of a t-interval
    method: str = METHOD_BOOTSTRAP

    @classmethod
    def of(cls, value: float, interval: Interval) -> Estimate:
        """An estimate of ``value`` carrying the bounds, level and method of a t-interval."""
        return cls(float(value), interval.low, interval.high, interval.level, interval.n, interval.method)

    @property
    def has_interval(self) -> bool:
        """False when a bound is missing (NaN): nothing can then be told apart."""
        return not (math.isnan(self.low) or math.isnan(self.high))

    def overlaps(self, other: Estimate) -> bool:
        """True when the closed intervals share at least one point, or either has no interval (then the two
        cannot be told apart: unknown counts as overlapping, never as a difference)."""
        if not (self.has_interval and other.has_interval):
            return True
        return self.low <= other.high and other.low <= self.high

    def excludes(self, x: float) -> bool:
        """True when ``x`` lies outside the closed interval (False without an interval)."""
        return self.has_interval and (x < self.low or x > self.high)

    @property
    def width(self) -> float:
        """Interval width, high - low."""
        return self.high - self.low

    @property
    def rel_width(self) -> float:
        """Interval width relative to the point estimate (``inf`` if the estimate is 0)."""
        return self.width / self.value if self.value != 0 else math.inf

    def format(self, digits: int = 2) -> str:
        """``"value [low, high]"`` with ``digits`` decimals, e.g. ``"1.28 [1.19, 1.37]"``."""
        return f"{self.value:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"

    def __str__(self) -> str:
        return self.format()


@dataclass(frozen=True)
class CrossoverEstimate:
    """Crossover size (where curve a becomes cheaper than b) with a bootstrap interval.

    ``value``/``low``/``high`` are ``None`` when there is no crossover on the shared range [smallest, largest]
    (for the interval: in none of the replicates).  A value equal to ``smallest`` means "a is already cheaper at
    the smallest measured size", i.e. the crossover is at or below it.  ``never_fraction`` is the share of
    replicates without a crossover; they are left out of the percentiles, so read the interval together with it.
    """

    value: float | None
    low: float | None
    high: float | None
    smallest: float
    largest: float
    never_fraction: float
    level: float = 0.95
    n_boot: int = 0

    def _fmt(self, x: float) -> str:
        if x <= self.smallest:
            return f"≤ {_fmt_size(self.smallest)}"
        return _fmt_size(x)

    def format(self) -> str:
        """E.g. ``"3100 [2500, 4100]"``, ``"≤ 256 [≤ 256, 1024]"``, ``"none up to 16384"``.

        Sizes from 100 up are rounded to whole numbers (they are token counts; the interval is far wider than 1),
        smaller ones to 3 significant figures.  A value at the smallest shared size is shown as "≤ size": curve a
        is already cheaper there, so the crossover is at or below it.  A degenerate interval equal to the value is
        not repeated, and no interval is shown when the pooled medians have no crossover (the percentiles of the
        replicates that do cross would read as a location).
        """
        text = f"none up to {_fmt_size(self.largest)}" if self.value is None else self._fmt(self.value)
        if self.value is not None and self.low is not None and self.high is not None:
            low, high = self._fmt(self.low), self._fmt(self.high)
            if not (low == high == text):
                text += f" [{low}, {high}]"
        if self.never_fraction > 0:
            text += f" (no crossover in {self.never_fraction:.0%} of resamples)"
        return text

    def __str__(self) -> str:
        return self.format()


def _fmt_size(x: float) -> str:
    return f"{x:.0f}" if abs(x) >= 100 else f"{x:.3g}"


# ---------------------------------------------------------------------------------------------------------------
# Resampling machinery


class _Cell:
    """One cell's samples, prepared for fast resampling.

    Every sample is replaced by its rank in the sorted pooled data, so a replicate's median is found by an
    integer partition of ranks and mapped back to a value at the end.  Processes are padded to a common length
    with a rank larger than any real one, so rows of different lengths can share one array.
    """

    def __init__(self, processes: list[np.ndarray]) -> None:
        self.counts = np.array([p.size for p in processes], dtype=np.int64)
        self.pooled = np.concatenate(processes)
        order = np.argsort(self.pooled, kind="stable")
        self.sorted_values = self.pooled[order]
        rank_of = np.empty(order.size, dtype=np.int32)
        rank_of[order] = np.arange(order.size, dtype=np.int32)
        self.sentinel = np.int32(order.size)
        self.ranks = np.full((len(processes), int(self.counts.max())), self.sentinel, dtype=np.int32)
        start = 0
        for i, n in enumerate(self.counts):
            self.ranks[i, :n] = rank_of[start : start + n]
            start += n

    @property
    def n_processes(self) -> int:
        return int(self.counts.size)

    def median(self) -> float:
        return float(np.median(self.pooled))

    def resampled_medians(self, proc_idx: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Pooled median of each replicate; row ``r`` of ``proc_idx`` lists the processes drawn for replicate r.

        Each drawn process contributes as many draws (with replacement) from its own samples as it has.
        """
        n_boot, slots = proc_idx.shape
        width = slots * self.ranks.shape[1]
        chunk = max(1, _CHUNK_VALUES // width)
        out = np.empty(n_boot)
        for start in range(0, n_boot, chunk):
            idx = proc_idx[start : start + chunk]
            rows = idx.shape[0]
            ranks = np.full((rows, slots, self.ranks.shape[1]), self.sentinel, dtype=np.int32)
            for p, n in enumerate(self.counts):
                r, s = np.nonzero(idx == p)
                if r.size:
                    within = rng.integers(0, n, size=(r.size, n))
                    ranks[r, s, :n] = self.ranks[p][within]
            m = self.counts[idx].sum(axis=1)
            lo, hi = (m - 1) // 2, m // 2
            kth = np.unique(np.concatenate([lo, hi]))
            flat = ranks.reshape(rows, width)
            flat = np.partition(flat, kth, axis=1) if kth.size <= 64 else np.sort(flat, axis=1)
            r_all = np.arange(rows)
            out[start : start + rows] = 0.5 * (
                self.sorted_values[flat[r_all, lo]] + self.sorted_values[flat[r_all, hi]]
            )
        return out


def _processes(samples_by_process: SamplesByProcess, name: str = "samples_by_process") -> list[np.ndarray]:
    procs = [np.asarray(p, dtype=float).ravel() for p in samples_by_process]
    for p in procs:
        if not np.all(np.isfinite(p)):
            raise ValueError(f"{name}: samples must be finite")
    return procs


def _cell(samples_by_process: SamplesByProcess, name: str = "samples_by_process") -> _Cell:
    procs = [p for p in _processes(samples_by_process, name) if p.size]
    if not procs:
        raise ValueError(f"{name}: no samples")
    return _Cell(procs)


def _paired_cells(a: SamplesByProcess, b: SamplesByProcess, pair: bool = True) -> tuple[_Cell, _Cell, bool]:
    """Cells for a and b; paired (same round numbering) when ``pair`` and both have the same number of rounds.

    In the paired case a round empty on either side is dropped from both, so round i still means the same time
    window on both sides.
    """
    pa, pb = _processes(a, "a"), _processes(b, "b")
    if pair and len(pa) == len(pb):
        keep = [i for i in range(len(pa)) if pa[i].size and pb[i].size]
        if keep:
            return _Cell([pa[i] for i in keep]), _Cell([pb[i] for i in keep]), True
    return _cell(pa, "a"), _cell(pb, "b"), False


def _draw_processes(n_processes: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, n_processes, size=(n_boot, n_processes))


def _hierarchical_medians(cell: _Cell, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    return cell.resampled_medians(_draw_processes(cell.n_processes, n_boot, rng), rng)


def _paired_medians(
    a: _Cell, b: _Cell, paired: bool, n_boot: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    if paired:
        idx = _draw_processes(a.n_processes, n_boot, rng)
        return a.resampled_medians(idx, rng), b.resampled_medians(idx, rng)
    return _hierarchical_medians(a, n_boot, rng), _hierarchical_medians(b, n_boot, rng)


def _check(level: float, n_boot: int) -> None:
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")


def _estimate(value: float, replicates: np.ndarray, level: float) -> Estimate:
    reps = replicates[np.isfinite(replicates)]
    if reps.size == 0:
        return Estimate(value, math.nan, math.nan, level, 0)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(reps, [alpha, 1.0 - alpha])
    return Estimate(float(value), float(low), float(high), level, int(reps.size))


# ---------------------------------------------------------------------------------------------------------------
# Public API


def median_ci(
    samples_by_process: SamplesByProcess,
    *,
    level: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
    method: str = METHOD_T,
) -> Estimate:
    """Median latency of all pooled samples with an interval of the cell's level.

    ``method="t-rounds"`` (the default, see :mod:`vmibench.analysis.intervals`): a t-interval on the log medians of the
    rounds, the independent units; no interval below two rounds.  ``method="bootstrap"``: each replicate draws processes
    with replacement, then within each drawn process as many samples with replacement as it has, pools them and takes
    the median (processes first, following Kalibera & Jones 2013, so that between-process variation widens the
    interval).  One process: an ordinary bootstrap of its samples. Empty processes are ignored; no samples at all raises
    ``ValueError``."""
    _check(level, n_boot)
    cell = _cell(samples_by_process)
    if method == METHOD_T:
        return Estimate.of(cell.median(), t_interval(round_medians(samples_by_process), level=level, log=True))
    rng = np.random.default_rng(seed)
    return _estimate(cell.median(), _hierarchical_medians(cell, n_boot, rng), level)


def ratio_ci(
    a: SamplesByProcess,
    b: SamplesByProcess,
    *,
    level: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
    paired: bool = True,
    method: str = METHOD_T,
) -> Estimate:
    """Latency ratio a / b with an interval, paired by round where the rounds pair.

    ``method="t-rounds"`` (default): with ``paired``, the t-interval of the per-round log ratios of round medians over
    the rounds both sides have (the value is their geometric mean); otherwise a Welch interval on the two sides' log
    round medians.  ``method="bootstrap"``: median(a) / median(b) of pooled samples with a paired hierarchical
    bootstrap.  With equal round counts each replicate draws ONE set of round indices for both a and b (then resamples
    within each drawn round independently for a and b), so slow drift common to both models in a round cancels in the
    ratio.  Rounds that are empty on either side are dropped from both.  When the round counts differ the rounds cannot
    be matched, and each side's rounds are resampled independently (an unpaired, wider interval); so they are with
    ``paired=False``, for rows measured in different runs, whose round i are different times."""
    _check(level, n_boot)
    if method == METHOD_T:
        return _ratio_t(a, b, paired, level)
    cell_a, cell_b, paired = _paired_cells(a, b, paired)
    rng = np.random.default_rng(seed)
    med_a, med_b = _paired_medians(cell_a, cell_b, paired, n_boot, rng)
    with np.errstate(divide="ignore", invalid="ignore"):
        reps = med_a / med_b
    return _estimate(cell_a.median() / cell_b.median(), reps, level)


def _ratio_t(a: SamplesByProcess, b: SamplesByProcess, paired: bool, level: float) -> Estimate:
    pa, pb = _processes(a, "a"), _processes(b, "b")
    for name, procs in (("a", pa), ("b", pb)):
        if not any(p.size for p in procs):
            raise ValueError(f"{name}: no samples")
    if paired:
        # round i of both cells ran in one time window (or, past a topped-up cell's first rounds, in one pass
        # of the top-up); rounds only one side has are left out
        keep = [i for i in range(min(len(pa), len(pb))) if pa[i].size and pb[i].size]
        ratios = [float(np.median(pa[i]) / np.median(pb[i])) for i in keep]
        if ratios:
            e = t_interval(ratios, level=level, log=True)
            return Estimate.of(e.value, e)
    e = welch_interval(round_medians(pa), round_medians(pb), level=level, log=True)
    return Estimate.of(e.value, e)


def slope_ci(
    xs: Sequence[float],
    samples: Sequence[SamplesByProcess],
    *,
    upper_fraction: float = 0.5,
    min_points: int = 3,
    level: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
    method: str = METHOD_T,
) -> Estimate | None:
    """Log-log slope of pooled median latency against size, with an interval.

    ``method="t-rounds"`` (default): the slope is refitted in each round on the same points (round ``r`` of every size
    ran in one time window), and the interval is the t-interval of those per-round slopes. ``method="bootstrap"``: the
    point estimate is :func:`~vmibench.analysis.fits.fit_loglog` on the pooled medians, and the replicates are refitted
    on exactly the same points (same selection helper), each size resampled hierarchically and independently of the
    others (different sizes ran in different processes).  ``None`` with fewer than two usable points (positive x,
    non-empty samples)."""
    _check(level, n_boot)
    if len(xs) != len(samples):
        raise ValueError("xs and samples must have the same length")
    cells: list[_Cell | None] = []
    for s in samples:
        procs = [p for p in _processes(s) if p.size]
        cells.append(_Cell(procs) if procs else None)
    medians = [c.median() if c is not None else None for c in cells]
    chosen = fit_point_indices(xs, medians, upper_fraction=upper_fraction, min_points=min_points)
    fit = fit_loglog(xs, medians, upper_fraction=upper_fraction, min_points=min_points)  # type: ignore[arg-type]
    if not chosen or fit is None:
        return None
    if method == METHOD_T:
        # the value is the interval's centre, the mean of the per-round slopes, so it always lies inside it
        slopes = round_slopes([float(xs[j]) for j in chosen], [round_medians(samples[j]) for j in chosen])
        e = t_interval(slopes, level=level)
        return Estimate.of(e.value if slopes else fit.slope, e)
    rng = np.random.default_rng(seed)
    lx = np.log([float(xs[j]) for j in chosen])
    dx = lx - lx.mean()
    sxx = float(dx @ dx)
    if sxx == 0:
        return None
    y = np.column_stack([_hierarchical_medians(cells[j], n_boot, rng) for j in chosen])  # type: ignore[arg-type]
    with np.errstate(divide="ignore", invalid="ignore"):
        ly = np.log(y)
    reps = (ly - ly.mean(axis=1, keepdims=True)) @ dx / sxx
    return _estimate(fit.slope, reps, level)


def slope_difference_ci(
    xs: Sequence[float],
    samples_a: Sequence[SamplesByProcess],
    samples_b: Sequence[SamplesByProcess],
    *,
    level: float = 0.95,
    paired: bool = True,
) -> Estimate | None:
    """Exponent of a minus exponent of b over the same sizes ``xs``, refitted in each round.

    Paired (a's and b's rounds ran in the same time windows): the t-interval of the per-round slope differences.
    Otherwise a Welch interval on the two sets of per-round slopes.  ``None`` below two sizes or without rounds.
    """
    if len(xs) < 2 or len(xs) != len(samples_a) or len(xs) != len(samples_b):
        return None
    sa = round_slopes(xs, [round_medians(s) for s in samples_a])
    sb = round_slopes(xs, [round_medians(s) for s in samples_b])
    if not sa or not sb:
        return None
    if paired and len(sa) == len(sb):
        e = t_interval([x - y for x, y in zip(sa, sb, strict=True)], level=level)
    else:
        e = welch_interval(sa, sb, level=level, log=False)
    return Estimate.of(e.value, e)  # the mean per-round difference: the value lies inside its interval


def crossover_ci(
    xs_a: Sequence[float],
    samples_a: Sequence[SamplesByProcess],
    xs_b: Sequence[float],
    samples_b: Sequence[SamplesByProcess],
    *,
    level: float = 0.95,
    n_boot: int = 1000,
    seed: int = 0,
) -> CrossoverEstimate | None:
    """Smallest size where a becomes cheaper than b (:func:`~vmibench.analysis.fits.crossover`), with an interval.

    Computed on pooled medians for the value, and on each replicate's medians for the interval.  At each shared
    size the two models are resampled as in :func:`ratio_ci` (paired by round when round counts match), sizes
    independently.  Replicates without a crossover on the shared range are counted in ``never_fraction`` and left
    out of the percentiles.  ``None`` when the curves share no size with samples on both sides.
    """
    _check(level, n_boot)
    if len(xs_a) != len(samples_a) or len(xs_b) != len(samples_b):
        raise ValueError("xs and samples must have the same length")
    by_a = {float(x): s for x, s in zip(xs_a, samples_a, strict=True) if any(len(p) for p in s)}
    by_b = {float(x): s for x, s in zip(xs_b, samples_b, strict=True) if any(len(p) for p in s)}
    shared = sorted(x for x in set(by_a) & set(by_b) if x > 0)
    if not shared:
        return None
    rng = np.random.default_rng(seed)
    med_a, med_b, reps_a, reps_b = [], [], [], []
    for x in shared:
        cell_a, cell_b, paired = _paired_cells(by_a[x], by_b[x])
        med_a.append(cell_a.median())
        med_b.append(cell_b.median())
        ra, rb = _paired_medians(cell_a, cell_b, paired, n_boot, rng)
        reps_a.append(ra)
        reps_b.append(rb)
    value = crossover(shared, med_a, shared, med_b)
    ya, yb = np.column_stack(reps_a), np.column_stack(reps_b)
    found = [crossover(shared, ya[r].tolist(), shared, yb[r].tolist()) for r in range(n_boot)]
    hits = np.array([f for f in found if f is not None], dtype=float)
    never = 1.0 - hits.size / n_boot
    low = high = None
    if hits.size:
        alpha = (1.0 - level) / 2.0
        lo, hi = np.quantile(hits, [alpha, 1.0 - alpha])
        low, high = float(lo), float(hi)
    return CrossoverEstimate(value, low, high, shared[0], shared[-1], never, level, int(hits.size))


def distinguishable(a: Estimate, b: Estimate) -> bool:
    """True when the two intervals do not overlap (a conservative test: overlap does not prove equality)."""
    return not a.overlaps(b)


def ratio_differs_from_one(e: Estimate) -> bool:
    """True when a ratio's interval excludes 1, i.e. the two models' speeds are resolved on this machine."""
    return e.excludes(1.0)


def compare_text(a: Estimate, b: Estimate, name_a: str, name_b: str, digits: int = 2) -> str:
    """One sentence stating, from the numbers alone, whether two estimates are distinguishable."""
    head = f"{name_a} {a.format(digits)} vs {name_b} {b.format(digits)}"
    if distinguishable(a, b):
        return f"{head}: different (intervals do not overlap)"
    return f"{head}: not distinguishable on this machine (intervals overlap)"
