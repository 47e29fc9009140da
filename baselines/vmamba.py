"""VMamba (arXiv 2401.10166): our implementation of the released v2 classifiers (MzeroMiko/VMamba vmamba.py).

Module names and shapes follow the released ``VSSM`` so its checkpoints load strictly.  Only the configuration
the published VMamba-T [s1l8] and VMamba-S [s2l15] use is built: channel-first LayerNorm (``ln2d``) in all,
the two-conv stem (``patchembed v2``), 3x3 stride-2 conv down-samplers (``downsample v3``) and the SS2D mixer
with ``forward_type="v05_noz"``.  In the released code that string means:

* ``_noz``: no gate branch -- ``in_proj`` maps d_model -> d_inner only and no output is multiplied by z;
* no ``_oact`` suffix: no activation after the scan; no out-norm suffix: ``out_norm`` is a channel-first
  LayerNorm over d_inner;
* ``v05``: the core runs in the input dtype (no fp32 forcing), its per-direction projections are grouped 1-D
  convolutions (``no_einsum``) over the stacked ``x_proj_weight`` (K, R+2N, d_inner) and ``dt_projs_weight``
  (K, d_inner, R); the scan takes ``dt_projs_bias`` as delta bias with softplus, returns fp32, and
  ``out_norm`` sees that fp32 result before it is cast back;
* ``ssm_conv=3``: a depthwise 3x3 conv and SiLU sit between ``in_proj`` and the scan.

The scan is the four-direction cross-scan (row-major, column-major, and both reversed) fed to one
:func:`vmibench.ops.selective_scan` call with u (B, 4*d_inner, L) and B/C grouped per direction (B, 4, N, L).
Apart from the scan the network is convolutional, so nothing depends on the build resolution unless the
optional (unused by these configs) absolute position embedding is switched on.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import DropPath, trunc_normal_
from timm.models import register_model

from vmibench.modeling import StageBackbone, build, cfgs_from_records, init_linear_layernorm, stage_feature_info, to_hw
from vmibench.ops import dt_bias_init, s4d_real_log_a, selective_scan

_K = 4  # scan directions


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channel axis of a (B, C, H, W) tensor."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class Linear2d(nn.Linear):
    """Per-pixel linear layer on (B, C, H, W) inputs; keeps a Linear-shaped weight, as released files do."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight[:, :, None, None], self.bias)


class Mlp(nn.Module):
    """Channel-first feed-forward: Linear2d -> GELU -> Linear2d."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = Linear2d(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = Linear2d(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


def cross_scan(x: torch.Tensor) -> torch.Tensor:
    """(B, D, H, W) -> (B, 4, D, H*W): row-major, column-major, then each of those reversed."""
    forward = torch.stack([x.flatten(2), x.transpose(2, 3).flatten(2)], dim=1)
    return torch.cat([forward, forward.flip(-1)], dim=1)


def cross_merge(ys: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Inverse layout of :func:`cross_scan`, summing the four directions: (B, 4, D, L) -> (B, D, H*W)."""
    b, _, d, length = ys.shape
    y = ys[:, :2] + ys[:, 2:].flip(-1)
    # the column-major sequence enumerates (w, h); put it back on the row-major grid before adding
    cols = y[:, 1].reshape(b, d, w, h).transpose(2, 3).reshape(b, d, length)
    return y[:, 0] + cols


