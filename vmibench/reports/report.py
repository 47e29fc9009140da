"""``vmibench report``: results/REPORT.md, CSV tables and PNG figures, generated from the results store.

Everything printed is read from the store at generation time -- the *Reviewer questions* sentences included --
so the report cannot drift from its data.  One report covers one device (``--device``, default: that of the
newest latency row) and, for it, the newest environment (machine + libraries + vmibench commit) of the
latency and ops tables, so rows of different code versions are never mixed.  Published numbers appear only in
columns named ``published_*`` and are marked as such in figures.

Uncertainty.  Each stored row keeps its raw per-call samples, one list per round (worker process).  From them
the report gives every conclusion a 95% bootstrap interval (:mod:`vmibench.analysis`): exponents, latency
ratios (paired by round), crossovers.  A difference is stated only where the intervals resolve it -- a ratio's
interval excludes 1, two exponents' intervals do not overlap -- and is otherwise called "not distinguishable on
this machine"; the reviewer answers end with a count of how many of their comparisons were resolved.

Staleness.  The header names the commit(s) that measured the rows and the current HEAD, and marks as stale the
models and ops whose code changed in between, so a report regenerated after a code change does not pass old
timings off as current ones.
"""

from __future__ import annotations

import inspect
import json
import math
import numbers
import subprocess
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from vmibench.analysis import Estimate, add_utilisation, crossover, distinguishable, ratio_differs_from_one
from vmibench.analysis.estimates import crossover_estimate, ratio_estimate, slope_estimate, slope_table
from vmibench.errors import UserError
from vmibench.measure.timing import TimingPolicy
from vmibench.reports import plots
from vmibench.store import ResultStore

LATENCY = "latency_ms_median"
SUBJECT = "vminet_t"  # VMINet-Ti: the VMINet variant of the resolution ladder
SOFTMAX_REFERENCE = "deit_t"  # softmax-attention model of the Tiny class, for resolution crossovers
LINEAR_RIVALS = ("vim_t", "vmamba_t", "effvmamba_t", "mlla_t", "flatten_swin_t")  # linear-cost models of the ladder
LADDER_ORDER = (SUBJECT, "vminet_xs", "vminet_s", "vminet_b", *LINEAR_RIVALS, SOFTMAX_REFERENCE, "swin_t")
NOT_DISTINGUISHABLE = "not distinguishable on this machine"
NO_INTERVAL = "no interval: no raw samples stored"
CI_COLUMNS = ("latency_ms_ci_low", "latency_ms_ci_high")

# Files whose change can change a timing, besides a model's own builder file (see :func:`model_files`).
MODEL_SHARED_FILES = ("vmibench/models/_common.py",)
SCAN_FILES = ("vmibench/ops/selective_scan.py",)
OP_FILES = ("vmibench/ops/mixers.py",)
OP_EXTRA_FILES = {"selective_scan": SCAN_FILES, "flatten_fla": ("baselines/flatten.py",),
                  "mlla_linear": ("baselines/mlla.py",)}  # fmt: skip


@dataclass
class Section:
    """A titled block of markdown."""

    title: str
    lines: list[str] = field(default_factory=list)

    def render(self) -> str:
        return f"## {self.title}\n\n" + "\n".join(self.lines).rstrip() + "\n"


@dataclass(frozen=True)
class Staleness:
    """Which reported models and ops had their code changed since the commit that measured them.

    ``changed`` maps a name to the files that differ between its measuring commit and the working tree;
    ``unknown`` lists names that could not be checked (no git, not a checkout, commit not found).
    """

    head: str | None = None
    commits: tuple[str, ...] = ()
    changed: dict[str, tuple[str, ...]] = field(default_factory=dict)
    unknown: tuple[str, ...] = ()

    def mark(self, name: str) -> str:
        """``stale``, ``?`` (unknown) or empty, for a table column."""
        if name in self.changed:
            return "stale"
        return "?" if name in self.unknown else ""


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


@dataclass
class Tally:
    """Outcome of each key comparison the reviewer answers make, so the closing count is computed, not typed."""

    resolved: int = 0
    unresolved: int = 0
    no_interval: int = 0

    def add(self, resolved: bool | None) -> None:
        """Count one comparison: resolved by its intervals, not resolved, or without an interval (None)."""
        if resolved is None:
            self.no_interval += 1
        elif resolved:
            self.resolved += 1
        else:
            self.unresolved += 1

    def sentence(self) -> str:
        total = self.resolved + self.unresolved + self.no_interval
        if total == 0:
            return "No comparison above could be made from these rows."
        text = (
            f"Of the {total} {'comparison' if total == 1 else 'comparisons'} above, {self.resolved} "
            f"{_are(self.resolved)} resolved on this machine "
            f"(intervals exclude equality); {self.unresolved} {_are(self.unresolved)} {NOT_DISTINGUISHABLE}"
        )
        if self.no_interval:
            text += f"; {self.no_interval} had no interval (no raw samples stored)"
        return text + "."


def _are(n: int) -> str:
    return "is" if n == 1 else "are"


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


def _samples_of(store: ResultStore, table: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Raw samples of the selected ok rows: the intervals are computed from them, not from stored summaries."""
    if frame.empty or "row_id" not in frame.columns:
        return store.samples(table, [])
    ids = frame.loc[frame["status"] == "ok", "row_id"].dropna().astype(int).tolist()
    return store.samples(table, ids)


def load(store: ResultStore, device: str | None = None) -> ReportData:
    """Read and select the rows of one device's newest environment, with their raw samples."""
    from vmibench.reports.tables import models_frame

    latency, ops = store.read("latency", keep_row_id=True), store.read("ops", keep_row_id=True)
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
        samples_latency=_samples_of(store, "latency", lat),
        samples_ops=_samples_of(store, "ops", op),
    )


# -- staleness -----------------------------------------------------------------------------------------------


def _repo_root() -> Path:
    """The checkout vmibench runs from (as :func:`vmibench.env.git_commit` locates it)."""
    import vmibench

    return Path(vmibench.__file__).resolve().parents[1]


def _git(*args: str) -> str | None:
    """Output of ``git ARGS`` in vmibench's checkout; None when git is missing, this is no checkout, or it fails."""
    try:
        return subprocess.run(["git", "-C", str(_repo_root()), *args], capture_output=True, text=True, timeout=20,
                              check=True).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None


def head_commit() -> str | None:
    """The current HEAD, 12 hex digits like the stored ``git_commit``; None when unknown."""
    out = _git("rev-parse", "--short=12", "HEAD")
    if out is None:
        return None
    return out.strip() or None


