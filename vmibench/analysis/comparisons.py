"""Verdicts of pre-registered comparisons (:mod:`vmibench.questions`) from stored rows and their raw samples.

Pure: frames in, one verdict row per comparison out.  Ratios are paired by round (the t-interval of per-round log
ratios, :func:`vmibench.analysis.bootstrap.ratio_ci`); exponents are refitted in each round and differenced per
round (:func:`vmibench.analysis.bootstrap.slope_difference_ci`), never compared by the overlap of two intervals.
A ratio whose two cells were also timed as an interleaved pair (:mod:`vmibench.measure.kinds.pair`, table
``pairs``: alternated call by call in one process per round) is evaluated on the pair, whose rounds pair call by
call; column ``design`` says which.  Each verdict is three-way with a practical margin
(:mod:`vmibench.analysis.intervals`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from vmibench.analysis.bootstrap import Estimate, ratio_ci, slope_ci, slope_difference_ci
from vmibench.analysis.estimates import rounds_of, same_run
from vmibench.analysis.fits import fit_loglog
from vmibench.analysis.intervals import (
    DEFAULT_LEVEL,
    DEFAULT_MARGIN,
    NO_INTERVAL,
    Interval,
    decided,
    difference_verdict,
    ratio_verdict,
    t_quantile,
)
from vmibench.questions import EXPONENT, OPS, Comparison

VERDICT_COLUMNS = ["question", "comparison", "kind", "a", "b", "at", "value", "ci_low", "ci_high", "level", "method",
                   "rounds", "verdict", "margin", "cells", "design"]  # fmt: skip
PAIRS = "pairs"  # the table of interleaved pairs
INTERLEAVED, SEPARATE = "interleaved", "separate cells"  # column design: how a verdict's two sides were timed
NAME = {"latency": "model", "ops": "op"}
SIZE = {"latency": "height", "ops": "seq_len"}


def main_rows(frame: pd.DataFrame, table: str) -> pd.DataFrame:
    """The rows comparisons are made on: ok, batch 1, square, inference of the classifier, the first dtype."""
    if frame.empty:
        return frame
    out = frame[frame["status"] == "ok"]
    if table == "latency":
        for col, value in (("mode", "infer"), ("task", "classify")):
            if col in out.columns:
                out = out[out[col].fillna(value) == value]
        out = out[(out["batch"] == 1) & (out["height"] == out["width"])]
    elif table == PAIRS:
        out = out[out["batch"] == 1]
    if "dtype" in out.columns and not out.empty:
        out = out[out["dtype"] == sorted(out["dtype"].unique(), key=lambda d: (d != "fp32", d))[0]]
    return out


def _lookup(frame: pd.DataFrame, table: str, name: str) -> pd.DataFrame:
    sub = frame[frame[NAME[table]] == name]
    return sub.sort_values(SIZE[table]).drop_duplicates(SIZE[table], keep="last")


def _row_at(frame: pd.DataFrame, table: str, name: str, size: int) -> pd.Series | None:
    sub = _lookup(frame, table, name)
    sub = sub[sub[SIZE[table]] == size]
    return None if sub.empty else sub.iloc[-1]


def _pair_row(c: Comparison, pairs: pd.DataFrame) -> pd.Series | None:
    """The newest ok interleaved pair of a ratio's two cells, if one was measured."""
    if pairs.empty:
        return None
    sub = pairs[(pairs["member_table"] == c.table) & (pairs["a"] == c.a) & (pairs["b"] == c.b) & (pairs["at"] == c.at)]
    return None if sub.empty else sub.sort_values("row_id").iloc[-1]


def _ratio(c: Comparison, frame: pd.DataFrame, by_row: dict[int, list[list[float]]], level: float,
           pairs: pd.DataFrame, pair_rounds: dict[int, list[list[float]]]) -> tuple:  # fmt: skip
    ra, rb = _row_at(frame, c.table, c.a, c.at), _row_at(frame, c.table, c.b, c.at)
    if ra is None or rb is None:
        return None, [], 0, SEPARATE
    pair = _pair_row(c, pairs)
    pair_samples = pair_rounds.get(int(pair["row_id"])) if pair is not None else None
    if pair is not None and pair_samples:
        from vmibench.measure.kinds import split_calls

        rounds = [split_calls(s) for s in pair_samples]
        sa, sb = [a for a, _ in rounds], [b for _, b in rounds]
        cells, design, paired = [str(pair["cell_key"])], INTERLEAVED, True
    else:
        sa, sb = by_row.get(int(ra["row_id"])), by_row.get(int(rb["row_id"]))  # type: ignore[assignment]
        cells, design, paired = [str(ra["cell_key"]), str(rb["cell_key"])], SEPARATE, same_run(ra, rb)
    if not sa or not sb:
        return None, cells, 0, design
    e = ratio_ci(sa, sb, level=level, paired=paired)
    if c.per_gmac:  # the counts are exact: the members' own rows have them
        scale = float(rb["gmacs"]) / float(ra["gmacs"])
        e = Estimate(e.value * scale, e.low * scale, e.high * scale, e.level, e.n_boot, e.method)
    return e, cells, min(len(sa), len(sb)), design


