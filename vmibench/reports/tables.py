"""Frames for the CLI and the report: the registry, and stored records with their default column sets."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pandas as pd

from vmibench.analysis.estimates import LATENCY
from vmibench.records import Record
from vmibench.reports.text import fmt

LATENCY_COLUMNS = [
    "model", "res", "batch", "device", "dtype", "threads", "params_m", "gmacs", "gflops",
    "latency_ms_median", "latency_ms_iqr", "latency_ms_p10", "latency_ms_p90", "n_iters", "throughput_ips",
    "peak_mem_mb", "mem_method", "status", "error", "mode", "task", "gbytes_moved", "scan_backend", "channels_last",
    "compile", "converged", "device_name", "torch_version", "timm_version", "git_commit",
]  # fmt: skip

FLOPS_COLUMNS = [
    "model", "res", "params", "params_m", "gmacs", "gflops", "gmacs_torch", "scan_gmacs", "gbytes_moved",
    "uncounted_ops",
    "published_params_m", "published_gmacs", "published_res", "published_flops_rule", "note", "status", "error",
]  # fmt: skip

OPS_COLUMNS = [
    "op", "seq_len", "dim", "batch", "device", "dtype", "threads", "gmacs", "gbytes_moved", "latency_ms_median",
    "latency_ms_iqr", "n_iters", "throughput_ips", "peak_mem_mb", "mem_method", "status", "error",
    "expected_complexity", "reconstruction", "scan_backend", "device_name", "torch_version", "git_commit",
]  # fmt: skip

PEAK_COLUMNS = ["device", "dtype", "threads", "matmul_n", "peak_gflops", "latency_ms_median", "n_iters", "status",
                "error", "device_name", "torch_version", "timestamp"]  # fmt: skip

BANDWIDTH_COLUMNS = ["device", "dtype", "threads", "triad_n", "bw_peak_gbs", "latency_ms_median", "n_iters", "status",
                     "error", "device_name", "torch_version", "timestamp"]  # fmt: skip

MAXBATCH_COLUMNS = ["model", "res", "mode", "max_batch", "throughput_ips", "latency_ms_median", "peak_mem_mb",
                    "mem_limit_gb", "mem_limit_method", "probes", "device", "dtype", "threads", "status", "error",
                    "device_name", "torch_version", "git_commit"]  # fmt: skip


LATENCY_CI = "latency_ms [95% CI]"  # terminal-only column: median and its stored 95% interval in one cell
RATIO_CI = "ratio [95% CI]"  # the same for `vmibench compare`'s ratio to the baseline

# What a terminal table shows by default: what fits 100 columns.  CSV/JSON and --all-columns carry the rest.
COMPACT_COLUMNS: dict[str, list[str]] = {
    "latency": ["model", "res", "mode", "task", "batch", "dtype", LATENCY_CI, "throughput_ips", "peak_mem_mb", "gmacs",
                "status", "measured_at"],
    "maxbatch": ["model", "res", "mode", "max_batch", "throughput_ips", "peak_mem_mb", "mem_limit_gb", "status",
                 "measured_at"],
    "bandwidth": ["device", "dtype", "threads", "triad_n", "bw_peak_gbs", "status", "timestamp"],
    "ops": ["op", "seq_len", "dim", "batch", "dtype", LATENCY_CI, "peak_mem_mb", "gmacs", "status", "measured_at"],
    "flops": ["model", "res", "params_m", "gmacs", "published_params_m", "published_gmacs", "status"],
    "peak": ["device", "dtype", "threads", "matmul_n", "peak_gflops", "status", "timestamp"],
    "models": ["model", "family", "paper_name", "published_params_m", "published_gmacs", "published_top1",
               "eval_res", "uses_scan"],
    "compare": ["model", "latency_ms_median", RATIO_CI, "verdict", "paired"],  # baseline and res: in the title
    "pairs": ["a", "b", "at", "member_table", RATIO_CI, "rounds", "a_ms_median", "b_ms_median", "n_iters", "status",
              "measured_at"],
}  # fmt: skip


def with_latency_ci(frame: pd.DataFrame) -> pd.DataFrame:
    """Add the terminal's ``latency_ms [95% CI]`` column ("3.71 [3.60, 3.85]") from the median and its CI, and
    ``ratio [95% CI]`` from the ratio to a baseline and its CI (`vmibench compare`)."""
    frame = _with_ci(frame, LATENCY_CI, "latency_ms_median", "latency_ms_ci_low", "latency_ms_ci_high")
    return _with_ci(frame, RATIO_CI, "ratio", "ratio_ci_low", "ratio_ci_high")


def _with_ci(frame: pd.DataFrame, column: str, value: str, low: str, high: str) -> pd.DataFrame:
    """``column`` = "value [low, high]" (just the value where the interval is missing), if ``value`` is a column."""
    if value not in frame.columns:
        return frame
    from vmibench.output import number

    def cell(row: pd.Series) -> str:
        text = number(row[value])
        if text and pd.notna(row.get(low)) and pd.notna(row.get(high)):
            text += f" [{number(row[low])}, {number(row[high])}]"
        return text

    return frame.assign(**{column: frame.apply(cell, axis=1) if len(frame) else []})


# Compact tables state these once, in the caption, when every row has the same value (as torch.utils.benchmark's
# Compare does), so that what varies fits the screen.
SHARED_IN_CAPTION = ("device", "dtype", "batch", "dim", "threads", "task", "paired")


PROFILE_COLUMNS = ["model", "res", "mode", "latency_ms_median", "profiled_ms_median", "profile_overhead",
                   "class_sum_frac", "rounds", "status", "error"]  # fmt: skip
BREAKDOWN_COLUMNS = ["model", "res", "mode", "block", "op_class", "time_ms", "time_share", "time_share_ci_low",
                     "time_share_ci_high", "flop_share", "byte_share", "roof", "rounds"]  # fmt: skip
ROOF_COLUMNS = ["device", "dtype", "threads", "roof", "roof_n", "roof_gbs", "roof_gelems", "rounds", "status"]


def select_columns(
    frame: pd.DataFrame, kind: str, fmt: str, columns: str | None = None, all_columns: bool = False
) -> tuple[pd.DataFrame, str]:
    """The columns to print and a caption: ``--columns`` as given, every column (``--all-columns``), the
    compact set on a terminal table (columns equal in every row move to the caption), else (CSV/JSON) every
    column, the kind's declared ones first.  Unknown ``--columns`` names are a UserError."""
    from vmibench.errors import UserError

    if frame.empty:
        return frame, ""
    if columns is not None:
        wanted = [c.strip() for c in columns.split(",") if c.strip()]
        frame = with_latency_ci(frame)
        if "timestamp" in frame.columns and "measured_at" not in frame.columns:  # the name rows are printed with
            frame = frame.assign(measured_at=frame["timestamp"])
        unknown = [c for c in wanted if c not in frame.columns]
        if unknown or not wanted:
            raise UserError(
                f"unknown column(s) {', '.join(unknown) or columns!r}: choose from {', '.join(frame.columns)}"
            )
        return frame[wanted], ""
    if all_columns:
        return frame, ""
    if fmt != "table" or kind not in COMPACT_COLUMNS:
        declared = default_columns(kind)  # none declared (compare): the frame's own order, measured_at not first
        first = [c for c in [*declared, "measured_at"] if c in frame.columns] if declared else []
        if fmt == "table":  # none declared (models, samples, compare): every column
            return frame[first or list(frame.columns)], ""
        # CSV and JSON carry every column, as the README promises: the declared ones first, then the rest
        return frame[first + [c for c in frame.columns if c not in first]], ""
    frame = with_latency_ci(frame)
    if kind == "compare":  # a row without a verdict says why in its place (compare's status column is the reason)
        verdict = frame["verdict"] if "verdict" in frame.columns else pd.Series(None, frame.index, dtype=object)
        frame = frame.assign(verdict=verdict.fillna(frame["status"]))
    if "measured_at" in frame.columns:  # minutes are enough on a screen; CSV/JSON keep the full stamp
        frame = frame.assign(measured_at=frame["measured_at"].astype(str).str[:16].str.replace("T", " "))
    chosen = [c for c in COMPACT_COLUMNS[kind] if c in frame.columns]
    shared = [c for c in SHARED_IN_CAPTION if c in chosen and frame[c].astype(str).nunique() == 1]
    caption = ", ".join(f"{c} {frame[c].iloc[0]}" for c in shared)
    return frame[[c for c in chosen if c not in shared]], (f"all rows: {caption}" if caption else "")


