"""Kind ``op``: one call of a token mixer (:data:`vmibench.ops.mixers.OPS`) on ``batch x seq_len x dim`` tokens.

Planned by :func:`ops_cells` (ops x sequence lengths x dtypes, the selective scan once per fast backend), with
:func:`cap_predictor` stopping a ladder before a length predicted over the caps; the child builds the op inside the
memory probe (its own buffers are part of its cost); a row is a :class:`vmibench.records.OpsRecord` in ``ops``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar

from vmibench.errors import UserError
from vmibench.measure.cells import Cell, Settings, scan_backend_for
from vmibench.measure.kinds.registry import register_kind
from vmibench.measure.rows import TimedWorkload, timed_record
from vmibench.records import OpsRecord

if TYPE_CHECKING:
    import torch

    from vmibench.measure.cells import WorkerResult
    from vmibench.measure.runner import CapPredictor
    from vmibench.measure.steps import Step


@register_kind
@dataclass(frozen=True)
class MixerOp(TimedWorkload):
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

    def build_step(self, settings: Settings, device: torch.device) -> Step:
        from vmibench.measure import steps
        from vmibench.ops.mixers import build_op

        model, x = build_op(self.op, seq_len=self.seq_len, dim=self.dim, batch=self.batch, device=device,
                            scan_backend=settings.scan_backend or "auto")  # fmt: skip
        call = steps.infer_step(model, x, settings, device)
        return steps.Step(call, model, x, steps.scan_backend(settings, self.op == "selective_scan"))

    def run(self, settings: Settings, device: torch.device) -> WorkerResult:
        from vmibench.measure import steps

        # an op's own buffers (the matrix form's L x L mask) are part of its cost: built inside the memory probe
        return steps.time_step(lambda: self.build_step(settings, device), settings, device, build_in_probe=True)

    def name(self) -> str:
        return self.op

    def record(self, settings: Settings, fields: dict[str, Any]) -> OpsRecord:
        from vmibench.ops.mixers import OPS

        info = OPS.get(self.op)
        backend = fields.get("scan_backend", "")
        return timed_record(OpsRecord, settings, fields, batch=self.batch,
                            op=f"{self.op}[{backend}]" if backend else self.op, op_name=self.op,
                            seq_len=self.seq_len, dim=self.dim,
                            expected_complexity=info.expected_complexity if info else "",
                            reconstruction=bool(info and info.reconstruction))  # fmt: skip


def ops_cells(
    ops: list[str], seq_lens: list[int], dim: int, batch: int, dtypes: list[str], base: Settings
) -> list[Cell]:
    """The (op, L, dtype) cells, validated; each op's lengths ascend.

    With ``scan_backend="auto"`` the selective scan is swept once per fast backend available on the device;
    the sequential ``reference`` backend (a correctness oracle, ~20x slower) only when asked for by name.
    """
    from vmibench.ops import available_backends
    from vmibench.ops.mixers import OPS

    for op in ops:
        if op not in OPS:
            raise UserError(f"unknown op '{op}': use one of {', '.join(OPS)}")
    for L in seq_lens:
        if L < 1:
            raise UserError(f"bad sequence length {L}: must be a positive integer")
    cells = []
    for dtype in dtypes:
        for op in dict.fromkeys(ops):
            if op != "selective_scan":
                backends = [""]
            elif base.scan_backend == "auto":
                backends = [b for b in available_backends(base.device) if b != "reference"]
            else:
                backends = [scan_backend_for(base, True)]
            for backend in backends:
                st = replace(base, dtype=dtype, scan_backend=backend)
                cells += [Cell(MixerOp(op, L, dim, batch), st) for L in sorted(set(seq_lens))]
    return cells


def _exponent(op: str) -> int:
    from vmibench.ops.mixers import OPS

    return 2 if OPS[op].expected_complexity == "O(L^2)" else 1


def cap_predictor(seq_lens: list[int], time_cap_s: float, mem_cap_mb: float) -> CapPredictor:
    """Predicts, from a cell's first round, whether the next length of its op exceeds the time or memory cap.

    The prediction scales the measurement by the op's expected exponent (L or L^2), so an O(L^2) op stops before
    a size that would take minutes or exhaust memory.
    """
    ordered = sorted(seq_lens)

    def predict(cell: Cell, median_ms: float, peak_mb: float) -> str:
        wl = cell.workload
        if not isinstance(wl, MixerOp):
            return ""
        bigger = [L for L in ordered if wl.seq_len < L]
        if not bigger or median_ms <= 0:
            return ""
        scale = (bigger[0] / wl.seq_len) ** _exponent(wl.op)
        t = median_ms / 1e3 * scale
        m = peak_mb * scale
        if t > time_cap_s:
            return f"not run: predicted {t:.1f} s per call from L={wl.seq_len} exceeds --time-cap {time_cap_s:g} s"
        if m > mem_cap_mb:
            return f"not run: predicted {m:.0f} MB from L={wl.seq_len} exceeds --mem-cap {mem_cap_mb:g} MB"
        return ""

    return predict
