"""Command-line interface (typer).  Thin: parsing, progress and output only; the logic lives in the modules.

Every user error -- unknown model, resolution a model does not accept, malformed list, unreadable checkpoint --
is printed as one line ``vmibench: error: ...`` with exit status 2 and no traceback.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from vmibench.errors import UserError
from vmibench.measure.interrupt import Interrupted
from vmibench.user_models import IMPORT_HELP

if TYPE_CHECKING:
    from vmibench.measure.cluster import ScaleOut
    from vmibench.measure.runner import RunSummary
    from vmibench.measure.workloads import Cell, Settings
    from vmibench.sweep import Preset

T = TypeVar("T")

METRICS_HELP = """
Metrics (every row also records device, dtype, batch, threads, flags, scan backend, library versions, commit):

- latency_ms_median / _iqr / _p10 / _p90: per-call wall time of one forward of the whole batch, in ms, over every
  timed call of every round; CPU timed with time.perf_counter, CUDA with a pair of CUDA events around each call
  (synchronised). Each round warms up (>= 3 calls and >= 0.5 s for that shape) and times until the median's robust
  standard error is below its share of --precision or its share of the --max-time budget; n_iters = timed calls.

- rounds: worker processes the cell ran in; the cells are visited round-robin in a new random order each round, so
  a shared machine's drift falls on all cells alike; the rounds split the cell's time budget.

- latency_ms_ci_low / _ci_high: bootstrap 95% interval of the median (resampling rounds, then calls within them);
  process_spread = (max - min) / median of the rounds' medians. Raw calls: `vmibench results --table samples`.

- throughput_ips: images per second = batch / median latency.

- peak_mem_mb: rise of memory above what was held before the first forward (weights and input already
  allocated), i.e. activations and workspaces; mem_method says how: cuda_max_allocated (CUDA allocator peak) or
  rss_hwm (resident-set high-water mark of the worker process). The largest of the rounds.

- gmacs: multiply-accumulates per image, fvcore convention (1 MAC = 1 "FLOP", what papers print as GFLOPs);
  gflops = 2 x gmacs.

Each cell runs in fresh worker processes; failures (oom, error, crashed, timeout) are rows, not crashes, with the
worker's traceback and output in error_detail. Cells already stored for this environment are printed, not
re-measured (--force re-measures; --retry-failed re-runs failures and what they skipped). Ctrl-C stops a run;
rerunning the same command resumes it.
"""

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

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="vmibench: FLOPs, latency, memory and accuracy of VMINet and its rivals under one protocol.",
)
check_app = typer.Typer(
    no_args_is_help=True, rich_markup_mode=None, help="Cross-checks of the harness against independent tools."
)
app.add_typer(check_app, name="check")


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            print(f"vmibench {version('vmibench')}")
        except PackageNotFoundError:  # run from a checkout that was never installed
            print("vmibench (not installed; running from a checkout)")
        raise typer.Exit()


@app.callback()
def _root(
    show_version: Annotated[
        bool, typer.Option("--version", help="Print the version and exit.", callback=_print_version, is_eager=True)
    ] = False,
) -> None:
    """vmibench: FLOPs, latency, memory and accuracy of VMINet and its rivals under one protocol."""


def _verbatim(text: str) -> str:
    """Help text whose paragraphs click prints as written (``\\b``), not re-flowed into one block."""
    return "\n\n".join("\b\n" + part.strip("\n") for part in text.strip().split("\n\n"))


FormatOpt = Annotated[str, typer.Option("--format", "-f", help="table | csv | json")]
OutOpt = Annotated[str | None, typer.Option("--out", "-o", help="Write to this file instead of stdout.")]
DbOpt = Annotated[str | None, typer.Option("--db", help="Results database (default results/vmibench.sqlite).")]
ModelsOpt = Annotated[
    str | None, typer.Option("--models", "-m", help="Comma list of registered or timm names; 'all' = every registered.")
]
ResOpt = Annotated[str | None, typer.Option("--res", "-r", help="Comma list of sizes: 224 or HxW (800x1280).")]
ImportOpt = Annotated[list[str] | None, typer.Option("--import", metavar="MODULE_OR_FILE", help=IMPORT_HELP)]
BatchOpt = Annotated[str, typer.Option("--batch", "-b", help="Comma list of batch sizes.")]
ColumnsOpt = Annotated[
    str | None,
    typer.Option("--columns", help="Comma list of columns to print (default: a compact set on a terminal table)."),
]
AllColumnsOpt = Annotated[bool, typer.Option("--all-columns", help="Print every column.")]
BudgetOpt = Annotated[
    float | None, typer.Option("--budget-min", help="Start no cell after this many minutes (rerun to resume).")
]
CudaGraphOpt = Annotated[
    bool, typer.Option("--cuda-graph", help="CUDA only: capture the forward once after warm-up, time its replays.")
]


# -- argument parsing -----------------------------------------------------------------------------------------


def split_list(text: str, what: str) -> list[str]:
    """``"a, b,c"`` -> ``["a", "b", "c"]``; empty items are an error."""
    items = [s.strip() for s in text.split(",")]
    if not text.strip() or any(not s for s in items):
        raise UserError(f"bad {what} list '{text}': give comma-separated values without empty items")
    return items


def parse_positive_ints(text: str, what: str) -> list[int]:
    """Comma list of positive integers, or :class:`UserError`."""
    out = []
    for item in split_list(text, what):
        try:
            value = int(item)
        except ValueError:
            raise UserError(f"bad {what} '{item}': must be a positive integer (e.g. --{what} 1,64)") from None
        if value <= 0:
            raise UserError(f"bad {what} '{item}': must be a positive integer (e.g. --{what} 1,64)")
        out.append(value)
    return out


def parse_resolutions(text: str) -> list[tuple[int, int]]:
    """Comma list of ``224`` / ``HxW`` sizes."""
    from vmibench.resolution import as_hw

    return [as_hw(item) for item in split_list(text, "resolution")]


def parse_models(text: str | None, default: Callable[[], list[str]]) -> list[str]:
    """Model names (validated: unknown names fail with close-name suggestions)."""
    from vmibench.registry import list_infos, resolve_info

    if text is None:
        return default()
    names = split_list(text, "model")
    if names == ["all"]:
        return [m.name for m in list_infos()]
    for name in names:
        resolve_info(name)
    return names


def load_imports(specs: list[str] | None) -> None:
    """Import the user's model modules/files (``--import``) before any name is resolved."""
    if specs:
        from vmibench.user_models import import_models

        import_models(specs)


