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
    fig.text(0.01, 0.005, setup, fontsize=6, color="0.35", ha="left", va="bottom", wrap=True)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


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
) -> Path:
    """One line per ``group`` of ``y`` against ``x`` (log-log); failed/skipped cells drawn as x at the top."""
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    top = frame.loc[frame["status"] == "ok", y].max() if (frame["status"] == "ok").any() else 1.0
    for i, (name, sub) in enumerate(frame.groupby(group, sort=True)):
        color = f"C{i % 10}"
        ok = sub[sub["status"] == "ok"].sort_values(x)
        ax.plot(ok[x], ok[y], marker="o", ms=3.5, lw=1.3, color=color, label=str(name))
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
    if (frame["status"].isin(FAILED)).any():
        ax.annotate("x = not measured (oom / timeout / skipped)", xy=(0.01, 0.98), xycoords="axes fraction",
                    fontsize=7, va="top")  # fmt: skip
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
    """Scatter with a text label per point; ``marker_col`` splits markers (e.g. measured vs published)."""
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
