"""Roofline of every timed cell: the larger of its compute time at the matmul peak and its memory time at the
triad bandwidth, against what it took.

For a cell of ``batch`` samples with ``gmacs`` and ``gbytes_moved`` per sample (``vmibench.flops``,
``vmibench.bytes_moved``), ``peak_gflops`` (dense matmul, :class:`vmibench.records.PeakRecord`) and
``bw_peak_gbs`` (STREAM triad, :class:`vmibench.records.BandwidthRecord`) of the same environment, dtype and
thread count:

* ``arith_intensity = 2 * gmacs / gbytes_moved`` -- FLOPs per byte moved;
* ``roofline_ms = max(2 * gmacs / peak_gflops, gbytes_moved / bw_peak_gbs) * batch`` (in ms) -- the fastest the
  cell could run if it reached one of the two roofs;
* ``roofline_frac = roofline_ms / latency_ms_median`` -- how close it comes (1 = on the roof);
* ``roof_exceeded`` -- the cell ran faster than its roof (``roofline_frac > 1``): the roof is invalid there;
* ``bound`` -- ``memory`` when its memory time exceeds its compute time (intensity below the ridge point
  ``peak_gflops / bw_peak_gbs``), else ``compute``.

Both roofs are measured, not datasheet, numbers, and ``gbytes_moved`` is the unfused lower bound of traffic, so
``roofline_ms`` is a bound the cell could approach only with every operator streaming its operands once.
Cells without a count or without a matching peak / bandwidth row get NaN and an empty ``bound``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from vmibench.analysis.fits import add_utilisation

ROOFLINE_COLUMNS = ("bw_peak_gbs", "arith_intensity", "roofline_ms", "roofline_frac", "bound", "roof_exceeded")


def _numeric(frame: pd.DataFrame, col: str) -> pd.Series:
    return pd.to_numeric(frame[col], errors="coerce") if col in frame.columns else pd.Series(np.nan, frame.index)


def _bandwidth_of(timed: pd.DataFrame, bandwidth: pd.DataFrame) -> list[float]:
    if bandwidth.empty or "bw_peak_gbs" not in bandwidth.columns:
        return [np.nan] * len(timed)
    ok = bandwidth[bandwidth["status"] == "ok"].sort_values("timestamp")
    table = {(r.env_key, r.device, r.dtype, int(r.threads)): float(r.bw_peak_gbs) for r in ok.itertuples(index=False)}
    return [table.get((r.env_key, r.device, r.dtype, int(r.threads)), np.nan) for r in timed.itertuples(index=False)]


def add_roofline(timed: pd.DataFrame, peak: pd.DataFrame, bandwidth: pd.DataFrame) -> pd.DataFrame:
    """``timed`` with utilisation (:func:`add_utilisation`) and the roofline columns above."""
    out = add_utilisation(timed, peak) if "peak_gflops" not in timed.columns else timed.copy()
    if out.empty:
        for col in ROOFLINE_COLUMNS:
            out[col] = pd.Series(dtype={"bound": object, "roof_exceeded": bool}.get(col, float))
        return out
    out["bw_peak_gbs"] = _bandwidth_of(out, bandwidth)
    gflop = 2 * _numeric(out, "gmacs")
    gbytes = _numeric(out, "gbytes_moved")
    batch = _numeric(out, "batch")
    out["arith_intensity"] = gflop / gbytes.where(gbytes > 0)
    compute_ms = gflop * batch / _numeric(out, "peak_gflops") * 1e3
    memory_ms = gbytes * batch / out["bw_peak_gbs"] * 1e3
    out["roofline_ms"] = np.fmax(compute_ms, memory_ms).where(compute_ms.notna() & memory_ms.notna())
    out["roofline_frac"] = out["roofline_ms"] / _numeric(out, "latency_ms_median")
    known = compute_ms.notna() & memory_ms.notna()
    out["bound"] = np.where(~known, "", np.where(memory_ms > compute_ms, "memory", "compute"))
    # A cell faster than its roof means the roof is wrong there (a peak measured too low, a count that misses
    # work), never that the cell beat physics: reports say "the roof is invalid here" for these rows.
    out["roof_exceeded"] = (out["roofline_frac"] > 1.0).fillna(False).astype(bool)
    return out
