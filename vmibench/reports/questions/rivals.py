"""Question (2): VMINet against MLLA and FLatten Transformer -- matched comparisons only.

Groups are matched from the model records (published numbers at 224): by GMACs within ``GMACS_MATCH`` and,
separately, by top-1 within ``TOP1_MATCH`` points (the released checkpoint's top-1 where its README differs from the
paper's).  Top-1, GMACs and latency in a row are always at one resolution.  Verdicts are the pre-registered ones
(VMINet-B against MLLA-T and FLatten-Swin-T over the ladder), and paired verdicts for any other GMACs match the data
holds (marked as not pre-registered).
"""

from __future__ import annotations

import math

import pandas as pd

from vmibench.questions import RATIO
from vmibench.reports.figures import Builder
from vmibench.reports.questions.answer import Answer, at_every_size, count_verdicts, group_row
from vmibench.reports.selection import ReportData, latency_224, published_at
from vmibench.reports.text import Section, fmt, fmt_latency, join, md_table

GMACS_MATCH = 0.25  # GMACs within 25% of each other: a like-for-like pair
TOP1_MATCH = 1.0  # top-1 within 1 point
TITLE = "(2) VMINet against MLLA and FLatten Transformer, matched"


def _records(d: ReportData) -> pd.DataFrame:
    """Models with an ok latency row: family, published GMACs and top-1 (at 224), released top-1, latency at 224."""
    lat = d.latency[d.latency["status"] == "ok"] if not d.latency.empty else d.latency
    at_224 = latency_224(d)
    at_224 = at_224[at_224["status"] == "ok"].set_index("model") if not at_224.empty else at_224
    pub = published_at(d)
    rows = []
    for m in dict.fromkeys(lat["model"] if not lat.empty else []):
        if m not in pub.index:
            continue
        p = pub.loc[m]
        released = p["released_top1"]
        row = at_224.loc[m] if not at_224.empty and m in at_224.index else None
        rows.append({"model": m, "family": p["family"], "gmacs": p["published_gmacs"],
                     "gmacs_ours": None if row is None else row.get("gmacs"), "top1_paper": p["published_top1"],
                     "top1_released": released, "top1": released if math.isfinite(released) else p["published_top1"],
                     "latency_224": "not measured at 224" if row is None else fmt_latency(row)})  # fmt: skip
    return pd.DataFrame(rows)


def matches(records: pd.DataFrame, col: str, close) -> dict[str, list[str]]:  # type: ignore[no-untyped-def]
    """For each VMINet variant, the other families' models whose ``col`` is ``close`` to its own."""
    if records.empty:
        return {}
    ours = records[records["family"] == "vminet"]
    others = records[records["family"] != "vminet"]
    found = {}
    for _, v in ours.iterrows():
        if not math.isfinite(v[col]):
            continue
        found[v["model"]] = [
            o["model"] for _, o in others.iterrows() if math.isfinite(o[col]) and close(v[col], o[col])
        ]
    return found


