"""Typed workloads, run settings and worker results: what a worker measures, how, and what it hands back.

A :class:`Cell` is one ``(Workload, Settings)`` pair.  Workloads say *what* runs (a model forward or training
step, a token-mixer op, the dense-matmul peak, the triad bandwidth, the max-batch search, the timer cross-check);
:class:`Settings` say *how* (device, dtype, threads, compile, channels-last, scan backend, timing policy).
Both round-trip through JSON, so a cell crosses a process boundary (worker, cluster job) unchanged, and the
worker answers with a :class:`WorkerResult` that round-trips the same way.  Nothing here imports torch:
planning and the CLI stay light.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

from vmibench.measure.timing import TimingPolicy
from vmibench.records import STATUS_OK


@dataclass(frozen=True)
class Workload:
    """Base of every workload: ``KIND`` names it in JSON and in the store; ``TABLE`` is where its rows go."""

    KIND: ClassVar[str] = ""
    TABLE: ClassVar[str] = ""

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


MODES = ("infer", "train")
TASK_CLASSIFY = "classify"  # image -> logits: the whole classifier
TASK_BACKBONE = "backbone"  # image -> multi-scale feature maps (timm features_only): what a detector consumes
TASKS = (TASK_CLASSIFY, TASK_BACKBONE)


@dataclass(frozen=True)
class ModelForward(Workload):
    """One forward pass of a registered (or timm) model on a random batch of ``height x width`` images, or with
    ``mode="train"`` one training step: forward, cross-entropy loss, backward and a plain SGD update.

    ``task`` is ``classify`` (the classifier) or ``backbone`` (``features_only``: the stage feature maps from
    ``forward_intermediates``, no head); ``source`` is the digest of the ``--import`` file that defines the model
    (empty for vmibench's and timm's own), so an edited file makes a new cell.
    """

    KIND: ClassVar[str] = "forward"
    TABLE: ClassVar[str] = "latency"

    model: str
    height: int
    width: int
    batch: int = 1
    mode: str = "infer"
    task: str = TASK_CLASSIFY
    source: str = ""

    def ident(self) -> dict[str, Any]:
        # mode, task and source are named only when set: cells stored before they existed keep their keys
        ident = super().ident()
        if self.mode == "infer":
            ident.pop("mode")
        if self.task == TASK_CLASSIFY:
            ident.pop("task")
        if not self.source:
            ident.pop("source")
        return ident

    def describe(self) -> str:
        task = "" if self.task == TASK_CLASSIFY else f" {self.task}"
        return f"{self.model}{task} {self.height}x{self.width} b{self.batch}" + (
            " train" if self.mode == "train" else ""
        )

    def ladder(self) -> tuple[Any, ...]:
        return (self.KIND, self.model, self.batch, self.mode, self.task, self.source)

    def size(self) -> float:
        return float(self.height * self.width)


@dataclass(frozen=True)
class MaxBatch(Workload):
    """The largest batch that runs ``mode`` (a forward or a training step) within ``mem_limit_gb``, then the
    throughput at that batch (DeiT's protocol).  Powers of two first, then bisection between the last that ran
    and the first that did not.  ``mem_limit_gb=None`` means the CUDA device's free memory."""

    KIND: ClassVar[str] = "maxbatch"
    TABLE: ClassVar[str] = "maxbatch"

    model: str
    height: int
    width: int
    mode: str = "infer"
    mem_limit_gb: float | None = None
    batch_cap: int = 4096  # the search stops here: more is never needed for a throughput figure

    def describe(self) -> str:
        return f"{self.model} {self.height}x{self.width} max batch ({self.mode})"


@dataclass(frozen=True)
class MixerOp(Workload):
    """One call of a token mixer (``vmibench.ops.mixers.OPS``) on ``batch x seq_len x dim`` tokens."""

    KIND: ClassVar[str] = "op"
    TABLE: ClassVar[str] = "ops"

    op: str
    seq_len: int
    dim: int
    batch: int = 1

    def describe(self) -> str:
        return f"{self.op} L={self.seq_len}"

    def ladder(self) -> tuple[Any, ...]:
        return (self.KIND, self.op, self.dim, self.batch)

    def size(self) -> float:
        return float(self.seq_len)


@dataclass(frozen=True)
class MatmulPeak(Workload):
    """``n x n @ n x n`` matmul: the dense-compute peak that utilisation is measured against."""

    KIND: ClassVar[str] = "matmul"
    TABLE: ClassVar[str] = "peak"

    n: int

    def describe(self) -> str:
        return f"matmul peak n={self.n}"


@dataclass(frozen=True)
class StreamTriad(Workload):
    """STREAM's triad ``a = b + s*c`` on ``n``-element arrays: the memory bandwidth a roofline's slope is drawn
    with.  ``n`` is chosen so each array is at least 4x the last-level cache (so the triad streams from DRAM)."""

    KIND: ClassVar[str] = "triad"
    TABLE: ClassVar[str] = "bandwidth"

    n: int

    def describe(self) -> str:
        return f"triad bandwidth n={self.n}"


@dataclass(frozen=True)
class TimerCrosscheck(Workload):
    """One model timed alternately by vmibench's loop and ``torch.utils.benchmark`` in one process."""

    KIND: ClassVar[str] = "crosscheck"
    TABLE: ClassVar[str] = ""  # not stored: `vmibench check timer` prints its own table

    model: str
    height: int
    width: int
    alternations: int = 3
    timer_min_run_time: float = 2.0

    def describe(self) -> str:
        return f"{self.model} (timer cross-check)"


WORKLOADS: dict[str, type[Workload]] = {
    w.KIND: w for w in (ModelForward, MaxBatch, MixerOp, MatmulPeak, StreamTriad, TimerCrosscheck)
}


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
        wl = dict(data["workload"])
        kind = wl.pop("kind")
        settings = dict(data["settings"])
        settings["policy"] = TimingPolicy(**settings["policy"])
        settings["imports"] = tuple(settings.get("imports", ()))
        return cls(WORKLOADS[kind](**wl), Settings(**settings))

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
    worker's traceback and stderr tail in ``error_detail``.
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
    extra: dict[str, Any] = field(default_factory=dict)  # workload-specific values (the cross-check's timers)

    @property
    def ok(self) -> bool:
        return self.status == STATUS_OK

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WorkerResult:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if values.get("memory") is not None:
            values["memory"] = Memory(**values["memory"])
        values["samples_ms"] = tuple(values.get("samples_ms", ()))
        return cls(**values)

    @classmethod
    def from_json(cls, text: str) -> WorkerResult:
        return cls.from_dict(json.loads(text))
