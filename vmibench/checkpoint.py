"""Checkpoint loading for every official release format, strictly.

Official releases wrap their weights differently: timm's train script saves ``state_dict`` (and
``state_dict_ema``), Swin-derived repos (VMamba, MLLA, FLatten) save ``model`` (and ``model_ema``), others save
a raw state dict; DataParallel/DDP leave a ``module.`` prefix and ``torch.compile`` an ``_orig_mod.`` one.
:func:`load_checkpoint` accepts all of these, lets the model adapt resolution-dependent tensors through its
registered checkpoint filter, and loads strictly: any mismatch is a :class:`CheckpointError` naming the keys.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from vmibench.errors import CheckpointError, first_line

# A model file's ``checkpoint_filter_fn(state_dict, model)``: fits saved tensors to the model's geometry.
CheckpointFilter = Callable[[dict[str, Any], nn.Module], dict[str, Any]]

# Preference order when a file holds several wrapped forms.
_WRAPPER_KEYS = ("state_dict", "model", "module", "net", "params")
_EMA_KEYS = ("state_dict_ema", "model_ema", "ema")
_PREFIXES = ("module.", "_orig_mod.", "model.")


def read_checkpoint(path: str | os.PathLike[str]) -> Any:
    """Unpickle a checkpoint file on CPU; :class:`CheckpointError` with a one-line reason if it cannot be read."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"checkpoint {p} does not exist or is not a file: give the path to a .pth/.pth.tar")
    # timm's train script pickles its argparse Namespace next to the weights; allow that one class only.
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt or foreign files
        raise CheckpointError(
            f"cannot read checkpoint {p} ({type(exc).__name__}: {first_line(exc, 200)}); "
            "it must be a torch.save file holding a state dict (tensors only)"
        ) from None


def unwrap_state_dict(obj: Any, *, ema: bool = False) -> dict[str, torch.Tensor]:
    """The tensor mapping inside a loaded checkpoint, with wrapper keys and parallel/compile prefixes removed.

    ``ema=True`` prefers an EMA copy (``state_dict_ema``/``model_ema``) and fails if there is none.
    """
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"checkpoint holds a {type(obj).__name__}, not a state dict")
    for key in _EMA_KEYS if ema else _WRAPPER_KEYS:
        inner = obj.get(key)
        if isinstance(inner, nn.Module):
            inner = inner.state_dict()
        if isinstance(inner, Mapping) and _is_tensor_mapping(inner):
            obj = inner
            break
    else:
        if ema:
            raise CheckpointError("checkpoint has no EMA weights (state_dict_ema/model_ema): drop --ema")
    if not _is_tensor_mapping(obj):
        found = ", ".join(sorted(map(str, obj))[:8])
        raise CheckpointError(
            f"checkpoint has no state dict (top-level keys: {found}); "
            "expected raw weights or one of state_dict, state_dict_ema, model, model_ema"
        )
    return _strip_common_prefixes(dict(obj))


def _is_tensor_mapping(obj: Mapping[Any, Any]) -> bool:
    return bool(obj) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def _strip_common_prefixes(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # Only a prefix shared by every key is a wrapper leftover; a single "model." key may be a real name.
    changed = True
    while changed:
        changed = False
        for prefix in _PREFIXES:
            if all(k.startswith(prefix) for k in sd):
                sd = {k[len(prefix) :]: v for k, v in sd.items()}
                changed = True
    return sd


def load_state_dict_strict(
    model: nn.Module, state_dict: dict[str, torch.Tensor], *, filter_fn: CheckpointFilter | None = None
) -> None:
    """Adapt ``state_dict`` with ``filter_fn`` (resolution-dependent tensors) and load it strictly."""
    if filter_fn is not None:
        state_dict = filter_fn(dict(state_dict), model)
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    shapes = [
        f"{k} {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in state_dict.items()
        if k in own and tuple(v.shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or shapes:
        raise CheckpointError(
            "checkpoint does not match the model: "
            + "; ".join(
                part
                for part in (
                    _listing("missing", missing),
                    _listing("unexpected", unexpected),
                    _listing("shape mismatch", shapes),
                )
                if part
            )
            + " (is it the right model and variant?)"
        )
    model.load_state_dict(state_dict, strict=True)


def _listing(label: str, items: list[str], limit: int = 6) -> str:
    if not items:
        return ""
    more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
    return f"{len(items)} {label}: {', '.join(items[:limit])}{more}"


def load_checkpoint(
    model: nn.Module,
    path: str | os.PathLike[str],
    *,
    filter_fn: CheckpointFilter | None = None,
    ema: bool = False,
) -> None:
    """Read ``path`` in any supported wrapping and load it strictly into ``model``."""
    load_state_dict_strict(model, unwrap_state_dict(read_checkpoint(path), ema=ema), filter_fn=filter_fn)
