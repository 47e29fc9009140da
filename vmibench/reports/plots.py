"""Matplotlib figures of the report (Agg backend, PNG).  Every figure carries its setup line as a footer."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

FAILED = ("oom", "timeout", "crashed", "skipped", "error")


def _finish(fig: plt.Figure, path: Path, setup: str) -> Path:
    """Footer, fixed margins, PNG.  Every figure has the same size and fonts, so fixed margins fit; tight_layout
    measured every tick label again and took most of a report's run time."""
    fig.text(0.01, 0.005, setup, fontsize=6, color="0.35", ha="left", va="bottom", wrap=True)
    fig.subplots_adjust(left=0.1, right=0.98, bottom=0.15, top=0.93)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def drawable(frame: pd.DataFrame, x: str, y: str, *, logx: bool = True, logy: bool = True) -> pd.DataFrame:
    """Rows of ``frame`` that can be drawn: finite ``x`` and ``y``, positive on a log axis.

    A log axis with no positive value makes matplotlib raise (e.g. utilisation with no matmul-peak row, GMACs of
    rows measured without fvcore), so callers check this is non-empty and skip the figure with a note otherwise.
    """
    if frame.empty or x not in frame.columns or y not in frame.columns:
        return frame.iloc[0:0]
    xs = pd.to_numeric(frame[x], errors="coerce")
    ys = pd.to_numeric(frame[y], errors="coerce")
    keep = np.isfinite(xs) & np.isfinite(ys)
    if logx:
        keep &= xs > 0
    if logy:
        keep &= ys > 0
    return frame[keep]


def _error_bars(ok: pd.DataFrame, y: str, yerr: tuple[str, str] | None) -> np.ndarray | None:
    """Asymmetric error bars (below, above) from interval columns; rows without an interval get none."""
    if yerr is None or not all(c in ok.columns for c in yerr):
        return None
    value = ok[y].astype(float).to_numpy()
    low = pd.to_numeric(ok[yerr[0]], errors="coerce").to_numpy(dtype=float)
    high = pd.to_numeric(ok[yerr[1]], errors="coerce").to_numpy(dtype=float)
    below = np.nan_to_num(np.clip(value - low, 0, None), nan=0.0)
    above = np.nan_to_num(np.clip(high - value, 0, None), nan=0.0)
    return np.vstack([below, above]) if (below.any() or above.any()) else None


def lines_vs_size(
    frame: pd.DataFrame,
    *,
    group: str,
    x: str,
    y: str,
    path: Path,
    title: str,
    xlabel: str,
    ylabel: str,
    setup: str,
    logy: bool = True,
    yerr: tuple[str, str] | None = None,
) -> Path:
    """One line per ``group`` of ``y`` against ``x`` (log-log); failed/skipped cells drawn as x at the top.

    ``yerr`` names the columns of a confidence interval (low, high) drawn as error bars.  Points that a log axis
    cannot show (missing, non-positive) are left out; the caller checks :func:`drawable` first.
    """
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    shown = drawable(frame[frame["status"] == "ok"], x, y, logy=logy)
    top = float(shown[y].max()) if not shown.empty else 1.0
    for i, (name, sub) in enumerate(frame.groupby(group, sort=True)):
        color = f"C{i % 10}"
        ok = drawable(sub[sub["status"] == "ok"], x, y, logy=logy).sort_values(x)
        err = _error_bars(ok, y, yerr)
        if err is None:
            ax.plot(ok[x], ok[y], marker="o", ms=3.5, lw=1.3, color=color, label=str(name))
        else:
            ax.errorbar(ok[x], ok[y], yerr=err, marker="o", ms=3.5, lw=1.3, color=color, label=str(name),
                        capsize=2, elinewidth=0.8)  # fmt: skip
        bad = sub[sub["status"].isin(FAILED)]
        if not bad.empty:
            ax.scatter(bad[x], [top * 1.3] * len(bad), marker="x", color=color, s=30)
    ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", lw=0.3, alpha=0.5)
    ax.legend(fontsize=7, ncol=2)
    notes = []
    if (frame["status"].isin(FAILED)).any():
        notes.append("x = not measured (oom / timeout / skipped)")
    if yerr is not None:
        notes.append("bars = 95% bootstrap CI of the median")
    if notes:
        ax.annotate("; ".join(notes), xy=(0.01, 0.98), xycoords="axes fraction", fontsize=7, va="top")
    return _finish(fig, path, setup)


def scatter_labelled(
    frame: pd.DataFrame,
    *,
    x: str,
    y: str,
    label: str,
    path: Path,
    title: str,
    xlabel: str,
    ylabel: str,
    setup: str,
    marker_col: str | None = None,
    logx: bool = True,
    logy: bool = True,
    pareto: bool = False,
) -> Path:
    """Scatter with a text label per point; ``marker_col`` splits markers (e.g. measured vs published).

    Rows a log axis cannot show (missing or non-positive values) are left out; check :func:`drawable` first.
    """
    frame = drawable(frame, x, y, logx=logx, logy=logy)
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    markers = {"measured": "o", "published": "^"}
    groups = frame.groupby(marker_col) if marker_col else [("", frame)]
    for kind, sub in groups:
        ax.scatter(sub[x], sub[y], marker=markers.get(str(kind), "o"), s=28, label=str(kind) or None)
    for row in frame.itertuples(index=False):
        ax.annotate(str(getattr(row, label)), (getattr(row, x), getattr(row, y)), fontsize=6.5,
                    xytext=(3, 3), textcoords="offset points")  # fmt: skip
    if pareto and not frame.empty:
        front = pareto_front(frame, x, y)
        ax.plot(front[x], front[y], lw=1, ls="--", color="0.4", label="Pareto front")
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", lw=0.3, alpha=0.5)
    if marker_col or pareto:
        ax.legend(fontsize=7)
    return _finish(fig, path, setup)


def pareto_front(frame: pd.DataFrame, cost: str, gain: str) -> pd.DataFrame:
    """Rows not dominated by another (lower ``cost`` and higher ``gain``), sorted by cost."""
    ordered = frame.sort_values([cost, gain], ascending=[True, False])
    best = -np.inf
    keep = []
    for idx, value in zip(ordered.index, ordered[gain], strict=True):
        if value > best:
            keep.append(idx)
            best = value
    return ordered.loc[keep]
