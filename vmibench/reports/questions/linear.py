"""Question (1): does the linear complexity hold at high resolution -- and is what grows the algorithm or the machine?

Side by side per model: the exponent (in pixels) of its GMACs and of its bytes moved (analytic counts: the
algorithm) and of its measured latency with its interval (the algorithm on this machine), the local slope of each
segment of the ladder, and the verdict of the latency exponent against the larger count exponent.  Where latency
grows faster than both counts, the ops sweep says whether the mixer alone does too (then it is the machine: caches).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from vmibench.analysis import Estimate
from vmibench.analysis.estimates import LATENCY
from vmibench.analysis.fits import fit_loglog
from vmibench.analysis.intervals import EQUIVALENT, HIGHER, LOWER, difference_verdict
from vmibench.questions import EXPONENT, OPS, Comparison
from vmibench.reports.figures import Builder
from vmibench.reports.questions.answer import (
    MIN_FIT_SIZES,
    TOO_FEW_SIZES,
    Answer,
    fmt_value,
    group_row,
    paired_verdicts,
)
from vmibench.reports.selection import LADDER_ORDER, SOFTMAX_REFERENCE, SQUARE, SUBJECT, scaling_rows
from vmibench.reports.text import Section, join, md_table, short_setup
from vmibench.resolution import hxw_label

# the token mixer of each model that the ops sweep measures alone
MIXER = {"vminet_t": "vmisa", "vminet_xs": "vmisa", "vminet_s": "vmisa", "vminet_b": "vmisa",
         "mlla_t": "mlla_linear", "flatten_swin_t": "flatten_fla", "deit_t": "sdpa"}  # fmt: skip
TITLE = "(1) Linear complexity: the algorithm or the machine?"


def _ladders(d) -> dict[str, pd.DataFrame]:  # type: ignore[no-untyped-def]
    """Each model's ok, square, batch-1 rows, one per size, in ladder order."""
    sub = scaling_rows(d)
    if sub.empty:
        return {}
    ok = sub[(sub["status"] == "ok") & (sub["aspect"] == SQUARE)]
    names = [m for m in LADDER_ORDER if m in set(ok["model"])] + sorted(set(ok["model"]) - set(LADDER_ORDER))
    return {m: ok[ok["model"] == m].sort_values("pixels").drop_duplicates("pixels", keep="last") for m in names}


def _count_exponent(rows: pd.DataFrame, col: str) -> float:
    if col not in rows.columns:
        return math.nan
    fit = fit_loglog(rows["pixels"].tolist(), pd.to_numeric(rows[col], errors="coerce").tolist(), upper_fraction=1.0)
    return fit.slope if fit is not None else math.nan


def _exp(value: float) -> str:
    return f"{value:.2f}" if math.isfinite(value) else "--"


def _local_slopes(rows: pd.DataFrame) -> str:
    px, lat = rows["pixels"].astype(float).to_numpy(), rows[LATENCY].astype(float).to_numpy()
    slopes = np.diff(np.log(lat)) / np.diff(np.log(px))
    return ", ".join(f"{s:.2f}" for s in slopes)


def count_table(d) -> tuple[pd.DataFrame, list[str]]:  # type: ignore[no-untyped-def]
    """Per model: sizes, GMACs and bytes exponents, latency exponent [interval], local slopes, latency vs counts;
    and the models whose latency grows faster than both counts by the margin."""
    ladders = _ladders(d)
    fitted = [m for m, rows in ladders.items() if len(rows) >= MIN_FIT_SIZES]
    lat = paired_verdicts(d, [Comparison("q1", EXPONENT, m, reference=0.0) for m in fitted]).set_index("a") \
        if fitted else pd.DataFrame()  # fmt: skip
    out, faster = [], []
    for model, rows in ladders.items():
        sizes = f"{len(rows)} ({hxw_label(rows['res'].iloc[0])}-{hxw_label(rows['res'].iloc[-1])})"
        row = {"model": model, "sizes": sizes}
        if model not in fitted:
            out.append({**row, "latency exponent": TOO_FEW_SIZES})
            continue
        gm, by = _count_exponent(rows, "gmacs"), _count_exponent(rows, "gbytes_moved")
        r = lat.loc[model]
        e = Estimate(float(r["value"]), float(r["ci_low"]), float(r["ci_high"]))
        counts = [c for c in (gm, by) if math.isfinite(c)]
        versus = (
            "no count"
            if not counts
            else (difference_verdict(Estimate(e.value - max(counts), e.low - max(counts), e.high - max(counts))))
        )
        if versus == HIGHER:
            faster.append(model)
        text = f"{e.value:.2f}" + (f" [{e.low:.2f}, {e.high:.2f}]" if e.has_interval else " (no interval)")
        out.append({**row, "GMACs exp.": _exp(gm), "bytes exp.": _exp(by), "latency exponent": text,
                    "local slopes": _local_slopes(rows), "latency vs counts": versus})  # fmt: skip
    cols = ["model", "sizes", "GMACs exp.", "bytes exp.", "latency exponent", "local slopes", "latency vs counts"]
    return pd.DataFrame(out, columns=cols), faster


