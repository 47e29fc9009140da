"""Matplotlib figures of the report (Agg backend, PNG).  Every figure carries a one-line setup footer (the full
setup is the report's *Setup* block) below its axes, its legend outside the data, and labels only on the points
the report discusses; :data:`FIGURE_HOOKS` see each figure once it is laid out (the tests lint it there:
:mod:`vmibench.reports.lint`)."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Collection
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import matplotlib.text
import matplotlib.ticker
import numpy as np
import pandas as pd

FAILED = ("oom", "timeout", "crashed", "skipped", "error")


FIGURE_HOOKS: list[Callable[[plt.Figure, Path], None]] = []  # called on every figure before it is saved
FOOTER_PT = 6.0
LEGEND = {"fontsize": 7, "loc": "upper left", "bbox_to_anchor": (1.01, 1.0), "borderaxespad": 0.0}  # beside the axes


def _finish(fig: plt.Figure, path: Path, setup: str, notes: Collection[str] = (), *,
            labels: tuple[plt.Axes, list] | None = None) -> Path:  # type: ignore[type-arg]  # fmt: skip
    """Footer (notes, then the setup line) in its own strip below the axes, layout that keeps every label on the
    canvas, point labels pushed apart (``labels``: the axes and its annotations), hooks, PNG."""
    footer = "\n".join(textwrap.wrap("; ".join([*notes, setup] if setup else notes), 150))
    lines = footer.count("\n") + 1 if footer else 0
    if footer:
        fig.text(0.01, 0.01, footer, fontsize=FOOTER_PT, color="0.35", ha="left", va="bottom")
    strip = (lines * FOOTER_PT * 1.35 + 8) / (fig.get_figheight() * 72)
    fig.tight_layout(rect=(0, strip, 1, 1))
    if labels is not None:
        repel_labels(*labels)
    for hook in FIGURE_HOOKS:
        hook(fig, path)
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
    """Asymmetric error bars (below, above) of column ``y`` from interval columns; rows without one get none."""
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
    xticks: dict[float, str] | None = None,
    guides: bool = False,
) -> Path:
    """One line per ``group`` of ``y`` against ``x`` (log-log); failed/skipped cells drawn as x at the top;
    ``guides`` adds O(N) and O(N^2) lines through the lowest point at the smallest x.

    ``yerr`` names the columns of a confidence interval (low, high) drawn as error bars; ``xticks`` labels the
    x axis at the sizes measured (``{pixels: "224²"}``) instead of decades.  Points that a log axis cannot show
    (missing, non-positive) are left out; the caller checks :func:`drawable` first.
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
    if xticks:
        ax.set_xticks(list(xticks), [xticks[k] for k in xticks], rotation=30, fontsize=7)
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())  # only the measured sizes are labelled
    if guides and not shown.empty:
        _guides(ax, shown[x].astype(float), shown[y].astype(float), shown.loc[shown[x].astype(float).idxmin(), x])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", lw=0.3, alpha=0.5)
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # minor labels of a short log axis collide
    ax.legend(**LEGEND)
    notes = []
    if (frame["status"].isin(FAILED)).any():
        notes.append("x = not measured (oom / timeout / skipped)")
    if yerr is not None:
        notes.append("bars = 95% t-interval over rounds")
    return _finish(fig, path, setup, notes)


