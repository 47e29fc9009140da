"""Worker processes and the runner: ok rows, failures as rows, validation before measuring."""

from __future__ import annotations

from dataclasses import replace

import pytest

from vmibench.errors import UserError
from vmibench.measure.runner import _crash_message, measure_cells, plan_cells, run_worker, to_record
from vmibench.measure.timing import TimingPolicy
from vmibench.measure.worker import CellSpec

QUICK = CellSpec(model="vminet_t", height=64, width=64, threads=1, policy=TimingPolicy.quick())


def test_one_cell_gives_a_complete_ok_row() -> None:
    (rec,) = measure_cells([QUICK])
    row = rec.to_row()
    assert row["status"] == "ok", row["error"]
    assert row["latency_ms_p10"] <= row["latency_ms_median"] <= row["latency_ms_p90"]
    assert row["n_iters"] >= 3 and row["throughput_ips"] == pytest.approx(1000 / row["latency_ms_median"])
    assert row["mem_method"] in ("rss_hwm", "rss_sampled") and row["peak_mem_mb"] >= 0
    assert row["params_m"] == pytest.approx(2.026408) and row["gmacs"] > 0  # context weights sized for 64x64
    assert row["threads"] == 1 and row["timer"] == "perf_counter" and row["device_name"]
    assert row["res"] == "64" and row["dtype"] == "fp32" and row["scan_backend"] == ""


def test_scan_models_record_their_backend() -> None:
    rec = to_record(replace(QUICK, model="vim_t"), run_worker(replace(QUICK, model="vim_t", count_flops=False), 300))
    assert rec.status == "ok", rec.error
    assert rec.scan_backend == "torch"


def test_a_failing_forward_becomes_an_error_row() -> None:
    # Bypass CLI validation: VMINet cannot be built for 70x70 (not a multiple of 32), the worker must report it.
    (rec,) = measure_cells([replace(QUICK, height=70, width=70)])
    assert rec.status == "error" and "multiples of 32" in rec.error
    assert rec.latency_ms_median is None


def test_timeout_becomes_a_row() -> None:
    result = run_worker(replace(QUICK, policy=TimingPolicy(max_time_s=60, min_time_s=60)), timeout_s=3)
    assert result["status"] == "timeout" and "budget" in result["error"]


def test_crash_messages() -> None:
    assert "SIGKILL" in _crash_message(-9, "") and "out-of-memory" in _crash_message(-9, "")
    assert "status 1: ValueError: boom" in _crash_message(1, "Traceback\nValueError: boom\n")


def test_plan_validates_everything_first() -> None:
    cells = plan_cells(["vminet_t", "deit_t"], [(224, 224), (512, 512)], [1, 4], QUICK)
    assert len(cells) == 8 and {c.batch for c in cells} == {1, 4}
    with pytest.raises(UserError, match="unknown model"):
        plan_cells(["vminet_t", "nope"], [(224, 224)], [1], QUICK)
    with pytest.raises(UserError, match="multiples of 16"):
        plan_cells(["deit_t"], [(200, 200)], [1], QUICK)


def test_processes_pool_their_samples(monkeypatch) -> None:
    import vmibench.measure.runner as runner

    medians = iter([10.0, 14.0, 12.0])

    def fake(spec: CellSpec, timeout_s: float) -> dict:
        m = next(medians)
        return {"status": "ok", "stats": {"median_ms": m, "samples_ms": [m - 1, m, m + 1], "converged": True,
                                          "warmup_iters": 3, "warmup_s": 0.5},
                "memory": {"peak_mb": m, "total_mb": 100 + m, "reserved_mb": None, "method": "rss_hwm"}}  # fmt: skip

    monkeypatch.setattr(runner, "run_worker", fake)
    (rec,) = runner.measure_cells([replace(QUICK, processes=3)])
    assert rec.n_iters == 9 and rec.latency_ms_median == 12.0 and rec.n_processes == 3
    assert rec.process_spread == pytest.approx(4.0 / 12.0)
    assert rec.peak_mem_mb == 14.0  # the largest peak of the three processes
