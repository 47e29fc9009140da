"""What every reviewer answer hands the report: rows of the *Answers* table, aggregated from verdict-table rows
(:func:`vmibench.analysis.comparisons.evaluate`), and its short section.

A group of comparisons (one pair over a ladder of sizes, or one kind of comparison over several models) becomes one
row: the verdict counted over the group ("slower at 4 of 4 sizes"), the effect at its headline comparison with its
interval and calibrated level, where it was measured, and the main caveat computed from the rows it rests on.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import pandas as pd

from vmibench.analysis.comparisons import evaluate, main_rows
from vmibench.analysis.intervals import (
    DEFAULT_MARGIN,
    EQUIVALENT,
    FASTER,
    HIGHER,
    LOWER,
    NO_INTERVAL,
    SLOWER,
    UNDETERMINED,
)
from vmibench.questions import EXPONENT, OPS, RATIO, Comparison
from vmibench.reports.selection import ReportData
from vmibench.reports.text import Section

VERDICT_ORDER = (FASTER, SLOWER, HIGHER, LOWER, EQUIVALENT, UNDETERMINED, NO_INTERVAL)
MIN_FIT_SIZES = 3  # a fit on fewer distinct sizes is a line through two points: "too few sizes", never a verdict
TOO_FEW_SIZES = "too few sizes"


@dataclass
class AnswerRow:
    question: str
    verdict: str
    effect: str
    where: str
    caveat: str  # the caveat of this row
    machine: str = ""  # the machine caveat of its rows (stated once under the table where every row shares it)


@dataclass
class Answer:
    """One reviewer question's rows of the *Answers* table and its short section."""

    rows: list[AnswerRow] = field(default_factory=list)
    section: Section = field(default_factory=lambda: Section(""))


def paired_verdicts(d: ReportData, comparisons: list[Comparison]) -> pd.DataFrame:
    """Verdict rows of comparisons that were not pre-registered: the same paired intervals and three-way verdicts
    as the pre-registered ones (never the overlap of two separate intervals)."""
    return evaluate(comparisons, *d.comparison_inputs(), margin=DEFAULT_MARGIN)


def at_every_size(d: ReportData, registered: pd.DataFrame, pairs: list[tuple[str, str]], question: str,
                  table: str = "latency") -> pd.DataFrame:  # fmt: skip
    """Ratio verdicts of each (a, b) pair at every size both have: the pre-registered rows (``registered``) where they
    have an interval, and paired verdicts, not pre-registered, at the other sizes; column ``registered`` says which."""
    frame = main_rows(d.ops if table == OPS else d.latency, table)
    name, size = ("op", "seq_len") if table == OPS else ("model", "height")
    registered = registered.assign(registered=True)
    extra = []
    for a, b in pairs:
        common = set(frame.loc[frame[name] == a, size]) & set(frame.loc[frame[name] == b, size]) if not frame.empty \
            else set()  # fmt: skip
        mine = registered[(registered["a"] == a) & (registered["b"] == b)]
        done = set(mine.loc[mine["ci_low"].notna(), "at"])
        extra += [Comparison(question, RATIO, a, b, table, int(s)) for s in sorted(common - done)]
    more = paired_verdicts(d, extra).assign(registered=False) if extra else pd.DataFrame()
    if not more.empty:  # a declared size measured only now: its paired verdict replaces the empty declared row
        replaced = set(zip(more["a"], more["b"], more["at"], strict=True))
        keep = [(a, b, s) not in replaced for a, b, s in zip(registered["a"], registered["b"], registered["at"],
                                                                 strict=True)]  # fmt: skip
        registered = registered[keep]
    out = pd.concat([f for f in (registered, more) if not f.empty]) if not (registered.empty and more.empty) \
        else registered  # fmt: skip
    return out.sort_values(["a", "b", "at"]) if not out.empty else out


def count_verdicts(rows: pd.DataFrame, unit: str, prep: str = "at") -> str:
    """``slower at 3 of 4 sizes; undetermined at 1`` over a group's verdict rows."""
    if rows.empty:
        return "not measured"
    counts = Counter(rows["verdict"])
    n = len(rows)
    parts = [f"{v} {prep} {counts[v]}" for v in VERDICT_ORDER if counts[v]]
    if len(parts) == 1 and counts[NO_INTERVAL] == n:
        return "no interval (not measured)"
    parts[0] += f" of {n} {unit}"
    return "; ".join(parts)


