"""Kind ``maxbatch``: the largest batch that runs a forward or a training step within a memory limit, then the
throughput at that batch (DeiT's protocol).

Planned by :func:`plan_maxbatch` (model x resolution, validated like the forward's cells); the child caps its
memory, searches the batch (:func:`search_max_batch`) and times the one it found; a row is a
:class:`vmibench.records.MaxBatchRecord` in ``maxbatch``, never topped up with more rounds (it is a search).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar

from vmibench.errors import UserError
from vmibench.measure.cells import Cell, Settings, WorkerResult
from vmibench.measure.kinds.forward import plan_cells
from vmibench.measure.kinds.registry import register_kind
from vmibench.measure.rows import TimedWorkload, timed_fields, timed_record
from vmibench.records import MaxBatchRecord
from vmibench.resolution import label

if TYPE_CHECKING:
    import torch

    from vmibench.measure.timing import TimingStats

GIB = 1 << 30


@register_kind
@dataclass(frozen=True)
class MaxBatch(TimedWorkload):
    """The largest batch that runs ``mode`` (a forward or a training step) within ``mem_limit_gb``, then the
    throughput at that batch (DeiT's protocol).  Powers of two first, then bisection between the last that ran
    and the first that did not.  ``mem_limit_gb=None`` means the CUDA device's free memory."""

    KIND: ClassVar[str] = "maxbatch"
    TABLE: ClassVar[str] = "maxbatch"
    TOP_UP: ClassVar[bool] = False  # a search, not rounds of one timing

    model: str
    height: int
    width: int
    mode: str = "infer"
    mem_limit_gb: float | None = None
    batch_cap: int = 4096  # the search stops here: more is never needed for a throughput figure

    def describe(self) -> str:
        return f"{self.model} {self.height}x{self.width} max batch ({self.mode})"

    def run(self, settings: Settings, device: torch.device) -> WorkerResult:
        """Search the largest batch that runs within the limit (powers of two, then bisection), then time it."""
        import gc

        import torch

        from vmibench.errors import classify_failure
        from vmibench.measure import steps
        from vmibench.measure.memory import PeakMemory
        from vmibench.measure.timing import time_calls

        limit_gb, method, lift = _limit_memory(self, device)
        model, _ = steps.build_model(self.model, self.height, self.width, settings, device, 1, features=False)
        make = steps.train_step if self.mode == "train" else steps.infer_step
        probes: dict[int, str] = {}

        def build(batch: int) -> Callable[[], object]:
            return make(model, steps.model_input(batch, self.height, self.width, settings, device), settings, device)

        def fits(batch: int) -> bool:
            step = None
            try:
                step = build(batch)
                step()  # one call reaches the peak: a training step's gradients are allocated in its backward
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                probes[batch] = "ok"
            except Exception as exc:
                if classify_failure(exc) != "oom":
                    raise
                probes[batch] = "oom"
            finally:
                del step
                model.zero_grad(set_to_none=True)
                gc.collect()
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                else:
                    _release_freed_memory()
            return probes[batch] == "ok"

        info: dict[str, Any] = {"timer": steps.timer_name(device), "params_m": steps.params_m(model)}
        values: dict[str, Any] = {"mem_limit_gb": limit_gb, "mem_limit_method": method, "probes": probes}
        good = search_max_batch(fits, self.batch_cap)
        if good == 0:
            return WorkerResult(status="oom", error=f"batch 1 does not fit in {limit_gb:.3g} GiB ({method})",
                                values=values, **info)  # fmt: skip
        values["max_batch"] = good
        lift()
        step = build(good)
        with PeakMemory(device) as mem:
            stats = time_calls(step, device, settings.policy)
        return steps.ok_result(stats, mem, values=values, **info)

    def pooled_fields(
        self, settings: Settings, results: Sequence[WorkerResult], stats: TimingStats, medians: Sequence[float]
    ) -> dict[str, Any]:
        found = results[0].values
        return {**timed_fields(results, stats, medians), "max_batch": found.get("max_batch"),
                "mem_limit_gb": found.get("mem_limit_gb"), "mem_limit_method": found.get("mem_limit_method", ""),
                "probes": json.dumps(found.get("probes", {}))}  # fmt: skip

    def record(self, settings: Settings, fields: dict[str, Any]) -> MaxBatchRecord:
        fields = dict(fields)
        found = fields.pop("max_batch", None)
        limit = fields.pop("mem_limit_gb", self.mem_limit_gb)
        return timed_record(MaxBatchRecord, settings, fields, batch=found or 0, max_batch=found, model=self.model,
                            mem_limit_gb=limit, res=label((self.height, self.width)), height=self.height,
                            width=self.width, mode=self.mode)  # fmt: skip


def plan_maxbatch(
    models: list[str],
    resolutions: list[tuple[int, int]],
    settings: Settings,
    *,
    mode: str = "infer",
    mem_limit_gb: float | None = None,
    batch_cap: int = 4096,
) -> list[Cell]:
    """Max-batch cells (model x resolution), validated like :func:`vmibench.measure.kinds.forward.plan_cells`.

    On CPU a limit is required (the worker enforces it with ``RLIMIT_AS``; the machine's whole memory is no
    meaningful limit); on CUDA it defaults to the device's free memory.
    """
    if mem_limit_gb is not None and not (math.isfinite(mem_limit_gb) and mem_limit_gb > 0):
        raise UserError(f"bad --mem-limit-gb {mem_limit_gb}: must be a positive number of GiB")
    if mem_limit_gb is None and not settings.device.startswith("cuda"):
        raise UserError("give --mem-limit-gb on CPU (e.g. --mem-limit-gb 2): the search needs a memory limit")
    if batch_cap < 1:
        raise UserError(f"bad --batch-cap {batch_cap}: must be a positive integer")
    # a call at the largest batch takes seconds on a CPU: one warm-up call and a few timed ones are enough
    settings = replace(settings, policy=replace(settings.policy, min_warmup_iters=1, min_warmup_s=0.0,
                                                max_warmup_s=1.0, min_iters=3, hard_min_iters=2))  # fmt: skip
    forward = plan_cells(models, resolutions, [1], settings, mode=mode)
    return [Cell(MaxBatch(c.workload.model, c.workload.height, c.workload.width, mode, mem_limit_gb, batch_cap),  # type: ignore[attr-defined]
                 c.settings) for c in forward]  # fmt: skip


def search_max_batch(fits: Callable[[int], bool], cap: int, tolerance: int = 8) -> int:
    """Largest batch ``fits`` accepts, up to ``cap``: powers of two until one fails, then bisection between the
    last that ran and the first that did not, to within ``1/tolerance`` of the answer.  0 when batch 1 fails."""
    good, bad, batch = 0, None, 1
    while batch <= cap:
        if not fits(batch):
            bad = batch
            break
        good, batch = batch, batch * 2
    if good == 0:
        return 0
    if bad is None and good < cap:  # every power of two up to the cap fitted: try the cap itself
        if fits(cap):
            return cap
        bad = cap
    while bad is not None and bad - good > max(1, good // tolerance):
        mid = (good + bad) // 2
        good, bad = (mid, bad) if fits(mid) else (good, mid)
    return good


def _limit_memory(wl: MaxBatch, device: torch.device) -> tuple[float, str, Callable[[], None]]:
    """Cap this worker's memory at ``wl.mem_limit_gb`` GiB (or CUDA's free memory); returns (GiB, method).

    CUDA: the caching allocator's per-process fraction of the device.  CPU: ``RLIMIT_AS`` at the worker's
    current address space plus the limit, so weights, inputs, activations (and, in training, gradients) share
    it; virtual reservations count too, so the CPU limit is conservative.  The third value lifts the limit
    again (CPU), so that the timing at the batch found runs like any latency cell.
    """
    if device.type == "cuda":
        import torch

        free, total = torch.cuda.mem_get_info(device)
        limit = wl.mem_limit_gb * GIB if wl.mem_limit_gb else float(free)
        torch.cuda.set_per_process_memory_fraction(min(1.0, limit / total), device)
        return limit / GIB, "cuda_memory_fraction", lambda: None
    import resource

    from vmibench.measure.memory import virtual_bytes

    assert wl.mem_limit_gb is not None  # planning refuses a CPU search without a limit
    _set_mmap_threshold(1 << 20)
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = virtual_bytes() + int(wl.mem_limit_gb * GIB)
    resource.setrlimit(resource.RLIMIT_AS, (cap if hard == resource.RLIM_INFINITY else min(cap, hard), hard))

    def lift() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        _set_mmap_threshold(32 << 20)  # glibc's ceiling for its dynamic threshold, where a long run settles

    return wl.mem_limit_gb, "rlimit_as", lift


def _libc() -> Any:
    return ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def _set_mmap_threshold(size: int) -> None:
    """Blocks of ``size`` bytes and more straight from ``mmap`` and back to the system on free (glibc).

    During the search a small threshold makes memory a failed probe freed leave the address space that
    ``RLIMIT_AS`` counts; glibc otherwise raises its threshold after the first large free and serves later
    blocks up to 32 MB from a heap it does not give back, and the next probe fails early."""
    libc = _libc()
    if libc is None:
        return
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's mallopt parameters
    with contextlib.suppress(AttributeError, OSError):
        libc.mallopt(m_mmap_threshold, size)
        libc.mallopt(m_trim_threshold, size)


def _release_freed_memory() -> None:
    libc = _libc()
    if libc is not None:
        with contextlib.suppress(AttributeError, OSError):
            libc.malloc_trim(0)
