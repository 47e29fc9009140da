"""The workload kinds, one module each; importing this package registers them (as timm's ``models/__init__.py``
imports its model files).  :mod:`vmibench.measure.kinds.registry` is the registry, and knows none of them.

========================  ==================  ===================================================
module                    kind (``KIND``)     rows
========================  ==================  ===================================================
:mod:`.forward`           ``forward``         ``latency``: a model's forward or training step
:mod:`.maxbatch`          ``maxbatch``        ``maxbatch``: the largest batch in a memory limit
:mod:`.op`                ``op``              ``ops``: one call of a token mixer
:mod:`.peak`              ``matmul``          ``peak``: the dense-matmul roof
:mod:`.triad`             ``triad``           ``bandwidth``: the STREAM-triad memory roof
:mod:`.crosscheck`        ``crosscheck``      not stored: vmibench's timer against torch's
:mod:`.pair`              ``pair``            ``pairs``: two cells alternated call by call (a ratio)
:mod:`.profile`           ``profile``         ``profile`` (+ ``breakdown``): time by operator class and block
:mod:`.profile`           ``roof``            ``roofs``: the elementwise and transcendental roofs
========================  ==================  ===================================================

Nothing here imports torch (the kinds' child steps import it in the worker).
"""

from vmibench.measure.kinds import crosscheck, forward, maxbatch, op, pair, peak, profile, triad  # noqa: F401  # registers
from vmibench.measure.kinds.crosscheck import TimerCrosscheck
from vmibench.measure.kinds.forward import MODES, TASK_BACKBONE, TASK_CLASSIFY, TASKS, ModelForward
from vmibench.measure.kinds.maxbatch import MaxBatch
from vmibench.measure.kinds.op import MixerOp
from vmibench.measure.kinds.pair import InterleavedPair, call_ratios, pair_cell, split_calls
from vmibench.measure.kinds.peak import MatmulPeak
from vmibench.measure.kinds.profile import ClassRoof, ModelProfile
from vmibench.measure.kinds.registry import WORKLOADS, Kind, Workload, register_kind, workload_class
from vmibench.measure.kinds.triad import StreamTriad

__all__ = [
    "MODES",
    "TASKS",
    "TASK_BACKBONE",
    "TASK_CLASSIFY",
    "WORKLOADS",
    "ClassRoof",
    "InterleavedPair",
    "Kind",
    "MatmulPeak",
    "MaxBatch",
    "MixerOp",
    "ModelForward",
    "ModelProfile",
    "StreamTriad",
    "TimerCrosscheck",
    "Workload",
    "call_ratios",
    "pair_cell",
    "register_kind",
    "split_calls",
    "workload_class",
]
