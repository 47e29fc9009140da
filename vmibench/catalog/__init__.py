"""vmibench's model records, one module per family: plain data, no torch (imported by ``import vmibench``).

Each record names the module that builds it; see :mod:`vmibench.registry`.  Import order is the listing order
of ``vmibench models``: the subject, its rivals, then the timm references.
"""

from vmibench.catalog import vminet  # noqa: I001
from vmibench.catalog import vim, vmamba, effvmamba, mlla, flatten
from vmibench.catalog import timm_refs

__all__ = ["effvmamba", "flatten", "mlla", "timm_refs", "vim", "vmamba", "vminet"]
