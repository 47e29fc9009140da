"""vmibench: one FLOPs, latency, memory and accuracy protocol for VMINet and its rivals.

``import vmibench`` loads the model records (:mod:`vmibench.catalog`, plain data) and imports no torch; a model's
architecture is imported when it is built.  ``import vmibench.models`` registers every architecture with timm.

Glossary
--------
workload
    *What* one measurement runs: a model's forward or training step, a token-mixer op, the matmul peak, the triad
    bandwidth, a max-batch search, the timer cross-check.  A frozen dataclass; its fields identify it.
kind
    A family of workloads, named by its ``KIND`` and registered in :mod:`vmibench.measure.kinds.registry`: one
    module of :mod:`vmibench.measure.kinds` says how its cells are planned, what the worker's child runs for it,
    and how its results become a row (in its ``TABLE``).
cell
    One ``(workload, settings)`` pair (:class:`vmibench.measure.cells.Cell`), settings being *how* it is measured
    (device, dtype, threads, compile, scan backend, timing policy).  Its key -- a hash of environment, workload and
    settings -- identifies it in the store, so a rerun resumes instead of measuring it again.
round
    One fresh worker process's measurement of a cell.  A run visits its cells round-robin, in a new random order
    each round, and a cell's rounds split its time budget; the interval of a row is taken over its rounds.
run
    One :class:`vmibench.measure.runner.Runner` measuring a list of cells in some number of rounds into a store
    (resuming, topping up, leasing); its rows share a ``run_id``.
row
    A cell's record in the store (:mod:`vmibench.records`): the rounds' samples pooled into a median with its
    interval, counts and provenance -- or the failure or skip that stopped it.
store
    The SQLite file of rows and their raw samples (:class:`vmibench.store.ResultStore`, schema-versioned); by
    default the scratch store ``vmibench.sqlite`` in the working directory.
result set
    ``results/<machine>/``, made by ``vmibench publish``: a store (``store.sqlite``), ``manifest.json`` (the data's
    SHA-256, the measuring and report commits) and ``REPORT.md`` with ``tables/`` and ``figures/``, rebuilt from
    that store byte for byte.
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
