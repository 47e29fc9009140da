"""vmibench: one FLOPs, latency, memory and accuracy protocol for VMINet and its rivals."""

from __future__ import annotations

import os
from typing import Any

import torch.nn as nn

__version__ = "0.1.0"


def create_model(
    name: str,
    *,
    res: int | tuple[int, int] = 224,
    checkpoint: str | os.PathLike[str] | None = None,
    ema: bool = False,
    **kwargs: Any,
) -> nn.Module:
    """Build a registered model (or any timm architecture) for input resolution ``res``.

    ``checkpoint`` is a local file in any official wrapping (raw, ``state_dict``, ``state_dict_ema``, ``model``,
    ``model_ema``, ``module.`` prefixes); resolution-dependent tensors are adapted by the model's checkpoint
    filter, then loaded strictly.  ``ema`` picks the EMA copy.  Raises :class:`vmibench.errors.UserError` for
    unknown names, resolutions the model does not accept and unreadable or mismatched checkpoints.
    """
    from vmibench.checkpoint import load_checkpoint
    from vmibench.registry import resolve
    from vmibench.resolution import as_hw

    entry = resolve(name)
    hw = as_hw(res)
    entry.info.check_resolution(hw)
    model = entry.builder(pretrained=False, img_size=hw, **kwargs)
    if getattr(model, "pretrained_cfg", None) is None:
        model.pretrained_cfg = entry.info.eval.pretrained_cfg(architecture=name)
    if checkpoint is not None:
        load_checkpoint(model, checkpoint, filter_fn=entry.info.checkpoint_filter, ema=ema)
    return model


def _register_all() -> None:
    # Importing vmibench registers its models with timm, so timm.create_model("vminet_t") works afterwards.
    from vmibench.registry import list_models

    list_models()


_register_all()

__all__ = ["__version__", "create_model"]
