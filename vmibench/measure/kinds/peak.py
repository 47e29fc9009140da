"""Kind ``matmul``: the dense-matmul peak, the denominator of every utilisation figure.

Planned by :func:`peak_cells`, several matrix sizes per (device, dtype, threads) of a run's cells; a row is a
:class:`vmibench.records.PeakRecord` in ``peak``, with the GFLOP/s of the pooled median and of the best round.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from vmibench.measure.cells import Cell, Settings, device_settings
from vmibench.measure.kinds.registry import register_kind
from vmibench.measure.rows import RoofWorkload
from vmibench.records import PeakRecord

if TYPE_CHECKING:
    import torch

    from vmibench.measure.cells import WorkerResult
    from vmibench.measure.timing import TimingStats

CPU_PEAK_SIZES = (512, 1024, 2048)
CUDA_PEAK_SIZES = (4096, 8192)


@register_kind
@dataclass(frozen=True)
class MatmulPeak(RoofWorkload):
    """``n x n @ n x n`` matmul: the dense-compute peak that utilisation is measured against."""

    KIND: ClassVar[str] = "matmul"
    TABLE: ClassVar[str] = "peak"
    RECORD: ClassVar[type[PeakRecord]] = PeakRecord
    N_COLUMN: ClassVar[str] = "matmul_n"

    def describe(self) -> str:
        return f"matmul peak n={self.n}"

    def kernel(self, settings: Settings, device: torch.device) -> Callable[[], object]:
        import torch

        from vmibench.measure.steps import DTYPES

        a = torch.randn(self.n, self.n, device=device, dtype=DTYPES[settings.dtype])
        b = torch.randn_like(a)
        return lambda: torch.mm(a, b)

    def pooled_fields(
        self, settings: Settings, results: Sequence[WorkerResult], stats: TimingStats, medians: Sequence[float]
    ) -> dict[str, Any]:
        flop = 2 * self.n**3
        return {"peak_gflops": flop / (stats.median_ms / 1e3) / 1e9,
                "peak_gflops_best": flop / (min(medians) / 1e3) / 1e9}  # fmt: skip


def peak_cells(cells: Iterable[Cell]) -> list[Cell]:
    """Dense-matmul peak cells per (device, dtype, threads) of ``cells``: the utilisation denominator.

    Several matrix sizes, each measured in rounds like any cell; the roof is the best of them (the fastest round
    of the fastest size, :func:`vmibench.analysis.fits.add_utilisation`), since one short measurement at one size
    was beaten by models that cannot beat a true peak."""
    return [Cell(MatmulPeak(n=n), st) for st in device_settings(cells)
            for n in (CUDA_PEAK_SIZES if st.device.startswith("cuda") else CPU_PEAK_SIZES)]  # fmt: skip
