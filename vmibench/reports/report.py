"""``vmibench report``: results/REPORT.md, CSV tables and PNG figures, generated from the results store.

Everything printed is read from the store at generation time -- the *Reviewer questions* sentences included --
so the report cannot drift from its data.  One report covers one device (``--device``, default: that of the
newest latency row) and, for it, the newest environment (machine + libraries + vmibench commit) of the
latency and ops tables, so rows of different code versions are never mixed.  Published numbers appear only in
columns named ``published_*`` and are marked as such in figures.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from vmibench.analysis import add_utilisation, crossover, fit_table
from vmibench.errors import UserError
from vmibench.reports import plots
from vmibench.store import ResultStore

SOFTMAX_REFERENCE = "deit_t"  # softmax-attention model of the Tiny class, for resolution crossovers


@dataclass
class Section:
    """A titled block of markdown."""

    title: str
    lines: list[str] = field(default_factory=list)

    def render(self) -> str:
        return f"## {self.title}\n\n" + "\n".join(self.lines).rstrip() + "\n"


@dataclass
class ReportData:
    """Rows the report is made from (already restricted to one device and environment)."""

    latency: pd.DataFrame
    ops: pd.DataFrame
    flops: pd.DataFrame
    peak: pd.DataFrame
    accuracy: pd.DataFrame
    models: pd.DataFrame
    device: str


# -- selection ---------------------------------------------------------------------------------------------


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
    ident = [c for c in ("model", "res", "op", "seq_len", "dim", "batch", "dtype", "threads", "channels_last",
                         "compile", "scan_backend") if c in frame.columns]  # fmt: skip
    return frame.sort_values("timestamp").drop_duplicates(ident, keep="last")


def load(store: ResultStore, device: str | None = None) -> ReportData:
    """Read and select the rows of one device's newest environment."""
    from vmibench.reports.tables import models_frame

    latency, ops = store.read("latency"), store.read("ops")
    if latency.empty and ops.empty:
        raise UserError(f"no latency or ops rows in {store.path}: run `vmibench sweep` / `vmibench ops` first")
    if device is None:
        newest = pd.concat([f[["timestamp", "device"]] for f in (latency, ops) if not f.empty])
        device = str(newest.sort_values("timestamp")["device"].iloc[-1])
    lat, op = _newest_env(latency, device), _newest_env(ops, device)
    if lat.empty and op.empty:
        raise UserError(f"no rows for device '{device}' in {store.path}: pick a --device `vmibench results` lists")
    flops = store.read("flops")
    if not flops.empty:
        flops = flops[flops["status"] == "ok"].sort_values("timestamp").drop_duplicates(["model", "res"], keep="last")
    return ReportData(
        latency=fill_gmacs(lat, flops),
        ops=op,
        flops=flops,
        peak=store.read("peak"),
        accuracy=store.read("accuracy"),
        models=models_frame(),
        device=device,
    )


# -- formatting ----------------------------------------------------------------------------------------------