def all_registered() -> list[str]:
    from vmibench.registry import list_infos

    return [m.name for m in list_infos()]


@contextmanager
def progress(total: int, label: str) -> Iterator[Callable[[str], None]]:
    """A rich progress bar on stderr; yields ``advance(description)``."""
    with progress_bar(label) as update:
        done = 0
        started = time.monotonic()

        def advance(description: str) -> None:
            nonlocal done
            done += 1
            per_item = (time.monotonic() - started) / done
            update(description, done, total, per_item * (total - done))

        yield advance


@contextmanager
def progress_bar(label: str) -> Iterator[Callable[[str, int, int, float], None]]:
    """A rich progress bar on stderr: the running job's name, jobs done/total, elapsed time and the runner's
    predicted time left; yields ``update(running, done, total, eta_s)``, where ``running`` names the job about to
    run."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA {task.fields[eta]}"),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=None, eta="?")

        def update(running: str, done: int, total: int, eta_s: float) -> None:
            bar.update(task, completed=done, total=max(total, done), description=f"{label}: {running}",
                       eta=_clock(eta_s))  # fmt: skip

        yield update


def _clock(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"


def track(items: Iterable[T], total: int, label: str, describe: Callable[[T], str]) -> Iterator[T]:
    """Iterate ``items`` with a progress bar whose text names the current item."""
    with progress(total, label) as advance:
        for item in items:
            yield item
            advance(describe(item))


# -- commands -------------------------------------------------------------------------------------------------


@app.command("models")
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


@app.command("flops", epilog=_verbatim(FLOPS_HELP))
def flops_cmd(
    models: ModelsOpt = None,
    res: ResOpt = None,
    batch: Annotated[int, typer.Option("--batch", "-b", min=1, help="Batch traced (gmacs are per image).")] = 1,
    columns: ColumnsOpt = None,
    all_columns: AllColumnsOpt = False,
    fmt: FormatOpt = "table",
    out: OutOpt = None,
    db: DbOpt = None,
    no_store: Annotated[bool, typer.Option("--no-store", help="Do not write rows to the database.")] = False,
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


RoundsOpt = Annotated[
    int | None,
    typer.Option(
        help="Worker processes per cell, visited round-robin in a new random order each round; they split the "
        "cell's time budget. Rows carry a bootstrap 95% CI of the median (default: the preset's, 3 on CPU presets; "
        "1 for latency)."
    ),
]
TimeoutOpt = Annotated[float | None, typer.Option(help="Kill a worker after this many seconds (per round).")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Re-measure cells already stored.")]
NoPeakOpt = Annotated[
    bool,
    typer.Option(
        "--no-peak",
        help="Do not measure the device's matmul peak and memory bandwidth first (a few "
        "seconds once per environment); the report then leaves utilisation and the roofline blank.",
    ),
]
RetryOpt = Annotated[
    bool, typer.Option("--retry-failed", help="Re-run failed cells and the cells skipped because of them.")
]


def _print_rows(
    summary: RunSummary, kind: str, fmt: str, out: str | None, db: str | None, columns: str | None, all_columns: bool
) -> None:
    """Every requested cell's row (stored earlier or measured now) and one line saying which is which."""
    import pandas as pd

    from vmibench.output import emit
    from vmibench.reports.tables import select_columns
    from vmibench.store import default_db_path

    stored = summary.from_store
    left = f"; {summary.not_reached} not reached in the time budget (rerun to resume)" if summary.not_reached else ""
    waited = f"; {summary.waited} measured by another runner" if summary.waited else ""
    print(
        f"{len(summary.rows)} rows: {summary.measured} measured now, {summary.failed} failed, {summary.skipped} "
        f"skipped, {stored} from the store (measured earlier, see measured_at; --force re-measures){waited}{left} "
        f"-> {db or default_db_path()}",
        file=sys.stderr,
    )
    frame = pd.DataFrame(list(summary.rows.values()))
    if frame.empty:
        return
    frame["measured_at"] = frame["timestamp"]
    frame, caption = select_columns(frame, kind, fmt, columns, all_columns)
    emit(frame, fmt, out, caption=caption)


