"""Output of a report: CSV tables and PNG figures under one directory, and the markdown that refers to them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from vmibench.analysis.estimates import CI_COLUMNS, LATENCY
from vmibench.reports import plots
from vmibench.reports.selection import ReportData
from vmibench.reports.staleness import Staleness
from vmibench.reports.text import Section


class Builder:
    """Accumulates sections, CSV tables and figures under one output directory."""

    def __init__(self, data: ReportData, out: Path, staleness: Staleness | None = None) -> None:
        self.data = data
        self.staleness = staleness if staleness is not None else Staleness()  # of the reported models and ops
        self.out = out
        self.fig_dir = out / "figures"
        self.tab_dir = out / "tables"
        self.fig_dir.mkdir(parents=True, exist_ok=True)
        self.tab_dir.mkdir(parents=True, exist_ok=True)
        self.sections: list[Section] = []
        self.files: list[Path] = []

    def table(self, frame: pd.DataFrame, name: str) -> str:
        path = self.tab_dir / f"{name}.csv"
        frame.to_csv(path, index=False)
        self.files.append(path)
        return f"tables/{name}.csv"

    def figure(self, draw: Callable[[Path], Path], name: str) -> str:
        path = draw(self.fig_dir / f"{name}.png")
        self.files.append(path)
        return f"figures/{name}.png"

    def lines_figure(self, frame: pd.DataFrame, name: str, *, group: str, x: str, y: str, title: str, xlabel: str,
                     ylabel: str, setup: str, xticks: dict[float, str] | None = None,
                     guides: bool = False) -> list[str]:  # fmt: skip
        """Markdown for a per-group lines figure, or a note where ``y`` has nothing a log axis can show (e.g.
        utilisation without a matmul-peak row) -- matplotlib cannot log-scale an empty axis."""
        if plots.drawable(frame[frame["status"] == "ok"], x, y).empty:
            return ["", f"*Figure {name} skipped: no positive `{y}` values in these rows.*"]
        yerr = CI_COLUMNS if y == LATENCY and all(c in frame.columns for c in CI_COLUMNS) else None
        rel = self.figure(
            lambda p: plots.lines_vs_size(frame, group=group, x=x, y=y, path=p, title=title, xlabel=xlabel,
                                          ylabel=ylabel, setup=setup, yerr=yerr, xticks=xticks, guides=guides),
            name,
        )  # fmt: skip
        return ["", f"![{title}]({rel})", "", f"*Figure: {title}.*"]