def fmt(value: object, digits: int = 3) -> str:
    """Number with ``digits`` significant digits; blank for missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return str(int(value))
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        v = float(value)
        if v.is_integer() and abs(v) < 1e7:
            return str(int(v))
        if v == 0:
            return "0"
        if abs(v) >= 10 ** (digits + 2) or abs(v) < 10 ** (-digits):
            return f"{v:.{digits - 1}e}"
        return f"{v:.{max(0, digits - 1 - math.floor(math.log10(abs(v))))}f}"
    return str(value).replace("|", "/").replace("\n", " ")


def md_table(frame: pd.DataFrame, columns: Sequence[str] | None = None) -> list[str]:
    """A markdown table of ``frame`` (formatted numbers)."""
    cols = [c for c in (columns or frame.columns) if c in frame.columns]
    if frame.empty or not cols:
        return ["*(no rows)*"]
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in frame[cols].itertuples(index=False):
        out.append("| " + " | ".join(fmt(v) for v in row) + " |")
    return out


def setup_line(frame: pd.DataFrame, *, extra: str = "") -> str:
    """The setup a table/figure was measured under: device, dtype, batch, threads, scan backend, versions."""
    if frame.empty:
        return extra

    def values(col: str) -> str:
        if col not in frame.columns:
            return "?"
        vals = sorted({str(v) for v in frame[col].dropna() if str(v) != ""})
        return ",".join(vals) if vals else "-"

    parts = [
        f"device {values('device')} ({values('device_name')})",
        f"dtype {values('dtype')}",
        f"batch {values('batch')}",
        f"threads {values('threads')}",
        f"scan backend {values('scan_backend')}",
        f"torch {values('torch_version')}",
        f"timm {values('timm_version')}",
        f"vmibench {values('vmibench_version')} @ {values('git_commit')}",
    ]
    return "; ".join(parts) + (f"; {extra}" if extra else "")


def caption(frame: pd.DataFrame, source: str, extra: str = "") -> str:
    return f"*{setup_line(frame, extra=extra)}. Data: {source}.*"


# -- derived frames ------------------------------------------------------------------------------------------


def fill_gmacs(frame: pd.DataFrame, flops: pd.DataFrame) -> pd.DataFrame:
    """Fill missing per-image GMACs from the flops table (rows measured where fvcore was absent, e.g. a GPU
    image): FLOPs do not depend on the device."""
    if frame.empty or flops.empty or not frame["gmacs"].isna().any():
        return frame
    table = {(r.model, str(r.res)): float(r.gmacs) for r in flops.itertuples(index=False)}
    out = frame.copy()
    missing = out["gmacs"].isna()
    keys = zip(out.loc[missing, "model"], out.loc[missing, "res"].astype(str), strict=True)
    out.loc[missing, "gmacs"] = [table.get(key) for key in keys]
    out["gflops"] = 2 * out["gmacs"].astype(float)
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
    sub = add_utilisation(sub, data.peak)
    pub = data.models.set_index("model")
    sub = sub.assign(
        published_gmacs=[pub["published_gmacs"].get(m) for m in sub["model"]],
        published_top1=[pub["published_top1"].get(m) for m in sub["model"]],
    )
    return sub.sort_values("latency_ms_median")


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


# -- sections ------------------------------------------------------------------------------------------------


class Builder:
    """Accumulates sections, CSV tables and figures under one output directory."""

    def __init__(self, data: ReportData, out: Path) -> None:
        self.data = data
        self.out = out
        self.fig_dir = out / "figures"
        self.tab_dir = out / "tables"
        self.fig_dir.mkdir(parents=True, exist_ok=True)
        self.tab_dir.mkdir(parents=True, exist_ok=True)
        self.sections: list[Section] = []
        self.files: list[Path] = []

    def table(self, frame: pd.DataFrame, name: str) -> str:
        path = self.tab_dir / f"{name}.csv"
        frame.to_csv(path, index=False)
        self.files.append(path)
        return f"tables/{name}.csv"

    def figure(self, draw: Callable[[Path], Path], name: str) -> str:
        path = draw(self.fig_dir / f"{name}.png")
        self.files.append(path)
        return f"figures/{name}.png"


def section_setup(b: Builder) -> Section:
    d = b.data
    both = pd.concat([f for f in (d.latency, d.ops) if not f.empty])
    first = both.iloc[0]
    peak = d.peak[(d.peak["status"] == "ok") & d.peak["env_key"].isin(both["env_key"])] if not d.peak.empty else d.peak
    s = Section("Setup")
    s.lines += [
        f"- Device: `{d.device}` -- {first.get('device_name', '?')}; CPU {first.get('cpu_model', '?')}, "
        f"{first.get('cpu_count', '?')} usable cores; host {first.get('hostname', '?')} "
        f"({first.get('platform', '?')}).",
        f"- Libraries: torch {first.get('torch_version')}, timm {first.get('timm_version')}, fvcore "
        f"{first.get('fvcore_version')}, CUDA {first.get('cuda_version')}, Python {first.get('python')}; vmibench "
        f"{first.get('vmibench_version')} at commit `{first.get('git_commit')}`.",
        f"- Settings found: {setup_line(both)}.",
        "- Protocol: every cell runs in a fresh worker process; warm-up >= 2-3 calls and >= 0.2 s per shape; "
        "per-call timing (perf_counter on CPU, CUDA events on GPU) until the median's robust standard error is "
        "below the precision target or the per-cell budget ends (`converged` column). Latency = median; "
        "throughput = batch / median.",
        "- Memory: `peak_mem_mb` = rise above what was held before the first forward (activations + workspaces; "
        "for ops also the op's own buffers), by `mem_method` (rss_hwm = resident-set high-water mark on CPU).",
        '- FLOPs: fvcore, 1 multiply-add = 1 FLOP (`gmacs`, the papers\' "GFLOPs"); selective scans as one op, '
        "9*B*L*D*N + B*D*L (+B*D*L with a z gate). Published numbers are reference columns, never ours.",
    ]
    if not peak.empty:
        peaks = ", ".join(f"{r.dtype}/{int(r.threads)} threads: {fmt(r.peak_gflops)} GFLOP/s (n={int(r.matmul_n)})"
                          for r in peak.itertuples(index=False))  # fmt: skip
        s.lines.append(f"- Dense-matmul peak measured in the same environment: {peaks}.")
    return s


def section_flops(b: Builder) -> Section:
    d = b.data
    s = Section("Models, parameters and FLOPs")
    fl = d.flops
    models = d.models.set_index("model")
    rows = []
    ours_224 = fl[fl["res"].astype(str) == "224"].set_index("model") if not fl.empty else pd.DataFrame()
    lat224 = d.latency[d.latency["res"].astype(str) == "224"].drop_duplicates("model").set_index("model") \
        if not d.latency.empty else pd.DataFrame()  # fmt: skip
    for name, info in models.iterrows():
        src = ours_224 if name in ours_224.index else lat224
        if name not in src.index:
            continue
        r = src.loc[name]
        rows.append({
            "model": name, "paper_name": info["paper_name"], "params_m": r.get("params_m"), "gmacs": r.get("gmacs"),
            "published_params_m": info["published_params_m"], "published_gmacs": info["published_gmacs"],
            "published_top1": info["published_top1"], "flops_rule": info["published_flops_rule"],
            "note": info["note"],
        })  # fmt: skip
    frame = pd.DataFrame(rows)
    csv = b.table(frame, "models_flops_224")
    s.lines += md_table(frame, ["model", "paper_name", "params_m", "gmacs", "published_params_m", "published_gmacs",
                                "published_top1", "flops_rule", "note"])  # fmt: skip
    s.lines += ["", f"*gmacs/params_m: vmibench's count at 224x224 on {d.device}'s rows (fvcore + vmibench handles); "
                    f"published_*: the model record's reference numbers. Table: `{csv}`.*"]  # fmt: skip
    return s


def section_latency(b: Builder) -> Section:
    d = b.data
    s = Section("Latency, throughput and memory at 224")
    sub = latency_224(d)
    if sub.empty:
        s.lines.append("*(no 224 x 224, batch-1 rows: run `vmibench sweep --models all --res 224`)*")
        return s
    cols = ["model", "latency_ms_median", "latency_ms_iqr", "n_iters", "throughput_ips", "peak_mem_mb", "gmacs",
            "achieved_gflops", "utilisation", "scan_backend", "status"]  # fmt: skip
    csv = b.table(sub[[*cols, "published_gmacs", "published_top1"]], "latency_224")
    s.lines += md_table(sub, cols)
    s.lines += ["", caption(sub, f"`{csv}`", "utilisation = achieved GFLOP/s / dense-matmul peak")]
    ok = sub[sub["status"] == "ok"]
    if not ok.empty:
        fig = b.figure(
            lambda p: plots.scatter_labelled(
                ok,
                x="gmacs",
                y="latency_ms_median",
                label="model",
                path=p,
                title="Latency vs GMACs at 224, batch 1",
                xlabel="GMACs per image (ours)",
                ylabel="median latency (ms)",
                setup=setup_line(ok),
            ),
            "latency_vs_gmacs",
        )
        s.lines += ["", f"![latency vs GMACs]({fig})", "", f"*Figure: latency vs GMACs. {setup_line(ok)}.*"]
    return s


def _scaling(d: ReportData) -> pd.DataFrame:
    lat = d.latency
    if lat.empty:
        return lat
    counts = lat[lat["batch"] == 1].groupby("model")["res"].nunique()
    multi = counts[counts >= 2].index
    sub = lat[(lat["batch"] == 1) & lat["model"].isin(multi)]
    return add_utilisation(with_pixels(sub), d.peak)


def section_scaling(b: Builder) -> tuple[Section, pd.DataFrame]:
    d = b.data
    s = Section("Resolution scaling")
    sub = _scaling(d)
    if sub.empty:
        s.lines.append("*(no model measured at two or more resolutions)*")
        return s, pd.DataFrame()
    shown = status_pivot(sub, "model", "res", order=lambda cols: sorted(cols, key=lambda r: _pixels_of(str(r))))
    csv = b.table(sub[["model", "res", "height", "width", "pixels", "latency_ms_median", "latency_ms_iqr",
                       "throughput_ips", "peak_mem_mb", "gmacs", "achieved_gflops", "utilisation", "status",
                       "error"]], "resolution_sweep")  # fmt: skip
    s.lines += ["Median latency (ms), batch 1; failed cells show their status:", ""]
    s.lines += md_table(shown)
    s.lines += ["", caption(sub, f"`{csv}`")]
    setup = setup_line(sub)
    figs = [
        ("latency_vs_resolution", "latency_ms_median", "median latency (ms)", "Latency vs input pixels (log-log)"),
        ("throughput_vs_resolution", "throughput_ips", "images / s", "Throughput vs input pixels"),
        ("memory_vs_resolution", "peak_mem_mb", "peak memory rise (MB)", "Peak memory vs input pixels"),
        ("utilisation_vs_resolution", "utilisation", "achieved / matmul peak", "Utilisation vs input pixels"),
    ]
    for name, y, ylabel, title in figs:
        rel = b.figure(lambda p, y=y, ylabel=ylabel, title=title: plots.lines_vs_size(
            sub, group="model", x="pixels", y=y, path=p, title=title, xlabel="input pixels (H x W)", ylabel=ylabel,
            setup=setup), name)  # fmt: skip
        s.lines += ["", f"![{title}]({rel})", "", f"*Figure: {title}. {setup}.*"]
    fits = fit_table(sub, ["model"], "pixels", ["latency_ms_median", "peak_mem_mb", "gmacs"])
    if not fits.empty:
        fits_csv = b.table(fits, "resolution_fits")
        s.lines += ["", "Complexity fits: slope of log(metric) vs log(pixels) (tokens are proportional to pixels) "
                        "on the upper half of each model's ladder (at least 3 sizes):", ""]  # fmt: skip
        s.lines += md_table(fits, ["model", "metric", "slope", "r2", "n", "x_min", "x_max"])
        s.lines += ["", caption(sub, f"`{fits_csv}`", "x_min/x_max = pixel range of the fit")]
    return s, fits


def status_pivot(
    frame: pd.DataFrame, index: str, columns: str, order: Callable[[list[object]], list[object]] = sorted
) -> pd.DataFrame:
    """Median latency by ``index`` x ``columns``, formatted; a cell that did not run shows its status instead."""
    latency = frame.pivot_table(index=index, columns=columns, values="latency_ms_median", aggfunc="first")
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


def _pixels_of(res: str) -> int:
    h, _, w = res.partition("x")
    return int(h) * int(w or h)


def section_ops(b: Builder) -> tuple[Section, pd.DataFrame]:
    d = b.data
    s = Section("Token mixers vs sequence length")
    ops = d.ops
    if ops.empty:
        s.lines.append("*(no ops rows: run `vmibench ops`)*")
        return s, pd.DataFrame()
    for (dtype, dim, batch), sub in ops.groupby(["dtype", "dim", "batch"]):
        shown = status_pivot(sub, "op", "seq_len")
        label = f"{dtype}, dim {dim}, batch {batch}"
        s.lines += [f"Median latency (ms) per call, {label} (ops marked * are RECONSTRUCTIONS, see below):", ""]
        recon = set(sub.loc[sub["reconstruction"].astype(bool), "op"])
        shown["op"] = [f"{o} *" if o in recon else o for o in shown["op"]]
        s.lines += md_table(shown)
    csv = b.table(ops, "ops_sweep")
    s.lines += ["", caption(ops, f"`{csv}`")]
    setup = setup_line(ops)
    for name, y, ylabel, title in [
        ("ops_latency_vs_L", "latency_ms_median", "median latency (ms)", "Token mixers: latency vs L"),
        ("ops_memory_vs_L", "peak_mem_mb", "peak memory rise (MB)", "Token mixers: peak memory vs L"),
    ]:
        rel = b.figure(lambda p, y=y, ylabel=ylabel, title=title: plots.lines_vs_size(
            ops, group="op", x="seq_len", y=y, path=p, title=title, xlabel="sequence length L", ylabel=ylabel,
            setup=setup), name)  # fmt: skip
        s.lines += ["", f"![{title}]({rel})", "", f"*Figure: {title}. {setup}.*"]
    fits = fit_table(ops, ["op", "dtype"], "seq_len", ["latency_ms_median", "peak_mem_mb", "gmacs"])
    if not fits.empty:
        fits_csv = b.table(fits, "ops_fits")
        s.lines += ["", "Fitted exponents (slope of log metric vs log L, upper half of each op's sweep):", ""]
        s.lines += md_table(fits, ["op", "dtype", "metric", "slope", "r2", "n", "x_min", "x_max"])
        s.lines += ["", caption(ops, f"`{fits_csv}`")]
    cross = ops_crossovers(ops)
    if not cross.empty:
        cross_csv = b.table(cross, "ops_crossovers")
        s.lines += ["", "Crossover with softmax attention (smallest L where the mixer is faster than `sdpa`):", ""]
        s.lines += md_table(cross)
        s.lines += ["", caption(ops, f"`{cross_csv}`")]
    s.lines += ["", "`vmisa_recurrent` and `vmisa_matrix` are vmibench's RECONSTRUCTION of the causal-mask VMI-SA the "
                    "paper describes (cumulative-sum and L x L lower-triangular-mask forms); the released code has "
                    "only the global form `vmisa`. They are tested to agree numerically."]  # fmt: skip
    return s, fits


def ops_crossovers(ops: pd.DataFrame) -> pd.DataFrame:
    rows = []
    ok = ops[ops["status"] == "ok"]
    for (dtype, dim), sub in ok.groupby(["dtype", "dim"]):
        ref = sub[sub["op"] == "sdpa"]
        if ref.empty:
            continue
        for op, cur in sub.groupby("op"):
            if op == "sdpa":
                continue
            x = crossover(cur["seq_len"].tolist(), cur["latency_ms_median"].tolist(), ref["seq_len"].tolist(),
                          ref["latency_ms_median"].tolist())  # fmt: skip
            rows.append({"op": op, "dtype": dtype, "dim": dim, "faster_than_sdpa_from_L": x})
    return pd.DataFrame(rows)


def section_pareto(b: Builder) -> Section:
    d = b.data
    s = Section("Accuracy vs latency")
    sub = latency_224(d)
    sub = sub[sub["status"] == "ok"] if not sub.empty else sub
    if sub.empty:
        s.lines.append("*(no 224 latency rows)*")
        return s
    top = top1_column(d, sub["model"].tolist())
    frame = sub.merge(top, on="model")
    if frame.empty:
        s.lines.append("*(no top-1 available)*")
        return s
    csv = b.table(frame[["model", "latency_ms_median", "top1", "top1_source", "gmacs"]], "accuracy_vs_latency")
    rel = b.figure(
        lambda p: plots.scatter_labelled(
            frame,
            x="latency_ms_median",
            y="top1",
            label="model",
            path=p,
            marker_col="top1_source",
            logy=False,
            pareto=True,
            title="ImageNet top-1 vs latency at 224 (published top-1 marked ^)",
            xlabel="median latency (ms), batch 1",
            ylabel="top-1 (%)",
            setup=setup_line(frame),
        ),
        "accuracy_vs_latency",
    )
    s.lines += [f"![accuracy vs latency]({rel})", "",
                f"*Figure: top-1 vs latency; top-1 is `measured` (vmibench accuracy) where the store has it, "
                f"otherwise `published` (model record, marked ^; for VMINet these are the paper's figures -- the "
                f"released checkpoints report lower ones, see the model notes). {setup_line(frame)}. "
                f"Data: `{csv}`.*"]  # fmt: skip
    return s


# -- reviewer questions ------------------------------------------------------------------------------------


def _slope(fits: pd.DataFrame, key: str, value: str, metric: str) -> pd.Series | None:
    if fits.empty:
        return None
    row = fits[(fits[key] == value) & (fits["metric"] == metric)]
    return None if row.empty else row.iloc[0]


def _res_range(row: pd.Series) -> str:
    return f"{round(math.sqrt(row['x_min']))}^2-{round(math.sqrt(row['x_max']))}^2 px"


def question_linear(d: ReportData, fits: pd.DataFrame) -> list[str]:
    lines = ["**(1) Does the linear complexity hold at high resolution?** "]
    if fits.empty:
        return [lines[0] + "Not measured here: run a resolution sweep (`vmibench sweep --preset cpu-default`)."]
    parts = []
    for model in [m for m in ("vminet_t", "vminet_s", "vminet_b", "vminet_xs") if m in set(fits["model"])][:1] + [
        m
        for m in ("vim_t", "vmamba_t", "mlla_t", "flatten_swin_t", "effvmamba_t", SOFTMAX_REFERENCE, "swin_t")
        if m in set(fits["model"])
    ]:
        lat = _slope(fits, "model", model, "latency_ms_median")
        mem = _slope(fits, "model", model, "peak_mem_mb")
        gm = _slope(fits, "model", model, "gmacs")
        if lat is None:
            continue
        text = f"{model}: latency exponent {lat['slope']:.2f} (R^2 {lat['r2']:.2f}, {_res_range(lat)})"
        if mem is not None:
            text += f", peak-memory exponent {mem['slope']:.2f}"
        if gm is not None:
            text += f", GMACs exponent {gm['slope']:.2f}"
        parts.append(text)
    verdict = _linear_verdict(fits)
    return [lines[0] + "Exponents of cost vs pixel count (tokens are proportional to pixels): " + "; ".join(parts)
            + "." + verdict + " (Table: `tables/resolution_fits.csv`; figures `latency_vs_resolution.png`, "
            "`memory_vs_resolution.png`.)"]  # fmt: skip


def _linear_verdict(fits: pd.DataFrame) -> str:
    """VMINet-Ti's latency and GMACs exponents beside the other linear models' and the softmax reference's."""
    vm = _slope(fits, "model", "vminet_t", "latency_ms_median")
    if vm is None:
        return ""
    gm = _slope(fits, "model", "vminet_t", "gmacs")
    text = f" VMINet-Ti: latency exponent {vm['slope']:.2f}"
    if gm is not None:
        text += f" while its GMACs grow with exponent {gm['slope']:.2f}"
    lat = fits[(fits["metric"] == "latency_ms_median") & ~fits["model"].isin(["vminet_t", SOFTMAX_REFERENCE])]
    if not lat.empty:
        text += f"; the other models of the ladder: median latency exponent {lat['slope'].median():.2f}"
    ref = _slope(fits, "model", SOFTMAX_REFERENCE, "latency_ms_median")
    if ref is not None:
        text += f"; the softmax-attention {SOFTMAX_REFERENCE}: {ref['slope']:.2f}"
    return text + " (1 = linear, 2 = quadratic)."


