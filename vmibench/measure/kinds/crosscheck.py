"""Kind ``crosscheck``: one model timed alternately by vmibench's loop and ``torch.utils.benchmark`` in one
process (``vmibench check timer``).

Planned by :func:`crosscheck_cells`; the child alternates the two timers on one model instance and reports both
series in :attr:`WorkerResult.values`; not stored (``TABLE = ""``): :mod:`vmibench.measure.crosscheck` reads the
raw results and prints its own table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from vmibench.measure.cells import Cell, Settings, WorkerResult, Workload
from vmibench.measure.kinds.registry import register_kind

if TYPE_CHECKING:
    import torch


@register_kind
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

    def run(self, settings: Settings, device: torch.device) -> WorkerResult:
        """vmibench's loop and ``Timer.blocked_autorange`` alternately on one model instance, in this one process.

        Alternating inside one process compares the two timers on the same allocation, threads and caches; the
        differences between processes (which on a shared machine can exceed 20%) hit both equally.
        """
        from torch.utils.benchmark import Timer

        from vmibench.measure import steps
        from vmibench.measure.timing import time_calls

        model, x = steps.build_model(self.model, self.height, self.width, settings, device, 1, features=False)
        step = steps.infer_step(model, x, settings, device)
        ours, theirs = [], []
        for _ in range(self.alternations):
            ours.append(time_calls(step, device, settings.policy).median_ms)
            m = Timer(stmt="step()", globals={"step": step}, num_threads=settings.threads).blocked_autorange(
                min_run_time=self.timer_min_run_time
            )
            theirs.append(m.median * 1e3)
        return WorkerResult(status="ok", timer="perf_counter vs blocked_autorange",
                            values={"ours_ms": ours, "timer_ms": theirs})  # fmt: skip


def crosscheck_cells(models: list[str], res: int, settings: Settings) -> list[Cell]:
    """One cross-check cell per model (duplicates dropped) at ``res x res``, validated before anything runs."""
    from vmibench.registry import resolve_info

    for name in models:
        resolve_info(name).check_resolution((res, res))
    return [Cell(TimerCrosscheck(name, res, res), settings) for name in dict.fromkeys(models)]
