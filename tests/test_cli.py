"""The CLI as users run it (fresh interpreter per command)."""

from __future__ import annotations

import io
import json
import sqlite3

import pandas as pd
from conftest import assert_user_error

REQUIRED = ["model", "res", "batch", "device", "dtype", "threads", "params_m", "gmacs", "gflops",
            "latency_ms_median", "latency_ms_iqr", "latency_ms_p10", "latency_ms_p90", "n_iters",
            "throughput_ips", "peak_mem_mb", "mem_method", "status", "error"]  # fmt: skip


def test_models_lists_every_required_name(cli) -> None:
    proc = cli("models", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    names = [r["model"] for r in rows]
    assert next(iter(rows[0])) == "model"
    for name in ["vminet_t", "vminet_xs", "vminet_s", "vminet_b", "deit_t", "deit_s", "swin_t", "mobilevitv2_100"]:
        assert name in names
    vminet = next(r for r in rows if r["model"] == "vminet_t")
    assert "our generalisation" in vminet["adaptation"]
    assert cli("models", "--format", "csv").stdout.startswith("model,")


def test_flops_csv_for_vminet(cli) -> None:
    proc = cli("flops", "--models", "vminet_t,vminet_xs", "--res", "224", "--format", "csv")
    assert proc.returncode == 0, proc.stderr
    frame = pd.read_csv(io.StringIO(proc.stdout))
    assert list(frame["params"]) == [2_036_938, 7_440_370]
    assert list(frame["published_gmacs"]) == [0.3, 1.4]
    assert "disagree" in frame["note"].iloc[1]


def test_latency_four_ok_rows_stored_and_listed(cli, tmp_path) -> None:
    proc = cli(
        "latency",
        "--models",
        "vminet_t,deit_t",
        "--res",
        "224,512",
        "--batch",
        "1",
        "--format",
        "csv",
        "--threads",
        "1",
        "--min-time",
        "0.2",
        "--max-time",
        "1",
    )
    assert proc.returncode == 0, proc.stderr
    frame = pd.read_csv(io.StringIO(proc.stdout))
    assert list(frame.columns[: len(REQUIRED)]) == REQUIRED
    assert list(frame["status"]) == ["ok"] * 4
    assert sorted(zip(frame["model"], frame["res"], strict=True)) == [
        ("deit_t", 224),
        ("deit_t", 512),
        ("vminet_t", 224),
        ("vminet_t", 512),
    ]
    assert (frame["latency_ms_median"] > 0).all() and (frame["threads"] == 1).all()
    with sqlite3.connect(tmp_path / "results" / "vmibench.sqlite") as conn:
        assert conn.execute("SELECT COUNT(*) FROM latency").fetchone()[0] == 4
    listed = cli("results", "--models", "deit_t", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    assert {r["model"] for r in json.loads(listed.stdout)} == {"deit_t"}
    out = tmp_path / "out.csv"
    assert cli("results", "--format", "csv", "--out", str(out)).returncode == 0
    assert len(pd.read_csv(out)) == 4


def test_bad_input_is_one_line_exit_2(cli) -> None:
    assert_user_error(cli("latency", "--models", "vminet_tt"), "unknown model", "vminet_t")
    assert_user_error(cli("flops", "--models", "vminet_t", "--res", "225"), "multiples of 32")
    assert_user_error(cli("latency", "--models", "vminet_t", "--batch", "0"), "positive integer")
    assert_user_error(cli("latency", "--models", "vminet_t", "--batch", "x"), "positive integer")
    assert_user_error(cli("latency", "--res", "224,abc"), "bad resolution")
    assert_user_error(cli("latency", "--res", "-224"), "positive")
    assert_user_error(cli("latency", "--threads", "0"), "threads")
    assert_user_error(cli("latency", "--dtype", "fp8"), "dtype")
    assert_user_error(cli("latency", "--nonsense"), "--nonsense")
    assert_user_error(cli("results", "--db", "nowhere.sqlite"), "no results database")
    assert_user_error(cli("models", "--format", "xml"), "format")


def test_unreadable_checkpoint_is_one_line_exit_2(cli, tmp_path) -> None:
    bad = tmp_path / "bad.pth"
    bad.write_text("garbage")
    code = f"import vmibench; vmibench.create_model('vminet_t', checkpoint={str(bad)!r})"
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode != 0 and "CheckpointError" in proc.stderr and "cannot read checkpoint" in proc.stderr


def test_help_defines_metrics(cli) -> None:
    text = cli("latency", "--help").stdout
    for term in ("latency_ms_median", "throughput_ips", "peak_mem_mb", "gmacs", "CUDA"):
        assert term in text
    assert "9*B*L*D*N" in cli("flops", "--help").stdout
