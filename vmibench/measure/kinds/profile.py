"""Kind ``profile``: where a model's time goes -- its forward (or training step) under ``torch.profiler``, each
operator's self time attributed to an operator class and a timm stage/block (:mod:`vmibench.attribution`).

Planned by :func:`plan_profile` (models x resolutions, validated like ``forward`` cells).  In each round the child
builds the model, times unprofiled calls under the cell's policy (the row's samples: its latency is the unprofiled
one), then profiles a few calls; the first round also counts GMACs and bytes by the same blocks and classes.  The
row (:class:`vmibench.records.ProfileRecord`, table ``profile``) carries the profiled latency beside the unprofiled
one and how much of a profiled call the classes account for; its breakdown goes to the ``breakdown`` table, one row
per (block, class) and one per class over all blocks (``block="*"``), each class's share of the time with a
t-interval over rounds (the rounds are the independent units, as for latency), beside its FLOP and byte shares.

Profiling slows a call (the measured overhead is in the row): compare shares, not absolute times, with ``latency``
rows.  Kind ``roof``: the elementwise (large fused-free add) and transcendental (exp) roofs the classes are held
against, beside the matmul peak and the triad (:func:`class_roof_cells`).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from vmibench.measure.cells import Cell, Settings, WorkerResult, device_settings
from vmibench.measure.kinds.forward import TASK_CLASSIFY, ModelForward, plan_cells
from vmibench.measure.kinds.registry import register_kind
from vmibench.measure.kinds.triad import ELEMENT_BYTES, triad_elements
from vmibench.measure.rows import RoofWorkload, timed_fields, timed_record
from vmibench.records import ProfileRecord, RoofKernelRecord
from vmibench.resolution import label

if TYPE_CHECKING:
    import torch

    from vmibench.measure.timing import TimingStats

BREAKDOWN_TABLE = "breakdown"
ALL_BLOCKS = "*"
SLOW_CALL_MS = 1000.0  # a call slower than this is profiled once per round (each profiled call costs as much)


@register_kind
@dataclass(frozen=True)
class ModelProfile(ModelForward):
    """A model's forward (``mode="train"``: training step) timed, then profiled by operator class and block: the
    forward kind's fields and identity (under its own ``KIND``), its own child step, row and breakdown."""

    KIND: ClassVar[str] = "profile"
    TABLE: ClassVar[str] = "profile"
    TOP_UP: ClassVar[bool] = False  # a stored row keeps no per-call profile: its rounds cannot be pooled again

    def describe(self) -> str:
        return f"{super().describe()} profile"

    def run(self, settings: Settings, device: torch.device) -> WorkerResult:
        from dataclasses import replace

        from vmibench.attribution.counts import count_by_class
        from vmibench.attribution.profile import profile_calls
        from vmibench.measure import steps

        timed = super().run(replace(settings, count_flops=False), device)
        if not timed.ok:
            return timed
        # a fresh build for the profiler: the timed step's model lived inside its memory probe and is gone, and the
        # profiled calls must not disturb the timed ones (the row's latency is the unprofiled one)
        model, x = steps.build_model(self.model, self.height, self.width, settings, device, self.batch,
                                     features=self.task != TASK_CLASSIFY)  # fmt: skip
        slow = statistics.median(timed.samples_ms) > SLOW_CALL_MS
        samples = profile_calls(model, x, calls=1 if slow else 3, mode=self.mode, device=str(device),
                                warmup=1, profiler_warmup=0 if slow else 1)  # fmt: skip
        values: dict[str, Any] = {
            "clock": samples[0].clock,
            "profiled_ms": [s.wall_ms for s in samples],
            "unclassified_ms": [s.unclassified_ms for s in samples],
            "times_ms": [{_key(b, c): ms for (b, c), ms in s.times_ms.items()} for s in samples],
            "other_ops": sorted({op for s in samples for op in s.other_ops}),
        }
        if settings.count_flops:
            counts = count_by_class(model, x)
            values["gmacs"] = {_key(b, c): v for (b, c), v in counts.gmacs.items()}
            values["gbytes"] = {_key(b, c): v for (b, c), v in counts.gbytes.items()}
        return replace(timed, values=values)

    def pooled_fields(
        self, settings: Settings, results: Sequence[WorkerResult], stats: TimingStats, medians: Sequence[float]
    ) -> dict[str, Any]:
        fields = timed_fields(results, stats, medians)
        profiled = [ms for r in results for ms in r.values.get("profiled_ms", [])]
        sums = [
            sum(t.values()) / w
            for r in results
            for t, w in zip(r.values.get("times_ms", []), r.values.get("profiled_ms", []), strict=True)
            if w > 0
        ]
        fields.update(
            profiled_ms_median=_median(profiled),
            profile_overhead=statistics.median(profiled) / stats.median_ms if profiled else None,
            class_sum_frac=_median(sums),
            unclassified_ms=_median([u for r in results for u in r.values.get("unclassified_ms", [])]),
            other_ops=",".join(sorted({op for r in results for op in r.values.get("other_ops", [])})),
            clock=results[0].values.get("clock", ""),
        )
        return fields

    def companion_rows(self, settings: Settings, results: Sequence[WorkerResult]) -> dict[str, list[dict[str, Any]]]:
        return {BREAKDOWN_TABLE: breakdown_rows(results, self.model, label((self.height, self.width)), self.mode,
                                                settings)}  # fmt: skip

    def record(self, settings: Settings, fields: dict[str, Any]) -> ProfileRecord:
        hw = (self.height, self.width)
        return timed_record(ProfileRecord, settings, fields, batch=self.batch, model=self.model, res=label(hw),
                            height=hw[0], width=hw[1], mode=self.mode, task=self.task,
                            model_source=self.source)  # fmt: skip


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _key(block: str, cls: str) -> str:
    return f"{block}|{cls}"


