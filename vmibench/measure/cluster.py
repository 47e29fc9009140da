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

Before a SLURM submission ``sinfo`` is asked what the partition offers, and what it cannot give (GPUs on a CPU
partition, a partition that does not exist) is refused in one line before anything is written; a submission that
``sbatch`` still refuses leaves nothing behind.  Without ``--gpus-per-job`` a job asks for one GPU on a CUDA device
and none on the CPU (:func:`default_gpus`).  Job states come from ``sacct``, or from ``squeue`` on clusters without
accounting storage (:func:`job_states`).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
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
    gpus_per_job: int | None = None  # default: by device (default_gpus), resolved by with_gpus_for
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
        if self.gpus_per_job is not None and self.gpus_per_job < 0:
            raise UserError(f"bad --gpus-per-job {self.gpus_per_job}: must be 0 or more")
        if self.executor == "slurm" and not self.slurm_partition:
            raise UserError("--executor slurm needs --slurm-partition (the partition to submit to)")
        try:
            import submitit  # noqa: F401
        except ImportError:
            raise UserError("--executor needs the submitit package: pip install submitit") from None
        if self.executor == "slurm":
            check_partition(self)
        return self


def default_gpus(device: str) -> int:
    """GPUs a job asks for when ``--gpus-per-job`` is not given: one for a CUDA device, none for the CPU."""
    return 1 if device.startswith("cuda") else 0


def with_gpus_for(scale: ScaleOut, cells: Sequence[Cell]) -> ScaleOut:
    """``scale`` with ``gpus_per_job`` chosen by the cells' device where it was not given."""
    if scale.gpus_per_job is not None:
        return scale
    return replace(scale, gpus_per_job=max((default_gpus(c.settings.device) for c in cells), default=0))


def gpus_in_gres(sinfo_gres: str) -> int:
    """The most GPUs one node offers, from ``sinfo -h -o %G`` output: a line per node group such as ``(null)``,
    ``gpu:4``, ``gpu:a100:8(S:0-1)`` or ``gpu:tesla:2,mps:200``."""
    most = 0
    for line in sinfo_gres.splitlines():
        for item in re.sub(r"\([^)]*\)", "", line).split(","):
            name, *rest = item.strip().split(":")
            if name == "gpu":
                most = max(most, int(rest[-1]) if rest and rest[-1].isdigit() else 1)
    return most


