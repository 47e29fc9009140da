"""Block scopes: which timm stage / block each operator runs in.

Naming rule (:func:`block_names`), on ``model.named_modules()`` names:

* every direct child of the model except the block containers: ``stem``, ``patch_embed``, ``norm``, ``head`` ...;
* a stage, or a block of an isotropic model: ``<container>.<i>`` -- ``stages.0``, ``layers.2``, ``blocks.3``;
* a block inside a stage: ``<container>.<i>.<j>`` or ``<container>.<i>.blocks.<j>`` -- ``stages.0.1``,
  ``layers.0.blocks.1``;

with ``<container>`` one of ``stages``, ``layers``, ``levels``, ``blocks`` (timm's and the registered models'
spellings).  Deeper modules (a block's mixer, its MLP) are not scopes: their operators count for their block.

An operator belongs to its innermost *entered* scope.  A scope is entered only when no scope is open or when its
name lies under the innermost open one, so a module shared across blocks (Vim's top-level ``drop_path``, called
from each layer) does not steal its caller's time.  Operators outside every scope belong to block ``""``.
"""

from __future__ import annotations

import re
from typing import Any

import torch.nn as nn
from torch.autograd.profiler import record_function

CONTAINERS = ("stages", "layers", "levels", "blocks")
_BLOCK_RE = re.compile(rf"^({'|'.join(CONTAINERS)})\.\d+((\.blocks)?\.\d+)?$")
BLOCK_PREFIX = "vmibench.block:"  # record_function name of a scope: the prefix, then the block name
ROOT = ""  # the block of operators outside every scope


def is_block_name(name: str) -> bool:
    """Whether ``named_modules()`` name ``name`` opens a scope (see the module docstring)."""
    if not name:
        return False
    if "." not in name:
        return name not in CONTAINERS
    return _BLOCK_RE.match(name) is not None


def block_names(model: nn.Module) -> dict[str, nn.Module]:
    """The modules of ``model`` that open a scope, by name, in ``named_modules()`` order."""
    return {name: mod for name, mod in model.named_modules() if is_block_name(name)}


class BlockScopes:
    """Tracks the innermost open scope of ``model`` while active (``with BlockScopes(model) as s: ...``).

    ``annotate=True`` also opens a ``record_function(BLOCK_PREFIX + name)`` for each entered scope, so a
    profiler sees the blocks as events around their operators.  Scopes are opened by forward pre-hooks and
    closed by forward hooks (``always_call``, so an exception does not leave one open).
    """

    def __init__(self, model: nn.Module, *, annotate: bool = False) -> None:
        self.model = model
        self.annotate = annotate
        self._stack: list[tuple[str, Any] | None] = []  # None: a scope module called where it opens no scope
        self._handles: list[Any] = []

    @property
    def current(self) -> str:
        """The innermost open scope, or :data:`ROOT`."""
        for entry in reversed(self._stack):
            if entry is not None:
                return entry[0]
        return ROOT

    def _pre(self, name: str) -> Any:
        def hook(module: nn.Module, args: Any) -> None:
            inner = self.current
            if inner != ROOT and not name.startswith(inner + "."):
                self._stack.append(None)
                return
            rf = record_function(BLOCK_PREFIX + name) if self.annotate else None
            if rf is not None:
                rf.__enter__()
            self._stack.append((name, rf))

        return hook

    def _post(self, module: nn.Module, args: Any, output: Any) -> None:
        entry = self._stack.pop() if self._stack else None
        if entry is not None and entry[1] is not None:
            entry[1].__exit__(None, None, None)

    def __enter__(self) -> BlockScopes:
        for name, mod in block_names(self.model).items():
            self._handles.append(mod.register_forward_pre_hook(self._pre(name)))
            self._handles.append(mod.register_forward_hook(self._post, always_call=True))
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        while self._stack:
            self._post(self.model, (), None)
