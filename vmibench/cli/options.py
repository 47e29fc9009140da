"""What the commands share: the option parsers (a malformed value is a :class:`UserError`), the typer option
aliases -- each option's help text is written here once -- and the help text of the measuring commands."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer

from vmibench.errors import UserError
from vmibench.user_models import IMPORT_HELP

METRICS_HELP = """
Metrics (every row also records device, dtype, batch, threads, flags, scan backend, library versions, commit):

- latency_ms_median / _iqr / _p10 / _p90: per-call wall time of one forward of the whole batch, in ms, over every
  timed call of every round; CPU timed with time.perf_counter, CUDA with a pair of CUDA events around each call
  (synchronised). Each round warms up (>= 3 calls and >= 0.5 s for that shape) and times until the median's robust
  standard error is below its share of --precision or its share of the --max-time budget; n_iters = timed calls.

- rounds: worker processes the cell ran in; the cells are visited round-robin in a new random order each round, so
  a shared machine's drift falls on all cells alike; the rounds split the cell's time budget.

- latency_ms_ci_low / _ci_high: 95% t-interval of the cell level over its rounds (nominal level; its actual
  coverage is what `vmibench check calibrate` measures);
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


def verbatim(text: str) -> str:
    """Help text whose paragraphs click prints as written (``\\b``), not re-flowed into one block."""
    return "\n\n".join("\b\n" + part.strip("\n") for part in text.strip().split("\n\n"))


# -- options shared by several commands ------------------------------------------------------------------------

FormatOpt = Annotated[str, typer.Option("--format", "-f", help="table | csv | json")]
OutOpt = Annotated[str | None, typer.Option("--out", "-o", help="Write to this file instead of stdout.")]
DbOpt = Annotated[
    str | None,
    typer.Option("--db", help="Results store (default: vmibench.sqlite in the working directory, or $VMIBENCH_DB)."),
]
NoStoreOpt = Annotated[bool, typer.Option("--no-store", help="Do not write rows to the database.")]
ModelsOpt = Annotated[
    str | None, typer.Option("--models", "-m", help="Comma list of registered or timm names; 'all' = every registered.")
]
ResOpt = Annotated[str | None, typer.Option("--res", "-r", help="Comma list of sizes: 224 or HxW (800x1280).")]
ResListOpt = Annotated[str, typer.Option("--res", "-r", help="Comma list of sizes: 224 or HxW.")]
ImportOpt = Annotated[list[str] | None, typer.Option("--import", metavar="MODULE_OR_FILE", help=IMPORT_HELP)]
BatchOpt = Annotated[str | None, typer.Option("--batch", "-b", help="Comma list of batch sizes.")]
ColumnsOpt = Annotated[
    str | None,
    typer.Option("--columns", help="Comma list of columns to print (default: a compact set on a terminal table)."),
]
AllColumnsOpt = Annotated[bool, typer.Option("--all-columns", help="Print every column.")]
DeviceOpt = Annotated[str | None, typer.Option(help="cpu or cuda (default: cuda when available).")]
ThreadsOpt = Annotated[int | None, typer.Option(help="CPU threads per worker (default: all usable cores).")]
PresetThreadsOpt = Annotated[
    int | None, typer.Option(help="CPU threads per worker (default: the preset's, else all usable cores).")
]
DtypeOpt = Annotated[str, typer.Option(help="fp32, or bf16 / fp16 autocast.")]
DtypesOpt = Annotated[str | None, typer.Option("--dtype", help="Comma list: fp32, bf16, fp16.")]
ChannelsLastOpt = Annotated[bool, typer.Option("--channels-last", help="Run in channels_last layout.")]
CompileOpt = Annotated[bool, typer.Option("--compile", help="Wrap the model in torch.compile.")]
CudaGraphOpt = Annotated[
    bool, typer.Option("--cuda-graph", help="CUDA only: capture the forward once after warm-up, time its replays.")
]
NoFlopsOpt = Annotated[bool, typer.Option("--no-flops", help="Skip the per-cell FLOPs count.")]
MaxTimeOpt = Annotated[float | None, typer.Option(help="Timing budget per cell, seconds (all rounds).")]
BudgetOpt = Annotated[
    float | None, typer.Option("--budget-min", help="Start no cell after this many minutes (rerun to resume).")
]
RoundsOpt = Annotated[
    int | None,
    typer.Option(
        help="Worker processes per cell, visited round-robin in a new random order each round; they split the "
        "cell's time budget. Rows carry a 95% t-interval over the rounds (at least 2; its actual coverage: "
        "`vmibench check calibrate`). A stored row with fewer rounds is topped up, not reused (default: the "
        "preset's, 3 on CPU presets; 1 for latency)."
    ),
]
ModeOpt = Annotated[str, typer.Option(help="infer (one forward) or train (forward + backward + SGD step).")]
MaxRoundsOpt = Annotated[
    int | None,
    typer.Option(
        help="With --preset: after the preset's rounds, measure more rounds (one per pass) of the preset's "
        "pre-registered comparisons whose three-way verdict is still undetermined -- a ratio as its two cells "
        "alternated in one process (an interleaved pair), an exponent by topping up its ladders -- up to this many "
        "rounds and the preset's adaptive time budget (default: the preset's, 12 for cpu-default; 0 turns it off)."
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