def default_columns(table: str) -> list[str]:
    """Columns `vmibench results` shows for ``table`` without --all-columns (all, if none are declared)."""
    if table == "accuracy":
        from vmibench.accuracy import ACCURACY_COLUMNS

        return ACCURACY_COLUMNS
    return {"latency": LATENCY_COLUMNS, "flops": FLOPS_COLUMNS, "ops": OPS_COLUMNS, "peak": PEAK_COLUMNS,
            "bandwidth": BANDWIDTH_COLUMNS, "maxbatch": MAXBATCH_COLUMNS, "profile": PROFILE_COLUMNS,
            "breakdown": BREAKDOWN_COLUMNS, "roofs": ROOF_COLUMNS}.get(table, [])  # fmt: skip


def frame_of(records: Sequence[Record], columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Records as a frame, restricted to ``columns`` (in that order) when given."""
    frame = pd.DataFrame([r.to_row() for r in records])
    if columns is not None and not frame.empty:
        frame = frame[[c for c in columns if c in frame.columns]]
    return frame


def models_frame() -> pd.DataFrame:
    """One row per registered model: published numbers, eval settings, official source and adaptations."""
    from vmibench.registry import list_infos

    rows = []
    for info in list_infos():
        pub = info.published
        rows.append(
            {
                "model": info.name,
                "family": info.family,
                "paper_name": info.paper_name,
                "published_params_m": pub.params_m,
                "published_gmacs": pub.gmacs,
                "published_top1": pub.top1,
                "released_top1": pub.released_top1,
                "published_res": pub.eval_res,
                "stage_strides": ",".join(str(x) for x in info.stage_strides),
                "eval_res": info.eval.input_size[1],
                "crop_pct": info.eval.crop_pct,
                "interpolation": info.eval.interpolation,
                "res_multiple": info.res_multiple,
                "uses_scan": info.uses_scan,
                "official": info.official,
                "adaptation": info.adaptation,
                "reconstruction": info.reconstruction,
                "published_flops_rule": pub.flops_rule,
                "source": pub.source,
                "note": pub.note,
            }
        )
    return pd.DataFrame(rows)


def status_pivot(
    frame: pd.DataFrame, index: str, columns: str, order: Callable[[list[object]], list[object]] = sorted
) -> pd.DataFrame:
    """Median latency by ``index`` x ``columns``, formatted; a cell that did not run shows its status instead."""
    latency = frame.pivot_table(index=index, columns=columns, values=LATENCY, aggfunc="first")
    status = frame.pivot_table(index=index, columns=columns, values="status", aggfunc="first")
    cols = order(list(status.columns))
    shown = pd.DataFrame(index=status.index, columns=cols, dtype=object)
    for row in status.index:
        for col in cols:
            st = status.loc[row, col]
            ok = st == "ok" and col in latency.columns and row in latency.index
            shown.loc[row, col] = fmt(latency.loc[row, col]) if ok else ("" if pd.isna(st) else st)
    shown = shown.reset_index()
    shown.columns = [str(c) for c in shown.columns]
    return shown
