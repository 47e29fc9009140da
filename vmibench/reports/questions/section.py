"""The *Answers* table and the reviewer questions' short sections, in order.

The table is what a reviewer reads first: one row per group of comparisons -- verdict counted over the group,
effect [interval, level as calibrated], where, main caveat -- every cell computed from the verdict table
(pre-registered comparisons, plus paired verdicts of matched comparisons the preset did not declare, marked so).
"""

from __future__ import annotations

import pandas as pd

from vmibench.reports.figures import Builder
from vmibench.reports.questions.answer import AnswerRow, undetermined_note
from vmibench.reports.questions.causal import question_causal
from vmibench.reports.questions.effvmamba import question_effvmamba
from vmibench.reports.questions.linear import question_linear
from vmibench.reports.questions.rivals import question_rivals
from vmibench.reports.sections.verdicts import calibrated_level
from vmibench.reports.text import Section, md_table

ANSWERS = "Answers"
COLUMNS = {"question": "question", "verdict": "verdict", "effect": "effect [interval, level]", "where": "where",
           "caveat": "main caveat"}  # fmt: skip


def section_questions(b: Builder, table: pd.DataFrame, calibration: pd.DataFrame) -> list[Section]:
    """The *Answers* section, then one short section per reviewer question."""
    rounds = {int(k) for k in pd.to_numeric(table["rounds"], errors="coerce").dropna()} | {0}
    levels = {k: calibrated_level(calibration, k, short=True) for k in rounds}
    answers = [question_linear(b, table, levels), question_rivals(b, table, levels),
               question_effvmamba(b, table, levels), question_causal(b, table, levels)]  # fmt: skip
    rows: list[AnswerRow] = [r for a in answers for r in a.rows]
    s = Section(ANSWERS)
    machines = {r.machine for r in rows}
    shared = machines.pop() if len(machines) == 1 else ""
    for r in rows:  # a machine caveat every row shares is said once, under the table
        r.caveat = "; ".join(c for c in (r.machine if not shared else "", r.caveat) if c) or "--"
    if rows:
        frame = pd.DataFrame([vars(r) for r in rows]).rename(columns=COLUMNS)
        s.lines += md_table(frame, list(COLUMNS.values()))
    else:
        s.lines.append("*No comparison could be made from these rows.*")
    if shared:
        s.lines += ["", f"Main caveat of every row: {shared}."]
    s.lines += ["", undetermined_note() + " Intervals: t-intervals over rounds of the ratio or exponent difference "
                "itself, paired by round; the level is the calibration study's where stored. Every comparison: "
                "[Appendix](#appendix)."]  # fmt: skip
    return [s, *(a.section for a in answers)]
