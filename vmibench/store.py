"""Results store: an embedded SQLite database, one table per record kind, one row per measurement.

Rows are appended as soon as they are measured (a crash or Ctrl-C later loses nothing).  Columns come from the
records; a column a newer vmibench adds is appended to an older database with ``ALTER TABLE``.  The default
database is the scratch store ``vmibench.sqlite`` in the working directory (git-ignored); ``VMIBENCH_DB`` or
``--db`` choose another.  Committed result sets (``results/<machine>/``) are written only by ``vmibench publish``.

Besides the record tables the runner keeps three of its own:

* ``samples`` -- every timed call of every stored row: ``(row_table, row_id, round, process, iter, ms)``;
* ``pending`` -- the result of each finished round of a cell whose other rounds are still to come, so an
  interrupted run resumes at the round it stopped in (deleted when the cell's row is written);
* ``leases`` -- which runner is measuring which cell, so two runners on one store never measure a cell twice.

Several processes may write one store at once: tables are created with ``IF NOT EXISTS``, a concurrently added
column is tolerated, and every write waits (``busy_timeout``) instead of failing while another holds the lock.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from vmibench.errors import UserError
from vmibench.records import Record

# A user's scratch store lives in the working directory, beside the work that made it and visible to `ls`, never in
# results/ (committed result sets, which only `vmibench publish` writes): no example command can touch evidence.
DEFAULT_DB = Path("vmibench.sqlite")
BUSY_TIMEOUT_S = 120.0  # a writer waits this long for another process's transaction instead of failing
SCHEMA_VERSION = 1  # PRAGMA user_version of a store this vmibench writes; see _MIGRATIONS
META_TABLE = "vmibench_tables"  # the record tables vmibench created in this file (anything else is foreign)
# Record tables that stores written before schema versioning (user_version 0) could hold; adopted on migration.
LEGACY_TABLES = ("latency", "ops", "flops", "peak", "accuracy")
RUNNER_TABLES = {
    "samples": "row_table TEXT, row_id INTEGER, round INTEGER, process INTEGER, iter INTEGER, ms REAL",
    "pending": "cell_key TEXT, round INTEGER, result TEXT, created TEXT, PRIMARY KEY (cell_key, round)",
    "leases": "cell_key TEXT PRIMARY KEY, owner TEXT, pid INTEGER, host TEXT, heartbeat REAL",
}


_INSERT_SAMPLE = "INSERT INTO samples (row_table, row_id, round, process, iter, ms) VALUES (?, ?, ?, ?, ?, ?)"


def default_db_path() -> Path:
    """``$VMIBENCH_DB`` or ``vmibench.sqlite`` in the working directory (the scratch store)."""
    return Path(os.environ.get("VMIBENCH_DB", DEFAULT_DB))


SQLITE_CORRUPT = 11  # SQLite's result code for a damaged file ("database disk image is malformed")


def corrupt_store_message(path: Path, problem: str) -> str:
    """The one refusal of a SQLite store whose pages are damaged (found by opening it or by ``quick_check``)."""
    return f"results database {path} is corrupt ({problem}): restore it from a backup or choose another with --db"


def check_file(path: Path, *, writable: bool) -> int:
    """Refuse, with a one-line :class:`UserError`, a store file vmibench must not use; returns its schema version.

    Only reads (a read-only connection): a refused file is left byte-for-byte unchanged.  Refused are files that
    cannot be read, read-only files when ``writable`` (no write permission, or no write bit at all -- which also
    stops root), files that are not healthy SQLite databases, schemas newer than this vmibench, and files with
    tables vmibench did not create.
    """
    if not os.access(path, os.R_OK):
        raise UserError(f"cannot read results database {path}: fix its permissions or choose another with --db")
    if writable and (
        not os.access(path, os.W_OK) or not path.stat().st_mode & 0o222 or not os.access(path.parent, os.W_OK)
    ):
        raise UserError(
            f"results database {path} is read-only: make it and its folder writable or choose another with --db"
        )
    try:
        conn = _connect_readonly(path)
        try:
            problems = [r[0] for r in conn.execute("PRAGMA quick_check").fetchall()]
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            foreign = foreign_tables(conn, version)
        finally:
            conn.close()
    except sqlite3.Error as exc:
        if getattr(exc, "sqlite_errorcode", None) == SQLITE_CORRUPT or "malformed" in str(exc):
            raise UserError(corrupt_store_message(path, str(exc))) from None
        raise UserError(
            f"{path} is not a readable SQLite database ({exc}): restore it from a backup or choose another with --db"
        ) from None
    if problems != ["ok"]:
        raise UserError(corrupt_store_message(path, f"quick_check: {problems[0]}"))
    if version > SCHEMA_VERSION:
        raise UserError(
            f"{path} was written by a newer vmibench (schema {version}; this one knows up to {SCHEMA_VERSION}): "
            "upgrade vmibench or choose another --db"
        )
    if foreign:
        raise UserError(
            f"{path} holds tables vmibench did not create ({', '.join(foreign)}): vmibench writes only into its "
            "own stores; choose another --db"
        )
    return version


def _connect_readonly(path: Path) -> sqlite3.Connection:
    """A connection that cannot write ``path`` and leaves no ``-wal``/``-shm`` files behind.

    A read-only connection to a WAL store creates those files when they are absent; they are absent exactly when
    no connection has the store open, and then the file is opened as immutable (nothing else is writing it).
    """
    uri = f"{path.resolve().as_uri()}?mode=ro"
    if not Path(f"{path}-wal").exists():
        uri += "&immutable=1"
    return sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S)


def foreign_tables(conn: sqlite3.Connection, version: int) -> list[str]:
    """Tables of ``conn`` that are not vmibench's: not in its table list (or, in an unversioned store, not a known
    record table with a ``row_id`` column), not one of the runner's tables with its columns, not SQLite's own."""
    names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    if version >= 1:
        ours = {r[0] for r in conn.execute(f"SELECT name FROM {META_TABLE}")} if META_TABLE in names else set()
    else:
        ours = {n for n in names if n in LEGACY_TABLES and "row_id" in _columns(conn, n)}
    runner = {n for n, cols in RUNNER_TABLES.items() if n in names and _columns(conn, n) == _declared(cols)}
    return [n for n in names if not (n.startswith("sqlite_") or n == META_TABLE or n in ours or n in runner)]


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [r[1] for r in conn.execute(f"PRAGMA table_info({_quote(table)})").fetchall()]


def _declared(columns_sql: str) -> list[str]:
    """Column names of a ``RUNNER_TABLES`` declaration (constraints such as PRIMARY KEY are not columns)."""
    names = [part.split()[0] for part in columns_sql.split(", ")]
    return [n for n in names if n.isidentifier() and n.upper() != "PRIMARY"]


def _migrate_to_1(conn: sqlite3.Connection) -> None:
    """Version 1: the table list, the runner's tables, a ``row_uid`` per row (``collect`` merges shards by it)."""
    conn.execute(f"CREATE TABLE IF NOT EXISTS {META_TABLE} (name TEXT PRIMARY KEY, created TEXT)")
    for name, cols in RUNNER_TABLES.items():
        conn.execute(f"CREATE TABLE IF NOT EXISTS {name} ({cols})")
    existing = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    for table in (n for n in LEGACY_TABLES if n in existing):
        _adopt(conn, table)
        conn.execute(f"UPDATE {_quote(table)} SET row_uid = lower(hex(randomblob(16))) WHERE row_uid IS NULL")


