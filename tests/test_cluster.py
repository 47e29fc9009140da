"""Scale-out with submitit: jobs write shards, `collect` merges them idempotently, SLURM gets the right sbatch."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path

import pytest
from conftest import assert_user_error

from vmibench.env import capture
from vmibench.measure.api import run_settings
from vmibench.measure.cluster import shard_dir, split_jobs
from vmibench.measure.timing import TimingPolicy
from vmibench.store import SCHEMA_VERSION, ResultStore
from vmibench.sweep import plan_cells

pytest.importorskip("submitit")

TINY = ("--max-time", "0.2", "--rounds", "1", "--no-flops", "--threads", "1", "--no-peak")


def _settings():
    return run_settings(device="cpu", threads=1, policy=TimingPolicy.quick(), count_flops=False)


def test_jobs_keep_ladders_whole_and_balance_cost() -> None:
    cells = plan_cells(["deit_t", "vminet_t", "mlla_t"], [(224, 224), (256, 256), (512, 512)], [1], _settings())
    jobs = split_jobs(cells, jobs=2, rounds=3)
    assert len(jobs) == 2 and sorted(len(j) for j in jobs) == [3, 6]
    assert sorted(c.to_json() for j in jobs for c in j) == sorted(c.to_json() for c in cells)
    for job in jobs:  # each model's ladder lies in one job
        models = {c.workload.model for c in job}
        assert all(sum(c.workload.model == m for c in job) == 3 for m in models)
    assert len(split_jobs(cells, jobs=None, rounds=1)) == 3  # default: one job per ladder
    assert len(split_jobs(cells, jobs=10, rounds=1)) == 3  # never more jobs than ladders


def test_local_executor_then_collect_twice_gives_the_plain_sweeps_cells(vmi, tmp_path: Path) -> None:
    db = tmp_path / "r.sqlite"
    proc = vmi("sweep", "--models", "vminet_t,deit_t", "--res", "224,256", "--executor", "local", *TINY,
               "--db", str(db))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert len(list(shard_dir(db).glob("*.sqlite"))) == 2  # one job per model ladder
    for _ in range(2):
        again = vmi("collect", "--db", str(db))
        assert again.returncode == 0 and "collected 0 new row(s) from 2 shard(s)" in again.stderr, again.stderr
    with ResultStore(db, readonly=True) as store:
        rows = store.read("latency")
        samples = store.samples("latency")
    assert len(rows) == 4 and rows["cell_key"].is_unique and rows["row_uid"].is_unique
    assert set(rows["status"]) == {"ok"}
    # the same cells, by identity, as a sweep in this process would have measured
    settings = run_settings(device="cpu", threads=1, policy=TimingPolicy(max_time_s=0.2, min_time_s=0.2),
                            count_flops=False)  # fmt: skip
    env_key = capture("cpu").key("cpu")
    planned = plan_cells(["vminet_t", "deit_t"], [(224, 224), (256, 256)], [1], settings)
    assert {c.workload.model for c in planned} == set(rows["model"])
    assert len({c.key(env_key) for c in planned}) == 4
    # every row kept its raw samples, re-pointed at the merged row ids
    assert set(samples["row_id"]) == set(store_ids(db))
    # a rerun resumes from the store: nothing is measured again
    rerun = vmi("sweep", "--models", "vminet_t,deit_t", "--res", "224,256", "--executor", "local", *TINY,
                "--db", str(db))  # fmt: skip
    assert "0 measured" in rerun.stderr and "collected 0 new row(s)" in rerun.stderr, rerun.stderr


def store_ids(db: Path) -> list[int]:
    with ResultStore(db, readonly=True) as store:
        return list(store.read("latency", keep_row_id=True)["row_id"])


def test_collect_refuses_a_shard_of_another_schema(vmi, tmp_path: Path) -> None:
    db = tmp_path / "r.sqlite"
    with ResultStore(db) as store:
        store.append_rows("latency", [{"model": "a"}])
    shards = shard_dir(db)
    shards.mkdir()
    good, bad = shards / "job0000.sqlite", shards / "job0001.sqlite"
    with ResultStore(good) as shard:
        shard.append_rows("latency", [{"model": "b"}])
    with ResultStore(bad) as shard:
        shard.append_rows("latency", [{"model": "c"}])
    conn = sqlite3.connect(bad)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    assert_user_error(vmi("collect", "--db", str(db)), "job0001.sqlite", "newer vmibench")
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before  # nothing merged, not even the good shard
    assert_user_error(vmi("collect", "--db", str(tmp_path / "other.sqlite")), "no shards")


def test_bad_scale_out_options_are_refused_before_work(vmi, tmp_path: Path) -> None:
    args = ("sweep", "--models", "deit_t", "--res", "224", "--db", str(tmp_path / "r.sqlite"))
    assert_user_error(vmi(*args, "--executor", "pbs"), "unknown executor 'pbs'")
    assert_user_error(vmi(*args, "--executor", "slurm"), "--slurm-partition")
    assert_user_error(vmi(*args, "--executor", "local", "--jobs", "0"), "--jobs 0")
    assert not (tmp_path / "r.sqlite").exists()


def test_slurm_submission_is_one_array_with_the_requested_resources(
    vmi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No cluster: fake `srun`/`sbatch` on PATH record what submitit would have submitted."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "sbatch_script.sh"
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "sbatch").write_text(f'#!/bin/sh\ncp "$1" {record}\necho "Submitted batch job 4242"\n')
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    db = tmp_path / "r.sqlite"
    proc = vmi("sweep", "--models", "vminet_t,deit_t,mlla_t", "--res", "224", "--executor", "slurm",
               "--slurm-partition", "gpu", "--gpus-per-job", "1", "--array-parallelism", "2", "--slurm-time", "30",
               "--cpus-per-job", "8", "--db", str(db))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "submitted 3 job(s)" in proc.stderr and "vmibench collect" in proc.stderr
    script = record.read_text()
    for line in ("#SBATCH --partition=gpu", "#SBATCH --gpus-per-node=1", "#SBATCH --array=0-2%2",
                 "#SBATCH --time=30", "#SBATCH --cpus-per-task=8", "#SBATCH --job-name=vmibench"):  # fmt: skip
        assert line in script, (line, script)
    assert f"export PYTHONPATH={Path(__file__).resolve().parents[1]}" in script
    assert not list(shard_dir(db).glob("*.sqlite"))  # nothing ran: the jobs are the cluster's now