def _lat(d: ReportData, model: str, res: str = "224") -> float | None:
    lat = d.latency
    if lat.empty:
        return None
    row = lat[(lat["model"] == model) & (lat["res"].astype(str) == res) & (lat["batch"] == 1) & (lat["status"] == "ok")]
    return None if row.empty else float(row["latency_ms_median"].iloc[0])


def _gmacs(d: ReportData, model: str) -> float | None:
    lat = d.latency
    row = lat[(lat["model"] == model) & (lat["res"].astype(str) == "224")] if not lat.empty else lat
    if not row.empty and not pd.isna(row["gmacs"].iloc[0]):
        return float(row["gmacs"].iloc[0])
    fl = d.flops
    row = fl[(fl["model"] == model) & (fl["res"].astype(str) == "224")] if not fl.empty else fl
    return None if row.empty else float(row["gmacs"].iloc[0])


def question_rivals(d: ReportData) -> list[str]:
    head = "**(2) How does VMINet compare with MLLA and FLatten Transformer?** "
    pairs = [("vminet_t", "mlla_t"), ("vminet_t", "flatten_swin_t"), ("vminet_b", "mlla_t"),
             ("vminet_b", "flatten_swin_t")]  # fmt: skip
    top = top1_column(d, [m for p in pairs for m in p]).set_index("model")
    bits = []
    for a, c in pairs:
        la, lc = _lat(d, a), _lat(d, c)
        if la is None or lc is None:
            continue
        ga, gc = _gmacs(d, a), _gmacs(d, c)
        ta = top["top1"].get(a)
        tc = top["top1"].get(c)
        acc = ""
        if ta is not None and tc is not None:
            acc = f"; top-1 {ta:.1f} ({top['top1_source'][a]}) vs {tc:.1f} ({top['top1_source'][c]})"
        bits.append(f"at 224, {a} takes {la:.1f} ms vs {c} {lc:.1f} ms ({la / lc:.2f}x; GMACs "
                    f"{fmt(ga)} vs {fmt(gc)}{acc})")  # fmt: skip
    hi = _highest_common(d, ["vminet_t", "mlla_t", "flatten_swin_t"])
    if hi:
        res, values = hi
        bits.append(f"at {res}x{res}, latency vminet_t {values['vminet_t']:.0f} ms, mlla_t {values['mlla_t']:.0f} ms, "
                    f"flatten_swin_t {values['flatten_swin_t']:.0f} ms")  # fmt: skip
    if not bits:
        return [head + "Not measured here: sweep vminet_t, vminet_b, mlla_t and flatten_swin_t at 224."]
    return [head + "; ".join(bits) + ". VMINet-B is the variant of similar GMACs to MLLA-T/FLatten-Swin-T; "
            "VMINet-Ti is the one in the resolution ladder. (Tables: `tables/latency_224.csv`, "
            "`tables/resolution_sweep.csv`.)"]  # fmt: skip


