"""Question (3): is EfficientVMamba slow for its FLOPs, and does its cost per GMAC grow with size?

From the data, either way: the pre-registered ``exp(effvmamba_t) - exp(GMACs)`` (latency exponent minus its own
GMACs exponent over its ladder) says whether its cost per GMAC grows with size; its ms per GMAC against the other
models comes from paired per-GMAC ratios (pre-registered at the ends of the ladder), and the roofline says whether
it is memory- or compute-bound and how far from its roof.
"""

from __future__ import annotations

import math

import pandas as pd

from vmibench.analysis.estimates import as_float
from vmibench.analysis.intervals import EQUIVALENT, HIGHER, LOWER, NO_INTERVAL
from vmibench.questions import EXPONENT, RATIO, Comparison
from vmibench.reports.figures import Builder
from vmibench.reports.questions.answer import (
    Answer,
    AnswerRow,
    count_verdicts,
    effect_text,
    group_row,
    headline,
    level_of,
    machine_caveat,
    paired_verdicts,
    rows_of,
)
from vmibench.reports.selection import ReportData, column_or_nan, latency_224
from vmibench.reports.text import Section, are, fmt, fmt_latency, join

NAME = "effvmamba_t"
TITLE = "(3) EfficientVMamba: slow for its FLOPs, and growing with size?"
LOW_FLOPS_SHARE = 0.5  # "few FLOPs for this set": fewer GMACs than at least half of the other models
ROOF_FAR, ROOF_NEAR = 0.75, 1.25  # roofline_frac against the others' median: "further" below, "closer" above


def gmacs_standing(ok: pd.DataFrame, model: str) -> str:
    """``fewer GMACs than 4 of the 5 other models with a count at 224 here, few for this set`` -- counted from the
    data, with the verdict conditional on that count (ties count as not fewer)."""
    counted = ok[pd.to_numeric(ok["gmacs"], errors="coerce") > 0]
    if model not in set(counted["model"]):
        return "no GMACs count stored here, so its FLOPs cannot be ranked"
    mine = float(counted.loc[counted["model"] == model, "gmacs"].astype(float).iloc[0])
    others = counted.loc[counted["model"] != model, "gmacs"].astype(float)
    if others.empty:
        return f"{fmt(mine)} GMACs, and no other model has a count to rank it against"
    more = int((others > mine).sum())
    verdict = ("few FLOPs for this set" if more >= LOW_FLOPS_SHARE * len(others) else
               "so it is not a low-FLOPs model in this set and the question's premise does not hold here")  # fmt: skip
    return f"fewer GMACs than {more} of the {len(others)} other models with a count at 224 here: {verdict}"


def _roofline_text(ok: pd.DataFrame, name: str) -> str:
    """Which models are memory- or compute-bound and how far each is from its roof, then where ``name`` stands:
    every verdict from ``bound`` / ``roofline_frac`` (see :mod:`vmibench.analysis.roofline`)."""
    have = ok[pd.to_numeric(column_or_nan(ok, "roofline_frac"), errors="coerce").notna()]
    if have.empty or name not in set(have["model"]):
        needs = (("a matmul-peak row", "peak_gflops"), ("a triad-bandwidth row", "bw_peak_gbs"),
                 ("a bytes-moved count", "gbytes_moved"))  # fmt: skip
        missing = [what for what, col in needs if column_or_nan(ok, col).isna().all()]
        why = ", ".join(missing) or f"no {name} row with GMACs, bytes moved and both roofs"
        return f" No roofline here ({why}): rerun `vmibench sweep`, which measures both roofs first."
    e = have[have["model"] == name].iloc[0]
    peak, bw = as_float(e["peak_gflops"]), as_float(e["bw_peak_gbs"])
    text = (f" Roofline (ridge {fmt(peak / bw)} FLOP/byte): {name} moves {fmt(e['gbytes_moved'])} GB per image, "
            f"{fmt(e['arith_intensity'])} FLOP/byte, so it is {e['bound']}-bound; its roofline time "
            f"{fmt(e['roofline_ms'])} ms is {fmt(e['roofline_frac'])} of its latency (roofline_frac).")  # fmt: skip
    others = have[have["model"] != name]
    memory = sorted(have.loc[have["bound"] == "memory", "model"])
    text += f" {len(memory)} of the {len(have)} models with a roofline {are(len(memory))} memory-bound."
    if others.empty:
        return text
    median = float(others["roofline_frac"].astype(float).median())
    frac = as_float(e["roofline_frac"])
    if frac < ROOF_FAR * median:
        verdict = (f"{name} is further from its roof than the others (median {fmt(median)}): it loses time that "
                   "neither its FLOPs nor its minimum traffic against the matmul and triad roofs explain (the profile "
                   "below, where there is one, says where it goes)")  # fmt: skip
    elif frac > ROOF_NEAR * median:
        verdict = (f"{name} is closer to its roof than the others (median {fmt(median)}): what it moves and computes "
                   "explains its latency better than theirs")  # fmt: skip
    else:
        verdict = (f"{name} is about as far from its roof as the others (median {fmt(median)}, within "
                   f"{ROOF_FAR:g}-{ROOF_NEAR:g}x)")  # fmt: skip
    return f"{text} {verdict}."


