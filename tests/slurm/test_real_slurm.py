"""A scaled-out sweep on a real SLURM cluster (`nox -s slurm` only: root on Debian, daemons started here).

`vmibench sweep --executor slurm` and `vmibench collect` run as subprocesses, as a user runs them: a CPU
partition refuses GPUs in one line and writes nothing; a sweep is submitted, cancelled with `scancel` half-way
through its array, collected, resubmitted, and collected twice more; the store then holds exactly one row per
cell.  Each step is printed with its job ids and counts (CI output), and so is the test's duration.
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import ROOT

from vmibench.measure.cluster import FINISHED, job_states, shard_dir

sys.path.insert(0, str(ROOT / "scripts"))
from slurm_cluster import PARTITION, can_run, slurm_cluster

CELLS = ("--models", "vim_t,vminet_t", "--res", "64,96")  # two ladders (two jobs) of two sizes
TINY = ("--device", "cpu", "--rounds", "1", "--max-time", "0.2", "--no-flops", "--no-peak", "--threads", "1")
JOB_TIMEOUT_S = 240


@pytest.fixture(scope="module")
def slurm() -> Iterator[dict[str, str]]:
    """The environment of a SLURM client of a cluster running for this module."""
    reason = can_run()
    if reason:
        pytest.fail(f"nox -s slurm needs root on Debian: {reason}")
    with slurm_cluster() as env:
        os.environ["SLURM_CONF"] = env["SLURM_CONF"]  # for job_states() in this process
        try:
            yield env
        finally:
            del os.environ["SLURM_CONF"]


def say(msg: str) -> None:
    print(f"[slurm-test] {msg}", flush=True)


def vmibench(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vmibench", *args], cwd=cwd, capture_output=True, text=True,
                          env=dict(env, PYTHONWARNINGS="ignore"), timeout=300)  # fmt: skip


def wait_for(what: Callable[[], bool], why: str, timeout: float = JOB_TIMEOUT_S) -> None:
    end = time.monotonic() + timeout
    while not what():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {why}")
        time.sleep(0.5)


def submit(env: dict[str, str], cwd: Path, db: Path) -> list[str]:
    proc = vmibench(env, cwd, "sweep", *CELLS, *TINY, "--executor", "slurm", "--slurm-partition", PARTITION,
                    "--gpus-per-job", "0", "--slurm-time", "10", "--db", str(db))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    match = re.search(r"submitted (\d+) job\(s\) \(([^)]*)\)", proc.stderr)
    assert match, proc.stderr
    ids = [j.strip() for j in match.group(2).split(",")]
    assert int(match.group(1)) == len(ids) == 2
    say(f"submitted: {match.group(0)}")
    return ids


def collect(env: dict[str, str], cwd: Path, db: Path) -> int:
    proc = vmibench(env, cwd, "collect", "--db", str(db))
    assert proc.returncode == 0, proc.stderr
    match = re.search(r"collected (\d+) new row\(s\) from (\d+) shard\(s\)", proc.stderr)
    assert match, proc.stderr
    say(f"collect: {match.group(0)}")
    return int(match.group(1))


def job_logs(db: Path) -> str:
    return "\n".join(f"--- {p}\n{p.read_text()[-1500:]}" for p in sorted(shard_dir(db).rglob("*.err")))


def test_sweep_cancel_resubmit_and_collect_give_one_row_per_cell(slurm: dict[str, str], tmp_path: Path) -> None:
    started = time.monotonic()
    db = tmp_path / "r.sqlite"
    refused = vmibench(slurm, tmp_path, "sweep", *CELLS, *TINY, "--executor", "slurm", "--slurm-partition",
                       PARTITION, "--gpus-per-job", "1", "--db", str(db))  # fmt: skip
    lines = [ln for ln in refused.stderr.splitlines() if ln.strip()]
    assert refused.returncode == 2 and len(lines) == 1 and "has no GPUs" in lines[0], refused.stderr
    assert not os.listdir(tmp_path)  # refused before anything was written
    say(f"refused: {lines[0]}")

    first = submit(slurm, tmp_path, db)
    wait_for(lambda: job_states(first)[first[0]] == FINISHED and job_states(first)[first[1]] == "RUNNING",
             "the first task to finish and the second to run")  # fmt: skip
    states = job_states(first)
    subprocess.run(["scancel", first[0].split("_")[0]], env=slurm, check=True)
    say(f"scancel {first[0].split('_')[0]} with tasks {states}")
    wait_for(lambda: set(job_states(first).values()) == {FINISHED}, "the cancelled array to leave the queue")
    partial = collect(slurm, tmp_path, db)
    # the first ladder whole; the cancelled one in part, or whole when it stored both rows before the cancel landed
    # (a race the cancel can lose on a fast machine: what matters is that nothing is lost or duplicated below)
    assert 2 <= partial <= 4, job_logs(db)

    again = submit(slurm, tmp_path, db)
    say(f"resubmitted: jobs {', '.join(again)}")
    wait_for(lambda: set(job_states(again).values()) == {FINISHED}, "the resubmitted jobs")
    rest = collect(slurm, tmp_path, db)
    assert collect(slurm, tmp_path, db) == 0  # collecting twice adds nothing
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT model, res, status, cell_key FROM latency").fetchall()
    assert partial + rest == len(rows) == 4, (partial, rest, rows, job_logs(db))
    assert len({r[3] for r in rows}) == 4 and {r[2] for r in rows} == {"ok"}, rows
    assert {(r[0], str(r[1])) for r in rows} == {(m, s) for m in ("vim_t", "vminet_t") for s in ("64", "96")}
    say(f"store: {len(rows)} rows, one per cell; test took {time.monotonic() - started:.1f} s")
