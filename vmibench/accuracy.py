"""Accuracy of checkpoints on an ImageNet-style folder: top-1, top-5, mean cross-entropy, images/s.

Protocol (what every ``accuracy`` row means):

- Data: the ImageNet val layout ``DIR/<class>/<image>``.  A sample's label is the index of its class folder in
  sorted folder order (torchvision ``ImageFolder``), or, with a class-map file, the line number (from 0) of the
  folder's name in that file (timm's ``class_map`` text format: one class name per line).
- Pre-processing: timm's eval pipeline (``resolve_data_config`` + ``create_transform``) with the model's
  published eval settings from its registry record (input size, crop_pct, interpolation, mean, std).  Another
  resolution (``--res``) keeps crop_pct, interpolation and normalisation and changes the input size; the model
  is then built for that resolution.
- Metrics, over every evaluated sample exactly once: ``top1`` = % of samples whose label is the arg-max logit;
  ``top5`` = % whose label is among the k largest logits with k = min(5, num_classes) (column ``top5_k``) -- the
  usual top-5 for heads of >= 5 classes, top-k (100 when k = num_classes) for smaller toy heads; ``loss`` = mean
  natural-log cross-entropy; ``images_per_s`` = samples / wall time of the evaluation loop (decoding,
  pre-processing, transfer and forward) of the slowest process.
- Multi-process (``torchrun``): rank r evaluates samples r, r + world_size, ... (no tail padding, so counts are
  exact); sums of correct top-1, correct top-k, loss and samples are all-reduced; rank 0 prints and stores.
- Weights: ``--checkpoint NAME=PATH`` in any official wrapping, unwrapped and loaded strictly through
  :mod:`vmibench.checkpoint`; the classifier is built for the evaluated class count, and a checkpoint head of
  another size is a one-line error naming both numbers.  ``--hub-cache DIR`` serves timm reference models from
  timm weights already in that Hugging Face cache, offline (``HF_HUB_OFFLINE=1``); nothing is ever downloaded.
- ``data_dir_hash`` identifies the evaluated files: SHA-256 of their sorted relative paths and sizes.
"""

from __future__ import annotations

import hashlib
import math
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Sampler

from vmibench.env import resolve_device
from vmibench.errors import CheckpointError, UserError, classify_failure, first_line, one_line
from vmibench.records import STATUS_ERROR, STATUS_OK, Record
from vmibench.registry import Entry, ModelInfo, resolve
from vmibench.resolution import label

if TYPE_CHECKING:
    import pandas as pd

ACCURACY_COLUMNS = [
    "model", "res", "top1", "top5", "loss", "n_samples", "n_skipped", "images_per_s", "ckpt_sha256", "data_dir_hash",
    "crop_pct", "interpolation", "input_size", "num_classes", "world_size", "device", "status", "error",
]  # fmt: skip

BRIEF_EXTRA = ["top5_k", "checkpoint", "git_commit"]  # what the terminal table adds; CSV/JSON carry every column

TOP_K = 5
HUB_FILENAMES = ("model.safetensors", "pytorch_model.bin")  # timm's preference order for Hub weights

Resolution = tuple[int, int]
# progress(total, label) -> context yielding advance(description); vmibench.cli.progress.progress has this shape.
ProgressFactory = Callable[[int, str], AbstractContextManager[Callable[[str], None]]]


@dataclass(kw_only=True)
class AccuracyRecord(Record):
    """Accuracy of one model (with one checkpoint) at one input resolution on one image folder."""

    TABLE = "accuracy"

    model: str
    res: str  # "224" or "HxW"
    top1: float | None = None  # percent
    top5: float | None = None  # percent, top-k with k = top5_k = min(5, num_classes)
    loss: float | None = None  # mean cross-entropy (natural log)
    n_samples: int = 0
    n_skipped: int = 0  # unreadable images, skipped with a warning (not in n_samples)
    images_per_s: float | None = None
    ckpt_sha256: str = ""
    data_dir_hash: str = ""
    crop_pct: float | None = None
    interpolation: str = ""
    input_size: str = ""  # "3x224x224", as fed to the model
    num_classes: int = 0
    world_size: int = 1
    device: str = ""
    status: str = STATUS_OK
    error: str = ""
    top5_k: int = TOP_K
    n_correct_top1: int = 0
    n_correct_top5: int = 0
    checkpoint: str = ""  # the file, or hf-hub:<id> for cached timm weights
    ema: bool = False
    data_dir: str = ""
    dataset: str = ""  # the evaluated set's name (its folder); with n_samples and num_classes its identity
    batch: int = 0
    limit: int | None = None
    model_source: str = ""  # SHA-256 (16 hex) of the --import file defining the model; "" for vmibench's and timm's
    height: int = 0
    width: int = 0
    wall_s: float | None = None


