"""*Resolution scaling*: the ladder table, the figures, and the complexity fits."""

from __future__ import annotations

import pandas as pd

from vmibench.analysis.estimates import slope_table
from vmibench.reports.figures import Builder
from vmibench.reports.selection import scaling_rows
from vmibench.reports.text import (
    CI_COLUMNS,
    LATENCY,
    Section,
    caption,
    md_table,
    pixels_of,
    setup_line,
    status_pivot,
    with_exponent_text,
)


def section_scaling(b: Builder) -> tuple[Section, pd.DataFrame]:
    d = b.data
    s = Section("Resolution scaling")
    sub = scaling_rows(d)
    if sub.empty:
        s.lines.append("*(no model measured at two or more resolutions)*")
        return s, pd.DataFrame()
    shown = status_pivot(sub, "model", "res", order=lambda cols: sorted(cols, key=lambda r: pixels_of(str(r))))
    cols = ["model", "res", "height", "width", "pixels", LATENCY, *CI_COLUMNS, "rounds", "latency_ms_iqr",
            "throughput_ips", "peak_mem_mb", "gmacs", "achieved_gflops", "utilisation", "status", "error"]  # fmt: skip
    csv = b.table(sub[[c for c in cols if c in sub.columns]], "resolution_sweep")
    s.lines += ["Median latency (ms), batch 1; failed cells show their status:", ""]
    s.lines += md_table(shown)
    s.lines += ["", caption(sub, f"`{csv}`")]
    setup = setup_line(sub)
    figs = [
        ("latency_vs_resolution", LATENCY, "median latency (ms)", "Latency vs input pixels (log-log)"),
        ("throughput_vs_resolution", "throughput_ips", "images / s", "Throughput vs input pixels"),
        ("memory_vs_resolution", "peak_mem_mb", "peak memory rise (MB)", "Peak memory vs input pixels"),
        ("utilisation_vs_resolution", "utilisation", "achieved / matmul peak", "Utilisation vs input pixels"),
    ]
    for name, y, ylabel, title in figs:
        s.lines += b.lines_figure(sub, name, group="model", x="pixels", y=y, title=title,
                                  xlabel="input pixels (H x W)", ylabel=ylabel, setup=setup)  # fmt: skip
    fits = slope_table(sub, d.samples_latency, ["model"], "pixels", [LATENCY, "peak_mem_mb", "gmacs"])
    if not fits.empty:
        fits_csv = b.table(fits, "resolution_fits")
        s.lines += ["", "Complexity fits: slope of log(metric) vs log(pixels) (tokens are proportional to pixels) "
                        "on the upper half of each model's ladder (at least 3 sizes); latency exponents with a "
                        "bootstrap 95% interval from the raw samples (memory and GMACs: one reading per size, no "
                        "interval):", ""]  # fmt: skip
        s.lines += md_table(with_exponent_text(fits), ["model", "metric", "exponent", "r2", "n", "x_min", "x_max"])
        s.lines += ["", caption(sub, f"`{fits_csv}`", "x_min/x_max = pixel range of the fit")]
    return s, fits
