"""The measuring commands: `latency`, `maxbatch`, `sweep` (with its scale-out over submitit jobs), `collect` and
`ops`.  Thin: the planning lives in :mod:`vmibench.sweep`, the running in :mod:`vmibench.measure`."""

from __future__ import annotations

import dataclasses
import sys
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from vmibench.cli.options import (
    AllColumnsOpt,
    BatchOpt,
    BudgetOpt,
    ChannelsLastOpt,
    ColumnsOpt,
    CompileOpt,
    CudaGraphOpt,
    DbOpt,
    DeviceOpt,
    DtypeOpt,
    DtypesOpt,
    ForceOpt,
    FormatOpt,
    ImportOpt,
    MaxRoundsOpt,
    MaxTimeOpt,
    ModelsOpt,
    ModeOpt,
    NoFlopsOpt,
    NoPeakOpt,
    OutOpt,
    PresetThreadsOpt,
    ResListOpt,
    ResOpt,
    RetryOpt,
    RoundsOpt,
    ThreadsOpt,
    TimeoutOpt,
    all_registered,
    load_imports,
    parse_models,
    parse_positive_ints,
    parse_resolutions,
    split_list,
)
from vmibench.cli.progress import progress_bar
from vmibench.errors import UserError

if TYPE_CHECKING:
    from vmibench.measure.cells import Cell, Settings
    from vmibench.measure.cluster import ScaleOut
    from vmibench.measure.runner import RunSummary
    from vmibench.sweep import Preset

T = TypeVar("T")


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


