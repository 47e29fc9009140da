"""FLOPs engine: fvcore with handles for what it misses, cross-checked by ``torch.utils.flop_counter``.

Convention (fvcore's, and what papers print as "GFLOPs"): one multiply-add counts once, so ``gmacs`` is
GMACs and ``gflops = 2 * gmacs``.  fvcore counts matmul-like operators (linear, matmul, bmm, einsum, conv),
norms, pooling and up-sampling; it skips element-wise operators, which are listed in ``uncounted_ops``.

Handles vmibench adds (fvcore would skip these silently):

* ``aten::scaled_dot_product_attention`` (timm's fused attention): B*H*Lq*Lk*(E + Ev) -- QK^T plus AV;
  the softmax is element-wise and, like fvcore's other element-wise ops, not counted.
* ``vmibench::selective_scan``: the scan is one operator counted as 9*B*L*D*N + B*D*L (+ B*D*L more when a z
  gate is applied), with D all scanned channels (every direction) -- Albert Gu's estimate
  (state-spaces/mamba#110) as VMamba's ``flops_selective_scan_fn(with_D=True, with_Z=...)`` applies it.
  The scan's internal operations are never traced.
* ``aten::baddbmm`` / ``aten::addbmm``: counted like bmm.

The cross-check ``gmacs_torch`` is ``FlopCounterMode``'s total / 2: it counts only matmul/conv/attention
(and the scan, by the same rule), so it is a floor for ``gmacs`` that should be close to it.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from vmibench.records import FlopsRecord


def _prod(shape: list[int] | tuple[int, ...] | torch.Size) -> int:
    return math.prod(int(s) for s in shape)


def scan_macs(batch: int, length: int, channels: int, d_state: int, *, gated: bool = False) -> int:
    """MACs credited to one selective scan: 9*B*L*D*N + B*D*L, plus B*D*L for the z gate when one is applied."""
    return 9 * batch * length * channels * d_state + batch * channels * length * (2 if gated else 1)


def sdpa_macs(q: tuple[int, ...], k: tuple[int, ...], v: tuple[int, ...]) -> int:
    """MACs of softmax(QK^T)V for q (..., Lq, E), k (..., Lk, E), v (..., Lk, Ev): QK^T plus AV."""
    *lead, lq, e = q
    lk, ev = k[-2], v[-1]
    return _prod(lead) * lq * lk * (e + ev)


# -- fvcore handles -------------------------------------------------------------------------------------------


def _shape(value: Any) -> list[int] | None:
    # fvcore's get_shape, without importing fvcore at module import time
    if not value.isCompleteTensor():
        return None
    return list(value.type().sizes())


def _sdpa_handle(inputs: list[Any], outputs: list[Any]) -> int:
    q, k, v = (_shape(x) for x in inputs[:3])
    assert q is not None and k is not None and v is not None
    return sdpa_macs(tuple(q), tuple(k), tuple(v))


def _scan_handle(inputs: list[Any], outputs: list[Any]) -> int:
    u, a = _shape(inputs[0]), _shape(inputs[2])
    assert u is not None and a is not None
    batch, channels, length = u
    gated = _shape(inputs[6]) is not None  # operator arguments: u, delta, A, B, C, D, z, ...
    return scan_macs(batch, length, channels, a[-1], gated=gated)


def _baddbmm_handle(inputs: list[Any], outputs: list[Any]) -> int:
    x, y = _shape(inputs[1]), _shape(inputs[2])
    assert x is not None and y is not None
    return _prod(x) * y[-1]


EXTRA_HANDLES: dict[str, Callable[[list[Any], list[Any]], int]] = {
    "aten::scaled_dot_product_attention": _sdpa_handle,
    "vmibench::selective_scan": _scan_handle,
    "aten::baddbmm": _baddbmm_handle,
    "aten::addbmm": _baddbmm_handle,
}


def _register_flop_counter_formulas() -> None:
    # FlopCounterMode counts 2 FLOPs per MAC; give it the scan under the same rule.
    from torch.utils.flop_counter import register_flop_formula

    import vmibench.ops.selective_scan  # noqa: F401  (defines the operator)

    @register_flop_formula(torch.ops.vmibench.selective_scan)
    def _scan_formula(u_shape, delta_shape, a_shape, b_shape, c_shape, d_shape, z_shape, *args, **kwargs):  # type: ignore[no-untyped-def]
        batch, channels, length = u_shape
        return 2 * scan_macs(batch, length, channels, a_shape[-1], gated=z_shape is not None)

    # torch has formulas for the CUDA attention kernels but not the CPU flash one SDPA dispatches to here.
    cpu_sdpa = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if cpu_sdpa is not None:

        @register_flop_formula(cpu_sdpa, get_raw=False)
        def _cpu_sdpa_formula(q_shape, k_shape, v_shape, *args, **kwargs):  # type: ignore[no-untyped-def]
            return 2 * sdpa_macs(tuple(q_shape), tuple(k_shape), tuple(v_shape))


_register_flop_counter_formulas()


# -- results --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FlopCount:
    """FLOPs of one forward pass of one model at one input size (batch as given)."""

    params: int
    gmacs: float
    gmacs_torch: float
    scan_gmacs: float
    uncounted_ops: str  # "op:count;..." for operators fvcore skipped (element-wise, mostly)
    by_operator: dict[str, float]  # GMACs per operator kind

    @property
    def gflops(self) -> float:
        return 2.0 * self.gmacs

    @property
    def params_m(self) -> float:
        return self.params / 1e6


def count_params(model: nn.Module) -> int:
    """Number of learnable parameters (buffers excluded), the count papers print."""
    return sum(p.numel() for p in model.parameters())


def count_flops(
    model: nn.Module, inputs: torch.Tensor | tuple[torch.Tensor, ...], *, cross_check: bool = True
) -> FlopCount:
    """Count one forward of ``model`` (put in eval mode) on ``inputs`` with fvcore and FlopCounterMode.

    ``cross_check=False`` skips the FlopCounterMode pass (``gmacs_torch`` is then NaN): a second full forward
    under a dispatch mode, which the latency worker does not need and which costs as much as the fvcore trace.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fvcore's import trips torch.jit deprecation warnings
        from fvcore.nn import FlopCountAnalysis
    from torch.utils.flop_counter import FlopCounterMode

    model.eval()
    args = inputs if isinstance(inputs, tuple) else (inputs,)
    analysis = FlopCountAnalysis(model, args)
    for name, handle in EXTRA_HANDLES.items():
        analysis.set_op_handle(name, handle)
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    with _quiet_tracing(), torch.no_grad():
        total = analysis.total()
        by_op = analysis.by_operator()
        skipped: Counter[str] = analysis.unsupported_ops()
    gmacs_torch = math.nan
    if cross_check:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(*args)
        gmacs_torch = counter.get_total_flops() / 2e9
    return FlopCount(
        params=count_params(model),
        gmacs=total / 1e9,
        gmacs_torch=gmacs_torch,
        # fvcore's by_operator() keys drop the operator namespace
        scan_gmacs=by_op.get("selective_scan", by_op.get("vmibench::selective_scan", 0)) / 1e9,
        uncounted_ops=";".join(f"{op}:{n}" for op, n in sorted(skipped.items())),
        by_operator={op: v / 1e9 for op, v in sorted(by_op.items())},
    )


