"""*Resolution scaling*: the ladder table, the figures, and the complexity fits."""

from __future__ import annotations

from vmibench.analysis.estimates import CI_COLUMNS, LATENCY, slope_table
from vmibench.reports.figures import Builder
from vmibench.reports.selection import scaling_rows, without_duplicate_utilisation
from vmibench.reports.tables import status_pivot
from vmibench.reports.text import Section, caption, md_table, short_setup, with_exponent_text
from vmibench.resolution import hxw_label, pixels


def section_scaling(b: Builder) -> Section:
    d = b.data
    s = Section("Resolution scaling")
    sub = scaling_rows(d)
    if sub.empty:
        s.lines.append("*(no model measured at two or more resolutions)*")
        return s
    shown = status_pivot(sub, "model", "res", order=lambda cols: sorted(cols, key=pixels))
    cols = ["model", "res", "height", "width", "pixels", LATENCY, *CI_COLUMNS, "rounds", "latency_ms_iqr",
            "throughput_ips", "peak_mem_mb", "gmacs", "gbytes_moved", "achieved_gflops", "utilisation", "roofline_frac",
            "bound", "aspect", "status", "error"]  # fmt: skip
    cols = without_duplicate_utilisation(sub, cols)
    csv = b.table(sub[[c for c in cols if c in sub.columns]], "resolution_sweep")
    s.lines += ["Median latency (ms), batch 1; failed cells show their status:", ""]
    s.lines += md_table(shown)
    s.lines += ["", caption(sub, f"`{csv}`")]
    # latency vs size is question (1)'s figure; throughput at batch 1 is 1/latency and utilisation is latency over
    # GMACs: neither is drawn again
    sizes = sub.drop_duplicates("pixels").sort_values("pixels")
    ticks = {float(p): hxw_label(r).replace("x", "×") for p, r in zip(sizes["pixels"], sizes["res"], strict=True)}
    s.lines += b.lines_figure(sub, "memory_vs_resolution", group="series", x="pixels", y="peak_mem_mb",
                              title="Peak memory vs input size", xlabel="input size (axis: pixel count, log)",
                              ylabel="peak memory rise (MB)", setup=short_setup(sub), xticks=ticks)  # fmt: skip
    all_fits = slope_table(sub, d.samples_latency, ["model", "aspect"], "pixels", [LATENCY, "peak_mem_mb", "gmacs"])
    if not all_fits.empty:
        fits_csv = b.table(all_fits, "resolution_fits")
        s.lines += ["", "Complexity fits: slope of log(metric) vs log(pixels) (tokens are proportional to pixels) "
                        "on the upper half of each model's ladder (at least 3 sizes), one fit per aspect ratio; "
                        "latency exponents with a 95% t-interval over rounds (the slope refitted in each round; "
                        "memory and GMACs: one reading per size, no interval):", ""]  # fmt: skip
        s.lines += md_table(with_exponent_text(all_fits), ["model", "aspect", "metric", "exponent", "r2", "n", "x_min",
                                                           "x_max"])  # fmt: skip
        s.lines += ["", caption(sub, f"`{fits_csv}`", "x_min/x_max = pixel range of the fit")]
    return s