def _mixer_sentence(d, models: list[str]) -> str:  # type: ignore[no-untyped-def]
    """Whether the mixer of ``models`` alone grows faster than its own GMACs in the ops sweep."""
    mixers = [op for op in dict.fromkeys(MIXER.get(m, "") for m in models) if op]
    ops = set(d.ops["op"]) if not d.ops.empty else set()
    mixers = [op for op in mixers if op in ops]
    if not mixers:
        return " The ops sweep has no mixer of these models to tell the machine from the model."
    rows = paired_verdicts(d, [Comparison("q1", EXPONENT, op, table=OPS, reference=None) for op in mixers])
    parts = []
    for r in rows.itertuples(index=False):
        if not math.isfinite(r.ci_low):
            parts.append(f"`{r.a}` alone: no interval (needs 3 lengths with raw samples)")
            continue
        what = {HIGHER: "also grows faster than its own GMACs: that excess is the machine (caches), not the "
                        "algorithm"}.get(r.verdict, f"{r.verdict} against its own GMACs: the excess is not "
                                                    "explained by the mixer alone")  # fmt: skip
        parts.append(f"`{r.a}` alone (ops sweep) exponent minus GMACs exponent {fmt_value(r.value, EXPONENT)} "
                     f"[{fmt_value(r.ci_low, EXPONENT)}, {fmt_value(r.ci_high, EXPONENT)}]: {what}")  # fmt: skip
    return " " + "; ".join(parts) + "."


def question_linear(b: Builder, table: pd.DataFrame, levels: dict[int, str]) -> Answer:
    d = b.data
    q1 = table[(table["question"] == "q1") & (table["kind"] == EXPONENT)]
    answer = Answer(section=Section(TITLE))
    for other, label in (("", "(1) latency exponent vs 1 (linear)"),
                         (SOFTMAX_REFERENCE, f"(1) exponent vs {SOFTMAX_REFERENCE} (softmax)")):  # fmt: skip
        rows = q1[q1["b"] == other]
        if not rows.empty:
            answer.rows.append(group_row(label, rows, d, levels, unit="models", prep="for", prefer=SUBJECT,
                                         caveat="exponents in pixels over each model's whole ladder"))  # fmt: skip
    s = answer.section
    frame, faster = count_table(d)
    if frame.empty:
        s.lines.append("Not measured here: run a resolution sweep (`vmibench sweep --preset cpu-default`).")
        return answer
    csv = b.table(frame, "q1_exponents")
    s.lines += ["Exponents in pixels (1 = linear, 2 = quadratic) over each model's whole ladder: GMACs and bytes "
                "moved are analytic counts (the algorithm), latency is measured (t-interval over rounds); local "
                f"slopes per ladder segment; a fit needs {MIN_FIT_SIZES} sizes. Table: `{csv}`.", "",
                *md_table(frame)]  # fmt: skip
    if faster:
        s.lines += ["", f"Latency grows faster than both its GMACs and its bytes moved for {join(faster)} (by at "
                        "least the margin): the counts of the algorithm do not explain that growth."
                        + _mixer_sentence(d, faster)]  # fmt: skip
    fitted = frame[frame["latency exponent"] != TOO_FEW_SIZES]
    same = list(fitted.loc[fitted["latency vs counts"] == EQUIVALENT, "model"])
    slower = list(fitted.loc[fitted["latency vs counts"] == LOWER, "model"])
    unknown = list(fitted.loc[~fitted["latency vs counts"].isin([EQUIVALENT, LOWER, HIGHER]), "model"])
    if same:
        s.lines += ["", f"Latency grows as its counts do (equivalent within the margin) for {join(same)}: there the "
                        "ladder shows what the algorithm counts."]  # fmt: skip
    if slower:
        # sub-linear in the work: what sets the time does not scale with the input, so this is not the algorithm
        s.lines += ["", f"Latency grows slower than its counts (lower by at least the margin) for {join(slower)}: "
                        "costs that do not scale with the input (per-call overhead, or a device that larger inputs "
                        "use more fully) set the time over this ladder, so it shows the machine, not the algorithm's "
                        "complexity."]  # fmt: skip
    if unknown:
        s.lines += ["", f"This run cannot tell for {join(unknown)} (undetermined: intervals too wide for the "
                        "margin)."]  # fmt: skip
    s.lines += _figure(b)
    return answer


def _figure(b: Builder) -> list[str]:
    sub = scaling_rows(b.data)
    if sub.empty:
        return []
    sizes = sub.drop_duplicates("pixels").sort_values("pixels")
    ticks = {float(p): hxw_label(r).replace("x", "×") for p, r in zip(sizes["pixels"], sizes["res"], strict=True)}
    return b.lines_figure(sub, "latency_vs_resolution", group="series", x="pixels", y=LATENCY,
                          title="Latency vs input size, with O(N) and O(N²) guides", xlabel="input size (axis: pixel "
                          "count N, log)", ylabel="median latency (ms)", setup=short_setup(sub), xticks=ticks,
                          guides=True)  # fmt: skip