def _guides(ax: plt.Axes, xs: pd.Series, ys: pd.Series, x0: float) -> None:
    """O(N) and O(N^2) through the lowest point at the smallest x, over the x range; the y range stays the data's."""
    limits = ax.get_ylim()
    y0 = float(ys[xs == float(x0)].min())
    grid = np.geomspace(float(xs.min()), float(xs.max()), 50)
    for power, style, name in ((1, "--", "O(N)"), (2, ":", "O(N²)")):
        ax.plot(grid, y0 * (grid / float(x0)) ** power, ls=style, color="0.45", lw=1.0, label=f"{name} guide")
    ax.set_ylim(limits)


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
    xerr: tuple[str, str] | None = None,
    yerr: tuple[str, str] | None = None,
    labelled: Collection[str] | None = None,
) -> Path:
    """Scatter with a text label on each point named in ``labelled`` (all where None), labels pushed apart
    (:func:`repel_labels`); ``marker_col`` splits markers (e.g. measured vs published); ``xerr``/``yerr`` name
    interval columns drawn as error bars.

    Rows a log axis cannot show (missing or non-positive values) are left out; check :func:`drawable` first.
    """
    frame = drawable(frame, x, y, logx=logx, logy=logy)
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    markers = {"measured": "o", "published": "^", "released": "v"}
    groups = frame.groupby(marker_col) if marker_col else [("", frame)]
    for i, (kind, sub) in enumerate(groups):
        marker = next((m for k, m in markers.items() if str(kind).startswith(k)), "o")
        ax.scatter(sub[x], sub[y], marker=marker, s=28, label=str(kind) or None, zorder=3)
        ex, ey = _error_bars(sub, x, xerr), _error_bars(sub, y, yerr)
        if ex is not None or ey is not None:
            ax.errorbar(sub[x], sub[y], xerr=ex, yerr=ey, fmt="none", ecolor=f"C{i}", elinewidth=0.8, capsize=2)
    named = frame if labelled is None else frame[frame[label].isin(labelled)]
    named = named.drop_duplicates(label)  # one label per model, on its first point
    texts = [ax.annotate(str(getattr(row, label)), (getattr(row, x), getattr(row, y)), fontsize=6.5,
                         xytext=(4, 4), textcoords="offset points",
                         arrowprops={"arrowstyle": "-", "lw": 0.4, "color": "0.5"})
             for row in named.itertuples(index=False)]  # fmt: skip
    notes = ["bars = 95% t-interval over rounds of the median latency"] if xerr is not None or yerr is not None else []
    if labelled is not None and len(named) < frame[label].nunique():
        notes.append("unlabelled points: models the text does not discuss (tables in the appendix)")
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
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    if marker_col or pareto:
        ax.legend(**LEGEND)
    return _finish(fig, path, setup, notes, labels=(ax, texts))


def repel_labels(ax: plt.Axes, texts: list, iterations: int = 80, pad_px: float = 2.0) -> None:  # type: ignore[type-arg]
    """Move point labels (annotations in offset points) apart until their boxes no longer overlap each other or
    the points: a simple repulsion in display space (adjustText's idea, without the dependency)."""
    if len(texts) < 2:
        return
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    px_per_pt = fig.dpi / 72.0
    points = np.array([ax.transData.transform(t.xy) for t in texts])
    frame = ax.get_window_extent(renderer)
    for _ in range(iterations):
        # the text's own box: an Annotation's extent includes its leader line, which always touches its point
        for t in texts:
            t.update_positions(renderer)  # an annotation places its text at draw time; place it now
        boxes = [matplotlib.text.Text.get_window_extent(t, renderer) for t in texts]
        moved = False
        shifts = np.zeros((len(texts), 2))
        for i, a in enumerate(boxes):  # back inside the axes
            dx = max(0.0, frame.x0 - a.x0) - max(0.0, a.x1 - frame.x1)
            dy = max(0.0, frame.y0 - a.y0) - max(0.0, a.y1 - frame.y1)
            if dx or dy:
                shifts[i] += (dx, dy)
                moved = True
        for i, a in enumerate(boxes):
            others = [(b.x0, b.y0, b.x1, b.y1) for j, b in enumerate(boxes) if j != i]
            others += [(px - 5, py - 5, px + 5, py + 5) for px, py in points]  # every marker, not only its own
            for x0, y0, x1, y1 in others:
                ox = min(a.x1, x1) - max(a.x0, x0) + pad_px
                oy = min(a.y1, y1) - max(a.y0, y0) + pad_px
                if ox <= 0 or oy <= 0:
                    continue
                # out along the axis of least overlap, half the way (the other label moves the other half)
                cx, cy = (a.x0 + a.x1 - x0 - x1) / 2, (a.y0 + a.y1 - y0 - y1) / 2
                if ox < oy:
                    shifts[i, 0] += (ox / 2 + 0.5) * (1 if cx >= 0 else -1)
                else:
                    shifts[i, 1] += (oy / 2 + 0.5) * (1 if cy >= 0 else -1)
                moved = True
        if not moved:
            return
        for t, (dx, dy) in zip(texts, shifts, strict=True):
            ox, oy = t.xyann
            t.xyann = (ox + dx / px_per_pt, oy + dy / px_per_pt)


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


