"""The commands over stored rows: `results` (print them), `compare` (latency ratios to a baseline) and `report`
(REPORT.md with tables and figures)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from vmibench.cli.options import (
    AllColumnsOpt,
    ColumnsOpt,
    DbOpt,
    FormatOpt,
    ImportOpt,
    OutOpt,
    load_imports,
    parse_resolutions,
    split_list,
)
from vmibench.errors import UserError

RESULT_TABLES = (
    "latency",
    "ops",
    "flops",
    "peak",
    "bandwidth",
    "maxbatch",
    "profile",
    "breakdown",
    "roofs",
    "pairs",
    "accuracy",
    "samples",
)


def results_cmd(
    models: Annotated[str | None, typer.Option("--models", "-m", help="Only these models (comma list).")] = None,
    table: Annotated[str, typer.Option("--table", "-t", help=f"One of {', '.join(RESULT_TABLES)}.")] = "latency",
    columns: ColumnsOpt = None,
    all_columns: AllColumnsOpt = False,
    status: Annotated[str | None, typer.Option(help="Only rows with this status (ok, oom, ...).")] = None,
    res: Annotated[
        str | None, typer.Option("--res", "-r", help="Only rows of these sizes (comma list: 224 or HxW).")
    ] = None,
    fmt: FormatOpt = "table",
    out: OutOpt = None,
    db: DbOpt = None,
) -> None:
    """Print stored rows (one table of the results database), optionally filtered.

    `--table samples` prints the raw per-call times (row_table, row_id, round, process, iter, ms) of the rows,
    with each row's model or op; `--models` and `--res` filter them too."""
    from pathlib import Path

    from vmibench.output import check_output, emit
    from vmibench.reports.tables import select_columns
    from vmibench.resolution import label
    from vmibench.store import ResultStore, default_db_path

    check_output(fmt, out)
    if table not in RESULT_TABLES:
        raise UserError(f"unknown table '{table}': use one of {', '.join(RESULT_TABLES)}")
    from vmibench.records import STATUSES

    if status is not None and status not in STATUSES:
        raise UserError(f"unknown status '{status}': use one of {', '.join(STATUSES)}")
    where: dict[str, object] = {}
    if models:
        where["model"] = split_list(models, "model")
    if res:
        where["res"] = [label(hw) for hw in parse_resolutions(res)]
    path = db or default_db_path()
    if not Path(path).exists():
        raise UserError(f"no results database at {path}: run `vmibench latency` first or pass --db")
    with ResultStore(path, readonly=True) as store:
        if table not in store.tables():
            raise UserError(f"no table '{table}' in {path}: it has {', '.join(store.tables()) or 'no tables'}")
        if table == "samples":
            frame = _samples_frame(store, where)
        else:
            frame = store.read(table, {**where, "status": status} if status else where)
    frame, caption = select_columns(frame, table, fmt, columns, all_columns)
    emit(frame, fmt, out, caption=caption)


def _samples_frame(store: object, where: dict[str, object]) -> object:
    """Samples joined with the model (latency rows) or op (ops rows) they belong to, of the rows matching
    ``where`` (a table without one of its columns -- ops and peak rows have no model -- has none)."""
    import pandas as pd

    frames = []
    for table, name in (("latency", "model"), ("ops", "op"), ("peak", "matmul_n"), ("pairs", "pair")):
        rows = store.read(table, where, keep_row_id=True)  # type: ignore[attr-defined]
        if rows.empty:
            continue
        if table == "pairs":  # a pair's calls alternate: even iters are a's, odd ones b's
            rows = rows.assign(pair=rows["a"].astype(str) + " | " + rows["b"].astype(str))
        samples = store.samples(table, rows["row_id"].tolist())  # type: ignore[attr-defined]
        if samples.empty:
            continue
        label = rows.set_index("row_id")[name].astype(str)
        frames.append(samples.assign(name=samples["row_id"].map(label)))
    if not frames:
        return pd.DataFrame(columns=["row_table", "row_id", "name", "round", "process", "iter", "ms"])
    frame = pd.concat(frames, ignore_index=True)
    return frame[["row_table", "row_id", "name", "round", "process", "iter", "ms"]]


