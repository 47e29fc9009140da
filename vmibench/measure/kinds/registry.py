"""The registry of workload kinds.  It knows no kind: each kind module registers its workload class with
:func:`register_kind` when it is imported, and :mod:`vmibench.measure.kinds` imports the built-in ones (as timm's
``models/__init__.py`` imports its model files).

A kind is a :class:`Workload` subclass, one module that holds together

* the workload: a frozen dataclass, ``KIND`` (its name in JSON and in the store) and ``TABLE`` (where its rows go);
* its planning, where that is the kind's own (the peak's matrix sizes, the triad's array length);
* :meth:`Workload.run`: what the worker's child process runs for one cell (torch is imported there, never here);
* :meth:`Workload.pooled_fields` and :meth:`Workload.record`: how its rounds become a row in the parent.

:class:`~vmibench.measure.cells.Workload` (``Kind`` here) is the base class and says what each hook is given.

The worker supervises and dispatches through this registry; it does not know the kinds.  Adding a kind is one
file and one ``@register_kind``.  Nothing here imports torch.
"""

from __future__ import annotations

from typing import TypeVar

from vmibench.measure.cells import Workload

Kind = Workload  # the protocol a registered class implements

W = TypeVar("W", bound=type[Workload])
WORKLOADS: dict[str, type[Workload]] = {}  # KIND -> class, filled by register_kind


def register_kind(cls: W) -> W:
    """Class decorator: make ``cls`` a workload kind, found by its ``KIND`` when a cell is read from JSON.

    Registering the same class again (a module imported twice, an edited ``--import`` file) replaces it; another
    class under a taken name is refused."""
    if not cls.KIND:
        raise ValueError(f"{cls.__name__} has no KIND")
    old = WORKLOADS.get(cls.KIND)
    if old is not None and old.__qualname__ != cls.__qualname__:
        raise ValueError(f"workload kind '{cls.KIND}' is taken by {old.__module__}.{old.__qualname__}")
    WORKLOADS[cls.KIND] = cls
    return cls


def workload_class(kind: str) -> type[Workload]:
    """The class registered as ``kind`` (the built-in kinds are imported on first use)."""
    if kind not in WORKLOADS:
        import vmibench.measure.kinds  # noqa: F401  # the built-in kinds register themselves on import
    try:
        return WORKLOADS[kind]
    except KeyError:
        raise ValueError(f"unknown workload kind '{kind}' (registered: {', '.join(sorted(WORKLOADS))})") from None