def question_rivals(b: Builder, table: pd.DataFrame, levels: dict[int, str]) -> Answer:
    d = b.data
    answer = Answer(section=Section(TITLE))
    s = answer.section
    records = _records(d)
    by_gmacs = matches(records, "gmacs", lambda a, c: abs(c / a - 1) <= GMACS_MATCH)
    by_top1 = matches(records, "top1", lambda a, c: abs(c - a) <= TOP1_MATCH)
    q2 = table[(table["question"] == "q2") & (table["kind"] == RATIO)]
    pairs = list(dict.fromkeys([*zip(q2["a"], q2["b"], strict=True), *((v, c) for v, rs in by_gmacs.items()
                                                                       for c in rs)]))  # fmt: skip
    verdicts = at_every_size(d, q2, pairs, "q2")
    top = records.set_index("model") if not records.empty else records
    for (a, c), rows in verdicts.groupby(["a", "b"], sort=False) if not verdicts.empty else []:
        if not rows["registered"].any():
            continue  # matches found in the records but not pre-registered: listed in the section, not answered
        tag = "" if rows["registered"].all() else " (partly pre-registered)"
        answer.rows.append(group_row(f"(2) {a} vs {c}{tag}", rows, d, levels, unit="sizes",
                                     caveat=_caveat(top, a, c)))  # fmt: skip
    if records.empty:
        s.lines.append("Not measured here: sweep vminet_b, mlla_t and flatten_swin_t (cpu-default preset).")
        return answer
    registered = [(a, c) for a, c in pairs if (a, c) in set(zip(q2["a"], q2["b"], strict=True))] or pairs
    shown = [m for m in dict.fromkeys(m for pair in registered for m in pair) if m in top.index]
    if shown:
        frame = top.loc[shown].reset_index()
        csv = b.table(frame, "q2_matched")
        s.lines += ["GMACs and top-1 from the model records at 224 (paper; `top1_released` where the released "
                    "checkpoint scores otherwise), beside the latency at 224, median ms [95% CI]. Table: "
                    f"`{csv}`.", "", *md_table(frame, ["model", "gmacs", "gmacs_ours", "top1_paper", "top1_released",
                                                       "latency_224"])]  # fmt: skip
    s.lines += ["", f"Matched by GMACs (within {GMACS_MATCH:.0%}): " + _pairs(by_gmacs) + ". By top-1 (released "
                f"checkpoint where it differs, within {TOP1_MATCH:g} point): " + _pairs(by_top1) + "."]  # fmt: skip
    if not verdicts.empty:
        csv = b.table(verdicts, "q2_verdicts")
        others = sorted({f"{a}/{c}" for a, c, r in zip(verdicts["a"], verdicts["b"], verdicts["registered"],
                                                        strict=True) if not r})  # fmt: skip
        s.lines += ["", "Latency ratio a/b per size of the pre-registered pairs (paired by round)"
                    + (f"; the other matches ({len(others)}, not pre-registered) are in `{csv}`" if others else "")
                    + ":", ""]  # fmt: skip
    for (a, c), rows in verdicts.groupby(["a", "b"], sort=False) if not verdicts.empty else []:
        if not rows["registered"].any():
            continue
        s.lines.append(f"- {a}/{c}: {count_verdicts(rows, 'sizes')}; "
                       + ", ".join(f"{int(r.at)}{'' if r.registered else '*'}: {_ratio(r)}"
                                   for r in rows.itertuples(index=False)) + ".")  # fmt: skip
    below = [t.split("; ", 1)[-1] for a, c in registered if "below" in (t := _caveat(top, a, c))]
    if below:
        s.lines += ["", "Accuracy: " + "; ".join(below) + "."]
    return answer


def _ratio(r) -> str:  # type: ignore[no-untyped-def]
    if not math.isfinite(r.ci_low):
        return "no interval"
    return f"{r.value:.2f}x [{r.ci_low:.2f}, {r.ci_high:.2f}] {r.verdict}"


def _pairs(found: dict[str, list[str]]) -> str:
    text = "; ".join(f"{v} ~ {join(rs)}" for v, rs in found.items() if rs)
    return text or "no pair in these rows"


def _caveat(top: pd.DataFrame, a: str, c: str) -> str:
    """``GMACs 4.8 vs 4.15; top-1 80.9 (released) below 82.1`` from the records."""
    if top.empty or a not in top.index or c not in top.index:
        return ""
    ra, rc = top.loc[a], top.loc[c]
    text = f"GMACs {fmt(ra['gmacs'])} vs {fmt(rc['gmacs'])}"
    if math.isfinite(ra["top1"]) and math.isfinite(rc["top1"]):
        source = " (released)" if math.isfinite(ra["top1_released"]) else ""
        relation = "below" if ra["top1"] < rc["top1"] else "vs"
        text += f"; {a} top-1 {fmt(ra['top1'])}{source} {relation} {c} {fmt(rc['top1'])}"
    return text
