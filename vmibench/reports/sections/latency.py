"""*Latency, throughput and memory at 224*: the table and the latency-vs-GMACs figure (points the questions
discuss are labelled, the others drawn unlabelled)."""

from __future__ import annotations

from vmibench.analysis.estimates import CI_COLUMNS, LATENCY
from vmibench.reports import plots
from vmibench.reports.figures import Builder
from vmibench.reports.selection import DISCUSSED, latency_224, without_duplicate_utilisation
from vmibench.reports.text import Section, caption, md_table, short_setup


def section_latency(b: Builder) -> Section:
    d = b.data
    s = Section("Latency, throughput and memory at 224")
    sub = latency_224(d)
    if sub.empty:
        s.lines.append("*(no 224 x 224, batch-1 rows: run `vmibench sweep --models all --res 224`)*")
        return s
    sub = sub.assign(stale=[b.staleness.mark(str(m)) for m in sub["model"]])
    cols = ["model", LATENCY, "ci95", "rounds", "process_spread", "latency_ms_iqr", "n_iters", "throughput_ips",
            "peak_mem_mb", "gmacs", "gbytes_moved", "achieved_gflops", "utilisation", "roofline_frac", "bound",
            "scan_backend", "status", "stale"]  # fmt: skip
    cols = without_duplicate_utilisation(sub, cols)
    csv_cols = [c for c in cols if c != "ci95"] + [*CI_COLUMNS, "published_gmacs", "published_top1", "released_top1"]
    csv = b.table(sub[[c for c in csv_cols if c in sub.columns]], "latency_224")
    s.lines += md_table(sub, cols)
    s.lines += ["", caption(sub, f"`{csv}`", "ci95 = 95% t-interval over rounds of the median (on the rounds' "
                                            "log medians); process_spread = (max - min) / median of the per-round "
                                            "medians; roofline_frac = roofline time / latency (see Roofline); stale = "
                                            "code changed since measured")]  # fmt: skip
    ok = plots.drawable(sub[sub["status"] == "ok"], "gmacs", LATENCY)
    if ok.empty:
        s.lines += ["", "*Figure latency_vs_gmacs skipped: no row has both a GMACs count and a latency.*"]
        return s
    fig = b.figure(
        lambda p: plots.scatter_labelled(
            ok,
            x="gmacs",
            y=LATENCY,
            label="model",
            path=p,
            title="Latency vs GMACs at 224, batch 1",
            xlabel="GMACs per image (ours)",
            ylabel="median latency (ms)",
            setup=short_setup(ok),
            yerr=CI_COLUMNS,
            labelled=DISCUSSED,
        ),
        "latency_vs_gmacs",
    )
    s.lines += ["", f"![latency vs GMACs]({fig})", "", "*Figure: latency vs GMACs; labelled: the models the questions "
                                                       "discuss.*"]  # fmt: skip
    return s