class SS2D(nn.Module):
    """2-D selective-scan mixer, released ``forward_type="v05_noz"`` path (see module docstring)."""

    def __init__(
        self,
        d_model: int,
        d_state: int = 1,
        ssm_ratio: float = 1.0,
        dt_rank: int | str = "auto",
        d_conv: int = 3,
        conv_bias: bool = False,
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        dt_scale: float = 1.0,
        dt_init_floor: float = 1e-4,
    ) -> None:
        super().__init__()
        d_inner = int(ssm_ratio * d_model)
        rank = math.ceil(d_model / 16) if dt_rank == "auto" else int(dt_rank)
        self.d_inner, self.d_state, self.dt_rank = d_inner, d_state, rank
        # Parameters first, then sub-modules: this is the released state-dict order.
        self.x_proj_weight = nn.Parameter(torch.empty(_K, rank + 2 * d_state, d_inner))
        self.A_logs = nn.Parameter(torch.empty(_K * d_inner, d_state))
        self.Ds = nn.Parameter(torch.empty(_K * d_inner))
        self.dt_projs_weight = nn.Parameter(torch.empty(_K, d_inner, rank))
        self.dt_projs_bias = nn.Parameter(torch.empty(_K, d_inner))
        self.out_norm = LayerNorm2d(d_inner)
        self.in_proj = Linear2d(d_model, d_inner, bias=False)
        self.act = nn.SiLU()
        self.conv2d = (
            nn.Conv2d(d_inner, d_inner, d_conv, padding=(d_conv - 1) // 2, groups=d_inner, bias=conv_bias)
            if d_conv > 1
            else nn.Identity()
        )
        self.out_proj = Linear2d(d_inner, d_model, bias=False)
        self._init_ssm(dt_min, dt_max, dt_scale, dt_init_floor)

    @torch.no_grad()
    def _init_ssm(self, dt_min: float, dt_max: float, dt_scale: float, dt_init_floor: float) -> None:
        # Mamba's initialisation, per direction: x_proj like nn.Linear's default, dt weights uniform with
        # std ~ rank^-0.5, dt bias = softplus^-1 of a log-uniform step in [dt_min, dt_max], S4D-real A.
        nn.init.uniform_(self.x_proj_weight, -(self.d_inner**-0.5), self.d_inner**-0.5)
        bound = self.dt_rank**-0.5 * dt_scale
        nn.init.uniform_(self.dt_projs_weight, -bound, bound)
        self.dt_projs_bias.copy_(
            dt_bias_init(*self.dt_projs_bias.shape, dt_min=dt_min, dt_max=dt_max, floor=dt_init_floor)
        )
        self.A_logs.copy_(s4d_real_log_a(self.A_logs.shape[0], self.d_state))
        self.Ds.fill_(1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.conv2d(self.in_proj(x)))
        return self.out_proj(self.forward_core(x))

    def forward_core(self, x: torch.Tensor) -> torch.Tensor:
        """Cross-scan, per-direction projections, one grouped selective scan, cross-merge, out-norm."""
        b, d, h, w = x.shape
        length, n, r = h * w, self.d_state, self.dt_rank
        xs = cross_scan(x).reshape(b, _K * d, length)
        # Grouped 1-D convs apply each direction's own projection in one call (the released no-einsum form).
        x_dbl = F.conv1d(xs, self.x_proj_weight.reshape(-1, d, 1), groups=_K)
        dts, bs, cs = torch.split(x_dbl.reshape(b, _K, r + 2 * n, length), [r, n, n], dim=2)
        dts = F.conv1d(dts.reshape(b, _K * r, length), self.dt_projs_weight.reshape(_K * d, r, 1), groups=_K)
        ys = selective_scan(
            xs,
            dts,
            -self.A_logs.float().exp(),
            bs.contiguous(),
            cs.contiguous(),
            D=self.Ds.float(),
            delta_bias=self.dt_projs_bias.reshape(-1).float(),
            delta_softplus=True,
        )
        # The released kernel returns fp32 and normalises before casting back; keep that under autocast.
        y = cross_merge(ys.float().reshape(b, _K, d, length), h, w).reshape(b, d, h, w)
        return self.out_norm(y).to(x.dtype)


class VSSBlock(nn.Module):
    """Pre-norm residual block: x + SS2D(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, dim: int, drop_path: float, mlp_ratio: float, **ssm_kwargs: Any) -> None:
        super().__init__()
        self.norm = LayerNorm2d(dim)
        self.op = SS2D(dim, **ssm_kwargs)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = LayerNorm2d(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.op(self.norm(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


def _patch_embed(in_chans: int, dim: int) -> nn.Sequential:
    """Two 3x3 stride-2 convs (stride 4 in all); Identity slots keep the released indices 0/2/5/7."""
    half = dim // 2
    return nn.Sequential(
        nn.Conv2d(in_chans, half, 3, 2, 1),
        nn.Identity(),  # channel-last permute in the released code, unused channel-first
        LayerNorm2d(half),
        nn.Identity(),
        nn.GELU(),
        nn.Conv2d(half, dim, 3, 2, 1),
        nn.Identity(),
        LayerNorm2d(dim),
    )


def _downsample(dim: int, out_dim: int) -> nn.Sequential:
    """3x3 stride-2 conv + LayerNorm; the Identity slots keep the released indices 1/3."""
    return nn.Sequential(nn.Identity(), nn.Conv2d(dim, out_dim, 3, 2, 1), nn.Identity(), LayerNorm2d(out_dim))


class VSSM(StageBackbone):
    """VMamba classifier (channel-first ``ln2d`` / ``v05_noz`` / ``downsample v3`` / ``patchembed v2``).

    Each of ``layers`` ends in the next stage's down-sampler, so a stage's feature map is its blocks' output
    (as the official detection backbone takes it).
    """

    stages_path = "layers"
    norm_path = "classifier.norm"
    head_path = "classifier.head"

    def __init__(
        self,
        depths: tuple[int, ...] = (2, 2, 8, 2),
        dims: int = 96,
        ssm_d_state: int = 1,
        ssm_ratio: float = 1.0,
        ssm_dt_rank: int | str = "auto",
        ssm_conv: int = 3,
        ssm_conv_bias: bool = False,
        mlp_ratio: float = 4.0,
        drop_path_rate: float = 0.2,
        posembed: bool = False,
        img_size: int | tuple[int, int] = 224,
        num_classes: int = 1000,
        in_chans: int = 3,
    ) -> None:
        super().__init__()
        h, w = to_hw(img_size)
        self.img_size = (h, w)
        self.num_classes = num_classes
        widths = [dims * 2**i for i in range(len(depths))]
        self.num_features = widths[-1]
        self.feature_info = stage_feature_info(widths, 4, "layers.{i}.blocks")
        if posembed:
            self.size_tied = "its position embedding is built for one grid"
        # Released layout: (1, C, H/4, W/4), first in the state dict when present.
        self.pos_embed = nn.Parameter(torch.zeros(1, widths[0], h // 4, w // 4)) if posembed else None
        self.patch_embed = _patch_embed(in_chans, widths[0])
        rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        ssm_kwargs: dict[str, Any] = dict(
            d_state=ssm_d_state,
            ssm_ratio=ssm_ratio,
            dt_rank=ssm_dt_rank,
            d_conv=ssm_conv,
            conv_bias=ssm_conv_bias,
        )
        self.layers = nn.ModuleList()
        k = 0
        for i, depth in enumerate(depths):
            blocks = [VSSBlock(widths[i], rates[k + j], mlp_ratio, **ssm_kwargs) for j in range(depth)]
            down = _downsample(widths[i], widths[i + 1]) if i + 1 < len(depths) else nn.Identity()
            self.layers.append(nn.Sequential(OrderedDict(blocks=nn.Sequential(*blocks), downsample=down)))
            k += depth
        self.classifier = nn.Sequential(
            OrderedDict(
                norm=LayerNorm2d(self.num_features),
                avgpool=nn.AdaptiveAvgPool2d(1),
                flatten=nn.Flatten(1),
                head=nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity(),
            )
        )
        if self.pos_embed is not None:
            trunc_normal_(self.pos_embed, std=0.02)
        # As released: Linear(2d) and LayerNorm(2d) only; convs keep torch's init, SSM tensors SS2D's Mamba init.
        self.apply(init_linear_layernorm)

    def _stem(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        return x if self.pos_embed is None else x + self.pos_embed

    def _stage(self, i: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        layer = self.layers[i]
        feature = layer.blocks(x)
        return feature, layer.downsample(feature)

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier.flatten(self.classifier.avgpool(x))


def checkpoint_filter_fn(state_dict: dict[str, Any], model: nn.Module) -> dict[str, Any]:
    """Resize a saved ``pos_embed`` to the model's grid and accept 1x1-conv-shaped Linear2d weights.

    The released ``Linear2d`` loads (out, in, 1, 1) conv weights as well as (out, in) ones, and the released
    ``VSSM`` resizes ``pos_embed`` bicubically to its own grid when loading; both are reproduced here.
    """
    own = model.state_dict()
    for key, value in list(state_dict.items()):
        target = own.get(key)
        if target is None or value.shape == target.shape:
            continue
        if key == "pos_embed":
            resized = F.interpolate(value.float(), size=target.shape[2:], mode="bicubic", align_corners=False)
            state_dict[key] = resized.to(value.dtype)
        elif value.dim() == 4 and target.dim() == 2 and value.shape[2:] == (1, 1):
            state_dict[key] = value.reshape(target.shape)
    return state_dict


# Generated from the records in vmibench.catalog.vmamba (eval settings live there only).
default_cfgs = cfgs_from_records(__name__)


@register_model
def vmamba_t(pretrained: bool = False, **kwargs: Any) -> VSSM:
    """VMamba-T [s1l8] (configs/vssm/vmambav2v_tiny_224.yaml): depths 2-2-8-2, d_state 1, ssm_ratio 1."""
    cfg: dict[str, Any] = dict(depths=(2, 2, 8, 2), dims=96, ssm_d_state=1, ssm_ratio=1.0, drop_path_rate=0.2)
    return build(VSSM, "vmamba_t", pretrained, filter_fn=checkpoint_filter_fn, **{**cfg, **kwargs})


@register_model
def vmamba_s(pretrained: bool = False, **kwargs: Any) -> VSSM:
    """VMamba-S [s2l15] (configs/vssm/vmambav2_small_224.yaml): depths 2-2-15-2, d_state 1, ssm_ratio 2."""
    cfg: dict[str, Any] = dict(depths=(2, 2, 15, 2), dims=96, ssm_d_state=1, ssm_ratio=2.0, drop_path_rate=0.3)
    return build(VSSM, "vmamba_s", pretrained, filter_fn=checkpoint_filter_fn, **{**cfg, **kwargs})
