"""Question (3): is EfficientVMamba slow for its FLOPs?  Its GMACs rank, ms per GMAC against the others, and
the roofline: whether it is memory- or compute-bound and how far it is from its roof.
"""

from __future__ import annotations

import math

import pandas as pd

from vmibench.analysis import Estimate, distinguishable
from vmibench.reports.selection import ReportData, latency_224, scaling_rows, with_gmacs
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
    ordinal,
    res_label,
)


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
    peers = with_gmacs(ok[ok["model"] != name])
    if as_float(e.get("gmacs")) > 0 and not peers.empty:
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
