"""The names this module used to define, where they live now: cells, settings and results in
:mod:`vmibench.measure.cells`, each workload kind in its module of :mod:`vmibench.measure.kinds`.  Kept so that
``from vmibench.measure.workloads import ...`` goes on working."""

from vmibench.measure.cells import Cell, Memory, Settings, WorkerResult  # noqa: F401
from vmibench.measure.kinds import *  # noqa: F403
