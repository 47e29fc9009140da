"""A lint for report figures, on the drawn figure itself (renderer bounding boxes, not the PNG):

* overlapping text -- every visible, non-empty Text artist (titles, axis labels, the tick labels actually drawn,
  annotations, legend entries, footers) against every other;
* text outside the canvas;
* a legend covering data points -- the legend's box against the display position of every plotted marker.

:func:`lint_figure` returns one line per problem (empty: clean).  The tests register it in
:data:`vmibench.reports.plots.FIGURE_HOOKS`, so every figure a report makes is linted as it is built.
"""

from __future__ import annotations

import matplotlib.collections
import matplotlib.legend
import matplotlib.lines
import matplotlib.text
import numpy as np
from matplotlib.figure import Figure
from matplotlib.transforms import Bbox

TOLERANCE_PX = 1.0  # boxes that overlap by less than this (rounding) do not count
NOT_POINTS = ("", " ", "None", None, "_", "|")  # line markers that are not data points (none, error-bar caps)


def _drawn_tick_labels(fig: Figure) -> tuple[set[int], set[int]]:
    """(ids of every tick label, ids of the tick labels actually drawn: ticks inside the view interval)."""
    every, drawn = set(), set()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            for tick in [*axis.get_major_ticks(), *axis.get_minor_ticks()]:
                every |= {id(tick.label1), id(tick.label2)}
            for tick in axis._update_ticks():  # the ticks Axis.draw draws
                drawn |= {id(tick.label1), id(tick.label2)}
    return every, drawn


def texts(fig: Figure) -> list[tuple[str, Bbox]]:
    """(text, display bbox) of every visible, non-empty text artist as drawn."""
    renderer = fig.canvas.get_renderer()
    every, drawn = _drawn_tick_labels(fig)
    out = []
    for t in fig.findobj(matplotlib.text.Text):
        if not t.get_visible() or not t.get_text().strip() or (id(t) in every and id(t) not in drawn):
            continue
        if isinstance(t, matplotlib.text.Annotation):
            t.update_positions(renderer)
        out.append((t.get_text(), matplotlib.text.Text.get_window_extent(t, renderer)))  # text only, no arrow
    return out


def _overlap(a: Bbox, b: Bbox) -> bool:
    return min(a.x1, b.x1) - max(a.x0, b.x0) > TOLERANCE_PX and min(a.y1, b.y1) - max(a.y0, b.y0) > TOLERANCE_PX


def _points(ax) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Display coordinates of every plotted marker of ``ax`` that lies inside its axes box."""
    parts = []
    for line in ax.get_lines():
        if line.get_visible() and line.get_marker() not in NOT_POINTS and len(line.get_xydata()):
            parts.append(line.get_transform().transform(line.get_xydata()))
    for coll in ax.collections:
        if isinstance(coll, matplotlib.collections.PathCollection) and len(coll.get_offsets()):
            parts.append(coll.get_offset_transform().transform(coll.get_offsets()))
    if not parts:
        return np.empty((0, 2))
    pts = np.vstack(parts)
    box = ax.get_window_extent()
    inside = (pts[:, 0] >= box.x0) & (pts[:, 0] <= box.x1) & (pts[:, 1] >= box.y0) & (pts[:, 1] <= box.y1)
    return pts[inside & np.isfinite(pts).all(axis=1)]


def lint_figure(fig: Figure) -> list[str]:
    """Problems of a laid-out figure: overlapping texts, texts off the canvas, legends over data points."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    problems = []
    found = texts(fig)
    canvas = fig.bbox
    for i, (text, box) in enumerate(found):
        if (box.x0 < canvas.x0 - TOLERANCE_PX or box.y0 < canvas.y0 - TOLERANCE_PX
                or box.x1 > canvas.x1 + TOLERANCE_PX or box.y1 > canvas.y1 + TOLERANCE_PX):  # fmt: skip
            problems.append(f"text outside the canvas: {text!r}")
        for other, obox in found[i + 1 :]:
            if _overlap(box, obox):
                problems.append(f"overlapping text: {text!r} and {other!r}")
    for ax in fig.axes:
        legends = [lg for lg in [ax.get_legend(), *fig.legends] if isinstance(lg, matplotlib.legend.Legend)]
        pts = _points(ax)
        for legend in legends:
            box = legend.get_window_extent(renderer)
            covered = (pts[:, 0] >= box.x0) & (pts[:, 0] <= box.x1) & (pts[:, 1] >= box.y0) & (pts[:, 1] <= box.y1)
            if covered.any():
                problems.append(f"legend covers {int(covered.sum())} data point(s)")
    return problems