def compare_cmd(
    models: Annotated[str, typer.Option("--models", "-m", help="Comma list of models to set against the baseline.")],
    baseline: Annotated[str, typer.Option("--baseline", help="The model every ratio is relative to.")] = "vminet_t",
    res: Annotated[str, typer.Option("--res", "-r", help="One size: 224 or HxW.")] = "224",
    batch: Annotated[int, typer.Option("--batch", "-b", min=1, help="Batch size of the rows.")] = 1,
    device: Annotated[str | None, typer.Option(help="Only rows of this device (cpu, cuda).")] = None,
    mode: Annotated[str, typer.Option(help="Rows of this mode: infer (forward) or train (training step).")] = "infer",
    task: Annotated[str, typer.Option(help="Rows of this task: classify or backbone (features).")] = "classify",
    fmt: FormatOpt = "table",
    out: OutOpt = None,
    db: DbOpt = None,
) -> None:
    """Latency ratio of each model's newest stored row to the baseline's (same settings, mode and task), with its
    95% t-interval over rounds -- paired by round when both rows come from one run. `verdict` is three-way with a
    10% margin: faster/slower by at least 10%, equivalent within it, else undetermined."""
    from pathlib import Path

    from vmibench.output import check_output, emit
    from vmibench.reports.compare import compare
    from vmibench.reports.tables import select_columns
    from vmibench.resolution import as_hw, label
    from vmibench.store import ResultStore, default_db_path

    check_output(fmt, out)
    names = split_list(models, "model")
    path = db or default_db_path()
    if not Path(path).exists():
        raise UserError(f"no results database at {path}: run `vmibench latency --rounds 3` first or pass --db")
    with ResultStore(path, readonly=True) as store:
        frame = compare(store, names, baseline, label(as_hw(res)), batch=batch, device=device, mode=mode, task=task)
    frame, caption = select_columns(frame, "compare", fmt)  # a terminal table fits 80 columns; CSV/JSON: all
    emit(frame, fmt, out, title=f"latency ratio to {baseline} at {res}, 95% t-interval over rounds", caption=caption)


def report_cmd(
    out: Annotated[
        str | None,
        typer.Option("--out", "-o", help="Output dir: REPORT.md, tables/, figures/ (default: report/, scratch)."),
    ] = None,
    device: Annotated[str | None, typer.Option(help="Device whose rows to report (default: newest).")] = None,
    db: DbOpt = None,
    source: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="A committed result set (results/<machine>/): rebuild its report from its data "
            "and manifest, byte for byte.",
        ),
    ] = None,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="With --from: rebuild in a temporary folder and compare with the "
            "committed files; exit 1 on any difference.",
        ),
    ] = False,
    imports: ImportOpt = None,
) -> None:
    """Write REPORT.md with CSV tables and PNG figures from the store: scaling, fits, utilisation, roofline, ops,
    training, max batch, Pareto, and the reviewer questions answered from the data (regenerate rather than edit).
    Any subset of a store can be reported; a store without latency or ops rows is refused in one line.

    A committed result set is never written by this command unless --out names it, and even then only with
    --from (its own data): `vmibench publish` replaces a result set's data."""
    from pathlib import Path

    from vmibench.output import check_writable
    from vmibench.reports.report import write_report
    from vmibench.resultset import is_result_set, rebuild, verify
    from vmibench.store import default_db_path

    load_imports(imports)  # their records (published numbers) join the report's tables
    target = Path(out or "report")
    if check and source is None:
        raise UserError("--check compares a rebuilt result set with its committed files: give --from DIR")
    if source is not None:
        if db is not None:
            raise UserError("give --from (a result set) or --db (a store), not both")
        if check:
            diffs, notes = verify(Path(source))
            for line in notes:
                print(f"note: {line}", file=sys.stderr)
            if diffs:
                print(f"{source}: {len(diffs)} file(s) differ from their rebuild:", file=sys.stderr)
                for line in diffs:
                    print(f"  {line}", file=sys.stderr)
                raise typer.Exit(1)
            print(f"{source}: the report, tables and figures rebuild byte for byte", file=sys.stderr)
            return
        check_writable(target, directory=True)
        print(f"wrote {rebuild(Path(source), target)}", file=sys.stderr)
        return
    if is_result_set(target):
        raise UserError(
            f"{target} is a committed result set: its report is rebuilt from its own data "
            f"(`vmibench report --from {target}`); `vmibench publish --db STORE --out {target}` replaces it"
        )
    path = Path(db) if db else default_db_path()
    if not path.exists():
        raise UserError(f"no results database at {path}: run `vmibench sweep` first or pass --db")
    check_writable(target, directory=True)
    written = write_report(str(path), target, device)
    print(f"wrote {written}", file=sys.stderr)


def publish_cmd(
    out: Annotated[
        str | None,
        typer.Option(
            "--out",
            "-o",
            help="The result set to write (default: results/<this machine>, e.g. "
            "results/cpu-intel-xeon-platinum-8481c-2core).",
        ),
    ] = None,
    db: DbOpt = None,
    device: Annotated[str | None, typer.Option(help="Device whose rows to report (default: newest).")] = None,
) -> None:
    """Make a committed result set: a compacted copy of the store (raw data), manifest.json (its SHA-256, the
    measuring commits, the commit the report is generated at, staleness, library versions), then REPORT.md,
    tables/ and figures/ from that copy. `vmibench report --from DIR` rebuilds the report byte for byte."""
    from pathlib import Path

    from vmibench.output import check_writable
    from vmibench.resultset import machine_slug, publish
    from vmibench.store import default_db_path

    path = Path(db) if db else default_db_path()
    if not path.exists():
        raise UserError(f"no results database at {path}: run `vmibench sweep` first or pass --db")
    target = Path(out) if out else Path("results") / machine_slug()
    check_writable(target, directory=True)
    print(f"wrote {publish(path, target, device)}", file=sys.stderr)
