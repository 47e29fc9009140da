"""*Resolution scaling*: the ladder table, the figures, and the complexity fits."""

from __future__ import annotations

import pandas as pd

from vmibench.analysis.estimates import slope_table
from vmibench.reports.figures import Builder
from vmibench.reports.selection import SQUARE, scaling_rows
from vmibench.reports.text import (
    CI_COLUMNS,
    LATENCY,
    Section,
    caption,
    md_table,
    pixels_of,
    res_label,
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
            "throughput_ips", "peak_mem_mb", "gmacs", "gbytes_moved", "achieved_gflops", "utilisation", "roofline_frac",
            "bound", "aspect", "status", "error"]  # fmt: skip
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
    sizes = sub.drop_duplicates("pixels").sort_values("pixels")
    ticks = {float(p): res_label(r).replace("x", "×") for p, r in zip(sizes["pixels"], sizes["res"], strict=True)}
    for name, y, ylabel, title in figs:
        s.lines += b.lines_figure(sub, name, group="series", x="pixels", y=y, title=title,
                                  xlabel="input size (H × W; axis: pixel count, log); non-square sizes are their own "
                                  "series", ylabel=ylabel, setup=setup, xticks=ticks)  # fmt: skip
    all_fits = slope_table(sub, d.samples_latency, ["model", "aspect"], "pixels", [LATENCY, "peak_mem_mb", "gmacs"])
    # the reviewer answers read the square ladders: a fit never mixes aspect ratios
    fits = all_fits[all_fits["aspect"] == SQUARE].drop(columns="aspect") if not all_fits.empty else all_fits
    if not all_fits.empty:
        fits_csv = b.table(all_fits, "resolution_fits")
        s.lines += ["", "Complexity fits: slope of log(metric) vs log(pixels) (tokens are proportional to pixels) "
                        "on the upper half of each model's ladder (at least 3 sizes), one fit per aspect ratio; "
                        "latency exponents with a bootstrap 95% interval from the raw samples (memory and GMACs: one "
                        "reading per size, no interval):", ""]  # fmt: skip
        s.lines += md_table(with_exponent_text(all_fits), ["model", "aspect", "metric", "exponent", "r2", "n", "x_min",
                                                           "x_max"])  # fmt: skip
        s.lines += ["", caption(sub, f"`{fits_csv}`", "x_min/x_max = pixel range of the fit")]
    return s, fits
