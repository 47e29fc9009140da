"""`vmibench check ...`: cross-checks of the harness against independent tools (its own typer sub-app)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from vmibench.cli.options import (
    METRICS_HELP,
    DbOpt,
    FormatOpt,
    MaxTimeOpt,
    OutOpt,
    parse_models,
    parse_resolutions,
    split_list,
    verbatim,
)
from vmibench.cli.progress import progress_bar
from vmibench.errors import UserError

if TYPE_CHECKING:
    import pandas as pd

check_app = typer.Typer(
    no_args_is_help=True, rich_markup_mode=None, help="Cross-checks of the harness against independent tools."
)


@check_app.command("timer", epilog=verbatim(METRICS_HELP))
def check_timer_cmd(
    models: Annotated[str, typer.Option("--models", "-m", help="Two or more models.")] = "vminet_t,deit_t",
    res: Annotated[int, typer.Option("--res", "-r", min=32, help="Square input size.")] = 224,
    threads: Annotated[int | None, typer.Option(help="Threads for both timers (default: all usable cores).")] = None,
    repeats: Annotated[int, typer.Option(min=1, help="Worker processes (rounds) per model.")] = 2,
    fmt: FormatOpt = "table",
    out: OutOpt = None,
) -> None:
    """Compare vmibench's median latency with torch.utils.benchmark's blocked_autorange, same model and threads.

    Each model gets `repeats` fresh worker processes, run by the same runner as every measurement (rounds in a
    random order); in each, the two timers alternate three times on the same model instance. The table gives
    each timer's median over its rounds, their ratio, and the ratio between models by each timer. Agreement
    within 10% is the acceptance bar.
    """
    from vmibench.measure.crosscheck import timer_crosscheck
    from vmibench.output import check_output, emit

    check_output(fmt, out)
    names = parse_models(models, lambda: ["vminet_t", "deit_t"])
    with progress_bar("cross-checking") as bar:
        frame = timer_crosscheck(names, res, threads=threads, repeats=repeats, progress=bar)
    emit(frame, fmt, out, title="vmibench vs torch.utils.benchmark")


@check_app.command("repeat")
def check_repeat_cmd(
    models: Annotated[str, typer.Option("--models", "-m", help="Three (or more) models; ratios are to the first.")] = (
        "vminet_t,mlla_t,flatten_swin_t"
    ),
    res: Annotated[str, typer.Option("--res", "-r", help="Input size: 224 or HxW.")] = "224",
    runs: Annotated[int, typer.Option(min=2, help="Independent repetitions of the whole comparison.")] = 2,
    rounds: Annotated[int, typer.Option(min=1, help="Rounds (worker processes) per model in each run.")] = 3,
    threads: Annotated[int, typer.Option(min=1, help="CPU threads per worker.")] = 1,
    max_time: MaxTimeOpt = 3.0,
    fmt: FormatOpt = "table",
    out: OutOpt = None,
) -> None:
    """Is a comparison reproducible on this machine? Run the same model comparison `runs` times and compare.

    Each run measures every model in `rounds` interleaved rounds (nothing is stored) and gives each model's
    latency ratio to the first model with a paired 95% t-interval over rounds. The table has one row per
    (model, run) and says whether the runs' CIs overlap (`overlap_all_runs`). A benchmark, not a test: quote it.
    """
    from vmibench.measure.crosscheck import repeat_comparison
    from vmibench.output import check_output, emit

    check_output(fmt, out)
    names = parse_models(models, lambda: ["vminet_t", "mlla_t", "flatten_swin_t"])
    (hw,) = parse_resolutions(res) if "," not in res else (None,)
    if hw is None:
        raise UserError(f"bad --res '{res}': give one size (224 or HxW)")
    if len(names) < 2:
        raise UserError("give at least two models: ratios are to the first")
    with progress_bar("repeating") as bar:
        frame = repeat_comparison(names, hw, runs=runs, rounds=rounds, threads=threads, max_time_s=max_time,
                                  progress=bar)  # fmt: skip
    emit(frame, fmt, out, title=f"latency ratios to {names[0]} over {runs} runs, paired 95% t-interval")


@check_app.command("scan")
def check_scan_cmd(
    backends: Annotated[str, typer.Option(help="Comma list of scan backends to time.")] = "torch,reference",
    threads: Annotated[int | None, typer.Option(help="Threads while timing (default: all usable cores).")] = None,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    min_time: Annotated[float, typer.Option(help="blocked_autorange time per backend and shape, s.")] = 1.0,
    fmt: FormatOpt = "table",
    out: OutOpt = None,
) -> None:
    """Selective-scan backends at the VMamba-T stage-1 (B=1, L=3136, D=384, N=1) and Vim-Ti (B=1, L=197,
    D=384, N=16) shapes: median time (torch.utils.benchmark), speed-up over and max error against the sequential
    reference (fp32)."""
    from dataclasses import asdict

    import pandas as pd

    from vmibench.backends import BACKENDS
    from vmibench.env import resolve_device, usable_cores
    from vmibench.ops.scan_bench import compare_scan_backends
    from vmibench.output import check_output, emit

    check_output(fmt, out)
    names = split_list(backends, "backend")
    for name in names:
        if name not in BACKENDS or name == "auto":
            raise UserError(f"unknown scan backend '{name}': use torch, reference, mamba_ssm or triton")
    try:
        rows = compare_scan_backends(backends=names, threads=threads or usable_cores(), device=resolve_device(device),
                                     min_time_s=min_time)  # fmt: skip
    except RuntimeError as exc:  # a backend that cannot run here (mamba_ssm off CUDA)
        raise UserError(str(exc)) from None
    emit(pd.DataFrame([asdict(r) for r in rows]), fmt, out, title="selective scan backends")


@check_app.command("calibrate")
def check_calibrate_cmd(
    db: DbOpt = None,
    trials: Annotated[int, typer.Option(min=50, help="Simulated cells per method and round count.")] = 1000,
    store_table: Annotated[
        bool,
        typer.Option(
            "--store/--no-store", help="Keep the study in the store (the report labels its intervals with it)."
        ),
    ] = True,
    fmt: FormatOpt = "table",
    out: OutOpt = None,
) -> None:
    """Calibration study of the interval methods: fit the variance structure of the store's cells (3+ rounds; an
    interleaved pair counts as the series of its per-cycle ratios),
    simulate the whole procedure (t-rounds, bootstrap, random-effects; K = 3, 5, 8, 12; the adaptive phase of
    cpu-default) and subsample real cells with many rounds; print nominal vs actual coverage, and keep the table
    in the store so reports label each interval with the level it actually has."""
    import time
    from pathlib import Path

    import pandas as pd

    from vmibench.analysis.calibration import fit_structure, simulate_adaptive, simulate_coverage, subsample_real
    from vmibench.analysis.estimates import rounds_of
    from vmibench.measure.kinds import call_ratios
    from vmibench.output import check_output, emit
    from vmibench.reports.sections.verdicts import CALIBRATION_TABLE
    from vmibench.store import ResultStore, default_db_path
    from vmibench.sweep import PRESETS

    check_output(fmt, out)
    path = Path(db) if db else default_db_path()
    if not path.exists():
        raise UserError(f"no results database at {path}: run `vmibench sweep --preset cpu-default` first")
    started = time.monotonic()
    with ResultStore(path, readonly=not store_table) as store:
        cells = []
        for table in ("latency", "ops"):
            rows = store.read(table, {"status": "ok"}, keep_row_id=True)
            if rows.empty:
                continue
            by_row = rounds_of(store.samples(table, rows["row_id"].tolist()))
            cells += [r for r in by_row.values() if len(r) >= 3]
        pairs = store.read("pairs", {"status": "ok"}, keep_row_id=True)
        series = []  # an interleaved pair's rounds of per-cycle ratios: its ratio's variance structure
        if not pairs.empty:
            by_row = rounds_of(store.samples("pairs", pairs["row_id"].tolist()))
            series = [[call_ratios(s) for s in r] for r in by_row.values() if len(r) >= 3]
        cells += series
        try:
            structure = fit_structure(cells)
        except ValueError as exc:
            raise UserError(f"{path}: {exc}") from None
        preset = PRESETS["cpu-default"]
        frame = pd.concat([
            simulate_coverage(structure, trials=trials),
            simulate_adaptive(structure, min_rounds=preset.rounds, max_rounds=preset.max_rounds, margin=0.10,
                              trials=trials),
            subsample_real(cells),
        ], ignore_index=True)  # fmt: skip
        frame["cells_fitted"] = structure.cells
        frame["run_s"] = round(time.monotonic() - started, 1)
        if store_table:
            store.append_rows(CALIBRATION_TABLE, frame.to_dict("records"))
    emit(frame, fmt, out, title=f"interval calibration: {structure.cells} cells of {path.name} ({len(series)} of them "
         f"interleaved pairs' ratios), {trials} trials each, {frame['run_s'].iloc[0]} s")  # fmt: skip


def _verdict_tables(names: list[str]) -> list[pd.DataFrame]:
    """Each run's verdict table (pandas), every path checked before any is read: a store, or a result-set folder
    (its store.sqlite)."""
    from pathlib import Path

    from vmibench.reports.sections.verdicts import verdict_table
    from vmibench.reports.selection import load
    from vmibench.resultset import DATA
    from vmibench.store import ResultStore

    paths = [Path(name) / DATA if Path(name).is_dir() else Path(name) for name in names]
    for path in paths:
        if not path.exists():
            raise UserError(f"no store at {path}: give stores (or result-set folders) of independent runs")
    tables = []
    for path in paths:
        with ResultStore(path, readonly=True) as store:
            tables.append(verdict_table(load(store)))
    return tables


RoundsFactorOpt = Annotated[float, typer.Option("--rounds-factor", min=1.0, help="Also simulate runs with this many "
                                                "times the rounds: the agreement they would reach.")]  # fmt: skip


@check_app.command("stability")
def check_stability_cmd(
    db_a: Annotated[str, typer.Argument(help="A store or result set (its store.sqlite) of one run.")],
    db_b: Annotated[str, typer.Argument(help="Another, independent run of the same comparisons.")],
    rounds_factor: RoundsFactorOpt = 1.0,
    fmt: FormatOpt = "table",
    out: OutOpt = None,
) -> None:
    """Do two independent runs reach the same three-way verdicts on the pre-registered comparisons? Prints every
    comparison with both intervals, the agreement rate, the share decided (agreement is cheap when nothing is
    decided), how often one run's estimate lies inside the other's interval (a run-level variance check), and
    the agreement expected of two runs at these interval widths (a simulation:
    :func:`vmibench.analysis.comparisons.expected_agreement`), so a shortfall can be told apart from intervals
    that are too narrow."""
    from vmibench.analysis.comparisons import expected_agreement, stability
    from vmibench.output import check_output, emit

    check_output(fmt, out)
    tables = _verdict_tables([db_a, db_b])
    both, rates = stability(*tables)
    both["expected_agree"], expected = expected_agreement(*tables)
    more = ""
    if rounds_factor > 1.0:
        both["expected_agree_more"], scaled = expected_agreement(*tables, rounds_factor=rounds_factor)
        more = f"; {scaled:.0%} with {rounds_factor:g}x the rounds"
    n = len(both)
    emit(both, fmt, out, title=f"verdict stability: {int(both['agree'].sum())}/{n} agree ({rates['agree']:.0%}); "
         f"decided {rates['decided']:.0%} of verdicts over both runs; {rates['inside']:.0%} of estimates inside the "
         f"other run's interval; {expected:.0%} expected at these interval widths (simulated){more}")  # fmt: skip


RunsArg = Annotated[list[str], typer.Argument(help="Stores or result sets of two or more independent runs of the same "
                                              "comparisons.")]  # fmt: skip


@check_app.command("runs")
def check_runs_cmd(
    runs: RunsArg,
    fmt: FormatOpt = "table",
    out: OutOpt = None,
) -> None:
    """Do independent runs differ by more than their own intervals say? Per family of pre-registered comparisons
    (exponents against a constant, exponent differences, interleaved and separate ratios): the standard error of
    one run, the scatter between runs, and the run-level part a run samples only once, whatever its rounds
    (:func:`vmibench.analysis.comparisons.run_level`). Log scale for ratios, exponent units for exponents."""
    from vmibench.analysis.comparisons import run_level
    from vmibench.output import check_output, emit

    if len(runs) < 2:
        raise UserError("check runs needs two or more runs: give their stores or result-set folders")
    check_output(fmt, out)
    frame = run_level(_verdict_tables(runs))
    emit(frame, fmt, out, title=f"between runs: {len(runs)} independent runs, per family of comparisons")
