"""Timing loop and statistics, in the manner of ``torch.utils.benchmark`` / pyperf.

Each forward is timed on its own (CPU: ``time.perf_counter``; CUDA: a pair of CUDA events, synchronised), after
a per-shape warm-up of at least ``min_warmup_iters`` calls *and* ``min_warmup_s`` seconds.  Timing stops once the
median is precise enough -- its standard error, estimated robustly from the IQR as
1.2533 * (IQR / 1.349) / sqrt(n), below ``rel_precision`` of the median -- after at least ``min_iters`` calls and
``min_time_s`` seconds, or when the time budget ``max_time_s`` or ``max_iters`` is reached (``converged`` says
which).  Slow cells still get ``hard_min_iters`` samples, even past the budget.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the policy and statistics are plain data that planning uses without torch
    import torch


@dataclass(frozen=True)
class TimingPolicy:
    """When warm-up ends and when timing stops."""

    min_warmup_iters: int = 3
    min_warmup_s: float = 0.5
    max_warmup_s: float = 20.0  # after one call, a slow cell stops warming up here
    min_iters: int = 10
    hard_min_iters: int = 3
    max_iters: int = 2000
    min_time_s: float = 1.0
    max_time_s: float = 10.0
    rel_precision: float = 0.01

    @classmethod
    def quick(cls) -> TimingPolicy:
        """Short budgets for tests and smoke runs."""
        return cls(min_warmup_iters=1, min_warmup_s=0.0, min_iters=3, min_time_s=0.0, max_time_s=1.0)

    @classmethod
    def from_json(cls, text: str) -> TimingPolicy | None:
        """A stored policy (JSON), or None where absent or not a policy of this vmibench."""
        import json
        from dataclasses import fields

        try:
            data = json.loads(text) if text else None
        except ValueError:
            return None
        if not isinstance(data, dict) or not data or not set(data) <= {f.name for f in fields(cls)}:
            return None
        return cls(**data)


@dataclass(frozen=True)
class TimingStats:
    """Summary of per-call latencies in milliseconds."""

    median_ms: float
    iqr_ms: float
    p10_ms: float
    p90_ms: float
    mean_ms: float
    min_ms: float
    n: int
    rel_se: float  # robust standard error of the median / median
    converged: bool  # stopped on precision (True) or on the budget (False)
    warmup_iters: int
    warmup_s: float
    samples_ms: tuple[float, ...] = ()  # the raw per-call times, in measurement order


def split_policy(policy: TimingPolicy, rounds: int) -> TimingPolicy:
    """The policy of one round when ``rounds`` rounds share a cell's budget (rounds split it, not multiply it).

    Time budgets and iteration targets are divided among the rounds, and so is the floor of calls a slow cell
    gets past its budget: a cell of seconds per call gets one timed call per round, so its samples come from
    different processes, where its variance lives (Kalibera and Jones), rather than from one.  The precision
    target of one round is ``sqrt(rounds)`` looser, since the pooled median of ``rounds`` such rounds reaches the
    cell's target.  The warm-up is per process and is not divided: every process has to warm up.
    """
    if rounds <= 1:
        return policy
    k = rounds
    floor = max(1, math.ceil(policy.hard_min_iters / k))
    return TimingPolicy(
        min_warmup_iters=policy.min_warmup_iters,
        min_warmup_s=policy.min_warmup_s,
        max_warmup_s=policy.max_warmup_s,
        min_iters=max(floor, math.ceil(policy.min_iters / k)),
        hard_min_iters=floor,
        max_iters=max(floor, math.ceil(policy.max_iters / k)),
        min_time_s=policy.min_time_s / k,
        max_time_s=policy.max_time_s / k,
        rel_precision=min(0.5, policy.rel_precision * math.sqrt(k)),
    )


def quantile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolation quantile (numpy's default) of an already sorted sequence."""
    if not sorted_values:
        raise ValueError("quantile of no values")
    pos = (len(sorted_values) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def median_rel_se(samples: Sequence[float]) -> float:
    """Robust relative standard error of the median: 1.2533 * sigma / sqrt(n) / median, sigma = IQR / 1.349."""
    s = sorted(samples)
    med = quantile(s, 0.5)
    if len(s) < 2 or med <= 0:
        return math.inf
    sigma = (quantile(s, 0.75) - quantile(s, 0.25)) / 1.349
    return 1.2533 * sigma / math.sqrt(len(s)) / med


def summarize(
    samples_ms: Sequence[float], *, converged: bool = False, warmup_iters: int = 0, warmup_s: float = 0.0
) -> TimingStats:
    """Statistics of a list of per-call latencies (ms)."""
    s = sorted(samples_ms)
    return TimingStats(
        median_ms=quantile(s, 0.5),
        iqr_ms=quantile(s, 0.75) - quantile(s, 0.25),
        p10_ms=quantile(s, 0.10),
        p90_ms=quantile(s, 0.90),
        mean_ms=statistics.fmean(s),
        min_ms=s[0],
        n=len(s),
        rel_se=median_rel_se(s),
        converged=converged,
        warmup_iters=warmup_iters,
        warmup_s=warmup_s,
        samples_ms=tuple(samples_ms),
    )


class _CpuClock:
    def time_ms(self, fn: Callable[[], object]) -> float:
        start = time.perf_counter()
        fn()
        return (time.perf_counter() - start) * 1e3


class _CudaClock:
    def __init__(self, device: torch.device) -> None:
        import torch

        self.torch = torch
        self.device = device
        self.start = torch.cuda.Event(enable_timing=True)
        self.end = torch.cuda.Event(enable_timing=True)

    def time_ms(self, fn: Callable[[], object]) -> float:
        # Events time the GPU work; synchronising first keeps earlier queued work out of this sample.
        self.torch.cuda.synchronize(self.device)
        self.start.record()
        fn()
        self.end.record()
        self.end.synchronize()
        return float(self.start.elapsed_time(self.end))


def clock_for(device: torch.device) -> _CpuClock | _CudaClock:
    """Monotonic wall clock on CPU, CUDA events on a GPU."""
    return _CudaClock(device) if device.type == "cuda" else _CpuClock()


def warm_up(fn: Callable[[], object], clock: _CpuClock | _CudaClock, policy: TimingPolicy) -> tuple[int, float]:
    """Call ``fn`` until the warm-up policy is met; returns (calls, seconds)."""
    start = time.perf_counter()
    n = 0
    while True:
        clock.time_ms(fn)
        n += 1
        elapsed = time.perf_counter() - start
        if n >= policy.min_warmup_iters and elapsed >= policy.min_warmup_s:
            break
        if elapsed >= policy.max_warmup_s:
            break
    return n, time.perf_counter() - start


def _stop(samples: Sequence[float], elapsed: float, policy: TimingPolicy) -> bool | None:
    """The stop rule after one more sample: True once the median is precise enough (after ``min_iters`` samples and
    ``min_time_s``), False when the budget ends (``max_iters``, or ``max_time_s`` with ``hard_min_iters`` samples),
    None to go on."""
    n = len(samples)
    if n >= policy.min_iters and elapsed >= policy.min_time_s and median_rel_se(samples) <= policy.rel_precision:
        return True
    if n >= policy.max_iters or (elapsed >= policy.max_time_s and n >= policy.hard_min_iters):
        return False
    return None


def time_calls(fn: Callable[[], object], device: torch.device, policy: TimingPolicy) -> TimingStats:
    """Warm up, then time ``fn`` call by call until the median is stable or the budget ends."""
    clock = clock_for(device)
    warm_n, warm_s = warm_up(fn, clock, policy)
    samples: list[float] = []
    start = time.perf_counter()
    converged: bool | None = None
    while converged is None:
        samples.append(clock.time_ms(fn))
        converged = _stop(samples, time.perf_counter() - start, policy)
    return summarize(samples, converged=bool(converged), warmup_iters=warm_n, warmup_s=warm_s)


def time_alternating(fns: Sequence[Callable[[], object]], device: torch.device, policy: TimingPolicy) -> TimingStats:
    """Warm each of ``fns`` up, then time them in strict alternation -- one call of each per cycle, always in the
    given order -- until the cycle time is stable or the budget ends (the stop rule of :func:`time_calls`, applied
    to cycles).

    The samples are in call order, so call ``i`` belongs to ``fns[i % len(fns)]``.  Adjacent calls share the
    machine's state of the moment: on a shared host whose speed changes within a second, their ratio is far
    steadier than the ratio of two cells timed minutes apart."""
    clock = clock_for(device)
    warm = [warm_up(fn, clock, policy) for fn in fns]
    samples: list[float] = []
    cycles: list[float] = []
    start = time.perf_counter()
    converged: bool | None = None
    while converged is None:
        times = [clock.time_ms(fn) for fn in fns]
        samples += times
        cycles.append(sum(times))
        converged = _stop(cycles, time.perf_counter() - start, policy)
    return summarize(samples, converged=bool(converged), warmup_iters=min(w[0] for w in warm),
                     warmup_s=sum(w[1] for w in warm))  # fmt: skip
