"""Selection: stored rows to the frames the report reads -- one device, its newest environment (machine and
libraries, any commit: :attr:`vmibench.env.Environment.MACHINE_COLUMNS`), the newest row of each cell -- with
their raw samples, and the derived frames (224 rows with utilisation and roofline, ladders).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from vmibench.analysis import add_roofline
from vmibench.analysis.estimates import CI_COLUMNS, LATENCY, as_float
from vmibench.env import Environment
from vmibench.errors import UserError
from vmibench.reports.text import ci_text
from vmibench.resolution import pixels
from vmibench.store import ResultStore

SUBJECT = "vminet_t"  # VMINet-Ti: the VMINet variant of the resolution ladder


SOFTMAX_REFERENCE = "deit_t"  # softmax-attention model of the Tiny class, for resolution crossovers


LINEAR_RIVALS = ("vim_t", "vmamba_t", "effvmamba_t", "mlla_t", "flatten_swin_t")  # linear-cost models of the ladder


LADDER_ORDER = (SUBJECT, "vminet_xs", "vminet_s", "vminet_b", *LINEAR_RIVALS, SOFTMAX_REFERENCE, "swin_t")


# the models the reviewer questions discuss: the only points labelled in scatter figures
DISCUSSED = (SUBJECT, "vminet_s", "vminet_b", "mlla_t", "flatten_swin_t", "effvmamba_t", SOFTMAX_REFERENCE)


OP_GROUP = ["op", "dtype", "dim", "batch"]  # one ops fit per op and shape family (dims are never mixed in a fit)


@dataclass
class ReportData:
    """Rows the report is made from (already restricted to one device, machine and set of libraries), with their
    samples."""

    latency: pd.DataFrame
    ops: pd.DataFrame
    flops: pd.DataFrame
    peak: pd.DataFrame
    accuracy: pd.DataFrame
    models: pd.DataFrame
    device: str
    samples_latency: pd.DataFrame = field(default_factory=pd.DataFrame)  # raw samples of the ok latency rows
    samples_ops: pd.DataFrame = field(default_factory=pd.DataFrame)  # raw samples of the ok ops rows
    bandwidth: pd.DataFrame = field(default_factory=pd.DataFrame)  # triad rows (every environment)
    training: pd.DataFrame = field(default_factory=pd.DataFrame)  # latency rows of mode "train"
    backbone: pd.DataFrame = field(default_factory=pd.DataFrame)  # inference rows of task "backbone" (features)
    maxbatch: pd.DataFrame = field(default_factory=pd.DataFrame)  # max-batch rows
    profile: pd.DataFrame = field(default_factory=pd.DataFrame)  # profiled cells (unprofiled vs profiled latency)
    breakdown: pd.DataFrame = field(default_factory=pd.DataFrame)  # their time by block and operator class
    roofs: pd.DataFrame = field(default_factory=pd.DataFrame)  # elementwise and transcendental roofs
    pairs: pd.DataFrame = field(default_factory=pd.DataFrame)  # interleaved pairs (ratios timed call by call)
    samples_pairs: pd.DataFrame = field(default_factory=pd.DataFrame)  # their raw samples, in call order

    def comparison_inputs(self) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
        """The rows and raw samples :func:`vmibench.analysis.comparisons.evaluate` takes, by table."""
        frames = {"latency": self.latency, "ops": self.ops, "pairs": self.pairs}
        return frames, {"latency": self.samples_latency, "ops": self.samples_ops, "pairs": self.samples_pairs}


def _newest_env(frame: pd.DataFrame, device: str) -> pd.DataFrame:
    if frame.empty or "device" not in frame.columns:
        return frame.iloc[0:0] if not frame.empty else frame
    sub = frame[frame["device"] == device]
    if sub.empty:
        return sub
    # the newest row's machine and libraries; a rerun at a later commit (after a fix, say) adds to its rows
    cols = [c for c in Environment.MACHINE_COLUMNS if c in sub.columns]
    machine = sub[cols].astype(str)
    newest = machine.loc[sub["timestamp"].sort_values(kind="stable").index[-1]]
    return _latest_per_cell(sub[(machine == newest).all(axis=1)])


def _latest_per_cell(frame: pd.DataFrame) -> pd.DataFrame:
    """Keep the newest row of each cell (a cell re-measured with --force replaces the older row)."""
    ident = [c for c in ("model", "res", "mode", "task", "op", "seq_len", "dim", "a", "b", "at", "member_table",
                         "batch", "dtype", "threads", "channels_last", "compile", "scan_backend")
             if c in frame.columns]  # fmt: skip
    # stable: rows stored within one second (the timestamps' resolution) keep the store's order, newest last
    return frame.sort_values("timestamp", kind="stable").drop_duplicates(ident, keep="last")


def _samples_of(store: ResultStore, table: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Raw samples of the selected ok rows: the intervals are computed from them, not from stored summaries."""
    if frame.empty or "row_id" not in frame.columns:
        return store.samples(table, [])
    ids = frame.loc[frame["status"] == "ok", "row_id"].dropna().astype(int).tolist()
    return store.samples(table, ids)


