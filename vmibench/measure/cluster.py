"""Scale a sweep out over many machines with submitit: the same call on this machine and on a SLURM cluster.

The cells are cut into jobs, each job runs the ordinary runner (rounds, supervision, resume) on its own machine
and writes its own *shard*, a vmibench store in ``<db>.shards/``, and ``vmibench collect`` merges the shards
into the store (idempotently: rows carry a ``row_uid``).  A job skips cells the main store already holds, so a
resubmitted sweep resumes.  Jobs keep each model's resolution ladder together, so an OOM at one size still stops
the larger ones, and they are balanced by each cell's predicted cost.

Rows measured by different jobs come from different processes and, on a cluster, different machines: each row
records its own environment, and ratios pair rounds only within one job's run (``run_id``).

``executor="local"`` runs the jobs one wave of ``array_parallelism`` at a time as subprocesses of this machine
(submitit's LocalExecutor), waits for them and collects; ``executor="slurm"`` submits one job array and returns.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vmibench.errors import UserError
from vmibench.measure.cells import Cell
from vmibench.measure.eta import job_prior_s

EXECUTORS = ("local", "slurm")


@dataclass(frozen=True)
class ScaleOut:
    """Where and how the jobs of a scaled-out sweep run (validated by :meth:`check`)."""

    executor: str = "local"
    jobs: int | None = None  # default: one per ladder, at most 64
    array_parallelism: int = 1  # jobs running at once (local: 1, so measurements do not share the machine)
    slurm_partition: str | None = None
    gpus_per_job: int = 1
    slurm_time_min: int = 60
    cpus_per_job: int | None = None
    extra_setup: tuple[str, ...] = field(default=())

    def check(self) -> ScaleOut:
        """Refuse bad values (one-line :class:`UserError`) before anything is planned or submitted."""
        if self.executor not in EXECUTORS:
            raise UserError(f"unknown executor '{self.executor}': use one of {', '.join(EXECUTORS)}")
        for name, value in (("--jobs", self.jobs), ("--array-parallelism", self.array_parallelism),
                            ("--slurm-time", self.slurm_time_min), ("--cpus-per-job", self.cpus_per_job)):  # fmt: skip
            if value is not None and value < 1:
                raise UserError(f"bad {name} {value}: must be a positive integer")
        if self.gpus_per_job < 0:
            raise UserError(f"bad --gpus-per-job {self.gpus_per_job}: must be 0 or more")
        if self.executor == "slurm" and not self.slurm_partition:
            raise UserError("--executor slurm needs --slurm-partition (the partition to submit to)")
        try:
            import submitit  # noqa: F401
        except ImportError:
            raise UserError("--executor needs the submitit package: pip install submitit") from None
        return self


def shard_dir(db: str | os.PathLike[str]) -> Path:
    """The folder of a store's shards (and submitit's logs): ``<db>.shards`` beside the store."""
    return Path(f"{db}.shards")


def split_jobs(cells: Sequence[Cell], jobs: int | None, rounds: int) -> list[list[Cell]]:
    """Cut ``cells`` into at most ``jobs`` lists, ladders whole, balanced by predicted cost (largest first)."""
    ladders: dict[tuple[Any, ...], list[Cell]] = {}
    for cell in cells:
        ladders.setdefault(cell.ladder(), []).append(cell)
    n = min(jobs or min(len(ladders), 64), len(ladders))
    cost = {k: sum(rounds * job_prior_s(c, rounds, first_round=False) for c in v) for k, v in ladders.items()}
    loads = [0.0] * n
    out: list[list[Cell]] = [[] for _ in range(n)]
    for key in sorted(ladders, key=lambda k: -cost[k]):
        i = loads.index(min(loads))
        out[i].extend(ladders[key])
        loads[i] += cost[key]
    return [cells_of_job for cells_of_job in out if cells_of_job]


@dataclass(frozen=True)
class ShardJob:
    """One job: measure its cells into its shard, skipping what the main store holds.  Pickled by submitit and
    called on the machine that runs the job."""

    cells: tuple[str, ...]  # Cell JSON: plain text survives pickling across versions of the dataclasses
    shard: str
    main_db: str
    rounds: int
    cell_timeout_s: float
    force: bool = False
    retry_failed: bool = False
    budget_s: float | None = None
    stop_ladders: bool = True
    with_peak: bool = True

    def __call__(self) -> dict[str, int]:
        from vmibench.measure.api import measure_cells

        summary = measure_cells([Cell.from_json(t) for t in self.cells], db=self.shard, rounds=self.rounds,
                          cell_timeout_s=self.cell_timeout_s, force=self.force, retry_failed=self.retry_failed,
                          budget_s=self.budget_s, stop_ladders=self.stop_ladders, with_peak=self.with_peak,
                          reference_db=None if self.force else self.main_db)  # fmt: skip
        return {"measured": summary.measured, "failed": summary.failed, "skipped": summary.skipped,
                "from_store": summary.from_store, "not_reached": summary.not_reached}  # fmt: skip


def plan_jobs(cells: Sequence[Cell], db: str, scale: ScaleOut, **measure_args: Any) -> list[ShardJob]:
    """The jobs of a scaled-out sweep (pure: nothing submitted)."""
    rounds = int(measure_args.get("rounds", 1))
    groups = split_jobs(cells, scale.jobs, rounds)
    shards = shard_dir(db)
    return [ShardJob(cells=tuple(c.to_json() for c in group), shard=str(shards / f"job{i:04d}.sqlite"),
                     main_db=str(db), **measure_args) for i, group in enumerate(groups)]  # fmt: skip


def make_executor(scale: ScaleOut, folder: Path) -> Any:
    """A submitit executor for ``scale``: the job's Python imports this very checkout (installed or not)."""
    import submitit

    root = str(Path(__file__).resolve().parents[2])
    setup = [f"export PYTHONPATH={root}${{PYTHONPATH:+:$PYTHONPATH}}", *scale.extra_setup]
    if scale.executor == "local":
        executor = submitit.AutoExecutor(folder=folder, cluster="local")
        # gpus_per_node sets the job's CUDA_VISIBLE_DEVICES (0 would hide this machine's GPUs from it)
        executor.update_parameters(timeout_min=scale.slurm_time_min, local_setup=setup,
                                   gpus_per_node=scale.gpus_per_job)  # fmt: skip
        return executor
    executor = submitit.AutoExecutor(folder=folder, cluster="slurm")
    params: dict[str, Any] = {"slurm_partition": scale.slurm_partition, "timeout_min": scale.slurm_time_min,
                              "slurm_array_parallelism": scale.array_parallelism, "name": "vmibench",
                              "slurm_setup": setup, "gpus_per_node": scale.gpus_per_job, "tasks_per_node": 1,
                              "nodes": 1}  # fmt: skip
    if scale.cpus_per_job:
        params["cpus_per_task"] = scale.cpus_per_job
    executor.update_parameters(**params)
    return executor