@app.command("latency", epilog=_verbatim(METRICS_HELP))
def latency_cmd(
    models: ModelsOpt = None,
    res: Annotated[str, typer.Option("--res", "-r", help="Comma list of sizes: 224 or HxW.")] = "224",
    batch: BatchOpt = "1",
    threads: Annotated[int | None, typer.Option(help="CPU threads per worker (default: all usable cores).")] = None,
    device: Annotated[str | None, typer.Option(help="cpu or cuda (default: cuda when available).")] = None,
    dtype: Annotated[str, typer.Option(help="fp32, or bf16 / fp16 autocast.")] = "fp32",
    channels_last: Annotated[bool, typer.Option("--channels-last", help="Run in channels_last layout.")] = False,
    compile_: Annotated[bool, typer.Option("--compile", help="Wrap the model in torch.compile.")] = False,
    cuda_graph: CudaGraphOpt = False,
    scan_backend: Annotated[str, typer.Option(help="Scan: auto, torch, reference, mamba_ssm, triton.")] = "auto",
    min_time: Annotated[float, typer.Option(help="Seconds to time at least, per cell (all rounds).")] = 1.0,
    max_time: Annotated[float, typer.Option(help="Timing budget per cell, seconds (all rounds).")] = 10.0,
    precision: Annotated[float, typer.Option(help="Stop when the median's rel. std. error is below this.")] = 0.01,
    cell_timeout: TimeoutOpt = 600.0,
    no_flops: Annotated[bool, typer.Option("--no-flops", help="Skip the per-cell FLOPs count.")] = False,
    mode: Annotated[str, typer.Option(help="infer (one forward) or train (forward + backward + SGD step).")] = "infer",
    rounds: RoundsOpt = None,
    force: ForceOpt = False,
    no_peak: NoPeakOpt = False,
    retry_failed: RetryOpt = False,
    columns: ColumnsOpt = None,
    all_columns: AllColumnsOpt = False,
    fmt: FormatOpt = "table",
    out: OutOpt = None,
    db: DbOpt = None,
    imports: ImportOpt = None,
) -> None:
    """Latency, throughput and peak memory of every (model, resolution, batch) cell, each in its own process.

    A sweep without a ladder: cells already stored for this environment are printed, not re-measured. With
    --mode train each call is one training step (train-mode forward, cross-entropy, backward, plain SGD update);
    its peak_mem_mb then includes activations kept for backward and the gradients."""
    from vmibench.measure.api import measure, run_settings
    from vmibench.output import check_output
    from vmibench.sweep import plan_cells

    check_output(fmt, out)
    load_imports(imports)
    names = parse_models(models, lambda: ["vminet_t", "deit_t"])
    settings = run_settings(device=device, dtype=dtype, threads=threads, channels_last=channels_last,
                            compile_=compile_, scan_backend=scan_backend, min_time=min_time, max_time=max_time,
                            precision=precision, count_flops=not no_flops, cuda_graph=cuda_graph)  # fmt: skip
    cells = plan_cells(names, parse_resolutions(res), parse_positive_ints(batch, "batch"), settings, mode=mode)
    with progress_bar("measuring") as bar:
        summary = measure(cells, db=db, rounds=_given(rounds, 1), cell_timeout_s=_given(cell_timeout, 600.0),
                          force=force, retry_failed=retry_failed, progress=bar, stop_ladders=False,
                          with_peak=not no_peak)  # fmt: skip
    _print_rows(summary, "latency", fmt, out, db, columns, all_columns)