def fmt_value(value: float, kind: str) -> str:
    if not math.isfinite(value):
        return "--"
    return f"{value:+.2f}" if kind == EXPONENT else f"{value:.2f}x"


def effect_text(row: pd.Series | None, level: str) -> str:
    """``1.31x [1.20, 1.43] (95%, 94.6% actual)`` of one verdict row; ``--`` without an interval."""
    if row is None or not math.isfinite(float(row["ci_low"])):
        return "--"
    k = str(row["kind"])
    return f"{fmt_value(row['value'], k)} [{fmt_value(row['ci_low'], k)}, {fmt_value(row['ci_high'], k)}] ({level})"


def headline(rows: pd.DataFrame, prefer: str | None = None) -> pd.Series | None:
    """The row a group's effect is quoted at: ``prefer`` (a name) where it has an interval, else the largest size
    with an interval."""
    have = rows[pd.to_numeric(rows["ci_low"], errors="coerce").notna()]
    if have.empty:
        return None
    if prefer is not None and (have["a"] == prefer).any():
        return have[have["a"] == prefer].iloc[0]
    return have.sort_values("at").iloc[-1]


def sizes_text(rows: pd.DataFrame, table: str) -> str:
    """``224-1024 px`` or ``L=256-16384`` over the sizes of rows that have an interval (else all rows)."""
    have = rows[pd.to_numeric(rows["ci_low"], errors="coerce").notna()]
    sizes = sorted({int(a) for a in (have if not have.empty else rows)["at"]})
    if not sizes:
        return ""
    span = str(sizes[0]) if len(sizes) == 1 else f"{sizes[0]}-{sizes[-1]}"
    return f"L={span}" if table == OPS else f"{span} px"


def machine_caveat(frame: pd.DataFrame) -> str:
    """``1-thread CPU; the papers' GPU claims are not tested by this run`` -- from the rows' device and threads."""
    if frame.empty:
        return "not measured in this run"

    def values(col: str) -> list[str]:
        return sorted({str(v) for v in frame[col].dropna() if str(v)}) if col in frame.columns else []

    devices, threads, names = values("device"), values("threads"), values("device_name")
    gpu = any(dev.startswith("cuda") for dev in devices)
    kind = "GPU" if gpu else "CPU"
    text = f"{'/'.join(threads) or '?'}-thread {kind}" if not gpu else f"GPU ({', '.join(names) or '?'})"
    # the rounds are left out: they differ from row to row, and a caveat every row shares is said once
    if not gpu:
        text += "; the papers' GPU claims are not tested by this run"
    return text


def rows_of(d: ReportData, names: set[str], table: str = "latency") -> pd.DataFrame:
    """The ok rows of the named models (or ops) a group of comparisons rests on."""
    frame = d.ops if table == OPS else d.latency
    if frame.empty:
        return frame
    col = "op" if table == OPS else "model"
    return frame[frame[col].isin(names) & (frame["status"] == "ok")]


def level_of(rows: pd.DataFrame, levels: dict[int, str]) -> str:
    """The calibrated level label for the median round count of ``rows``."""
    rounds = pd.to_numeric(rows["rounds"], errors="coerce")
    rounds = rounds[rounds > 0]
    k = int(rounds.median()) if not rounds.empty else 0
    return levels.get(k) or levels.get(0, "95%")


def group_row(question: str, rows: pd.DataFrame, d: ReportData, levels: dict[int, str], *, unit: str,
              prep: str = "at", prefer: str | None = None, caveat: str = "",
              table: str = "latency") -> AnswerRow:  # fmt: skip
    """One *Answers* row from one group of verdict rows."""
    names = set(rows["a"]) | {b for b in rows["b"] if b}
    base = machine_caveat(rows_of(d, names, table))
    where = (
        sizes_text(rows, table)
        if unit in ("sizes", "lengths")
        else ", ".join(sorted(rows.loc[pd.to_numeric(rows["ci_low"], errors="coerce").notna(), "a"]))
        or "none with an interval"
    )
    effect = effect_text(headline(rows, prefer), level_of(rows, levels))
    return AnswerRow(question, count_verdicts(rows, unit, prep), effect, where, caveat, base)


def undetermined_note() -> str:
    return (f"Verdicts are three-way with a {DEFAULT_MARGIN:.0%} margin: {FASTER}/{SLOWER} (or {HIGHER}/{LOWER}) by "
            f"at least the margin, {EQUIVALENT} within it, {UNDETERMINED} otherwise.")  # fmt: skip
