"""Model registry: records of published numbers and eval settings, and the entry points that build them.

The registry knows no model (timm's ``_registry.py`` pattern).  Records are plain data and import no torch:

* vmibench's own records live in :mod:`vmibench.catalog` (imported by ``import vmibench``), each naming the
  module whose function of the same name builds the model (``ModelInfo.module``).  That module -- an
  architecture file in :mod:`vmibench.models` or ``vmibench.baselines`` -- is imported only when the model is
  built (or when :mod:`vmibench.models` is imported, which registers every architecture with timm).
* A user's model file registers a record and its entry point together with :func:`register_model`::

      @register_model(ModelInfo(name="mynet_t", family="mynet", paper_name="MyNet-T", published=Published()))
      def mynet_t(pretrained=False, **kwargs) -> nn.Module: ...

  which also registers the entry point with timm, so ``timm.create_model("mynet_t")`` works.
* Any timm model name that is not registered here is accepted too (see :func:`resolve_info`), with an empty
  published record.

Torch-free functions (safe for ``--help``, input validation and ``vmibench models``): :func:`list_infos`,
:func:`resolve_info`, :func:`is_registered`, :func:`unknown_model_message` (imports timm only to suggest names
for an unknown one), and :meth:`ModelInfo.check_resolution`.  :func:`resolve` imports the architecture.

Published numbers are *reference* columns copied from the papers/READMEs named in ``source``; vmibench never
reports them as its own measurements.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from vmibench.errors import UserError

if TYPE_CHECKING:
    import torch.nn as nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

Resolution = tuple[int, int]
Builder = Callable[..., "nn.Module"]


@dataclass(frozen=True)
class Published:
    """Numbers a paper or README printed for this model (reference only, never a measurement)."""

    params_m: float | None = None
    gmacs: float | None = None  # what papers print as "GFLOPs": one multiply-add counted once
    top1: float | None = None
    top5: float | None = None
    eval_res: int | None = None  # the resolution top1 and gmacs were printed at
    released_top1: float | None = None  # what the released checkpoint scores, where its README says it differs
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
        return {
            "input_size": self.input_size,
            "crop_pct": self.crop_pct,
            "interpolation": self.interpolation,
            "mean": self.mean,
            "std": self.std,
            "num_classes": self.num_classes,
            **extra,
        }


@dataclass(frozen=True)
class ModelInfo:
    """Everything vmibench knows about a registered model besides its code."""

    name: str
    family: str
    paper_name: str
    published: Published
    eval: EvalConfig = field(default_factory=EvalConfig)
    module: str = ""  # dotted module whose function ``name`` builds the model (empty for timm references)
    official: str = ""  # repository and entry point the implementation follows
    res_multiple: int = 32  # input height and width must be multiples of this
    min_res: int = 32
    fixed_input_size: bool = False  # weights or buffers are built for one input size (timm's cfg flag)
    first_conv: str = ""  # timm cfg: module of the first conv (for in_chans adaptation)
    classifier: str = ""  # timm cfg: module of the classifier
    stage_strides: tuple[int, ...] = ()  # down-sampling of each stage's token grid (input side / grid side)
    adaptation: str = ""  # how the model is adapted to resolutions other than its build size (our generalisation)
    reconstruction: str = ""  # parts that are not verified against official code, if any
    timm_name: str | None = None  # set for timm references: the timm architecture this short name builds
    uses_scan: bool = False

    def check_resolution(self, res: Resolution) -> None:
        """Raise :class:`UserError` when ``res`` is not an input size this model accepts."""
        h, w = res
        m = self.res_multiple
        if h < self.min_res or w < self.min_res or h % m or w % m:
            raise UserError(
                f"{self.name} accepts resolutions that are multiples of {m} and at least {self.min_res}, "
                f"got {h}x{w}; pick e.g. {max(self.min_res, round(h / m) * m)}"
            )

    def timm_cfg(self) -> dict[str, Any]:
        """timm ``pretrained_cfg`` of the model built at its eval size (no weight URL: vmibench never downloads)."""
        cfg = self.eval.pretrained_cfg(first_conv=self.first_conv, classifier=self.classifier)
        if self.fixed_input_size:
            cfg["fixed_input_size"] = True
        cfg["min_input_size"] = (self.eval.input_size[0], self.min_res, self.min_res)
        return cfg


@dataclass(frozen=True)
class Entry:
    """A record and the entry point ``fn(pretrained=False, img_size=..., **kwargs)`` that builds it."""

    info: ModelInfo
    builder: Builder

    @property
    def checkpoint_filter(self) -> Callable[..., dict[str, Any]] | None:
        """The model file's ``checkpoint_filter_fn`` (timm's convention), if it has one."""
        if self.info.timm_name is not None:
            return None
        return getattr(importlib.import_module(self.builder.__module__), "checkpoint_filter_fn", None)


_RECORDS: dict[str, ModelInfo] = {}
_BUILDERS: dict[str, Builder] = {}  # entry points registered by a user's file (ours are found via info.module)


def add_info(info: ModelInfo) -> ModelInfo:
    """Register a record (torch-free); its builder is ``info.module``'s function ``info.name``, or timm's."""
    if not info.module and info.timm_name is None:
        raise ValueError(f"record {info.name} names neither its module nor a timm architecture")
    _RECORDS[info.name] = info
    return info


def register_model(info: ModelInfo) -> Callable[[Builder], Builder]:
    """Register a record and the entry point it decorates; the entry point is registered with timm too."""

    def decorator(fn: Builder) -> Builder:
        import timm.models

        if fn.__name__ != info.name:
            raise ValueError(f"entry point {fn.__name__} must be named like its record {info.name}")
        add_info(info if info.module else replace(info, module=fn.__module__))
        _BUILDERS[info.name] = fn
        timm.models.register_model(fn)  # as timm's own decorator: a re-imported (edited) file replaces the entry
        return fn

    return decorator


def list_infos() -> list[ModelInfo]:
    """All registered records, in registration order (torch-free)."""
    return list(_RECORDS.values())


def is_registered(name: str) -> bool:
    return name in _RECORDS


def resolve_info(name: str) -> ModelInfo:
    """Record of a registered name, or a generic record for a timm architecture; :class:`UserError` otherwise.

    Torch-free for registered names; only a name that is not registered imports timm to look it up.
    """
    if name in _RECORDS:
        return _RECORDS[name]
    import timm

    if timm.is_model(name):
        return _timm_info(name)
    raise UserError(unknown_model_message(name))


def resolve(name: str) -> Entry:
    """Buildable entry for a registered name or a timm architecture (imports the architecture's module)."""
    info = resolve_info(name)
    if info.timm_name is not None:
        return Entry(info, timm_builder(info.timm_name))
    builder = _BUILDERS.get(name)
    if builder is None:
        builder = getattr(importlib.import_module(info.module), info.name)
    return Entry(info, builder)


def get_entry(name: str) -> Entry:
    """The entry of a registered name (no timm fallback); :class:`UserError` with close names if unknown."""
    if name not in _RECORDS:
        raise UserError(unknown_model_message(name))
    return resolve(name)


def list_models() -> list[ModelInfo]:
    """Alias of :func:`list_infos` (the records; build one with :func:`resolve`)."""
    return list_infos()


def unknown_model_message(name: str) -> str:
    close = difflib.get_close_matches(name, list(_RECORDS), n=3, cutoff=0.5)
    if not close:
        import timm

        close = difflib.get_close_matches(name, timm.list_models(), n=3, cutoff=0.75)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    return (
        f"unknown model '{name}': {hint}run `vmibench models` for registered names (any timm name works too; "
        "--import FILE.py adds your own)"
    )


def _timm_info(name: str) -> ModelInfo:
    import timm

    cfg = timm.get_pretrained_cfg(name)
    size = tuple(cfg.input_size) if cfg is not None else (3, 224, 224)
    return ModelInfo(
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


def timm_builder(timm_name: str) -> Builder:
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
