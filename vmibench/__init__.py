"""vmibench: one FLOPs, latency, memory and accuracy protocol for VMINet and its rivals.

``import vmibench`` loads the model records (:mod:`vmibench.catalog`, plain data) and imports no torch; a model's
architecture is imported when it is built.  ``import vmibench.models`` registers every architecture with timm.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch.nn as nn

__version__ = "0.1.0"

_BASELINES = "vmibench.baselines"


class _CheckoutBaselines(importlib.abc.MetaPathFinder):
    """Finds ``vmibench.baselines`` in the repository's top-level ``baselines/`` folder when vmibench runs from a
    source checkout without being installed (an install maps the folder there through pyproject's package-dir)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def find_spec(
        self, fullname: str, path: object = None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != _BASELINES:
            return None
        return importlib.util.spec_from_file_location(
            fullname, self.folder / "__init__.py", submodule_search_locations=[str(self.folder)]
        )


def _map_checkout_baselines() -> None:
    here = Path(__file__).resolve().parent
    folder = here.parent / "baselines"
    # Installed copies carry vmibench/baselines/ themselves; a checkout is recognised by its pyproject.
    if (here / "baselines").is_dir() or not (here.parent / "pyproject.toml").is_file() or not folder.is_dir():
        return
    if not any(isinstance(f, _CheckoutBaselines) for f in sys.meta_path):
        sys.meta_path.append(_CheckoutBaselines(folder))  # after the import system's own finders


_map_checkout_baselines()

from vmibench import catalog  # noqa: E402, F401  # registers the records (plain data)


def create_model(
    name: str,
    *,
    res: int | tuple[int, int] = 224,
    checkpoint: str | os.PathLike[str] | None = None,
    ema: bool = False,
    **kwargs: Any,
) -> nn.Module:
    """Build a registered model (or any timm architecture) for input resolution ``res``.

    The instance's ``pretrained_cfg`` (and its alias ``default_cfg``) carries ``input_size = (3, *res)``, so
    timm's ``resolve_data_config`` builds a pipeline of the size the model was built for.  ``checkpoint`` is a
    local file in any official wrapping (raw, ``state_dict``, ``state_dict_ema``, ``model``, ``model_ema``,
    ``module.`` prefixes); resolution-dependent tensors are adapted by the model's checkpoint filter, then
    loaded strictly.  ``ema`` picks the EMA copy.  Raises :class:`vmibench.errors.UserError` for unknown names,
    resolutions the model does not accept and unreadable or mismatched checkpoints.
    """
    from vmibench.checkpoint import load_checkpoint
    from vmibench.registry import resolve
    from vmibench.resolution import as_hw

    entry = resolve(name)
    hw = as_hw(res)
    entry.info.check_resolution(hw)
    model = entry.builder(pretrained=False, img_size=hw, **kwargs)
    cfg = getattr(model, "pretrained_cfg", None) or entry.info.eval.pretrained_cfg(architecture=name)
    # timm's own builders keep the variant's default input_size; record the size this instance was built for.
    cfg = {**cfg, "input_size": (cfg.get("input_size", (3,))[0], *hw)}
    model.pretrained_cfg = model.default_cfg = cfg
    if checkpoint is not None:
        load_checkpoint(model, checkpoint, filter_fn=entry.checkpoint_filter, ema=ema)
    return model


__all__ = ["__version__", "create_model"]
