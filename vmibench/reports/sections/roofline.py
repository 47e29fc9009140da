"""*Roofline*: every model at 224 and every token mixer at each L against the measured matmul peak and triad
bandwidth -- arithmetic intensity, roofline time, fraction of the roof reached and the bound."""

from __future__ import annotations

import math

import pandas as pd

from vmibench.analysis import add_roofline
from vmibench.analysis.estimates import CI_COLUMNS, LATENCY
from vmibench.reports import plots
from vmibench.reports.figures import Builder
from vmibench.reports.selection import DISCUSSED, column_or_nan, latency_224
from vmibench.reports.text import Section, are, caption, fmt, md_table, short_setup

COLUMNS = ["model", LATENCY, "gmacs", "gbytes_moved", "arith_intensity", "peak_gflops", "bw_peak_gbs", "roofline_ms",
           "roofline_frac", "bound"]  # fmt: skip


def _attained(frame: pd.DataFrame) -> pd.DataFrame:
    """GFLOP/s attained per row, with the bounds its latency interval gives (a longer latency, fewer GFLOP/s)."""
    work = 2 * pd.to_numeric(frame["gmacs"], errors="coerce") * pd.to_numeric(frame["batch"], errors="coerce")
    per_s = lambda col: work / (pd.to_numeric(column_or_nan(frame, col), errors="coerce") / 1e3)  # noqa: E731
    return frame.assign(attained_gflops=per_s(LATENCY), attained_low=per_s(CI_COLUMNS[1]),
                        attained_high=per_s(CI_COLUMNS[0]))  # fmt: skip


def roofline_points(models: pd.DataFrame, ops: pd.DataFrame) -> pd.DataFrame:
    """One point per model (at 224) and per op and L, with what the figure draws."""
    parts = []
    sources = ((models, "models at 224", lambda f: f["model"], lambda f: f["model"]),
               (ops, "token mixers", lambda f: f["op"] + " L=" + f["seq_len"].astype(str),
                lambda f: f["op"]))  # fmt: skip
    for frame, kind, label, series in sources:
        ok = frame[(frame["status"] == "ok") & frame["roofline_frac"].notna()] if not frame.empty else frame
        if ok.empty:
            continue
        parts.append(_attained(ok).assign(kind=kind, label=label(ok), series=series(ok)))
    cols = ["label", "series", "kind", "arith_intensity", "attained_gflops", "attained_low", "attained_high"]
    return pd.concat(parts, ignore_index=True)[cols] if parts else pd.DataFrame(columns=cols)


def above_roof(frame: pd.DataFrame, name_col: str = "model") -> str:
    """A sentence naming the cells that ran faster than their roof, where there are any: there the roof is invalid
    (a peak or bandwidth measured too low, or a count that misses work), and nothing is concluded from it."""
    above = frame[frame["roof_exceeded"].astype(bool)] if "roof_exceeded" in frame.columns else frame.iloc[0:0]
    if above.empty:
        return ""
    names = ", ".join(f"{r[name_col]}{'' if name_col == 'model' else f' L={int(r.seq_len)}'} "
                      f"({float(r.roofline_frac):.2f})" for _, r in above.iterrows())  # fmt: skip
    return f" **The roof is invalid here** (the cell ran faster than its roof, roofline_frac > 1): {names}."


def section_roofline(b: Builder) -> Section:
    d = b.data
    s = Section("Roofline: bytes moved against measured bandwidth")
    models = latency_224(d)
    ops = add_roofline(d.ops, d.peak, d.bandwidth) if not d.ops.empty else d.ops
    have = models[models["roofline_frac"].notna()] if not models.empty else models
    if have.empty and (ops.empty or ops["roofline_frac"].isna().all()):
        s.lines.append("*(no roofline: it needs rows with GMACs and bytes moved, and the matmul-peak and triad rows "
                       "of their environment -- `vmibench sweep` measures both roofs first)*")  # fmt: skip
        return s
    s.lines += [
        "Each cell's roofline time is the larger of its compute time at the dense-matmul peak and its memory time at "
        "the STREAM-triad bandwidth: `roofline_ms = max(2*gmacs/peak_gflops, gbytes_moved/bw_peak_gbs)` x batch; "
        "`roofline_frac = roofline_ms / latency` (1 = on the roof); `bound` = memory where the memory time is the "
        "larger. `gbytes_moved` is the unfused lower bound (every aten operator reads its inputs and writes its "
        "outputs once; the selective scan its operands and output), so a model can approach its roof only if its "
        "kernels stream their operands once.",
        "",
    ]
    if not have.empty:
        csv = b.table(have[[c for c in COLUMNS if c in have.columns]], "roofline_224")
        s.lines += md_table(have.sort_values("roofline_frac"), COLUMNS)
        memory = sorted(have.loc[have["bound"] == "memory", "model"])
        fracs = have["roofline_frac"].astype(float)
        s.lines += ["", f"{len(memory)} of the {len(have)} models {are(len(memory))} memory-bound at 224"
                        + (f" ({', '.join(memory)})" if memory else "") + f"; roofline_frac ranges from "
                        f"{fmt(float(fracs.min()))} ({have.loc[fracs.idxmin(), 'model']}) to {fmt(float(fracs.max()))} "
                        f"({have.loc[fracs.idxmax(), 'model']})." + above_roof(have), "",
                    caption(have, f"`{csv}`")]  # fmt: skip
    ops_ok = ops[ops["roofline_frac"].notna()] if not ops.empty else ops
    if not ops_ok.empty:
        csv = b.table(ops_ok[[c for c in ["op", "seq_len", "dim", *COLUMNS[1:]] if c in ops_ok.columns]],
                      "roofline_ops")  # fmt: skip
        s.lines += ["", f"Token mixers: {int((ops_ok['bound'] == 'memory').sum())} of {len(ops_ok)} (op, L) cells are "
                        f"memory-bound." + above_roof(ops_ok, "op") + f" Table: `{csv}`."]  # fmt: skip
    # two figures, models and mixers: one would pile a label per model and per (op, L) on one axis
    for name, frame, title in (("roofline_models", have, "Roofline: models at 224, batch 1"),
                               ("roofline_mixers", ops_ok, "Roofline: token mixers over L")):  # fmt: skip
        s.lines += _figure(b, name, frame, title)
    return s


def _figure(b: Builder, name: str, frame: pd.DataFrame, title: str) -> list[str]:
    points = roofline_points(frame, frame.iloc[0:0]) if name == "roofline_models" else \
        roofline_points(frame.iloc[0:0], frame)  # fmt: skip
    if points.empty:
        return []
    first = frame.iloc[0]
    peak, bw = float(first["peak_gflops"]), float(first["bw_peak_gbs"])
    if not (math.isfinite(peak) and math.isfinite(bw)):
        return []
    labelled = DISCUSSED if name == "roofline_models" else ()
    rel = b.figure(lambda p: plots.roofline(points, peak_gflops=peak, bw_gbs=bw, path=p, setup=short_setup(frame),
                                            title=title, labelled=labelled), name)  # fmt: skip
    return [
        "",
        f"![{title}]({rel})",
        "",
        "*Figure: bars from the 95% CI of the median latency"
        + ("; labelled: the models the questions discuss.*" if labelled else "; one series per op over L.*"),
    ]