def _exponent(c: Comparison, frame: pd.DataFrame, by_row: dict[int, list[list[float]]], level: float) -> tuple:
    la = _lookup(frame, c.table, c.a)
    lb = _lookup(frame, c.table, c.b) if c.b else None
    sizes = sorted(set(la[SIZE[c.table]]) & (set(lb[SIZE[c.table]]) if lb is not None else set(la[SIZE[c.table]])))
    rows_a = [la[la[SIZE[c.table]] == s].iloc[-1] for s in sizes]
    rows_b = [lb[lb[SIZE[c.table]] == s].iloc[-1] for s in sizes] if lb is not None else []
    cells = [str(r["cell_key"]) for r in (*rows_a, *rows_b)]
    if len(sizes) < 3:  # a fit on two sizes is a line through two points: never a verdict
        return None, cells, 0
    xs = [float(s) ** (2 if c.table != OPS else 1) for s in sizes]  # pixels for models, tokens for ops
    sa = [by_row.get(int(r["row_id"])) for r in rows_a]
    if any(not s for s in sa):
        return None, cells, 0
    k = min(len(s) for s in sa)  # type: ignore[arg-type]
    if lb is not None:
        sb = [by_row.get(int(r["row_id"])) for r in rows_b]
        if any(not s for s in sb):
            return None, cells, 0
        paired = all(same_run(x, y) for x, y in zip(rows_a, rows_b, strict=True))
        e = slope_difference_ci(xs, sa, sb, level=level, paired=paired)  # type: ignore[arg-type]
        return e, cells, min(k, min(len(s) for s in sb))  # type: ignore[arg-type]
    slope = slope_ci(xs, sa, upper_fraction=1.0, level=level)  # type: ignore[arg-type]
    if slope is None:
        return None, cells, 0
    ref = c.reference
    if ref is None:
        fit = fit_loglog(xs, [float(r["gmacs"]) for r in rows_a], upper_fraction=1.0)
        ref = fit.slope if fit is not None else math.nan
    return Estimate(slope.value - ref, slope.low - ref, slope.high - ref, slope.level, slope.n_boot,
                    slope.method), cells, k  # fmt: skip


def evaluate(
    comparisons: Sequence[Comparison],
    frames: dict[str, pd.DataFrame],
    samples: dict[str, pd.DataFrame],
    *,
    margin: float = DEFAULT_MARGIN,
    level: float = DEFAULT_LEVEL,
) -> pd.DataFrame:
    """One row per comparison: estimate [interval], its level and method, rounds used, the three-way verdict
    (``no interval`` where a side is missing or has too few rounds or sizes) and the cell keys it rests on.

    ``frames[table]`` are stored rows of that table with ``row_id`` (``latency``, ``ops``, and ``pairs`` where
    interleaved pairs were measured); ``samples[table]`` their raw samples."""
    by_table = {t: main_rows(f, t) for t, f in frames.items()}
    by_rows = {t: rounds_of(samples.get(t)) for t in frames}
    pairs, pair_rounds = by_table.get(PAIRS, pd.DataFrame()), by_rows.get(PAIRS, {})
    rows = []
    for c in comparisons:
        frame = by_table.get(c.table, pd.DataFrame())
        e, cells, k, design = (None, [], 0, SEPARATE)
        if not frame.empty and c.kind == EXPONENT:
            e, cells, k = _exponent(c, frame, by_rows[c.table], level)
        elif not frame.empty:
            e, cells, k, design = _ratio(c, frame, by_rows[c.table], level, pairs, pair_rounds)
        if e is None:
            verdict = NO_INTERVAL
        elif c.kind == EXPONENT:
            verdict = difference_verdict(e, margin)
        else:
            verdict = ratio_verdict(e, margin)
        rows.append({"question": c.question, "comparison": c.label(), "kind": c.kind, "a": c.a, "b": c.b,
                     "at": c.at, "value": np.nan if e is None else e.value, "ci_low": np.nan if e is None else e.low,
                     "ci_high": np.nan if e is None else e.high, "level": level,
                     "method": "" if e is None else e.method, "rounds": k, "verdict": verdict, "margin": margin,
                     "cells": " ".join(cells), "design": design})  # fmt: skip
    return pd.DataFrame(rows, columns=VERDICT_COLUMNS)


