"""Our reimplementations of VMINet's rivals, one file per family, registered in vmibench's registry.

Each follows its official model file's module names and shapes so official checkpoints load strictly (their keys,
shapes and counts are in ``tests/reference/state_dicts``), and adapts to any input resolution at construction time.
"""

# Import order is the registry's listing order.
from baselines import vim  # noqa: I001
from baselines import vmamba
from baselines import effvmamba
from baselines import mlla
from baselines import flatten

__all__ = ["effvmamba", "flatten", "mlla", "vim", "vmamba"]
