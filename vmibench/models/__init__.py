"""The architectures: importing this package registers every one with timm (timm's ``timm.models`` pattern).

VMINet (the subject) lives here; the rivals live in ``vmibench.baselines``; the timm references are timm's own.
Records (published numbers, eval settings) are in :mod:`vmibench.catalog` and need no torch.
"""

from vmibench.models import vminet  # noqa: I001
from vmibench.baselines import vim, vmamba, effvmamba, mlla, flatten

__all__ = ["effvmamba", "flatten", "mlla", "vim", "vmamba", "vminet"]
