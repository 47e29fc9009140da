"""Small helpers shared by every model file (ours and the baselines)."""

from __future__ import annotations

import math
from typing import Any

import torch.nn as nn
from timm.layers import trunc_normal_

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


def init_linear_layernorm(m: nn.Module) -> None:
    """The usual ViT/Swin init, for ``model.apply``: trunc-normal(0.02) Linear weights, zero Linear biases,
    LayerNorms to identity (weight 1, bias 0); every other module (convs, BatchNorms, ...) is left alone."""
    if isinstance(m, nn.Linear):
        trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


def saved_grid(n: int, like: tuple[int, int], what: str) -> tuple[int, int]:
    """Grid of a saved per-position tensor with ``n`` positions: square (every official checkpoint) or with the
    aspect ratio of ``like`` (the model's own grid); ``what`` names the tensor in the error otherwise."""
    side = math.isqrt(n)
    if side * side == n:
        return side, side
    scale = math.sqrt(n / (like[0] * like[1]))
    grid = (round(like[0] * scale), round(like[1] * scale))
    if grid[0] * grid[1] != n:
        raise CheckpointError(f"cannot tell the grid of {what} with {n} positions: build the model at its size")
    return grid