def _in_repo(path: str | None) -> tuple[str, ...]:
    """``path`` relative to the checkout, or nothing for a file outside it (timm: versioned in the env key)."""
    if not path:
        return ()
    try:
        return (Path(path).resolve().relative_to(_repo_root()).as_posix(),)
    except ValueError:
        return ()


def model_files(name: str) -> tuple[str, ...]:
    """Files whose change can change a model's timing: its builder's source file (``registry.py`` for a timm
    reference), the helpers every model shares, and the selective scan for scan models."""
    from vmibench.registry import resolve

    try:
        entry = resolve(name)
        source = inspect.getsourcefile(entry.builder)
    except (UserError, TypeError, OSError):
        return MODEL_SHARED_FILES
    return (*_in_repo(source), *MODEL_SHARED_FILES, *(SCAN_FILES if entry.info.uses_scan else ()))


def op_files(op: str) -> tuple[str, ...]:
    """Files of a token mixer: the mixers module and what its builder imports (``op`` may carry ``[backend]``)."""
    return (*OP_FILES, *OP_EXTRA_FILES.get(op.split("[", 1)[0], ()))


def _measured_at(data: ReportData) -> dict[tuple[str, str], tuple[str, ...]]:
    """``{(name, measuring commit): files}`` for every reported model and op."""
    out: dict[tuple[str, str], tuple[str, ...]] = {}
    for frame, col, files_of in ((data.latency, "model", model_files), (data.ops, "op", op_files)):
        if frame.empty:
            continue
        commits = frame["git_commit"] if "git_commit" in frame.columns else pd.Series("unknown", index=frame.index)
        cache: dict[str, tuple[str, ...]] = {}
        for name, commit in zip(frame[col].astype(str), commits.fillna("unknown").astype(str), strict=True):
            if name not in cache:
                cache[name] = files_of(name)
            out[(name, commit)] = cache[name]
    return out


def check_staleness(data: ReportData) -> Staleness:
    """Diff each measuring commit against the working tree, over the files of the models and ops it measured.

    One ``git diff --name-only`` per commit.  A ``+dirty`` commit is diffed from its committed part (what its
    uncommitted changes were is not recorded); an ``unknown`` commit, a commit missing from this checkout or a
    missing HEAD leaves its names' status unknown.
    """
    measured = _measured_at(data)
    head = head_commit()
    commits = tuple(sorted({c for _, c in measured}))
    changed: dict[str, set[str]] = {}
    unknown: set[str] = set()
    for commit in commits:
        names = {n: files for (n, c), files in measured.items() if c == commit}
        base = commit.removesuffix("+dirty")
        files = sorted({f for fs in names.values() for f in fs})
        diff = None if head is None or base in ("", "unknown") else _git("diff", "--name-only", base, "--", *files)
        if diff is None:
            unknown.update(names)
            continue
        touched = set(diff.split())
        for name, fs in names.items():
            hit = touched.intersection(fs)
            if hit:
                changed.setdefault(name, set()).update(hit)
    return Staleness(head, commits, {n: tuple(sorted(f)) for n, f in sorted(changed.items())},
                     tuple(sorted(unknown - set(changed))))  # fmt: skip


def staleness_lines(st: Staleness) -> list[str]:
    """The header paragraph: measuring commit(s), HEAD, and the stale (or unchecked) models and ops."""
    measured = ", ".join(f"`{c}`" for c in st.commits) or "unknown"
    head = f"`{st.head}`" if st.head else "unknown (no git, or not a checkout)"
    lines = [f"**Code version.** Rows measured at commit {measured}; current HEAD {head}."]
    dirty = [c for c in st.commits if c.endswith("+dirty")]
    if dirty:
        lines.append(f"{_join(f'`{c}`' for c in dirty)} had uncommitted changes when measuring, which were not "
                     "recorded: the check below diffs today's working tree against the committed part, so a change "
                     "already present when measuring also shows as stale, and one undone since does not (stale "
                     "status of the uncommitted part unknown).")  # fmt: skip
    if st.changed:
        stale = "; ".join(f"{n} ({', '.join(f)})" for n, f in st.changed.items())
        lines.append(f"**Stale** (code changed between the measuring commit and the working tree; re-measure with "
                     f"`--force`): {stale}.")  # fmt: skip
    elif st.head and not st.unknown:
        lines.append("No reported model's or op's code changed since (builder file, shared model helpers, selective "
                     "scan, mixers).")  # fmt: skip
    if st.unknown:
        lines.append(f"Stale status unknown for: {', '.join(st.unknown)}.")
    return [" ".join(lines)]


def _join(items: Iterable[str]) -> str:
    return ", ".join(items)


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


def _float(value: object) -> float:
    """A stored number as float; NaN for missing (None, NaN, absent column, text)."""
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def has_interval(e: Estimate | None) -> bool:
    """Whether an estimate carries a finite interval (rows without raw samples get none)."""
    return e is not None and math.isfinite(e.low) and math.isfinite(e.high)


def fmt_estimate(e: Estimate, digits: int = 2) -> str:
    """``1.28 [1.19, 1.37]``; the bare value, said to have no interval, where no samples were stored."""
    return e.format(digits) if has_interval(e) else f"{e.value:.{digits}f} ({NO_INTERVAL})"


def _ratio_digits(v: float) -> int:
    """Decimals for a ratio: two significant digits below 0.1 (0.012), two decimals up to 10, then one (42.4)."""
    if not math.isfinite(v) or v <= 0:
        return 2
    if v >= 10:
        return 1
    return 2 if v >= 0.1 else 1 - math.floor(math.log10(v))


def fmt_ratio(e: Estimate) -> str:
    """``0.11x [0.10, 0.12]``."""
    d = _ratio_digits(e.value)
    if not has_interval(e):
        return f"{e.value:.{d}f}x ({NO_INTERVAL})"
    return f"{e.value:.{d}f}x [{e.low:.{d}f}, {e.high:.{d}f}]"


def fmt_latency(row: pd.Series) -> str:
    """``10.0 ms [9.81, 10.2]`` from a row's median and stored 95% CI."""
    e = latency_estimate(row)
    text = f"{fmt(e.value)} ms"
    return f"{text} [{fmt(e.low)}, {fmt(e.high)}]" if has_interval(e) else text


def ci_text(low: object, high: object) -> str:
    """Compact interval for a table cell: ``9.81-10.2``."""
    lo, hi = _float(low), _float(high)
    return f"{fmt(lo)}-{fmt(hi)}" if math.isfinite(lo) and math.isfinite(hi) else ""


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


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


