"""MLLA (Mamba-Like Linear Attention, arXiv 2405.16605): our implementation of LeapLabTHU/MLLA ``mlla.py``.

Module names, shapes and state-dict order follow the official model so its checkpoints load strictly.  Each
block is the official Mamba-style linear-attention block (tokens kept as ``(B, H, W, C)`` here):

    x = x + dw3x3(x)                                             (CPE 1)
    u = LN(x);  gate = SiLU(act_proj(u));  v = SiLU(dw3x3(in_proj(u)))
    q, k = ELU(qk(v)) + 1                                        (one head split of C, v itself is the value)
    attn = RoPE(q) (RoPE(k)^T v / N) / (q . mean_n k + 1e-6) + LePE(v)     (per head; LePE a dw3x3 on v)
    x = x + DropPath(out_proj(attn * gate));  x = x + dw3x3(x)   (CPE 2)
    x = x + DropPath(MLP(LN(x)))

The stem is conv3x3/2 -> residual pair of conv3x3 -> conv3x3/2 (to 4x width) -> conv1x1 (all BN, ReLU
except the last of each pair); stages are joined by an inverted-bottleneck patch merging
(1x1 -> dw3x3/2 -> 1x1 + BN).

**Resolution.**  The official RoPE keeps its rotation table for one grid as a persistent buffer
(``attn.rope.rotations``, (H, W, C/2, 2)) and the stem asserts the build size.  We build every table for the
requested grid at construction time; :func:`checkpoint_filter_fn` discards the loaded tables and keeps the
model's own (they are a fixed function of the grid), so a 224 checkpoint runs at 384 exactly as the official
model built at 384 would.  The official attention recovers the grid as ``int(sqrt(N))`` (square inputs only);
ours takes the grid it was built for, which gives the same result on square inputs and also handles H != W.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import DropPath, Mlp
from timm.models import register_model

from vmibench.modeling import StageBackbone, build, cfgs_from_records, init_linear_layernorm, stage_feature_info, to_hw

_ROPE_SUFFIX = "attn.rope.rotations"


def _nhwc(conv: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Apply an NCHW conv module to a channels-last ``(B, H, W, C)`` tensor."""
    return conv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


def _dw3x3(dim: int) -> nn.Conv2d:
    return nn.Conv2d(dim, dim, 3, padding=1, groups=dim)


class ConvNormAct(nn.Module):
    """Conv2d, optional BatchNorm, optional ReLU (attribute names ``conv``/``norm`` as officially)."""

    def __init__(
        self,
        cin: int,
        cout: int,
        k: int,
        stride: int = 1,
        groups: int = 1,
        bias: bool = True,
        norm: bool = True,
        act: bool = True,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=bias)
        self.norm = nn.BatchNorm2d(cout) if norm else nn.Identity()
        self.act = nn.ReLU() if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))