@app.command("maxbatch", epilog=_verbatim(METRICS_HELP))
def maxbatch_cmd(
    models: ModelsOpt = None,
    res: Annotated[str, typer.Option("--res", "-r", help="Comma list of sizes: 224 or HxW.")] = "224",
    mode: Annotated[str, typer.Option(help="infer (forward) or train (forward + backward + SGD step).")] = "infer",
    mem_limit_gb: Annotated[
        float | None,
        typer.Option(help="Memory limit, GiB (CPU: required, RLIMIT_AS of the worker; CUDA: default free memory)."),
    ] = None,
    batch_cap: Annotated[int, typer.Option(help="Largest batch tried.")] = 4096,
    threads: Annotated[int | None, typer.Option(help="CPU threads per worker (default: all usable cores).")] = None,
    device: Annotated[str | None, typer.Option(help="cpu or cuda (default: cuda when available).")] = None,
    dtype: Annotated[str, typer.Option(help="fp32, or bf16 / fp16 autocast.")] = "fp32",
    min_time: Annotated[float, typer.Option(help="Seconds to time at least at the batch found.")] = 1.0,
    max_time: Annotated[float, typer.Option(help="Timing budget at the batch found, seconds.")] = 10.0,
    cell_timeout: TimeoutOpt = 1200.0,
    force: ForceOpt = False,
    retry_failed: RetryOpt = False,
    fmt: FormatOpt = "table",
    out: OutOpt = None,
    columns: ColumnsOpt = None,
    all_columns: AllColumnsOpt = False,
    db: DbOpt = None,
) -> None:
    """Largest batch that runs within a memory limit (powers of two, then bisection to ~12%), and the throughput
    at it (DeiT's max-batch protocol): max_batch, throughput_ips, the probes tried and their outcome."""
    from vmibench.measure.api import measure, run_settings
    from vmibench.output import check_output
    from vmibench.sweep import plan_maxbatch

    check_output(fmt, out)
    names = parse_models(models, lambda: ["vminet_t"])
    settings = run_settings(device=device, dtype=dtype, threads=threads, min_time=min_time, max_time=max_time,
                            count_flops=False)  # fmt: skip
    cells = plan_maxbatch(names, parse_resolutions(res), settings, mode=mode, mem_limit_gb=mem_limit_gb,
                          batch_cap=batch_cap)  # fmt: skip
    with progress_bar("searching") as bar:
        summary = measure(cells, db=db, rounds=1, cell_timeout_s=_given(cell_timeout, 1200.0), force=force,
                          retry_failed=retry_failed, progress=bar, with_peak=False, stop_ladders=False)  # fmt: skip
    _print_rows(summary, "maxbatch", fmt, out, db, columns, all_columns)


RESULT_TABLES = ("latency", "ops", "flops", "peak", "bandwidth", "maxbatch", "accuracy", "samples")


@app.command("results")
def results_cmd(
    models: Annotated[str | None, typer.Option("--models", "-m", help="Only these models (comma list).")] = None,
    table: Annotated[str, typer.Option("--table", "-t", help=f"One of {', '.join(RESULT_TABLES)}.")] = "latency",
    columns: ColumnsOpt = None,
    all_columns: AllColumnsOpt = False,
    status: Annotated[str | None, typer.Option(help="Only rows with this status (ok, oom, ...).")] = None,
    fmt: FormatOpt = "table",
    out: OutOpt = None,
    db: DbOpt = None,
) -> None:
    """Print stored rows (one table of the results database), optionally filtered.

    `--table samples` prints the raw per-call times (row_table, row_id, round, process, iter, ms) of the rows,
    with each row's model or op; `--models` filters them too."""
    from pathlib import Path

    from vmibench.output import check_output, emit
    from vmibench.reports.tables import select_columns
    from vmibench.store import ResultStore, default_db_path

    check_output(fmt, out)
    if table not in RESULT_TABLES:
        raise UserError(f"unknown table '{table}': use one of {', '.join(RESULT_TABLES)}")
    from vmibench.records import STATUSES

    if status is not None and status not in STATUSES:
        raise UserError(f"unknown status '{status}': use one of {', '.join(STATUSES)}")
    path = db or default_db_path()
    if not Path(path).exists():
        raise UserError(f"no results database at {path}: run `vmibench latency` first or pass --db")
    with ResultStore(path, readonly=True) as store:
        if table not in store.tables():
            raise UserError(f"no table '{table}' in {path}: it has {', '.join(store.tables()) or 'no tables'}")
        if table == "samples":
            frame = _samples_frame(store, split_list(models, "model") if models else None)
        else:
            where: dict[str, object] = {}
            if models:
                where["model"] = split_list(models, "model")
            if status:
                where["status"] = status
            frame = store.read(table, where)
    frame, caption = select_columns(frame, table, fmt, columns, all_columns)
    emit(frame, fmt, out, caption=caption)


def _samples_frame(store: object, models: list[str] | None) -> object:
    """Samples joined with the model (latency rows) or op (ops rows) they belong to."""
    import pandas as pd

    frames = []
    for table, name in (("latency", "model"), ("ops", "op"), ("peak", "matmul_n")):
        rows = store.read(table, keep_row_id=True)  # type: ignore[attr-defined]
        if rows.empty:
            continue
        if models is not None and name == "model":
            rows = rows[rows["model"].isin(models)]
        elif models is not None:
            continue
        samples = store.samples(table, rows["row_id"].tolist())  # type: ignore[attr-defined]
        if samples.empty:
            continue
        label = rows.set_index("row_id")[name].astype(str)
        frames.append(samples.assign(name=samples["row_id"].map(label)))
    if not frames:
        return pd.DataFrame(columns=["row_table", "row_id", "name", "round", "process", "iter", "ms"])
    frame = pd.concat(frames, ignore_index=True)
    return frame[["row_table", "row_id", "name", "round", "process", "iter", "ms"]]


