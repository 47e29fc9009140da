"""Where the time goes: a profiled forward (or training step), each operator's time credited to its block and
operator class.

:func:`profile_calls` runs warm-up calls unprofiled, then ``calls`` calls (plus ``profiler_warmup`` discarded
ones, whose first-touch costs the profiler inflates) under ``torch.profiler.profile`` with each call in a
``record_function`` scope and each block (:mod:`vmibench.attribution.scopes`) in its own.  :func:`attribute` is
the pure part: it turns a call's events into a :class:`ProfileSample`.

Attribution rule.  Every operator event's *self* time (CPU self time on CPU; on CUDA the device self time -- the
kernels the operator launched itself) goes to

* the class of its *outermost* operator ancestor (the operator the model's Python code called: ``aten::linear``
  for the ``aten::t`` and ``aten::addmm`` under it, ``vmibench::selective_scan`` for the element-wise operators
  its torch implementation runs), so a class's time is the inclusive time of the calls of that class;
* the innermost block scope around it; in a training step, a backward operator goes to the block of the forward
  operator whose autograd node it evaluates (matched by sequence number), the loss to block ``loss`` and the
  SGD step to block ``optimizer``.

Self time of events that are not operators (the scopes themselves, autograd's wrappers, ``Optimizer.step``) is
host time outside every operator: ``unclassified_ms``.  Python time between operators is in no event at all;
``wall_ms`` (the call scope's duration) includes both, so ``class total + unclassified <= wall``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn

from vmibench.attribution.classes import OTHER, by_block, by_class, is_operator, op_class
from vmibench.attribution.scopes import BLOCK_PREFIX, ROOT, BlockScopes

CALL_PREFIX = "vmibench.call#"
BACKWARD_PREFIX = "autograd::engine::evaluate_function"
MODES = ("infer", "train")


@dataclass(frozen=True)
class Event:
    """One host-side profiler event, as :func:`attribute` needs it (times in microseconds)."""

    id: int
    parent: int | None
    name: str
    start_us: float
    total_us: float  # inclusive host time
    self_us: float  # host self time
    device_self_us: float = 0.0  # device time of the kernels this event launched itself
    sequence_nr: int = -1  # autograd sequence number (forward op <-> its backward node)
    input_shapes: tuple[Any, ...] = ()


@dataclass(frozen=True)
class ProfileSample:
    """One profiled call: time per (block, class) in ms, host or device per ``clock``."""

    mode: str
    clock: str  # "cpu" (host self time) or "cuda" (kernel time)
    wall_ms: float  # duration of the call scope (host; on CUDA the call ends with a synchronize)
    times_ms: dict[tuple[str, str], float]
    unclassified_ms: float  # self time of non-operator events: scopes, autograd wrappers, optimizer.step
    other_ops: tuple[str, ...] = field(default=())  # outermost operators that fell into ``other``

    def class_ms(self) -> dict[str, float]:
        return by_class(self.times_ms)

    def block_ms(self) -> dict[str, float]:
        return by_block(self.times_ms)

    @property
    def total_ms(self) -> float:
        """Sum of all class times."""
        return sum(self.times_ms.values())


def _children(events: Sequence[Event]) -> dict[int | None, list[Event]]:
    kids: dict[int | None, list[Event]] = defaultdict(list)
    for e in sorted(events, key=lambda e: (e.start_us, e.id)):
        kids[e.parent].append(e)
    return kids


def attribute(events: Sequence[Event], *, mode: str = "infer", clock: str = "cpu") -> list[ProfileSample]:
    """One :class:`ProfileSample` per call scope (``CALL_PREFIX`` event) in ``events``, in call order.

    A top-level event that is not a call scope (on CUDA, autograd's backward thread has its own roots) belongs to
    the call whose interval contains its start.  ``clock="cuda"`` reads ``device_self_us``, else ``self_us``.
    """
    kids = _children(events)
    roots = kids[None]
    calls = [e for e in roots if e.name.startswith(CALL_PREFIX)]
    members: dict[int, list[Event]] = {c.id: [c] for c in calls}
    for root in roots:
        if root.name.startswith(CALL_PREFIX):
            continue
        for c in calls:
            if c.start_us <= root.start_us <= c.start_us + c.total_us:
                members[c.id].append(root)
                break
    return [_attribute_call(c, members[c.id], kids, mode, clock) for c in calls]


def _attribute_call(
    call: Event, roots: list[Event], kids: dict[int | None, list[Event]], mode: str, clock: str
) -> ProfileSample:
    times: dict[tuple[str, str], float] = defaultdict(float)
    unclassified = 0.0
    others: set[str] = set()
    forward_block: dict[int, str] = {}  # sequence number -> block of the forward op that made the autograd node
    # depth-first, in start order, so each forward op is seen before its backward
    stack: list[tuple[Event, str, str | None, bool]] = [(r, ROOT, None, False) for r in reversed(roots)]
    while stack:
        event, block, cls, backward = stack.pop()
        name = event.name
        if name.startswith(BLOCK_PREFIX):
            block = name[len(BLOCK_PREFIX) :]
        elif name.startswith(BACKWARD_PREFIX):
            backward = True
            block = forward_block.get(event.sequence_nr, block)
        elif cls is None and is_operator(name):
            cls = op_class(name, event.input_shapes or None)
            if cls == OTHER:
                others.add(name)
        if is_operator(name) and not backward and event.sequence_nr >= 0:
            forward_block.setdefault(event.sequence_nr, block)
        t = (event.device_self_us if clock == "cuda" else event.self_us) / 1e3
        if cls is None:
            unclassified += t
        else:
            times[(block, cls)] += t
        stack.extend((k, block, cls, backward) for k in reversed(kids.get(event.id, [])))
    return ProfileSample(
        mode=mode,
        clock=clock,
        wall_ms=call.total_us / 1e3,
        times_ms=dict(times),
        unclassified_ms=unclassified,
        other_ops=tuple(sorted(others)),
    )


def events_from_profiler(function_events: Iterable[Any]) -> list[Event]:
    """:class:`Event` records of a ``torch.profiler`` run's host-side events (``prof.events()``)."""
    from torch.autograd import DeviceType

    out = []
    for e in function_events:
        if e.device_type != DeviceType.CPU:
            continue
        parent = e.cpu_parent
        shapes = tuple(tuple(s) if isinstance(s, list) else s for s in (e.input_shapes or ()))
        out.append(
            Event(
                id=e.id,
                parent=None if parent is None else parent.id,
                name=e.name,
                start_us=float(e.time_range.start),
                total_us=float(e.cpu_time_total),
                self_us=float(e.self_cpu_time_total),
                device_self_us=float(getattr(e, "self_device_time_total", 0.0) or 0.0),
                sequence_nr=int(e.sequence_nr),
                input_shapes=shapes,
            )
        )
    return out


def _step(model: nn.Module, inputs: tuple[torch.Tensor, ...], mode: str, optimizer: Any, target: Any) -> None:
    from torch.autograd.profiler import record_function

    if mode == "infer":
        with torch.no_grad():
            model(*inputs)
        return
    out = model(*inputs)
    with record_function(BLOCK_PREFIX + "loss"):
        loss = nn.functional.cross_entropy(out, target)
    loss.backward()
    with record_function(BLOCK_PREFIX + "optimizer"):
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)