def _adopt(conn: sqlite3.Connection, table: str) -> None:
    """Record ``table`` as vmibench's, with its ``row_uid`` column and indexes."""
    conn.execute(f"INSERT OR IGNORE INTO {META_TABLE} (name, created) VALUES (?, ?)", (table, _now()))
    cols = _columns(conn, table)
    if "row_uid" not in cols:
        _add_column(conn, table, "row_uid")
    conn.execute(f"CREATE UNIQUE INDEX IF NOT EXISTS {_quote(table + '_row_uid')} ON {_quote(table)} (row_uid)")
    if "cell_key" in cols:
        conn.execute(f"CREATE INDEX IF NOT EXISTS {_quote(table + '_cell_key')} ON {_quote(table)} (cell_key)")


def _add_column(conn: sqlite3.Connection, table: str, name: str) -> None:
    try:
        conn.execute(f"ALTER TABLE {_quote(table)} ADD COLUMN {_quote(name)}")
    except sqlite3.OperationalError as exc:  # another process added it first
        if "duplicate column" not in str(exc):
            raise


# _MIGRATIONS[v] takes a store from schema v to v + 1, inside one transaction
_MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {0: _migrate_to_1}


def _migrate(conn: sqlite3.Connection) -> None:
    """Bring the store to :data:`SCHEMA_VERSION`, one ``BEGIN IMMEDIATE`` transaction per step.

    The version is read again inside each transaction, so a second process opening a new store at the same
    moment waits for the first and then finds the work done (creation is race-free).
    """
    while True:
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if version >= SCHEMA_VERSION:
                conn.execute("COMMIT")
                return
            _MIGRATIONS[version](conn)
            conn.execute(f"PRAGMA user_version = {version + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S")


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
    """Append-only tables of measurement rows in one SQLite file, schema-versioned.

    Opening validates the file before anything is measured or written: a file that is not a healthy SQLite
    database (``PRAGMA quick_check``), one written by a newer vmibench (``PRAGMA user_version`` above
    :data:`SCHEMA_VERSION`), one holding tables vmibench did not create, or -- when writing -- a read-only file,
    is refused with a :class:`UserError` and left byte-for-byte unchanged.  An older schema is then migrated, one
    transaction per version step.  ``readonly=True`` (reports, listings) never writes and never migrates.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *, readonly: bool = False) -> None:
        self.path = Path(path) if path is not None else default_db_path()
        self.readonly = readonly
        fresh = not self.path.exists() or self.path.stat().st_size == 0
        if readonly and fresh:
            raise UserError(f"no results database at {self.path}: run a measurement first or pass --db")
        if not fresh:
            check_file(self.path, writable=not readonly)
        try:
            if readonly:
                self._conn = _connect_readonly(self.path)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S)
                self._conn.execute("PRAGMA journal_mode=WAL")
                _migrate(self._conn)
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
        return _columns(self._conn, table)

    def schema_version(self) -> int:
        return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    def _ensure_columns(self, table: str, names: Sequence[str]) -> None:
        existing = self.columns(table)
        if not existing:
            cols = ", ".join(_quote(n) for n in names)
            self._conn.execute(
                f"CREATE TABLE IF NOT EXISTS {_quote(table)} (row_id INTEGER PRIMARY KEY AUTOINCREMENT, {cols})"
            )
            _adopt(self._conn, table)
            existing = self.columns(table)
        for name in names:
            if name not in existing:
                _add_column(self._conn, table, name)

    def _insert(self, table: str, row: Mapping[str, Any]) -> int:
        if self.readonly:
            raise RuntimeError(f"{self.path} was opened read-only")
        row = {**row, "row_uid": row.get("row_uid") or uuid.uuid4().hex}
        names = list(row)
        self._ensure_columns(table, names)
        cols = ", ".join(_quote(c) for c in names)
        marks = ", ".join("?" for _ in names)
        cur = self._conn.execute(
            f"INSERT INTO {_quote(table)} ({cols}) VALUES ({marks})", [_sql_value(row[c]) for c in names]
        )
        return int(cur.lastrowid or 0)

    def append_rows(self, table: str, rows: Iterable[Mapping[str, Any]]) -> int:
        """Append plain rows to ``table`` (created/extended as needed) and commit; returns the count."""
        n = 0
        with self._conn:
            self._conn.execute("BEGIN IMMEDIATE")
            for row in rows:
                self._insert(table, row)
                n += 1
        return n

    def add(
        self,
        record: Record,
        samples: Sequence[Sequence[float]] = (),
        cell_key: str = "",
        companions: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    ) -> int:
        """Store one record (and its raw samples, one sequence per worker process) in one transaction.

        ``companions``: rows of other tables that belong to this one (a profile's breakdown), stored in the same
        transaction with this row's ``row_uid`` in ``<record table>_row_uid``.

        ``cell_key``'s pending rounds and lease are dropped in the same transaction: the row replaces them.
        Returns the row's ``row_id``.
        """
        with self._conn:
            self._conn.execute("BEGIN IMMEDIATE")
            row = record.to_row()
            row["row_uid"] = row.get("row_uid") or uuid.uuid4().hex
            row_id = self._insert(record.TABLE, row)
            for table, rows in (companions or {}).items():
                for extra in rows:
                    self._insert(table, {**extra, f"{record.TABLE}_row_uid": row["row_uid"]})
            if samples:
                self._conn.executemany(
                    _INSERT_SAMPLE,
                    [(record.TABLE, row_id, r, r, i, float(ms)) for r, proc in enumerate(samples)
                     for i, ms in enumerate(proc)],
                )  # fmt: skip
            if cell_key:
                self._conn.execute("DELETE FROM pending WHERE cell_key = ?", (cell_key,))
                self._conn.execute("DELETE FROM leases WHERE cell_key = ?", (cell_key,))
        return row_id

    def merge(self, shards: Sequence[str | os.PathLike[str]]) -> list[tuple[int, int]]:
        """Append the rows of each of ``shards`` (stores that scaled-out jobs wrote) that this store lacks, with
        their raw samples, one transaction per shard; returns (rows, samples) added per shard.

        Every shard is checked (:func:`check_file`, and the same schema version as this vmibench) before any is
        merged, so a refused shard leaves this store as it was.  Rows are matched by ``row_uid``, so merging a
        shard twice adds nothing.
        """
        paths = [Path(shard) for shard in shards]
        for path in paths:
            version = check_file(path, writable=False)
            if version != SCHEMA_VERSION:
                raise UserError(
                    f"shard {path} has schema {version}, this vmibench writes {SCHEMA_VERSION}: collect it with the "
                    "vmibench version that wrote it"
                )
        return [self._merge_one(path) for path in paths]

    def _merge_one(self, path: Path) -> tuple[int, int]:
        src = _connect_readonly(path)
        rows_added = samples_added = 0
        try:
            tables = [r[0] for r in src.execute(f"SELECT name FROM {META_TABLE} ORDER BY name")]
            with self._conn:
                self._conn.execute("BEGIN IMMEDIATE")
                for table in tables:
                    have = set()
                    if table in self.tables():
                        have = {r[0] for r in self._conn.execute(f"SELECT row_uid FROM {_quote(table)}")}
                    cur = src.execute(f"SELECT * FROM {_quote(table)} ORDER BY row_id")
                    names = [d[0] for d in cur.description]
                    for values in cur.fetchall():
                        row = dict(zip(names, values, strict=True))
                        if row["row_uid"] in have:
                            continue
                        old_id = row.pop("row_id")
                        new_id = self._insert(table, row)
                        samples = src.execute(
                            "SELECT round, process, iter, ms FROM samples WHERE row_table = ? AND row_id = ?",
                            (table, old_id),
                        ).fetchall()
                        self._conn.executemany(
                            _INSERT_SAMPLE,
                            [(table, new_id, *sample) for sample in samples],
                        )
                        rows_added += 1
                        samples_added += len(samples)
        finally:
            src.close()
        return rows_added, samples_added

    # -- runner bookkeeping: pending rounds and leases ---------------------------------------------------------

    def latest_rows(self, table: str, cell_keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The newest stored row of each of ``cell_keys`` in ``table`` (keys with no row are absent)."""
        keys = list(dict.fromkeys(cell_keys))
        if not keys or table not in self.tables() or "cell_key" not in self.columns(table):
            return {}
        out: dict[str, dict[str, Any]] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ", ".join("?" for _ in chunk)
            cur = self._conn.execute(
                f"SELECT * FROM {_quote(table)} WHERE cell_key IN ({marks}) ORDER BY row_id", chunk
            )
            names = [d[0] for d in cur.description]
            for values in cur.fetchall():
                row = dict(zip(names, values, strict=True))
                out[row["cell_key"]] = row
        return out

    def save_pending(self, cell_key: str, round_: int, result_json: str) -> None:
        """Keep one finished round of a cell until the cell's row is written."""
        with self._conn:
            self._conn.execute(
                "INSERT OR REPLACE INTO pending (cell_key, round, result, created) VALUES (?, ?, ?, ?)",
                (cell_key, round_, result_json, _now()),
            )

    def pending(self, cell_keys: Iterable[str]) -> dict[str, dict[int, str]]:
        """Finished rounds of unfinished cells: ``{cell_key: {round: result_json}}``."""
        keys = list(dict.fromkeys(cell_keys))
        if "pending" not in self.tables() or not keys:
            return {}
        out: dict[str, dict[int, str]] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ", ".join("?" for _ in chunk)
            for key, rnd, text in self._conn.execute(
                f"SELECT cell_key, round, result FROM pending WHERE cell_key IN ({marks})", chunk
            ):
                out.setdefault(key, {})[int(rnd)] = text
        return out

    def drop_pending(self, cell_keys: Iterable[str]) -> None:
        keys = list(cell_keys)
        if not keys or "pending" not in self.tables():
            return
        with self._conn:
            self._conn.executemany("DELETE FROM pending WHERE cell_key = ?", [(k,) for k in keys])

    def acquire_leases(
        self, cell_keys: Iterable[str], owner: str, stale_after_s: float
    ) -> tuple[set[str], dict[str, int]]:
        """Take the leases of ``cell_keys`` that no live runner holds, in one transaction.

        A lease is free when absent, held by ``owner``, held by a dead process on this host, or not renewed for
        ``stale_after_s`` (a runner on another host).  Returns (keys now held, ``{key: pid}`` held by others).
        """
        host, now = socket.gethostname(), time.time()
        mine: set[str] = set()
        theirs: dict[str, int] = {}
        with self._conn:
            self._conn.execute("BEGIN IMMEDIATE")
            for key in dict.fromkeys(cell_keys):
                held = self._conn.execute(
                    "SELECT owner, pid, host, heartbeat FROM leases WHERE cell_key = ?", (key,)
                ).fetchone()
                if (
                    held is not None
                    and held[0] != owner
                    and _alive(held[1], held[2], held[3], host, now, stale_after_s)
                ):
                    theirs[key] = int(held[1])
                    continue
                self._conn.execute(
                    "INSERT OR REPLACE INTO leases (cell_key, owner, pid, host, heartbeat) VALUES (?, ?, ?, ?, ?)",
                    (key, owner, os.getpid(), host, now),
                )
                mine.add(key)
        return mine, theirs

    def renew_leases(self, owner: str) -> None:
        if "leases" not in self.tables():
            return
        with self._conn:
            self._conn.execute("UPDATE leases SET heartbeat = ? WHERE owner = ?", (time.time(), owner))

    def release_leases(self, owner: str, cell_keys: Iterable[str] | None = None) -> None:
        """Drop ``owner``'s leases (all of them, or those of ``cell_keys``)."""
        if "leases" not in self.tables():
            return
        with self._conn:
            if cell_keys is None:
                self._conn.execute("DELETE FROM leases WHERE owner = ?", (owner,))
            else:
                self._conn.executemany(
                    "DELETE FROM leases WHERE owner = ? AND cell_key = ?", [(owner, k) for k in cell_keys]
                )

    def samples(self, table: str, row_ids: Iterable[int] | None = None) -> pd.DataFrame:
        """Raw per-call samples of rows of ``table`` (all, or those of ``row_ids``)."""
        if "samples" not in self.tables():
            return pd.DataFrame(columns=["row_table", "row_id", "round", "process", "iter", "ms"])
        sql, params = "SELECT * FROM samples WHERE row_table = ?", [table]
        if row_ids is not None:
            ids = [int(i) for i in row_ids]
            if not ids:
                return pd.DataFrame(columns=["row_table", "row_id", "round", "process", "iter", "ms"])
            sql += f" AND row_id IN ({', '.join('?' for _ in ids)})"
            params += ids
        return pd.read_sql_query(sql + " ORDER BY row_id, round, iter", self._conn, params=params)

    def read(self, table: str, where: Mapping[str, Any] | None = None, *, keep_row_id: bool = False) -> pd.DataFrame:
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
        return frame if keep_row_id or "row_id" not in frame.columns else frame.drop(columns=["row_id"])

    def exists(self, table: str, where: Mapping[str, Any]) -> bool:
        """True when at least one row of ``table`` matches ``where`` exactly (resume / skip logic)."""
        return not self.read(table, where).empty


def _alive(pid: int, host: str, heartbeat: float, my_host: str, now: float, stale_after_s: float) -> bool:
    """Whether a lease's holder may still be running (same host: its pid exists; elsewhere: recent heartbeat)."""
    if now - float(heartbeat or 0) > stale_after_s:
        return False
    if host != my_host:
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