def _sweep_settings(
    chosen: Preset | None, *, device: str | None, threads: int | None, channels_last: bool = False,
    compile_: bool = False, scan_backend: str = "auto", max_time: float | None = None, count_flops: bool = True,
    cuda_graph: bool = False,
) -> Settings:  # fmt: skip
    """Run settings of a sweep: the preset's policy and threads unless overridden."""
    from vmibench.measure.api import run_settings
    from vmibench.measure.timing import TimingPolicy

    policy = chosen.policy if chosen else TimingPolicy(min_time_s=1.0, max_time_s=10.0)
    if max_time is not None:
        if not max_time > 0:
            raise UserError(f"bad --max-time {max_time}: must be a positive number of seconds")
        policy = dataclasses.replace(policy, max_time_s=max_time, min_time_s=min(policy.min_time_s, max_time))
    return run_settings(device=device, threads=threads or (chosen.threads if chosen else None),
                        channels_last=channels_last, compile_=compile_, scan_backend=scan_backend,
                        policy=policy, count_flops=count_flops, cuda_graph=cuda_graph)  # fmt: skip


@app.command("sweep", epilog=_verbatim(METRICS_HELP))
def sweep_cmd(
    preset: Annotated[str | None, typer.Option(help="cpu-default, gpu-default, smoke (lists override).")] = None,
    models: ModelsOpt = None,
    res: ResOpt = None,
    batch: Annotated[str | None, typer.Option("--batch", "-b", help="Comma list of batch sizes.")] = None,
    dtypes: Annotated[str | None, typer.Option("--dtype", help="Comma list: fp32, bf16, fp16.")] = None,
    threads: Annotated[
        int | None, typer.Option(help="CPU threads per worker (default: the preset's, else all usable cores).")
    ] = None,
    device: Annotated[str | None, typer.Option(help="cpu or cuda (default: cuda when available).")] = None,
    channels_last: Annotated[bool, typer.Option("--channels-last", help="Run in channels_last layout.")] = False,
    compile_: Annotated[bool, typer.Option("--compile", help="Wrap the model in torch.compile.")] = False,
    cuda_graph: CudaGraphOpt = False,
    scan_backend: Annotated[str, typer.Option(help="auto, torch, reference, mamba_ssm, triton.")] = "auto",
    max_time: Annotated[float | None, typer.Option(help="Timing budget per cell, seconds (all rounds).")] = None,
    cell_timeout: TimeoutOpt = None,
    no_flops: Annotated[bool, typer.Option("--no-flops", help="Skip the per-cell FLOPs count.")] = False,
    force: ForceOpt = False,
    no_peak: NoPeakOpt = False,
    retry_failed: RetryOpt = False,
    rounds: RoundsOpt = None,
    budget_min: BudgetOpt = None,
    executor: Annotated[
        str | None,
        typer.Option(
            help="Scale out with submitit: local (jobs as subprocesses here) or slurm (a job array); each "
            "job writes a shard beside the store, `vmibench collect` merges them. Default: this process."
        ),
    ] = None,
    jobs: Annotated[
        int | None, typer.Option(help="Jobs to cut the cells into (default: one per model ladder).")
    ] = None,
    array_parallelism: Annotated[int, typer.Option(help="Jobs running at once (local default 1).")] = 1,
    slurm_partition: Annotated[str | None, typer.Option(help="SLURM partition (with --executor slurm).")] = None,
    gpus_per_job: Annotated[int, typer.Option(help="GPUs each job gets.")] = 1,
    slurm_time: Annotated[int, typer.Option(help="Time limit of each job, minutes.")] = 60,
    cpus_per_job: Annotated[int | None, typer.Option(help="CPUs each SLURM job asks for.")] = None,
    columns: ColumnsOpt = None,
    all_columns: AllColumnsOpt = False,
    fmt: FormatOpt = "table",
    out: OutOpt = None,
    db: DbOpt = None,
    imports: ImportOpt = None,
    task: Annotated[
        str | None,
        typer.Option(
            metavar="classify|backbone",
            help="classify (the classifier) or backbone: the multi-scale feature maps a detector or segmenter "
            "consumes (timm features_only / forward_intermediates, no head); without --res, backbone runs at the "
            "detection (800x1280, 1024x1024) and segmentation (512x512, 512x2048, 1024x2048) sizes. With "
            "--preset only, it picks that task's part of the preset.",
        ),
    ] = None,
) -> None:
    """Sweep models x resolutions (224 or HxW, e.g. 800x1280) x batches x dtypes into the store; resumable.

    Cells already stored for this environment are printed, not re-measured (unless --force); after an
    OOM/timeout/crash the larger sizes of that model are stored as 'skipped'. The device's matmul peak is
    measured first (for utilisation)."""
    from vmibench.measure.api import check_dtype, check_rounds, check_timeout, measure
    from vmibench.measure.cluster import ScaleOut
    from vmibench.measure.workloads import TASK_BACKBONE, TASKS
    from vmibench.output import check_output
    from vmibench.store import default_db_path
    from vmibench.sweep import DENSE_SIZES, Group, expand_groups, get_preset

    check_output(fmt, out)
    if task is not None and task not in TASKS:
        raise UserError(f"unknown task '{task}': use {' or '.join(TASKS)}")
    load_imports(imports)
    scale = None
    if executor is not None:
        scale = ScaleOut(executor=executor, jobs=jobs, array_parallelism=array_parallelism,
                         slurm_partition=slurm_partition, gpus_per_job=gpus_per_job, slurm_time_min=slurm_time,
                         cpus_per_job=cpus_per_job).check()  # fmt: skip
    chosen = get_preset(preset) if preset else None
    if chosen is None and (models is None or (res is None and task != TASK_BACKBONE)):
        raise UserError("give --preset, or both --models and --res (see vmibench sweep --help)")
    base = _sweep_settings(chosen, device=device, threads=threads, channels_last=channels_last, compile_=compile_,
                           scan_backend=scan_backend, max_time=max_time, count_flops=not no_flops,
                           cuda_graph=cuda_graph)  # fmt: skip
    if models is not None or res is not None or batch is not None or dtypes is not None:
        template = chosen.groups[0] if chosen else Group(models=None, resolutions=((224, 224),))
        if task == TASK_BACKBONE:
            template = dataclasses.replace(template, resolutions=DENSE_SIZES, batches=(1,), task=task)
        groups: tuple[Group, ...] = (
            Group(
                models=tuple(parse_models(models, all_registered)) if models else template.models,
                resolutions=tuple(parse_resolutions(res)) if res else template.resolutions,
                batches=tuple(parse_positive_ints(batch, "batch")) if batch else template.batches,
                dtypes=tuple(split_list(dtypes, "dtype")) if dtypes else template.dtypes,
                task=task or template.task,
            ),
        )
    else:
        assert chosen is not None
        groups = tuple(g for g in chosen.groups if task is None or g.task == task)
        if not groups:
            raise UserError(f"preset {chosen.name} has no {task} part: give --models (and --res) for it")
    for group in groups:
        for dt in group.dtypes:
            check_dtype(dt)
    cells = expand_groups(groups, base)
    budget = _budget_s(budget_min)
    rounds_ = check_rounds(_given(rounds, chosen.rounds if chosen else 3))
    timeout = check_timeout(_given(cell_timeout, chosen.cell_timeout_s if chosen else 600.0))
    if scale is not None:
        _scale_out(cells, scale, str(db or default_db_path()), rounds=rounds_, cell_timeout_s=timeout, force=force,
                   retry_failed=retry_failed, budget_s=budget, with_peak=not no_peak)  # fmt: skip
        return
    with progress_bar("measuring") as bar:
        summary = measure(cells, db=db, rounds=rounds_, cell_timeout_s=timeout, force=force,
                          retry_failed=retry_failed, budget_s=budget, progress=bar, with_peak=not no_peak)  # fmt: skip
    _print_rows(summary, "latency", fmt, out, db, columns, all_columns)