def _round_times(result: WorkerResult) -> dict[str, float]:
    """Mean time per (block|class) over a round's profiled calls, plus per class over all blocks."""
    calls = result.values.get("times_ms", [])
    out: dict[str, float] = {}
    for times in calls:
        for key, ms in times.items():
            cls = key.split("|", 1)[1]
            out[key] = out.get(key, 0.0) + ms / len(calls)
            total = _key(ALL_BLOCKS, cls)
            out[total] = out.get(total, 0.0) + ms / len(calls)
    return out


def breakdown_rows(
    results: Sequence[WorkerResult], model: str, res: str, mode: str, settings: Settings
) -> list[dict[str, Any]]:
    """One row per (block, class) and per class over all blocks: mean time per call, its share of the classes'
    total with a t-interval over rounds (shares, not times, compare across runs: profiling slows a call), and the
    FLOP and byte shares of the same block and class (from the first round's counts)."""
    from vmibench.analysis.intervals import t_interval
    from vmibench.attribution.classes import roof_of

    per_round = [_round_times(r) for r in results if r.values.get("times_ms")]
    totals = [sum(v for k, v in t.items() if not k.startswith(f"{ALL_BLOCKS}|")) for t in per_round]
    counted = next((r.values for r in results if "gmacs" in r.values), {})
    gmacs, gbytes = dict(counted.get("gmacs", {})), dict(counted.get("gbytes", {}))
    for counts in (gmacs, gbytes):
        for key, v in list(counts.items()):
            total = _key(ALL_BLOCKS, key.split("|", 1)[1])
            counts[total] = counts.get(total, 0.0) + v
    all_macs = sum(v for k, v in gmacs.items() if not k.startswith(f"{ALL_BLOCKS}|")) or math.nan
    all_bytes = sum(v for k, v in gbytes.items() if not k.startswith(f"{ALL_BLOCKS}|")) or math.nan
    keys = sorted(set().union(*per_round, gmacs))
    rows = []
    for key in keys:
        block, cls = key.split("|", 1)
        shares = [t.get(key, 0.0) / total for t, total in zip(per_round, totals, strict=True) if total > 0]
        e = t_interval(shares)
        rows.append({"model": model, "res": res, "mode": mode, "device": settings.device, "dtype": settings.dtype,
                     "threads": settings.threads, "block": block, "op_class": cls, "roof": roof_of(cls),
                     "time_ms": statistics.mean(t.get(key, 0.0) for t in per_round),
                     "time_share": e.value, "time_share_ci_low": max(0.0, e.low),
                     "time_share_ci_high": min(1.0, e.high),
                     "rounds": len(shares), "gmacs": gmacs.get(key, 0.0), "flop_share": gmacs.get(key, 0.0) / all_macs,
                     "gbytes": gbytes.get(key, 0.0), "byte_share": gbytes.get(key, 0.0) / all_bytes})  # fmt: skip
    return rows


def plan_profile(
    models: list[str], resolutions: list[tuple[int, int]], settings: Settings, *, mode: str = "infer",
    task: str = TASK_CLASSIFY, batch: int = 1,
) -> list[Cell]:  # fmt: skip
    """Profile cells (model x resolution), validated like forward cells (unknown model, size it does not take)."""
    forward = plan_cells(models, resolutions, [batch], settings, mode=mode, task=task)
    return [Cell(ModelProfile(**{k: v for k, v in c.workload.ident().items() if k != "kind"}), c.settings)
            for c in forward]  # fmt: skip


@register_kind
@dataclass(frozen=True)
class ClassRoof(RoofWorkload):
    """The roof of an operator class: ``kernel="add"`` (elementwise: ``c = a + b``, 3n elements moved) or ``"exp"``
    (transcendental: ``c = exp(a)``, n exponentials, 2n elements moved), on arrays out of cache."""

    KIND: ClassVar[str] = "roof"
    TABLE: ClassVar[str] = "roofs"
    RECORD: ClassVar[type[RoofKernelRecord]] = RoofKernelRecord
    N_COLUMN: ClassVar[str] = "roof_n"

    kernel_name: str = "add"

    def describe(self) -> str:
        return f"{self.kernel_name} roof n={self.n}"

    def kernel(self, settings: Settings, device: torch.device) -> Callable[[], object]:
        import torch

        from vmibench.measure.steps import DTYPES

        a, b, c = (torch.rand(self.n, device=device, dtype=DTYPES[settings.dtype]) for _ in range(3))
        if self.kernel_name == "exp":
            return lambda: torch.exp(a, out=c)
        return lambda: torch.add(a, b, out=c)

    def pooled_fields(
        self, settings: Settings, results: Sequence[WorkerResult], stats: TimingStats, medians: Sequence[float]
    ) -> dict[str, Any]:
        moved = (2 if self.kernel_name == "exp" else 3) * self.n * ELEMENT_BYTES[settings.dtype]
        seconds = stats.median_ms / 1e3
        return {"roof": "transcendental" if self.kernel_name == "exp" else "elementwise",
                "roof_gbs": moved / seconds / 1e9, "roof_gelems": self.n / seconds / 1e9}  # fmt: skip


def class_roof_cells(cells: Iterable[Cell]) -> list[Cell]:
    """The elementwise and transcendental roof cells per (device, dtype, threads) of ``cells``."""
    return [Cell(ClassRoof(n=triad_elements(st.device, st.dtype), kernel_name=k), st)
            for st in device_settings(cells) for k in ("add", "exp")]  # fmt: skip