def _highest_common(d: ReportData, models: Sequence[str]) -> tuple[str, dict[str, float]] | None:
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
    res = max(common, key=_pixels_of)
    if res == "224":
        return None
    return res, {m: float(ok[(ok["model"] == m) & (ok["res"].astype(str) == res)]["latency_ms_median"].iloc[0])
                 for m in models}  # fmt: skip


def question_effvmamba(d: ReportData) -> list[str]:
    head = (
        "**(3) Why does EfficientVMamba, with the fewest FLOPs, run slow, and does that change on longer sequences?** "
    )
    sub = latency_224(d)
    if sub.empty or "effvmamba_t" not in set(sub["model"]):
        return [head + "Not measured here: sweep effvmamba_t with other models at 224."]
    ok = sub[sub["status"] == "ok"].copy()
    ok["ms_per_gmac"] = ok["latency_ms_median"] / ok["gmacs"]
    ok = ok.sort_values("gmacs")
    e = ok[ok["model"] == "effvmamba_t"].iloc[0]
    gm_rank = list(ok["model"]).index("effvmamba_t") + 1
    lat_rank = list(ok.sort_values("latency_ms_median")["model"]).index("effvmamba_t") + 1
    median_ms_per_gmac = float(ok["ms_per_gmac"].median())
    text = (f"At 224 effvmamba_t has {fmt(e['gmacs'])} GMACs (rank {gm_rank} of {len(ok)} by GMACs) but a latency of "
            f"{e['latency_ms_median']:.1f} ms (rank {lat_rank} by latency): {e['ms_per_gmac']:.1f} ms per GMAC against "
            f"a median of {median_ms_per_gmac:.1f} over all models, utilisation {fmt(e['utilisation'])} of the matmul "
            f"peak (median {fmt(ok['utilisation'].median())}).")  # fmt: skip
    scal = _scaling(d)
    if not scal.empty and "effvmamba_t" in set(scal["model"]):
        okk = scal[(scal["status"] == "ok")]
        big = okk[okk["model"] == "effvmamba_t"].sort_values("pixels")
        if len(big) >= 2:
            top = big.iloc[-1]
            peers = okk[(okk["res"] == top["res"]) & (okk["model"] != "effvmamba_t")]
            text += (f" At {top['res']} its utilisation is {fmt(top['utilisation'])} "
                     f"(others at that size: median {fmt(peers['utilisation'].median())}) and it needs "
                     f"{top['latency_ms_median'] / top['gmacs']:.1f} ms per GMAC "
                     f"(others: median {fmt((peers['latency_ms_median'] / peers['gmacs']).median())}).")  # fmt: skip
    backend = ", ".join(sorted({str(v) for v in sub.loc[sub["model"] == "effvmamba_t", "scan_backend"] if v}))
    if backend:
        text += f" Its selective scan ran on the `{backend}` backend here."
    text += (" The GMACs count leaves out element-wise work (the scan's recurrence beyond its 9*B*L*D*N credit, "
             "activations, gating) and data movement (the 4-way atrous sub-grid gathers and scatters), so a low-GMACs "
             "model can still be slow; low utilisation is consistent with that (an inference from the numbers "
             "above, not a profile). (Tables: `tables/latency_224.csv`, `tables/resolution_sweep.csv`; figure "
             "`utilisation_vs_resolution.png`.)")  # fmt: skip
    return [head + text]


