"""Render result frames as a terminal table, CSV or JSON, to stdout or a file."""

from __future__ import annotations

import io
import math
import sys
from pathlib import Path

import pandas as pd

from vmibench.errors import UserError

FORMATS = ("table", "csv", "json")


def check_format(fmt: str) -> str:
    """Validate ``--format``."""
    if fmt not in FORMATS:
        raise UserError(f"unknown format '{fmt}': use one of {', '.join(FORMATS)}")
    return fmt


def _cell(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.0f}"
    return str(value)


def render(frame: pd.DataFrame, fmt: str, *, title: str = "", caption: str = "") -> str:
    """The frame as text in ``fmt``; tables round floats to 4 significant digits, CSV/JSON keep full precision."""
    check_format(fmt)
    if fmt == "csv":
        return frame.to_csv(index=False)
    if fmt == "json":
        return frame.to_json(orient="records", indent=2) + "\n"
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=title or None, caption=caption or None, show_lines=False)
    for col in frame.columns:
        table.add_column(str(col), overflow="fold")
    for row in frame.itertuples(index=False):
        table.add_row(*(escape(_cell(v)) for v in row))  # "selective_scan[torch]" is a name, not rich markup
    buf = io.StringIO()
    Console(file=buf, width=max(120, min(400, 14 * len(frame.columns))), force_terminal=False).print(table)
    return buf.getvalue()


def emit(frame: pd.DataFrame, fmt: str, out: str | None = None, *, title: str = "", caption: str = "") -> None:
    """Print ``frame`` in ``fmt`` to stdout, or write it to ``out`` (and say where on stderr)."""
    text = render(frame, fmt, title=title, caption=caption)
    if out is None:
        sys.stdout.write(text)
        return
    path = Path(out)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    except OSError as exc:
        raise UserError(f"cannot write {path} ({exc.strerror}): choose another --out") from None
    print(f"wrote {len(frame)} rows to {path}", file=sys.stderr)
