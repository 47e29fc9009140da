"""Question (1): does linear complexity hold at high resolution?  Exponents with intervals, and the crossover."""

from __future__ import annotations

import math

import pandas as pd

from vmibench.analysis import Estimate
from vmibench.analysis.estimates import slope_estimate
from vmibench.reports.sections.ops import crossover_row
from vmibench.reports.selection import LADDER_ORDER, LINEAR_RIVALS, SOFTMAX_REFERENCE, SUBJECT, ReportData, scaling_rows
from vmibench.reports.text import (
    LATENCY,
    NOT_DISTINGUISHABLE,
    Tally,
    exponent_clause,
    fmt_estimate,
    has_interval,
)


def _fit_row(fits: pd.DataFrame, key: str, value: str, metric: str) -> pd.Series | None:
    if fits.empty:
        return None
    row = fits[(fits[key] == value) & (fits["metric"] == metric)]
    return None if row.empty else row.iloc[0]


def _res_range(row: pd.Series) -> str:
    return f"{round(math.sqrt(row['x_min']))}^2-{round(math.sqrt(row['x_max']))}^2 px"


def _ladder(fits: pd.DataFrame) -> list[str]:
    """Models with a latency fit: the subject and its rivals in a fixed order, then any others by name."""
    have = set(fits.loc[fits["metric"] == LATENCY, "model"])
    return [m for m in LADDER_ORDER if m in have] + sorted(have - set(LADDER_ORDER))


def _model_exponents(fits: pd.DataFrame, model: str) -> str:
    """``vminet_t 1.00 [0.99, 1.01] (R^2 1.00, 224^2-896^2 px; peak memory 1.00, GMACs 1.00)``."""
    lat = _fit_row(fits, "model", model, LATENCY)
    assert lat is not None
    est = slope_estimate(fits, "model", model)
    extra = [f"{label} {row['slope']:.2f}" for label, metric in (("peak memory", "peak_mem_mb"), ("GMACs", "gmacs"))
             if (row := _fit_row(fits, "model", model, metric)) is not None]  # fmt: skip
    return f"{model} {fmt_estimate(est)} (R^2 {lat['r2']:.2f}, {_res_range(lat)}{''.join('; ' + e for e in extra)})"  # type: ignore[arg-type]


def _against_linear(e: Estimate, tally: Tally) -> str:
    """Whether an exponent's interval excludes 1 (linear cost)."""
    if not has_interval(e):
        tally.add(None)
        return "no interval to compare with 1 (linear)"
    resolved = e.excludes(1.0)
    tally.add(resolved)
    if not resolved:
        return f"its interval includes 1, so it is {NOT_DISTINGUISHABLE} from linear cost"
    return f"its interval excludes 1: {'below' if e.high < 1 else 'above'} linear on this machine"


def _subject_comparisons(fits: pd.DataFrame, tally: Tally) -> str:
    """VMINet-Ti's latency exponent against 1, each other linear model's and the softmax reference's."""
    vm = slope_estimate(fits, "model", SUBJECT)
    if vm is None:
        return ""
    text = f" VMINet-Ti ({SUBJECT}) latency exponent {fmt_estimate(vm)}: {_against_linear(vm, tally)}."
    rivals = [(m, e) for m in LINEAR_RIVALS if (e := slope_estimate(fits, "model", m)) is not None]
    if rivals:
        text += " Against the other linear models: " + "; ".join(exponent_clause(vm, e, m, tally)
                                                                for m, e in rivals) + "."  # fmt: skip
    ref = slope_estimate(fits, "model", SOFTMAX_REFERENCE)
    if ref is not None:
        text += f" Against the softmax-attention {SOFTMAX_REFERENCE}: "
        text += exponent_clause(vm, ref, SOFTMAX_REFERENCE, tally) + "."
    return text


def _resolution_crossover(d: ReportData) -> str:
    """Input size (pixels) from which VMINet-Ti is faster than the softmax reference, with its interval."""
    sub = scaling_rows(d)
    if sub.empty:
        return ""
    ok = sub[sub["status"] == "ok"]
    a, b = ok[ok["model"] == SUBJECT], ok[ok["model"] == SOFTMAX_REFERENCE]
    if a.empty or b.empty or not set(a["pixels"]) & set(b["pixels"]):
        return ""
    # on the side of a square input (sqrt of pixels): the same crossover, printed as a resolution ("≤ 224")
    side = {"side": lambda f: f["pixels"] ** 0.5}
    found = crossover_row(a.assign(**side), b.assign(**side), "side", d.samples_latency)
    return (f" {SUBJECT} is faster than {SOFTMAX_REFERENCE} from an input side of {found['crossover']} px "
            "(square-equivalent side, sqrt of the pixel count; crossover of the latency curves on their shared "
            "sizes).")  # fmt: skip


def question_linear(d: ReportData, fits: pd.DataFrame, tally: Tally) -> list[str]:
    head = "**(1) Does the linear complexity hold at high resolution?** "
    if fits.empty or not (fits["metric"] == LATENCY).any():
        return [head + "Not measured here: run a resolution sweep (`vmibench sweep --preset cpu-default`)."]
    parts = [_model_exponents(fits, m) for m in _ladder(fits)]
    return [head + "Latency exponents vs pixel count (tokens are proportional to pixels; 1 = linear, 2 = quadratic) "
            "with their bootstrap 95% intervals; peak-memory and GMACs exponents are one reading per size, without "
            "interval: " + "; ".join(parts) + "." + _subject_comparisons(fits, tally) + _resolution_crossover(d)
            + " (Table: `tables/resolution_fits.csv`; figures `latency_vs_resolution.png`, "
            "`memory_vs_resolution.png`.)"]  # fmt: skip
