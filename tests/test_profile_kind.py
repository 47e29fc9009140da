"""The profile kind in real workers: rows in `profile` and `breakdown`, shares that add up, the classes accounting
for the profiled call, the profiler's overhead measured, and `results --table breakdown`."""

from __future__ import annotations

import io

import pandas as pd

from vmibench.store import ResultStore

ARGS = ("--res", "64", "--rounds", "2", "--max-time", "0.2", "--threads", "1", "--no-peak", "--db", "p.sqlite")


def test_profile_rows_and_breakdown_from_real_workers(vmi) -> None:  # type: ignore[no-untyped-def]
    proc = vmi("profile", "--models", "effvmamba_t", *ARGS, "--format", "csv")
    assert proc.returncode == 0, proc.stderr
    row = pd.read_csv(io.StringIO(proc.stdout)).iloc[0]
    assert row["status"] == "ok" and row["rounds"] == 2
    assert row["profiled_ms_median"] > 0 and row["profile_overhead"] > 0.5
    # what the classes account for: the rest is the profiler's own bookkeeping, a minority of a call
    assert 0.5 < row["class_sum_frac"] <= 1.05
    with ResultStore("p.sqlite", readonly=True) as store:
        profile = store.read("profile")
        breakdown = store.read("breakdown")
    assert set(breakdown["profile_row_uid"]) == set(profile["row_uid"])
    total = breakdown[breakdown["block"] == "*"]
    assert abs(total["time_share"].sum() - 1.0) < 1e-6  # shares of the classes' time add up to one
    assert abs(total["flop_share"].sum() - 1.0) < 1e-6 and abs(total["byte_share"].sum() - 1.0) < 1e-6
    scan = total[total["op_class"] == "scan"].iloc[0]
    assert scan["time_share"] > 0 and scan["flop_share"] > 0 and scan["roof"] == "transcendental"
    assert "other" not in set(total["op_class"])
    blocks = set(breakdown["block"]) - {"*"}
    assert any(b.startswith("layers.0") for b in blocks), blocks  # timm stage/block names
    listed = vmi("results", "--table", "breakdown", "--db", "p.sqlite", "--format", "csv")
    assert listed.returncode == 0 and len(pd.read_csv(io.StringIO(listed.stdout))) == len(breakdown)
