"""Results store: an embedded SQLite database, one table per record kind, one row per measurement.

Rows are appended as soon as they are measured (a crash or Ctrl-C later loses nothing).  Columns come from the
records; a column a newer vmibench adds is appended to an older database with ``ALTER TABLE``.  The default
database is ``results/vmibench.sqlite`` under the working directory (git-ignored); ``VMIBENCH_DB`` or ``--db``
choose another.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from vmibench.errors import UserError
from vmibench.records import Record

DEFAULT_DB = Path("results") / "vmibench.sqlite"


def default_db_path() -> Path:
    """``$VMIBENCH_DB`` or ``results/vmibench.sqlite``."""
    return Path(os.environ.get("VMIBENCH_DB", DEFAULT_DB))


def _quote(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise ValueError(f"bad column name {name!r}")
    return f'"{name}"'


def _sql_value(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value)
    return value


class ResultStore:
    """Append-only tables of measurement rows in one SQLite file."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else default_db_path()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(self.path)
            self._conn.execute("PRAGMA journal_mode=WAL")
        except (OSError, sqlite3.Error) as exc:
            raise UserError(f"cannot open results database {self.path} ({exc}): choose another with --db") from None

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def tables(self) -> list[str]:
        rows = self._conn.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name").fetchall()
        return [r[0] for r in rows]

    def columns(self, table: str) -> list[str]:
        return [r[1] for r in self._conn.execute(f"PRAGMA table_info({_quote(table)})").fetchall()]

    def _ensure_columns(self, table: str, names: Sequence[str]) -> None:
        existing = self.columns(table)
        if not existing:
            cols = ", ".join(_quote(n) for n in names)
            self._conn.execute(f"CREATE TABLE {_quote(table)} (row_id INTEGER PRIMARY KEY AUTOINCREMENT, {cols})")
            return
        for name in names:
            if name not in existing:
                self._conn.execute(f"ALTER TABLE {_quote(table)} ADD COLUMN {_quote(name)}")

    def append_rows(self, table: str, rows: Iterable[Mapping[str, Any]]) -> int:
        """Append plain rows to ``table`` (created/extended as needed) and commit; returns the count."""
        n = 0
        with self._conn:
            for row in rows:
                names = list(row)
                self._ensure_columns(table, names)
                cols = ", ".join(_quote(c) for c in names)
                marks = ", ".join("?" for _ in names)
                self._conn.execute(
                    f"INSERT INTO {_quote(table)} ({cols}) VALUES ({marks})", [_sql_value(row[c]) for c in names]
                )
                n += 1
        return n

    def add(self, record: Record) -> None:
        """Store one record in its table, committed at once."""
        self.append_rows(record.TABLE, [record.to_row()])

    def read(self, table: str, where: Mapping[str, Any] | None = None) -> pd.DataFrame:
        """All rows of ``table`` (empty frame if absent), optionally filtered by column equality / membership."""
        if table not in self.tables():
            return pd.DataFrame()
        clauses, params = [], []
        for col, value in (where or {}).items():
            if col not in self.columns(table):
                return pd.DataFrame(columns=self.columns(table))
            if isinstance(value, (list, tuple, set)):
                values = list(value)
                clauses.append(f"{_quote(col)} IN ({', '.join('?' for _ in values)})")
                params.extend(_sql_value(v) for v in values)
            else:
                clauses.append(f"{_quote(col)} = ?")
                params.append(_sql_value(value))
        sql = f"SELECT * FROM {_quote(table)}" + (f" WHERE {' AND '.join(clauses)}" if clauses else "")
        frame = pd.read_sql_query(sql, self._conn, params=params)
        return frame.drop(columns=["row_id"])

    def exists(self, table: str, where: Mapping[str, Any]) -> bool:
        """True when at least one row of ``table`` matches ``where`` exactly (resume / skip logic)."""
        return not self.read(table, where).empty