class Stem(nn.Module):
    """Stride-4 convolutional stem: NCHW image in, ``(B, H/4, W/4, C)`` tokens out."""

    def __init__(self, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        half = embed_dim // 2
        self.conv1 = ConvNormAct(in_chans, half, 3, 2, bias=False)
        self.conv2 = nn.Sequential(
            ConvNormAct(half, half, 3, bias=False), ConvNormAct(half, half, 3, bias=False, act=False)
        )
        self.conv3 = nn.Sequential(
            ConvNormAct(half, 4 * embed_dim, 3, 2, bias=False),
            ConvNormAct(4 * embed_dim, embed_dim, 1, bias=False, act=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        x = x + self.conv2(x)
        return self.conv3(x).permute(0, 2, 3, 1)


class PatchMerging(nn.Module):
    """Halve the grid and double the width with an inverted bottleneck (expansion ``ratio`` of the output)."""

    def __init__(self, dim: int, ratio: float = 4.0) -> None:
        super().__init__()
        out = 2 * dim
        hidden = int(out * ratio)
        self.conv = nn.Sequential(
            ConvNormAct(dim, hidden, 1, norm=False),
            ConvNormAct(hidden, hidden, 3, 2, groups=hidden, norm=False),
            ConvNormAct(hidden, out, 1, act=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _nhwc(self.conv, x)


def rope_table(grid: tuple[int, int], dim: int, base: float = 10000.0) -> torch.Tensor:
    """2-D RoPE (cos, sin) table of shape ``(H, W, dim/2, 2)`` for channel pairs.

    The first ``dim/4`` pairs turn with the row index, the rest with the column index, both at frequencies
    ``base ** (-m / (dim/4))``.  Evaluated in float32 in the official order of operations, so the table is
    bit-identical to the one the official model stores for the same grid.
    """
    n_freq = dim // 4
    if n_freq == 0 or dim % 4:
        raise ValueError(f"2-D RoPE needs a channel count divisible by 4, got {dim}")
    freqs = 1 / (base ** (torch.arange(n_freq) / n_freq))
    rows, cols = torch.meshgrid(torch.arange(grid[0]), torch.arange(grid[1]), indexing="ij")
    angles = torch.cat([rows.unsqueeze(-1) * freqs, cols.unsqueeze(-1) * freqs], dim=-1)
    return torch.stack([torch.cos(angles), torch.sin(angles)], dim=-1)


class RoPE(nn.Module):
    """Rotate channel pairs of a ``(B, H, W, C)`` tensor by position-dependent angles (table as a buffer)."""

    def __init__(self, grid: tuple[int, int], dim: int, base: float = 10000.0) -> None:
        super().__init__()
        self.grid = grid
        # Persistent, because official checkpoints carry it; checkpoint_filter_fn swaps in this copy on load.
        self.register_buffer("rotations", rope_table(grid, dim, base))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # float32 like the official rotation (its table lives in float32); result in the caller's dtype.
        pairs = x.float().unflatten(-1, (-1, 2))
        cos, sin = self.rotations.float().unbind(-1)
        re, im = pairs.unbind(-1)
        out = torch.stack([re * cos - im * sin, re * sin + im * cos], dim=-1)
        return out.flatten(-2).to(x.dtype)


class LinearAttention(nn.Module):
    """Multi-head linear attention with ELU+1 kernel, RoPE on q/k for the numerator and LePE on the value."""

    def __init__(self, dim: int, grid: tuple[int, int], num_heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        self.dim = dim
        self.num_heads = num_heads
        self.qk = nn.Linear(dim, 2 * dim, bias=qkv_bias)
        self.lepe = _dw3x3(dim)
        self.rope = RoPE(grid, dim)

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        b, h, w, c = t.shape
        return t.reshape(b, h * w, self.num_heads, c // self.num_heads).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, c = x.shape
        n = h * w
        q, k = (F.elu(t) + 1.0 for t in self.qk(x).chunk(2, dim=-1))
        q_rot, k_rot = self._heads(self.rope(q)), self._heads(self.rope(k))
        q, k, v = self._heads(q), self._heads(k), self._heads(x)
        # The normaliser uses the un-rotated (positive) kernels so it cannot vanish; RoPE is numerator-only.
        z = 1 / (q @ k.mean(dim=-2, keepdim=True).transpose(-2, -1) + 1e-6)
        scale = n**-0.5  # split over both factors as the official code does (keeps fp16 sums in range)
        kv = (k_rot.transpose(-2, -1) * scale) @ (v * scale)
        out = (q_rot @ kv * z).transpose(1, 2).reshape(b, h, w, c)
        return out + _nhwc(self.lepe, x)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, num_heads={self.num_heads}"


class MLLABlock(nn.Module):
    """CPE, gated linear-attention mixer (Mamba-like block design), CPE, MLP; on ``(B, H, W, C)`` tokens."""

    def __init__(
        self,
        dim: int,
        grid: tuple[int, int],
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop: float = 0.0,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        self.cpe1 = _dw3x3(dim)
        self.norm1 = nn.LayerNorm(dim)
        self.in_proj = nn.Linear(dim, dim)
        self.act_proj = nn.Linear(dim, dim)
        self.dwc = _dw3x3(dim)
        self.act = nn.SiLU()
        self.attn = LinearAttention(dim, grid, num_heads, qkv_bias)
        self.out_proj = nn.Linear(dim, dim)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.cpe2 = _dw3x3(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=nn.GELU, drop=drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + _nhwc(self.cpe1, x)
        u = self.norm1(x)
        gate = self.act(self.act_proj(u))
        v = self.act(_nhwc(self.dwc, self.in_proj(u)))
        x = x + self.drop_path(self.out_proj(self.attn(v) * gate))
        x = x + _nhwc(self.cpe2, x)
        return x + self.drop_path(self.mlp(self.norm2(x)))


class MLLAStage(nn.Module):
    """Blocks at one grid, then (except in the last stage) patch merging (names ``blocks``/``downsample``)."""

    def __init__(
        self,
        dim: int,
        grid: tuple[int, int],
        depth: int,
        num_heads: int,
        mlp_ratio: float,
        qkv_bias: bool,
        drop: float,
        drop_paths: list[float],
        downsample: bool,
    ) -> None:
        super().__init__()
        self.grid = grid
        self.blocks = nn.ModuleList(
            MLLABlock(dim, grid, num_heads, mlp_ratio, qkv_bias, drop, drop_paths[i]) for i in range(depth)
        )
        self.downsample = PatchMerging(dim) if downsample else None

    def forward_with_feature(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(the blocks' output: this stage's feature map, the merged map the next stage takes)``."""
        for blk in self.blocks:
            x = blk(x)
        return x, (x if self.downsample is None else self.downsample(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_feature(x)[1]


class MLLA(StageBackbone):
    """MLLA backbone + classifier; ``img_size`` fixes the grids of the RoPE tables.

    Tokens are channels-last; each of ``layers`` ends in the next stage's patch merging, so a stage's feature
    map is its blocks' output.
    """

    stages_path = "layers"
    channels_last = True
    size_tied = "its RoPE tables are per grid"

    def __init__(
        self,
        img_size: int | tuple[int, int] = 224,
        in_chans: int = 3,
        num_classes: int = 1000,
        embed_dim: int = 64,
        depths: tuple[int, ...] = (2, 4, 8, 4),
        num_heads: tuple[int, ...] = (2, 4, 8, 16),
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.1,
    ) -> None:
        super().__init__()
        h, w = to_hw(img_size)
        n_stages = len(depths)
        if h % (4 * 2 ** (n_stages - 1)) or w % (4 * 2 ** (n_stages - 1)):
            raise ValueError(f"MLLA needs a size divisible by {4 * 2 ** (n_stages - 1)}, got {h}x{w}")
        self.img_size = (h, w)
        self.num_classes = num_classes
        self.num_features = embed_dim * 2 ** (n_stages - 1)
        self.feature_info = stage_feature_info([embed_dim * 2**i for i in range(n_stages)], 4, "layers.{i}.blocks")
        self.patch_embed = Stem(in_chans, embed_dim)
        self.pos_drop = nn.Dropout(drop_rate)
        rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        self.layers = nn.ModuleList()
        for i, depth in enumerate(depths):
            start = sum(depths[:i])
            self.layers.append(
                MLLAStage(
                    embed_dim * 2**i,
                    (h // (4 * 2**i), w // (4 * 2**i)),
                    depth,
                    num_heads[i],
                    mlp_ratio,
                    qkv_bias,
                    drop_rate,
                    rates[start : start + depth],
                    downsample=i < n_stages - 1,
                )
            )
        self.norm = nn.LayerNorm(self.num_features)
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        # As the official code: Linear and LayerNorm only; convs and BatchNorms keep torch's init.
        self.apply(init_linear_layernorm)

    def _stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.pos_drop(self.patch_embed(x))

    def _stage(self, i: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.layers[i].forward_with_feature(x)

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(1, 2))


def checkpoint_filter_fn(state_dict: dict[str, Any], model: nn.Module) -> dict[str, Any]:
    """Replace every loaded ``attn.rope.rotations`` by the model's own table (built for its grid).

    The tables are a fixed function of the grid and channel count, so nothing learned is lost; tables saved
    for another resolution (or missing from the file) do not matter.
    """
    for key, table in model.state_dict().items():
        if key.endswith(_ROPE_SUFFIX):
            state_dict[key] = table.clone()
    return state_dict


def _create(variant: str, depths: tuple[int, ...], drop_path_rate: float, pretrained: bool, **kwargs: Any) -> MLLA:
    # Official cfgs/mlla_*.yaml over config.py defaults: width 64, heads (2, 4, 8, 16), mlp_ratio 4, qkv_bias.
    arch: dict[str, Any] = dict(embed_dim=64, depths=depths, num_heads=(2, 4, 8, 16), drop_path_rate=drop_path_rate)
    return build(MLLA, variant, pretrained, filter_fn=checkpoint_filter_fn, **{**arch, **kwargs})


# Generated from the records in vmibench.catalog.mlla (eval settings live there only).
default_cfgs = cfgs_from_records(__name__)


@register_model
def mlla_t(pretrained: bool = False, **kwargs: Any) -> MLLA:
    """MLLA-T: depths (2, 4, 8, 4), width 64, drop-path 0.2 (cfgs/mlla_t.yaml)."""
    return _create("mlla_t", (2, 4, 8, 4), 0.2, pretrained, **kwargs)


@register_model
def mlla_s(pretrained: bool = False, **kwargs: Any) -> MLLA:
    """MLLA-S: depths (3, 6, 21, 6), width 64, drop-path 0.3 (cfgs/mlla_s.yaml)."""
    return _create("mlla_s", (3, 6, 21, 6), 0.3, pretrained, **kwargs)
