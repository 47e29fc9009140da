"""`vmibench accuracy`: top-1 / top-5 / loss of checkpoints on an ImageNet-style folder.

Thin: option parsing and output only; the protocol and the engine live in :mod:`vmibench.accuracy`.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from vmibench.cli.options import (
    DbOpt,
    DeviceOpt,
    FormatOpt,
    ImportOpt,
    NoStoreOpt,
    OutOpt,
    load_imports,
    parse_models,
    parse_resolutions,
    split_list,
)
from vmibench.cli.progress import progress
from vmibench.errors import UserError

if TYPE_CHECKING:
    from vmibench.accuracy import AccuracySpec, DistContext


def accuracy_cmd(
    data: Annotated[str, typer.Option("--data", "-d", help="ImageNet-style folder: DIR/<class>/<image>.")],
    models: Annotated[
        str | None, typer.Option("--models", "-m", help="Comma list of models (default: those in --checkpoint).")
    ] = None,
    checkpoint: Annotated[
        str | None, typer.Option("--checkpoint", "-c", help="Comma list of NAME=PATH, one per model.")
    ] = None,
    res: Annotated[
        str | None, typer.Option("--res", "-r", help="Comma list of sizes (224 or HxW); default: published size.")
    ] = None,
    batch: Annotated[int, typer.Option("--batch", "-b", min=1, help="Images per forward, per process.")] = 128,
    workers: Annotated[
        int | None, typer.Option(min=0, help="Data-loading workers per process (default: min(4, cores)).")
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Evaluate N images spread evenly over the set.")] = None,
    num_classes: Annotated[
        int | None, typer.Option(min=1, help="Classifier size (default: the number of classes of the data).")
    ] = None,
    class_map: Annotated[
        str | None, typer.Option(help="Text file, one class-folder name per line: label = line number.")
    ] = None,
    ema: Annotated[bool, typer.Option("--ema", help="Evaluate the checkpoints' EMA weights.")] = False,
    device: DeviceOpt = None,
    hub_cache: Annotated[
        str | None, typer.Option(help="Hugging Face cache holding timm weights of timm models (never downloads).")
    ] = None,
    fmt: FormatOpt = "table",
    out: OutOpt = None,
    db: DbOpt = None,
    no_store: NoStoreOpt = False,
    imports: ImportOpt = None,
) -> None:
    """Top-1 / top-5 / loss of checkpoints (any official wrapping) on an ImageFolder, with timm's eval pipeline.

    Labels: sorted class-folder order, or line numbers of --class-map (timm's one-name-per-line format).
    Pre-processing: timm's eval transform with each model's published input size, crop_pct, interpolation,
    mean and std; --res changes only the input size and builds the model for it.
    top1 / top5 are percentages; top5 is top-k with k = min(5, num_classes) (column top5_k); loss is the mean
    cross-entropy; images_per_s = samples / wall time of the loop (decode + transform + forward), slowest process;
    data_dir_hash = SHA-256 of the evaluated files' sorted relative paths and sizes.

    Multi-process: `torchrun --nproc-per-node N -m vmibench accuracy ...` gives rank r the samples r, r+N, ...
    (no duplicates) and sums the counts; rank 0 prints and stores. Each row is stored as soon as it is computed.
    CSV / JSON carry every column (provenance too); the table shows a selection.
    """
    from vmibench.accuracy import AccuracySpec, dist_context, parse_checkpoint_entries
    from vmibench.env import usable_cores
    from vmibench.output import check_output

    ctx = dist_context()
    with _rank0_reports(ctx):
        check_output(fmt, out)
        load_imports(imports)
        entries = split_list(checkpoint, "checkpoint") if checkpoint is not None else []
        names = parse_models(models, lambda: [e.partition("=")[0].strip() for e in entries])
        if not names:
            raise UserError("no models to evaluate: give --checkpoint NAME=PATH (and --models)")
        spec = AccuracySpec(
            models=names,
            checkpoints=parse_checkpoint_entries(entries, names),
            data_dir=Path(data),
            resolutions=parse_resolutions(res) if res else None,
            batch=batch,
            workers=workers if workers is not None else min(4, usable_cores()),
            limit=limit,
            num_classes=num_classes,
            class_map=Path(class_map) if class_map else None,
            ema=ema,
            device=device,
            hub_cache=Path(hub_cache) if hub_cache else None,
        )
        _evaluate(spec, ctx, fmt=fmt, out=out, db=db, store=not no_store)


@contextmanager
def _rank0_reports(ctx: DistContext) -> Iterator[None]:
    # Every process validates the same input, so under torchrun only rank 0 prints the one-line error.
    try:
        yield
    except UserError:
        if ctx.is_main:
            raise
        raise typer.Exit(2) from None


def _evaluate(spec: AccuracySpec, ctx: DistContext, *, fmt: str, out: str | None, db: str | None, store: bool) -> None:
    from vmibench.accuracy import plan_accuracy, process_group, records_frame, run_plan
    from vmibench.output import emit
    from vmibench.store import ResultStore

    plan = plan_accuracy(spec, ctx)  # every input error surfaces here, before anything is evaluated
    results = ResultStore(db) if store and ctx.is_main else None
    with process_group(ctx, plan.device):
        records = run_plan(plan, ctx, on_record=results.add if results else None, progress=progress)
    if ctx.is_main:
        emit(records_frame(records, brief=fmt == "table"), fmt, out, caption="top1 / top5 in %; loss = mean CE")
        failed = [r for r in records if r.status != "ok"]
        if failed:  # the rows are stored and printed, but a script must not mistake this for success
            print(f"vmibench: {len(failed)} of {len(records)} accuracy cell(s) failed: "
                  + "; ".join(f"{r.model} @ {r.res}: {r.error}" for r in failed), file=sys.stderr)  # fmt: skip
            raise typer.Exit(1)