def _scale_out(cells: list[Cell], scale: ScaleOut, db: str, **measure_args: Any) -> None:
    """Run a sweep's cells as submitit jobs writing shards; locally, wait and collect them into ``db``."""
    from vmibench.measure.cluster import collect, plan_jobs, run_jobs
    from vmibench.store import ResultStore

    ResultStore(db).close()  # validate (or create) the main store before anything is submitted
    jobs = plan_jobs(cells, db, scale, **measure_args)
    run_jobs(jobs, scale, db)
    if scale.executor == "local":
        merged = collect(db)
        rows = sum(r for _, r, _ in merged)
        print(f"collected {rows} new row(s) from {len(merged)} shard(s) into {db}; `vmibench results` lists them",
              file=sys.stderr)  # fmt: skip


@app.command("collect")
def collect_cmd(db: DbOpt = None) -> None:
    """Merge the shards that scaled-out jobs wrote (<db>.shards/*.sqlite) into the store, with their raw samples.

    Idempotent: a row already in the store (same row_uid) is not added again, so collecting twice adds nothing.
    Every shard is checked first; a shard of another schema version is refused and nothing is merged."""
    from vmibench.measure.cluster import collect
    from vmibench.store import default_db_path

    path = str(db or default_db_path())
    merged = collect(path)
    for shard, rows, samples in merged:
        print(f"{shard.name}: {rows} row(s), {samples} sample(s) added", file=sys.stderr)
    print(f"collected {sum(r for _, r, _ in merged)} new row(s) from {len(merged)} shard(s) into {path}",
          file=sys.stderr)  # fmt: skip


def _given(value: T | None, default: T) -> T:
    """The option's value when the user gave one -- 0 included, for validation to refuse -- else the default."""
    return default if value is None else value


def _budget_s(budget_min: float | None) -> float | None:
    if budget_min is None:
        return None
    if not budget_min > 0 or budget_min == float("inf"):
        raise UserError(f"bad --budget-min {budget_min}: must be a positive number of minutes")
    return budget_min * 60


