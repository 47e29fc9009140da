"""EfficientVMamba (arXiv 2403.09977), our implementation of TerryPei/EfficientVMamba ``vmamba_efficient.py``.

The network the official builder (``build_vssm_model`` -> ``EfficientVSSM``) really constructs:

* stem: 4x4 stride-4 conv, then LayerNorm; feature maps stay channels-last (B, H, W, C) between stages;
* stages 1-2: EVSS blocks  ``x + DropPath(se(SSM(LN x)) + se(ConvBranch(LN x)))``, with one channel gate
  ``se`` (LayerNorm -> global mean -> MLP -> sigmoid) shared by both branches;
* the SSM is ES2D, the atrous selective scan: the map is cut into its four step-2 sub-grids (even/odd rows x
  even/odd columns), the two sub-grids on odd rows are read column-major, and each is one direction of a
  4-direction selective scan over (H/2)(W/2) tokens; outputs are put back on their own positions;
* stages 3-4: MobileNetV2 inverted residuals (expand 4, 3x3 depthwise, squeeze-excite 1/8, ReLU);
* PatchMerging2D between stages; LayerNorm, average pool and linear head.

**What the code does, not what the config says:** ``EfficientVSSM`` hands ``d_state``/``dt_rank`` to
``VSSM._make_layer`` under names it does not read, so every SSM has d_state 16 and dt_rank ceil(C/16)
whatever the yaml holds; the yaml's WINDOWSIZE is dropped the same way (the step stays the default 2).

Resolutions: no weight depends on the input size.  Where a grid entering the atrous scan or a patch merge is
odd the official code pads it with zeros at the bottom/right (and crops after merging); we do the same.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import DropPath
from timm.models import register_model

from vmibench.modeling import StageBackbone, build, cfgs_from_records, init_linear_layernorm, stage_feature_info, to_hw
from vmibench.ops import dt_bias_init, s4d_real_log_a, selective_scan

# The four sub-grids in the official scan order: (row parity, column parity, read column-major).
_SUBGRIDS = ((0, 0, False), (1, 0, True), (0, 1, False), (1, 1, True))


def atrous_partition(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, 4, C, ceil(H/2) * ceil(W/2)): the four step-2 sub-grids as token sequences."""
    b, c, h, w = x.shape
    x = F.pad(x, (0, w % 2, 0, h % 2))
    hh, wh = x.shape[2] // 2, x.shape[3] // 2
    grid = x.reshape(b, c, hh, 2, wh, 2)
    seqs = []
    for row, col, column_major in _SUBGRIDS:
        sub = grid[:, :, :, row, :, col]
        seqs.append((sub.transpose(2, 3) if column_major else sub).flatten(2))
    return torch.stack(seqs, dim=1)