def _policy(text: str) -> TimingPolicy | None:
    """A stored policy (JSON), or None where absent or not a policy of this vmibench."""
    from dataclasses import fields

    try:
        data = json.loads(text) if text else None
    except ValueError:
        return None
    if not isinstance(data, dict) or not data or not set(data) <= {f.name for f in fields(TimingPolicy)}:
        return None
    return TimingPolicy(**data)


def _policy_text(cell: TimingPolicy | None, per: TimingPolicy | None, rounds: int) -> str:
    """A cell's stored timing policy (its whole budget), what each round ran under, and the round count."""
    if rounds > 1:
        how = f"{rounds} rounds (worker processes), visited round-robin in a fresh random order each round"
    else:
        how = "1 round (one worker process)" if rounds == 1 else "round count not stored"
    if cell is None:
        return f"each cell: {how}; timing policy not stored"
    text = (f"each cell: {how}; cell budget {cell.min_time_s:g}-{cell.max_time_s:g} s of timing, precision target "
            f"{cell.rel_precision * 100:g}% (robust standard error of the median)")  # fmt: skip
    if per is None:
        return text + "; per-round policy not stored"
    return (f"{text}; each round: warm-up >= {per.min_warmup_iters} calls and {per.min_warmup_s:g} s (one call "
            f"when a call takes over {per.max_warmup_s:g} s), then timing until {per.rel_precision * 100:.3g}% after "
            f">= {per.min_iters} calls and {per.min_time_s:.3g} s, or {per.max_time_s:.3g} s (at least "
            f"{per.hard_min_iters} call(s) past it); `converged` says which")  # fmt: skip


def _few_rounds_caveat(frame: pd.DataFrame) -> str:
    """What a bootstrap over few rounds can and cannot say, for the smallest round count among the rows.

    Where the rounds differ more than the calls within them (the usual case on a shared machine), a resampled
    median cannot leave the range of the K round medians; that range holds the median of the rounds'
    distribution with probability 1 - 2 * 0.5**K (75% for K = 3), so such intervals are narrower than nominal.
    """
    rounds = pd.to_numeric(frame["rounds"], errors="coerce").dropna() if "rounds" in frame.columns else pd.Series()
    rounds = rounds[rounds > 0]
    if rounds.empty:
        return ""
    k = int(rounds.min())
    if k > 6:
        return ""
    if k == 1:
        return (
            " Some cells ran in 1 round: their intervals see the spread of calls within one process only, not "
            "the spread between processes; use `--rounds 3` or more for a claim."
        )
    coverage = 1 - 2 * 0.5**k
    return (
        f" With {k} round(s) per cell, an interval can be no wider than the spread of the {k} round medians "
        f"where rounds differ more than calls do, and that spread holds the true median with probability "
        f"{coverage:.0%} only: read these intervals as optimistic, and use more `--rounds` for a claim."
    )


def protocol_lines(frame: pd.DataFrame) -> list[str]:
    """The measurement protocol of the reported rows, from their stored ``timing_policy``, ``round_policy`` and
    ``rounds``: one line per distinct combination, with its row count when there are several."""
    if frame.empty:
        return []
    ok = frame[frame["status"] == "ok"] if "status" in frame.columns else frame
    ok = ok if not ok.empty else frame

    def column(name: str, default: object) -> pd.Series:
        return ok[name] if name in ok.columns else pd.Series(default, index=ok.index)

    rounds = pd.to_numeric(column("rounds", 0), errors="coerce").fillna(0).astype(int)
    keys = zip(column("timing_policy", "").fillna("").astype(str), column("round_policy", "").fillna("").astype(str),
               rounds, strict=True)  # fmt: skip
    counts = Counter(keys)
    suffix = lambda n: f" ({n} rows)" if len(counts) > 1 else ""  # noqa: E731
    return [_policy_text(_policy(cell), _policy(per), n_rounds) + suffix(n_rows)
            for (cell, per, n_rounds), n_rows in sorted(counts.items(), key=lambda kv: -kv[1])]  # fmt: skip


# -- estimates from rows -------------------------------------------------------------------------------------


def latency_estimate(row: pd.Series) -> Estimate:
    """A row's median latency with its stored hierarchical-bootstrap 95% CI (NaN bounds when not stored)."""
    return Estimate(_float(row.get(LATENCY)), _float(row.get(CI_COLUMNS[0])), _float(row.get(CI_COLUMNS[1])))


def _samples_for(samples: pd.DataFrame, rows: Iterable[pd.Series] | pd.DataFrame) -> pd.DataFrame:
    """The samples of ``rows`` only: the estimate helpers regroup whatever frame they get, so keep it small."""
    if samples.empty or (isinstance(rows, pd.DataFrame) and "row_id" not in rows.columns):
        return samples.iloc[0:0]
    ids = rows["row_id"] if isinstance(rows, pd.DataFrame) else pd.Series([r.get("row_id") for r in rows])
    return samples[samples["row_id"].isin(set(pd.to_numeric(ids, errors="coerce").dropna().astype(int)))]


def ratio_of(a: pd.Series, b: pd.Series, samples: pd.DataFrame) -> Estimate:
    """Latency ratio a / b with its paired-by-round bootstrap CI; the bare ratio of medians without samples."""
    est = None
    if not pd.isna(a.get("row_id")) and not pd.isna(b.get("row_id")):
        est = ratio_estimate(a, b, _samples_for(samples, [a, b]))
    return est if est is not None else Estimate(_float(a[LATENCY]) / _float(b[LATENCY]), math.nan, math.nan)


def ratio_clause(e: Estimate, a: str, b: str, tally: Tally) -> str:
    """``ratio 0.17x [0.16, 0.18]: a faster`` -- faster or slower only when the interval excludes 1."""
    if not has_interval(e):
        tally.add(None)
        return f"ratio {fmt_ratio(e)}"
    resolved = ratio_differs_from_one(e)
    tally.add(resolved)
    if not resolved:
        return f"ratio {fmt_ratio(e)}: {NOT_DISTINGUISHABLE} (interval includes 1)"
    return f"ratio {fmt_ratio(e)}: {a} {'faster' if e.high < 1 else 'slower'} than {b}"