# -- processes ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DistContext:
    """Where this process sits in a torchrun launch (a single process is rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def dist_context(environ: Mapping[str, str] | None = None) -> DistContext:
    """Read ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` (set by torchrun); absent means one process."""
    env = os.environ if environ is None else environ
    try:
        world = int(env.get("WORLD_SIZE", "1"))
        rank = int(env.get("RANK", "0"))
        local = int(env.get("LOCAL_RANK", str(rank)))
    except ValueError:
        raise UserError("WORLD_SIZE, RANK and LOCAL_RANK must be integers: launch with torchrun") from None
    if world < 1 or not 0 <= rank < world or local < 0:
        raise UserError(f"inconsistent launch environment RANK={rank} WORLD_SIZE={world}: launch with torchrun")
    return DistContext(rank=rank, world_size=world, local_rank=local)


def process_device(requested: str | None, ctx: DistContext) -> str:
    """The torch device of this process: ``None`` -> ``cuda`` when available, else ``cpu``; ``cuda`` becomes
    ``cuda:LOCAL_RANK`` under torchrun."""
    device = resolve_device(requested)
    if device == "cuda" and ctx.distributed:
        if ctx.local_rank >= torch.cuda.device_count():
            raise UserError(
                f"LOCAL_RANK {ctx.local_rank} but only {torch.cuda.device_count()} GPUs: lower --nproc-per-node"
            )
        return f"cuda:{ctx.local_rank}"
    return device


@contextmanager
def process_group(ctx: DistContext, device: str) -> Iterator[None]:
    """Join the torchrun process group (gloo on CPU, nccl on CUDA) and always leave it, also on errors."""
    if not ctx.distributed:
        yield
        return
    import torch.distributed as dist

    if device.startswith("cuda"):
        torch.cuda.set_device(device)
    try:
        dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
    except ValueError as exc:  # rendezvous variables missing: WORLD_SIZE was set by hand
        raise UserError(f"cannot join the process group ({first_line(exc, 200)}): launch with torchrun") from None
    try:
        yield
    finally:
        dist.destroy_process_group()


class ShardSampler(Sampler[int]):
    """Indices ``rank, rank + world_size, ...``: each sample on exactly one rank, no padding (unlike
    ``DistributedSampler``, which repeats tail samples so that every rank gets the same count)."""

    def __init__(self, n: int, rank: int = 0, world_size: int = 1) -> None:
        self.indices = range(rank, n, world_size)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


# -- data -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageSet:
    """The evaluated files of an image folder with their labels."""

    root: Path
    samples: list[tuple[str, int]]  # (path, label), in ImageFolder order
    class_names: list[str]  # label -> name: the class map, or the sorted class folders
    n_folders: int
    class_map: Path | None = None

    def describe_classes(self) -> str:
        """Where the class count comes from, for error messages."""
        if self.class_map is not None:
            return f"the class map {self.class_map} has {len(self.class_names)} classes"
        return f"{self.root} has {len(self.class_names)} class folders"


def read_class_map(path: str | os.PathLike[str]) -> list[str]:
    """Class names of a timm-style class-map text file: one name per line, label = line number from 0."""
    p = Path(path)
    try:
        lines = p.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(
            f"cannot read class map {p} ({type(exc).__name__}): give a text file, one class per line"
        ) from None
    while lines and not lines[-1].strip():
        lines.pop()
    names = [ln.strip() for ln in lines]
    if not names or "" in names:
        raise UserError(f"class map {p} must list one class-folder name per line, without blank lines")
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise UserError(f"class map {p} names a class twice: {', '.join(dup[:5])}")
    return names


def scan_image_folder(
    root: str | os.PathLike[str], class_map: str | os.PathLike[str] | None = None, limit: int | None = None
) -> ImageSet:
    """List the images of ``root/<class>/...`` with their labels; ``limit`` keeps that many, spread evenly.

    Raises :class:`UserError` for a missing or empty folder and for class folders the class map lacks.
    """
    from torchvision.datasets.folder import IMG_EXTENSIONS, make_dataset

    base = Path(root)
    if not base.is_dir():
        what = "is not a directory" if base.exists() else "does not exist"
        raise UserError(f"data directory {base} {what}: give an ImageNet-style folder DIR/<class>/<image>")
    folders = sorted(entry.name for entry in os.scandir(base) if entry.is_dir())
    if not folders:
        raise UserError(f"data directory {base} has no class folders: expected DIR/<class>/<image> (ImageNet val)")
    names = read_class_map(class_map) if class_map is not None else folders
    index = {name: i for i, name in enumerate(names)}
    unknown = [f for f in folders if f not in index]
    if unknown:
        more = f" (+{len(unknown) - 5} more)" if len(unknown) > 5 else ""
        raise UserError(f"class folders missing from the class map {class_map}: {', '.join(unknown[:5])}{more}")
    samples = make_dataset(str(base), {f: index[f] for f in folders}, extensions=IMG_EXTENSIONS, allow_empty=True)
    if not samples:
        raise UserError(f"no images ({' '.join(IMG_EXTENSIONS)}) in the class folders of {base}")
    return ImageSet(
        base, spread(samples, limit), names, len(folders), Path(class_map) if class_map is not None else None
    )


def spread(items: Sequence[Any], limit: int | None) -> list[Any]:
    """``limit`` items evenly spaced over ``items`` (all of them when ``limit`` is None or not smaller),
    so that a quick ``--limit`` run still sees every class."""
    n = len(items)
    if limit is None or limit >= n:
        return list(items)
    return [items[i * n // limit] for i in range(limit)]


def data_dir_hash(root: str | os.PathLike[str], paths: Sequence[str]) -> str:
    """SHA-256 (16 hex digits) of the sorted relative paths and byte sizes of ``paths``: names the evaluated
    files without reading them."""
    h = hashlib.sha256()
    for rel in sorted(Path(p).relative_to(root).as_posix() for p in paths):
        h.update(f"{rel}\0{(Path(root) / rel).stat().st_size}\n".encode())
    return h.hexdigest()[:16]


# What a damaged or non-image file raises while decoding (PIL raises SyntaxError/ValueError for some broken
# headers).  Anything else -- a decompression-bomb refusal, a transform bug -- still fails the cell.
UNREADABLE = (OSError, SyntaxError, ValueError)


class LabelledImages(Dataset[tuple[Any, int]]):
    """``(transform(image), label)`` for a list of ``(path, label)``; images are decoded as RGB.

    A file that cannot be decoded yields ``(None, label)`` and a warning naming it; :func:`collate_readable`
    drops it from the batch and counts it, so one corrupt JPEG costs one sample, not the whole cell.
    """

    def __init__(self, samples: Sequence[tuple[str, int]], transform: Callable[[Any], torch.Tensor]) -> None:
        self.samples = samples
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        from torchvision.datasets.folder import default_loader

        path, target = self.samples[i]
        try:
            image = default_loader(path)
        except UNREADABLE as exc:
            print(f"vmibench: warning: skipped unreadable image {path} ({type(exc).__name__}: {exc})",
                  file=sys.stderr)  # fmt: skip
            return None, target
        return self.transform(image), target


def collate_readable(batch: Sequence[tuple[Any, int]]) -> tuple[torch.Tensor | None, torch.Tensor, int]:
    """Stack the decodable samples of a batch: ``(images or None, targets, number skipped)``."""
    kept = [(image, target) for image, target in batch if image is not None]
    targets = torch.tensor([t for _, t in kept], dtype=torch.long)
    images = torch.stack([image for image, _ in kept]) if kept else None
    return images, targets, len(batch) - len(kept)


def data_config(info: ModelInfo, hw: Resolution) -> dict[str, Any]:
    """timm data config of the model's published eval settings with the input size set to ``hw``."""
    from timm.data import resolve_data_config

    return resolve_data_config(pretrained_cfg=info.eval.pretrained_cfg(input_size=(3, *hw)))


def eval_transform(config: Mapping[str, Any]) -> Callable[[Any], torch.Tensor]:
    """timm's eval transform (resize to input / crop_pct, centre crop, normalise) for a data config."""
    from timm.data import create_transform

    return create_transform(**config, is_training=False)


def make_loader(
    samples: Sequence[tuple[str, int]],
    transform: Callable[[Any], torch.Tensor],
    *,
    batch: int,
    workers: int,
    ctx: DistContext,
    pin_memory: bool = False,
) -> DataLoader[tuple[torch.Tensor, int]]:
    """Loader over this rank's shard of ``samples`` (see :class:`ShardSampler`)."""
    return DataLoader(
        LabelledImages(samples, transform),
        batch_size=batch,
        collate_fn=collate_readable,
        sampler=ShardSampler(len(samples), ctx.rank, ctx.world_size),
        num_workers=workers,
        pin_memory=pin_memory,
    )


# -- weights --------------------------------------------------------------------------------------------------


def parse_checkpoint_entries(items: Sequence[str], models: Sequence[str]) -> dict[str, Path]:
    """``["vminet_s=a.pth", ...]`` -> ``{"vminet_s": Path("a.pth")}``; every name must be one of ``models``."""
    out: dict[str, Path] = {}
    for item in items:
        name, sep, path = (s.strip() for s in item.partition("="))
        if not sep or not name or not path:
            raise UserError(f"bad --checkpoint entry '{item}': use NAME=PATH (e.g. vminet_s=weights/vminet_s.pth)")
        if name in out:
            raise UserError(f"--checkpoint names {name} twice: give one file per model")
        if name not in models:
            raise UserError(
                f"--checkpoint names {name}, which is not in --models ({', '.join(models)}): add it or drop the entry"
            )
        out[name] = Path(path)
    return out


@dataclass
class Weights:
    """A model's weights, read and checked once before any evaluation."""

    source: str  # checkpoint path, or hf-hub:<id>
    sha256: str
    state_dict: dict[str, torch.Tensor] | None = None  # unwrapped local checkpoint
    hub_file: Path | None = None  # cached timm weights, loaded by timm (its filters resize position tables)
    hub_classes: int = 0


def read_weights(path: Path, *, ema: bool) -> Weights:
    """Read and unwrap a local checkpoint in any official wrapping (see :mod:`vmibench.checkpoint`)."""
    from vmibench.checkpoint import read_checkpoint, unwrap_state_dict
    from vmibench.env import file_sha256

    state_dict = unwrap_state_dict(read_checkpoint(path), ema=ema)
    return Weights(source=str(path), sha256=file_sha256(path), state_dict=state_dict)


def hub_weights(entry: Entry, cache_dir: Path) -> Weights:
    """timm weights of a timm reference model already in the Hugging Face cache ``cache_dir``; never downloads.

    Raises :class:`UserError` when the model is not a timm reference or its weights are not in the cache.
    """
    import timm

    from vmibench.env import file_sha256

    name, timm_name = entry.info.name, entry.info.timm_name
    if timm_name is None:
        raise UserError(
            f"no checkpoint for {name}: give --checkpoint {name}=PATH (--hub-cache serves timm reference models only)"
        )
    cfg = timm.get_pretrained_cfg(timm_name)
    hub_id = getattr(cfg, "hf_hub_id", None)
    if not hub_id:
        raise UserError(f"timm publishes no Hugging Face weights for {name} ({timm_name}): use --checkpoint")
    _go_offline(cache_dir)
    from huggingface_hub import try_to_load_from_cache

    repo, _, revision = hub_id.partition("@")
    candidates = [cfg.hf_hub_filename] if getattr(cfg, "hf_hub_filename", None) else list(HUB_FILENAMES)
    for filename in candidates:
        found = try_to_load_from_cache(repo, filename, cache_dir=str(cache_dir), revision=revision or None)
        if isinstance(found, str):
            return Weights(
                source=f"hf-hub:{hub_id}", sha256=file_sha256(found), hub_file=Path(found), hub_classes=cfg.num_classes
            )
    raise UserError(
        f"timm weights of {name} ({hub_id}) are not in --hub-cache {cache_dir}: vmibench never downloads; "
        f"fetch them elsewhere (timm.create_model('{timm_name}', pretrained=True)) or pass --checkpoint"
    )


def _go_offline(cache_dir: Path) -> None:
    if not cache_dir.is_dir():
        raise UserError(f"--hub-cache {cache_dir} is not a directory: give a Hugging Face hub cache folder")
    try:
        import huggingface_hub.constants as hub_constants
    except ImportError:
        raise UserError("--hub-cache needs the huggingface_hub package (pip install huggingface_hub)") from None
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HF_HUB_CACHE"] = str(cache_dir)
    # huggingface_hub read HF_HUB_OFFLINE when timm imported it, so the environment alone is too late.
    hub_constants.HF_HUB_OFFLINE = True


def checkpoint_classes(model: nn.Module, state_dict: Mapping[str, torch.Tensor], num_classes: int) -> int | None:
    """The checkpoint's class count when its only difference from ``model`` is the classifier size, else None.

    A head differs in the first dimension only, on tensors the model sized by ``num_classes``; anything else
    is left to the strict loader's missing/unexpected/shape listing.
    """
    own = model.state_dict()
    mismatched = [(own[k].shape, v.shape) for k, v in state_dict.items() if k in own and own[k].shape != v.shape]
    if not mismatched:
        return None
    sizes = {theirs[0] for mine, theirs in mismatched if mine[0] == num_classes and mine[1:] == theirs[1:]}
    head_like = all(len(m) == len(t) > 0 and m[0] == num_classes and m[1:] == t[1:] for m, t in mismatched)
    return sizes.pop() if head_like and len(sizes) == 1 else None


def head_mismatch(name: str, checkpoint_n: int, num_classes: int, why: str) -> UserError:
    """The one-line error for a classifier that does not fit the evaluated classes."""
    return UserError(
        f"{name}: the checkpoint's classifier has {checkpoint_n} classes but {num_classes} are evaluated ({why}): "
        "use the matching checkpoint, or --num-classes / --class-map to match its head"
    )


def build_model(entry: Entry, hw: Resolution, num_classes: int, weights: Weights, why: str) -> nn.Module:
    """``entry``'s model for input ``hw`` with ``num_classes`` outputs and ``weights`` loaded strictly."""
    name = entry.info.name
    if weights.hub_file is not None:
        if weights.hub_classes != num_classes:
            raise head_mismatch(name, weights.hub_classes, num_classes, why)
        return _timm_pretrained(entry, hw, num_classes, weights.hub_file)
    from vmibench import create_model
    from vmibench.checkpoint import load_state_dict_strict

    assert weights.state_dict is not None
    model = create_model(name, res=hw, num_classes=num_classes)
    state_dict = dict(weights.state_dict)
    if entry.checkpoint_filter is not None:
        # Resolution-dependent tensors first, so that only a real head difference is left to detect.
        state_dict = entry.checkpoint_filter(state_dict, model)
    found = checkpoint_classes(model, state_dict, num_classes)
    if found is not None:
        raise head_mismatch(name, found, num_classes, why)
    try:
        load_state_dict_strict(model, state_dict)
    except CheckpointError as exc:
        raise CheckpointError(f"{name} ({weights.source}): {exc}") from None
    return model


def _timm_pretrained(entry: Entry, hw: Resolution, num_classes: int, file: Path) -> nn.Module:
    import timm

    assert entry.info.timm_name is not None
    kwargs: dict[str, Any] = {
        "pretrained": True,
        "pretrained_cfg_overlay": {"file": str(file)},  # the cached file: timm loads it strictly, no download
        "num_classes": num_classes,
    }
    try:
        try:
            return timm.create_model(entry.info.timm_name, img_size=hw, **kwargs)
        except TypeError as exc:
            if "img_size" not in str(exc):
                raise
            return timm.create_model(entry.info.timm_name, **kwargs)  # CNNs take any input size as built
    except UserError:
        raise
    except Exception as exc:  # strict-load RuntimeError, safetensors' own error type for a damaged file, ...
        raise CheckpointError(
            f"{entry.info.name}: cached timm weights {file} do not load ({type(exc).__name__}: {first_line(exc, 200)})"
        ) from None


# -- plan -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AccuracySpec:
    """What the user asked for (``vmibench accuracy`` options)."""

    models: list[str]
    checkpoints: dict[str, Path]
    data_dir: Path
    resolutions: list[Resolution] | None = None  # None: each model's published eval size
    batch: int = 128
    workers: int = 4
    limit: int | None = None
    num_classes: int | None = None
    class_map: Path | None = None
    ema: bool = False
    device: str | None = None
    hub_cache: Path | None = None


@dataclass
class Plan:
    """A validated evaluation: data scanned, weights read and checked, one cell per (model, resolution)."""

    spec: AccuracySpec
    images: ImageSet
    num_classes: int
    data_hash: str
    device: str
    weights: dict[str, Weights]
    cells: list[tuple[str, Resolution]] = field(default_factory=list)

    @property
    def classes_why(self) -> str:
        if self.spec.num_classes is not None:
            return f"--num-classes {self.spec.num_classes}"
        return self.images.describe_classes()


def plan_accuracy(spec: AccuracySpec, ctx: DistContext) -> Plan:
    """Check everything that can be wrong with the input before anything is evaluated.

    Every model gets weights, every checkpoint is read and loaded strictly into its model at the first
    resolution (so mismatched keys or a head of another class count fail here), every resolution is one the
    model accepts.  Raises :class:`UserError` (one line) otherwise.
    """
    images = scan_image_folder(spec.data_dir, spec.class_map, spec.limit)
    num_classes = _num_classes(spec, images)
    device = process_device(spec.device, ctx)
    entries = {name: resolve(name) for name in spec.models}
    weights = {name: _weights_for(entry, spec) for name, entry in entries.items()}
    cells = []
    for name, entry in entries.items():
        sizes = spec.resolutions or [(entry.info.eval.input_size[1], entry.info.eval.input_size[2])]
        for hw in sizes:
            entry.info.check_resolution(hw)
            cells.append((name, hw))
    data_hash = data_dir_hash(images.root, [path for path, _ in images.samples])
    plan = Plan(spec, images, num_classes, data_hash, device, weights, cells)
    for name, entry in entries.items():
        first = next(hw for n, hw in cells if n == name)
        build_model(entry, first, num_classes, weights[name], plan.classes_why)
    return plan


def _num_classes(spec: AccuracySpec, images: ImageSet) -> int:
    needed = max(t for _, t in images.samples) + 1
    n = spec.num_classes if spec.num_classes is not None else len(images.class_names)
    if n < needed:
        raise UserError(f"--num-classes {n} is too small: {images.describe_classes()} and labels go up to {needed - 1}")
    return n


def _weights_for(entry: Entry, spec: AccuracySpec) -> Weights:
    name = entry.info.name
    if name in spec.checkpoints:
        try:
            return read_weights(spec.checkpoints[name], ema=spec.ema)
        except CheckpointError as exc:
            raise CheckpointError(f"{name}: {exc}") from None
    if spec.hub_cache is not None:
        return hub_weights(entry, spec.hub_cache)
    hint = " or --hub-cache DIR" if entry.info.timm_name is not None else ""
    raise UserError(f"no checkpoint for {name}: give --checkpoint {name}=PATH{hint} (random weights are not evaluated)")


# -- evaluation -----------------------------------------------------------------------------------------------

# Slots of the per-rank tally that is summed over ranks.
_CORRECT1, _CORRECTK, _LOSS, _COUNT, _FAILED, _SKIPPED = range(6)
_TALLY = 6


def _nothing() -> None:
    pass


def top_k(num_classes: int) -> int:
    """The k of the ``top5`` column: 5, or every class for heads of fewer than 5 classes."""
    return min(TOP_K, num_classes)


def accumulate(tally: torch.Tensor, logits: torch.Tensor, target: torch.Tensor, k: int) -> None:
    """Add a batch's correct top-1, correct top-k, summed cross-entropy and count to ``tally`` (float64)."""
    logits = logits.float()
    best = logits.topk(k, dim=1).indices
    tally[_CORRECT1] += (best[:, 0] == target).sum()
    tally[_CORRECTK] += (best == target[:, None]).any(dim=1).sum()
    tally[_LOSS] += F.cross_entropy(logits, target, reduction="sum").double()
    tally[_COUNT] += target.numel()


def evaluate_shard(
    model: nn.Module,
    loader: DataLoader[tuple[torch.Tensor, int]],
    device: str,
    k: int,
    advance: Callable[[], None] = _nothing,
) -> torch.Tensor:
    """Tally (see :func:`accumulate`) of ``model`` in eval mode over ``loader``, on ``device``."""
    tally = torch.zeros(_TALLY, dtype=torch.float64, device=device)
    model.eval()
    with torch.inference_mode():
        for images, target, skipped in loader:
            tally[_SKIPPED] += skipped
            if images is not None:
                logits = model(images.to(device, non_blocking=True))
                accumulate(tally, logits, target.to(device, non_blocking=True), k)
            advance()
    return tally


def reduce_over_ranks(tally: torch.Tensor, elapsed: float, ctx: DistContext) -> tuple[torch.Tensor, float]:
    """Sum the tallies of all ranks and take the slowest rank's time (identity for one process)."""
    if not ctx.distributed:
        return tally, elapsed
    import torch.distributed as dist

    dist.all_reduce(tally, op=dist.ReduceOp.SUM)
    slowest = torch.tensor([elapsed], dtype=torch.float64, device=tally.device)
    dist.all_reduce(slowest, op=dist.ReduceOp.MAX)
    return tally, float(slowest.item())


def evaluate_cell(
    plan: Plan, name: str, hw: Resolution, ctx: DistContext, advance: Callable[[], None] = _nothing
) -> AccuracyRecord | None:
    """Evaluate one (model, resolution) on this rank's shard and combine the ranks; the record on rank 0.

    A failure (out of memory, unreadable image) becomes a row with status oom/error; every rank still takes
    part in the reduction, so the other ranks do not wait forever.
    """
    config = data_config(resolve(name).info, hw)
    status, error = STATUS_OK, ""
    try:
        tally, elapsed = _evaluate_here(plan, name, hw, config, ctx, advance)
    except Exception as exc:  # a failed cell is a row; only its text is kept, so the model can be freed
        status, error = classify_failure(exc), one_line(exc)
        tally, elapsed = torch.zeros(_TALLY, dtype=torch.float64, device=plan.device), 0.0
        tally[_FAILED] = 1
        print(f"vmibench: rank {ctx.rank}: {name} @ {label(hw)} failed: {error}", file=sys.stderr)
    if plan.device.startswith("cuda"):
        torch.cuda.empty_cache()  # the next cell may be a bigger model
    tally, elapsed = reduce_over_ranks(tally, elapsed, ctx)
    if not ctx.is_main:
        return None
    if tally[_FAILED] > 0 and status == STATUS_OK:
        status, error = STATUS_ERROR, f"failed on {int(tally[_FAILED])} other rank(s): see their stderr"
    if status == STATUS_OK and tally[_COUNT] == 0:
        status, error = STATUS_ERROR, f"no image could be read ({int(tally[_SKIPPED])} unreadable, skipped)"
    return _record(plan, name, hw, config, tally, elapsed, status, error, ctx)


def _evaluate_here(
    plan: Plan,
    name: str,
    hw: Resolution,
    config: Mapping[str, Any],
    ctx: DistContext,
    advance: Callable[[], None],
) -> tuple[torch.Tensor, float]:
    """This rank's tally and loop time for one cell (the model lives only as long as this call)."""
    entry = resolve(name)
    model = build_model(entry, hw, plan.num_classes, plan.weights[name], plan.classes_why).to(plan.device)
    on_cuda = plan.device.startswith("cuda")
    loader = make_loader(
        plan.images.samples,
        eval_transform(config),
        batch=plan.spec.batch,
        workers=plan.spec.workers,
        ctx=ctx,
        pin_memory=on_cuda,
    )
    start = time.perf_counter()
    tally = evaluate_shard(model, loader, plan.device, top_k(plan.num_classes), advance)
    if on_cuda:
        torch.cuda.synchronize(plan.device)
    return tally, time.perf_counter() - start


def _record(
    plan: Plan,
    name: str,
    hw: Resolution,
    config: Mapping[str, Any],
    tally: torch.Tensor,
    elapsed: float,
    status: str,
    error: str,
    ctx: DistContext,
) -> AccuracyRecord:
    from vmibench.env import capture, utc_now
    from vmibench.user_models import source_digest

    env = capture(plan.device)
    ok = status == STATUS_OK
    count = int(tally[_COUNT])
    weights = plan.weights[name]
    return AccuracyRecord(
        timestamp=utc_now(),
        env=env,
        env_key=env.key(plan.device),
        model=name,
        model_source=source_digest(name),
        res=label(hw),
        top1=100.0 * float(tally[_CORRECT1]) / count if ok and count else None,
        top5=100.0 * float(tally[_CORRECTK]) / count if ok and count else None,
        loss=float(tally[_LOSS]) / count if ok and count else None,
        n_samples=count if ok else 0,
        n_skipped=int(tally[_SKIPPED]),
        images_per_s=count / elapsed if ok and elapsed > 0 else None,
        ckpt_sha256=weights.sha256,
        data_dir_hash=plan.data_hash,
        crop_pct=float(config["crop_pct"]),
        interpolation=str(config["interpolation"]),
        input_size="x".join(str(d) for d in config["input_size"]),
        num_classes=plan.num_classes,
        world_size=ctx.world_size,
        device=plan.device,
        status=status,
        error=error,
        top5_k=top_k(plan.num_classes),
        n_correct_top1=int(tally[_CORRECT1]) if ok else 0,
        n_correct_top5=int(tally[_CORRECTK]) if ok else 0,
        checkpoint=weights.source,
        ema=plan.spec.ema,
        data_dir=str(plan.images.root),
        dataset=Path(plan.images.root).name,
        batch=plan.spec.batch,
        limit=plan.spec.limit,
        height=hw[0],
        width=hw[1],
        wall_s=elapsed if ok else None,
    )


def run_plan(
    plan: Plan,
    ctx: DistContext,
    on_record: Callable[[AccuracyRecord], None] | None = None,
    progress: ProgressFactory | None = None,
) -> list[AccuracyRecord]:
    """Evaluate every cell of ``plan`` in order; ``on_record`` gets each row (rank 0) as soon as it exists."""
    per_cell = math.ceil(len(ShardSampler(len(plan.images.samples), ctx.rank, ctx.world_size)) / plan.spec.batch)
    bar = progress(per_cell * len(plan.cells), "evaluating") if progress and ctx.is_main else nullcontext(None)
    records = []
    with bar as advance:
        for name, hw in plan.cells:
            step = partial(advance, f"{name} @ {label(hw)}") if advance else _nothing
            rec = evaluate_cell(plan, name, hw, ctx, step)
            if rec is not None:
                if on_record is not None:
                    on_record(rec)
                records.append(rec)
    return records


def records_frame(records: Sequence[AccuracyRecord], *, brief: bool = False) -> pd.DataFrame:
    """Rows as a frame: :data:`ACCURACY_COLUMNS` first, then every other stored column (provenance included),
    or only :data:`BRIEF_EXTRA` of them when ``brief`` (the terminal table)."""
    import pandas as pd

    frame = pd.DataFrame([r.to_row() for r in records])
    if frame.empty:
        return frame
    rest = BRIEF_EXTRA if brief else [c for c in frame.columns if c not in ACCURACY_COLUMNS]
    return frame[ACCURACY_COLUMNS + rest]
