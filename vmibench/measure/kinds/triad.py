"""Kind ``triad``: STREAM's triad ``a = b + s*c``, the memory bandwidth a roofline's slope is drawn with.

Planned by :func:`bandwidth_cells`, one per (device, dtype, threads) of a run's cells, with arrays of
:func:`triad_elements` (each at least 4x the last-level cache); a row is a :class:`vmibench.records.BandwidthRecord`
in ``bandwidth``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from vmibench.measure.cells import Cell, Settings, device_settings
from vmibench.measure.kinds.registry import register_kind
from vmibench.measure.rows import RoofWorkload
from vmibench.records import BandwidthRecord

if TYPE_CHECKING:
    import torch

    from vmibench.measure.cells import WorkerResult
    from vmibench.measure.timing import TimingStats

ELEMENT_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}
_CUDA_TRIAD_BYTES = 1 << 30  # per array: over 4x the L2 of any current GPU (H100/H200: 50-60 MB)
_DEFAULT_LLC_BYTES = 32 << 20  # where sysfs does not say


@register_kind
@dataclass(frozen=True)
class StreamTriad(RoofWorkload):
    """STREAM's triad ``a = b + s*c`` on ``n``-element arrays: the memory bandwidth a roofline's slope is drawn
    with.  ``n`` is chosen so each array is at least 4x the last-level cache (so the triad streams from DRAM)."""

    KIND: ClassVar[str] = "triad"
    TABLE: ClassVar[str] = "bandwidth"
    RECORD: ClassVar[type[BandwidthRecord]] = BandwidthRecord
    N_COLUMN: ClassVar[str] = "triad_n"

    def describe(self) -> str:
        return f"triad bandwidth n={self.n}"

    def kernel(self, settings: Settings, device: torch.device) -> Callable[[], object]:
        import torch

        from vmibench.measure.steps import DTYPES

        a, b, c = (torch.rand(self.n, device=device, dtype=DTYPES[settings.dtype]) for _ in range(3))
        return lambda: torch.add(b, c, alpha=3.0, out=a)

    def pooled_fields(
        self, settings: Settings, results: Sequence[WorkerResult], stats: TimingStats, medians: Sequence[float]
    ) -> dict[str, Any]:
        moved = 3 * self.n * ELEMENT_BYTES[settings.dtype]  # read b and c, write a (STREAM's count: no write-allocate)
        return {"bw_peak_gbs": moved / (stats.median_ms / 1e3) / 1e9}


def last_level_cache_bytes() -> int:
    """Size of the CPU's largest cache (sysfs, Linux); 32 MiB where it cannot be read."""
    from pathlib import Path

    sizes = []
    for index in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*"):
        try:
            text = (index / "size").read_text().strip()
        except OSError:
            continue
        scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
        digits = text.rstrip("KMG")
        if digits.isdigit():
            sizes.append(int(digits) * scale)
    return max(sizes, default=_DEFAULT_LLC_BYTES)


def triad_elements(device: str, dtype: str) -> int:
    """Elements per triad array: each array at least 4x the last-level cache, so the triad streams from memory."""
    per_array = _CUDA_TRIAD_BYTES if device.startswith("cuda") else max(4 * last_level_cache_bytes(), 64 << 20)
    return per_array // ELEMENT_BYTES[dtype]


def bandwidth_cells(cells: Iterable[Cell]) -> list[Cell]:
    """One STREAM-triad cell per (device, dtype, threads) of ``cells``: the roofline's memory slope."""
    return [Cell(StreamTriad(n=triad_elements(st.device, st.dtype)), st) for st in device_settings(cells)]