def roofline(
    points: pd.DataFrame,
    *,
    peak_gflops: float,
    bw_gbs: float,
    path: Path,
    title: str,
    setup: str,
    labelled: Collection[str] = (),
) -> Path:
    """Log-log roofline: attained GFLOP/s against arithmetic intensity (FLOP/byte), both roofs drawn.

    ``points`` has ``label``, ``series`` (one marker colour and legend entry each: a model, or an op over its L),
    ``arith_intensity``, ``attained_gflops`` and, optionally, ``attained_low``/``attained_high`` (from the latency's
    interval) for error bars; only points whose label is in ``labelled`` are labelled.
    """
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    shown = drawable(points, "arith_intensity", "attained_gflops")
    xs = shown["arith_intensity"].astype(float)
    lo = min(float(xs.min()) / 2, peak_gflops / bw_gbs / 4) if not shown.empty else 0.1
    hi = max(float(xs.max()) * 2, peak_gflops / bw_gbs * 4) if not shown.empty else 100.0
    grid = np.geomspace(lo, hi, 200)
    ax.plot(grid, np.minimum(peak_gflops, bw_gbs * grid), color="0.2", lw=1.4,
            label=f"roof: matmul {peak_gflops:.3g} GFLOP/s,\ntriad {bw_gbs:.3g} GB/s")  # fmt: skip
    ax.axvline(peak_gflops / bw_gbs, color="0.6", lw=0.6, ls=":")
    texts = []
    labelled_points = shown[shown["label"].isin(labelled)]
    series = shown.groupby("series", sort=True) if len(labelled_points) < len(shown) else [("", shown)]
    for i, (name, sub) in enumerate(series):
        sub = sub.sort_values("arith_intensity")
        ax.plot(sub["arith_intensity"], sub["attained_gflops"], marker="os^Dv"[i % 5], ms=4.5, color=f"C{i % 10}",
                lw=0.8 if len(sub) > 1 else 0, label=str(name) or None, zorder=3)  # fmt: skip
        err = _error_bars(sub, "attained_gflops", ("attained_low", "attained_high"))
        if err is not None:
            ax.errorbar(sub["arith_intensity"], sub["attained_gflops"], yerr=err, fmt="none", ecolor=f"C{i % 10}",
                        elinewidth=0.7, capsize=1.5)  # fmt: skip
    texts += [ax.annotate(str(r.label), (r.arith_intensity, r.attained_gflops), fontsize=6.5, xytext=(4, 4),
                          textcoords="offset points", arrowprops={"arrowstyle": "-", "lw": 0.4, "color": "0.5"})
              for r in labelled_points.itertuples(index=False)]  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (FLOP / byte moved, unfused lower bound of traffic)")
    ax.set_ylabel("attained GFLOP/s (2 GMACs / latency)")
    for axis in (ax.xaxis, ax.yaxis):  # minor-tick labels of a short log axis collide
        axis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", lw=0.3, alpha=0.5)
    ax.legend(**LEGEND)
    return _finish(fig, path, setup, labels=(ax, texts))


def stacked_shares(shares: pd.DataFrame, *, path: Path, title: str, setup: str) -> Path:
    """One horizontal bar per row of ``shares`` (index: "model res"), split into its columns (operator classes),
    each segment its share of the profiled time; the legend beside the axes."""
    height = max(1.2 + 0.32 * len(shares), 0.9 + 0.17 * len(shares.columns))  # the legend's rows fit too
    fig, ax = plt.subplots(figsize=(7.5, height))
    left = np.zeros(len(shares))
    for i, cls in enumerate(shares.columns):
        values = shares[cls].to_numpy(dtype=float)
        ax.barh(range(len(shares)), values, left=left, color=f"C{i % 10}", label=str(cls), height=0.7)
        left += values
    ax.set_yticks(range(len(shares)), list(shares.index), fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of the profiled time")
    ax.set_title(title, fontsize=10)
    ax.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    ax.legend(**{**LEGEND, "bbox_to_anchor": (1.05, 1.0)})  # clear of the last tick label, which overhangs
    return _finish(fig, path, setup)