def question_causal(d: ReportData, op_fits: pd.DataFrame) -> list[str]:
    head = "**(4) What does the causal mask in VMI-SA cost?** (reconstruction: the released code has no causal mask) "
    ops = d.ops
    if ops.empty:
        return [head + "Not measured here: run `vmibench ops --ops vmisa,vmisa_recurrent,vmisa_matrix,sdpa`."]
    ok = ops[(ops["status"] == "ok") & (ops["dtype"] == "fp32")]
    by = {o: g.set_index("seq_len")["latency_ms_median"] for o, g in ok.groupby("op")}
    bits = []
    if "vmisa" in by and "vmisa_recurrent" in by:
        common = sorted(set(by["vmisa"].index) & set(by["vmisa_recurrent"].index))
        if common:
            L = common[-1]
            bits.append(f"the recurrent (cumulative-sum) form costs {by['vmisa_recurrent'][L] / by['vmisa'][L]:.2f}x "
                        f"the released global-context mixer at L={L}")  # fmt: skip
    for op, role in (("vmisa_recurrent", ""), ("vmisa_matrix", ""), ("vmisa", " (released, O(L) reference)"),
                     ("sdpa", " (softmax attention)")):  # fmt: skip
        f = _slope(op_fits, "op", op, "latency_ms_median")
        if f is not None:
            bits.append(f"{op}{role} latency exponent {f['slope']:.2f} (R^2 {f['r2']:.2f}, L={int(f['x_min'])}-"
                        f"{int(f['x_max'])})")  # fmt: skip
    if "vmisa_matrix" in by and "vmisa_recurrent" in by:
        common = sorted(set(by["vmisa_matrix"].index) & set(by["vmisa_recurrent"].index))
        if common:
            L = common[-1]
            bits.append(f"the matrix (L x L mask) form is {by['vmisa_matrix'][L] / by['vmisa_recurrent'][L]:.0f}x "
                        f"slower than the recurrent form at L={L}")  # fmt: skip
    skipped = ops[(ops["op"] == "vmisa_matrix") & (ops["status"] != "ok")]
    if not skipped.empty:
        bits.append(f"vmisa_matrix was not run from L={int(skipped['seq_len'].min())} "
                    f"({skipped['error'].iloc[0]})")  # fmt: skip
    return [head + "; ".join(bits) + ". (Tables: `tables/ops_sweep.csv`, `tables/ops_fits.csv`; figures "
            "`ops_latency_vs_L.png`, `ops_memory_vs_L.png`.)"]  # fmt: skip


