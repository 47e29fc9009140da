"""Cells, run settings and worker results: the vocabulary the planner, the runner and the worker share.

A :class:`Cell` is one ``(Workload, Settings)`` pair.  Workloads say *what* runs -- each kind is a module of
:mod:`vmibench.measure.kinds` -- and :class:`Settings` say *how* (device, dtype, threads, compile, channels-last,
scan backend, timing policy).  Both round-trip through JSON, so a cell crosses a process boundary (worker, cluster
job) unchanged, and the worker answers with a :class:`WorkerResult` that round-trips the same way.  Nothing here
imports torch: planning and the CLI stay light.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, ClassVar

from vmibench.errors import UserError
from vmibench.measure.timing import TimingPolicy, split_policy
from vmibench.records import STATUS_OK

if TYPE_CHECKING:
    import torch

    from vmibench.measure.timing import TimingStats
    from vmibench.records import RunRecord


@dataclass(frozen=True)
class Workload:
    """Base of every workload kind (the ``Kind`` protocol): what identifies a cell's workload, and the three
    hooks that make it measurable.  Subclasses are frozen dataclasses."""

    KIND: ClassVar[str] = ""
    TABLE: ClassVar[str] = ""  # "" = not stored: the command that plans it reads the raw results
    TOP_UP: ClassVar[bool] = True  # a short stored row is topped up with more rounds (a search is not)

    def ident(self) -> dict[str, Any]:
        """What identifies this workload (for resume): its fields."""
        return {"kind": self.KIND, **asdict(self)}

    def describe(self) -> str:
        """Short label for progress bars and messages."""
        return self.KIND

    def ladder(self) -> tuple[Any, ...]:
        """Cells on one ladder share this key and differ in :meth:`size` (a failure stops the larger ones)."""
        return (self.KIND, *self.ident().values())

    def size(self) -> float:
        """Position on the ladder (pixels, sequence length); ladders are measured in ascending size."""
        return 0.0

    def round_policy(self, policy: TimingPolicy, rounds: int) -> TimingPolicy:
        """The timing policy of one of ``rounds`` rounds: the cell's budget split among them (see
        :func:`vmibench.measure.timing.split_policy`)."""
        return split_policy(policy, rounds)

    # -- the child process ---------------------------------------------------------------------------------------

    def run(self, settings: Settings, device: torch.device) -> WorkerResult:
        """Build and time this workload in the worker's child (threads, scan backend and imports already set).

        A failure may be raised (the worker turns it into a result) or returned as a result."""
        raise NotImplementedError(f"{type(self).__name__} has no child step")

    # -- the parent: from results to a row ------------------------------------------------------------------------

    def pooled_fields(
        self, settings: Settings, results: Sequence[WorkerResult], stats: TimingStats, medians: Sequence[float]
    ) -> dict[str, Any]:
        """The kind's columns of an ok row, from its rounds' results, their pooled statistics and each round's
        median (the shared ones -- rounds, interval, median, policy -- are already filled)."""
        return {}

    def companion_rows(self, settings: Settings, results: Sequence[WorkerResult]) -> dict[str, list[dict[str, Any]]]:
        """Rows of other tables that belong to an ok row (a profile's breakdown by block and class), by table;
        stored in the same transaction, each with the row's ``row_uid`` in ``<table of this kind>_row_uid``."""
        return {}

    def record(self, settings: Settings, fields: dict[str, Any]) -> RunRecord:
        """The row of this workload under ``settings`` from ``fields``: the shared columns (failure rows) or those
        plus :meth:`pooled_fields` (ok rows)."""
        raise NotImplementedError(f"{self.KIND} cells are not stored")


@dataclass(frozen=True)
class Settings:
    """How every cell of a run is measured.

    ``scan_backend`` is the concrete selective-scan backend (``""`` for a workload with no scan) once a cell is
    planned; ``auto`` is resolved at planning time so that the identity of a cell names what actually ran.
    ``cuda_graph``: the forward is captured once in a CUDA graph after warm-up and the graph replayed (CUDA only).
    """

    device: str = "cpu"
    dtype: str = "fp32"
    threads: int = 1
    channels_last: bool = False
    compile: bool = False
    scan_backend: str = "auto"
    policy: TimingPolicy = field(default_factory=TimingPolicy)
    count_flops: bool = True
    cuda_graph: bool = False
    imports: tuple[str, ...] = ()  # --import files/modules the worker imports first (identity: the workload's source)

    def ident(self) -> dict[str, Any]:
        """Settings that make two measurements comparable (the policy and FLOPs counting do not).

        ``cuda_graph`` is named only when set, so that the cells stored before it existed keep their keys.
        """
        ident = {
            "device": self.device,
            "dtype": self.dtype,
            "threads": self.threads,
            "channels_last": self.channels_last,
            "compile": self.compile,
            "scan_backend": self.scan_backend,
        }
        if self.cuda_graph:
            ident["cuda_graph"] = True
        return ident


def scan_backend_for(settings: Settings, scans: bool) -> str:
    """The concrete scan backend a cell runs ("" when nothing in it scans); ``auto`` resolved for its device."""
    from vmibench.ops import resolve_backend

    if not scans:
        return ""
    try:
        return resolve_backend(settings.scan_backend, settings.device)
    except (ValueError, RuntimeError) as exc:
        raise UserError(f"scan backend '{settings.scan_backend}' cannot run on {settings.device} ({exc}): "
                        "use --scan-backend auto") from None  # fmt: skip


def device_settings(cells: Iterable[Cell]) -> list[Settings]:
    """The distinct (device, dtype, threads) settings of ``cells``, stripped of what only models use: the settings
    a machine's roofs (matmul peak, triad bandwidth) are measured under."""
    return list(dict.fromkeys(replace(c.settings, scan_backend="", count_flops=False, channels_last=False,
                                      compile=False, cuda_graph=False) for c in cells))  # fmt: skip


@dataclass(frozen=True)
class Cell:
    """One measurement job: a workload under settings."""

    workload: Workload
    settings: Settings

    def key(self, env_key: str) -> str:
        """Identity of a cell in the store: (environment, workload, settings), hashed."""
        text = json.dumps([env_key, self.workload.ident(), self.settings.ident()], sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:16]

    def ladder(self) -> tuple[Any, ...]:
        return (*self.workload.ladder(), *self.settings.ident().values())

    def describe(self) -> str:
        return self.workload.describe()

    def to_dict(self) -> dict[str, Any]:
        return {"workload": self.workload.ident(), "settings": asdict(self.settings)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Cell:
        from vmibench.measure.kinds.registry import workload_class

        wl = dict(data["workload"])
        kind = wl.pop("kind")
        settings = dict(data["settings"])
        settings["policy"] = TimingPolicy(**settings["policy"])
        settings["imports"] = tuple(settings.get("imports", ()))
        return cls(workload_class(kind)(**wl), Settings(**settings))

    @classmethod
    def from_json(cls, text: str) -> Cell:
        return cls.from_dict(json.loads(text))


@dataclass(frozen=True)
class Memory:
    """Peak memory of a worker's timed calls (see :mod:`vmibench.measure.memory`)."""

    peak_mb: float
    total_mb: float
    reserved_mb: float | None
    method: str


@dataclass(frozen=True)
class WorkerResult:
    """What one worker process reports for one cell: raw per-call samples, never only their summary.

    Failures are results too: ``status`` is ``oom | error | crashed | timeout`` with a one-line ``error`` and the
    worker's traceback and stderr tail in ``error_detail``.  ``values`` holds what a kind reports beyond timings
    (the cross-check's two timers, the max-batch search); results stored before it was named ``values`` carried it
    as ``extra``, and read the same.
    """

    status: str
    error: str = ""
    error_detail: str = ""
    samples_ms: tuple[float, ...] = ()
    warmup_iters: int = 0
    warmup_s: float = 0.0
    converged: bool = False
    memory: Memory | None = None
    params_m: float | None = None
    gmacs: float | None = None
    gflops: float | None = None
    gbytes_moved: float | None = None
    flops_error: str = ""
    scan_backend: str = ""
    timer: str = ""
    interop_threads: int | None = None
    wall_s: float | None = None
    pid: int | None = None
    env: dict[str, Any] | None = None
    values: dict[str, Any] = field(default_factory=dict)  # kind-specific values (the cross-check's timers)

    @property
    def ok(self) -> bool:
        return self.status == STATUS_OK

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WorkerResult:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if "values" not in values and isinstance(data.get("extra"), dict):
            values["values"] = data["extra"]  # the field's name before
        if values.get("memory") is not None:
            values["memory"] = Memory(**values["memory"])
        values["samples_ms"] = tuple(values.get("samples_ms", ()))
        return cls(**values)

    @classmethod
    def from_json(cls, text: str) -> WorkerResult:
        return cls.from_dict(json.loads(text))
