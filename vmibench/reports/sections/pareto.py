"""*Accuracy vs latency*: top-1 (measured where stored, else published) against latency, with the Pareto front."""

from __future__ import annotations

from vmibench.reports import plots
from vmibench.reports.figures import Builder
from vmibench.reports.selection import latency_224, top1_column
from vmibench.reports.text import CI_COLUMNS, LATENCY, Section, setup_line


def section_pareto(b: Builder) -> Section:
    d = b.data
    s = Section("Accuracy vs latency")
    sub = latency_224(d)
    sub = sub[sub["status"] == "ok"] if not sub.empty else sub
    if sub.empty:
        s.lines.append("*(no 224 latency rows)*")
        return s
    top = top1_column(d, sub["model"].tolist())
    frame = sub.merge(top, on="model")
    if frame.empty:
        s.lines.append("*(no top-1 available)*")
        return s
    csv = b.table(frame[["model", LATENCY, *CI_COLUMNS, "top1", "top1_source", "gmacs"]], "accuracy_vs_latency")
    rel = b.figure(
        lambda p: plots.scatter_labelled(
            frame,
            x=LATENCY,
            y="top1",
            label="model",
            path=p,
            marker_col="top1_source",
            logy=False,
            pareto=True,
            title="ImageNet top-1 vs latency at 224 (published top-1 marked ^)",
            xlabel="median latency (ms), batch 1",
            ylabel="top-1 (%)",
            setup=setup_line(frame),
            xerr=CI_COLUMNS,
        ),
        "accuracy_vs_latency",
    )
    s.lines += [f"![accuracy vs latency]({rel})", "",
                f"*Figure: top-1 vs latency; top-1 is `measured` (vmibench accuracy) where the store has it, "
                f"otherwise `published` (model record, marked ^; for VMINet these are the paper's figures -- the "
                f"released checkpoints report lower ones, see the model notes). {setup_line(frame)}. "
                f"Data: `{csv}`.*"]  # fmt: skip
    return s
