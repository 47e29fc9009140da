"""What every architecture file shares (ours and the rivals in ``vmibench.baselines``).

* :func:`build` -- an entry point's body: timm's ``build_model_with_cfg`` (so ``pretrained_cfg``,
  ``features_only=True`` and ``feature_info`` work as for any timm model) with the cfg's ``input_size`` set to
  the size the model is built for, and downloads refused (vmibench takes weights from files only).
* :func:`cfgs_from_records` -- a model file's timm ``default_cfgs``, generated from its records in
  :mod:`vmibench.catalog` with timm's ``generate_default_cfgs`` (the one record of eval settings).
* :class:`StageBackbone` -- timm's generic model API for a stem-plus-stages backbone: classifier reset,
  pooled pre-logits, ``forward_intermediates`` / ``prune_intermediate_layers`` (what ``features_only`` and
  detectors use), gradient checkpointing and a build-size check for models tied to one input size.
* Init and checkpoint helpers: :func:`to_hw`, :func:`init_linear_layernorm`, :func:`saved_grid`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar

import torch
import torch.nn as nn
from timm.layers import trunc_normal_
from timm.models import build_model_with_cfg, generate_default_cfgs, get_pretrained_cfg
from torch.utils.checkpoint import checkpoint

from vmibench.errors import CheckpointError
from vmibench.registry import list_infos

M = TypeVar("M", bound=nn.Module)
Features = list[torch.Tensor]

# One entry per stage: what timm's FeatureInfo reads (channels, stride from the input, module name).
STAGE_OUT_INDICES = (0, 1, 2, 3)


def to_hw(img_size: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    """``224`` or ``(h, w)`` -> ``(h, w)``."""
    if isinstance(img_size, int):
        return img_size, img_size
    h, w = img_size
    return int(h), int(w)


def cfgs_from_records(module: str) -> dict[str, Any]:
    """timm ``default_cfgs`` of every record built by ``module``, generated from the records themselves."""
    return generate_default_cfgs({info.name: info.timm_cfg() for info in list_infos() if info.module == module})


def build(
    cls: Callable[..., M],
    variant: str,
    pretrained: bool,
    *,
    filter_fn: Callable[..., dict[str, Any]] | None = None,
    feature_cfg: dict[str, Any] | None = None,
    **kwargs: Any,
) -> M:
    """Build ``variant`` through timm's builder; the instance's ``pretrained_cfg['input_size']`` is its build size.

    ``kwargs`` are the architecture's arguments (``img_size`` defaults to the record's eval size) plus timm's
    (``features_only``, ``out_indices``, ``pretrained_cfg_overlay``, ...).
    """
    if pretrained:
        raise CheckpointError("vmibench never downloads weights: pass the official file with --checkpoint")
    cfg = get_pretrained_cfg(variant)
    default_hw = tuple(cfg.input_size[-2:]) if cfg is not None else (224, 224)
    hw = to_hw(kwargs.pop("img_size", None) or default_hw)
    overlay = {**(kwargs.pop("pretrained_cfg_overlay", None) or {}), "input_size": (kwargs.get("in_chans", 3), *hw)}
    return build_model_with_cfg(
        cls,
        variant,
        False,
        pretrained_cfg_overlay=overlay,
        pretrained_filter_fn=filter_fn,
        feature_cfg=dict(feature_cfg or {"out_indices": STAGE_OUT_INDICES, "feature_cls": "getter"}),
        img_size=hw,
        **kwargs,
    )


def take_indices(n: int, indices: int | list[int] | tuple[int, ...] | None) -> tuple[list[int], int]:
    """timm's ``indices`` convention for ``n`` features: None = all, int k = the last k, a sequence = those
    (negative counts from the end).  Returns the absolute indices and the largest."""
    if indices is None:
        indices = n
    if isinstance(indices, int):
        if not 0 < indices <= n:
            raise ValueError(f"cannot take the last {indices} of {n} features")
        chosen = list(range(n - indices, n))
    else:
        chosen = [i + n if i < 0 else i for i in indices]
        if not chosen or any(not 0 <= i < n for i in chosen):
            raise ValueError(f"feature indices {list(indices)} out of range for {n} features")
    return chosen, max(chosen)


def stage_feature_info(widths: list[int], first_reduction: int, module: str) -> list[dict[str, Any]]:
    """timm ``feature_info`` for stages whose stride doubles from ``first_reduction``; ``module`` has ``{i}``."""
    return [
        {"num_chs": c, "reduction": first_reduction * 2**i, "module": module.format(i=i)} for i, c in enumerate(widths)
    ]


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


def _set_submodule(root: nn.Module, path: str, module: nn.Module) -> None:
    parent, _, name = path.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, name, module)


def check_input_size(model: nn.Module, x: torch.Tensor, why: str) -> None:
    """ValueError naming the build size when ``x`` is not the size a size-tied ``model`` was built for."""
    built = model.img_size  # type: ignore[attr-defined]
    if tuple(x.shape[-2:]) != tuple(built):
        raise ValueError(
            f"{type(model).__name__} was built for {built[0]}x{built[1]} inputs and got {x.shape[-2]}x{x.shape[-1]} "
            f"({why}): build it for this size, e.g. vmibench.create_model(name, res=({x.shape[-2]}, {x.shape[-1]}))"
        )


class StageBackbone(nn.Module):
    """timm's generic model API for a backbone made of a stem and a list of stages.

    A subclass keeps its official module names and sets, in ``__init__``: ``num_classes``, ``num_features``,
    ``feature_info`` (one entry per stage, see :func:`stage_feature_info`) and the class attributes below;
    it implements :meth:`_stem`, :meth:`_pool` and, when a stage's output is not its feature map (VMamba-style
    stages end in their down-sampler), :meth:`_stage`.
    """

    stages_path = "stages"  # the ModuleList of stages
    norm_path = "norm"  # the final norm (applies to the last stage's features)
    head_path = "head"  # the classifier
    channels_last = False  # stage features are (B, H, W, C) inside the model
    size_tied = ""  # non-empty: what ties the model to its build size (checked on entry)
    grad_checkpointing = False
    global_pool = "avg"
    num_classes: int
    num_features: int
    feature_info: list[dict[str, Any]]

    # -- hooks --------------------------------------------------------------------------------------------------

    def _stem(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised last-stage features -> (B, C), the official pooling."""
        raise NotImplementedError

    def _stage(self, i: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(feature map of stage i, input of stage i+1)``."""
        y = self._stages()[i](x)
        return y, y

    # -- timm API -----------------------------------------------------------------------------------------------

    @property
    def head_hidden_size(self) -> int:
        return self.num_features

    def _stages(self) -> nn.ModuleList:
        return self.get_submodule(self.stages_path)  # type: ignore[return-value]

    def get_classifier(self) -> nn.Module:
        return self.get_submodule(self.head_path)

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """New classifier for ``num_classes`` (0: none, forward returns pooled features); ``global_pool`` is
        ``"avg"`` or ``""`` (no pooling: forward returns the normalised feature map)."""
        if global_pool is not None:
            if global_pool not in ("avg", ""):
                raise ValueError(f"global_pool must be 'avg' or '', got {global_pool!r}")
            self.global_pool = global_pool
        self.num_classes = num_classes
        head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        _set_submodule(self, self.head_path, head)

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable

    def _run_stage(self, i: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.grad_checkpointing and torch.is_grad_enabled():
            return checkpoint(self._stage, i, x, use_reentrant=False)  # type: ignore[return-value]
        return self._stage(i, x)

    def _enter(self, x: torch.Tensor) -> torch.Tensor:
        if self.size_tied:
            check_input_size(self, x, self.size_tied)
        return self._stem(x)

    def _final_norm(self, x: torch.Tensor) -> torch.Tensor:
        return self.get_submodule(self.norm_path)(x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised last-stage features, in the model's own layout."""
        x = self._enter(x)
        feature = x
        for i in range(len(self._stages())):
            feature, x = self._run_stage(i, x)
        return self._final_norm(feature)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if self.global_pool:
            x = self._pool(x)
        return x if pre_logits else self.get_classifier()(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def _layout(self, x: torch.Tensor, output_fmt: str) -> torch.Tensor:
        if self.channels_last == (output_fmt == "NHWC"):
            return x
        return x.permute(0, 3, 1, 2) if self.channels_last else x.permute(0, 2, 3, 1)

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | list[int] | tuple[int, ...] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> Features | tuple[torch.Tensor, Features]:
        """Stage feature maps (timm convention): ``indices`` = last n (int), these (sequence) or all (None);
        ``norm`` applies the final norm to the last stage's map; returns the list, or ``(final, list)``."""
        if output_fmt not in ("NCHW", "NHWC"):
            raise ValueError(f"output_fmt must be 'NCHW' or 'NHWC', got {output_fmt!r}")
        last = len(self.feature_info) - 1  # the final norm belongs to the full model's last stage
        take, max_index = take_indices(len(self._stages()), indices)
        x = self._enter(x)
        feature = x
        out: Features = []
        for i in range(max_index + 1 if stop_early else len(self._stages())):
            feature, x = self._run_stage(i, x)
            if i in take:
                out.append(self._layout(self._final_norm(feature) if norm and i == last else feature, output_fmt))
        if intermediates_only:
            return out
        return (self._final_norm(feature) if i == last else feature), out

    def prune_intermediate_layers(
        self, indices: int | list[int] | tuple[int, ...] = 1, prune_norm: bool = False, prune_head: bool = True
    ) -> list[int]:
        """Drop the stages after the last one ``indices`` needs (and the norm/head if asked); returns the indices."""
        take, max_index = take_indices(len(self._stages()), indices)
        _set_submodule(self, self.stages_path, self._stages()[: max_index + 1])
        if prune_norm:
            _set_submodule(self, self.norm_path, nn.Identity())
        if prune_head:
            self.reset_classifier(0, "")
        return take