def row_modes(frame: pd.DataFrame) -> pd.Series:
    """Each latency row's mode; rows stored before training steps existed are inference rows."""
    if frame.empty or "mode" not in frame.columns:
        return pd.Series("infer", index=frame.index, dtype=object)
    return frame["mode"].fillna("infer").replace("", "infer")


def row_tasks(frame: pd.DataFrame) -> pd.Series:
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
    modes, tasks = row_modes(latency), row_tasks(latency)
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
    pairs = _newest_env(store.read("pairs", keep_row_id=True), device)
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
        pairs=pairs,
        samples_pairs=_samples_of(store, "pairs", pairs),
        **_profiles(store, device),
    )


def _profiles(store: ResultStore, device: str) -> dict[str, pd.DataFrame]:
    """The newest environment's profiled cells (the newest row of each), their breakdown rows and the roofs."""
    profile = _newest_env(store.read("profile"), device)
    if profile.empty:
        return {}
    profile = profile.sort_values("timestamp").drop_duplicates(["model", "res", "mode", "batch"], keep="last")
    breakdown = store.read("breakdown")
    if not breakdown.empty:
        breakdown = breakdown[breakdown["profile_row_uid"].isin(set(profile["row_uid"]))]
    roofs = store.read("roofs")
    if not roofs.empty:
        roofs = roofs[(roofs["status"] == "ok") & roofs["env_key"].isin(set(profile["env_key"]))]
    return {"profile": profile, "breakdown": breakdown, "roofs": roofs}


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
    pub = published_at(data)
    sub = sub.assign(
        published_gmacs=[pub["published_gmacs"].get(m) for m in sub["model"]],
        published_top1=[pub["published_top1"].get(m) for m in sub["model"]],
        released_top1=[pub["released_top1"].get(m) for m in sub["model"]],
        ci95=[ci_text(*v) for v in zip(*(column_or_nan(sub, c) for c in CI_COLUMNS), strict=True)],
    )
    return sub.sort_values(LATENCY)


PUBLISHED_NUMBERS = ("published_gmacs", "published_top1", "released_top1")


def published_at(data: ReportData, res: int = 224) -> pd.DataFrame:
    """The model records by name, with their published top-1 and GMACs blanked where the paper printed them at
    another resolution than ``res`` (MobileViTv2's 256 px numbers never sit beside a 224 px latency);
    ``published_res`` keeps the resolution they were printed at."""
    pub = data.models.set_index("model").copy()
    for col in ("published_res", "released_top1"):
        if col not in pub.columns:
            pub[col] = np.nan
    res_of = pd.to_numeric(pub["published_res"], errors="coerce")
    other = res_of.notna() & (res_of != res)
    for col in PUBLISHED_NUMBERS:
        pub[col] = pd.to_numeric(pub[col], errors="coerce").astype(float)
        pub.loc[other, col] = np.nan
    return pub


IMAGENET_VAL = (50_000, 1_000)  # images, classes of the full ImageNet-1k validation set


