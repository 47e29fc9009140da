"""Question (3): is EfficientVMamba slow for its FLOPs?  Its GMACs rank, ms per GMAC against the others, and
the roofline: whether it is memory- or compute-bound and how far it is from its roof.
"""

from __future__ import annotations

import math

import pandas as pd

from vmibench.analysis import Estimate, distinguishable
from vmibench.reports.selection import ReportData, column_or_nan, latency_224, scaling_rows, with_gmacs
from vmibench.reports.text import (
    LATENCY,
    NOT_DISTINGUISHABLE,
    Tally,
    are,
    as_float,
    fmt,
    fmt_latency,
    fmt_ms_per_gmac,
    has_interval,
    latency_estimate,
    res_label,
)

LOW_FLOPS_SHARE = 0.5  # "few FLOPs for this set": fewer GMACs than at least half of the other models
ROOF_FAR, ROOF_NEAR = 0.75, 1.25  # roofline_frac against the others' median: "further" below, "closer" above


def gmacs_standing(ok: pd.DataFrame, model: str) -> str:
    """``fewer GMACs than 4 of the 5 other models with a count at 224 here, few for this set`` -- counted from the
    data, with the verdict conditional on that count (ties count as not fewer)."""
    counted = ok[pd.to_numeric(ok["gmacs"], errors="coerce") > 0]
    if model not in set(counted["model"]):
        return "no GMACs count stored here, so its FLOPs cannot be ranked"
    mine = float(counted.loc[counted["model"] == model, "gmacs"].astype(float).iloc[0])
    others = counted.loc[counted["model"] != model, "gmacs"].astype(float)
    if others.empty:
        return f"{fmt(mine)} GMACs, and no other model has a count to rank it against"
    more = int((others > mine).sum())
    verdict = ("few FLOPs for this set" if more >= LOW_FLOPS_SHARE * len(others) else
               "so it is not a low-FLOPs model in this set and the question's premise does not hold here")  # fmt: skip
    return f"fewer GMACs than {more} of the {len(others)} other models with a count at 224 here: {verdict}"


def _ms_per_gmac(row: pd.Series) -> Estimate:
    """Latency per GMAC with the latency's interval (GMACs is an exact count)."""
    g = as_float(row.get("gmacs"))
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
        f"resolvably fewer ms per GMAC, {more} resolvably more, and {same} {are(same)} {NOT_DISTINGUISHABLE}"
    )
    return text + (f" ({no_ci} without interval)" if no_ci else "")


def _utilisation_text(row: pd.Series, peers: pd.DataFrame) -> str:
    u = as_float(row.get("utilisation"))
    if not math.isfinite(u):
        return "utilisation unknown (no matmul-peak row or no GMACs count)"
    others = pd.to_numeric(peers["utilisation"], errors="coerce").dropna()
    med = f" (others: median {fmt(float(others.median()))})" if not others.empty else ""
    return f"utilisation {fmt(u)} of the dense-matmul peak{med}"


