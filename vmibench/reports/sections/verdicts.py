"""*Pre-registered comparisons*: the verdict of every comparison the preset declared before measuring, three-way with
a practical margin, from intervals of the difference or ratio itself (paired by round), at their calibrated level.
"""

from __future__ import annotations

import math

import pandas as pd

from vmibench.analysis.comparisons import INTERLEAVED, SEPARATE, evaluate
from vmibench.analysis.intervals import DEFAULT_MARGIN, decided
from vmibench.questions import Comparison
from vmibench.reports.figures import Builder
from vmibench.reports.selection import ReportData
from vmibench.reports.text import Section, md_table

QUESTION_NAMES = {"q1": "(1) linear complexity", "q2": "(2) VMINet vs MLLA and FLatten",
                  "q3": "(3) EfficientVMamba's cost per GMAC", "q4": "(4) the causal mask's cost"}  # fmt: skip
CALIBRATION_TABLE = "calibration"


def preset_comparisons() -> tuple[Comparison, ...]:
    """The comparisons reports evaluate: the cpu-default preset's (those the bench pre-registered)."""
    from vmibench.sweep import PRESETS

    return PRESETS["cpu-default"].comparisons


def verdict_table(data: ReportData, comparisons: tuple[Comparison, ...] | None = None) -> pd.DataFrame:
    """Every pre-registered comparison's estimate, interval and verdict on the report's rows."""
    comparisons = preset_comparisons() if comparisons is None else comparisons
    return evaluate(comparisons, *data.comparison_inputs(), margin=DEFAULT_MARGIN)


def calibrated_level(calibration: pd.DataFrame, rounds: int, *, short: bool = False) -> str:
    """``"95% nominal, 94.6% actual (simulated, 3 rounds)"`` from a stored calibration study, or the nominal
    level with a pointer to the study when none is stored for that round count; ``short``: ``"95%, 94.6% actual"``
    or ``"95% nominal"`` (for a table cell)."""
    if calibration.empty:
        return "95% nominal" if short else ("95% nominal (actual coverage not measured for this data: `vmibench check "
                                            "calibrate`)")  # fmt: skip
    sim = calibration[(calibration["method"] == "t-rounds") & (calibration["source"] == "simulated")]
    sim = sim.assign(k=pd.to_numeric(sim["rounds"], errors="coerce")).dropna(subset=["k"])
    if sim.empty:
        return "95% nominal" if short else "95% nominal (no simulated t-rounds coverage stored)"
    sim = sim.iloc[::-1]  # the newest study first (a store keeps every study it was given, in order)
    row = sim.iloc[(sim["k"] - rounds).abs().argsort(kind="stable").iloc[0]]
    if short:
        return f"95%, {float(row['actual']):.1%} actual"
    return f"95% nominal, {float(row['actual']):.1%} actual (simulated at this data's variance, {int(row['k'])} rounds)"


def _fmt(value: float, kind: str) -> str:
    if not math.isfinite(value):
        return "--"
    return f"{value:+.2f}" if kind == "exponent" else f"{value:.2f}x"


def section_verdicts(b: Builder, calibration: pd.DataFrame, table: pd.DataFrame) -> Section:
    s = Section("Pre-registered comparisons", level=3)
    csv = b.table(table, "verdicts")
    n_decided = int(sum(decided(v) for v in table["verdict"]))
    shown = table.assign(
        estimate=[f"{_fmt(v, k)} [{_fmt(lo, k)}, {_fmt(hi, k)}]" for v, lo, hi, k in
                  zip(table["value"], table["ci_low"], table["ci_high"], table["kind"], strict=True)],
        question=[QUESTION_NAMES.get(q, q) for q in table["question"]],
    )  # fmt: skip
    rounds = int(pd.to_numeric(table["rounds"], errors="coerce").median()) if len(table) else 0
    design = table["design"] if "design" in table.columns else pd.Series(SEPARATE, index=table.index)
    n_pairs = int((design == INTERLEAVED).sum())
    pairs = (f" {n_pairs} ratio(s) rest on an interleaved pair (both cells alternated call by call in one process "
             "per round; design `interleaved`), the others on the two cells' own rows.") if n_pairs else ""  # fmt: skip
    s.lines += [
        f"{len(table)} comparisons were declared before measuring (the preset's); {n_decided} are decided "
        f"(different by at least the {DEFAULT_MARGIN:.0%} margin, or equivalent within it). Intervals: "
        f"t-interval over rounds of the ratio or exponent difference itself, paired by round; level "
        f"{calibrated_level(calibration, rounds)}. Ratios are a/b of latency (per GMAC where marked); "
        f"exponent rows are differences of log-log slopes in pixels (ops: tokens).{pairs} Full table: `{csv}`.",
        "",
    ]
    shown = shown.assign(design=design.replace({SEPARATE: "cells"}))
    s.lines += md_table(shown, ["question", "comparison", "estimate", "rounds", "design", "verdict"])
    return s