def atrous_merge(ys: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`atrous_partition`: (B, 4, C, L') -> (B, C, h, w), dropping any padding."""
    b, _, c, _ = ys.shape
    hh, wh = (h + 1) // 2, (w + 1) // 2
    subs = {}
    for k, (row, col, column_major) in enumerate(_SUBGRIDS):
        sub = ys[:, k].reshape(b, c, wh, hh).transpose(2, 3) if column_major else ys[:, k].reshape(b, c, hh, wh)
        subs[row, col] = sub
    even_rows = torch.stack([subs[0, 0], subs[0, 1]], dim=-1)  # (B, C, hh, wh, column parity)
    odd_rows = torch.stack([subs[1, 0], subs[1, 1]], dim=-1)
    y = torch.stack([even_rows, odd_rows], dim=3).reshape(b, c, 2 * hh, 2 * wh)
    return y[:, :, :h, :w]


class ToChannelsFirst(nn.Module):
    """(B, H, W, C) -> (B, C, H, W); a parameter-free slot that keeps the official Sequential indices."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 3, 1, 2)


class ToChannelsLast(nn.Module):
    """(B, C, H, W) -> (B, H, W, C)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 2, 3, 1)


class PatchMerging2D(nn.Module):
    """2x2 space-to-depth (channels-last), LayerNorm over 4C, then a linear map to ``out_dim``."""

    def __init__(self, dim: int, out_dim: int) -> None:
        super().__init__()
        self.reduction = nn.Linear(4 * dim, out_dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[1], x.shape[2]
        x = F.pad(x, (0, 0, 0, w % 2, 0, h % 2))
        # Concatenation order of the released weights: (even, even), (odd, even), (even, odd), (odd, odd).
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
        return self.reduction(self.norm(x))


class AtrousSS2D(nn.Module):
    """Mamba mixer with the atrous 4-direction scan (ES2D); channels-last in and out."""

    def __init__(self, dim: int, d_state: int = 16, ssm_ratio: float = 2.0, k: int = 4) -> None:
        super().__init__()
        inner = int(ssm_ratio * dim)
        self.d_state = d_state
        self.dt_rank = math.ceil(dim / 16)
        self.k = k
        # Parameters per direction are stacked, as the official module stores them.
        self.x_proj_weight = nn.Parameter(torch.empty(k, self.dt_rank + 2 * d_state, inner))
        self.dt_projs_weight = nn.Parameter(torch.empty(k, inner, self.dt_rank))
        self.dt_projs_bias = nn.Parameter(torch.empty(k, inner))
        self.A_logs = nn.Parameter(torch.empty(k * inner, d_state))
        self.Ds = nn.Parameter(torch.empty(k * inner))
        self.out_norm = nn.LayerNorm(inner)
        self.in_proj = nn.Linear(dim, 2 * inner, bias=False)
        self.act = nn.SiLU()
        self.conv2d = nn.Conv2d(inner, inner, 3, padding=1, groups=inner)
        self.out_proj = nn.Linear(inner, dim, bias=False)
        self.reset_ssm_parameters()

    @torch.no_grad()
    def reset_ssm_parameters(self, dt_min: float = 1e-3, dt_max: float = 0.1, dt_floor: float = 1e-4) -> None:
        """Mamba's S6 init: S4D-real A, unit D, dt bias so that softplus(bias) is log-uniform in [dt_min, dt_max]."""
        inner = self.dt_projs_weight.shape[1]
        bound = 1 / math.sqrt(inner)  # nn.Linear's default range, which the official stacked weights keep
        nn.init.uniform_(self.x_proj_weight, -bound, bound)
        nn.init.uniform_(self.dt_projs_weight, -(self.dt_rank**-0.5), self.dt_rank**-0.5)
        self.dt_projs_bias.copy_(dt_bias_init(self.k, inner, dt_min=dt_min, dt_max=dt_max, floor=dt_floor))
        self.A_logs.copy_(s4d_real_log_a(self.A_logs.shape[0], self.d_state))
        self.Ds.fill_(1.0)

    def scan(self, x: torch.Tensor) -> torch.Tensor:
        """(B, D, H, W) -> (B, H, W, D): ES2D over the four sub-grids, then the output LayerNorm."""
        b, d, h, w = x.shape
        xs = atrous_partition(x)
        length = xs.shape[-1]
        x_dbl = torch.einsum("bkdl,kcd->bkcl", xs, self.x_proj_weight)
        dts, bs, cs = torch.split(x_dbl, [self.dt_rank, self.d_state, self.d_state], dim=2)
        dts = torch.einsum("bkrl,kdr->bkdl", dts, self.dt_projs_weight)
        ys = selective_scan(
            xs.reshape(b, -1, length).float(),
            dts.reshape(b, -1, length).float(),
            -torch.exp(self.A_logs.float()),
            bs.float(),
            cs.float(),
            self.Ds.float(),
            delta_bias=self.dt_projs_bias.reshape(-1).float(),
            delta_softplus=True,
        )
        y = atrous_merge(ys.view(b, self.k, d, length), h, w)
        return self.out_norm(y.permute(0, 2, 3, 1)).to(x.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, z = self.in_proj(x).chunk(2, dim=-1)
        x = self.act(self.conv2d(x.permute(0, 3, 1, 2).contiguous()))
        return self.out_proj(self.scan(x) * self.act(z))


class BiAttn(nn.Module):
    """Channel gate from the LayerNorm-ed global mean (the official ``se`` of an EVSS block)."""

    def __init__(self, dim: int, ratio: float = 0.125) -> None:
        super().__init__()
        hidden = int(dim * ratio)
        self.norm = nn.LayerNorm(dim)
        self.global_reduce = nn.Linear(dim, hidden)
        self.act_fn = nn.GELU()
        self.channel_select = nn.Linear(hidden, dim)
        self.gate_fn = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ctx = self.norm(x).mean(dim=(1, 2), keepdim=True)
        return x * self.gate_fn(self.channel_select(self.act_fn(self.global_reduce(ctx))))


class EVSSBlock(nn.Module):
    """Efficient VSS block: atrous-SSM branch and depthwise-conv branch, both gated by the same ``se``."""

    def __init__(self, dim: int, drop_path: float = 0.0, d_state: int = 16, ssm_ratio: float = 2.0) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.op = AtrousSS2D(dim, d_state, ssm_ratio)
        self.conv_branch = nn.Sequential(
            nn.Conv2d(dim, dim, 3, padding=1, groups=dim),
            nn.BatchNorm2d(dim),
            nn.GELU(),
            nn.Conv2d(dim, dim, 1),
        )
        self.se = BiAttn(dim)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = self.norm(x)
        local = self.conv_branch(u.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return x + self.drop_path(self.se(self.op(u)) + self.se(local))


class SqueezeExcite(nn.Module):
    """SE on a channels-first map: pool, 1x1 reduce, ReLU, 1x1 expand, sigmoid gate."""

    def __init__(self, channels: int, reduced: int) -> None:
        super().__init__()
        self.avgp = nn.AdaptiveAvgPool2d(1)
        self.conv_reduce = nn.Conv2d(channels, reduced, 1)
        self.act_fn = nn.ReLU()
        self.conv_expand = nn.Conv2d(reduced, channels, 1)
        self.gate_fn = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate_fn(self.conv_expand(self.act_fn(self.conv_reduce(self.avgp(x)))))


def _conv_bn(cin: int, cout: int, k: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, padding=(k - 1) // 2, groups=groups, bias=False)]
    layers.append(nn.BatchNorm2d(cout))
    if act:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    """MobileNetV2 block as the official stages 3-4 use it: stride 1, same width, so always residual."""

    def __init__(self, dim: int, expand_ratio: int = 4, se_ratio: float = 0.125, drop_path: float = 0.0) -> None:
        super().__init__()
        mid = dim * expand_ratio
        self.conv_pw = _conv_bn(dim, mid)
        self.conv_dw = _conv_bn(mid, mid, 3, groups=mid)
        self.se = SqueezeExcite(mid, max(1, int(mid * se_ratio)))
        self.conv_pw2 = _conv_bn(mid, dim, act=False)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop_path(self.conv_pw2(self.se(self.conv_dw(self.conv_pw(x)))))


class EfficientVSSM(StageBackbone):
    """EfficientVMamba classifier; ``img_size`` is recorded only (no weight depends on it).

    Features are channels-last between stages, and each of ``layers`` ends in the next stage's patch merging,
    so a stage's feature map is the output before it.
    """

    stages_path = "layers"
    norm_path = "classifier.norm"
    head_path = "classifier.head"
    channels_last = True

    def __init__(
        self,
        dims: int | tuple[int, ...] = 48,
        depths: tuple[int, ...] = (2, 2, 4, 2),
        d_state: int = 16,
        ssm_ratio: float = 2.0,
        img_size: int | tuple[int, int] = 224,
        drop_path_rate: float = 0.0,
        num_classes: int = 1000,
        in_chans: int = 3,
    ) -> None:
        super().__init__()
        self.img_size = to_hw(img_size)
        widths = [dims * 2**i for i in range(len(depths))] if isinstance(dims, int) else list(dims)
        self.num_classes = num_classes
        self.num_features = widths[-1]
        self.feature_info = stage_feature_info(widths, 4, "layers.{i}")
        self.patch_embed = nn.Sequential(
            nn.Conv2d(in_chans, widths[0], 4, stride=4), ToChannelsLast(), nn.LayerNorm(widths[0])
        )
        rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        self.layers = nn.ModuleList()
        for i in range(len(depths)):
            dpr = rates[sum(depths[:i]) : sum(depths[: i + 1])]
            last = i == len(depths) - 1
            down: nn.Module = nn.Identity() if last else PatchMerging2D(widths[i], widths[i + 1])
            if i < 2:
                blocks = nn.Sequential(*(EVSSBlock(widths[i], r, d_state, ssm_ratio) for r in dpr))
                self.layers.append(nn.Sequential(OrderedDict(blocks=blocks, downsample=down)))
            else:
                convs = [InvertedResidual(widths[i], drop_path=r) for r in dpr]
                self.layers.append(nn.Sequential(ToChannelsFirst(), *convs, ToChannelsLast(), down))
        self.classifier = nn.Sequential(
            OrderedDict(
                norm=nn.LayerNorm(self.num_features),
                permute=ToChannelsFirst(),
                avgpool=nn.AdaptiveAvgPool2d(1),
                flatten=nn.Flatten(1),
                head=nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity(),
            )
        )
        # As the official code: Linear and LayerNorm only; convs and BatchNorms keep torch's init.
        self.apply(init_linear_layernorm)

    def _stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.patch_embed(x)

    def _stage(self, i: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        *body, down = self.layers[i].children()  # (blocks, downsample) or (to-NCHW, convs..., to-NHWC, merge)
        for module in body:
            x = module(x)
        return x, down(x)

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        c = self.classifier
        return c.flatten(c.avgpool(c.permute(x)))


# Older VMamba-era names that VSSM._load_from_state_dict maps before loading (prefix -> new prefix).
_LEGACY_PREFIXES = (("patch_embed.proj", "patch_embed.0"), ("patch_embed.norm", "patch_embed.2"))
_LEGACY_BLOCK_PARTS = ((".ln_1", ".norm"), (".self_attention", ".op"))
_LEGACY_TOP = (("norm", "classifier.norm"), ("head", "classifier.head"))


def _rename_legacy(key: str) -> str:
    for old, new in _LEGACY_PREFIXES:
        if key.startswith(old):
            return new + key[len(old) :]
    parts = key.split(".")
    if len(parts) > 4 and parts[0] == "layers" and parts[2] == "blocks":
        block = ".".join(parts[:4])
        rest = "." + ".".join(parts[4:])
        for old, new in _LEGACY_BLOCK_PARTS:
            if rest.startswith(old):
                return block + new + rest[len(old) :]
    for old, new in _LEGACY_TOP:
        if key.startswith(old):
            return new + key[len(old) :]
    return key


def checkpoint_filter_fn(state_dict: dict[str, Any], model: nn.Module) -> dict[str, Any]:
    """Map legacy key names as the official loader does; no tensor depends on the input resolution."""
    del model  # nothing is rebuilt per resolution
    return {_rename_legacy(k): v for k, v in state_dict.items()}


def _create(variant: str, dims: int, pretrained: bool, **kwargs: Any) -> EfficientVSSM:
    kwargs.setdefault("drop_path_rate", 0.2)  # the official yaml's DROP_PATH_RATE (training only)
    arch = dict(dims=dims, depths=(2, 2, 4, 2))
    return build(EfficientVSSM, variant, pretrained, filter_fn=checkpoint_filter_fn, **{**arch, **kwargs})


# Generated from the records in vmibench.catalog.effvmamba (eval settings live there only).
default_cfgs = cfgs_from_records(__name__)


@register_model
def effvmamba_t(pretrained: bool = False, **kwargs: Any) -> EfficientVSSM:
    """EfficientVMamba-T: widths 48-96-192-384, depths 2-2-4-2."""
    return _create("effvmamba_t", 48, pretrained, **kwargs)


@register_model
def effvmamba_s(pretrained: bool = False, **kwargs: Any) -> EfficientVSSM:
    """EfficientVMamba-S as trained (see its record's reconstruction note): widths 64-128-256-512, depths 2-2-4-2."""
    return _create("effvmamba_s", 64, pretrained, **kwargs)
