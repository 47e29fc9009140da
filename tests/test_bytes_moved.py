"""Bytes-moved counter: hand-computed traffic of a Linear, a Conv2d and an element-wise chain; views, broadcasts
and the selective scan's own minimum traffic."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from vmibench.bytes_moved import BytesCounter, count_bytes, tensor_bytes
from vmibench.ops.selective_scan import selective_scan

F32 = 4  # bytes per fp32 element


def counted(fn, *args) -> BytesCounter:  # type: ignore[no-untyped-def]
    with torch.no_grad(), BytesCounter() as counter:
        fn(*args)
    return counter


def test_linear_reads_input_weight_bias_and_writes_output() -> None:
    lin = nn.Linear(16, 8)
    counter = counted(lin, torch.randn(4, 16))
    # addmm reads bias (8), x (4x16), W^T (16x8: a view of W, moved as W's 128 elements); writes 4x8
    assert dict(counter.read) == {"aten::addmm": (8 + 4 * 16 + 16 * 8) * F32}
    assert dict(counter.written) == {"aten::addmm": 4 * 8 * F32}
    assert counter.total == 928


def test_conv2d_reads_input_weight_bias_and_writes_output() -> None:
    conv = nn.Conv2d(3, 5, 3, padding=1)
    fc = count_bytes(conv, torch.randn(2, 3, 10, 10))
    x, w, b, y = 2 * 3 * 10 * 10, 5 * 3 * 3 * 3, 5, 2 * 5 * 10 * 10
    assert fc.gbytes * 1e9 == pytest.approx((x + w + b + y) * F32)
    assert fc.gbytes_read * 1e9 == pytest.approx((x + w + b) * F32)
    assert set(fc.by_operator) == {"aten::convolution"}


class _Chain(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x * 2 + 1).reshape(-1)


def test_elementwise_chain_moves_each_operand_once_per_op_and_views_nothing() -> None:
    counter = counted(_Chain(), torch.randn(3, 7))
    n = 3 * 7 * F32
    # mul, add, relu: each reads n and writes n (Python scalars are not traffic); reshape of a contiguous
    # tensor is a view and moves nothing
    assert dict(counter.read) == {"aten::mul": n, "aten::add": n, "aten::relu": n}
    assert dict(counter.written) == dict(counter.read)
    assert counter.total == 6 * n


def test_broadcast_operand_counts_its_distinct_elements() -> None:
    x, bias = torch.randn(64, 32), torch.randn(32)
    assert tensor_bytes(bias.expand(64, 32)) == 32 * F32
    counter = counted(torch.add, x, bias.expand(64, 32))
    assert counter.total == (64 * 32 + 32 + 64 * 32) * F32


def test_selective_scan_is_credited_with_its_operands_and_output_only() -> None:
    b, d, n, length = 1, 4, 3, 10
    u, delta = torch.randn(b, d, length), torch.rand(b, d, length)
    a, bb, cc = -torch.rand(d, n), torch.randn(b, n, length), torch.randn(b, n, length)
    counter = counted(lambda: selective_scan(u, delta, a, bb, cc, backend="torch"))
    # reads u, delta (B, D, L), A (D, N), B and C (B, N, L); writes y (B, D, L) and the last state (B, D, N)
    expected = (2 * b * d * length + d * n + 2 * b * n * length + b * d * length + b * d * n) * F32
    assert dict(counter.by_operator()) == {"vmibench::selective_scan": expected}


def test_count_bytes_keeps_the_training_flag() -> None:
    lin = nn.Linear(2, 2).train()
    count_bytes(lin, torch.randn(1, 2))
    assert lin.training