def accuracy_rows(data: ReportData) -> pd.DataFrame:
    """The ok accuracy rows at 224 with their dataset's identity: ``dataset`` (name), ``n_samples`` (images),
    ``num_classes`` and ``imagenet`` -- True only for the full ImageNet-1k validation set (50,000 images, 1,000
    classes); any other set is a toy set, named by its name and size, never "ImageNet"."""
    acc = data.accuracy
    if acc.empty:
        return pd.DataFrame(columns=["model", "res", "top1", "dataset", "n_samples", "num_classes", "imagenet"])
    acc = acc[(acc["status"] == "ok") & (acc["res"].astype(str) == "224")].sort_values("timestamp")
    names = column_or_nan(acc, "dataset").fillna("").astype(str)
    folders = column_or_nan(acc, "data_dir").fillna("").astype(str).map(lambda p: p.rstrip("/").rsplit("/", 1)[-1])
    images = pd.to_numeric(column_or_nan(acc, "n_samples"), errors="coerce")
    classes = pd.to_numeric(column_or_nan(acc, "num_classes"), errors="coerce")
    return acc.assign(dataset=names.where(names != "", folders).replace("", "unnamed set"),
                      imagenet=(images == IMAGENET_VAL[0]) & (classes == IMAGENET_VAL[1]))  # fmt: skip


def dataset_label(row: pd.Series) -> str:
    """``ImageNet-1k val`` for the full set, else ``toyset (21 images, 3 classes)``."""
    if bool(row.get("imagenet")):
        return "ImageNet-1k val"
    return (
        f"{row.get('dataset')} ({fmt_count(row.get('n_samples'))} images, {fmt_count(row.get('num_classes'))} classes)"
    )


def fmt_count(value: object) -> str:
    number = as_float(value)
    return f"{int(number):,}" if np.isfinite(number) else "?"


def without_duplicate_utilisation(frame: pd.DataFrame, cols: list[str]) -> list[str]:
    """``cols`` without ``utilisation`` where it equals ``roofline_frac`` on every row (compute-bound rows: both are
    achieved GFLOP/s over the matmul peak): one column, not two identical ones."""
    if "utilisation" not in frame.columns or "roofline_frac" not in frame.columns:
        return cols
    u = pd.to_numeric(frame["utilisation"], errors="coerce").to_numpy(dtype=float)
    r = pd.to_numeric(frame["roofline_frac"], errors="coerce").to_numpy(dtype=float)
    same = np.allclose(u, r, rtol=1e-9, atol=0.0, equal_nan=True)
    return [c for c in cols if c != "utilisation"] if same else cols


def column_or_nan(frame: pd.DataFrame, col: str) -> pd.Series:
    """``frame[col]``, or NaNs where older rows lack the column."""
    return frame[col] if col in frame.columns else pd.Series(np.nan, index=frame.index)


def top1_column(data: ReportData, models: Sequence[str]) -> pd.DataFrame:
    """ImageNet top-1 per model at 224: measured on the full ImageNet-1k validation set where stored, else the
    paper's (``published``, only where printed at 224).  Accuracy on any smaller set is never used here (see
    :func:`accuracy_rows`); ``released_top1`` is the released checkpoint's score where it differs from the paper's."""
    rows = []
    acc = accuracy_rows(data)
    acc = acc[acc["imagenet"]] if not acc.empty else acc
    pub = published_at(data)
    for m in dict.fromkeys(models):
        released = pub["released_top1"].get(m, np.nan)
        measured = acc[acc["model"] == m] if not acc.empty else acc
        if not measured.empty:
            rows.append({"model": m, "top1": float(measured["top1"].iloc[-1]), "top1_source": "measured",
                         "released_top1": released})  # fmt: skip
        elif m in pub.index and not pd.isna(pub["published_top1"][m]):
            rows.append({"model": m, "top1": float(pub["published_top1"][m]), "top1_source": "published",
                         "released_top1": released})  # fmt: skip
    return pd.DataFrame(rows, columns=["model", "top1", "top1_source", "released_top1"])


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
    res = max(common, key=pixels)
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
