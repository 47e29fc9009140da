"""Question (2): VMINet against MLLA and FLatten Transformer, as latency ratios with paired intervals."""

from __future__ import annotations

import math

from vmibench.reports.selection import (
    SUBJECT,
    ReportData,
    highest_common,
    model_gmacs,
    model_row,
    top1_column,
)
from vmibench.reports.text import Tally, fmt, fmt_latency, ratio_clause, ratio_of, res_label


def question_rivals(d: ReportData, tally: Tally) -> list[str]:
    head = "**(2) How does VMINet compare with MLLA and FLatten Transformer?** "
    pairs = [(SUBJECT, "mlla_t"), (SUBJECT, "flatten_swin_t"), ("vminet_b", "mlla_t"), ("vminet_b", "flatten_swin_t")]
    top = top1_column(d, [m for p in pairs for m in p]).set_index("model")
    bits = []
    for a, c in pairs:
        ra, rc = model_row(d, a), model_row(d, c)
        if ra is None or rc is None:
            continue
        acc = ""
        if a in top.index and c in top.index:
            acc = (f"; top-1 {top['top1'][a]:.1f} ({top['top1_source'][a]}) vs {top['top1'][c]:.1f} "
                   f"({top['top1_source'][c]})")  # fmt: skip
        bits.append(f"at 224, {a} {fmt_latency(ra)} vs {c} {fmt_latency(rc)}: "
                    f"{ratio_clause(ratio_of(ra, rc, d.samples_latency), a, c, tally)} (GMACs "
                    f"{fmt(model_gmacs(d, a))} vs {fmt(model_gmacs(d, c))}{acc})")  # fmt: skip
    hi = highest_common(d, [SUBJECT, "mlla_t", "flatten_swin_t"])
    if hi:
        res, rows = hi
        for c in ("mlla_t", "flatten_swin_t"):
            ratio = ratio_clause(ratio_of(rows[SUBJECT], rows[c], d.samples_latency), SUBJECT, c, tally)
            bits.append(f"at {res_label(res)}, {SUBJECT} {fmt_latency(rows[SUBJECT])} vs {c} {fmt_latency(rows[c])}: "
                        f"{ratio}")  # fmt: skip
    if not bits:
        return [head + "Not measured here: sweep vminet_t, vminet_b, mlla_t and flatten_swin_t at 224."]
    return [head + "Median latency [95% CI] and latency ratio [paired bootstrap 95% CI]: " + "; ".join(bits) + "."
            + _similar_gmacs(d) + " (Tables: `tables/latency_224.csv`, `tables/resolution_sweep.csv`.)"]  # fmt: skip


SIMILAR_GMACS = 0.2  # GMACs within 20% of each other: "similar", the like-for-like pairing of the comparison


def _similar_gmacs(d: ReportData) -> str:
    """Which VMINet variant matches the rivals' GMACs, as measured here (within ``SIMILAR_GMACS``)."""
    counted = {m: g for m in (SUBJECT, "vminet_b", "mlla_t", "flatten_swin_t")
               if (g := model_gmacs(d, m)) is not None and math.isfinite(g) and g > 0}  # fmt: skip
    rivals = [(m, counted[m]) for m in ("mlla_t", "flatten_swin_t") if m in counted]
    variants = [(m, counted[m]) for m in (SUBJECT, "vminet_b") if m in counted]
    if not rivals or not variants:
        return ""
    close = [m for m, g in variants if all(abs(g / r - 1) <= SIMILAR_GMACS for _, r in rivals)]
    names = ", ".join(m for m, _ in rivals)
    if not close:
        return f" No VMINet variant here has GMACs within {SIMILAR_GMACS:.0%} of {names}."
    return f" {', '.join(close)} {'has' if len(close) == 1 else 'have'} GMACs within {SIMILAR_GMACS:.0%} of {names}."