@app.command("ops", epilog=_verbatim(METRICS_HELP))
def ops_cmd(
    ops: Annotated[str | None, typer.Option("--ops", help="Comma list of token mixers (default: all).")] = None,
    seq: Annotated[str | None, typer.Option("--seq", help="Comma list of sequence lengths L.")] = None,
    dim: Annotated[int | None, typer.Option(min=1, help="Channel width C.")] = None,
    batch: Annotated[int | None, typer.Option(min=1, help="Batch size.")] = None,
    preset: Annotated[str | None, typer.Option(help="cpu-default, gpu-default, smoke: defaults below.")] = None,
    dtypes: Annotated[str | None, typer.Option("--dtype", help="Comma list: fp32, bf16, fp16.")] = None,
    threads: Annotated[
        int | None, typer.Option(help="CPU threads per worker (default: the preset's, else all usable cores).")
    ] = None,
    device: Annotated[str | None, typer.Option(help="cpu or cuda (default: cuda when available).")] = None,
    scan_backend: Annotated[str, typer.Option(help="auto = every available backend for selective_scan.")] = "auto",
    rounds: RoundsOpt = None,
    time_cap: Annotated[float | None, typer.Option(help="Skip lengths predicted slower than this (s/call).")] = None,
    mem_cap: Annotated[float | None, typer.Option(help="Skip lengths predicted above this peak (MB).")] = None,
    max_time: Annotated[float | None, typer.Option(help="Timing budget per cell, seconds (all rounds).")] = None,
    cell_timeout: TimeoutOpt = None,
    force: ForceOpt = False,
    no_peak: NoPeakOpt = False,
    retry_failed: RetryOpt = False,
    budget_min: BudgetOpt = None,
    columns: ColumnsOpt = None,
    all_columns: AllColumnsOpt = False,
    fmt: FormatOpt = "table",
    out: OutOpt = None,
    db: DbOpt = None,
) -> None:
    """Token-mixer sweep over sequence length: latency, memory and fitted complexity exponents.

    Mixers: sdpa (softmax attention), mobilevitv2_sa, vmisa (VMINet's released mixer), vmisa_recurrent and
    vmisa_matrix (RECONSTRUCTION of the paper's causal-mask VMI-SA: cumulative-sum and L x L mask forms; not in
    the released code), flatten_fla, mlla_linear, selective_scan (each available backend). peak_mem_mb here
    includes the op's own buffers (e.g. the L x L mask). Lengths predicted to exceed --time-cap/--mem-cap are
    stored as 'skipped'. The output lists every requested cell's row and the fitted log-log slopes with their
    bootstrap 95% CIs.
    """
    from vmibench.measure.api import check_dtype, measure
    from vmibench.ops.mixers import OPS
    from vmibench.output import check_output, emit
    from vmibench.sweep import cap_predictor, get_preset, ops_cells

    check_output(fmt, out)
    p = get_preset(preset or "cpu-default")
    explicit = preset is not None
    base = _sweep_settings(p, device=device, threads=threads if threads or explicit else _all_cores(),
                           scan_backend=scan_backend, max_time=max_time)  # fmt: skip
    dts = split_list(dtypes, "dtype") if dtypes else list(p.op_dtypes)
    for dt in dts:
        check_dtype(dt)
    names = split_list(ops, "op") if ops else list(p.ops or OPS)
    lengths = parse_positive_ints(seq, "seq") if seq else list(p.seq_lens)
    cells = ops_cells(names, lengths, dim or p.op_dim, batch or p.op_batch, dts, base)
    predictor = cap_predictor(lengths, time_cap or p.time_cap_s, mem_cap or p.mem_cap_mb)
    with progress_bar("measuring") as bar:
        summary = measure(cells, db=db, rounds=_given(rounds, p.rounds if explicit else 1),
                          cell_timeout_s=_given(cell_timeout, p.cell_timeout_s), force=force, retry_failed=retry_failed,
                          budget_s=_budget_s(budget_min), cap_predictor=predictor, progress=bar,
                          with_peak=not no_peak)  # fmt: skip
    _print_rows(summary, "ops", fmt, out, db, columns, all_columns)
    if out is None and summary.rows:
        fits = _ops_fits(summary, db)
        if not fits.empty:
            emit(fits, fmt, None, title="log-log slopes (upper half of the sweep), bootstrap 95% CI")


def _all_cores() -> int:
    from vmibench.env import usable_cores

    return usable_cores()


def _ops_fits(summary: RunSummary, db: str | None) -> object:
    """Fitted exponents with CIs of the ops rows of this command."""
    import pandas as pd

    from vmibench.analysis.estimates import slope_table
    from vmibench.store import ResultStore

    frame = pd.DataFrame(list(summary.rows.values()))
    with ResultStore(db, readonly=True) as store:
        samples = store.samples("ops", frame["row_id"].tolist()) if "row_id" in frame.columns else None
    return slope_table(frame, samples, ["op", "dtype"], "seq_len")


