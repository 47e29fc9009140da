"""Cross-checks of the harness: the timer comparison and the repeated model comparison (logic with a fake
executor; the worker's alternating timer loop in this process)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from vmibench.measure.crosscheck import repeat_comparison, timer_crosscheck
from vmibench.measure.timing import TimingPolicy
from vmibench.measure.workloads import Cell, Settings, TimerCrosscheck, WorkerResult

BASE_MS = {"vminet_t": 10.0, "mlla_t": 40.0, "flatten_swin_t": 50.0}


class Fake:
    """Answers from ``answer(cell, run, round)``: every run visits each of ``per_round`` cells once per round."""

    def __init__(self, answer, per_round: int = 3, rounds: int = 3) -> None:  # type: ignore[no-untyped-def]
        self.answer, self.per_round, self.rounds, self.calls = answer, per_round, rounds, 0

    def run(self, cell: Cell, timeout_s: float) -> WorkerResult:
        n, self.calls = self.calls, self.calls + 1
        per_run = self.per_round * self.rounds
        return self.answer(cell, n // per_run, (n % per_run) // self.per_round)

    def new_round(self) -> None:
        pass

    def close(self) -> None:
        pass


def _samples(ms: float) -> tuple[float, ...]:
    return tuple(ms * f for f in (0.98, 0.99, 1.0, 1.01, 1.02))


def test_repeated_runs_agree_when_only_the_machine_drifts() -> None:
    drift = {(0, 0): 1.0, (0, 1): 1.3, (0, 2): 0.9, (1, 0): 1.2, (1, 1): 0.8, (1, 2): 1.1}

    def answer(cell: Cell, run: int, rnd: int) -> WorkerResult:
        ms = BASE_MS[cell.workload.model] * drift[(run, rnd)]  # type: ignore[attr-defined]
        return WorkerResult(status="ok", samples_ms=_samples(ms))

    frame = repeat_comparison(list(BASE_MS), (224, 224), runs=2, rounds=3, executor=Fake(answer))
    assert len(frame) == 6 and set(frame["run"]) == {1, 2}
    mlla = frame[frame["model"] == "mlla_t"]
    # a drift common to every model in a round cancels in the paired ratio: 4.0 in both runs, intervals agree
    assert mlla["ratio"].tolist() == pytest.approx([4.0, 4.0], rel=0.02)
    assert (mlla["ci_low"] <= mlla["ratio"]).all() and (mlla["ratio"] <= mlla["ci_high"]).all()
    assert frame["overlap_all_runs"].all()


def test_a_ratio_that_moved_between_runs_is_flagged() -> None:
    def answer(cell: Cell, run: int, rnd: int) -> WorkerResult:
        ms = BASE_MS[cell.workload.model] * (1.5 if run == 1 and cell.workload.model == "mlla_t" else 1.0)  # type: ignore[attr-defined]
        return WorkerResult(status="ok", samples_ms=_samples(ms))

    frame = repeat_comparison(list(BASE_MS), (224, 224), runs=2, rounds=3, executor=Fake(answer))
    overlap = frame.drop_duplicates("model").set_index("model")["overlap_all_runs"]
    assert not overlap["mlla_t"] and overlap["flatten_swin_t"] and overlap["vminet_t"]


def test_timer_crosscheck_table_from_each_process() -> None:
    def answer(cell: Cell, run: int, rnd: int) -> WorkerResult:
        ms = BASE_MS[cell.workload.model]  # type: ignore[attr-defined]
        return WorkerResult(status="ok", values={"ours_ms": [ms] * 3, "timer_ms": [ms * 1.05] * 3})

    frame = timer_crosscheck(["vminet_t", "mlla_t"], 224, threads=1, repeats=2, executor=Fake(answer)).set_index(
        "model"
    )
    assert frame.loc["mlla_t", "vmibench_over_timer"] == pytest.approx(1 / 1.05)
    assert frame.loc["mlla_t", "ratio_agreement"] == pytest.approx(1.0) and frame["within_10pct"].all()
    assert (frame["rounds"] == 6).all()


def test_the_worker_alternates_both_timers_on_one_model() -> None:
    from vmibench.measure.worker import measure_cell

    settings = Settings(threads=1, policy=TimingPolicy.quick(), count_flops=False, scan_backend="")
    cell = Cell(TimerCrosscheck("vminet_t", 64, 64, alternations=2, timer_min_run_time=0.05), settings)
    result = measure_cell(replace(cell))
    assert result.ok and len(result.values["ours_ms"]) == 2 and len(result.values["timer_ms"]) == 2
    assert all(v > 0 for v in result.values["ours_ms"] + result.values["timer_ms"])
