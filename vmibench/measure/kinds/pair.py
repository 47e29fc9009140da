"""Kind ``pair``: two cells timed in one worker process, in strict alternation, for the ratio of their latencies.

Why: on a shared host the machine's speed changes within a second (a neighbour's load), so two cells timed minutes
apart in separate processes differ by tens of percent for reasons neither owns, and a ratio of them needs many
rounds to reach a 10% verdict.  Calls that alternate -- a, b, a, b, ... -- meet the same machine, and their ratio
cancels what the moment did to both.  Each round is still a fresh process (the runner's rounds), so what one
process does to one member stays in the interval, which is the t-interval over rounds of the per-round log ratio
of medians (:func:`vmibench.analysis.bootstrap.ratio_ci`).

Planned by :func:`pair_cell` from the two members' own cells (the adaptive phase makes one for each pre-registered
ratio still undecided, :mod:`vmibench.measure.adaptive`); the child builds both members' steps
(:meth:`~vmibench.measure.rows.TimedWorkload.build_step`) and times them with
:func:`vmibench.measure.timing.time_alternating`; a row is a :class:`vmibench.records.PairRecord` in ``pairs``, and
its raw samples are in call order (even calls ``a``, odd calls ``b``).  The members' own rows are untouched: a
member's latency in the report is still its own cell's.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from vmibench.measure.cells import Cell, Settings, Workload
from vmibench.measure.kinds.registry import register_kind, workload_class
from vmibench.measure.rows import TimedWorkload, timed_record
from vmibench.records import PairRecord

if TYPE_CHECKING:
    import torch

    from vmibench.measure.cells import WorkerResult
    from vmibench.measure.timing import TimingPolicy, TimingStats


def split_calls(samples: Sequence[float]) -> tuple[list[float], list[float]]:
    """A pair round's samples (call order) as (member a's calls, member b's calls); an unmatched last call is
    dropped so that every call of ``a`` has its neighbour of ``b``."""
    n = len(samples) // 2
    return list(samples[0 : 2 * n : 2]), list(samples[1 : 2 * n : 2])


def call_ratios(samples: Sequence[float]) -> list[float]:
    """A pair round's per-cycle ratios ``a_i / b_i`` (adjacent calls): the round's series of the ratio, whose
    variance structure the calibration study fits like a cell's (``vmibench check calibrate``)."""
    a, b = split_calls(samples)
    return [x / y for x, y in zip(a, b, strict=True) if y > 0]


def _member(text: str) -> TimedWorkload:
    data = json.loads(text)
    kind = data.pop("kind")
    wl = workload_class(kind)(**data)
    if not isinstance(wl, TimedWorkload):
        raise ValueError(f"a pair's member must be a timed workload, not '{kind}'")
    return wl


def _dump(wl: Workload) -> str:
    return json.dumps(wl.ident(), sort_keys=True)


@register_kind
@dataclass(frozen=True)
class InterleavedPair(Workload):
    """Two timed workloads (``a`` and ``b``, each its JSON identity) alternated call by call in one process."""

    KIND: ClassVar[str] = "pair"
    TABLE: ClassVar[str] = "pairs"

    a: str
    b: str

    @cached_property
    def members(self) -> tuple[TimedWorkload, TimedWorkload]:
        return _member(self.a), _member(self.b)

    def describe(self) -> str:
        first, second = self.members
        return f"{first.describe()} | {second.describe()} (interleaved)"

    def ladder(self) -> tuple[Any, ...]:
        first, second = self.members
        return (self.KIND, first.ladder(), second.ladder())

    def size(self) -> float:
        return self.members[0].size()

    def round_policy(self, policy: TimingPolicy, rounds: int) -> TimingPolicy:
        # every round is a whole measurement, not a share of one: a round pays for building and warming up both
        # members, and a ratio of medians of one or two calls each would carry the call noise the pair is meant
        # to take out
        return policy

    def run(self, settings: Settings, device: torch.device) -> WorkerResult:
        from vmibench.measure import steps

        first, second = self.members
        return steps.time_interleaved([lambda: first.build_step(settings, device),
                                       lambda: second.build_step(settings, device)], settings, device)  # fmt: skip

    def pooled_fields(
        self, settings: Settings, results: Sequence[WorkerResult], stats: TimingStats, medians: Sequence[float]
    ) -> dict[str, Any]:
        from vmibench.analysis.bootstrap import median_ci, ratio_ci
        from vmibench.measure.timing import summarize

        rounds = [split_calls(r.samples_ms) for r in results]
        per_a, per_b = [a for a, _ in rounds], [b for _, b in rounds]
        cycles = [[x + y for x, y in zip(a, b, strict=True)] for a, b in rounds]
        cycle = summarize([x for c in cycles for x in c])
        ratio = ratio_ci(per_a, per_b, paired=True)
        cycle_ci = median_ci(cycles)
        return dict(
            latency_ms_median=cycle.median_ms, latency_ms_ci_low=cycle_ci.low, latency_ms_ci_high=cycle_ci.high,
            latency_ms_iqr=cycle.iqr_ms, latency_ms_p10=cycle.p10_ms, latency_ms_p90=cycle.p90_ms,
            latency_ms_mean=cycle.mean_ms, latency_ms_min=cycle.min_ms, rel_se=cycle.rel_se, n_iters=cycle.n,
            a_ms_median=statistics.median(x for a in per_a for x in a),
            b_ms_median=statistics.median(x for b in per_b for x in b),
            ratio=ratio.value, ratio_ci_low=ratio.low, ratio_ci_high=ratio.high,
            converged=all(r.converged for r in results), warmup_iters=min(r.warmup_iters for r in results),
            timer=results[0].timer, scan_backend=results[0].scan_backend, n_processes=len(results),
            wall_s=sum(r.wall_s or 0.0 for r in results),
        )  # fmt: skip

    def record(self, settings: Settings, fields: dict[str, Any]) -> PairRecord:
        first, second = self.members
        batch = getattr(first, "batch", 1)
        return timed_record(PairRecord, settings, fields, batch=batch, a=first.name(), b=second.name(),
                            at=int(getattr(first, "height", 0) or getattr(first, "seq_len", 0)),
                            member_table=first.TABLE, a_cell=first.describe(), b_cell=second.describe())  # fmt: skip


def pair_cell(a: Cell, b: Cell) -> Cell | None:
    """The interleaved pair of two planned cells, or None where they cannot share a process: not timed kinds, or
    measured under different settings (two different scan backends among them).  The pair runs under their
    settings with the one scan backend either uses, and counts no FLOPs (each member's own cell has them)."""
    if not (isinstance(a.workload, TimedWorkload) and isinstance(b.workload, TimedWorkload)):
        return None
    backends = {c.settings.scan_backend for c in (a, b)} - {""}
    plain = [replace(c.settings, scan_backend="", count_flops=False, imports=()) for c in (a, b)]
    if len(backends) > 1 or plain[0] != plain[1]:
        return None
    settings = replace(plain[0], scan_backend=next(iter(backends), ""),
                       imports=tuple(dict.fromkeys((*a.settings.imports, *b.settings.imports))))  # fmt: skip
    return Cell(InterleavedPair(_dump(a.workload), _dump(b.workload)), settings)
