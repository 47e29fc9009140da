"""Selection: stored rows to the frames the report reads -- one device, its newest environment, the newest row of
each cell -- with their raw samples, and the derived frames (224 rows with utilisation and roofline, ladders).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from vmibench.analysis import add_roofline
from vmibench.errors import UserError
from vmibench.reports.staleness import Staleness
from vmibench.reports.text import CI_COLUMNS, LATENCY, as_float, ci_text, pixels_of
from vmibench.store import ResultStore

SUBJECT = "vminet_t"  # VMINet-Ti: the VMINet variant of the resolution ladder


SOFTMAX_REFERENCE = "deit_t"  # softmax-attention model of the Tiny class, for resolution crossovers


LINEAR_RIVALS = ("vim_t", "vmamba_t", "effvmamba_t", "mlla_t", "flatten_swin_t")  # linear-cost models of the ladder


LADDER_ORDER = (SUBJECT, "vminet_xs", "vminet_s", "vminet_b", *LINEAR_RIVALS, SOFTMAX_REFERENCE, "swin_t")


OP_GROUP = ["op", "dtype", "dim", "batch"]  # one ops fit per op and shape family (dims are never mixed in a fit)


@dataclass
class ReportData:
    """Rows the report is made from (already restricted to one device and environment), with their samples."""

    latency: pd.DataFrame
    ops: pd.DataFrame
    flops: pd.DataFrame
    peak: pd.DataFrame
    accuracy: pd.DataFrame
    models: pd.DataFrame
    device: str
    samples_latency: pd.DataFrame = field(default_factory=pd.DataFrame)  # raw samples of the ok latency rows
    samples_ops: pd.DataFrame = field(default_factory=pd.DataFrame)  # raw samples of the ok ops rows
    staleness: Staleness = field(default_factory=Staleness)
    bandwidth: pd.DataFrame = field(default_factory=pd.DataFrame)  # triad rows (every environment)
    training: pd.DataFrame = field(default_factory=pd.DataFrame)  # latency rows of mode "train"
    backbone: pd.DataFrame = field(default_factory=pd.DataFrame)  # inference rows of task "backbone" (features)
    maxbatch: pd.DataFrame = field(default_factory=pd.DataFrame)  # max-batch rows


def _newest_env(frame: pd.DataFrame, device: str) -> pd.DataFrame:
    if frame.empty or "device" not in frame.columns:
        return frame.iloc[0:0] if not frame.empty else frame
    sub = frame[frame["device"] == device]
    if sub.empty:
        return sub
    key = sub.sort_values("timestamp")["env_key"].iloc[-1]
    return _latest_per_cell(sub[sub["env_key"] == key])


def _latest_per_cell(frame: pd.DataFrame) -> pd.DataFrame:
    """Keep the newest row of each cell (a cell re-measured with --force replaces the older row)."""
    ident = [c for c in ("model", "res", "mode", "task", "op", "seq_len", "dim", "batch", "dtype", "threads",
                         "channels_last", "compile", "scan_backend") if c in frame.columns]  # fmt: skip
    return frame.sort_values("timestamp").drop_duplicates(ident, keep="last")


def _samples_of(store: ResultStore, table: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Raw samples of the selected ok rows: the intervals are computed from them, not from stored summaries."""
    if frame.empty or "row_id" not in frame.columns:
        return store.samples(table, [])
    ids = frame.loc[frame["status"] == "ok", "row_id"].dropna().astype(int).tolist()
    return store.samples(table, ids)


def _modes(frame: pd.DataFrame) -> pd.Series:
    """Each latency row's mode; rows stored before training steps existed are inference rows."""
    if frame.empty or "mode" not in frame.columns:
        return pd.Series("infer", index=frame.index, dtype=object)
    return frame["mode"].fillna("infer").replace("", "infer")


def _tasks(frame: pd.DataFrame) -> pd.Series:
    """Each latency row's task; rows stored before backbone sweeps existed are classifier rows."""
    if frame.empty or "task" not in frame.columns:
        return pd.Series("classify", index=frame.index, dtype=object)
    return frame["task"].fillna("classify").replace("", "classify")


