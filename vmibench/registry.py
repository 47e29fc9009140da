"""Model registry: short names -> constructors, each with a record of published numbers and eval settings.

A model file registers an entry point with :func:`register_model`, timm style::

    @register_model(ModelInfo(name="vminet_t", ...))
    def vminet_t(pretrained=False, img_size=224, **kwargs) -> nn.Module: ...

The entry point is also registered with timm (unless the record says it is a timm alias), so
``timm.create_model("vminet_t")`` works once :mod:`vmibench` is imported.  Any timm model name that is not
registered here is accepted too (see :func:`resolve`), with an empty published record.

Published numbers are *reference* columns copied from the papers/READMEs named in ``source``; vmibench never
reports them as its own measurements.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch.nn as nn

from vmibench.errors import UserError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

Resolution = tuple[int, int]
CheckpointFilter = Callable[[dict[str, Any], nn.Module], dict[str, Any]]


@dataclass(frozen=True)
class Published:
    """Numbers a paper or README printed for this model (reference only, never a measurement)."""

    params_m: float | None = None
    gmacs: float | None = None  # what papers print as "GFLOPs": one multiply-add counted once
    top1: float | None = None
    top5: float | None = None
    eval_res: int | None = None
    throughput_ips: float | None = None
    throughput_setup: str = ""
    source: str = ""
    note: str = ""
    flops_rule: str = ""  # how the published GMACs counted what fvcore cannot see (e.g. the selective scan)


@dataclass(frozen=True)
class EvalConfig:
    """Evaluation pre-processing the published top-1 was measured with (timm ``pretrained_cfg`` fields)."""

    input_size: tuple[int, int, int] = (3, 224, 224)
    crop_pct: float = 0.875
    interpolation: str = "bicubic"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    num_classes: int = 1000

    def pretrained_cfg(self, **extra: Any) -> dict[str, Any]:
        """The record in timm's ``pretrained_cfg`` dict form, for ``timm.data.resolve_data_config``."""
        cfg = asdict(self)
        cfg.update(extra)
        return cfg


@dataclass(frozen=True)
class ModelInfo:
    """Everything vmibench knows about a registered model besides its code."""

    name: str
    family: str
    paper_name: str
    published: Published
    eval: EvalConfig = field(default_factory=EvalConfig)
    official: str = ""  # repository and entry point the implementation follows
    res_multiple: int = 32  # input height and width must be multiples of this
    min_res: int = 32
    adaptation: str = ""  # how the model is adapted to resolutions other than its build size (our generalisation)
    reconstruction: str = ""  # parts that are not verified against official code, if any
    timm_name: str | None = None  # set for timm references: the timm architecture this short name builds
    uses_scan: bool = False
    checkpoint_filter: CheckpointFilter | None = None

    def check_resolution(self, res: Resolution) -> None:
        """Raise :class:`UserError` when ``res`` is not an input size this model accepts."""
        h, w = res
        m = self.res_multiple
        if h < self.min_res or w < self.min_res or h % m or w % m:
            raise UserError(
                f"{self.name} accepts resolutions that are multiples of {m} and at least {self.min_res}, "
                f"got {h}x{w}; pick e.g. {max(self.min_res, round(h / m) * m)}"
            )


@dataclass(frozen=True)
class Entry:
    info: ModelInfo
    builder: Callable[..., nn.Module]


_REGISTRY: dict[str, Entry] = {}


def register_model(info: ModelInfo) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register an entry point ``fn(pretrained=False, img_size=224, **kwargs)`` under ``info.name``."""

    def decorator(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if fn.__name__ != info.name and info.timm_name is None:
            raise ValueError(f"entry point {fn.__name__} must be named like its record {info.name}")
        _REGISTRY[info.name] = Entry(info, fn)
        if info.timm_name is None:
            import timm.models

            timm.models.register_model(fn)
        return fn

    return decorator


def _ensure_loaded() -> None:
    # Model files register on import; importing them here (not at module top) avoids an import cycle.
    # Order = listing order: the subject, its rivals, then the timm references.
    import vmibench.models.vminet
    import baselines  # noqa: F401  # isort: skip
    import vmibench.models.timm_refs  # noqa: F401  # isort: skip


def list_models() -> list[ModelInfo]:
    """All registered models, in registration order."""
    _ensure_loaded()
    return [e.info for e in _REGISTRY.values()]


def get_entry(name: str) -> Entry:
    """The registered entry for ``name``; :class:`UserError` (with close names) if unknown."""
    _ensure_loaded()
    if name in _REGISTRY:
        return _REGISTRY[name]
    raise UserError(unknown_model_message(name))


def unknown_model_message(name: str) -> str:
    import timm

    close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.5)
    if not close:
        close = difflib.get_close_matches(name, timm.list_models(), n=3, cutoff=0.75)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    return f"unknown model '{name}': {hint}run `vmibench models` for registered names (any timm name works too)"


def resolve(name: str) -> Entry:
    """Entry for a registered short name, or a generic entry wrapping a timm architecture of that name."""
    _ensure_loaded()
    if name in _REGISTRY:
        return _REGISTRY[name]
    import timm

    if timm.is_model(name):
        return _timm_entry(name)
    raise UserError(unknown_model_message(name))


def _timm_entry(name: str) -> Entry:
    import timm

    cfg = timm.get_pretrained_cfg(name)
    size = tuple(cfg.input_size) if cfg is not None else (3, 224, 224)
    info = ModelInfo(
        name=name,
        family="timm",
        paper_name=name,
        published=Published(source="timm (no published record in vmibench)"),
        eval=EvalConfig(
            input_size=size,  # type: ignore[arg-type]
            crop_pct=cfg.crop_pct if cfg is not None else 0.875,
            interpolation=cfg.interpolation if cfg is not None else "bicubic",
            mean=tuple(cfg.mean) if cfg is not None else IMAGENET_MEAN,  # type: ignore[arg-type]
            std=tuple(cfg.std) if cfg is not None else IMAGENET_STD,  # type: ignore[arg-type]
        ),
        official=f"timm {name}",
        res_multiple=1,
        min_res=8,
        adaptation="passed to timm as img_size when the architecture takes one",
        timm_name=name,
    )
    return Entry(info, _timm_builder(name))


def _timm_builder(timm_name: str) -> Callable[..., nn.Module]:
    """Entry point that builds a timm architecture for an input resolution (no weights are downloaded)."""

    def build(pretrained: bool = False, img_size: int | Resolution = 224, **kwargs: Any) -> nn.Module:
        import timm

        if pretrained:
            raise UserError("vmibench never downloads weights: pass a local file with --checkpoint")
        try:
            return timm.create_model(timm_name, pretrained=False, img_size=img_size, **kwargs)
        except TypeError as exc:
            if "img_size" not in str(exc):
                raise
            # Architectures without an img_size argument (pure CNNs) run at any size as built.
            return timm.create_model(timm_name, pretrained=False, **kwargs)

    build.__name__ = timm_name
    return build