def stability(a: pd.DataFrame, b: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, float]]:
    """Two independent runs' verdict tables (:func:`evaluate`) side by side: each comparison's estimates, verdicts,
    whether they agree, and whether each run's estimate lies inside the other's interval; and the summary rates
    (``agree``, ``decided`` over both runs' verdicts, ``inside``: estimates inside the other run's interval).

    ``inside`` tests what an interval within one run cannot see: if runs differed only as rounds of one run do,
    most estimates would fall inside the other run's 95% interval; far fewer means a run-level variance component
    (the shared host's state over an hour) that rounds within one run do not sample."""
    both = a[["question", "comparison"]].copy()
    for tag, t in (("a", a), ("b", b)):
        both[f"{tag}_estimate"] = [f"{v:.3g} [{lo:.3g}, {hi:.3g}]" for v, lo, hi in
                                   zip(t["value"], t["ci_low"], t["ci_high"], strict=True)]  # fmt: skip
        both[f"{tag}_verdict"] = t["verdict"].to_numpy()
    both["agree"] = both["a_verdict"] == both["b_verdict"]
    both["b_in_a"] = ((a["ci_low"] <= b["value"]) & (b["value"] <= a["ci_high"])).to_numpy()
    both["a_in_b"] = ((b["ci_low"] <= a["value"]) & (a["value"] <= b["ci_high"])).to_numpy()
    n = max(len(both), 1)
    decided_share = (sum(decided(v) for v in both["a_verdict"]) + sum(decided(v) for v in both["b_verdict"])) / (2 * n)
    rates = {"agree": float(both["agree"].sum()) / n, "decided": decided_share,
             "inside": float(both["b_in_a"].sum() + both["a_in_b"].sum()) / (2 * n)}  # fmt: skip
    return both, rates


def _standard_error(row: pd.Series) -> tuple[float, float, int] | None:
    """A verdict row's (estimate, standard error, rounds) on its interval's scale (log for a ratio), the error
    backed out of the t-interval's half-width; None without an interval."""
    k = int(row["rounds"]) if np.isfinite(row["rounds"]) else 0
    ratio = row["kind"] != EXPONENT
    with np.errstate(divide="ignore", invalid="ignore"):
        est, lo, hi = (np.log(v) if ratio else v for v in (row["value"], row["ci_low"], row["ci_high"]))
    if k < 2 or not (np.isfinite(est) and np.isfinite(lo) and np.isfinite(hi)):
        return None
    return float(est), float(hi - lo) / 2 / t_quantile(0.5 + float(row["level"]) / 2, k - 1), k