@app.command("compare")
def compare_cmd(
    models: Annotated[str, typer.Option("--models", "-m", help="Comma list of models to set against the baseline.")],
    baseline: Annotated[str, typer.Option("--baseline", help="The model every ratio is relative to.")] = "vminet_t",
    res: Annotated[str, typer.Option("--res", "-r", help="One size: 224 or HxW.")] = "224",
    batch: Annotated[int, typer.Option("--batch", "-b", min=1, help="Batch size of the rows.")] = 1,
    device: Annotated[str | None, typer.Option(help="Only rows of this device (cpu, cuda).")] = None,
    fmt: FormatOpt = "table",
    out: OutOpt = None,
    db: DbOpt = None,
) -> None:
    """Latency ratio of each model's newest stored row to the baseline's (same settings), with a bootstrap 95%
    interval -- paired by round when both rows come from one run. `verdict` says faster/slower only where the
    interval excludes 1, else "not distinguishable"."""
    from pathlib import Path

    from vmibench.output import check_output, emit
    from vmibench.reports.compare import compare
    from vmibench.resolution import as_hw, label
    from vmibench.store import ResultStore, default_db_path

    check_output(fmt, out)
    names = split_list(models, "model")
    path = db or default_db_path()
    if not Path(path).exists():
        raise UserError(f"no results database at {path}: run `vmibench latency --rounds 3` first or pass --db")
    with ResultStore(path, readonly=True) as store:
        frame = compare(store, names, baseline, label(as_hw(res)), batch=batch, device=device)
    emit(frame, fmt, out, title=f"latency ratio to {baseline} at {res}, bootstrap 95% CI")


@app.command("report")
def report_cmd(
    out: Annotated[str, typer.Option("--out", "-o", help="Output dir: REPORT.md, tables/, figures/.")] = "results",
    device: Annotated[str | None, typer.Option(help="Device whose rows to report (default: newest).")] = None,
    db: DbOpt = None,
    imports: ImportOpt = None,
) -> None:
    """Write REPORT.md with CSV tables and PNG figures from the store: scaling, fits, utilisation, roofline, ops,
    training, max batch, Pareto, and the reviewer questions answered from the data (regenerate rather than edit).
    Any subset of a store can be reported; a store without latency or ops rows is refused in one line."""
    from pathlib import Path

    from vmibench.output import check_writable
    from vmibench.reports.report import write_report
    from vmibench.store import default_db_path

    load_imports(imports)  # their records (published numbers) join the report's tables
    path = Path(db) if db else default_db_path()
    if not path.exists():
        raise UserError(f"no results database at {path}: run `vmibench sweep` first or pass --db")
    check_writable(Path(out), directory=True)
    written = write_report(str(path), out, device)
    print(f"wrote {written}", file=sys.stderr)


@check_app.command("timer", epilog=_verbatim(METRICS_HELP))
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
    max_time: Annotated[float, typer.Option(help="Timing budget per cell, seconds (all rounds).")] = 3.0,
    fmt: FormatOpt = "table",
    out: OutOpt = None,
) -> None:
    """Is a comparison reproducible on this machine? Run the same model comparison `runs` times and compare.

    Each run measures every model in `rounds` interleaved rounds (nothing is stored) and gives each model's
    latency ratio to the first model with a paired bootstrap 95% CI over rounds. The table has one row per
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
    emit(frame, fmt, out, title=f"latency ratios to {names[0]} over {runs} runs, paired bootstrap 95% CI")


from vmibench.cli_accuracy import accuracy_cmd  # noqa: E402  (its own module: the command has many options)

app.command("accuracy")(accuracy_cmd)


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


# -- entry point ----------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    """Console entry point: runs the app and turns user errors into one line + exit status 2."""
    import logging

    # torch.utils.benchmark imports cpp_extension, which warns about CUDA_HOME on CPU-only machines
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    try:
        rv = app(args=argv, prog_name="vmibench", standalone_mode=False)
    except UserError as exc:
        _fail(str(exc))
    except Interrupted as exc:
        print(f"vmibench: interrupted: {exc.stored} rows stored in DB; rerun the same command to resume",
              file=sys.stderr)  # fmt: skip
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        # Ctrl-C outside a run (while importing, between runs): nothing was being measured
        print("vmibench: interrupted: rows measured so far are stored in DB; rerun the same command to resume",
              file=sys.stderr)  # fmt: skip
        sys.exit(130)
    except Exception as exc:
        # Usage errors come from click, or from the copy of click newer typer releases vendor: match by class name.
        kinds = {cls.__name__ for cls in type(exc).__mro__}
        if "NoArgsIsHelpError" in kinds:
            ctx = getattr(exc, "ctx", None)
            if ctx is not None:
                print(ctx.get_help())
            sys.exit(0)
        if "ClickException" in kinds:
            _fail(" ".join(exc.format_message().split()))  # type: ignore[attr-defined]
        if "Abort" in kinds:
            print("vmibench: interrupted: rows measured so far are stored in DB; rerun the same command to resume",
                  file=sys.stderr)  # fmt: skip
            sys.exit(130)
        raise
    sys.exit(rv if isinstance(rv, int) else 0)


def _fail(message: str) -> None:
    print(f"vmibench: error: {message}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
    main()
