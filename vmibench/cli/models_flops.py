"""`vmibench models` (the registry) and `vmibench flops` (parameters and FLOPs beside published values)."""

from __future__ import annotations

from typing import Annotated

import typer

from vmibench.cli.options import (
    AllColumnsOpt,
    ColumnsOpt,
    DbOpt,
    FormatOpt,
    ImportOpt,
    ModelsOpt,
    NoStoreOpt,
    OutOpt,
    ResOpt,
    all_registered,
    load_imports,
    parse_models,
    parse_resolutions,
)
from vmibench.cli.progress import track

FLOPS_HELP = """
Definitions: gmacs = multiply-accumulates per image counted by fvcore (1 MAC = 1 "FLOP", the convention papers
print as GFLOPs); gflops = 2 x gmacs. vmibench adds fvcore handles for what it skips: scaled_dot_product_attention
(QK^T + AV), baddbmm, and the selective scan, which is ONE operator counted as 9*B*L*D*N + B*D*L, +B*D*L when a
z gate is applied (D = every scanned channel and direction; state-spaces/mamba#110, as in VMamba) -- papers that
used another rule differ
(see published_flops_rule). gmacs_torch is torch.utils.flop_counter's count (matmul/conv/attention/scan only), a
cross-check. uncounted_ops lists operators fvcore skipped (element-wise). gbytes_moved = bytes read + written per
image by every aten operator as its own kernel (views move nothing, the selective scan its operands and output
once): the unfused lower bound of memory traffic a roofline uses. published_* are reference numbers from the
model's record, never our measurements.
"""


def models_cmd(
    fmt: FormatOpt = "table", out: OutOpt = None, columns: ColumnsOpt = None, all_columns: AllColumnsOpt = False
) -> None:
    """List registered models with their published numbers and eval settings.

    'adaptation' says how a model runs at resolutions other than its build size -- vmibench's generalisation,
    e.g. VMINet's per-position context weight is resized; 'reconstruction' flags anything not verifiable
    against official code. published_* columns are reference numbers from the cited source.
    """
    from vmibench.output import check_output, emit
    from vmibench.reports.tables import models_frame, select_columns

    check_output(fmt, out)
    frame, caption = select_columns(models_frame(), "models", fmt, columns, all_columns)
    emit(frame, fmt, out, title="vmibench registry", caption=caption)


def flops_cmd(
    models: ModelsOpt = None,
    res: ResOpt = None,
    batch: Annotated[int, typer.Option("--batch", "-b", min=1, help="Batch traced (gmacs are per image).")] = 1,
    columns: ColumnsOpt = None,
    all_columns: AllColumnsOpt = False,
    fmt: FormatOpt = "table",
    out: OutOpt = None,
    db: DbOpt = None,
    no_store: NoStoreOpt = False,
    imports: ImportOpt = None,
) -> None:
    """Count parameters and FLOPs (fvcore + vmibench handles; FlopCounterMode cross-check) beside published values.

    Without --res each model is counted at its published evaluation resolution.
    """
    from vmibench.flops import measure_flops
    from vmibench.output import check_output, emit
    from vmibench.registry import resolve_info
    from vmibench.reports.tables import frame_of, select_columns
    from vmibench.store import ResultStore

    check_output(fmt, out)
    load_imports(imports)
    names = parse_models(models, all_registered)
    resolutions = parse_resolutions(res) if res else None
    cells = []
    for name in names:
        info = resolve_info(name)
        sizes = resolutions or [(info.eval.input_size[1], info.eval.input_size[2])]
        for hw in sizes:
            info.check_resolution(hw)
            cells.append((name, hw))
    records = []
    store = None if no_store else ResultStore(db)
    for name, hw in track(cells, len(cells), "counting FLOPs", lambda c: f"{c[0]} @ {c[1][0]}x{c[1][1]}"):
        rec = measure_flops(name, hw, batch)
        if store is not None:
            store.add(rec)
        records.append(rec)
    frame, caption = select_columns(frame_of(records), "flops", fmt, columns, all_columns)
    emit(frame, fmt, out, caption="; ".join(filter(None, ["gmacs per image; published_* are reference values",
                                                           caption])))  # fmt: skip