def load(store: ResultStore, device: str | None = None) -> ReportData:
    """Read and select the rows of one device's newest environment, with their raw samples.

    Inference and training rows of the latency table are selected separately (each its own newest environment),
    so a training run measured later does not hide the inference rows.  Raises :class:`UserError` when the
    store has no latency or ops row (of ``device``).
    """
    from vmibench.reports.tables import models_frame

    latency, ops = store.read("latency", keep_row_id=True), store.read("ops", keep_row_id=True)
    if latency.empty and ops.empty:
        raise UserError(f"no latency or ops rows in {store.path}: run `vmibench sweep` / `vmibench ops` first")
    if device is None:
        newest = pd.concat([f[["timestamp", "device"]] for f in (latency, ops) if not f.empty])
        device = str(newest.sort_values("timestamp")["device"].iloc[-1])
    modes, tasks = _modes(latency), _tasks(latency)
    infer = modes == "infer"
    lat, op = _newest_env(latency[infer & (tasks == "classify")], device), _newest_env(ops, device)
    train = _newest_env(latency[modes == "train"], device)
    # feature extractors without their head: their own section, never mixed with the classifiers
    backbone = _newest_env(latency[infer & (tasks == "backbone")], device)
    if lat.empty and op.empty and train.empty and backbone.empty:
        raise UserError(f"no rows for device '{device}' in {store.path}: pick a --device `vmibench results` lists")
    flops = store.read("flops")
    if not flops.empty:
        flops = flops[flops["status"] == "ok"].sort_values("timestamp").drop_duplicates(["model", "res"], keep="last")
    timed = [f for f in (lat, train, backbone) if not f.empty]
    ok_rows = pd.concat(timed) if timed else lat
    return ReportData(
        latency=fill_gmacs(lat, flops),
        ops=op,
        flops=flops,
        peak=store.read("peak"),
        accuracy=store.read("accuracy"),
        models=models_frame(),
        device=device,
        samples_latency=_samples_of(store, "latency", ok_rows),
        samples_ops=_samples_of(store, "ops", op),
        bandwidth=store.read("bandwidth"),
        training=fill_gmacs(train, flops),
        backbone=backbone,
        maxbatch=_newest_env(store.read("maxbatch"), device),
    )


def fill_gmacs(frame: pd.DataFrame, flops: pd.DataFrame) -> pd.DataFrame:
    """Fill missing per-image GMACs and bytes moved from the flops table (rows measured where fvcore was absent,
    e.g. a GPU image, or before bytes were counted): counts do not depend on the device.  What the flops table
    lacks stays NaN."""
    if frame.empty:
        return frame
    out = frame.copy()
    for col in ("gmacs", "gbytes_moved"):
        values = pd.to_numeric(out[col], errors="coerce") if col in out.columns else pd.Series(np.nan, out.index)
        if not flops.empty and col in flops.columns and values.isna().any():
            table = {(r.model, str(r.res)): as_float(getattr(r, col)) for r in flops.itertuples(index=False)}
            missing = values.isna()
            keys = zip(out.loc[missing, "model"], out.loc[missing, "res"].astype(str), strict=True)
            values[missing] = [table.get(key, np.nan) for key in keys]
        out[col] = values.astype(float)
    out["gflops"] = 2 * out["gmacs"]
    return out