def _roofline_text(ok: pd.DataFrame, name: str) -> str:
    """Which models are memory- or compute-bound and how far each is from its roof, then where ``name`` stands:
    every verdict from ``bound`` / ``roofline_frac`` (see :mod:`vmibench.analysis.roofline`)."""
    have = ok[pd.to_numeric(column_or_nan(ok, "roofline_frac"), errors="coerce").notna()]
    if have.empty or name not in set(have["model"]):
        needs = (("a matmul-peak row", "peak_gflops"), ("a triad-bandwidth row", "bw_peak_gbs"),
                 ("a bytes-moved count", "gbytes_moved"))  # fmt: skip
        missing = [what for what, col in needs if column_or_nan(ok, col).isna().all()]
        why = ", ".join(missing) or f"no {name} row with GMACs, bytes moved and both roofs"
        return f" No roofline here ({why}): rerun `vmibench sweep`, which measures both roofs first."
    e = have[have["model"] == name].iloc[0]
    peak, bw = as_float(e["peak_gflops"]), as_float(e["bw_peak_gbs"])
    text = (f" Roofline (dense-matmul peak {fmt(peak)} GFLOP/s, triad bandwidth {fmt(bw)} GB/s, ridge at "
            f"{fmt(peak / bw)} FLOP/byte): {name} moves {fmt(e['gbytes_moved'])} GB per image, "
            f"{fmt(e['arith_intensity'])} FLOP/byte, so it is {e['bound']}-bound, and its roofline time "
            f"{fmt(e['roofline_ms'])} ms is {fmt(e['roofline_frac'])} of its measured latency "
            "(roofline_frac).")  # fmt: skip
    others = have[have["model"] != name]
    memory = sorted(have.loc[have["bound"] == "memory", "model"])
    text += (f" Among the {len(have)} models with a roofline, {len(memory)} {are(len(memory))} memory-bound"
             + (f" ({', '.join(memory)})" if memory else "") + "; roofline_frac per model: "
             + ", ".join(f"{r.model} {fmt(r.roofline_frac)}" for r in have.sort_values("roofline_frac").itertuples())
             + ".")  # fmt: skip
    if others.empty:
        return text
    median = float(others["roofline_frac"].astype(float).median())
    frac = as_float(e["roofline_frac"])
    if frac < ROOF_FAR * median:
        verdict = (f"{name} is further from its roof than the others (median {fmt(median)}): it loses time that "
                   "neither its FLOPs nor its minimum traffic explain (per-operator overheads or re-reads would; "
                   "this is not a profile)")  # fmt: skip
    elif frac > ROOF_NEAR * median:
        verdict = (f"{name} is closer to its roof than the others (median {fmt(median)}): what it moves and computes "
                   "explains its latency better than theirs")  # fmt: skip
    else:
        verdict = (f"{name} is about as far from its roof as the others (median {fmt(median)}, within "
                   f"{ROOF_FAR:g}-{ROOF_NEAR:g}x)")  # fmt: skip
    return f"{text} {verdict}."


def question_effvmamba(d: ReportData, tally: Tally) -> list[str]:
    name = "effvmamba_t"
    head = "**(3) Is EfficientVMamba slow for its FLOPs, and does that change on longer sequences?** "
    sub = latency_224(d)
    ok = sub[sub["status"] == "ok"] if not sub.empty else sub
    if ok.empty or name not in set(ok["model"]):
        return [head + "Not measured here: sweep effvmamba_t with other models at 224."]
    e = ok[ok["model"] == name].iloc[0]
    lat_rank = list(ok.sort_values(LATENCY)["model"]).index(name) + 1
    text = (f"At 224 {name} has {gmacs_standing(ok, name)}. Its latency is {fmt_latency(e)} (rank {lat_rank} of "
            f"{len(ok)} by latency)")  # fmt: skip
    peers = with_gmacs(ok[ok["model"] != name])
    if as_float(e.get("gmacs")) > 0 and not peers.empty:
        text += f": {_ms_per_gmac_vs_peers(e, peers, tally)}; {_utilisation_text(e, peers)}."
    else:
        text += "; ms per GMAC cannot be compared (no GMACs count for it or for the others)."
    text += _roofline_text(ok, name)
    text += _effvmamba_at_largest(d, name, tally)
    backend = ", ".join(sorted({str(v) for v in sub.loc[sub["model"] == name, "scan_backend"] if v}))
    if backend:
        text += f" Its selective scan ran on the `{backend}` backend here."
    text += (" (Tables: `tables/latency_224.csv` with the roofline columns, `tables/resolution_sweep.csv`; figures "
             "`roofline.png`, `utilisation_vs_resolution.png`.)")  # fmt: skip
    return [head + text]


def _effvmamba_at_largest(d: ReportData, name: str, tally: Tally) -> str:
    """The same ms-per-GMAC comparison at the largest size of its ladder (longer token sequences)."""
    scal = scaling_rows(d)
    if scal.empty or name not in set(scal["model"]):
        return ""
    ok = scal[scal["status"] == "ok"]
    mine = with_gmacs(ok[ok["model"] == name]).sort_values("pixels")
    if len(mine) < 2:
        return ""
    top = mine.iloc[-1]
    peers = with_gmacs(ok[(ok["res"] == top["res"]) & (ok["model"] != name)])
    if peers.empty:
        return f" At {res_label(top['res'])} ({fmt_latency(top)}) no other model has a row to compare with."
    compared = _ms_per_gmac_vs_peers(top, peers, tally)
    return f" At {res_label(top['res'])} ({fmt_latency(top)}): {compared}; {_utilisation_text(top, peers)}."
