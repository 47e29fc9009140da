"""Small helpers shared by every model file (ours and the baselines)."""

from __future__ import annotations

from typing import Any

from vmibench.errors import CheckpointError

# timm.create_model passes these to every entry point; vmibench's builders take weights from files only.
_TIMM_KWARGS = ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir")


def to_hw(img_size: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    """``224`` or ``(h, w)`` -> ``(h, w)``."""
    if isinstance(img_size, int):
        return img_size, img_size
    h, w = img_size
    return int(h), int(w)


def entry_kwargs(pretrained: bool, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Builder kwargs of an entry point: refuses downloads and drops timm's pretrained-cfg plumbing."""
    if pretrained:
        raise CheckpointError("vmibench never downloads weights: pass the official file with --checkpoint")
    return {k: v for k, v in kwargs.items() if k not in _TIMM_KWARGS}