def run_jobs(jobs: Sequence[ShardJob], scale: ScaleOut, db: str, log: Callable[[str], None] | None = None) -> list[Any]:
    """Submit ``jobs``: on SLURM as one array (returns at once); locally in waves of ``array_parallelism``,
    waiting for each (a failed job is reported, the others go on).  Returns the submitit jobs."""
    say = log or (lambda msg: print(msg, file=sys.stderr))
    folder = shard_dir(db) / "submitit" / "%j"
    executor = make_executor(scale, folder)
    if scale.executor == "slurm":
        with executor.batch():
            submitted = [executor.submit(job) for job in jobs]
        ids = ", ".join(str(j.job_id) for j in submitted[:3]) + (" ..." if len(submitted) > 3 else "")
        say(f"submitted {len(submitted)} job(s) ({ids}); when they finish, run `vmibench collect --db {db}`")
        return submitted
    done: list[Any] = []
    for start in range(0, len(jobs), scale.array_parallelism):
        wave = [executor.submit(job) for job in jobs[start : start + scale.array_parallelism]]
        try:
            for number, job in enumerate(wave, start=start):
                try:
                    counts = job.result()
                    say(f"job {number + 1}/{len(jobs)}: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
                except Exception as exc:  # a job that died: its shard keeps what it stored; a rerun resumes it
                    say(f"job {number + 1}/{len(jobs)} failed ({' '.join(str(exc).split())[:200]}); rerun to resume")
        except BaseException:  # interrupted: a local job must not outlive the command that started it
            for job in wave:
                job.cancel(check=False)
            raise
        done.extend(wave)
    return done


def shards_of(db: str | os.PathLike[str]) -> list[Path]:
    """The shard stores beside ``db``, in job order."""
    return sorted(shard_dir(db).glob("*.sqlite"))


def collect(db: str | os.PathLike[str]) -> list[tuple[Path, int, int]]:
    """Merge every shard of ``db`` into it; returns (shard, rows added, samples added) per shard.

    Every shard is checked before anything is merged, so a refused shard (another schema, not a vmibench store)
    leaves the store as it was.  Merging is idempotent: rows already present (by ``row_uid``) are not added again.
    """
    from vmibench.store import ResultStore

    shards = shards_of(db)
    if not shards:
        raise UserError(f"no shards in {shard_dir(db)}: run `vmibench sweep --executor local|slurm --db {db}` first")
    with ResultStore(db) as store:
        return [(shard, *added) for shard, added in zip(shards, store.merge(shards), strict=True)]