def check_partition(scale: ScaleOut) -> None:
    """Refuse, in one line and before anything is written, what the SLURM partition cannot give: ``sinfo`` must
    know the partition, and it must offer ``gpus_per_job`` GPUs on a node (unchecked while that is undecided)."""
    part = scale.slurm_partition
    try:
        proc = subprocess.run(["sinfo", "-h", "-p", str(part), "-o", "%G"], capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise UserError("--executor slurm needs SLURM's commands on PATH (sinfo not found)") from None
    except subprocess.TimeoutExpired:
        raise UserError("sinfo did not answer within 60 s: is the SLURM controller up?") from None
    if proc.returncode != 0:
        raise UserError(f"sinfo cannot read partition '{part}': {first_error(proc.stderr or proc.stdout)}")
    if not proc.stdout.strip():
        raise UserError(
            f"SLURM partition '{part}' does not exist (sinfo lists no nodes in it): check --slurm-partition"
        )
    offered = gpus_in_gres(proc.stdout)
    if scale.gpus_per_job is not None and scale.gpus_per_job > offered:
        fix = "use --gpus-per-job 0 with --device cpu" if offered == 0 else f"ask for --gpus-per-job {offered} or fewer"
        what = "has no GPUs (no gpu gres)" if offered == 0 else f"offers at most {offered} GPU(s) per node"
        raise UserError(f"SLURM partition '{part}' {what}: {fix}")


def first_error(text: str) -> str:
    """The line of a SLURM command's output that says what went wrong (its ``error:`` line, else its last)."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return next((ln for ln in lines if "error:" in ln), lines[-1] if lines else "no message")[:300]


def parse_squeue(text: str) -> dict[str, str]:
    """``{job id: state}`` from ``squeue -h -r -o "%i %T"`` output (one array task per line: ``12_0 RUNNING``)."""
    return dict(line.split()[:2] for line in text.splitlines() if len(line.split()) >= 2)


def parse_sacct(text: str) -> dict[str, str]:
    """``{job id: state}`` from ``sacct -n -P -X -o JobID,State`` output (``12_0|COMPLETED``, ``12_1|CANCELLED by
    0``: the state's first word)."""
    rows = (line.split("|") for line in text.splitlines() if "|" in line)
    return {job: state.split()[0] for job, state, *_ in rows if state.strip()}


FINISHED = "FINISHED"  # squeue no longer lists the job (sacct, had there been accounting, would say how it ended)


def job_states(job_ids: Sequence[str]) -> dict[str, str]:
    """The SLURM state of each job (array task ids such as ``12_0``): sacct's, or where sacct has no accounting
    storage (submitit then reads UNKNOWN), squeue's, with :data:`FINISHED` for jobs it no longer lists."""
    ids = [str(j) for j in job_ids]
    sacct = subprocess.run(["sacct", "-n", "-P", "-X", "-o", "JobID,State", "-j", ",".join(ids)],
                           capture_output=True, text=True, timeout=60)  # fmt: skip
    known = parse_sacct(sacct.stdout) if sacct.returncode == 0 else {}
    if all(j in known for j in ids):
        return {j: known[j] for j in ids}
    squeue = subprocess.run(["squeue", "-h", "-r", "-o", "%i %T"], capture_output=True, text=True, timeout=60)
    if squeue.returncode != 0:
        raise UserError(f"squeue cannot list the jobs: {first_error(squeue.stderr or squeue.stdout)}")
    queued = parse_squeue(squeue.stdout)
    return {j: known.get(j) or queued.get(j, FINISHED) for j in ids}


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

    if scale.gpus_per_job is None:
        raise ValueError("gpus_per_job undecided: pass the ScaleOut through with_gpus_for first")
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
    waiting for each (a failed job is reported, the others go on).  Returns the submitit jobs.

    ``gpus_per_job`` left undecided is chosen by the jobs' device.  A SLURM submission is checked against the
    partition first, and one that sbatch refuses is a one-line :class:`UserError` that leaves no file behind."""
    say = log or (lambda msg: print(msg, file=sys.stderr))
    scale = with_gpus_for(scale, [Cell.from_json(t) for job in jobs for t in job.cells])
    folder = shard_dir(db) / "submitit" / "%j"
    if scale.executor == "slurm":
        check_partition(scale)
        made_before = leftovers(db)
        executor = make_executor(scale, folder)
        try:
            with executor.batch():
                submitted = [executor.submit(job) for job in jobs]
        except Exception as exc:  # submitit's FailedJobError: sbatch said no
            remove_new(db, made_before)
            raise UserError(f"sbatch refused the jobs: {first_error(str(exc))}") from None
        ids = ", ".join(str(j.job_id) for j in submitted[:3]) + (" ..." if len(submitted) > 3 else "")
        say(f"submitted {len(submitted)} job(s) ({ids}); when they finish, run `vmibench collect --db {db}`")
        return submitted
    executor = make_executor(scale, folder)
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


def leftovers(db: str | os.PathLike[str]) -> set[Path]:
    """The files and folders a scaled-out sweep of ``db`` writes: the store (and its WAL files), its shard folder
    and everything in it (shards, submitit's pickles and logs)."""
    shards = shard_dir(db)
    found = {Path(f"{db}{suffix}") for suffix in ("", "-wal", "-shm", "-journal")} | {shards, *shards.rglob("*")}
    return {p for p in found if p.exists()}


def remove_new(db: str | os.PathLike[str], before: set[Path]) -> None:
    """Remove what :func:`leftovers` finds now that was not there ``before`` (files first, then the folders)."""
    for path in sorted(leftovers(db) - before, key=lambda p: (p.is_dir(), -len(p.parts))):
        if not path.is_dir():
            path.unlink(missing_ok=True)
        elif not any(path.iterdir()):
            path.rmdir()


def scale_out(
    cells: Sequence[Cell], scale: ScaleOut, db: str, log: Callable[[str], None] | None = None, **measure_args: Any
) -> list[tuple[Path, int, int]] | None:
    """A sweep's cells as submitit jobs writing shards: the main store validated (or created) first, then the jobs
    submitted; locally they are waited for and collected (returned as :func:`collect` does), on SLURM ``None``.
    A submission refused (one-line :class:`UserError`) leaves no file behind, not even a store made for it."""
    from vmibench.store import ResultStore

    scale = with_gpus_for(scale, cells)
    if scale.executor == "slurm":
        check_partition(scale)  # before the store is created
    before = leftovers(db)
    ResultStore(db).close()
    try:
        run_jobs(plan_jobs(cells, db, scale, **measure_args), scale, db, log)
    except UserError:
        if scale.executor == "slurm":
            remove_new(db, before)
        raise
    return collect(db) if scale.executor == "local" else None