def profile_calls(
    model: nn.Module,
    inputs: torch.Tensor | tuple[torch.Tensor, ...],
    *,
    calls: int = 3,
    mode: str = "infer",
    device: str = "cpu",
    warmup: int = 1,
    profiler_warmup: int = 1,
    lr: float = 1e-4,
) -> list[ProfileSample]:
    """Profile ``calls`` calls of ``model`` on ``inputs`` (both already on ``device``), one sample per call.

    ``mode="infer"``: a forward without autograd, the model in eval mode.  ``mode="train"``: forward,
    cross-entropy against class 0, backward and an SGD step (``lr``), the model in train mode.  ``warmup`` calls
    run unprofiled first, then ``profiler_warmup`` profiled calls that are dropped.  On ``device="cuda..."`` the
    profiler records CUDA activity too, class times are kernel times and each call ends with a synchronize.
    The caller (a worker process) builds rounds and intervals from the per-call samples.
    """
    from torch.autograd.profiler import record_function
    from torch.profiler import ProfilerActivity, profile

    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    cuda = device.startswith("cuda")
    args = inputs if isinstance(inputs, tuple) else (inputs,)
    model.train(mode == "train")
    optimizer = torch.optim.SGD(model.parameters(), lr=lr) if mode == "train" else None
    target = torch.zeros(args[0].shape[0], dtype=torch.long, device=args[0].device) if mode == "train" else None

    def step() -> None:
        _step(model, args, mode, optimizer, target)
        if cuda:
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        step()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with BlockScopes(model, annotate=True), profile(activities=activities, record_shapes=True) as prof:
        for i in range(profiler_warmup + calls):
            with record_function(f"{CALL_PREFIX}{i}"):
                step()
    samples = attribute(events_from_profiler(prof.events()), mode=mode, clock="cuda" if cuda else "cpu")
    return samples[profiler_warmup:]
