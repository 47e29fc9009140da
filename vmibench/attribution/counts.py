"""FLOPs and bytes moved by operator class and block: the per-operator detail of :mod:`vmibench.flops` and
:mod:`vmibench.bytes_moved`, kept.

One forward (eval mode, no autograd) runs under a ``TorchDispatchMode`` that sees every aten operator with its
arguments and output, in the innermost block scope (:mod:`vmibench.attribution.scopes`), and credits it with

* MACs by ``torch.utils.flop_counter``'s formulas (FLOPs / 2) -- the registry :mod:`vmibench.flops` extends with
  the selective scan (:func:`vmibench.flops.scan_macs`) and the CPU flash attention
  (:func:`vmibench.flops.sdpa_macs`), so the class total equals ``FlopCount.gmacs_torch``: matmul, convolution,
  attention and scan work.  Norms and pooling, which fvcore's ``gmacs`` also counts (a few percent), and
  element-wise operators, which neither counts, have no MACs here: their FLOP share is zero by convention;
* bytes by :func:`vmibench.bytes_moved.op_bytes` (operands read once, outputs written once; views free), so the
  class total equals ``ByteCount.gbytes``.

The dispatch mode sees operators after autograd and composite decomposition (``aten::addmm`` for a linear,
``aten::convolution`` for a conv2d); custom operators (``vmibench::selective_scan``) are seen whole.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn
from torch.utils._python_dispatch import TorchDispatchMode

from vmibench.attribution.classes import OTHER, by_block, by_class, op_class
from vmibench.attribution.scopes import BlockScopes

Cells = dict[tuple[str, str], float]  # (block, class) -> value


@dataclass(frozen=True)
class ClassCounts:
    """GMACs and GB moved of one forward, per (block, class); the batch as given."""

    gmacs: Cells
    gbytes: Cells
    op_classes: dict[str, tuple[str, ...]]  # every operator seen -> its classes (a convolution may have two)
    other_ops: tuple[str, ...] = field(default=())  # operators that fell into ``other``

    def class_gmacs(self) -> dict[str, float]:
        return by_class(self.gmacs)

    def class_gbytes(self) -> dict[str, float]:
        return by_class(self.gbytes)

    def block_gmacs(self) -> dict[str, float]:
        return by_block(self.gmacs)

    def block_gbytes(self) -> dict[str, float]:
        return by_block(self.gbytes)


def op_macs(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> int:
    """MACs of one call by ``torch.utils.flop_counter``'s registry (with vmibench's formulas registered)."""
    from torch.utils.flop_counter import flop_registry

    import vmibench.flops  # noqa: F401  (registers the scan and CPU-attention formulas)

    formula = flop_registry.get(func._overloadpacket)
    return 0 if formula is None else int(formula(*args, **kwargs, out_val=out)) // 2


class ClassCounter(TorchDispatchMode):
    """Credits each dispatched operator's MACs and bytes to (innermost block of ``scopes``, operator class)."""

    def __init__(self, scopes: BlockScopes) -> None:
        super().__init__()
        self.scopes = scopes
        self.macs: dict[tuple[str, str], int] = defaultdict(int)
        self.bytes: dict[tuple[str, str], int] = defaultdict(int)
        self.op_classes: dict[str, set[str]] = defaultdict(set)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        from vmibench.bytes_moved import op_bytes

        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = func._schema.name
        cls = op_class(name, args)
        self.op_classes[name].add(cls)
        key = (self.scopes.current, cls)
        read, written = op_bytes(func, args, kwargs, out)
        self.bytes[key] += read + written
        self.macs[key] += op_macs(func, args, kwargs, out)
        return out


def count_by_class(model: nn.Module, inputs: torch.Tensor | tuple[torch.Tensor, ...]) -> ClassCounts:
    """GMACs and GB moved per (block, class) of one forward of ``model`` (eval mode, no autograd) on ``inputs``."""
    args = inputs if isinstance(inputs, tuple) else (inputs,)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), BlockScopes(model) as scopes, ClassCounter(scopes) as counter:
            model(*args)
    finally:
        model.train(was_training)
    keys = list(counter.bytes)  # every call adds its key: first-seen (execution) order
    return ClassCounts(
        gmacs={k: counter.macs[k] / 1e9 for k in keys},
        gbytes={k: counter.bytes[k] / 1e9 for k in keys},
        op_classes={op: tuple(sorted(c)) for op, c in sorted(counter.op_classes.items())},
        other_ops=tuple(sorted(op for op, c in counter.op_classes.items() if OTHER in c)),
    )