def exponent_clause(a: Estimate, b: Estimate, name_b: str, tally: Tally, name_a: str = "") -> str:
    """``[a 1.00 [..] ]vs b 1.60 [..]: lower (intervals do not overlap)`` -- different only without overlap."""
    head = (f"{name_a} {fmt_estimate(a)} " if name_a else "") + f"vs {name_b} {fmt_estimate(b)}"
    if not (has_interval(a) and has_interval(b)):
        tally.add(None)
        return f"{head}: no interval to compare"
    resolved = distinguishable(a, b)
    tally.add(resolved)
    if not resolved:
        return f"{head}: {NOT_DISTINGUISHABLE} (intervals overlap)"
    return f"{head}: {'lower' if a.high < b.low else 'higher'} (intervals do not overlap)"


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
        stale=[data.staleness.mark(str(m)) for m in sub["model"]],
        ci95=[ci_text(*v) for v in zip(*(_column(sub, c) for c in CI_COLUMNS), strict=True)],
    )
    return sub.sort_values(LATENCY)


def _column(frame: pd.DataFrame, col: str) -> pd.Series:
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


def with_exponent_text(fits: pd.DataFrame) -> pd.DataFrame:
    """Fits with an ``exponent`` column for markdown: ``1.00 [0.99, 1.01]``, or the bare slope where no interval."""
    if fits.empty:
        return fits
    text = [fmt_estimate(Estimate(r.slope, r.slope_ci_low, r.slope_ci_high)) if r.metric == LATENCY else
            f"{r.slope:.2f}" for r in fits.itertuples(index=False)]  # fmt: skip
    return fits.assign(exponent=text)


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

    def lines_figure(self, frame: pd.DataFrame, name: str, *, group: str, x: str, y: str, title: str, xlabel: str,
                     ylabel: str, setup: str) -> list[str]:  # fmt: skip
        """Markdown for a per-group lines figure, or a note where ``y`` has nothing a log axis can show (e.g.
        utilisation without a matmul-peak row) -- matplotlib cannot log-scale an empty axis."""
        if plots.drawable(frame[frame["status"] == "ok"], x, y).empty:
            return ["", f"*Figure {name} skipped: no positive `{y}` values in these rows.*"]
        yerr = CI_COLUMNS if y == LATENCY and all(c in frame.columns for c in CI_COLUMNS) else None
        rel = self.figure(
            lambda p: plots.lines_vs_size(frame, group=group, x=x, y=y, path=p, title=title, xlabel=xlabel,
                                          ylabel=ylabel, setup=setup, yerr=yerr),
            name,
        )  # fmt: skip
        return ["", f"![{title}]({rel})", "", f"*Figure: {title}. {setup}.*"]


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
    ]
    protocol = protocol_lines(both)
    if len(protocol) == 1:
        s.lines.append(f"- Protocol (from the rows' stored timing policy): {protocol[0]}.")
    else:
        s.lines += ["- Protocols (from the rows' stored timing policies; they differ between rows):",
                    *[f"  - {p}." for p in protocol]]  # fmt: skip
    s.lines += [
        "- Timing: per call (perf_counter on CPU, CUDA events on GPU). Latency = median of all calls of all rounds, "
        "with a hierarchical bootstrap 95% CI (rounds, then calls); throughput = batch / median. Ratios, exponents "
        "and crossovers carry bootstrap 95% intervals from the raw samples (ratios paired by round)."
        + _few_rounds_caveat(both),
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
    cols = ["model", LATENCY, "ci95", "rounds", "process_spread", "latency_ms_iqr", "n_iters", "throughput_ips",
            "peak_mem_mb", "gmacs", "achieved_gflops", "utilisation", "scan_backend", "status", "stale"]  # fmt: skip
    csv_cols = [c for c in cols if c != "ci95"] + [*CI_COLUMNS, "published_gmacs", "published_top1"]
    csv = b.table(sub[[c for c in csv_cols if c in sub.columns]], "latency_224")
    s.lines += md_table(sub, cols)
    s.lines += ["", caption(sub, f"`{csv}`", "ci95 = hierarchical bootstrap 95% CI of the median (rounds, then "
                                            "calls); process_spread = (max - min) / median of the per-round medians; "
                                            "utilisation = achieved GFLOP/s / dense-matmul peak; stale = code changed "
                                            "since measured")]  # fmt: skip
    ok = plots.drawable(sub[sub["status"] == "ok"], "gmacs", LATENCY)
    if ok.empty:
        s.lines += ["", "*Figure latency_vs_gmacs skipped: no row has both a GMACs count and a latency.*"]
        return s
    fig = b.figure(
        lambda p: plots.scatter_labelled(
            ok,
            x="gmacs",
            y=LATENCY,
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
    cols = ["model", "res", "height", "width", "pixels", LATENCY, *CI_COLUMNS, "rounds", "latency_ms_iqr",
            "throughput_ips", "peak_mem_mb", "gmacs", "achieved_gflops", "utilisation", "status", "error"]  # fmt: skip
    csv = b.table(sub[[c for c in cols if c in sub.columns]], "resolution_sweep")
    s.lines += ["Median latency (ms), batch 1; failed cells show their status:", ""]
    s.lines += md_table(shown)
    s.lines += ["", caption(sub, f"`{csv}`")]
    setup = setup_line(sub)
    figs = [
        ("latency_vs_resolution", LATENCY, "median latency (ms)", "Latency vs input pixels (log-log)"),
        ("throughput_vs_resolution", "throughput_ips", "images / s", "Throughput vs input pixels"),
        ("memory_vs_resolution", "peak_mem_mb", "peak memory rise (MB)", "Peak memory vs input pixels"),
        ("utilisation_vs_resolution", "utilisation", "achieved / matmul peak", "Utilisation vs input pixels"),
    ]
    for name, y, ylabel, title in figs:
        s.lines += b.lines_figure(sub, name, group="model", x="pixels", y=y, title=title,
                                  xlabel="input pixels (H x W)", ylabel=ylabel, setup=setup)  # fmt: skip
    fits = slope_table(sub, d.samples_latency, ["model"], "pixels", [LATENCY, "peak_mem_mb", "gmacs"])
    if not fits.empty:
        fits_csv = b.table(fits, "resolution_fits")
        s.lines += ["", "Complexity fits: slope of log(metric) vs log(pixels) (tokens are proportional to pixels) "
                        "on the upper half of each model's ladder (at least 3 sizes); latency exponents with a "
                        "bootstrap 95% interval from the raw samples (memory and GMACs: one reading per size, no "
                        "interval):", ""]  # fmt: skip
        s.lines += md_table(with_exponent_text(fits), ["model", "metric", "exponent", "r2", "n", "x_min", "x_max"])
        s.lines += ["", caption(sub, f"`{fits_csv}`", "x_min/x_max = pixel range of the fit")]
    return s, fits


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


def _res_label(res: object) -> str:
    """``896`` -> ``896x896``; ``512x768`` unchanged."""
    text = str(res)
    return text if "x" in text else f"{text}x{text}"


def _pixels_of(res: str) -> int:
    h, _, w = res.partition("x")
    return int(h) * int(w or h)


OP_GROUP = ["op", "dtype", "dim", "batch"]  # one ops fit per op and shape family (dims are never mixed in a fit)


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
        shown["op"] = [(f"{o} *" if o in recon else o) + (" (stale)" if d.staleness.mark(o) == "stale" else "")
                       for o in shown["op"]]  # fmt: skip
        s.lines += md_table(shown)
    csv = b.table(ops, "ops_sweep")
    s.lines += ["", caption(ops, f"`{csv}`", "95% CIs in the CSV (latency_ms_ci_low/high)")]
    setup = setup_line(ops)
    for name, y, ylabel, title in [
        ("ops_latency_vs_L", LATENCY, "median latency (ms)", "Token mixers: latency vs L"),
        ("ops_memory_vs_L", "peak_mem_mb", "peak memory rise (MB)", "Token mixers: peak memory vs L"),
    ]:
        s.lines += b.lines_figure(ops, name, group="op", x="seq_len", y=y, title=title, xlabel="sequence length L",
                                  ylabel=ylabel, setup=setup)  # fmt: skip
    fits = slope_table(ops, d.samples_ops, OP_GROUP, "seq_len", [LATENCY, "peak_mem_mb", "gmacs"])
    if not fits.empty:
        fits_csv = b.table(fits, "ops_fits")
        s.lines += ["", "Fitted exponents (slope of log metric vs log L, upper half of each op's sweep; latency with "
                        "a bootstrap 95% interval):", ""]  # fmt: skip
        s.lines += md_table(with_exponent_text(fits), [*OP_GROUP, "metric", "exponent", "r2", "n", "x_min", "x_max"])
        s.lines += ["", caption(ops, f"`{fits_csv}`")]
    cross = ops_crossovers(ops, d.samples_ops)
    if not cross.empty:
        cross_csv = b.table(cross.drop(columns=["crossover"]), "ops_crossovers")
        s.lines += ["", "Crossover with softmax attention: smallest L where the mixer is faster than `sdpa`, with a "
                        "bootstrap 95% interval (\"≤ L\": already faster at the smallest L measured):", ""]  # fmt: skip
        s.lines += md_table(cross, ["op", "dtype", "dim", "batch", "crossover"])
        s.lines += ["", caption(ops, f"`{cross_csv}`")]
    s.lines += ["", "`vmisa_recurrent` and `vmisa_matrix` are vmibench's RECONSTRUCTION of the causal-mask VMI-SA the "
                    "paper describes (cumulative-sum and L x L lower-triangular-mask forms); the released code has "
                    "only the global form `vmisa`. They are tested to agree numerically."]  # fmt: skip
    return s, fits


def crossover_row(a: pd.DataFrame, b: pd.DataFrame, x_col: str, samples: pd.DataFrame) -> dict[str, object]:
    """Where curve ``a`` becomes cheaper than ``b``: value, interval, share of resamples that never cross, whether
    it is at the smallest shared size, and the printed form.  Without samples: the point crossover, no interval."""
    est = crossover_estimate(a, b, x_col, _samples_for(samples, pd.concat([a, b])))
    if est is None:
        point = crossover(a[x_col].tolist(), a[LATENCY].tolist(), b[x_col].tolist(), b[LATENCY].tolist())
        shared = sorted(set(a[x_col]) & set(b[x_col]))
        at_smallest = point is not None and bool(shared) and point <= shared[0]
        return {"crossover_at": point, "crossover_ci_low": math.nan, "crossover_ci_high": math.nan,
                "never_fraction": math.nan, "at_smallest": at_smallest,
                "crossover": f"{fmt(point) or 'none'} ({NO_INTERVAL})"}  # fmt: skip
    return {"crossover_at": est.value, "crossover_ci_low": est.low, "crossover_ci_high": est.high,
            "never_fraction": est.never_fraction, "at_smallest": est.value is not None and est.value <= est.smallest,
            "crossover": est.format()}  # fmt: skip


def ops_crossovers(ops: pd.DataFrame, samples: pd.DataFrame) -> pd.DataFrame:
    """Crossover of every op with ``sdpa`` of the same dtype, dim and batch."""
    rows = []
    ok = ops[ops["status"] == "ok"]
    for (dtype, dim, batch), sub in ok.groupby(["dtype", "dim", "batch"]):
        ref = sub[sub["op"] == "sdpa"]
        if ref.empty:
            continue
        for op, cur in sub.groupby("op"):
            if op == "sdpa":
                continue
            found = crossover_row(cur, ref, "seq_len", samples)
            rows.append({"op": op, "dtype": dtype, "dim": dim, "batch": batch,
                         "faster_than_sdpa_from_L": found.pop("crossover_at"), **found})  # fmt: skip
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
    csv = b.table(frame[["model", LATENCY, *CI_COLUMNS, "top1", "top1_source", "gmacs"]], "accuracy_vs_latency")
    rel = b.figure(
        lambda p: plots.scatter_labelled(
            frame,
            x=LATENCY,
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


def _fit_row(fits: pd.DataFrame, key: str, value: str, metric: str) -> pd.Series | None:
    if fits.empty:
        return None
    row = fits[(fits[key] == value) & (fits["metric"] == metric)]
    return None if row.empty else row.iloc[0]


def _res_range(row: pd.Series) -> str:
    return f"{round(math.sqrt(row['x_min']))}^2-{round(math.sqrt(row['x_max']))}^2 px"


def _ladder(fits: pd.DataFrame) -> list[str]:
    """Models with a latency fit: the subject and its rivals in a fixed order, then any others by name."""
    have = set(fits.loc[fits["metric"] == LATENCY, "model"])
    return [m for m in LADDER_ORDER if m in have] + sorted(have - set(LADDER_ORDER))


def _model_exponents(fits: pd.DataFrame, model: str) -> str:
    """``vminet_t 1.00 [0.99, 1.01] (R^2 1.00, 224^2-896^2 px; peak memory 1.00, GMACs 1.00)``."""
    lat = _fit_row(fits, "model", model, LATENCY)
    assert lat is not None
    est = slope_estimate(fits, "model", model)
    extra = [f"{label} {row['slope']:.2f}" for label, metric in (("peak memory", "peak_mem_mb"), ("GMACs", "gmacs"))
             if (row := _fit_row(fits, "model", model, metric)) is not None]  # fmt: skip
    return f"{model} {fmt_estimate(est)} (R^2 {lat['r2']:.2f}, {_res_range(lat)}{''.join('; ' + e for e in extra)})"  # type: ignore[arg-type]


def _against_linear(e: Estimate, tally: Tally) -> str:
    """Whether an exponent's interval excludes 1 (linear cost)."""
    if not has_interval(e):
        tally.add(None)
        return "no interval to compare with 1 (linear)"
    resolved = e.excludes(1.0)
    tally.add(resolved)
    if not resolved:
        return f"its interval includes 1, so it is {NOT_DISTINGUISHABLE} from linear cost"
    return f"its interval excludes 1: {'below' if e.high < 1 else 'above'} linear on this machine"


def _subject_comparisons(fits: pd.DataFrame, tally: Tally) -> str:
    """VMINet-Ti's latency exponent against 1, each other linear model's and the softmax reference's."""
    vm = slope_estimate(fits, "model", SUBJECT)
    if vm is None:
        return ""
    text = f" VMINet-Ti ({SUBJECT}) latency exponent {fmt_estimate(vm)}: {_against_linear(vm, tally)}."
    rivals = [(m, e) for m in LINEAR_RIVALS if (e := slope_estimate(fits, "model", m)) is not None]
    if rivals:
        text += " Against the other linear models: " + "; ".join(exponent_clause(vm, e, m, tally)
                                                                for m, e in rivals) + "."  # fmt: skip
    ref = slope_estimate(fits, "model", SOFTMAX_REFERENCE)
    if ref is not None:
        text += f" Against the softmax-attention {SOFTMAX_REFERENCE}: "
        text += exponent_clause(vm, ref, SOFTMAX_REFERENCE, tally) + "."
    return text


def _resolution_crossover(d: ReportData) -> str:
    """Input size (pixels) from which VMINet-Ti is faster than the softmax reference, with its interval."""
    sub = _scaling(d)
    if sub.empty:
        return ""
    ok = sub[sub["status"] == "ok"]
    a, b = ok[ok["model"] == SUBJECT], ok[ok["model"] == SOFTMAX_REFERENCE]
    if a.empty or b.empty or not set(a["pixels"]) & set(b["pixels"]):
        return ""
    # on the side of a square input (sqrt of pixels): the same crossover, printed as a resolution ("≤ 224")
    side = {"side": lambda f: f["pixels"] ** 0.5}
    found = crossover_row(a.assign(**side), b.assign(**side), "side", d.samples_latency)
    return (f" {SUBJECT} is faster than {SOFTMAX_REFERENCE} from an input side of {found['crossover']} px "
            "(square-equivalent side, sqrt of the pixel count; crossover of the latency curves on their shared "
            "sizes).")  # fmt: skip


def question_linear(d: ReportData, fits: pd.DataFrame, tally: Tally) -> list[str]:
    head = "**(1) Does the linear complexity hold at high resolution?** "
    if fits.empty or not (fits["metric"] == LATENCY).any():
        return [head + "Not measured here: run a resolution sweep (`vmibench sweep --preset cpu-default`)."]
    parts = [_model_exponents(fits, m) for m in _ladder(fits)]
    return [head + "Latency exponents vs pixel count (tokens are proportional to pixels; 1 = linear, 2 = quadratic) "
            "with their bootstrap 95% intervals; peak-memory and GMACs exponents are one reading per size, without "
            "interval: " + "; ".join(parts) + "." + _subject_comparisons(fits, tally) + _resolution_crossover(d)
            + " (Table: `tables/resolution_fits.csv`; figures `latency_vs_resolution.png`, "
            "`memory_vs_resolution.png`.)"]  # fmt: skip


def _row(d: ReportData, model: str, res: str = "224") -> pd.Series | None:
    """The ok batch-1 latency row of ``model`` at ``res``."""
    lat = d.latency
    if lat.empty:
        return None
    row = lat[(lat["model"] == model) & (lat["res"].astype(str) == res) & (lat["batch"] == 1) & (lat["status"] == "ok")]
    return None if row.empty else row.iloc[0]


def _gmacs(d: ReportData, model: str) -> float | None:
    lat = d.latency
    row = lat[(lat["model"] == model) & (lat["res"].astype(str) == "224")] if not lat.empty else lat
    if not row.empty and not pd.isna(row["gmacs"].iloc[0]):
        return float(row["gmacs"].iloc[0])
    fl = d.flops
    row = fl[(fl["model"] == model) & (fl["res"].astype(str) == "224")] if not fl.empty else fl
    return None if row.empty else float(row["gmacs"].iloc[0])


def question_rivals(d: ReportData, tally: Tally) -> list[str]:
    head = "**(2) How does VMINet compare with MLLA and FLatten Transformer?** "
    pairs = [(SUBJECT, "mlla_t"), (SUBJECT, "flatten_swin_t"), ("vminet_b", "mlla_t"), ("vminet_b", "flatten_swin_t")]
    top = top1_column(d, [m for p in pairs for m in p]).set_index("model")
    bits = []
    for a, c in pairs:
        ra, rc = _row(d, a), _row(d, c)
        if ra is None or rc is None:
            continue
        acc = ""
        if a in top.index and c in top.index:
            acc = (f"; top-1 {top['top1'][a]:.1f} ({top['top1_source'][a]}) vs {top['top1'][c]:.1f} "
                   f"({top['top1_source'][c]})")  # fmt: skip
        bits.append(f"at 224, {a} {fmt_latency(ra)} vs {c} {fmt_latency(rc)}: "
                    f"{ratio_clause(ratio_of(ra, rc, d.samples_latency), a, c, tally)} (GMACs "
                    f"{fmt(_gmacs(d, a))} vs {fmt(_gmacs(d, c))}{acc})")  # fmt: skip
    hi = _highest_common(d, [SUBJECT, "mlla_t", "flatten_swin_t"])
    if hi:
        res, rows = hi
        for c in ("mlla_t", "flatten_swin_t"):
            ratio = ratio_clause(ratio_of(rows[SUBJECT], rows[c], d.samples_latency), SUBJECT, c, tally)
            bits.append(f"at {_res_label(res)}, {SUBJECT} {fmt_latency(rows[SUBJECT])} vs {c} {fmt_latency(rows[c])}: "
                        f"{ratio}")  # fmt: skip
    if not bits:
        return [head + "Not measured here: sweep vminet_t, vminet_b, mlla_t and flatten_swin_t at 224."]
    return [head + "Median latency [95% CI] and latency ratio [paired bootstrap 95% CI]: " + "; ".join(bits) + ". "
            "VMINet-B is the variant of similar GMACs to MLLA-T/FLatten-Swin-T; VMINet-Ti is the one in the "
            "resolution ladder. (Tables: `tables/latency_224.csv`, `tables/resolution_sweep.csv`.)"]  # fmt: skip


def _highest_common(d: ReportData, models: Sequence[str]) -> tuple[str, dict[str, pd.Series]] | None:
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
    res = max(common, key=_pixels_of)
    if res == "224":
        return None
    return res, {m: ok[(ok["model"] == m) & (ok["res"].astype(str) == res)].iloc[0] for m in models}


def _gmacs_rank_phrase(ok: pd.DataFrame, model: str) -> str:
    """``the 3rd fewest GMACs of the 6 models measured at 224 here`` -- ranked from the data, ties sharing a rank."""
    counted = ok[ok["gmacs"].astype(float) > 0]
    if model not in set(counted["model"]):
        return "a GMACs count not stored here"
    rank = int(counted["gmacs"].astype(float).rank(method="min")[counted["model"] == model].iloc[0])
    which = "fewest" if rank == 1 else f"{ordinal(rank)} fewest"
    return f"the {which} GMACs of the {len(counted)} models with a count at 224 here"


def _ms_per_gmac(row: pd.Series) -> Estimate:
    """Latency per GMAC with the latency's interval (GMACs is an exact count)."""
    g = _float(row.get("gmacs"))
    e = latency_estimate(row)
    return Estimate(e.value / g, e.low / g, e.high / g)


def _ms_per_gmac_vs_peers(target: pd.Series, peers: pd.DataFrame, tally: Tally) -> str:
    """How many peers need resolvably fewer / more ms per GMAC than ``target``, and how many overlap."""
    mine = _ms_per_gmac(target)
    fewer = more = same = no_ci = 0
    for _, peer in peers.iterrows():
        other = _ms_per_gmac(peer)
        if not (has_interval(mine) and has_interval(other)):
            tally.add(None)
            no_ci += 1
            continue
        resolved = distinguishable(mine, other)
        tally.add(resolved)
        if not resolved:
            same += 1
        elif other.high < mine.low:
            fewer += 1
        else:
            more += 1
    text = (
        f"{fmt_ms_per_gmac(mine)} ms per GMAC; of the {len(peers)} other models with a GMACs count, {fewer} need "
        f"resolvably fewer ms per GMAC, {more} resolvably more, and {same} {_are(same)} {NOT_DISTINGUISHABLE}"
    )
    return text + (f" ({no_ci} without interval)" if no_ci else "")


def fmt_ms_per_gmac(e: Estimate) -> str:
    return f"{fmt(e.value)} [{fmt(e.low)}, {fmt(e.high)}]" if has_interval(e) else f"{fmt(e.value)} ({NO_INTERVAL})"


def _utilisation_text(row: pd.Series, peers: pd.DataFrame) -> str:
    u = _float(row.get("utilisation"))
    if not math.isfinite(u):
        return "utilisation unknown (no matmul-peak row or no GMACs count)"
    others = pd.to_numeric(peers["utilisation"], errors="coerce").dropna()
    med = f" (others: median {fmt(float(others.median()))})" if not others.empty else ""
    return f"utilisation {fmt(u)} of the dense-matmul peak{med}"


def _with_gmacs(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[pd.to_numeric(frame["gmacs"], errors="coerce") > 0]


def question_effvmamba(d: ReportData, tally: Tally) -> list[str]:
    name = "effvmamba_t"
    sub = latency_224(d)
    ok = sub[sub["status"] == "ok"] if not sub.empty else sub
    if ok.empty or name not in set(ok["model"]):
        return ["**(3) Is EfficientVMamba slow for its FLOPs, and does that change on longer sequences?** Not measured "
                "here: sweep effvmamba_t with other models at 224."]  # fmt: skip
    head = (f"**(3) EfficientVMamba has {_gmacs_rank_phrase(ok, name)}: is it slow for its GMACs, and does that "
            "change on longer sequences?** ")  # fmt: skip
    e = ok[ok["model"] == name].iloc[0]
    lat_rank = list(ok.sort_values(LATENCY)["model"]).index(name) + 1
    text = (
        f"At 224 {name} has {fmt(e['gmacs'])} GMACs and a latency of {fmt_latency(e)} (rank {lat_rank} of "
        f"{len(ok)} by latency)"
    )
    peers = _with_gmacs(ok[ok["model"] != name])
    if _float(e.get("gmacs")) > 0 and not peers.empty:
        text += f": {_ms_per_gmac_vs_peers(e, peers, tally)}; {_utilisation_text(e, peers)}."
    else:
        text += "; ms per GMAC cannot be compared (no GMACs count for it or for the others)."
    text += _effvmamba_at_largest(d, name, tally)
    backend = ", ".join(sorted({str(v) for v in sub.loc[sub["model"] == name, "scan_backend"] if v}))
    if backend:
        text += f" Its selective scan ran on the `{backend}` backend here."
    text += (" What GMACs leave out -- element-wise work (the scan's recurrence beyond its 9*B*L*D*N credit, "
             "activations, gating) and data movement (the 4-way atrous sub-grid gathers and scatters) -- can make a "
             "model slower than its GMACs suggest; the comparisons above say whether that shows here, they do not "
             "profile it. (Tables: `tables/latency_224.csv`, `tables/resolution_sweep.csv`; figure "
             "`utilisation_vs_resolution.png`.)")  # fmt: skip
    return [head + text]


def _effvmamba_at_largest(d: ReportData, name: str, tally: Tally) -> str:
    """The same ms-per-GMAC comparison at the largest size of its ladder (longer token sequences)."""
    scal = _scaling(d)
    if scal.empty or name not in set(scal["model"]):
        return ""
    ok = scal[scal["status"] == "ok"]
    mine = _with_gmacs(ok[ok["model"] == name]).sort_values("pixels")
    if len(mine) < 2:
        return ""
    top = mine.iloc[-1]
    peers = _with_gmacs(ok[(ok["res"] == top["res"]) & (ok["model"] != name)])
    if peers.empty:
        return f" At {_res_label(top['res'])} ({fmt_latency(top)}) no other model has a row to compare with."
    compared = _ms_per_gmac_vs_peers(top, peers, tally)
    return f" At {_res_label(top['res'])} ({fmt_latency(top)}): {compared}; {_utilisation_text(top, peers)}."


def _main_ops(ops: pd.DataFrame) -> pd.DataFrame:
    """The ops rows question 4 reads: fp32 (else the first dtype), in the (dim, batch) with the most ok rows."""
    ok = ops[ops["status"] == "ok"]
    if ok.empty:
        return ops.iloc[0:0]
    dtype = "fp32" if (ok["dtype"] == "fp32").any() else ok["dtype"].iloc[0]
    dim, batch = ok[ok["dtype"] == dtype].groupby(["dim", "batch"]).size().idxmax()
    return ops[(ops["dtype"] == dtype) & (ops["dim"] == dim) & (ops["batch"] == batch)]


def _op_ratio(rows: pd.DataFrame, a: str, b: str, samples: pd.DataFrame, tally: Tally) -> str | None:
    """``at L=16384, a 1.2 ms [..] vs b 0.2 ms [..]: ratio 6.0x [..]: a slower than b`` at the largest shared L."""
    ra, rb = rows[rows["op"] == a].set_index("seq_len"), rows[rows["op"] == b].set_index("seq_len")
    common = sorted(set(ra.index) & set(rb.index))
    if not common:
        return None
    L = common[-1]
    return (f"at L={L}, {a} {fmt_latency(ra.loc[L])} vs {b} {fmt_latency(rb.loc[L])}: "
            f"{ratio_clause(ratio_of(ra.loc[L], rb.loc[L], samples), a, b, tally)}")  # fmt: skip


def _op_slope(fits: pd.DataFrame, group: pd.DataFrame, op: str) -> tuple[Estimate, pd.Series] | None:
    """An op's latency exponent (with interval) in the dtype/dim/batch of ``group``."""
    if fits.empty or group.empty:
        return None
    first = group.iloc[0]
    sel = fits[(fits["op"] == op) & (fits["metric"] == LATENCY) & (fits["dtype"] == first["dtype"])
               & (fits["dim"] == first["dim"]) & (fits["batch"] == first["batch"])]  # fmt: skip
    if sel.empty:
        return None
    r = sel.iloc[0]
    return Estimate(float(r["slope"]), _float(r["slope_ci_low"]), _float(r["slope_ci_high"])), r


def question_causal(d: ReportData, op_fits: pd.DataFrame, tally: Tally) -> list[str]:
    head = "**(4) What does the causal mask in VMI-SA cost?** (reconstruction: the released code has no causal mask) "
    ops = d.ops
    main = _main_ops(ops) if not ops.empty else ops
    if main.empty:
        return [head + "Not measured here: run `vmibench ops --ops vmisa,vmisa_recurrent,vmisa_matrix,sdpa`."]
    ok = main[main["status"] == "ok"]
    bits = []
    ratio = _op_ratio(ok, "vmisa_recurrent", "vmisa", d.samples_ops, tally)
    if ratio:
        bits.append(f"the recurrent (cumulative-sum) form against the released global-context mixer, {ratio}")
    for op, role in (("vmisa_recurrent", ""), ("vmisa_matrix", ""), ("vmisa", " (released, O(L) reference)"),
                     ("sdpa", " (softmax attention)")):  # fmt: skip
        found = _op_slope(op_fits, main, op)
        if found is not None:
            e, r = found
            bits.append(f"{op}{role} latency exponent {fmt_estimate(e)} (R^2 {r['r2']:.2f}, L={int(r['x_min'])}-"
                        f"{int(r['x_max'])})")  # fmt: skip
    rec, glob = _op_slope(op_fits, main, "vmisa_recurrent"), _op_slope(op_fits, main, "vmisa")
    if rec is not None and glob is not None:
        bits.append("exponent of the recurrent form against the global one: "
                    + exponent_clause(rec[0], glob[0], "vmisa", tally, name_a="vmisa_recurrent"))  # fmt: skip
    ratio = _op_ratio(ok, "vmisa_matrix", "vmisa_recurrent", d.samples_ops, tally)
    if ratio:
        bits.append(f"the matrix (L x L mask) form against the recurrent one, {ratio}")
    skipped = main[(main["op"] == "vmisa_matrix") & (main["status"] != "ok")]
    if not skipped.empty:
        first = skipped.sort_values("seq_len").iloc[0]
        bits.append(f"vmisa_matrix was not run from L={int(first['seq_len'])} ({first['status']}: {first['error']})")
    if not bits:
        return [head + "Not measured here: run `vmibench ops --ops vmisa,vmisa_recurrent,vmisa_matrix,sdpa`."]
    first = main.iloc[0]
    return [head + f"In {first['dtype']}, dim {first['dim']}, batch {first['batch']}: " + "; ".join(bits) + ". "
            "(Tables: `tables/ops_sweep.csv`, `tables/ops_fits.csv`; figures `ops_latency_vs_L.png`, "
            "`ops_memory_vs_L.png`.)"]  # fmt: skip


# -- entry point ---------------------------------------------------------------------------------------------


def section_questions(data: ReportData, model_fits: pd.DataFrame, op_fits: pd.DataFrame) -> Section:
    """The four reviewer answers, then how many of their comparisons the intervals resolve."""
    tally = Tally()
    s = Section("Reviewer questions")
    for para in (question_linear(data, model_fits, tally), question_rivals(data, tally),
                 question_effvmamba(data, tally), question_causal(data, op_fits, tally)):  # fmt: skip
        s.lines += [*para, ""]
    s.lines += [tally.sentence(), "",
                "*Every number above is read from the tables of this report at generation time; intervals are "
                "bootstrap 95% intervals from the stored raw samples.*"]  # fmt: skip
    return s


def write_report(db: str | None, out: str | Path, device: str | None = None) -> Path:
    """Generate ``out/REPORT.md`` with its tables and figures from the store; returns the report path."""
    from vmibench.env import utc_now

    out = Path(out)
    with ResultStore(db, readonly=True) as store:
        data = load(store, device)
        db_path = store.path
    data.staleness = check_staleness(data)
    b = Builder(data, out)
    scaling, model_fits = section_scaling(b)
    ops_section, op_fits = section_ops(b)
    sections = [section_setup(b), section_questions(data, model_fits, op_fits), section_flops(b), section_latency(b),
                scaling, ops_section, section_pareto(b)]  # fmt: skip
    head = (f"# vmibench report -- {data.device}\n\nGenerated by `vmibench report` on {utc_now()} from `{db_path.name}`"
            f" (newest environment of this device). Regenerate, do not edit.\n\n"
            + "\n".join(staleness_lines(data.staleness)) + "\n")  # fmt: skip
    text = head + "\n" + "\n".join(s.render() for s in sections)
    path = out / "REPORT.md"
    path.write_text(text)
    return path
