"""Supervision across the process boundary: killed, interrupted and concurrent runners (real subprocesses).

Every runner here is started in a session of its own, tagged through its environment, so the test can find the
runner's workers (the zygote and its forked children inherit the tag) and kill the runner alone.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from vmibench.measure.kinds.peak import CPU_PEAK_SIZES

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

QUICK = ("--threads", "1", "--no-flops")
FAST = (*QUICK, "--no-peak")  # where the device peaks are beside the point


def start(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    tag = uuid.uuid4().hex
    (tmp_path / "tmp").mkdir(exist_ok=True)
    # TMPDIR holds only what the runner and its workers leave behind (torch's inductor cache, a directory it keeps
    # on purpose, goes elsewhere)
    env = dict(os.environ, PYTHONWARNINGS="ignore", VMIBENCH_TEST_TAG=tag, TMPDIR=str(tmp_path / "tmp"),
               TORCHINDUCTOR_CACHE_DIR=str(tmp_path / "inductor-cache"))  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "vmibench", *args], cwd=tmp_path, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)  # fmt: skip
    return proc, tag


def tagged(tag: str) -> dict[int, int]:
    """``{pid: ppid}`` of live processes carrying ``tag`` in their environment (zombies excluded)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if f"VMIBENCH_TEST_TAG={tag}".encode() not in (entry / "environ").read_bytes():
                continue
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z":
            found[int(entry.name)] = int(fields[1])
    return found


def workers(tag: str, runner: int) -> list[int]:
    return [pid for pid in tagged(tag) if pid != runner]


def wait_for(what, timeout: float = 120.0, every: float = 0.2):  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = what()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


def query(db: Path, sql: str) -> list[tuple]:
    if not db.exists():
        return []
    try:
        with sqlite3.connect(db, timeout=30) as conn:
            return conn.execute(sql).fetchall()
    except sqlite3.OperationalError:  # table not created yet
        return []


def measuring_child(tag: str, runner: int) -> int | None:
    """A forked child of the runner's zygote (a cell being measured), if one runs."""
    procs = tagged(tag)
    zygotes = {pid for pid, ppid in procs.items() if ppid == runner}
    return next((pid for pid, ppid in procs.items() if ppid in zygotes), None)


def test_sigkill_of_the_runner_alone_leaves_no_worker_and_no_temp_dir(tmp_path: Path) -> None:
    deadline_s = 20
    proc, tag = start(tmp_path, "latency", "--models", "vminet_t", "--res", "64", "--min-time", "60",
                      "--max-time", "60", "--cell-timeout", str(deadline_s), *FAST)  # fmt: skip
    try:
        wait_for(lambda: measuring_child(tag, proc.pid))  # no peaks first (--no-peak): this is the model cell
        started = time.monotonic()
        os.kill(proc.pid, signal.SIGKILL)  # the runner only, not its group
        proc.wait(timeout=30)
        wait_for(lambda: not workers(tag, proc.pid), timeout=deadline_s + 5)
        assert time.monotonic() - started <= deadline_s + 5
    finally:
        for pid in workers(tag, proc.pid):
            os.kill(pid, signal.SIGKILL)
    # The workers create no temp files (results and output travel over pipes), and the runner and its workers
    # had TMPDIR pointed at tmp/: whatever a killed worker left, by any name, would be there.
    assert not list((tmp_path / "tmp").iterdir())


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_interrupt_stops_with_one_line_and_a_rerun_completes_once(tmp_path: Path, sig: int, code: int) -> None:
    db = tmp_path / "vmibench.sqlite"
    args = ("latency", "--models", "vminet_t,deit_t", "--res", "64", "--rounds", "2", "--min-time", "1",
            "--max-time", "2", *FAST)  # fmt: skip
    proc, tag = start(tmp_path, *args)
    wait_for(lambda: query(db, "SELECT 1 FROM pending"))  # a round is done, the run is half-way
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines[-1].startswith("vmibench: interrupted: ") and "rows stored in DB" in lines[-1]
    assert "rerun the same command to resume" in lines[-1] and "Traceback" not in err
    wait_for(lambda: not workers(tag, proc.pid), timeout=10)
    assert not query(db, "SELECT 1 FROM leases")
    rerun, _ = start(tmp_path, *args)
    _, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    rows = query(db, "SELECT cell_key, status, rounds FROM latency")
    assert len(rows) == 2 and len({r[0] for r in rows}) == 2 and {r[1:] for r in rows} == {("ok", 2)}


def test_two_concurrent_sweeps_on_one_store_measure_every_cell_once(tmp_path: Path) -> None:
    db = tmp_path / "shared.sqlite"
    args = ("sweep", "--models", "vminet_t,deit_t", "--res", "64,96", "--rounds", "1", "--max-time", "0.5",
            "--db", str(db), "--format", "csv", *QUICK)  # fmt: skip
    runs = [start(tmp_path, *args)[0] for _ in range(2)]
    outputs = [p.communicate(timeout=400) for p in runs]
    for p, (out, err) in zip(runs, outputs, strict=True):
        assert p.returncode == 0, err
        assert len([ln for ln in out.splitlines()[1:] if ln.strip()]) == 4  # each prints every requested row
    rows = query(db, "SELECT cell_key FROM latency")
    assert len(rows) == 4 and len(set(rows)) == 4
    assert sorted(query(db, "SELECT matmul_n FROM peak")) == [(n,) for n in CPU_PEAK_SIZES]  # each size once
    assert any("another runner" in err for _, err in outputs)


def test_retry_failed_reopens_a_ladder_whose_first_size_timed_out(vmi) -> None:
    args = ("sweep", "--models", "vminet_t", "--res", "64,96,128", "--rounds", "1", "--format", "json", *FAST)
    first = vmi(*args, "--max-time", "3", "--cell-timeout", "1")  # >= 1 s timing + warm-up: past the deadline
    assert first.returncode == 0, first.stderr
    import json

    statuses = [(r["res"], r["status"]) for r in json.loads(first.stdout)]
    assert statuses == [("64", "timeout"), ("96", "skipped"), ("128", "skipped")]
    again = vmi(*args, "--max-time", "0.3", "--cell-timeout", "120")
    assert [r["status"] for r in json.loads(again.stdout)] == ["timeout", "skipped", "skipped"]  # not re-opened
    retried = vmi(*args, "--max-time", "0.3", "--cell-timeout", "120", "--retry-failed")
    assert retried.returncode == 0, retried.stderr
    assert [r["status"] for r in json.loads(retried.stdout)] == ["ok", "ok", "ok"]
