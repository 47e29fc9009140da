"""Sweeps: resume/skip logic, ladders stopped by failures and caps, presets."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

import vmibench.measure.runner as runner
import vmibench.sweep as sweep
from vmibench.errors import UserError
from vmibench.measure.timing import TimingPolicy
from vmibench.measure.worker import CellSpec
from vmibench.records import LatencyRecord
from vmibench.store import ResultStore

BASE = CellSpec(model="", height=0, width=0, threads=1, policy=TimingPolicy.quick(), count_flops=False)


@pytest.fixture
def fake_worker(monkeypatch):
    """Replace worker processes by a function of the spec (the real ones are covered in test_runner)."""
    calls: list[CellSpec] = []

    def install(outcome):  # type: ignore[no-untyped-def]
        def run(spec: CellSpec, timeout_s: float) -> dict:
            calls.append(spec)
            return outcome(spec)

        monkeypatch.setattr(sweep, "run_worker", run)
        monkeypatch.setattr(runner, "run_worker", run)
        return calls

    return install


def _ok(ms: float) -> dict:
    return {"status": "ok", "stats": {"median_ms": ms, "iqr_ms": 0.1, "p10_ms": ms, "p90_ms": ms, "mean_ms": ms,
                                      "min_ms": ms, "n": 5, "rel_se": 0.01, "converged": True, "warmup_iters": 2},
            "memory": {"peak_mb": 10.0, "total_mb": 100.0, "reserved_mb": None, "method": "rss_hwm"}}  # fmt: skip


def test_resume_skips_stored_cells_and_force_remeasures(tmp_path: Path, fake_worker) -> None:
    calls = fake_worker(lambda s: _ok(5.0) if s.mode != "matmul" else _ok(20.0))
    db = str(tmp_path / "s.sqlite")
    cells = sweep.expand_groups([sweep.Group(models=("vminet_t", "deit_t"), resolutions=((64, 64), (96, 96)))], BASE)
    first = sweep.run_sweep(cells, db=db)
    assert (first.measured, first.skipped_existing) == (4, 0)
    assert sum(c.mode == "matmul" for c in calls) == 1  # the utilisation peak, measured once
    again = sweep.run_sweep(cells, db=db)
    assert (again.measured, again.skipped_existing) == (0, 4)
    more = sweep.expand_groups([sweep.Group(models=("vminet_t",), resolutions=((64, 64), (128, 128)))], BASE)
    partial = sweep.run_sweep(more, db=db)
    assert (partial.measured, partial.skipped_existing) == (1, 1)
    forced = sweep.run_sweep(cells, db=db, force=True)
    assert forced.measured == 4
    with ResultStore(db) as store:
        assert len(store.read("latency")) == 9 and len(store.read("peak")) == 2


def test_other_settings_are_other_cells(tmp_path: Path, fake_worker) -> None:
    fake_worker(lambda s: _ok(5.0))
    db = str(tmp_path / "s.sqlite")
    group = [sweep.Group(models=("vminet_t",), resolutions=((64, 64),))]
    sweep.run_sweep(sweep.expand_groups(group, BASE), db=db)
    other = sweep.run_sweep(sweep.expand_groups(group, replace(BASE, threads=2)), db=db)
    assert other.measured == 1


def test_failure_stops_the_rest_of_the_ladder(tmp_path: Path, fake_worker) -> None:
    fake_worker(lambda s: {"status": "oom", "error": "OutOfMemoryError: boom"} if s.height >= 96 else _ok(3.0))
    cells = sweep.expand_groups(
        [sweep.Group(models=("vminet_t",), resolutions=((64, 64), (96, 96), (128, 128), (160, 160)))], BASE
    )
    summary = sweep.run_sweep(cells, db=str(tmp_path / "s.sqlite"))
    statuses = [(r.res, r.status) for r in summary.records if isinstance(r, LatencyRecord)]
    assert statuses == [("64", "ok"), ("96", "oom"), ("128", "skipped"), ("160", "skipped")]
    assert "oom at a smaller size" in summary.records[-1].error
    assert (summary.measured, summary.failed, summary.skipped_by_cap) == (1, 1, 2)


def test_ops_caps_skip_lengths_predicted_too_slow(tmp_path: Path, fake_worker) -> None:
    fake_worker(lambda s: _ok(s.seq_len**2 / 1e4) if s.mode == "op" else _ok(10.0))  # 6.5 ms at 256 ... quadratic
    cells = sweep.ops_cells(["sdpa", "vmisa"], [256, 1024, 4096, 16384], 32, 1, ["fp32"], BASE)
    summary = sweep.run_ops_sweep(cells, time_cap_s=1.0, mem_cap_mb=1e9, db=str(tmp_path / "o.sqlite"))
    by = {(r.op, r.seq_len): r.status for r in summary.records}
    # sdpa: 1024 -> 105 ms measured, predicted 4096 at 1.7 s > 1 s cap
    assert by[("sdpa", 1024)] == "ok" and by[("sdpa", 4096)] == "skipped" and by[("sdpa", 16384)] == "skipped"
    # vmisa is declared O(L): 4096 measured 1.7 s is over the cap but was predicted (linear) at 0.4 s
    assert by[("vmisa", 4096)] == "ok" and by[("vmisa", 16384)] == "skipped"


def test_selective_scan_is_swept_per_available_backend() -> None:
    cells = sweep.ops_cells(["selective_scan"], [256], 16, 1, ["fp32"], BASE)
    assert {c.scan_backend for c in cells} == {"torch", "reference"}


def test_bad_presets_and_ops_are_user_errors() -> None:
    with pytest.raises(UserError, match="preset"):
        sweep.get_preset("gpu-fast")
    with pytest.raises(UserError, match="unknown op"):
        sweep.ops_cells(["softmax"], [256], 16, 1, ["fp32"], BASE)


def test_cpu_default_preset_covers_every_model_and_a_1024_ladder() -> None:
    from vmibench.registry import list_models

    preset = sweep.get_preset("cpu-default")
    cells = sweep.expand_groups(preset.groups, replace(BASE, policy=preset.policy))
    at_224 = {c.model for c in cells if c.height == 224}
    assert at_224 == {m.name for m in list_models()}
    assert max(c.height for c in cells) >= 1024
    assert {c.model for c in cells if c.height == 1024} >= {"vminet_t", "mlla_t", "flatten_swin_t", "effvmamba_t"}


def test_budget_leaves_the_rest_for_a_resumed_run(tmp_path: Path, fake_worker) -> None:
    fake_worker(lambda s: _ok(5.0))
    db = str(tmp_path / "s.sqlite")
    cells = sweep.expand_groups([sweep.Group(models=("vminet_t", "deit_t"), resolutions=((64, 64), (96, 96)))], BASE)
    first = sweep.run_sweep(cells, db=db, budget_s=0.0)
    assert (first.measured, first.not_reached) == (0, 4)
    resumed = sweep.run_sweep(cells, db=db)
    assert (resumed.measured, resumed.skipped_existing) == (4, 0)
