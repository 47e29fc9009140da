"""Roofs per operator class, and the model's roofline as the sum of its classes' roof times.

:func:`elementwise_roof` and :func:`transcendental_roof` time one kernel each and return the raw per-call times,
so a worker can run them in rounds like any cell; ``n`` should put the operands out of cache (e.g.
``vmibench.sweep.triad_elements(device, dtype)`` elements).  The dense-matmul peak is the harness's existing
``PeakRecord`` (GFLOP/s).  :func:`class_roofline` combines them with per-class times, MACs and bytes
(:mod:`vmibench.attribution.profile`, :mod:`vmibench.attribution.counts`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch

from vmibench.attribution.classes import (
    ELEMENTWISE_ROOF,
    MATMUL_ROOF,
    SCAN,
    TRANSCENDENTAL,
    roof_of,
)

# scan_macs = 9*B*L*D*N + O(B*D*L): one exp(delta * A) per (b, l, d, n) is about a ninth of the scan's MACs.
SCAN_MACS_PER_EXP = 9


@dataclass(frozen=True)
class RoofTimes:
    """Raw per-call times (seconds) of one roof kernel on ``elements`` elements moving ``bytes_per_call``."""

    kernel: str
    device: str
    elements: int
    bytes_per_call: int
    times_s: list[float]

    def median_s(self) -> float:
        ordered = sorted(self.times_s)
        mid = len(ordered) // 2
        return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2

    @property
    def gbs(self) -> float:
        """Bytes read + written per second at the median time, 1e9 bytes."""
        return self.bytes_per_call / self.median_s() / 1e9

    @property
    def gelems(self) -> float:
        """Elements per second at the median time, 1e9."""
        return self.elements / self.median_s() / 1e9


@dataclass(frozen=True)
class Roofs:
    """The three measured roofs: dense-matmul GFLOP/s, elementwise GB/s, transcendental GB/s and G elements/s."""

    matmul_gflops: float
    elementwise_gbs: float
    transcendental_gbs: float
    transcendental_gelems: float


def _time_calls(fn: Callable[[], object], device: str, calls: int, warmup: int) -> list[float]:
    cuda = device.startswith("cuda")
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(calls):
        if cuda:
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if cuda:
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return times


def elementwise_roof(
    n: int, device: str = "cpu", *, dtype: torch.dtype = torch.float32, calls: int = 10, warmup: int = 2
) -> RoofTimes:
    """Time ``torch.add(a, b, out=c)`` on ``n`` elements (no fusion, no allocation): 3n elements moved."""
    a, b, c = (torch.rand(n, dtype=dtype, device=device) for _ in range(3))
    times = _time_calls(lambda: torch.add(a, b, out=c), device, calls, warmup)
    return RoofTimes("add", device, n, 3 * n * a.element_size(), times)


def transcendental_roof(
    n: int, device: str = "cpu", *, dtype: torch.dtype = torch.float32, calls: int = 10, warmup: int = 2
) -> RoofTimes:
    """Time ``torch.exp(a, out=c)`` on ``n`` elements: n exponentials, 2n elements moved."""
    a, c = (torch.rand(n, dtype=dtype, device=device) for _ in range(2))
    times = _time_calls(lambda: torch.exp(a, out=c), device, calls, warmup)
    return RoofTimes("exp", device, n, 2 * n * a.element_size(), times)


@dataclass(frozen=True)
class ClassRoof:
    """One class against its roof: the fastest it could run (``roof_ms``) and what it took (``measured_ms``)."""

    cls: str
    roof: str
    measured_ms: float
    roof_ms: float

    @property
    def frac(self) -> float:
        """roof / measured (1 = on the roof); NaN without a measured time."""
        return self.roof_ms / self.measured_ms if self.measured_ms > 0 else math.nan


def class_roof_ms(cls: str, gmacs: float, gbytes: float, roofs: Roofs) -> float:
    """Roof time (ms) of a class that does ``gmacs`` and moves ``gbytes`` (see :func:`class_roofline`)."""
    memory_s = gbytes / roofs.elementwise_gbs
    roof = roof_of(cls)
    if roof == MATMUL_ROOF:
        seconds = max(2 * gmacs / roofs.matmul_gflops, memory_s)
    elif cls == SCAN:
        seconds = max(gmacs / SCAN_MACS_PER_EXP / roofs.transcendental_gelems, memory_s)
    elif cls == TRANSCENDENTAL:
        seconds = gbytes / roofs.transcendental_gbs
    else:
        assert roof == ELEMENTWISE_ROOF, cls
        seconds = memory_s
    return seconds * 1e3


def class_roofline(
    class_times: Mapping[str, float],
    class_flops: Mapping[str, float],
    class_bytes: Mapping[str, float],
    roofs: Roofs,
) -> dict[str, ClassRoof]:
    """Per-class roof time (ms) beside the measured class time (ms); the model's roofline is the sum of the
    ``roof_ms`` over classes (``sum(r.roof_ms for r in class_roofline(...).values())``).

    ``class_flops`` are GMACs and ``class_bytes`` GB per class (one call, the batch profiled).  Assumptions:

    * ``matmul`` / ``conv_dense`` / ``attention``: ``max(2 * GMACs / matmul peak, GB / elementwise GB/s)`` --
      a dense kernel reaches the measured matmul peak when it is not starved of operands;
    * ``elementwise`` / ``layout`` / ``norm`` / ``reduction`` / ``conv_depthwise`` / ``other``: ``GB /
      elementwise GB/s`` -- memory-bound at the bandwidth of a large fused-free add; for a depthwise conv this
      is an assumption (see :mod:`vmibench.attribution.classes`);
    * ``transcendental``: ``GB / transcendental GB/s`` -- exp's rate, as if every such operator were a unary op
      with exp's cost per element;
    * ``scan``: ``max(GMACs / 9 exponentials at exp's element rate, GB / elementwise GB/s)`` -- a fused scan
      computes one exp per state element and moves its operands once (``vmibench.bytes_moved``'s credit);
    * classes add: the operators of one class do not overlap those of another (one stream of kernels, or
      one core pool), so the model's roofline is the sum, not the max, over classes.
    """
    names = list(dict.fromkeys([*class_times, *class_flops, *class_bytes]))
    return {
        cls: ClassRoof(
            cls=cls,
            roof=roof_of(cls),
            measured_ms=float(class_times.get(cls, 0.0)),
            roof_ms=class_roof_ms(cls, float(class_flops.get(cls, 0.0)), float(class_bytes.get(cls, 0.0)), roofs),
        )
        for cls in names
    }
