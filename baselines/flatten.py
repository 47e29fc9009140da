"""FLatten-Swin (ICCV 2023, arXiv 2308.00442): Swin with focused linear attention in its first two stages.

Our implementation of ``models/flatten_swin.py`` in LeapLabTHU/FLatten-Transformer (configs ``flatten_swin_t`` /
``flatten_swin_s``, attention pattern ``LLSS``).  Parameter and buffer names follow the official file so its
checkpoints load strictly.

* Stages 1-2 (``L``): focused linear attention over the whole stage feature map.  With phi(t) = ReLU(t) + 1e-6,
  s = softplus(scale) and f_p(t) = ||t|| * t^p / ||t^p|| (p = 3, the focusing factor)::

      q' = f_p(phi(q) / s),  k' = f_p(phi(k + pos) / s)
      out_h = q'_h (k'_h^T v_h / N) / (q'_h mean_n(k'_h)^T + 1e-6)  +  dwc5x5(v_h)       (per head h)

  The depthwise 5x5 conv on v restores the rank of the linear attention map; its weights are shared by the
  heads (it has head_dim channels).  ``pos`` is a learned (1, H*W, C) encoding added to k.
* Stages 3-4 (``S``): Swin window attention (window 7, cyclic shift on odd blocks, relative position bias).
* Patch embedding, MLP and patch merging are Swin's.

The official config's ``window_size=56`` is what makes the linear stages global at 224 (stage 1 is 56x56 and
stage 2, 28x28, is clamped to its own size); the Swin stages get window 7 whenever that value is <= 56.

**Our generalisation (not in the official code, which is tied to its build size):** the model is built for any
resolution divisible by 32.  Linear stages attend over their whole (possibly non-square) map and their
positional encodings are built for that grid; :func:`checkpoint_filter_fn` resizes saved encodings bicubically
on their 2-D grid, as the official ``utils.load_pretrained`` does.  Swin stages keep window 7.  A map whose
shorter side is <= 7 gets one window of that side and no shift (the official rule); a longer map that 7 does not
divide is zero-padded at the bottom/right after ``norm1``, before the cyclic shift, and the shift mask is built
on the padded grid (as in Swin's detection backbone and torchvision's Swin; the official classification code
cannot run there).  Relative position
indices and shift masks are rebuilt for the model's geometry and replace the saved ones.

Checked against the official file (not part of the tests): with the same weights, outputs agree to 1e-6 at 224,
96 and 64 (after the official ``load_pretrained`` resizing at the latter two), and at 448 against the official
code with ``window_size=112`` and its Swin-stage window held at 7.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import DropPath, Mlp, PatchEmbed, trunc_normal_
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

Grid = tuple[int, int]


# -- window helpers -------------------------------------------------------------------------------------------


def window_partition(x: torch.Tensor, ws: int) -> torch.Tensor:
    """(B, H, W, C) with H, W multiples of ``ws`` -> (B * nW, ws * ws, C), windows in row-major order."""
    b, h, w, c = x.shape
    x = x.view(b, h // ws, ws, w // ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, ws * ws, c)


def window_reverse(windows: torch.Tensor, ws: int, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`window_partition`: (B * nW, ws * ws, C) -> (B, H, W, C)."""
    c = windows.shape[-1]
    x = windows.view(-1, h // ws, w // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, h, w, c)


def relative_position_index(ws: int) -> torch.Tensor:
    """(ws^2, ws^2) index into a (2ws-1)^2 bias table: row offset major, column offset minor (Swin's layout)."""
    rows, cols = torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij")
    pos = torch.stack((rows.flatten(), cols.flatten()))  # (2, ws^2)
    rel = pos[:, :, None] - pos[:, None, :] + (ws - 1)  # offsets shifted to [0, 2ws-2]
    return rel[0] * (2 * ws - 1) + rel[1]


def shifted_window_mask(grid: Grid, ws: int, shift: int) -> torch.Tensor:
    """(nW, ws^2, ws^2) additive mask (0 / -100) that stops attention across the seams of a cyclic shift."""
    h, w = grid
    labels = torch.zeros(1, h, w, 1)
    bands = (slice(0, -ws), slice(-ws, -shift), slice(-shift, None))
    for i, rows in enumerate(bands):
        for j, cols in enumerate(bands):
            labels[:, rows, cols, :] = 3 * i + j
    win = window_partition(labels, ws).squeeze(-1)  # (nW, ws^2)
    differs = win[:, None, :] != win[:, :, None]
    return torch.zeros(differs.shape).masked_fill(differs, -100.0)


# -- attention ------------------------------------------------------------------------------------------------


class WindowAttention(nn.Module):
    """Swin (shifted-)window self-attention with a learned relative position bias."""

    def __init__(
        self,
        dim: int,
        window_size: int,
        num_heads: int,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ) -> None:
        super().__init__()
        self.window_size = window_size
        self.num_heads = num_heads
        self.scale = qk_scale or (dim // num_heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        self.register_buffer("relative_position_index", relative_position_index(window_size))
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        trunc_normal_(self.relative_position_bias_table, std=0.02)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``x``: (B * nW, N, C) windows; ``mask``: (nW, N, N) shift mask or None."""
        bw, n, c = x.shape
        q, k, v = self.qkv(x).reshape(bw, n, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        bias = bias.view(n, n, -1).permute(2, 0, 1)  # (heads, N, N)
        if mask is not None:
            # Group windows by image so the per-window mask broadcasts over the batch.
            nw = mask.shape[0]
            q, k, v = (t.reshape(bw // nw, nw, *t.shape[1:]) for t in (q, k, v))
            bias = bias.unsqueeze(0) + mask.unsqueeze(1)  # (nW, heads, N, N)
        out = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=bias.to(q.dtype),
            dropout_p=self.attn_drop if self.training else 0.0,
            scale=self.scale,
        )
        out = out.reshape(bw, self.num_heads, n, -1).transpose(1, 2).reshape(bw, n, c)
        return self.proj_drop(self.proj(out))


def _focus(t: torch.Tensor, scale: torch.Tensor, power: int) -> torch.Tensor:
    """ReLU kernel, learned scale, then t^p rescaled to the norm it had before: sharpens without changing size."""
    t = (F.relu(t) + 1e-6) / scale
    norm = t.norm(dim=-1, keepdim=True)
    t = t**power
    return t / t.norm(dim=-1, keepdim=True) * norm


class FocusedLinearAttention(nn.Module):
    """Focused linear attention over one whole feature map of size ``grid`` (see the module docstring)."""

    def __init__(
        self,
        dim: int,
        grid: Grid,
        num_heads: int,
        qkv_bias: bool = True,
        proj_drop: float = 0.0,
        focusing_factor: int = 3,
        kernel_size: int = 5,
    ) -> None:
        super().__init__()
        head_dim = dim // num_heads
        self.grid = grid
        self.num_heads = num_heads
        self.focusing_factor = focusing_factor
        # Parameters before sub-modules, as in the official state dict.
        self.scale = nn.Parameter(torch.zeros(1, 1, dim))
        self.positional_encoding = nn.Parameter(torch.zeros(1, grid[0] * grid[1], dim))
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self.dwc = nn.Conv2d(head_dim, head_dim, kernel_size, padding=kernel_size // 2, groups=head_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: (B, H*W, C) tokens of the whole map, row-major."""
        b, n, c = x.shape
        h, w = self.grid
        q, k, v = self.qkv(x).reshape(b, n, 3, c).unbind(2)
        scale = F.softplus(self.scale)
        q = _focus(q, scale, self.focusing_factor)
        k = _focus(k + self.positional_encoding, scale, self.focusing_factor)
        q, k, v = (t.reshape(b, n, self.num_heads, -1).transpose(1, 2) for t in (q, k, v))

        z = 1 / (q @ k.mean(dim=-2, keepdim=True).transpose(-2, -1) + 1e-6)
        # Both factors carry N^-1/2 so the (d x d) sum stays in range at large N (official numerics fix).
        kv = (k.transpose(-2, -1) * n**-0.5) @ (v * n**-0.5)
        out = (q @ kv * z).transpose(1, 2).reshape(b, n, c)

        v_map = v.reshape(b * self.num_heads, h, w, -1).permute(0, 3, 1, 2)
        out = out + self.dwc(v_map).reshape(b, c, n).transpose(1, 2)
        return self.proj_drop(self.proj(out))


# -- blocks and stages ----------------------------------------------------------------------------------------


class FLattenBlock(nn.Module):
    """Pre-norm transformer block whose token mixer is focused linear (``L``) or Swin window (``S``) attention.

    Works on (B, H, W, C) maps of the fixed size ``grid``.
    """

    def __init__(
        self,
        dim: int,
        grid: Grid,
        num_heads: int,
        attn_type: str,
        window_size: int = 7,
        shift: bool = False,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: float = 0.0,
        focusing_factor: int = 3,
        kernel_size: int = 5,
    ) -> None:
        super().__init__()
        if attn_type not in ("L", "S"):
            raise ValueError(f"attn_type must be 'L' or 'S', got {attn_type!r}")
        self.grid = grid
        self.linear = attn_type == "L"
        if self.linear:  # one global attention over the map: nothing to partition or shift
            self.window_size, self.shift_size, self.padded = 0, 0, grid
        else:
            # The official rule: a map no longer than the window is one window, unshifted.
            self.window_size = ws = min(window_size, *grid)
            self.shift_size = window_size // 2 if shift and min(grid) > window_size else 0
            self.padded = (math.ceil(grid[0] / ws) * ws, math.ceil(grid[1] / ws) * ws)
        mask = shifted_window_mask(self.padded, self.window_size, self.shift_size) if self.shift_size else None
        self.register_buffer("attn_mask", mask)

        self.norm1 = nn.LayerNorm(dim)
        if self.linear:
            self.attn: nn.Module = FocusedLinearAttention(
                dim, grid, num_heads, qkv_bias, drop, focusing_factor, kernel_size
            )
        else:
            self.attn = WindowAttention(dim, self.window_size, num_heads, qkv_bias, qk_scale, attn_drop, drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=drop)

    def _mix_windows(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[1:3]
        ws, s = self.window_size, self.shift_size
        hp, wp = self.padded
        if (hp, wp) != (h, w):
            x = F.pad(x, (0, 0, 0, wp - w, 0, hp - h))
        if s:
            x = torch.roll(x, shifts=(-s, -s), dims=(1, 2))
        x = window_reverse(self.attn(window_partition(x, ws), self.attn_mask), ws, hp, wp)
        if s:
            x = torch.roll(x, shifts=(s, s), dims=(1, 2))
        return x[:, :h, :w, :]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, c = x.shape
        if (h, w) != self.grid:
            raise ValueError(f"FLatten block built for a {self.grid} map got {h}x{w}: build the model for this size")
        y = self.norm1(x)
        y = self.attn(y.reshape(b, h * w, c)).view(b, h, w, c) if self.linear else self._mix_windows(y)
        x = x + self.drop_path(y)
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchMerging(nn.Module):
    """Swin 2x2 patch merging: concatenate each 2x2 neighbourhood, LayerNorm, halve the width back to 2C."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Channel order (row, col) = (0,0), (1,0), (0,1), (1,1), the order the official weights expect.
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
        return self.reduction(self.norm(x))


class BasicLayer(nn.Module):
    """One stage: ``depth`` blocks of one attention type (shift on odd Swin blocks), then optional merging."""

    def __init__(
        self,
        dim: int,
        grid: Grid,
        depth: int,
        num_heads: int,
        attn_type: str,
        downsample: bool,
        drop_path: list[float],
        **block_kwargs: Any,
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            FLattenBlock(dim, grid, num_heads, attn_type, shift=i % 2 == 1, drop_path=drop_path[i], **block_kwargs)
            for i in range(depth)
        )
        self.downsample = PatchMerging(dim) if downsample else None

    def forward_with_feature(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(the blocks' output: this stage's feature map, the merged map the next stage takes)``."""
        for blk in self.blocks:
            x = blk(x)
        return x, (x if self.downsample is None else self.downsample(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_feature(x)[1]


class FLattenSwinTransformer(StageBackbone):
    """FLatten-Swin backbone + classifier, built for the input size ``img_size`` (multiples of 32).

    ``window_size`` is the Swin stages' window; the linear stages always see their whole map.  Maps are
    channels-last; each of ``layers`` ends in the next stage's patch merging, so a stage's feature map is its
    blocks' output (as Swin's detection backbone takes it).
    """

    stages_path = "layers"
    channels_last = True
    size_tied = "its positional encodings, windows and shift masks are built for one grid"

    def __init__(
        self,
        img_size: int | tuple[int, int] = 224,
        patch_size: int = 4,
        in_chans: int = 3,
        num_classes: int = 1000,
        embed_dim: int = 96,
        depths: tuple[int, ...] = (2, 2, 6, 2),
        num_heads: tuple[int, ...] = (3, 6, 12, 24),
        window_size: int = 7,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.1,
        focusing_factor: int = 3,
        kernel_size: int = 5,
        attn_type: str = "LLSS",
    ) -> None:
        super().__init__()
        h, w = to_hw(img_size)
        num_layers = len(depths)
        if len(attn_type) != num_layers:
            raise ValueError(f"attn_type needs one of 'L'/'S' per stage, got {attn_type!r} for {num_layers}")
        self.img_size = (h, w)
        self.num_classes = num_classes
        self.num_features = embed_dim * 2 ** (num_layers - 1)
        widths = [embed_dim * 2**i for i in range(num_layers)]
        self.feature_info = stage_feature_info(widths, patch_size, "layers.{i}.blocks")
        self.patch_embed = PatchEmbed(
            (h, w), patch_size, in_chans, embed_dim, norm_layer=nn.LayerNorm, flatten=False, output_fmt="NHWC"
        )
        self.pos_drop = nn.Dropout(drop_rate)
        rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        self.layers = nn.ModuleList()
        for i, depth in enumerate(depths):
            start = sum(depths[:i])
            self.layers.append(
                BasicLayer(
                    embed_dim * 2**i,
                    (h // (patch_size * 2**i), w // (patch_size * 2**i)),
                    depth,
                    num_heads[i],
                    attn_type[i],
                    downsample=i < num_layers - 1,
                    drop_path=rates[start : start + depth],
                    window_size=window_size,
                    mlp_ratio=mlp_ratio,
                    qkv_bias=qkv_bias,
                    qk_scale=qk_scale,
                    drop=drop_rate,
                    attn_drop=attn_drop_rate,
                    focusing_factor=focusing_factor,
                    kernel_size=kernel_size,
                )
            )
        self.norm = nn.LayerNorm(self.num_features)
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        # As the official code: Linear and LayerNorm only (convs keep torch's init, scale/encoding stay zero).
        self.apply(init_linear_layernorm)

    def _stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.pos_drop(self.patch_embed(x))

    def _stage(self, i: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.layers[i].forward_with_feature(x)

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(1, 2))


# -- checkpoint adaptation ------------------------------------------------------------------------------------

_FIXED_BUFFERS = ("attn_mask", "relative_position_index")


def resize_positional_encoding(pe: torch.Tensor, dst: Grid) -> torch.Tensor:
    """Bicubic resize of a (1, h*w, C) encoding on its 2-D grid to ``dst`` (official load_pretrained's rule)."""
    src = saved_grid(pe.shape[1], dst, "a positional encoding")
    if src == dst:
        return pe
    grid = pe.float().transpose(1, 2).reshape(1, -1, *src)
    out = F.interpolate(grid, size=dst, mode="bicubic", align_corners=False)
    return out.flatten(2).transpose(1, 2).to(pe.dtype)


def resize_bias_table(table: torch.Tensor, window: int) -> torch.Tensor:
    """Bicubic resize of a ((2w-1)^2, heads) bias table to window ``window`` (official load_pretrained's rule)."""
    side, dst = math.isqrt(table.shape[0]), 2 * window - 1
    grid = table.float().T.reshape(1, -1, side, side)
    out = F.interpolate(grid, size=(dst, dst), mode="bicubic", align_corners=False)
    return out.reshape(-1, dst * dst).T.to(table.dtype)


def checkpoint_filter_fn(state_dict: dict[str, Any], model: nn.Module) -> dict[str, Any]:
    """Adapt an official (or our) state dict to ``model``'s geometry (see the module docstring)."""
    own = model.state_dict()
    out: dict[str, Any] = {}
    for key, value in state_dict.items():
        if key.endswith(_FIXED_BUFFERS):
            continue  # geometry, not weights: the model's own are put back below
        if key in own and value.shape != own[key].shape:
            owner = model.get_submodule(key.rsplit(".", 1)[0])
            if key.endswith(".positional_encoding"):
                value = resize_positional_encoding(value, owner.grid)
            elif key.endswith(".relative_position_bias_table"):
                value = resize_bias_table(value, owner.window_size)
        out[key] = value
    out.update({k: v for k, v in own.items() if k.endswith(_FIXED_BUFFERS)})
    return out


# -- entry points ---------------------------------------------------------------------------------------------


def _create(
    variant: str, depths: tuple[int, ...], drop_path_rate: float, pretrained: bool, **kwargs: Any
) -> FLattenSwinTransformer:
    # Official entry kwargs (cfgs/flatten_swin_{t,s}.yaml via models/build.py), overridable by the caller.
    cfg: dict[str, Any] = dict(
        embed_dim=96,
        depths=depths,
        num_heads=(3, 6, 12, 24),
        window_size=7,
        mlp_ratio=4.0,
        qkv_bias=True,
        drop_path_rate=drop_path_rate,
        focusing_factor=3,
        kernel_size=5,
        attn_type="LLSS",
    )
    return build(FLattenSwinTransformer, variant, pretrained, filter_fn=checkpoint_filter_fn, **{**cfg, **kwargs})


# Generated from the records in vmibench.catalog.flatten (eval settings live there only).
default_cfgs = cfgs_from_records(__name__)


@register_model
def flatten_swin_t(pretrained: bool = False, **kwargs: Any) -> FLattenSwinTransformer:
    """FLatten-Swin-T: depths 2-2-6-2, width 96, stochastic depth 0.2."""
    return _create("flatten_swin_t", (2, 2, 6, 2), 0.2, pretrained, **kwargs)


@register_model
def flatten_swin_s(pretrained: bool = False, **kwargs: Any) -> FLattenSwinTransformer:
    """FLatten-Swin-S: depths 2-2-18-2, width 96, stochastic depth 0.3."""
    return _create("flatten_swin_s", (2, 2, 18, 2), 0.3, pretrained, **kwargs)
