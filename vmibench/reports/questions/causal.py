"""Question (4): what does the causal mask of VMI-SA cost?  (Reconstruction: the released code has no causal mask.)

The mask's cost is the paired latency ratio of each causal form (``vmisa_recurrent``: cumulative sum;
``vmisa_matrix``: L x L mask) to the released global mixer ``vmisa``, with its three-way verdict, at every length
of the ops sweep (pre-registered where the preset declared it), then at VMINet-T's own stage token counts at 224
(from the record's stage strides): the measured ratio where a stage's L was measured, else the log-log
interpolation of the measured ratios, labelled as such.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from vmibench.analysis.estimates import LATENCY
from vmibench.analysis.intervals import decided
from vmibench.questions import OPS, RATIO
from vmibench.registry import is_registered, resolve_info
from vmibench.reports.figures import Builder
from vmibench.reports.questions.answer import Answer, at_every_size, group_row
from vmibench.reports.selection import SUBJECT, ReportData, main_ops
from vmibench.reports.text import Section, md_table, short_setup

FORMS = (("vmisa_recurrent", "recurrent"), ("vmisa_matrix", "matrix"))
BASE = "vmisa"
TITLE = "(4) The causal mask's cost (reconstruction)"


def mask_verdicts(d: ReportData, table: pd.DataFrame) -> pd.DataFrame:
    """Ratio verdicts of each causal form against ``vmisa`` at every L both have (pre-registered where declared)."""
    q4 = table[(table["question"] == "q4") & (table["kind"] == RATIO)]
    return at_every_size(d, q4, [(form, BASE) for form, _ in FORMS], "q4", OPS)


def stage_tokens(model: str = SUBJECT, res: int = 224) -> list[int]:
    """Token count of each stage of ``model`` at ``res`` from its record's stage strides (ceil, as built)."""
    if not is_registered(model):
        return []
    return [math.ceil(res / s) ** 2 for s in resolve_info(model).stage_strides]


OUTSIDE = "outside the measured L range"


def ratio_at(rows: pd.DataFrame, L: int) -> str:
    """The measured ratio and verdict at ``L``, else the log-log interpolation between the measured neighbours
    (labelled), else "outside the measured L range"."""
    have = rows[rows["ci_low"].notna()].sort_values("at")
    if have.empty:
        return "no interval"
    hit = have[have["at"] == L]
    if not hit.empty:
        r = hit.iloc[0]
        return f"{r['value']:.2f}x [{r['ci_low']:.2f}, {r['ci_high']:.2f}] {r['verdict']} (measured)"
    xs = have["at"].astype(float).to_numpy()
    if not xs[0] < L < xs[-1]:
        return f"{OUTSIDE} ({int(xs[0])}-{int(xs[-1])})"
    value = float(np.exp(np.interp(np.log(L), np.log(xs), np.log(have["value"].astype(float)))))
    i = int(np.searchsorted(xs, L))
    return f"~{value:.2f}x (interpolated between L={int(xs[i - 1])} and {int(xs[i])}, no verdict)"


def decided_from(rows: pd.DataFrame) -> str:
    """``slower from L=1024 on``: the smallest L from which every longer length has the same decided verdict."""
    ordered = rows.sort_values("at")
    verdicts = list(ordered["verdict"])
    if not verdicts or not decided(verdicts[-1]):
        return "not decided at the longest length"
    i = len(verdicts) - 1
    while i > 0 and verdicts[i - 1] == verdicts[-1]:
        i -= 1
    return f"{verdicts[-1]} from L={int(ordered['at'].iloc[i])} on"


def question_causal(b: Builder, table: pd.DataFrame, levels: dict[int, str]) -> Answer:
    d = b.data
    answer = Answer(section=Section(TITLE))
    s = answer.section
    main = main_ops(d.ops) if not d.ops.empty else d.ops
    rows = mask_verdicts(d, table) if not main.empty else pd.DataFrame()
    if rows.empty:
        s.lines.append("Not measured here: run `vmibench ops --ops vmisa,vmisa_recurrent,vmisa_matrix`.")
        return answer
    for form, name in FORMS:
        sub = rows[rows["a"] == form]
        if not sub.empty:
            answer.rows.append(group_row(f"(4) {name} mask / {BASE}", sub, d, levels, unit="lengths", table=OPS,
                                         caveat="reconstruction; " + decided_from(sub)))  # fmt: skip
    first = main.iloc[0]
    s.lines.append(f"Latency of each causal form over the released `{BASE}` ({first['dtype']}, dim {first['dim']}, "
                   f"batch {first['batch']}), paired by round, at every length measured:")  # fmt: skip
    lengths = sorted(set(rows["at"]))
    grid = {"L": [int(L) for L in lengths]}
    for form, name in FORMS:
        sub = rows[rows["a"] == form]
        measured = set(sub.loc[sub["ci_low"].notna(), "at"])
        grid[f"{name} / {BASE}"] = [ratio_at(sub, int(L)).replace(" (measured)", "") if L in measured else
                                    "no interval" if L in set(sub["at"]) else "" for L in lengths]  # fmt: skip
    s.lines += ["", *md_table(pd.DataFrame(grid))]
    tokens = stage_tokens()
    if tokens:
        parts, outside = [], []
        for i, L in enumerate(tokens, 1):
            cells = {name: ratio_at(rows[rows["a"] == form], L) for form, name in FORMS if (rows["a"] == form).any()}
            if all(c.startswith(OUTSIDE) for c in cells.values()):
                outside.append((i, L))  # said once for all such stages, not once per stage and form
            else:
                parts.append(f"stage {i} (L={L:,}): " + "; ".join(f"{name} {c}" for name, c in cells.items()))
        if outside:
            stages, sizes = ", ".join(str(i) for i, _ in outside), ", ".join(f"{L:,}" for _, L in outside)
            parts.append(f"stage{'s' if len(outside) > 1 else ''} {stages} (L={sizes}): {OUTSIDE} of every form")
        s.lines += ["", f"At {SUBJECT}'s own stage token counts at 224 (from its stage strides): " + ". ".join(parts)
                    + "."]  # fmt: skip
    skipped = main[(main["op"] == "vmisa_matrix") & (main["status"] != "ok")]
    if not skipped.empty:
        first_skip = skipped.sort_values("seq_len").iloc[0]
        s.lines += ["", f"vmisa_matrix was not run from L={int(first_skip['seq_len'])} ({first_skip['status']}: "
                        f"{first_skip['error']})."]  # fmt: skip
    s.lines += b.lines_figure(main, "ops_latency_vs_L", group="op", x="seq_len", y=LATENCY,
                              title="Token mixers: latency vs L", xlabel="sequence length L",
                              ylabel="median latency (ms)", setup=short_setup(main))  # fmt: skip
    return answer