# -- entry point ---------------------------------------------------------------------------------------------


def write_report(db: str | None, out: str | Path, device: str | None = None) -> Path:
    """Generate ``out/REPORT.md`` with its tables and figures from the store; returns the report path."""
    out = Path(out)
    with ResultStore(db) as store:
        data = load(store, device)
        db_path = store.path
    b = Builder(data, out)
    scaling, model_fits = section_scaling(b)
    ops_section, op_fits = section_ops(b)
    questions = Section("Reviewer questions")
    for para in (question_linear(data, model_fits), question_rivals(data), question_effvmamba(data),
                 question_causal(data, op_fits)):  # fmt: skip
        questions.lines += [*para, ""]
    questions.lines.append("*Every number above is read from the tables of this report at generation time.*")
    sections = [section_setup(b), questions, section_flops(b), section_latency(b), scaling, ops_section,
                section_pareto(b)]  # fmt: skip
    from vmibench.env import utc_now

    head = (f"# vmibench report -- {data.device}\n\nGenerated by `vmibench report` on {utc_now()} from `{db_path.name}`"
            f" (newest environment of this device). Regenerate, do not edit.\n")  # fmt: skip
    text = head + "\n" + "\n".join(s.render() for s in sections)
    path = out / "REPORT.md"
    path.write_text(text)
    return path
