"""Results store: append, read, filter, schema evolution, typed records."""

from __future__ import annotations

from pathlib import Path

from vmibench.env import capture, utc_now
from vmibench.records import LatencyRecord
from vmibench.store import ResultStore


def test_append_read_filter_and_new_columns(tmp_path: Path) -> None:
    with ResultStore(tmp_path / "r.sqlite") as store:
        store.append_rows("latency", [{"model": "a", "res": "224", "value": 1.5}, {"model": "b", "res": "512"}])
        store.append_rows("latency", [{"model": "c", "res": "224", "new_col": True}])
        frame = store.read("latency")
        assert list(frame["model"]) == ["a", "b", "c"]
        assert "new_col" in frame.columns and frame["new_col"].iloc[2] == 1
        assert list(store.read("latency", {"res": "224"})["model"]) == ["a", "c"]
        assert list(store.read("latency", {"model": ["b", "c"]})["model"]) == ["b", "c"]
        assert store.read("latency", {"no_such_column": 1}).empty
        assert store.read("missing_table").empty
        assert store.exists("latency", {"model": "a"}) and not store.exists("latency", {"model": "z"})


def test_record_round_trip_keeps_required_columns_and_environment(tmp_path: Path) -> None:
    env = capture("cpu")
    rec = LatencyRecord(
        timestamp=utc_now(),
        env=env,
        env_key=env.key("cpu"),
        model="m",
        res="224",
        batch=1,
        device="cpu",
        dtype="fp32",
        threads=2,
        latency_ms_median=3.0,
        status="ok",
    )
    with ResultStore(tmp_path / "r.sqlite") as store:
        store.add(rec)
        row = store.read("latency").iloc[0]
    required = [
        "model",
        "res",
        "batch",
        "device",
        "dtype",
        "threads",
        "params_m",
        "gmacs",
        "gflops",
        "latency_ms_median",
        "latency_ms_iqr",
        "latency_ms_p10",
        "latency_ms_p90",
        "n_iters",
        "throughput_ips",
        "peak_mem_mb",
        "mem_method",
        "status",
        "error",
    ]
    assert list(row.index[: len(required)]) == required
    for col in (
        "device_name",
        "cpu_model",
        "torch_version",
        "timm_version",
        "fvcore_version",
        "vmibench_version",
        "git_commit",
        "timestamp",
        "threads",
        "env_key",
    ):
        assert col in row.index
    assert row["torch_version"] == env.torch_version and row["latency_ms_median"] == 3.0
