"""Frames for the CLI and the report: the registry, and stored records with their default column sets."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from vmibench.records import Record

LATENCY_COLUMNS = [
    "model", "res", "batch", "device", "dtype", "threads", "params_m", "gmacs", "gflops",
    "latency_ms_median", "latency_ms_iqr", "latency_ms_p10", "latency_ms_p90", "n_iters", "throughput_ips",
    "peak_mem_mb", "mem_method", "status", "error", "scan_backend", "channels_last", "compile", "converged",
    "device_name", "torch_version", "timm_version", "git_commit",
]  # fmt: skip

FLOPS_COLUMNS = [
    "model", "res", "params", "params_m", "gmacs", "gflops", "gmacs_torch", "scan_gmacs", "uncounted_ops",
    "published_params_m", "published_gmacs", "published_res", "published_flops_rule", "note", "status", "error",
]  # fmt: skip

OPS_COLUMNS = [
    "op", "seq_len", "dim", "batch", "device", "dtype", "threads", "gmacs", "latency_ms_median", "latency_ms_iqr",
    "n_iters", "throughput_ips", "peak_mem_mb", "mem_method", "status", "error", "expected_complexity",
    "reconstruction", "scan_backend", "device_name", "torch_version", "git_commit",
]  # fmt: skip

PEAK_COLUMNS = ["device", "dtype", "threads", "matmul_n", "peak_gflops", "latency_ms_median", "n_iters", "status",
                "error", "device_name", "torch_version", "timestamp"]  # fmt: skip


def default_columns(table: str) -> list[str]:
    """Columns `vmibench results` shows for ``table`` without --all-columns (all, if none are declared)."""
    if table == "accuracy":
        from vmibench.accuracy import ACCURACY_COLUMNS

        return ACCURACY_COLUMNS
    return {"latency": LATENCY_COLUMNS, "flops": FLOPS_COLUMNS, "ops": OPS_COLUMNS, "peak": PEAK_COLUMNS}.get(table, [])


def frame_of(records: Sequence[Record], columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Records as a frame, restricted to ``columns`` (in that order) when given."""
    frame = pd.DataFrame([r.to_row() for r in records])
    if columns is not None and not frame.empty:
        frame = frame[[c for c in columns if c in frame.columns]]
    return frame


def models_frame() -> pd.DataFrame:
    """One row per registered model: published numbers, eval settings, official source and adaptations."""
    from vmibench.registry import list_models

    rows = []
    for info in list_models():
        pub = info.published
        rows.append(
            {
                "model": info.name,
                "family": info.family,
                "paper_name": info.paper_name,
                "published_params_m": pub.params_m,
                "published_gmacs": pub.gmacs,
                "published_top1": pub.top1,
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