GROWTH = {HIGHER: "higher: its cost per GMAC grows with size", LOWER: "lower: its cost per GMAC falls with size",
          EQUIVALENT: "equivalent: its cost per GMAC does not grow with size (within the margin)",
          NO_INTERVAL: "no interval (needs 3 sizes with raw samples)"}  # fmt: skip


def _growth(row: pd.Series) -> str:
    return GROWTH.get(str(row["verdict"]), "undetermined: this run cannot say whether its cost per GMAC grows with "
                                          "size")  # fmt: skip


def _per_gmac(d: ReportData, table: pd.DataFrame, ok: pd.DataFrame) -> tuple[pd.DataFrame, bool]:
    """Per-GMAC latency ratios of EfficientVMamba against the others: the pre-registered ones where the data has
    them (True), else paired ratios at 224 against every other model with a GMACs count (False: not
    pre-registered)."""
    q3 = table[(table["question"] == "q3") & (table["kind"] == RATIO)]
    if (not q3.empty and q3["ci_low"].notna().any()) or ok.empty or NAME not in set(ok["model"]):
        return q3, True
    gmacs = pd.to_numeric(ok["gmacs"], errors="coerce")
    peers = [m for m, g in zip(ok["model"], gmacs, strict=True) if m != NAME and g > 0]
    return paired_verdicts(d, [Comparison("q3", RATIO, NAME, m, at=224, per_gmac=True) for m in peers]), False