def expected_agreement(
    a: pd.DataFrame, b: pd.DataFrame, *, rounds_factor: float = 1.0, trials: int = 2000, seed: int = 0
) -> tuple[pd.Series, float]:
    """How often two independent runs would agree, at the interval widths two runs had: each comparison's chance of
    the same verdict twice, and the mean over the comparisons with an interval in both runs (NaN for the others).

    A model, not a measurement: a comparison's truth is taken as the mean of the two runs' estimates (log scale for
    ratios), its standard error per run from each interval's half-width and its t quantile, and each simulated run
    draws its estimate from that normal and its interval's width from the t-interval's chi-square spread.
    ``rounds_factor`` asks the same of runs with that many times the rounds (standard errors shrink by its square
    root): what it would take to reach an agreement goal.  Agreement near 1 needs comparisons far from the margin's
    edges in units of their standard error; one whose truth lies about one interval half-width beyond an edge is
    decided in about half of the runs, and agrees about half the time.  Runs that differ by more than their
    intervals say (:func:`run_level`) agree less than this."""
    rng = np.random.default_rng(seed)
    chances = []
    for (_, x), (_, y) in zip(a.iterrows(), b.iterrows(), strict=True):
        ends = [_standard_error(x), _standard_error(y)]
        if ends[0] is None or ends[1] is None:
            chances.append(math.nan)
            continue
        ratio, level, margin = x["kind"] != EXPONENT, float(x["level"]), float(x["margin"])
        se = float(np.mean([e[1] for e in ends])) / math.sqrt(rounds_factor)
        k = max(2, round(np.mean([e[2] for e in ends]) * rounds_factor))
        truth = float(np.mean([e[0] for e in ends]))
        verdict = ratio_verdict if ratio else difference_verdict
        scale = t_quantile(0.5 + level / 2, k - 1) * se
        runs = []
        for _ in range(2):
            est = truth + se * rng.standard_normal(trials)
            half = scale * np.sqrt(rng.chisquare(k - 1, trials) / (k - 1))
            lows, highs = (np.exp(est - half), np.exp(est + half)) if ratio else (est - half, est + half)
            bounds = zip(lows, highs, strict=True)
            runs.append([verdict(Interval(math.nan, lo, hi, level, k), margin) for lo, hi in bounds])
        chances.append(float(np.mean([p == q for p, q in zip(*runs, strict=True)])))
    series = pd.Series(chances, index=a.index, name="expected_agree")
    return series, float(series.mean()) if series.notna().any() else math.nan


def family(row: pd.Series) -> str:
    """The family a verdict row's variance belongs to: an exponent against a constant or another exponent, or a
    ratio measured as an interleaved pair or as separate cells, of models or of token mixers (whose pairs vary
    with each process's layout rather than with the moment; :meth:`vmibench.questions.Comparison.label` writes
    their size as ``L=``)."""
    if row["kind"] == EXPONENT:
        return "exponent difference" if isinstance(row["b"], str) and row["b"] else "exponent vs constant"
    what = " (token mixers)" if " L=" in str(row.get("comparison", "")) else ""
    return f"ratio, {row['design'] or SEPARATE}{what}"


RUN_LEVEL_COLUMNS = ["family", "comparisons", "runs", "within_se", "between_sd", "run_level_sd", "run_level_share"]


def run_level(tables: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Do independent runs differ by more than their own intervals say?  One row per :func:`family` of
    comparisons, over the comparisons with an interval in every run (``tables``: two or more verdict tables of the
    same comparisons, :func:`evaluate`):

    * ``within_se``: the median standard error of one run's estimate (backed out of its interval);
    * ``between_sd``: the root mean over comparisons of the variance of the runs' estimates;
    * ``run_level_sd``: the part of that which the runs' own standard errors do not explain, by the method of
      moments, ``sqrt(max(0, mean(var(estimates) - mean(se^2))))``; a run samples it once, whatever its rounds;
    * ``run_level_share``: ``run_level_sd^2 / (run_level_sd^2 + within_se^2)``, the share of a typical estimate's
      variance across runs that more rounds within a run would not remove.

    On the log scale for ratios, in exponent units for exponents.  With two runs each comparison's variance has
    one degree of freedom: read the families, not single comparisons."""
    if len(tables) < 2:
        raise ValueError("run_level needs at least two runs")
    fams = tables[0].apply(family, axis=1) if len(tables[0]) else pd.Series(dtype=object)
    rows = []
    for fam in sorted(set(fams)):
        excess, ses = [], []
        for i in np.flatnonzero((fams == fam).to_numpy()):
            ends = [_standard_error(t.iloc[i]) for t in tables]
            if any(e is None for e in ends):
                continue
            est = np.array([e[0] for e in ends])  # type: ignore[index]
            se = np.array([e[1] for e in ends])  # type: ignore[index]
            excess.append((float(est.var(ddof=1)), float(np.mean(se**2))))
            ses.extend(se.tolist())
        if not excess:
            continue
        between = float(np.mean([v for v, _ in excess]))
        tau2 = max(0.0, between - float(np.mean([w for _, w in excess])))
        within = float(np.median(ses))
        rows.append({"family": fam, "comparisons": len(excess), "runs": len(tables), "within_se": within,
                     "between_sd": math.sqrt(between), "run_level_sd": math.sqrt(tau2),
                     "run_level_share": tau2 / (tau2 + within**2) if tau2 + within**2 > 0 else math.nan})  # fmt: skip
    return pd.DataFrame(rows, columns=RUN_LEVEL_COLUMNS)
