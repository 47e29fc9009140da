"""Bytes moved: the unfused lower bound of memory traffic, the roofline convention.

A :class:`BytesCounter` (a ``TorchDispatchMode``) sees every aten operator a forward dispatches and credits it
with the bytes of its tensor inputs read plus the bytes of its tensor outputs written, as if every operator ran
as its own kernel that streams its operands through DRAM exactly once.  That is what a roofline's x axis means:
a fused kernel, or one whose operands stay in cache, moves less; one that re-reads its operands moves more.

Conventions, each so that the count is a *minimum* traffic:

* A tensor's bytes are those of its distinct elements: a broadcast (stride-0) dimension is read once, so an
  expanded bias counts its own size, not the size it is expanded to.
* Views (``view``, ``t``, ``permute``, ``expand``, ``detach`` ...: operators whose outputs alias an input without
  writing it) move nothing: they only make new metadata.  Allocation-only operators (``empty``) move nothing.
* Python scalars and shapes are not memory traffic.
* The selective scan (``vmibench::selective_scan``, a custom operator) is credited with its own minimum
  traffic: its operands read once and its output written once -- the traffic of a fused scan kernel (Mamba's
  CUDA one), not of the per-step element-wise operations a torch-level implementation dispatches.  Inside
  ``__torch_dispatch__`` the mode is disabled, so the operators its implementation runs are never seen.

Like ``gmacs``, the count is for one forward pass of the traced batch; :func:`count_bytes` returns the total and
the per-operator split.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

# Operators that allocate without writing (their output is uninitialised memory).
_NO_TRAFFIC = {"aten::empty", "aten::empty_like", "aten::empty_strided", "aten::new_empty", "aten::new_empty_strided"}


def tensor_bytes(t: torch.Tensor) -> int:
    """Bytes of the distinct elements of ``t``: broadcast (stride-0) dimensions count once."""
    distinct = 1
    for size, stride in zip(t.shape, t.stride(), strict=True):
        if stride != 0:
            distinct *= int(size)
    return 0 if t.numel() == 0 else distinct * t.element_size()


def _tensors(values: Iterable[Any]) -> list[torch.Tensor]:
    flat, _ = tree_flatten(list(values))
    return [v for v in flat if isinstance(v, torch.Tensor)]


def _is_view(func: Any) -> bool:
    """Whether an operator's outputs alias an input without writing it (``func.is_view`` where torch has it)."""
    view = getattr(func, "is_view", None)
    if view is not None:
        return bool(view)
    return any(r.alias_info is not None and not r.alias_info.is_write for r in func._schema.returns)


def op_bytes(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> tuple[int, int]:
    """(bytes read, bytes written) credited to one call of ``func``."""
    name = func._schema.name
    if _is_view(func) or name in _NO_TRAFFIC:
        return 0, 0
    read = sum(tensor_bytes(t) for t in _tensors([args, kwargs]))
    written = sum(tensor_bytes(t) for t in _tensors([out]))
    return read, written


class BytesCounter(TorchDispatchMode):
    """Counts bytes read and written per aten operator while active (``with BytesCounter() as c: model(x)``)."""

    def __init__(self) -> None:
        super().__init__()
        self.read: dict[str, int] = defaultdict(int)
        self.written: dict[str, int] = defaultdict(int)
        self.calls: dict[str, int] = defaultdict(int)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        read, written = op_bytes(func, args, kwargs, out)
        if read or written:
            name = func._schema.name
            self.read[name] += read
            self.written[name] += written
            self.calls[name] += 1
        return out

    @property
    def total(self) -> int:
        return sum(self.read.values()) + sum(self.written.values())

    def by_operator(self) -> dict[str, int]:
        """Bytes moved (read + written) per operator, largest first."""
        both = {op: self.read[op] + self.written[op] for op in self.read}
        return dict(sorted(both.items(), key=lambda kv: -kv[1]))


@dataclass(frozen=True)
class ByteCount:
    """Memory traffic of one forward pass (the batch as given)."""

    gbytes: float  # read + written, 1e9 bytes
    gbytes_read: float
    gbytes_written: float
    scan_gbytes: float  # part of gbytes credited to selective scans
    by_operator: dict[str, float]  # GB per operator


def count_bytes(model: nn.Module, inputs: torch.Tensor | tuple[torch.Tensor, ...]) -> ByteCount:
    """Bytes moved by one forward of ``model`` (in eval mode, without autograd) on ``inputs``."""
    args = inputs if isinstance(inputs, tuple) else (inputs,)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), BytesCounter() as counter:
            model(*args)
    finally:
        model.train(was_training)
    per_op = counter.by_operator()
    return ByteCount(
        gbytes=counter.total / 1e9,
        gbytes_read=sum(counter.read.values()) / 1e9,
        gbytes_written=sum(counter.written.values()) / 1e9,
        scan_gbytes=per_op.get("vmibench::selective_scan", 0) / 1e9,
        by_operator={op: b / 1e9 for op, b in per_op.items()},
    )
