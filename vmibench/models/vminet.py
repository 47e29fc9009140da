"""VMINet (arXiv 2501.02040), our implementation of the released architecture (yws-wxs/VMINet ``vminet.py``).

Module names and shapes follow the released code so its checkpoints load strictly.  Each block is the
released VMI-SA mixer:

    u = BN(dw7x7(x));  z = ReLU6(f1(u)) * f2(u);  s = sum_n w_n z[:, :, n]   (one weight per position)
    out = x + DropPath(BN(g(ReLU6(stack[0] * s + stack[1] * z))))

**Our generalisation (not in the released code):** the released ``sum`` is a Linear over H*W positions built
for 224x224 only.  We build it for the requested grid, and :func:`resize_context_weight` resamples a saved
weight bilinearly on its H x W grid and multiplies it by (old area / new area), so that sum_n w_n -- and with it
the scale of the context s -- is kept.  The causal-mask (recurrent / matrix) forms the paper describes are not
in the released code; they live in :mod:`vmibench.ops.mixers` and are labelled reconstructions.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import DropPath
from timm.models import register_model

from vmibench.modeling import (
    StageBackbone,
    build,
    cfgs_from_records,
    init_linear_layernorm,
    saved_grid,
    stage_feature_info,
    to_hw,
)


class ConvBN(nn.Sequential):
    """Conv2d with bias, optionally followed by BatchNorm (names ``conv``/``bn`` as released)."""

    def __init__(self, cin: int, cout: int, k: int = 1, stride: int = 1, groups: int = 1, with_bn: bool = True) -> None:
        super().__init__()
        self.add_module("conv", nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups))
        if with_bn:
            self.add_module("bn", nn.BatchNorm2d(cout))


class VMIBlock(nn.Module):
    """Released VMI-SA block: depthwise conv, element-wise Q*K, learned global context, projection."""

    def __init__(self, dim: int, mlp_ratio: int, grid: tuple[int, int], drop_path: float = 0.0) -> None:
        super().__init__()
        hidden = mlp_ratio * dim
        self.grid = grid
        self.dwconv = ConvBN(dim, dim, 7, groups=dim)
        self.f1 = ConvBN(dim, hidden, with_bn=False)
        self.f2 = ConvBN(dim, hidden, with_bn=False)
        self.sum = nn.Linear(grid[0] * grid[1], 1, bias=False)
        self.g = ConvBN(hidden, dim)
        self.stack = nn.Parameter(torch.ones(2))
        self.act = nn.ReLU6()
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = self.dwconv(x)
        z = self.act(self.f1(u)) * self.f2(u)
        b, c, h, w = z.shape
        if (h, w) != self.grid:
            raise ValueError(f"VMINet block built for a {self.grid} grid got {h}x{w}: build the model for this size")
        s = self.sum(z.reshape(b, c, h * w)).unsqueeze(-1)  # (B, C, 1, 1): one context value per channel
        y = self.stack[0] * s + self.stack[1] * z
        return x + self.drop_path(self.g(self.act(y)))


class VMINet(StageBackbone):
    """VMINet backbone + classifier; ``img_size`` fixes the grids of the context weights."""

    size_tied = "its context weights are one per position of the built grid"

    def __init__(
        self,
        base_dim: int = 32,
        depths: tuple[int, ...] = (2, 2, 18, 2),
        mlp_ratio: int = 2,
        img_size: int | tuple[int, int] = 224,
        drop_path_rate: float = 0.0,
        num_classes: int = 1000,
        in_chans: int = 3,
    ) -> None:
        super().__init__()
        h, w = to_hw(img_size)
        self.img_size = (h, w)
        self.num_classes = num_classes
        stem_dim = 32
        self.stem = nn.Sequential(ConvBN(in_chans, stem_dim, 3, 2), nn.ReLU6())
        rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        self.stages = nn.ModuleList()
        cin, k = stem_dim, 0
        widths = [base_dim * 2**i for i in range(len(depths))]
        self.feature_info = stage_feature_info(widths, 4, "stages.{i}")
        for i, depth in enumerate(depths):
            dim = base_dim * 2**i
            stride = 2 ** (i + 2)  # stem halves, then every stage's down-sampler halves again
            grid = (math.ceil(h / stride), math.ceil(w / stride))
            blocks = [VMIBlock(dim, mlp_ratio, grid, rates[k + j]) for j in range(depth)]
            self.stages.append(nn.Sequential(ConvBN(cin, dim, 3, 2), *blocks))
            cin, k = dim, k + depth
        self.num_features = cin
        self.norm = nn.BatchNorm2d(cin)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(cin, num_classes) if num_classes > 0 else nn.Identity()
        # Released init: nn.Linear only (`isinstance(m, nn.Linear or nn.Conv2d)`); no LayerNorm here, BN untouched.
        self.apply(init_linear_layernorm)

    def _stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.stem(x)

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.avgpool(x), 1)


def resize_context_weight(weight: torch.Tensor, src: tuple[int, int], dst: tuple[int, int]) -> torch.Tensor:
    """Resample a (1, h*w) context weight from grid ``src`` to ``dst`` keeping sum_n w_n (area-scaled bilinear)."""
    if src == dst:
        return weight
    grid = weight.reshape(1, 1, *src).float()
    shrinking = dst[0] < src[0] or dst[1] < src[1]
    out = F.interpolate(grid, size=dst, mode="bilinear", align_corners=False, antialias=shrinking)
    out = out * (src[0] * src[1]) / (dst[0] * dst[1])
    return out.reshape(1, dst[0] * dst[1]).to(weight.dtype)


def checkpoint_filter_fn(state_dict: dict[str, Any], model: nn.Module) -> dict[str, Any]:
    """Resize every block's ``sum.weight`` to the grid the model was built for (see module docstring)."""
    own = model.state_dict()
    for key, value in state_dict.items():
        if key.endswith(".sum.weight") and key in own and value.shape != own[key].shape:
            module = model.get_submodule(key.rsplit(".", 2)[0])
            dst = module.grid
            state_dict[key] = resize_context_weight(value, saved_grid(value.shape[-1], dst, "a context weight"), dst)
    return state_dict


def _create(variant: str, base_dim: int, mlp_ratio: int, pretrained: bool, **kwargs: Any) -> VMINet:
    arch = dict(base_dim=base_dim, depths=(2, 2, 18, 2), mlp_ratio=mlp_ratio)
    return build(VMINet, variant, pretrained, filter_fn=checkpoint_filter_fn, **{**arch, **kwargs})


# Generated from the records in vmibench.catalog.vminet (eval settings live there only).
default_cfgs = cfgs_from_records(__name__)


@register_model
def vminet_t(pretrained: bool = False, **kwargs: Any) -> VMINet:
    """VMINet-Ti: base width 24, expansion 2."""
    return _create("vminet_t", 24, 2, pretrained, **kwargs)


@register_model
def vminet_xs(pretrained: bool = False, **kwargs: Any) -> VMINet:
    """VMINet-XS as released: base width 48, expansion 2."""
    return _create("vminet_xs", 48, 2, pretrained, **kwargs)


@register_model
def vminet_s(pretrained: bool = False, **kwargs: Any) -> VMINet:
    """VMINet-S: base width 48, expansion 4."""
    return _create("vminet_s", 48, 4, pretrained, **kwargs)


@register_model
def vminet_b(pretrained: bool = False, **kwargs: Any) -> VMINet:
    """VMINet-B: base width 96, expansion 2."""
    return _create("vminet_b", 96, 2, pretrained, **kwargs)
