"""Formatting and wording of findings: numbers, intervals, and sentences whose verdicts come from the data.

Every verdict is the three-way one of :mod:`vmibench.analysis.intervals` on the paired ratio or difference itself
(faster/slower/higher/lower by the 10% margin, equivalent within it, undetermined, or no interval) -- never the
overlap of two separate intervals; the :class:`Tally` counts them so a closing count is computed, never typed.
"""

from __future__ import annotations

import math
import numbers
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import pandas as pd

from vmibench.analysis import Estimate
from vmibench.analysis.estimates import LATENCY, as_float, latency_estimate
from vmibench.analysis.intervals import DEFAULT_MARGIN, decided, ratio_verdict
from vmibench.analysis.intervals import NO_INTERVAL as NO_INTERVAL_VERDICT
from vmibench.measure.timing import TimingPolicy

NO_INTERVAL = "no interval: no raw samples stored"


@dataclass
class Section:
    """A titled block of markdown."""

    title: str
    lines: list[str] = field(default_factory=list)
    level: int = 2  # markdown heading level: 2 above the appendix, 3 inside it

    def render(self) -> str:
        return f"{'#' * self.level} {self.title}\n\n" + "\n".join(self.lines).rstrip() + "\n"


@dataclass
class Tally:
    """Three-way verdicts of the comparisons a section makes (:mod:`vmibench.analysis.intervals`), so its closing
    count is computed, not typed."""

    decided: int = 0
    undetermined: int = 0
    no_interval: int = 0

    def add(self, verdict: str) -> None:
        if verdict == NO_INTERVAL_VERDICT:
            self.no_interval += 1
        elif decided(verdict):
            self.decided += 1
        else:
            self.undetermined += 1

    def sentence(self) -> str:
        total = self.decided + self.undetermined + self.no_interval
        if total == 0:
            return "No comparison above could be made from these rows."
        text = (f"Of the {total} {'comparison' if total == 1 else 'comparisons'} above, {self.decided} "
                f"{are(self.decided)} decided (different by at least the {DEFAULT_MARGIN:.0%} margin, or equivalent "
                f"within it) and {self.undetermined} {are(self.undetermined)} undetermined on this "
                "machine")  # fmt: skip
        if self.no_interval:
            text += f"; {self.no_interval} had no interval (no raw samples stored)"
        return text + "."


def are(n: int) -> str:
    return "is" if n == 1 else "are"


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
    lo, hi = as_float(low), as_float(high)
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
    """A table's caption: what its columns mean and where its data is; the setup it was measured under is stated
    once, in the report's *Setup* block, and only named here where these rows differ from it."""
    return f"*{extra + '. ' if extra else ''}Data: {source}; setup as in [Setup](#setup).*"


def short_setup(frame: pd.DataFrame) -> str:
    """A figure's one-line footer: device, dtype, batch, threads and commit (the rest is in the Setup block)."""
    if frame.empty:
        return ""

    def values(col: str) -> str:
        vals = sorted({str(v) for v in frame[col].dropna() if str(v) != ""}) if col in frame.columns else []
        return ",".join(vals) if vals else "?"

    return (f"{values('device')} ({values('device_name')}), {values('dtype')}, batch {values('batch')}, "
            f"{values('threads')} thread(s), vmibench @ {values('git_commit')}; full setup in REPORT.md")  # fmt: skip


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


def few_rounds_caveat(frame: pd.DataFrame) -> str:
    """What a 95% t-interval over few rounds can and cannot say, for the smallest round count among the rows.

    The rounds' medians are the independent units: with K of them the t-interval has K - 1 degrees of freedom, so
    it is wide for small K, and it reaches its nominal level only as far as the rounds' log levels are roughly
    normal (what ``vmibench check calibrate`` measures).  One round gives no interval at all.
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
            " Some cells ran in 1 round: a t-interval over rounds needs at least 2, so they have none, and no "
            "verdict rests on them; use `--rounds 3` or more for a claim."
        )
    return (
        f" With {k} rounds per cell, an interval rests on {k} round medians ({k - 1} degree(s) of freedom): it is "
        "wide, and it covers at its nominal 95% only as far as the rounds' levels scatter normally (`vmibench check "
        "calibrate` measures how far); use more `--rounds` for a claim."
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
    return [_policy_text(TimingPolicy.from_json(cell), TimingPolicy.from_json(per), n_rounds) + suffix(n_rows)
            for (cell, per, n_rounds), n_rows in sorted(counts.items(), key=lambda kv: -kv[1])]  # fmt: skip


def ratio_clause(e: Estimate, a: str, b: str, tally: Tally) -> str:
    """``ratio 0.17x [0.16, 0.18]: a faster`` -- the three-way verdict of the paired ratio with the 10% margin
    (faster, slower, equivalent, undetermined), never a direction read off an interval edge missing 1."""
    verdict = ratio_verdict(e)
    tally.add(verdict)
    if verdict == NO_INTERVAL_VERDICT:
        return f"ratio {fmt_ratio(e)}"
    if verdict in ("faster", "slower"):
        return f"ratio {fmt_ratio(e)}: {a} {verdict} than {b}"
    return f"ratio {fmt_ratio(e)}: {verdict}"


def with_exponent_text(fits: pd.DataFrame) -> pd.DataFrame:
    """Fits with an ``exponent`` column for markdown: ``1.00 [0.99, 1.01]``, or the bare slope where no interval."""
    if fits.empty:
        return fits
    text = ["too few sizes" if r.n < 3 else fmt_estimate(Estimate(r.slope, r.slope_ci_low, r.slope_ci_high))
            if r.metric == LATENCY else f"{r.slope:.2f}" for r in fits.itertuples(index=False)]  # fmt: skip
    r2 = [r.r2 if r.n >= 3 else float("nan") for r in fits.itertuples(index=False)]  # no R^2 of a 2-point line
    return fits.assign(exponent=text, r2=r2)


def join(items: Iterable[str]) -> str:
    return ", ".join(items)


def fmt_ms_per_gmac(e: Estimate) -> str:
    return f"{fmt(e.value)} [{fmt(e.low)}, {fmt(e.high)}]" if has_interval(e) else f"{fmt(e.value)} ({NO_INTERVAL})"
