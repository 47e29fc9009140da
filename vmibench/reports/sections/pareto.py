"""*Accuracy vs latency*: ImageNet-1k top-1 against latency at 224, with the Pareto front.

Only ImageNet-1k numbers are plotted as ImageNet top-1: the paper's (``published``, at 224 only), the released
checkpoint's where its README differs, and ours where measured on the full validation set (50,000 images, 1,000
classes).  Accuracy measured on any other set is listed by the set's name and size, never as ImageNet top-1.
"""

from __future__ import annotations

import pandas as pd

from vmibench.analysis.estimates import CI_COLUMNS, LATENCY
from vmibench.reports import plots
from vmibench.reports.figures import Builder
from vmibench.reports.selection import DISCUSSED, accuracy_rows, dataset_label, latency_224, top1_column
from vmibench.reports.text import Section, md_table, short_setup

SOURCES = {"published": "published (paper)", "measured": "measured (ImageNet-1k val)",
           "released": "released checkpoint (README)"}  # fmt: skip


def _points(sub: pd.DataFrame, top: pd.DataFrame) -> pd.DataFrame:
    frame = sub.merge(top, on="model")
    released = frame[frame["released_top1"].notna() & (frame["top1_source"] == "published")]
    released = released.assign(top1=released["released_top1"], top1_source="released")
    frame = pd.concat([frame, released], ignore_index=True)
    return frame.assign(top1_source=frame["top1_source"].map(SOURCES))


def _toy_sets(d) -> list[str]:  # type: ignore[no-untyped-def]
    """Accuracy rows of sets other than the full ImageNet-1k validation set, named by the set."""
    acc = accuracy_rows(d)
    toy = acc[~acc["imagenet"].astype(bool)] if not acc.empty else acc
    if toy.empty:
        return []
    shown = toy.assign(dataset=[dataset_label(r) for _, r in toy.iterrows()])
    return ["", "Measured on other sets (not ImageNet top-1, not plotted):", "",
            *md_table(shown, ["model", "res", "dataset", "top1", "top5"])]  # fmt: skip


def section_pareto(b: Builder) -> Section:
    d = b.data
    s = Section("Accuracy vs latency")
    sub = latency_224(d)
    sub = sub[sub["status"] == "ok"] if not sub.empty else sub
    if sub.empty:
        s.lines.append("*(no 224 latency rows)*")
        return s
    frame = _points(sub.drop(columns=["released_top1"], errors="ignore"), top1_column(d, sub["model"].tolist()))
    if frame.empty:
        s.lines.append("*(no ImageNet-1k top-1 at 224 for these models)*")
        s.lines += _toy_sets(d)
        return s
    csv = b.table(frame[["model", LATENCY, *CI_COLUMNS, "top1", "top1_source", "gmacs"]], "accuracy_vs_latency")
    rel = b.figure(
        lambda p: plots.scatter_labelled(frame, x=LATENCY, y="top1", label="model", path=p, marker_col="top1_source",
                                         logy=False, pareto=True, title="ImageNet-1k top-1 vs latency at 224",
                                         xlabel="median latency (ms), batch 1", ylabel="ImageNet-1k top-1 (%)",
                                         setup=short_setup(frame), xerr=CI_COLUMNS, labelled=DISCUSSED),
        "accuracy_vs_latency",
    )  # fmt: skip
    s.lines += [f"![accuracy vs latency]({rel})", "",
                "*Figure: ImageNet-1k top-1 at 224 vs latency: the paper's (published), the released checkpoint's "
                "where its README differs, ours where measured on the full validation set; published numbers printed "
                f"at another resolution are left out. Data: `{csv}`.*"]  # fmt: skip
    s.lines += _toy_sets(d)
    return s
