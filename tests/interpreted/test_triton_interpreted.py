"""Interpreter half of ``tests/test_triton_scan.py``: collected only under ``TRITON_INTERPRET=1`` (that test runs
it in a child process).  Shapes are small: the interpreter runs each program's tile operations through numpy, a
fraction of a second to a second per call here.
"""

from __future__ import annotations

import importlib
from typing import Any

import pytest
import torch
from test_selective_scan import OPTION_NAMES, _differentiable, bc_like, make_inputs

from vmibench.ops import selective_scan

ss = importlib.import_module("vmibench.ops.selective_scan")
triton = pytest.importorskip("triton")


def _interpreting() -> bool:
    import triton.language as tl

    return ss.triton_interpreted() and not isinstance(tl.sum, triton.runtime.jit.JITFunction)


if not _interpreting():  # a compiled Triton here would test nothing the name promises
    raise RuntimeError("run these tests with TRITON_INTERPRET=1 set before triton is imported")


def _forward_and_gradients(args: dict[str, Any], backend: str) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    leaves = _differentiable(args, torch.float32)
    y, last = selective_scan(**leaves, return_last_state=True, backend=backend)
    gen = torch.Generator().manual_seed(7)
    (y * torch.randn(y.shape, generator=gen)).sum().backward()
    grads = {k: v.grad for k, v in leaves.items() if isinstance(v, torch.Tensor)}
    return y.detach(), last.detach(), grads


def _assert_matches_reference(args: dict[str, Any]) -> None:
    y, last, grads = _forward_and_gradients(args, "triton")
    y_ref, last_ref, grads_ref = _forward_and_gradients(args, "reference")
    torch.testing.assert_close(y, y_ref, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(last, last_ref, rtol=1e-4, atol=1e-5)
    for name, grad in grads.items():
        torch.testing.assert_close(grad, grads_ref[name], rtol=1e-4, atol=1e-4, msg=name)


@pytest.mark.parametrize("groups", [None, 1, 2])
def test_matches_reference_with_every_option(groups: int | None) -> None:
    """Variable B/C shared, in one group and in two; D, z, delta_bias and softplus: forward, last state, grads."""
    _assert_matches_reference(make_inputs(batch=2, channels=8, length=21, groups=groups))


def test_matches_reference_without_options_over_several_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of 16 tokens over L = 37: the state carried across chunk boundaries, and a partial last chunk."""
    import vmibench.ops.triton_scan as triton_scan

    monkeypatch.setattr(triton_scan, "MAX_BLOCK_T", 16)
    assert triton_scan.launch_config(6, 3, 37) == (4, 4, 16)
    _assert_matches_reference(make_inputs(batch=1, channels=6, length=37, d_state=3, groups=2, options=()))


def test_fixed_bc_and_strided_inputs() -> None:
    """A fixed (D, N) B beside a grouped C, u channels-last (as after a Linear): strides are honoured."""
    args = make_inputs(batch=2, channels=8, length=11, groups=2, options=OPTION_NAMES)
    args["B"] = bc_like("fixed", args, 3)
    args["u"] = args["u"].transpose(1, 2).contiguous().transpose(1, 2)
    _assert_matches_reference(args)


def test_half_precision_inputs_accumulate_in_fp32() -> None:
    args = make_inputs(channels=4, length=13, groups=2)
    low = {k: v.bfloat16() if k in ("u", "delta", "B", "C", "z") else v for k, v in args.items()}
    y = selective_scan(**low, backend="triton")
    assert y.dtype == torch.bfloat16
    expected = selective_scan(**{k: v.float() if isinstance(v, torch.Tensor) else v for k, v in low.items()},
                              backend="reference")  # fmt: skip
    torch.testing.assert_close(y.float(), expected, atol=1e-2, rtol=1e-2)  # bf16 rounding of the output only


def test_row_records_triton_when_asked_by_name_on_the_interpreter() -> None:
    assert ss.resolve_backend("triton", "cpu") == "triton"
    assert ss.resolve_backend("auto", "cpu") == "torch"