def question_effvmamba(b: Builder, table: pd.DataFrame, levels: dict[int, str]) -> Answer:
    d = b.data
    answer = Answer(section=Section(TITLE))
    s = answer.section
    sub = latency_224(d)
    ok = sub[sub["status"] == "ok"] if not sub.empty else sub
    growth = table[(table["question"] == "q3") & (table["kind"] == EXPONENT) & (table["a"] == NAME)]
    text = []
    if not growth.empty:
        g = growth.iloc[0]
        answer.rows.append(AnswerRow("(3) effvmamba_t cost per GMAC vs size", _growth(g).split(":")[0]
                                     + (": grows" if g["verdict"] == HIGHER else ""),
                                     effect_text(headline(growth), level_of(growth, levels)),
                                     "its ladder", "", machine_caveat(rows_of(d, {NAME}))))  # fmt: skip
        text.append(f"Over its ladder, latency exponent minus GMACs exponent {effect_text(g, level_of(growth, levels))}"
                    f": {_growth(g)}.")  # fmt: skip
    measured = not d.latency.empty and NAME in set(d.latency["model"])
    if not measured:
        s.lines.append("Not measured here: sweep effvmamba_t with other models (cpu-default preset).")
        return answer
    if not ok.empty and NAME in set(ok["model"]):
        e = ok[ok["model"] == NAME].iloc[0]
        text.insert(0, f"At 224 {NAME} has {gmacs_standing(ok, NAME)}; latency {fmt_latency(e)}.")
    per_gmac, registered = _per_gmac(d, table, ok)
    if not per_gmac.empty and per_gmac["ci_low"].notna().any():
        row = group_row("(3) effvmamba_t ms per GMAC vs others" + ("" if registered else " (not pre-registered)"),
                        per_gmac, d, levels, unit="comparisons")  # fmt: skip
        row.where = (
            f"vs {join(dict.fromkeys(per_gmac['b']))} at {join(str(a) for a in dict.fromkeys(per_gmac['at']))} px"
        )
        answer.rows.append(row)
        text.append(
            f"Its ms per GMAC against the others{'' if registered else ' (not pre-registered)'}: "
            f"{count_verdicts(per_gmac, 'comparisons')} ("
            + ", ".join(f"{r.b}@{int(r.at)} {_short(r)}" for r in per_gmac.itertuples(index=False))
            + ")."
        )
    if not ok.empty and NAME in set(ok["model"]) and d.breakdown.empty:  # a profile says more: see below
        text.append(_roofline_text(ok, NAME).strip())
    s.lines.append(" ".join(text))
    s.lines += breakdown_hook(d)
    return answer


def _short(r) -> str:  # type: ignore[no-untyped-def]
    return f"{r.value:.2f}x {r.verdict}" if math.isfinite(r.ci_low) else "no interval"


def breakdown_hook(d: ReportData) -> list[str]:
    """Where EfficientVMamba's time goes at each profiled size, against the profiled models closest to it in
    GMACs: its largest class, and the class whose time share most exceeds its FLOP share, with intervals."""
    from vmibench.reports.sections.breakdown import class_rows, share_text

    rows = class_rows(d)
    if rows.empty or NAME not in set(rows["model"]):
        return []
    out = []
    gmacs = _profiled_gmacs(d)
    for res, sub in rows.groupby("res", sort=False):
        mine = sub[sub["model"] == NAME].sort_values("time_share", ascending=False)
        if mine.empty:
            continue
        top = mine.iloc[0]
        worst = mine.assign(x=mine["time_share"] - mine["flop_share"].fillna(0.0)).sort_values("x").iloc[-1]
        peers = sorted((m for m in set(sub["model"]) - {NAME}),
                       key=lambda m: abs(math.log(gmacs.get(m, math.nan) / gmacs.get(NAME, math.nan)))
                       if gmacs.get(m) and gmacs.get(NAME) else math.inf)[:2]  # fmt: skip
        versus = []
        for m in peers:
            theirs = sub[(sub["model"] == m) & (sub["op_class"] == top["op_class"])]
            share = share_text(theirs.iloc[0]) if not theirs.empty else "0%"
            versus.append(f"{share} of {m}'s")
        out.append(f"At {res} px (profiled), {NAME} spends {share_text(top)} of its time in `{top['op_class']}` "
                   f"({top['flop_share']:.0%} of its GMACs, {top['byte_share']:.0%} of its bytes)"
                   + (f"; in the profiled models nearest in GMACs it takes {' and '.join(versus)}" if versus else "")
                   + (f"; its time share most above its FLOP share is `{worst['op_class']}`"
                      if worst["op_class"] != top["op_class"] else "") + ".")  # fmt: skip
    return ["", " ".join(out), "See *Where the time goes* in the appendix."] if out else []


def _profiled_gmacs(d: ReportData) -> dict[str, float]:
    """GMACs per model at 224 from the latency rows (the profile's own counts are torch's, by class)."""
    sub = latency_224(d)
    if sub.empty:
        return {}
    return {m: float(g) for m, g in zip(sub["model"], pd.to_numeric(sub["gmacs"], errors="coerce"), strict=True)
            if g == g}  # fmt: skip