class _quiet_tracing:
    """Silence the JIT tracer's warnings and fvcore's logger while tracing (they are not about the user's input)."""

    def __enter__(self) -> None:
        self._warnings = warnings.catch_warnings()
        self._warnings.__enter__()
        warnings.simplefilter("ignore")
        self._logger = logging.getLogger("fvcore")
        self._level = self._logger.level
        self._logger.setLevel(logging.ERROR)

    def __exit__(self, *exc: object) -> None:
        self._logger.setLevel(self._level)
        self._warnings.__exit__(*exc)


def measure_flops(name: str, res: tuple[int, int], batch: int = 1) -> FlopsRecord:
    """FLOPs record of registered model ``name`` at ``res`` (gmacs and gbytes_moved per image), beside its
    published numbers.  ``gbytes_moved`` is :mod:`vmibench.bytes_moved`'s unfused lower bound of memory traffic.

    A model that fails to build or trace gives a record with ``status="error"`` rather than an exception;
    unknown names and unaccepted resolutions raise :class:`vmibench.errors.UserError` (caller's input).
    """
    import vmibench
    from vmibench.env import capture, utc_now
    from vmibench.errors import classify_failure, one_line
    from vmibench.registry import resolve_info
    from vmibench.resolution import label
    from vmibench.user_models import source_digest

    info = resolve_info(name)
    info.check_resolution(res)
    env = capture("cpu")
    pub = info.published
    rec = FlopsRecord(
        timestamp=utc_now(),
        env=env,
        env_key=env.key("cpu"),
        model=name,
        res=label(res),
        height=res[0],
        width=res[1],
        batch=batch,
        published_params_m=pub.params_m,
        published_gmacs=pub.gmacs,
        published_res=pub.eval_res,
        published_flops_rule=pub.flops_rule,
        published_source=pub.source,
        note=pub.note,
        model_source=source_digest(name),
    )
    try:
        from vmibench.bytes_moved import count_bytes

        model = vmibench.create_model(name, res=res)
        x = torch.randn(batch, 3, *res)
        fc = count_flops(model, x)
        moved = count_bytes(model, x)
    except Exception as exc:
        rec.status, rec.error = classify_failure(exc), one_line(exc)
        return rec
    rec.params, rec.params_m = fc.params, fc.params_m
    rec.gmacs, rec.gflops = fc.gmacs / batch, fc.gflops / batch
    rec.gmacs_torch, rec.scan_gmacs = fc.gmacs_torch / batch, fc.scan_gmacs / batch
    rec.uncounted_ops = fc.uncounted_ops
    rec.gbytes_moved = moved.gbytes / batch
    return rec
