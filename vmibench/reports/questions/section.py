"""The *Reviewer questions* section: the answers in order, then how many of their comparisons were resolved."""

from __future__ import annotations

import pandas as pd

from vmibench.reports.questions.causal import question_causal
from vmibench.reports.questions.effvmamba import question_effvmamba
from vmibench.reports.questions.linear import question_linear
from vmibench.reports.questions.rivals import question_rivals
from vmibench.reports.selection import ReportData
from vmibench.reports.text import Section, Tally


def section_questions(data: ReportData, model_fits: pd.DataFrame, op_fits: pd.DataFrame) -> Section:
    """The four reviewer answers, then how many of their comparisons the intervals resolve."""
    tally = Tally()
    s = Section("Reviewer questions")
    for para in (question_linear(data, model_fits, tally), question_rivals(data, tally),
                 question_effvmamba(data, tally), question_causal(data, op_fits, tally)):  # fmt: skip
        s.lines += [*para, ""]
    s.lines += [tally.sentence(), "",
                "*Every number above is read from the tables of this report at generation time; intervals are "
                "bootstrap 95% intervals from the stored raw samples.*"]  # fmt: skip
    return s
