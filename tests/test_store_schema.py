"""Store validation and migration: what a store refuses (one line, exit 2, file unchanged) and what it upgrades."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import assert_user_error

from vmibench.errors import UserError
from vmibench.store import META_TABLE, SCHEMA_VERSION, ResultStore


@contextmanager
def _sql(path: Path) -> Iterator[sqlite3.Connection]:
    """A plain connection, committed and closed on exit (closing checkpoints a WAL store into its file)."""
    conn = sqlite3.connect(path)
    try:
        with conn:
            yield conn
    finally:
        conn.close()


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _ours(path: Path, n: int = 50) -> Path:
    """A valid store with some rows, checkpointed into the main file (no -wal left)."""
    with ResultStore(path) as store:
        store.append_rows("latency", [{"model": f"m{i}", "res": "224", "status": "ok", "pad": "x" * 200}
                                      for i in range(n)])  # fmt: skip
    return path


def _foreign_table(path: Path) -> None:
    _ours(path)
    with _sql(path) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER, name TEXT)")


def _legacy_latency_of_other_schema(path: Path) -> None:
    with _sql(path) as conn:
        conn.execute("CREATE TABLE latency (run TEXT, ms REAL)")
        conn.execute("INSERT INTO latency VALUES ('a', 1.0)")


def _newer_schema(path: Path) -> None:
    _ours(path)
    with _sql(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")


def _not_a_database(path: Path) -> None:
    path.write_bytes(b"model,latency\nvminet_t,3.1\n" * 100)


def _corrupt_page(path: Path) -> None:
    _ours(path, n=400)
    with _sql(path) as conn:
        page = conn.execute("PRAGMA page_size").fetchone()[0]
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
    assert pages > 4
    data = bytearray(path.read_bytes())
    data[page * 2 : page * 3] = bytes(range(256)) * (page // 256)  # a b-tree page overwritten with garbage
    path.write_bytes(bytes(data))


def _read_only(path: Path) -> None:
    _ours(path)
    path.chmod(0o444)


REFUSED: dict[str, tuple[Callable[[Path], None], str]] = {
    "foreign table": (_foreign_table, "did not create (customers)"),
    "latency table of another schema": (_legacy_latency_of_other_schema, "did not create (latency)"),
    "newer schema": (_newer_schema, "newer vmibench"),
    "not a database": (_not_a_database, "not a readable SQLite database"),
    "corrupt page": (_corrupt_page, "is corrupt (database disk image is malformed)"),
    "read-only file": (_read_only, "read-only"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_store_refuses_and_leaves_the_file_unchanged(case: str, tmp_path: Path) -> None:
    make, fragment = REFUSED[case]
    path = tmp_path / "r.sqlite"
    make(path)
    before = _digest(path)
    with pytest.raises(UserError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        ResultStore(path)
    assert _digest(path) == before
    assert not (tmp_path / "r.sqlite-wal").exists()


@pytest.mark.parametrize("case", ["foreign table", "corrupt page", "newer schema", "read-only file"])
def test_cli_refuses_a_bad_store_before_measuring(case: str, tmp_path: Path, vmi) -> None:
    make, fragment = REFUSED[case]
    path = tmp_path / "r.sqlite"
    make(path)
    before = _digest(path)
    proc = vmi("latency", "--models", "deit_t", "--res", "224", "--max-time", "0.1", "--db", str(path))
    assert_user_error(proc, str(path), fragment)
    assert _digest(path) == before


def test_readers_never_write(tmp_path: Path) -> None:
    path = _ours(tmp_path / "r.sqlite")
    before = _digest(path)
    with ResultStore(path, readonly=True) as store:
        assert len(store.read("latency")) == 50
        with pytest.raises(RuntimeError, match="read-only"):
            store.append_rows("latency", [{"model": "x"}])
    assert _digest(path) == before


def test_unversioned_store_is_migrated_in_place(tmp_path: Path) -> None:
    """A store written before schema versioning (user_version 0, no table list, no row_uid) is upgraded."""
    path = tmp_path / "old.sqlite"
    with _sql(path) as conn:
        conn.execute("CREATE TABLE latency (row_id INTEGER PRIMARY KEY AUTOINCREMENT, model, status, cell_key)")
        conn.executemany(
            "INSERT INTO latency (model, status, cell_key) VALUES (?, 'ok', ?)", [("a", "k1"), ("b", "k2")]
        )
        conn.execute("CREATE TABLE samples (row_table TEXT, row_id INTEGER, round INTEGER, process INTEGER, "
                     "iter INTEGER, ms REAL)")  # fmt: skip
    with ResultStore(path) as store:
        assert store.schema_version() == SCHEMA_VERSION
        rows = store.read("latency")
        assert list(rows["model"]) == ["a", "b"]
        assert rows["row_uid"].notna().all() and rows["row_uid"].nunique() == 2
        assert set(store.latest_rows("latency", ["k2"])) == {"k2"}
    with _sql(path) as conn:
        assert {r[0] for r in conn.execute(f"SELECT name FROM {META_TABLE}")} == {"latency"}
        indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"latency_row_uid", "latency_cell_key"} <= indexes


def test_new_tables_are_recorded_so_reopening_accepts_them(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    with ResultStore(path) as store:
        store.append_rows("some_future_kind", [{"x": 1}])
    with ResultStore(path) as store:  # not refused as foreign: vmibench created it
        assert list(store.read("some_future_kind")["x"]) == [1]


def test_concurrent_first_opens_create_one_schema(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def open_and_write(i: int) -> None:
        try:
            barrier.wait()
            with ResultStore(path) as store:
                store.append_rows("latency", [{"model": f"m{i}"}])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_and_write, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with ResultStore(path, readonly=True) as store:
        assert sorted(store.read("latency")["model"]) == [f"m{i}" for i in range(6)]
        assert store.schema_version() == SCHEMA_VERSION