def latency_cmd(
    models: ModelsOpt = None,
    res: ResListOpt = "224",
    batch: BatchOpt = "1",
    threads: ThreadsOpt = None,
    device: DeviceOpt = None,
    dtype: DtypeOpt = "fp32",
    channels_last: ChannelsLastOpt = False,
    compile_: CompileOpt = False,
    cuda_graph: CudaGraphOpt = False,
    scan_backend: Annotated[str, typer.Option(help="Scan: auto, torch, reference, mamba_ssm, triton.")] = "auto",
    min_time: Annotated[float, typer.Option(help="Seconds to time at least, per cell (all rounds).")] = 1.0,
    max_time: MaxTimeOpt = 10.0,
    precision: Annotated[float, typer.Option(help="Stop when the median's rel. std. error is below this.")] = 0.01,
    cell_timeout: TimeoutOpt = 600.0,
    no_flops: NoFlopsOpt = False,
    mode: ModeOpt = "infer",
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
    from vmibench.measure.api import measure_cells, run_settings
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
        summary = measure_cells(cells, db=db, rounds=_given(rounds, 1), cell_timeout_s=_given(cell_timeout, 600.0),
                          force=force, retry_failed=retry_failed, progress=bar, stop_ladders=False,
                          with_peak=not no_peak)  # fmt: skip
    _print_rows(summary, "latency", fmt, out, db, columns, all_columns)


def maxbatch_cmd(
    models: ModelsOpt = None,
    res: ResListOpt = "224",
    mode: ModeOpt = "infer",
    mem_limit_gb: Annotated[
        float | None,
        typer.Option(help="Memory limit, GiB (CPU: required, RLIMIT_AS of the worker; CUDA: default free memory)."),
    ] = None,
    batch_cap: Annotated[int, typer.Option(help="Largest batch tried.")] = 4096,
    threads: ThreadsOpt = None,
    device: DeviceOpt = None,
    dtype: DtypeOpt = "fp32",
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
    from vmibench.measure.api import measure_cells, run_settings
    from vmibench.output import check_output
    from vmibench.sweep import plan_maxbatch

    check_output(fmt, out)
    names = parse_models(models, lambda: ["vminet_t"])
    settings = run_settings(device=device, dtype=dtype, threads=threads, min_time=min_time, max_time=max_time,
                            count_flops=False)  # fmt: skip
    cells = plan_maxbatch(names, parse_resolutions(res), settings, mode=mode, mem_limit_gb=mem_limit_gb,
                          batch_cap=batch_cap)  # fmt: skip
    with progress_bar("searching") as bar:
        summary = measure_cells(cells, db=db, rounds=1, cell_timeout_s=_given(cell_timeout, 1200.0), force=force,
                          retry_failed=retry_failed, progress=bar, with_peak=False, stop_ladders=False)  # fmt: skip
    _print_rows(summary, "maxbatch", fmt, out, db, columns, all_columns)


PROFILE_HELP = """
Columns (table profile): latency_ms_median = unprofiled latency (the timed calls, as `latency`); profiled_ms_median
= a profiled call; profile_overhead = profiled / unprofiled; class_sum_frac = the classes' time / a profiled call
(the rest is profiler bookkeeping: unclassified_ms). Table breakdown (`vmibench results --table breakdown`): per
block (timm stage/block names; "*" = all blocks) and operator class (matmul, conv_dense, conv_depthwise, attention,
scan, elementwise, transcendental, norm, reduction, layout, other): time_ms per call, time_share with a 95%
t-interval over rounds, flop_share and byte_share (GMACs and bytes counted by the same classes). Compare shares,
not absolute times, with latency rows: profiling slows a call. Roofs (table roofs): the elementwise (large add)
and transcendental (exp) roofs beside the matmul peak and the triad.
"""


def profile_cmd(
    models: ModelsOpt = None,
    res: ResListOpt = "224",
    mode: ModeOpt = "infer",
    task: Annotated[str, typer.Option(metavar="classify|backbone", help="classify or backbone (features).")] = (
        "classify"
    ),
    batch: Annotated[int, typer.Option(min=1, help="Images per call.")] = 1,
    threads: ThreadsOpt = None,
    device: DeviceOpt = None,
    dtype: DtypeOpt = "fp32",
    max_time: Annotated[float, typer.Option(help="Timing budget of the unprofiled calls per cell, seconds.")] = 3.0,
    rounds: RoundsOpt = None,
    cell_timeout: TimeoutOpt = None,
    force: ForceOpt = False,
    no_peak: NoPeakOpt = False,
    fmt: FormatOpt = "table",
    out: OutOpt = None,
    columns: ColumnsOpt = None,
    all_columns: AllColumnsOpt = False,
    db: DbOpt = None,
    imports: ImportOpt = None,
) -> None:
    """Where the time goes: each model's forward (or training step) under torch.profiler, each operator's self time
    attributed to its class and timm stage/block, in worker processes with rounds like any cell; GMACs and bytes by
    the same classes; the class roofs measured first. Rows go to the tables profile and breakdown."""
    from vmibench.measure.api import check_rounds, measure_cells, run_settings
    from vmibench.measure.kinds.profile import plan_profile
    from vmibench.output import check_output

    check_output(fmt, out)
    load_imports(imports)
    names = parse_models(models, lambda: ["effvmamba_t", "vim_t", "vminet_t", "mlla_t"])
    settings = run_settings(device=device, dtype=dtype, threads=threads or 1, min_time=min(0.5, max_time),
                            max_time=max_time)  # fmt: skip
    cells = plan_profile(names, parse_resolutions(res), settings, mode=mode, task=task, batch=batch)
    with progress_bar("profiling") as bar:
        summary = measure_cells(cells, db=db, rounds=check_rounds(_given(rounds, 3)),
                                cell_timeout_s=_given(cell_timeout, 1800.0), force=force, progress=bar,
                                with_peak=not no_peak, stop_ladders=False)  # fmt: skip
    _print_rows(summary, "profile", fmt, out, db, columns, all_columns)


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


def sweep_cmd(
    preset: Annotated[str | None, typer.Option(help="cpu-default, gpu-default, smoke (lists override).")] = None,
    models: ModelsOpt = None,
    res: ResOpt = None,
    batch: BatchOpt = None,
    dtypes: DtypesOpt = None,
    threads: PresetThreadsOpt = None,
    device: DeviceOpt = None,
    channels_last: ChannelsLastOpt = False,
    compile_: CompileOpt = False,
    cuda_graph: CudaGraphOpt = False,
    scan_backend: Annotated[str, typer.Option(help="auto, torch, reference, mamba_ssm, triton.")] = "auto",
    max_time: MaxTimeOpt = None,
    cell_timeout: TimeoutOpt = None,
    no_flops: NoFlopsOpt = False,
    force: ForceOpt = False,
    no_peak: NoPeakOpt = False,
    retry_failed: RetryOpt = False,
    rounds: RoundsOpt = None,
    max_rounds: MaxRoundsOpt = None,
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
    gpus_per_job: Annotated[
        int | None, typer.Option(help="GPUs each job gets (default: 1 on a CUDA device, 0 on the CPU).")
    ] = None,
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
    from vmibench.measure.api import check_dtype, check_rounds, check_timeout, measure_cells
    from vmibench.measure.cluster import ScaleOut
    from vmibench.measure.kinds.forward import TASK_BACKBONE, TASKS
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
    preset_only = chosen is not None and models is None and res is None and batch is None and dtypes is None
    with progress_bar("measuring") as bar:
        summary = measure_cells(cells, db=db, rounds=rounds_, cell_timeout_s=timeout, force=force,
                          retry_failed=retry_failed, budget_s=budget, progress=bar, with_peak=not no_peak,
                          **adaptive_args(chosen if preset_only else None, max_rounds))  # fmt: skip
    _print_rows(summary, "latency", fmt, out, db, columns, all_columns)


def adaptive_args(preset: Preset | None, max_rounds: int | None, *, ops: bool = False) -> dict[str, Any]:
    """The adaptive phase's arguments of :func:`vmibench.measure.api.measure_cells` for a whole preset (none for a run
    whose cells were picked by hand: its comparisons were not pre-registered); ``ops``: the ops command's budget."""
    if preset is None or not preset.comparisons:
        return {}
    cap = _given(max_rounds, preset.max_rounds)
    if cap < 0:
        raise UserError(f"bad --max-rounds {cap}: must be 0 (off) or more")
    budget = preset.ops_adaptive_budget_min if ops and preset.ops_adaptive_budget_min is not None \
        else preset.adaptive_budget_min  # fmt: skip
    return {"comparisons": preset.comparisons, "max_rounds": cap, "adaptive_budget_s": budget * 60}


def _scale_out(cells: list[Cell], scale: ScaleOut, db: str, **measure_args: Any) -> None:
    """Run a sweep's cells as submitit jobs writing shards; locally, wait and collect them into ``db``."""
    from vmibench.measure.cluster import scale_out

    merged = scale_out(cells, scale, db, **measure_args)
    if merged is not None:
        rows = sum(r for _, r, _ in merged)
        print(f"collected {rows} new row(s) from {len(merged)} shard(s) into {db}; `vmibench results` lists them",
              file=sys.stderr)  # fmt: skip


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


def ops_cmd(
    ops: Annotated[str | None, typer.Option("--ops", help="Comma list of token mixers (default: all).")] = None,
    seq: Annotated[str | None, typer.Option("--seq", help="Comma list of sequence lengths L.")] = None,
    dim: Annotated[int | None, typer.Option(min=1, help="Channel width C.")] = None,
    batch: Annotated[int | None, typer.Option(min=1, help="Batch size.")] = None,
    preset: Annotated[str | None, typer.Option(help="cpu-default, gpu-default, smoke: defaults below.")] = None,
    dtypes: DtypesOpt = None,
    threads: PresetThreadsOpt = None,
    device: DeviceOpt = None,
    scan_backend: Annotated[str, typer.Option(help="auto = every available backend for selective_scan.")] = "auto",
    rounds: RoundsOpt = None,
    max_rounds: MaxRoundsOpt = None,
    time_cap: Annotated[float | None, typer.Option(help="Skip lengths predicted slower than this (s/call).")] = None,
    mem_cap: Annotated[float | None, typer.Option(help="Skip lengths predicted above this peak (MB).")] = None,
    max_time: MaxTimeOpt = None,
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
    95% t-intervals over rounds.
    """
    from vmibench.measure.api import check_dtype, measure_cells
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
        summary = measure_cells(cells, db=db, rounds=_given(rounds, p.rounds if explicit else 1),
                          cell_timeout_s=_given(cell_timeout, p.cell_timeout_s), force=force, retry_failed=retry_failed,
                          budget_s=_budget_s(budget_min), cap_predictor=predictor, progress=bar,
                          with_peak=not no_peak,
                          **adaptive_args(p if explicit and not (ops or seq or dtypes) else None,
                                          max_rounds, ops=True))  # fmt: skip
    _print_rows(summary, "ops", fmt, out, db, columns, all_columns)
    if out is None and summary.rows:
        fits = _ops_fits(summary, db)
        if not fits.empty:
            emit(fits, fmt, None, title="log-log slopes (upper half of the sweep), 95% t-interval")


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
