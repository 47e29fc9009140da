"""Vision Mamba (Vim, arXiv 2401.09417): our implementation of hustvl/Vim's middle-cls-token bimamba-v2 nets.

Registered as ``vim_t`` / ``vim_s``, the released
``vim_{tiny,small}_patch16_224_bimambav2_final_pool_mean_abs_pos_embed_with_midclstok_div2`` configs.  Module
names and shapes follow ``vim/models_mamba.py`` and ``mamba-1p1p1/mamba_ssm/modules/mamba_simple.py`` so the
released checkpoints load strictly.

The network is a plain token sequence, ViT style, without MLPs:

    tokens = patches[:M//2] + [cls] + patches[M//2:]  (+ absolute position embedding)
    for each layer:  residual = residual + h (fp32);  h = BiMambaV2(RMSNorm(residual))
    logits = head(RMSNorm(residual + h)[:, M//2])

Each bimamba-v2 mixer shares one ``in_proj`` between two directions; the backward direction has its own
causal conv, ``x_proj``, ``dt_proj``, ``A_b_log`` and ``D_b`` and runs on the time-reversed sequence.  Each
direction is one selective scan with SiLU(z) gating, D skip, ``delta_bias`` and softplus (what the official
``mamba_inner_fn_no_out_proj`` feeds its CUDA scan); the two outputs are averaged before ``out_proj``.

The official fused kernels (Triton add+RMSNorm, ``causal_conv1d``, the CUDA scan) are replaced by plain
torch with the same semantics: the residual stream is added and kept in fp32, the norm is computed in fp32 and
cast back to the input dtype, and the causal conv is the official non-fused path (padded depthwise conv,
truncated to the sequence length).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import DropPath, lecun_normal_, trunc_normal_
from timm.models import register_model
from torch.utils.checkpoint import checkpoint

from vmibench.errors import CheckpointError
from vmibench.modeling import build, cfgs_from_records, check_input_size, saved_grid, take_indices, to_hw
from vmibench.ops import dt_bias_init, s4d_real_log_a, selective_scan

# Layers the official segmentation backbone (Vim seg configs, out_indices) hands to its decoder.
SEG_OUT_INDICES = (5, 11, 17, 23)


class RMSNorm(nn.Module):
    """RMSNorm with the fused add-norm of mamba-ssm's Triton ``rms_norm_fn`` (parameter ``weight`` only)."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def _normalize(self, x: torch.Tensor, out_dtype: torch.dtype) -> torch.Tensor:
        # The kernel normalises in fp32 whatever the storage dtype and writes the output in the input's dtype.
        x = x.float()
        y = x * torch.rsqrt(x.square().mean(dim=-1, keepdim=True) + self.eps) * self.weight.float()
        return y.to(out_dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._normalize(x, x.dtype)

    def add_norm(
        self, x: torch.Tensor, residual: torch.Tensor | None, residual_in_fp32: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(norm(x + residual), x + residual)``; the new residual is fp32 if asked or if ``residual`` is."""
        if residual is None:
            residual = x.float() if residual_in_fp32 else x
        else:
            # The sum is formed in fp32 and stored in the residual's dtype, as the kernel does.
            residual = (x.float() + residual.float()).to(residual.dtype)
        return self._normalize(residual, x.dtype), residual


class PatchEmbed(nn.Module):
    """Non-overlapping 16x16 patches -> tokens (B, M, C), built for one input size."""

    def __init__(self, img_size: tuple[int, int], patch_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.img_size = img_size
        self.grid_size = (img_size[0] // patch_size, img_size[1] // patch_size)
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class BiMambaV2(nn.Module):
    """Mamba mixer, bimamba v2: shared ``in_proj``, a second conv/projections/SSM set for reversed time."""

    def __init__(
        self,
        d_model: int,
        d_state: int = 16,
        d_conv: int = 4,
        expand: int = 2,
        dt_rank: int | str = "auto",
        divide_out: bool = True,
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        dt_init_floor: float = 1e-4,
    ) -> None:
        super().__init__()
        self.d_inner = expand * d_model
        self.d_state = d_state
        self.dt_rank = math.ceil(d_model / 16) if dt_rank == "auto" else int(dt_rank)
        self.divide_out = divide_out
        di = self.d_inner

        self.in_proj = nn.Linear(d_model, 2 * di, bias=False)
        self.conv1d = self._causal_conv(di, d_conv)
        self.x_proj = nn.Linear(di, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, di)
        self.A_log = nn.Parameter(s4d_real_log_a(di, d_state))
        self.D = nn.Parameter(torch.ones(di))
        self.A_b_log = nn.Parameter(s4d_real_log_a(di, d_state))
        self.conv1d_b = self._causal_conv(di, d_conv)
        self.x_proj_b = nn.Linear(di, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj_b = nn.Linear(self.dt_rank, di)
        self.D_b = nn.Parameter(torch.ones(di))
        self.out_proj = nn.Linear(di, d_model, bias=False)
        self._init_dt(dt_min, dt_max, dt_init_floor)

    @staticmethod
    def _causal_conv(channels: int, k: int) -> nn.Conv1d:
        # Padded on both sides; forward keeps the first L outputs, i.e. each sees only itself and the past.
        return nn.Conv1d(channels, channels, k, groups=channels, padding=k - 1)

    @torch.no_grad()
    def _init_dt(self, dt_min: float, dt_max: float, floor: float) -> None:
        # Official: only the forward dt_proj gets the special init; dt_proj_b keeps nn.Linear's weight init
        # and its bias is zeroed by the model-wide init (it is not marked _no_reinit).  Kept for training.
        bound = self.dt_rank**-0.5
        self.dt_proj.weight.uniform_(-bound, bound)
        self.dt_proj.bias.copy_(dt_bias_init(self.d_inner, dt_min=dt_min, dt_max=dt_max, floor=floor))
        self.dt_proj.bias._no_reinit = True  # type: ignore[attr-defined]

    def _direction(
        self,
        xz: torch.Tensor,
        conv: nn.Conv1d,
        x_proj: nn.Linear,
        dt_proj: nn.Linear,
        a_log: torch.Tensor,
        d: torch.Tensor,
    ) -> torch.Tensor:
        """One direction of ``mamba_inner_fn_no_out_proj``: conv+SiLU, projections, gated scan."""
        length = xz.shape[-1]
        x, z = xz.chunk(2, dim=1)
        x = F.silu(conv(x)[..., :length])
        dt, b, c = torch.split(x_proj(x.transpose(1, 2)), [self.dt_rank, self.d_state, self.d_state], dim=-1)
        # dt_proj's bias is not added here: the scan adds it as delta_bias before its softplus.
        delta = F.linear(dt, dt_proj.weight).transpose(1, 2)
        return selective_scan(
            x,
            delta,
            -torch.exp(a_log.float()),
            b.transpose(1, 2),
            c.transpose(1, 2),
            D=d.float(),
            z=z,
            delta_bias=dt_proj.bias.float(),
            delta_softplus=True,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xz = self.in_proj(x).transpose(1, 2)  # (B, 2*Di, L)
        y = self._direction(xz, self.conv1d, self.x_proj, self.dt_proj, self.A_log, self.D)
        # Backward direction: same xz reversed in time, its own parameters, result reversed back.
        y_b = self._direction(xz.flip(-1), self.conv1d_b, self.x_proj_b, self.dt_proj_b, self.A_b_log, self.D_b)
        y = y + y_b.flip(-1)
        if self.divide_out:
            y = y / 2
        return self.out_proj(y.transpose(1, 2))


class Block(nn.Module):
    """Add -> RMSNorm -> mixer; returns the mixer output and the (fp32) residual stream separately."""

    def __init__(self, dim: int, mixer: nn.Module, drop_path: float, norm_eps: float, residual_in_fp32: bool) -> None:
        super().__init__()
        self.residual_in_fp32 = residual_in_fp32
        self.mixer = mixer
        self.norm = RMSNorm(dim, norm_eps)
        # Drops the incoming branch, i.e. the previous layer's mixer output, as the official Block does.
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, hidden: torch.Tensor, residual: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        if residual is not None:
            hidden = self.drop_path(hidden)
        hidden, residual = self.norm.add_norm(hidden, residual, self.residual_in_fp32)
        return self.mixer(hidden), residual


class VisionMamba(nn.Module):
    """Vim with a middle cls token, absolute pos-embed and bimamba-v2 mixers; ``img_size`` fixes the grid."""

    def __init__(
        self,
        img_size: int | tuple[int, int] = 224,
        patch_size: int = 16,
        embed_dim: int = 192,
        depth: int = 24,
        d_state: int = 16,
        d_conv: int = 4,
        expand: int = 2,
        in_chans: int = 3,
        num_classes: int = 1000,
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.1,
        norm_eps: float = 1e-5,
        residual_in_fp32: bool = True,
        if_divide_out: bool = True,
    ) -> None:
        super().__init__()
        h, w = to_hw(img_size)
        if h % patch_size or w % patch_size:
            raise ValueError(f"Vim needs sizes divisible by {patch_size}, got {h}x{w}")
        self.img_size = (h, w)
        self.num_classes = num_classes
        self.num_features = self.head_hidden_size = self.embed_dim = embed_dim
        self.residual_in_fp32 = residual_in_fp32
        self.global_pool = "token"  # the middle cls token
        self.grad_checkpointing = False
        self.feature_info = [
            {"num_chs": embed_dim, "reduction": patch_size, "module": f"layers.{i}"} for i in range(depth)
        ]

        self.patch_embed = PatchEmbed((h, w), patch_size, in_chans, embed_dim)
        num_patches = self.patch_embed.num_patches
        self.cls_index = num_patches // 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches + 1, embed_dim))
        self.pos_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()

        # Layer i drops layer i-1's output with rate dpr[i-1]; the last rate goes to the final add-norm.
        dpr = [0.0, *torch.linspace(0, drop_path_rate, depth).tolist()]
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()
        self.layers = nn.ModuleList(
            Block(
                embed_dim,
                BiMambaV2(embed_dim, d_state, d_conv, expand, divide_out=if_divide_out),
                dpr[i],
                norm_eps,
                residual_in_fp32,
            )
            for i in range(depth)
        )
        self.norm_f = RMSNorm(embed_dim, norm_eps)
        self._init_weights(depth)

    def _init_weights(self, depth: int) -> None:
        lecun_normal_(self.patch_embed.proj.weight)
        nn.init.zeros_(self.patch_embed.proj.bias)
        if isinstance(self.head, nn.Linear):
            trunc_normal_(self.head.weight, std=0.02)
        trunc_normal_(self.pos_embed, std=0.02)
        trunc_normal_(self.cls_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear) and m.bias is not None and not getattr(m.bias, "_no_reinit", False):
                nn.init.zeros_(m.bias)
            if isinstance(m, BiMambaV2):
                # GPT-2 style: residual-branch output projections scaled by 1/sqrt(depth).
                nn.init.kaiming_uniform_(m.out_proj.weight, a=math.sqrt(5))
                with torch.no_grad():
                    m.out_proj.weight /= math.sqrt(depth)

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        return {"pos_embed", "cls_token"}

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """New classifier (0: none); ``global_pool`` is ``"token"`` (the middle cls token) or ``""`` (all tokens)."""
        if global_pool is not None:
            if global_pool not in ("token", ""):
                raise ValueError(f"global_pool must be 'token' or '', got {global_pool!r}")
            self.global_pool = global_pool
        self.num_classes = num_classes
        self.head = nn.Linear(self.embed_dim, num_classes) if num_classes > 0 else nn.Identity()

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        # The pos-embed length is tied to the grid, so a different input size needs a rebuilt model.
        check_input_size(self, x, "its position embedding has one entry per patch of the built grid")
        x = self.patch_embed(x)
        i = self.cls_index
        x = torch.cat((x[:, :i], self.cls_token.expand(x.shape[0], -1, -1), x[:, i:]), dim=1)
        return self.pos_drop(x + self.pos_embed)

    def _layer(
        self, layer: nn.Module, hidden: torch.Tensor, residual: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.grad_checkpointing and torch.is_grad_enabled():
            return checkpoint(layer, hidden, residual, use_reentrant=False)  # type: ignore[return-value]
        return layer(hidden, residual)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised token sequence (B, M+1, C), cls token at index ``cls_index``."""
        hidden, residual = self._embed(x), None
        for layer in self.layers:
            hidden, residual = self._layer(layer, hidden, residual)
        return self.norm_f.add_norm(self.drop_path(hidden), residual, self.residual_in_fp32)[0]

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if self.global_pool == "token":
            x = x[:, self.cls_index]
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def _patch_map(self, tokens: torch.Tensor, output_fmt: str) -> torch.Tensor:
        """(B, M+1, C) with the cls token -> the patch grid, (B, C, H/16, W/16) or (B, H/16, W/16, C)."""
        i = self.cls_index
        patches = torch.cat((tokens[:, :i], tokens[:, i + 1 :]), dim=1)
        grid = patches.reshape(tokens.shape[0], *self.patch_embed.grid_size, -1)
        return grid if output_fmt == "NHWC" else grid.permute(0, 3, 1, 2)

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | list[int] | tuple[int, ...] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """Patch-grid maps of the residual stream after the chosen layers (timm's ViT convention: ``indices`` =
        last n (int), these (sequence) or all (None); ``norm`` applies the final RMSNorm to each; the cls token
        is dropped).  Returns the list, or ``(final token sequence, list)``."""
        if output_fmt not in ("NCHW", "NHWC"):
            raise ValueError(f"output_fmt must be 'NCHW' or 'NHWC', got {output_fmt!r}")
        take, max_index = take_indices(len(self.layers), indices)
        layers = self.layers[: max_index + 1] if stop_early else self.layers
        hidden, residual = self._embed(x), None
        out: list[torch.Tensor] = []
        for i, layer in enumerate(layers):
            hidden, residual = self._layer(layer, hidden, residual)
            if i in take:
                stream = (hidden.float() + residual.float()).to(hidden.dtype)
                out.append(self._patch_map(self.norm_f(stream) if norm else stream, output_fmt))
        if intermediates_only:
            return out
        return self.norm_f.add_norm(self.drop_path(hidden), residual, self.residual_in_fp32)[0], out

    def prune_intermediate_layers(
        self, indices: int | list[int] | tuple[int, ...] = 1, prune_norm: bool = False, prune_head: bool = True
    ) -> list[int]:
        """Drop the layers after the last one ``indices`` needs (and the head if asked).  The final RMSNorm is
        kept whatever ``prune_norm`` says: it is part of the official add-norm and holds only C weights."""
        del prune_norm
        take, max_index = take_indices(len(self.layers), indices)
        self.layers = self.layers[: max_index + 1]
        if prune_head:
            self.reset_classifier(0, "")
        return take


def resize_pos_embed(pos_embed: torch.Tensor, dst: tuple[int, int]) -> torch.Tensor:
    """(1, M+1, C), cls at M//2 -> (1, M'+1, C) for grid ``dst``, cls at M'//2 (patches resized bicubic)."""
    num_src = pos_embed.shape[1] - 1
    src = saved_grid(num_src, dst, "a pos_embed")
    if src == dst:
        return pos_embed
    i_src, i_dst = num_src // 2, dst[0] * dst[1] // 2
    cls = pos_embed[:, i_src : i_src + 1]
    patches = torch.cat((pos_embed[:, :i_src], pos_embed[:, i_src + 1 :]), dim=1)
    grid = patches.reshape(1, *src, -1).permute(0, 3, 1, 2).float()
    grid = F.interpolate(grid, size=dst, mode="bicubic", align_corners=False)
    patches = grid.permute(0, 2, 3, 1).flatten(1, 2).to(pos_embed.dtype)
    return torch.cat((patches[:, :i_dst], cls, patches[:, i_dst:]), dim=1)


def checkpoint_filter_fn(state_dict: dict[str, Any], model: nn.Module) -> dict[str, Any]:
    """Fit a saved ``pos_embed`` to the model's patch grid (see :func:`resize_pos_embed`)."""
    assert isinstance(model, VisionMamba)
    pos_embed = state_dict.get("pos_embed")
    if pos_embed is not None and pos_embed.shape != model.pos_embed.shape:
        if pos_embed.shape[-1] != model.embed_dim:
            raise CheckpointError(
                f"pos_embed width {pos_embed.shape[-1]} does not match the model's {model.embed_dim}: "
                "is it the right Vim variant?"
            )
        state_dict["pos_embed"] = resize_pos_embed(pos_embed, model.patch_embed.grid_size)
    return state_dict


def _create(variant: str, embed_dim: int, pretrained: bool, **kwargs: Any) -> VisionMamba:
    feature_cfg = {"out_indices": SEG_OUT_INDICES, "feature_cls": "getter"}
    arch = dict(patch_size=16, embed_dim=embed_dim, depth=24)
    return build(
        VisionMamba, variant, pretrained, filter_fn=checkpoint_filter_fn, feature_cfg=feature_cfg, **{**arch, **kwargs}
    )


# Generated from the records in vmibench.catalog.vim (eval settings live there only).
default_cfgs = cfgs_from_records(__name__)


@register_model
def vim_t(pretrained: bool = False, **kwargs: Any) -> VisionMamba:
    """Vim-Ti, width 192.

    Official name: vim_tiny_patch16_224_bimambav2_final_pool_mean_abs_pos_embed_with_midclstok_div2.
    """
    return _create("vim_t", 192, pretrained, **kwargs)


@register_model
def vim_s(pretrained: bool = False, **kwargs: Any) -> VisionMamba:
    """Vim-S, width 384.

    Official name: vim_small_patch16_224_bimambav2_final_pool_mean_abs_pos_embed_with_midclstok_div2.
    """
    return _create("vim_s", 384, pretrained, **kwargs)
