"""The names this module used to define, where they live now: cells, settings and results in
:mod:`vmibench.measure.cells`, each workload kind in its module of :mod:`vmibench.measure.kinds`.  Kept so that
``from vmibench.measure.workloads import ...`` goes on working."""

from vmibench.measure.cells import Cell, Memory, Settings, WorkerResult
from vmibench.measure.kinds import (
    MODES,
    TASK_BACKBONE,
    TASK_CLASSIFY,
    TASKS,
    WORKLOADS,
    MatmulPeak,
    MaxBatch,
    MixerOp,
    ModelForward,
    StreamTriad,
    TimerCrosscheck,
    Workload,
)

__all__ = [
    "MODES",
    "TASKS",
    "TASK_BACKBONE",
    "TASK_CLASSIFY",
    "WORKLOADS",
    "Cell",
    "MatmulPeak",
    "MaxBatch",
    "Memory",
    "MixerOp",
    "ModelForward",
    "Settings",
    "StreamTriad",
    "TimerCrosscheck",
    "WorkerResult",
    "Workload",
]