def with_pixels(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    out["pixels"] = out["height"].astype(float) * out["width"].astype(float)
    return out


def latency_224(data: ReportData) -> pd.DataFrame:
    lat = data.latency
    if lat.empty:
        return lat
    sub = lat[(lat["res"].astype(str) == "224") & (lat["batch"] == 1)]
    sub = add_roofline(sub, data.peak, data.bandwidth)
    pub = data.models.set_index("model")
    sub = sub.assign(
        published_gmacs=[pub["published_gmacs"].get(m) for m in sub["model"]],
        published_top1=[pub["published_top1"].get(m) for m in sub["model"]],
        stale=[data.staleness.mark(str(m)) for m in sub["model"]],
        ci95=[ci_text(*v) for v in zip(*(column_or_nan(sub, c) for c in CI_COLUMNS), strict=True)],
    )
    return sub.sort_values(LATENCY)


def column_or_nan(frame: pd.DataFrame, col: str) -> pd.Series:
    """``frame[col]``, or NaNs where older rows lack the column."""
    return frame[col] if col in frame.columns else pd.Series(np.nan, index=frame.index)


def top1_column(data: ReportData, models: Sequence[str]) -> pd.DataFrame:
    """Top-1 per model: measured (accuracy table, at 224) where present, else published (marked)."""
    rows = []
    acc = data.accuracy
    if not acc.empty:
        acc = acc[(acc["status"] == "ok") & (acc["res"].astype(str) == "224")].sort_values("timestamp")
    pub = data.models.set_index("model")["published_top1"]
    for m in dict.fromkeys(models):
        measured = acc[acc["model"] == m] if not acc.empty else acc
        if not measured.empty:
            rows.append({"model": m, "top1": float(measured["top1"].iloc[-1]), "top1_source": "measured"})
        elif m in pub.index and not pd.isna(pub[m]):
            rows.append({"model": m, "top1": float(pub[m]), "top1_source": "published"})
    return pd.DataFrame(rows, columns=["model", "top1", "top1_source"])


def scaling_rows(d: ReportData) -> pd.DataFrame:
    lat = d.latency
    if lat.empty:
        return lat
    counts = lat[lat["batch"] == 1].groupby("model")["res"].nunique()
    multi = counts[counts >= 2].index
    sub = lat[(lat["batch"] == 1) & lat["model"].isin(multi)]
    out = add_roofline(with_pixels(sub), d.peak, d.bandwidth)
    out["aspect"] = [aspect(int(h), int(w)) for h, w in zip(out["height"], out["width"], strict=True)]
    out["series"] = [m if a == SQUARE else f"{m} {a}" for m, a in zip(out["model"], out["aspect"], strict=True)]
    return out


SQUARE = "1:1"


def aspect(height: int, width: int) -> str:
    """``1:1``, ``5:8`` (800x1280): square and non-square sizes are separate series and separate fits."""
    import math

    g = math.gcd(height, width) or 1
    return f"{height // g}:{width // g}"


def model_row(d: ReportData, model: str, res: str = "224") -> pd.Series | None:
    """The ok batch-1 latency row of ``model`` at ``res``."""
    lat = d.latency
    if lat.empty:
        return None
    row = lat[(lat["model"] == model) & (lat["res"].astype(str) == res) & (lat["batch"] == 1) & (lat["status"] == "ok")]
    return None if row.empty else row.iloc[0]


def model_gmacs(d: ReportData, model: str) -> float | None:
    lat = d.latency
    row = lat[(lat["model"] == model) & (lat["res"].astype(str) == "224")] if not lat.empty else lat
    if not row.empty and not pd.isna(row["gmacs"].iloc[0]):
        return float(row["gmacs"].iloc[0])
    fl = d.flops
    row = fl[(fl["model"] == model) & (fl["res"].astype(str) == "224")] if not fl.empty else fl
    return None if row.empty else float(row["gmacs"].iloc[0])


def highest_common(d: ReportData, models: Sequence[str]) -> tuple[str, dict[str, pd.Series]] | None:
    """The largest resolution above 224 at which every one of ``models`` has an ok row, with those rows."""
    lat = d.latency
    if lat.empty:
        return None
    ok = lat[(lat["status"] == "ok") & (lat["batch"] == 1) & lat["model"].isin(models)]
    common = None
    for m in models:
        sizes = set(ok.loc[ok["model"] == m, "res"].astype(str))
        common = sizes if common is None else common & sizes
    if not common:
        return None
    res = max(common, key=pixels_of)
    if res == "224":
        return None
    return res, {m: ok[(ok["model"] == m) & (ok["res"].astype(str) == res)].iloc[0] for m in models}


def with_gmacs(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[pd.to_numeric(frame["gmacs"], errors="coerce") > 0]


def main_ops(ops: pd.DataFrame) -> pd.DataFrame:
    """The ops rows question 4 reads: fp32 (else the first dtype), in the (dim, batch) with the most ok rows."""
    ok = ops[ops["status"] == "ok"]
    if ok.empty:
        return ops.iloc[0:0]
    dtype = "fp32" if (ok["dtype"] == "fp32").any() else ok["dtype"].iloc[0]
    dim, batch = ok[ok["dtype"] == dtype].groupby(["dim", "batch"]).size().idxmax()
    return ops[(ops["dtype"] == dtype) & (ops["dim"] == dim) & (ops["batch"] == batch)]
