"""VMINet (the subject) and the timm references; rival architectures live in the top-level ``baselines``."""

from vmibench.models import timm_refs, vminet

__all__ = ["timm_refs", "vminet"]
