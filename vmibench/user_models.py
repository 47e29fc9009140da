"""The user's own models: ``--import MODULE_OR_FILE`` imports a module or a ``.py`` file before names are resolved.

Whatever the file registers becomes a usable name: timm ``@register_model`` entry points (then the name resolves
as a timm model) or vmibench's :func:`vmibench.registry.register_model` with a record of published numbers and
eval settings.  Every row of such a model carries the SHA-256 of the file that defines it
(:func:`source_digest`), and so does the identity of its cells: an edited file is measured again rather than
resumed from rows of its old version.  The digest covers that one file, not what it imports.

Nothing here imports torch; the imported file may.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from vmibench.errors import UserError, one_line

IMPORT_HELP = (
    "Import this module or .py file first (repeatable), so the models it registers -- timm @register_model or "
    "vmibench.registry.register_model -- can be named in --models. Rows carry the file's SHA-256, and an edited "
    "file is measured again."
)


@dataclass(frozen=True)
class Imported:
    """One ``--import``: what was given, the module it became, its source file and that file's digest."""

    spec: str  # an absolute file path, or the module name as given
    module: str
    path: str
    digest: str


_IMPORTED: dict[str, Imported] = {}  # by module name


def file_digest(path: str | Path) -> str:
    """First 16 hex digits of the file's SHA-256."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def _is_file_spec(spec: str) -> bool:
    return spec.endswith(".py") or "/" in spec or "\\" in spec


def _module_name(path: Path) -> str:
    # A name of our own, so that a user's json.py or baselines.py never replaces a module of that name.
    return "vmibench_import_" + re.sub(r"\W", "_", path.stem)


def import_models(specs: Sequence[str]) -> list[Imported]:
    """Import each module or ``.py`` file (once per process); :class:`UserError` if one is missing or fails."""
    return [_import_file(Path(spec)) if _is_file_spec(spec) else _import_module(spec) for spec in specs]


def _import_file(path: Path) -> Imported:
    path = path.expanduser().resolve()
    if not path.is_file():
        raise UserError(f"--import {path}: no such file (give a .py file or an importable module name)")
    name = _module_name(path)
    loaded = _IMPORTED.get(name)
    digest = file_digest(path)
    if loaded is not None and (loaded.path, loaded.digest) == (str(path), digest):
        return loaded  # an edited file is imported again: its new entry points replace the old ones
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # timm's register_model looks the entry point's module up here
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise UserError(f"--import {path} failed: {one_line(exc)}") from None
    return _remember(Imported(str(path), name, str(path), digest))


def _import_module(name: str) -> Imported:
    if name in _IMPORTED:
        return _IMPORTED[name]
    try:
        module = importlib.import_module(name)
    except Exception as exc:
        raise UserError(f"--import {name} failed: {one_line(exc)} (give a .py file or an importable module)") from None
    path = getattr(module, "__file__", None)
    if not path:
        raise UserError(f"--import {name}: the module has no source file to fingerprint")
    return _remember(Imported(name, module.__name__, str(path), file_digest(path)))


def _remember(imported: Imported) -> Imported:
    _IMPORTED[imported.module] = imported
    return imported


def imported() -> tuple[Imported, ...]:
    return tuple(_IMPORTED.values())


def source_of(name: str) -> Imported | None:
    """The ``--import`` that defines model ``name``; None for models that come with vmibench or timm."""
    if not _IMPORTED:
        return None
    from vmibench.registry import is_registered, resolve_info

    if is_registered(name):
        module = resolve_info(name).module
    else:
        import timm.models

        if not timm.models.is_model(name):
            return None
        module = timm.models.model_entrypoint(name).__module__
    return _IMPORTED.get(module)


def source_digest(name: str) -> str:
    """Digest of the imported file that defines model ``name``; ``""`` for models that come with vmibench/timm."""
    found = source_of(name)
    return found.digest if found is not None else ""
