"""From worker results to typed rows, the parts every kind shares: pool a cell's rounds, summarise them, attach
the interval and provenance.  What is a kind's own -- its record type and columns -- is its
:meth:`~vmibench.measure.kinds.registry.Workload.record` and ``pooled_fields``; the timed kinds (a forward, an op,
a max-batch search) share :class:`TimedWorkload`, the machine's roofs (matmul peak, triad) :func:`roof_record`."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from vmibench.env import Environment, utc_now
from vmibench.measure.cells import Cell, Memory, Settings, WorkerResult, Workload
from vmibench.measure.timing import TimingStats, summarize
from vmibench.records import STATUS_OK, RunRecord, TimedRecord

if TYPE_CHECKING:
    import torch

    from vmibench.measure.steps import Step

R = TypeVar("R", bound=RunRecord)
T = TypeVar("T", bound=TimedRecord)


def _base_fields(cell: Cell, env: Environment, env_key: str, status: str, error: str, rounds: int) -> dict[str, Any]:
    policy = cell.settings.policy
    return dict(timestamp=utc_now(), env=env, env_key=env_key, cell_key=cell.key(env_key), status=status,
                error=error, timing_policy=json.dumps(asdict(policy)),
                round_policy=json.dumps(asdict(cell.workload.round_policy(policy, rounds))))  # fmt: skip


def failure_record(
    cell: Cell,
    env: Environment,
    env_key: str,
    status: str,
    error: str,
    *,
    detail: str = "",
    skip_reason: str = "",
    rounds: int = 1,
) -> RunRecord:
    """A row for a cell that has no timing: it failed, or was not run (``skipped``)."""
    common = _base_fields(cell, env, env_key, status, error, rounds)
    common.update(error_detail=detail, skip_reason=skip_reason, scan_backend=cell.settings.scan_backend)
    return cell.workload.record(cell.settings, common)


def stored_results(row: dict[str, Any], samples_by_round: Sequence[Sequence[float]]) -> list[WorkerResult]:
    """A stored row's rounds as worker results, to be pooled with new rounds (the runner's top-up).

    Round 0 carries what only the first round measures (counts, memory); the row's environment is the cell's, so
    the results carry none (the runner's capture for the cell key stands in)."""
    memory = None
    if row.get("peak_mem_mb") is not None and not _is_nan(row["peak_mem_mb"]):
        memory = Memory(float(row["peak_mem_mb"]), float(row.get("peak_mem_total_mb") or 0.0),
                        row.get("peak_mem_reserved_mb"), str(row.get("mem_method") or ""))  # fmt: skip
    # the stored rounds' wall time rides on round 0, so that the pooled row's wall_s (the adaptive phase's price of
    # a round) stays the time of all its rounds
    wall = row.get("wall_s")
    first = dict(params_m=row.get("params_m"), gmacs=row.get("gmacs"), gflops=row.get("gflops"),
                 gbytes_moved=row.get("gbytes_moved"), memory=memory,
                 wall_s=None if wall is None or _is_nan(wall) else float(wall))  # fmt: skip
    common = dict(status=STATUS_OK, converged=bool(row.get("converged", True)),
                  warmup_iters=int(row.get("warmup_iters") or 0), scan_backend=str(row.get("scan_backend") or ""),
                  timer=str(row.get("timer") or ""), interop_threads=row.get("interop_threads"))  # fmt: skip
    return [WorkerResult(**common, samples_ms=tuple(s), **(first if i == 0 else {}))  # type: ignore[arg-type]
            for i, s in enumerate(samples_by_round)]  # fmt: skip


def _is_nan(x: Any) -> bool:
    return isinstance(x, float) and math.isnan(x)


def pooled_record(
    cell: Cell, results: Sequence[WorkerResult], env: Environment, env_key: str, *, rounds: int | None = None
) -> RunRecord:
    """The row of a cell measured in ``len(results)`` rounds (all ok): median over every sample, with a t-interval
    over the rounds (:mod:`vmibench.analysis.intervals`), the per-round spread and the first round's FLOPs count.
    ``rounds`` is the run's round count, which set each round's share of the budget (default: ``len(results)``)."""
    from vmibench.analysis.bootstrap import median_ci

    assert results and all(r.ok for r in results)
    per_round = [list(r.samples_ms) for r in results]
    stats = summarize([x for s in per_round for x in s], converged=all(r.converged for r in results),
                      warmup_iters=min(r.warmup_iters for r in results),
                      warmup_s=min(r.warmup_s for r in results))  # fmt: skip
    ci = median_ci(per_round)
    medians = [summarize(s).median_ms for s in per_round if s]
    common = _base_fields(cell, env, env_key, STATUS_OK, "", rounds or len(results))
    common.update(rounds=len(results), latency_ms_ci_low=ci.low, latency_ms_ci_high=ci.high, ci_method=ci.method,
                  ci_level=ci.level, latency_ms_median=stats.median_ms, n_iters=stats.n)  # fmt: skip
    common.update(cell.workload.pooled_fields(cell.settings, results, stats, medians))
    return cell.workload.record(cell.settings, common)


def timed_fields(results: Sequence[WorkerResult], stats: TimingStats, medians: Sequence[float]) -> dict[str, Any]:
    """The columns of a timed row (:class:`vmibench.records.TimedRecord`) from its rounds: the first round's counts
    (FLOPs from the round that counted them), the largest memory peak, the latency distribution, the spread
    between processes."""
    first = results[0]
    flops = next((r for r in results if r.gmacs is not None or r.gbytes_moved is not None), first)
    extra = {"flops_error": first.flops_error} if first.flops_error else {}
    memory = max((r.memory for r in results if r.memory is not None), key=lambda m: m.peak_mb, default=None)
    fields = dict(
        params_m=first.params_m, gmacs=flops.gmacs, gflops=flops.gflops, gbytes_moved=flops.gbytes_moved,
        scan_backend=first.scan_backend,
        timer=first.timer, interop_threads=first.interop_threads, wall_s=sum(r.wall_s or 0.0 for r in results),
        latency_ms_iqr=stats.iqr_ms, latency_ms_p10=stats.p10_ms, latency_ms_p90=stats.p90_ms,
        latency_ms_mean=stats.mean_ms, latency_ms_min=stats.min_ms, rel_se=stats.rel_se, converged=stats.converged,
        warmup_iters=stats.warmup_iters, n_processes=len(results),
        process_spread=(max(medians) - min(medians)) / stats.median_ms if len(medians) > 1 else None,
        extra=json.dumps(extra) if extra else "",
    )  # fmt: skip
    if memory is not None:
        fields.update(peak_mem_mb=memory.peak_mb, peak_mem_total_mb=memory.total_mb,
                      peak_mem_reserved_mb=memory.reserved_mb, mem_method=memory.method)  # fmt: skip
    return fields


def timed_record(cls: type[T], settings: Settings, fields: dict[str, Any], **values: Any) -> T:
    """A timed kind's row: the shared ``fields``, the settings' columns and the kind's ``values`` (its ``batch``
    among them); an ok row's throughput is that batch over the median latency."""
    st = settings
    rec = cls(**fields, **values, device=st.device, dtype=st.dtype, threads=st.threads, channels_last=st.channels_last,
              compile=st.compile, cuda_graph=st.cuda_graph)  # fmt: skip
    if rec.status == STATUS_OK:
        rec.throughput_ips = rec.batch / (rec.latency_ms_median / 1e3)  # type: ignore[operator]
    return rec


def roof_record(cls: type[R], settings: Settings, fields: dict[str, Any], **values: Any) -> R:
    """A row of one of the machine's roofs (matmul peak, triad bandwidth): no scan backend, no model columns."""
    fields = {k: v for k, v in fields.items() if k != "scan_backend"}
    return cls(**fields, **values, device=settings.device, dtype=settings.dtype, threads=settings.threads)  # type: ignore[call-arg]


@dataclass(frozen=True)
class TimedWorkload(Workload):
    """Base of the kinds whose rows are :class:`vmibench.records.TimedRecord`: their ok rows carry
    :func:`timed_fields`, and their :meth:`record` is :func:`timed_record` of their record type."""

    def build_step(self, settings: Settings, device: torch.device) -> Step:
        """Build the call to time and what it counts (in the child), without timing it: :meth:`run` times it
        alone, an interleaved pair (:mod:`vmibench.measure.kinds.pair`) in alternation with another."""
        raise NotImplementedError(f"{type(self).__name__} has no step to build")

    def name(self) -> str:
        """What comparisons call this workload (a model's or an op's registry name)."""
        return self.describe()

    def pooled_fields(
        self, settings: Settings, results: Sequence[WorkerResult], stats: TimingStats, medians: Sequence[float]
    ) -> dict[str, Any]:
        return timed_fields(results, stats, medians)


@dataclass(frozen=True)
class RoofWorkload(Workload):
    """Base of the machine's roofs (matmul peak, triad bandwidth): one kernel on operands of size ``n``, its row a
    ``RECORD`` with ``n`` in the column ``N_COLUMN`` (see :func:`roof_record`)."""

    RECORD: ClassVar[type[RunRecord]]
    N_COLUMN: ClassVar[str]

    n: int

    def kernel(self, settings: Settings, device: torch.device) -> Callable[[], object]:
        """The call to time, its operands allocated (in the child)."""
        raise NotImplementedError

    def run(self, settings: Settings, device: torch.device) -> WorkerResult:
        from vmibench.measure.steps import Step, time_step

        return time_step(lambda: Step(self.kernel(settings, device)), settings, device)

    def record(self, settings: Settings, fields: dict[str, Any]) -> RunRecord:
        return roof_record(self.RECORD, settings, fields, **{self.N_COLUMN: self.n})
