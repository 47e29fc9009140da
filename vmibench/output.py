"""Render result frames as a terminal table, CSV or JSON, to stdout or a file."""

from __future__ import annotations

import io
import math
import os
import shutil
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


def check_output(fmt: str, out: str | None) -> None:
    """Validate ``--format`` and that ``--out`` (a file) can be written, before any work is done."""
    check_format(fmt)
    if out is not None:
        check_writable(Path(out), directory=False)


def check_writable(path: Path, *, directory: bool) -> None:
    """Refuse an output path that cannot be written: an existing one of the wrong kind, or one whose nearest
    existing ancestor is not a writable directory.  Creates nothing."""
    flag = "--out"
    if path.exists():
        if path.is_dir() != directory:
            kind = "a directory" if path.is_dir() else "a file"
            raise UserError(f"cannot write {path}: it is {kind}; choose another {flag}")
        if not os.access(path, os.W_OK):
            raise UserError(f"cannot write {path}: permission denied; choose another {flag}")
        return
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"cannot write {path}: {parent} is not a writable directory; choose another {flag}")


def number(value: object) -> str:
    """A number as people read it: ``19,550``, ``491.3``, ``3.712``, ``0.2708`` -- never ``1.955e+04``."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "" if value is None or math.isnan(value) else str(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int) or abs(value) >= 1000:
        return f"{value:,.0f}"
    if value == 0:
        return "0"
    decimals = min(6, max(0, 3 - math.floor(math.log10(abs(value)))))  # 4 significant digits
    return f"{value:.{decimals}f}"


def _cell(value: object) -> str:
    if hasattr(value, "item") and not isinstance(value, str):  # numpy scalars from pandas
        value = value.item()  # type: ignore[union-attr]
    return number(value)


def render(frame: pd.DataFrame, fmt: str, *, title: str = "", caption: str = "") -> str:
    """The frame as text in ``fmt``; tables fit the terminal and show 4 significant digits, CSV/JSON keep full
    precision."""
    check_format(fmt)
    if fmt == "csv":
        return frame.to_csv(index=False)
    if fmt == "json":
        return frame.to_json(orient="records", indent=2) + "\n"
    from rich import box
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=title or None, caption=caption or None, box=box.SIMPLE_HEAD, pad_edge=False,
                  collapse_padding=True)  # fmt: skip
    cells = [[escape(_cell(v)) for v in row] for row in frame.itertuples(index=False)]
    for i, col in enumerate(frame.columns):
        widest = max((len(r[i]) for r in cells), default=0)
        numeric = pd.api.types.is_numeric_dtype(frame[col])
        if numeric or widest <= 24:  # numbers and short values are never broken over lines; headers may wrap
            table.add_column(str(col), justify="right" if numeric else "left", no_wrap=True,
                             min_width=max(widest, min(len(str(col)), 12)))  # fmt: skip
        else:
            table.add_column(str(col), overflow="fold", min_width=min(len(str(col)), 16))
    for row in cells:
        table.add_row(*row)  # escaped: "selective_scan[torch]" is a name, not rich markup
    buf = io.StringIO()
    Console(file=buf, width=_width(), force_terminal=False).print(table)
    return buf.getvalue()


def _width() -> int:
    """The terminal's width when printing to one; else wide enough that a compact table never wraps."""
    if sys.stdout.isatty():
        return shutil.get_terminal_size((100, 24)).columns
    return int(os.environ.get("COLUMNS", "160"))


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
