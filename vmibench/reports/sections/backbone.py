"""*Dense-prediction backbones*: reviewer question (1) where the field uses these models.

Detectors and segmenters run a backbone at 800x1280 to 1024x2048 and consume its multi-scale features, not its
logits.  ``vmibench sweep --task backbone`` times exactly that (timm ``features_only``: the stage maps from
``forward_intermediates``, no head); this section tabulates those rows, compares the subject with each rival at
every size it shares with it (ratios with 95% t-intervals over rounds, paired by round, and the three-way verdict
with the 10% margin), and says for every size-tied model what was adapted to build it at these sizes.
"""

from __future__ import annotations

import pandas as pd

from vmibench.analysis.estimates import LATENCY, ratio_of
from vmibench.registry import is_registered, resolve_info
from vmibench.reports.figures import Builder
from vmibench.reports.selection import SUBJECT
from vmibench.reports.text import Section, Tally, caption, ci_text, md_table, ratio_clause

TITLE = "Dense-prediction backbones"


def _pixels(frame: pd.DataFrame) -> pd.Series:
    return pd.to_numeric(frame["height"], errors="coerce") * pd.to_numeric(frame["width"], errors="coerce")


def _comparisons(rows: pd.DataFrame, samples: pd.DataFrame, tally: Tally) -> list[str]:
    ok = rows[(rows["status"] == "ok") & (rows["batch"] == 1)]
    subject = ok[ok["model"] == SUBJECT]
    lines = []
    for _, s in subject.sort_values("pixels").iterrows():
        rivals = ok[(ok["res"] == s["res"]) & (ok["model"] != SUBJECT)]
        if rivals.empty:
            continue
        clauses = [f"{r['model']} {ratio_clause(ratio_of(s, r, samples), SUBJECT, r['model'], tally)}"
                   for _, r in rivals.sort_values("model").iterrows()]  # fmt: skip
        lines.append(f"- at {s['res']}, {SUBJECT} latency / rival latency: " + "; ".join(clauses) + ".")
    return lines


def _largest(rows: pd.DataFrame) -> list[str]:
    """Per model, the largest size that ran and the first that did not (out of memory, timeout, ...)."""
    parts = []
    for model, group in rows[rows["batch"] == 1].groupby("model", sort=True):
        ok = group[group["status"] == "ok"]
        failed = group[group["status"] != "ok"].sort_values("pixels")
        text = (
            f"{model}: largest ok {ok.sort_values('pixels')['res'].iloc[-1]}" if not ok.empty else f"{model}: none ok"
        )
        if not failed.empty:
            text += f", {failed['status'].iloc[0]} at {failed['res'].iloc[0]}"
        parts.append(text)
    return parts


def _adaptations(models: list[str]) -> list[str]:
    """What each size-tied model changes to be built at a detection/segmentation size (from its record)."""
    lines = []
    for model in models:
        info = resolve_info(model) if is_registered(model) else None
        if info is not None and info.fixed_input_size:
            lines.append(f"- **{model}** is built for each input size: {info.adaptation.rstrip('.')}.")
    return lines


def section_backbone(b: Builder) -> Section:
    s = Section(TITLE)
    rows = b.data.backbone
    if rows.empty:
        s.lines.append("*(no backbone rows: run `vmibench sweep --models vminet_t,vmamba_t,mlla_t,flatten_swin_t,"
                       "swin_t --task backbone` -- detection 800x1280 / 1024x1024, segmentation 512x512 / 512x2048 / "
                       "1024x2048)*")  # fmt: skip
        return s
    rows = rows.assign(pixels=_pixels(rows))
    rows = rows.assign(ci95=[ci_text(lo, hi) for lo, hi in zip(rows["latency_ms_ci_low"], rows["latency_ms_ci_high"],
                                                                strict=True)])  # fmt: skip
    rows = rows.sort_values(["batch", "model", "pixels"])
    cols = ["model", "res", "batch", LATENCY, "ci95", "peak_mem_mb", "gmacs", "status"]
    csv = b.table(rows[[c for c in [*cols, "latency_ms_ci_low", "latency_ms_ci_high"] if c != "ci95"
                        and c in rows.columns]], "backbone")  # fmt: skip
    s.lines += [
        "Multi-scale features as a detector or segmenter consumes them (timm `features_only`: every stage's map "
        "from `forward_intermediates`, no head), at the detection (800x1280, 1024x1024) and segmentation "
        "(512x512, 512x2048, 1024x2048) input sizes.",
        "",
        *md_table(rows, cols),
        "",
        caption(rows, f"`{csv}`", "gmacs = the feature extractor's count, per image"),
        "",
    ]
    tally = Tally()
    comparisons = _comparisons(rows, b.data.samples_latency, tally)
    if comparisons:
        s.lines += [f"**(1) at dense-prediction sizes.** {SUBJECT} against each rival at batch 1 (95% t-intervals "
                    "over rounds, paired by round):", "", *comparisons, "", tally.sentence(), ""]  # fmt: skip
    else:
        s.lines += [f"*No size has both {SUBJECT} and a rival measured ok at batch 1: nothing to compare.*", ""]
    s.lines += ["Largest size each model ran at batch 1: " + "; ".join(_largest(rows)) + ".", ""]
    adapted = _adaptations(sorted(rows["model"].unique()))
    if adapted:
        s.lines += ["Models whose weights or buffers are tied to their input size are built for each size above; "
                    "what that changes against the official code (from their records):", "", *adapted]  # fmt: skip
    return s
