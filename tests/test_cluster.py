"""Scale-out with submitit: jobs write shards, `collect` merges them idempotently, SLURM gets the right sbatch."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import assert_user_error

from vmibench.env import capture
from vmibench.errors import UserError
from vmibench.measure.api import run_settings
from vmibench.measure.cluster import (
    FINISHED,
    ScaleOut,
    default_gpus,
    gpus_in_gres,
    job_states,
    leftovers,
    parse_sacct,
    parse_squeue,
    scale_out,
    shard_dir,
    split_jobs,
    with_gpus_for,
)
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


def fake_slurm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **tools: str) -> None:
    """SLURM commands on PATH as shell scripts (``tools``: name -> script body; srun does nothing)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, body in {"srun": "exit 0", **tools}.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


def test_slurm_submission_is_one_array_with_the_requested_resources(
    vmi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No cluster: fake `sinfo`/`srun`/`sbatch` on PATH record what submitit would have submitted."""
    record = tmp_path / "sbatch_script.sh"
    fake_slurm(tmp_path, monkeypatch, sinfo="echo 'gpu:a100:4(S:0-1)'",
               sbatch=f'cp "$1" {record}\necho "Submitted batch job 4242"')  # fmt: skip
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


def test_gpus_per_job_default_by_device_and_gres_parsing() -> None:
    assert (default_gpus("cpu"), default_gpus("cuda"), default_gpus("cuda:1")) == (0, 1, 1)
    cpu = plan_cells(["deit_t"], [(224, 224)], [1], _settings())
    assert with_gpus_for(ScaleOut(), cpu).gpus_per_job == 0
    assert (
        with_gpus_for(ScaleOut(), [replace(c, settings=replace(c.settings, device="cuda")) for c in cpu]).gpus_per_job
        == 1
    )
    assert with_gpus_for(ScaleOut(gpus_per_job=2), cpu).gpus_per_job == 2  # given: kept
    # `sinfo -h -p PART -o %G`: one line per group of nodes with the same gres
    assert gpus_in_gres("(null)\n") == 0 and gpus_in_gres("") == 0
    assert gpus_in_gres("gpu:4\n") == 4 and gpus_in_gres("gpu:a100:8(S:0-1)\n(null)\n") == 8
    assert gpus_in_gres("gpu:tesla:2,mps:200\ngpu:1\n") == 2 and gpus_in_gres("mps:100\n") == 0


def test_job_states_fall_back_to_squeue_without_accounting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # squeue -h -r -o "%i %T" and sacct -n -P -X -o JobID,State as SLURM 22.05 prints them
    squeue = "7_2 RUNNING\n7_3 PENDING\n8 COMPLETING\n"
    assert parse_squeue(squeue) == {"7_2": "RUNNING", "7_3": "PENDING", "8": "COMPLETING"} and parse_squeue("") == {}
    sacct = "7_0|COMPLETED\n7_1|CANCELLED by 0\n7_2|RUNNING\n"
    assert parse_sacct(sacct) == {"7_0": "COMPLETED", "7_1": "CANCELLED", "7_2": "RUNNING"}
    ids = ["7_0", "7_1", "7_2", "7_3"]
    fake_slurm(tmp_path, monkeypatch, sacct="echo 'Slurm accounting storage is disabled' >&2; exit 1",
               squeue=f"printf '{squeue}'")  # fmt: skip
    assert job_states(ids) == {"7_0": FINISHED, "7_1": FINISHED, "7_2": "RUNNING", "7_3": "PENDING"}
    fake_slurm(tmp_path, monkeypatch, sacct=f"printf '{sacct}7_3|PENDING\\n'", squeue="exit 1")
    assert job_states(ids) == {"7_0": "COMPLETED", "7_1": "CANCELLED", "7_2": "RUNNING", "7_3": "PENDING"}


def test_a_cpu_partition_refuses_gpus_before_anything_is_written(
    vmi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_slurm(tmp_path, monkeypatch, sinfo="echo '(null)'", sbatch="exit 99")
    db = tmp_path / "r.sqlite"
    args = ("sweep", "--models", "deit_t", "--res", "224", "--executor", "slurm", "--db", str(db))
    assert_user_error(vmi(*args, "--slurm-partition", "cpu", "--gpus-per-job", "1"),
                      "partition 'cpu' has no GPUs", "--gpus-per-job 0 with --device cpu")  # fmt: skip
    fake_slurm(tmp_path, monkeypatch, sinfo="exit 0")  # sinfo lists nothing: no such partition
    assert_user_error(vmi(*args, "--slurm-partition", "nosuch", "--gpus-per-job", "0"), "'nosuch' does not exist")
    assert not list(tmp_path.glob("r.sqlite*"))


def test_a_refused_submission_leaves_no_file_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_slurm(tmp_path, monkeypatch, sinfo="echo '(null)'",
               sbatch="echo 'sbatch: error: Batch job submission failed: Invalid account' >&2; exit 1")  # fmt: skip
    db = str(tmp_path / "r.sqlite")
    cells = plan_cells(["deit_t", "vminet_t"], [(224, 224)], [1], _settings())
    with pytest.raises(UserError) as refused:
        scale_out(cells, ScaleOut(executor="slurm", slurm_partition="cpu").check(), db, rounds=1, cell_timeout_s=60)
    assert str(refused.value) == "sbatch refused the jobs: sbatch: error: Batch job submission failed: Invalid account"
    assert not leftovers(db) and sorted(p.name for p in tmp_path.iterdir()) == ["bin"]
