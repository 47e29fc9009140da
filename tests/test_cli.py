"""The CLI as users run it: in-process (`main([...])`), one subprocess where the interpreter matters."""

from __future__ import annotations

import io
import json
import os
import sqlite3

import pandas as pd
from conftest import assert_user_error

REQUIRED = ["model", "res", "batch", "device", "dtype", "threads", "params_m", "gmacs", "gflops",
            "latency_ms_median", "latency_ms_iqr", "latency_ms_p10", "latency_ms_p90", "n_iters",
            "throughput_ips", "peak_mem_mb", "mem_method", "status", "error"]  # fmt: skip


def test_models_lists_every_required_name(vmi) -> None:
    proc = vmi("models", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    names = [r["model"] for r in rows]
    assert next(iter(rows[0])) == "model"
    for name in ["vminet_t", "vminet_xs", "vminet_s", "vminet_b", "deit_t", "deit_s", "swin_t", "mobilevitv2_100"]:
        assert name in names
    vminet = next(r for r in rows if r["model"] == "vminet_t")
    assert "our generalisation" in vminet["adaptation"]
    assert vmi("models", "--format", "csv").stdout.startswith("model,")


def test_flops_csv_for_vminet(vmi) -> None:
    proc = vmi("flops", "--models", "vminet_t,vminet_xs", "--res", "224", "--format", "csv")
    assert proc.returncode == 0, proc.stderr
    frame = pd.read_csv(io.StringIO(proc.stdout))
    assert list(frame["params"]) == [2_036_938, 7_440_370]
    assert list(frame["published_gmacs"]) == [0.3, 1.4]
    # bytes moved beside GMACs: more than the fp32 weights read once, and more for the bigger model
    assert (frame["gbytes_moved"] > frame["params"] * 4 / 1e9).all() and frame["gbytes_moved"].is_monotonic_increasing
    assert "disagree" in frame["note"].iloc[1]


QUICK = ("--threads", "1", "--min-time", "0.2", "--max-time", "0.6", "--no-peak")


def test_latency_rows_stored_listed_and_resumed(vmi, tmp_path) -> None:
    args = ("latency", "--models", "vminet_t,deit_t,vminet_t", "--res", "224,512", "--format", "csv", *QUICK)
    proc = vmi(*args)
    assert proc.returncode == 0, proc.stderr
    frame = pd.read_csv(io.StringIO(proc.stdout))
    assert list(frame.columns[: len(REQUIRED)]) == REQUIRED
    assert list(frame["status"]) == ["ok"] * 4  # the duplicate vminet_t is planned once
    assert sorted(zip(frame["model"], frame["res"], strict=True)) == [
        ("deit_t", 224), ("deit_t", 512), ("vminet_t", 224), ("vminet_t", 512)]  # fmt: skip
    assert (frame["latency_ms_median"] > 0).all() and (frame["threads"] == 1).all()
    with sqlite3.connect(tmp_path / "vmibench.sqlite") as conn:
        assert conn.execute("SELECT COUNT(*) FROM latency").fetchone()[0] == 4
    # a second run measures nothing, and still prints every requested row with when it was measured
    again = vmi(*args)
    assert again.returncode == 0, again.stderr
    resumed = pd.read_csv(io.StringIO(again.stdout))
    assert list(resumed["measured_at"]) == list(frame["measured_at"]) and len(resumed) == 4
    assert "0 measured now" in again.stderr and "4 from the store" in again.stderr and "--force" in again.stderr
    listed = vmi("results", "--models", "deit_t", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    assert {r["model"] for r in json.loads(listed.stdout)} == {"deit_t"}
    out = tmp_path / "out.csv"
    assert vmi("results", "--format", "csv", "--out", str(out)).returncode == 0
    assert len(pd.read_csv(out)) == 4


def test_latency_with_rounds_has_a_ci_and_every_sample(vmi) -> None:
    """The issue's example: `latency --models vminet_t,deit_t --res 224 --rounds 3 --format csv`."""
    proc = vmi("latency", "--models", "vminet_t,deit_t", "--res", "224", "--rounds", "3", "--format", "csv", *QUICK)
    assert proc.returncode == 0, proc.stderr
    frame = pd.read_csv(io.StringIO(proc.stdout))
    assert len(frame) == 2
    rows = json.loads(vmi("results", "--all-columns", "--format", "json").stdout)
    for row in rows:
        assert row["rounds"] == 3
        assert row["latency_ms_ci_low"] <= row["latency_ms_median"] <= row["latency_ms_ci_high"]
    samples = pd.read_csv(io.StringIO(vmi("results", "--table", "samples", "--format", "csv").stdout))
    assert set(samples["name"]) >= {"vminet_t", "deit_t"}
    per_row = samples[samples["row_table"] == "latency"].groupby("row_id")["process"].nunique()
    assert len(per_row) == 2 and (per_row == 3).all()
    # the stored rows compared: a ratio with its interval, paired (one run), and the three-way verdict (10% margin)
    (cmp,) = json.loads(vmi("compare", "--models", "deit_t", "--baseline", "vminet_t", "--format", "json").stdout)
    assert cmp["ratio_ci_low"] <= cmp["ratio"] <= cmp["ratio_ci_high"] and cmp["paired"]
    low, high = cmp["ratio_ci_low"], cmp["ratio_ci_high"]
    expected = ("faster" if high < 1 / 1.1 else "slower" if low > 1.1 else "equivalent" if low > 1 / 1.1 and high < 1.1
                else "undetermined")  # fmt: skip
    assert cmp["verdict"] == expected
    assert_user_error(vmi("compare", "--models", "deit_t", "--baseline", "mlla_t"), "no ok row of mlla_t")


def test_bad_input_is_one_line_exit_2(vmi) -> None:
    assert_user_error(vmi("latency", "--models", "vminet_tt"), "unknown model", "vminet_t")
    assert_user_error(vmi("flops", "--models", "vminet_t", "--res", "225"), "multiples of 32")
    assert_user_error(vmi("latency", "--models", "vminet_t", "--batch", "0"), "positive integer")
    assert_user_error(vmi("latency", "--models", "vminet_t", "--batch", "x"), "positive integer")
    assert_user_error(vmi("latency", "--res", "224,abc"), "bad resolution")
    assert_user_error(vmi("latency", "--res", "-224"), "positive")
    assert_user_error(vmi("latency", "--threads", "0"), "threads")
    assert_user_error(vmi("latency", "--dtype", "fp8"), "dtype")
    assert_user_error(vmi("latency", "--rounds", "0"), "--rounds 0")
    assert_user_error(vmi("latency", "--cell-timeout", "0"), "--cell-timeout")
    assert_user_error(vmi("latency", "--cell-timeout", "nan"), "--cell-timeout")
    assert_user_error(vmi("sweep", "--preset", "cpu-default", "--budget-min", "-1"), "--budget-min")
    assert_user_error(vmi("results", "--table", "sqlite_sequence"), "unknown table")
    assert_user_error(vmi("latency", "--nonsense"), "--nonsense")
    assert_user_error(vmi("results", "--db", "nowhere.sqlite"), "no results database")
    assert_user_error(vmi("models", "--format", "xml"), "format")


def test_options_are_validated_before_any_work(vmi, tmp_path) -> None:
    """Each refusal comes before a store is created or a worker started (no database file appears)."""
    cores = len(os.sched_getaffinity(0))
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    cases = [
        (("latency", "--threads", str(cores + 1)), "at most that"),
        (("sweep", "--models", "deit_t", "--res", "224", "--threads", "1000"), "--threads 1000"),
        (("latency", "--cell-timeout", "-5"), "--cell-timeout"),
        (("ops", "--seq", "64", "--cell-timeout", "nan"), "--cell-timeout"),
        (("latency", "--max-time", "nan"), "--max-time"),
        (("latency", "--precision", "nan"), "--precision"),
        (("sweep", "--models", "deit_t", "--res", "224", "--budget-min", "0"), "--budget-min"),
        (("latency", "--device", "cpu", "--scan-backend", "mamba_ssm"), "mamba_ssm"),
        (("latency", "--out", str(blocker / "x.csv")), "not a writable directory"),
        (("ops", "--seq", "64", "--out", str(tmp_path)), "is a directory"),
        (("flops", "--models", "deit_t", "--out", str(blocker / "x.csv")), "--out"),
        (("report", "--db", str(blocker), "--out", str(blocker / "r")), "--out"),
        (("results", "--db", str(blocker), "--status", "bogus"), "unknown status 'bogus'"),
    ]
    for args, fragment in cases:
        assert_user_error(vmi(*args, *(() if "--db" in args else ("--db", "r.sqlite"))), fragment)
    assert not (tmp_path / "r.sqlite").exists()


def test_unreadable_checkpoint_is_one_line_exit_2(vmi, tmp_path) -> None:
    bad = tmp_path / "bad.pth"
    bad.write_text("garbage")
    code = f"import vmibench; vmibench.create_model('vminet_t', checkpoint={str(bad)!r})"
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode != 0 and "CheckpointError" in proc.stderr and "cannot read checkpoint" in proc.stderr


def test_help_defines_metrics(vmi) -> None:
    text = vmi("latency", "--help").stdout
    for term in ("latency_ms_median", "throughput_ips", "peak_mem_mb", "gmacs", "CUDA"):
        assert term in text
    assert "9*B*L*D*N" in vmi("flops", "--help").stdout
