"""The runner: typed cells and results, rounds, ordering, resume, retry, leases; real workers for a few cells."""

from __future__ import annotations

import json
import signal
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import ALLOC_MODEL, assert_peak_is_the_allocation

from vmibench.errors import UserError
from vmibench.measure.executor import LocalExecutor, describe_death, kernel_log_names_oom_kill, oom_kill_count
from vmibench.measure.interrupt import Interrupted
from vmibench.measure.runner import Runner
from vmibench.measure.timing import TimingPolicy
from vmibench.measure.workloads import Cell, Memory, MixerOp, ModelForward, Settings, WorkerResult
from vmibench.store import ResultStore
from vmibench.sweep import cap_predictor, plan_cells

QUICK = Settings(threads=1, policy=TimingPolicy.quick(), scan_backend="")


def cell(model: str = "vminet_t", size: int = 64, **settings: object) -> Cell:
    return Cell(ModelForward(model, size, size), replace(QUICK, **settings))  # type: ignore[arg-type]


def ok(ms: float, n: int = 5, **kw: object) -> WorkerResult:
    samples = tuple(ms * (1 + 0.01 * (i - n // 2)) for i in range(n))
    return WorkerResult(status="ok", samples_ms=samples, converged=True, warmup_iters=2,
                        memory=Memory(10.0, 100.0, None, "rss_hwm"), **kw)  # type: ignore[arg-type]  # fmt: skip


class FakeExecutor:
    """Answers cells from a function of (cell, round), recording the order it was asked in."""

    def __init__(self, outcome) -> None:  # type: ignore[no-untyped-def]
        self.outcome = outcome
        self.calls: list[tuple[int, Cell]] = []
        self.round = 0

    def run(self, cell: Cell, timeout_s: float) -> WorkerResult:
        self.calls.append((self.round, cell))
        return self.outcome(cell, self.round)

    def new_round(self) -> None:
        self.round += 1

    def close(self) -> None:
        pass


# -- typed specs and results ------------------------------------------------------------------------------------


def test_cells_and_results_round_trip_through_json() -> None:
    for c in (cell(), Cell(MixerOp("vmisa", 256, 64), QUICK)):
        assert Cell.from_json(c.to_json()) == c
    res = ok(3.0, params_m=1.5, env={"a": 1}, values={"ours_ms": [1.0]})
    assert WorkerResult.from_json(res.to_json()) == res
    # a round an older run left pending named the values `extra`
    assert WorkerResult.from_json('{"status": "ok", "extra": {"ours_ms": [1.0]}}').values == {"ours_ms": [1.0]}
    # identity ignores the timing policy (a longer budget measures the same cell) but not the settings
    assert cell().key("e") == replace(cell(), settings=replace(QUICK, policy=TimingPolicy())).key("e")
    assert cell().key("e") != cell(threads=2).key("e") != cell().key("other-env")


def test_plan_validates_everything_first_and_drops_duplicates() -> None:
    cells = plan_cells(["vminet_t", "deit_t", "vminet_t"], [(224, 224), (512, 512), (224, 224)], [1, 4], QUICK)
    assert len(cells) == 8 and {c.workload.batch for c in cells} == {1, 4}  # type: ignore[attr-defined]
    with pytest.raises(UserError, match="unknown model"):
        plan_cells(["vminet_t", "nope"], [(224, 224)], [1], QUICK)
    with pytest.raises(UserError, match="multiples of 16"):
        plan_cells(["deit_t"], [(200, 200)], [1], QUICK)
    (vim,) = plan_cells(["vim_t"], [(224, 224)], [1], replace(QUICK, scan_backend="auto"))
    assert vim.settings.scan_backend == "torch"  # 'auto' resolved at planning time: the key names what runs


# -- rounds, order, rows --------------------------------------------------------------------------------------


def test_rounds_pool_samples_with_a_ci_and_keep_every_sample(tmp_path: Path) -> None:
    ex = FakeExecutor(lambda c, r: ok([10.0, 14.0, 12.0][r], gmacs=0.5 if r == 0 else None))
    with ResultStore(tmp_path / "s.sqlite") as store:
        summary = Runner(store, rounds=3, executor=ex, seed=1).run([cell()])
        (row,) = summary.rows.values()
        assert row["status"] == "ok" and row["rounds"] == 3 and row["n_iters"] == 15
        assert row["latency_ms_ci_low"] <= row["latency_ms_median"] == 12.0 <= row["latency_ms_ci_high"]
        assert row["latency_ms_ci_high"] - row["latency_ms_ci_low"] > 1.0  # rounds disagree: a wide interval
        assert row["process_spread"] == pytest.approx(4.0 / 12.0) and row["gmacs"] == 0.5
        assert json.loads(row["timing_policy"]) == json.loads(json.dumps(TimingPolicy.quick().__dict__))
        samples = store.samples("latency")
        assert sorted(samples.groupby("round").size().tolist()) == [5, 5, 5]
        assert set(samples["row_id"]) == {row["row_id"]}
    # rounds split the budget: each round ran a third of the cell's time, and only the first counted FLOPs
    per_round = [c.settings for _, c in ex.calls]
    assert all(s.policy.max_time_s == pytest.approx(TimingPolicy.quick().max_time_s / 3) for s in per_round)
    assert [s.count_flops for s in per_round] == [True, False, False]


def test_rounds_visit_cells_in_a_new_random_order_with_ladders_ascending() -> None:
    ex = FakeExecutor(lambda c, r: ok(1.0))
    cells = [cell(m, s) for m in ("vminet_t", "deit_t", "mlla_t") for s in (64, 128, 256)]
    Runner(None, rounds=4, executor=ex, seed=3).run(cells)
    orders = [[c for r, c in ex.calls if r == k] for k in range(4)]
    assert all(sorted(c.describe() for c in o) == sorted(c.describe() for c in cells) for o in orders)
    assert len({tuple(c.describe() for c in o) for o in orders}) > 1  # not the same order every round
    for o in orders:
        for m in ("vminet_t", "deit_t", "mlla_t"):
            sizes = [c.workload.height for c in o if c.workload.model == m]  # type: ignore[attr-defined]
            assert sizes == sorted(sizes)


def test_failure_stops_the_larger_sizes_and_retry_failed_reopens_them(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite"
    timeout = WorkerResult(status="timeout", error="cell exceeded its budget")
    first = FakeExecutor(lambda c, r: timeout if c.workload.height == 96 else ok(3.0))
    cells = [cell(size=s) for s in (64, 96, 128, 160)]
    with ResultStore(db) as store:
        summary = Runner(store, rounds=2, executor=first).run(cells)
        rows = list(summary.rows.values())
        assert [(r["res"], r["status"], r["skip_reason"]) for r in rows] == [
            ("64", "ok", ""), ("96", "timeout", ""), ("128", "skipped", "after_failure"),
            ("160", "skipped", "after_failure")]  # fmt: skip
        assert "timeout at a smaller size" in rows[-1]["error"]
        # without --retry-failed nothing is measured again
        again = FakeExecutor(lambda c, r: ok(3.0))
        assert Runner(store, rounds=2, executor=again).run(cells).from_store == 4 and not again.calls
        retried = Runner(store, rounds=2, executor=again, retry_failed=True).run(cells)
        assert [r["status"] for r in retried.rows.values()] == ["ok"] * 4
        assert retried.measured == 3 and retried.from_store == 1
        assert len({c.describe() for _, c in again.calls}) == 3


def test_without_ladders_every_cell_runs_after_a_failure() -> None:
    timeout = WorkerResult(status="timeout", error="cell exceeded its budget")
    ex = FakeExecutor(lambda c, r: timeout if c.workload.height == 64 else ok(3.0))
    summary = Runner(None, executor=ex, stop_ladders=False).run([cell(size=s) for s in (64, 96)])
    assert [r[0].status for r in summary.results.values()] == ["timeout", "ok"]


def test_cap_skips_are_not_reopened_by_retry_failed(tmp_path: Path) -> None:
    ops = [Cell(MixerOp("sdpa", L, 32), QUICK) for L in (256, 1024, 4096)]
    ex = FakeExecutor(lambda c, r: ok(c.workload.seq_len**2 / 1e4))  # type: ignore[attr-defined]
    predict = cap_predictor([256, 1024, 4096], time_cap_s=1.0, mem_cap_mb=1e9)
    with ResultStore(tmp_path / "o.sqlite") as store:
        rows = Runner(store, executor=ex, cap_predictor=predict).run(ops).rows.values()
        assert [(r["status"], r["skip_reason"]) for r in rows] == [("ok", ""), ("ok", ""), ("skipped", "cap")]
        assert Runner(store, executor=ex, cap_predictor=predict, retry_failed=True).run(ops).measured == 0


def test_an_interrupted_run_resumes_at_the_round_it_stopped_in(tmp_path: Path) -> None:
    jobs = {"n": 0}

    def flaky(c: Cell, r: int) -> WorkerResult:
        jobs["n"] += 1
        if jobs["n"] == 4:  # third job of round 2: like SIGTERM arriving while a worker runs
            raise Interrupted(signal.SIGTERM, 0)
        return ok(5.0)

    cells = [cell(), cell("deit_t")]
    with ResultStore(tmp_path / "s.sqlite") as store:
        with pytest.raises(Interrupted):
            Runner(store, rounds=3, executor=FakeExecutor(flaky), seed=0).run(cells)
        assert store.read("latency").empty and len(store.read("pending")) == 3  # rounds 0, 0 and 1 kept
        assert store.read("leases").empty  # released on the way out
        resumed = FakeExecutor(lambda c, r: ok(5.0))
        summary = Runner(store, rounds=3, executor=resumed, seed=0).run(cells)
        assert len(resumed.calls) == 3  # 6 jobs in all, 3 done before the interrupt
        assert [r["rounds"] for r in summary.rows.values()] == [3, 3]
        assert store.read("pending").empty and len(store.read("latency")) == 2


def test_a_cell_leased_by_another_live_runner_is_waited_for_not_measured(tmp_path: Path) -> None:
    import threading

    from vmibench.env import capture
    from vmibench.measure.rows import pooled_record

    c, env = cell(), capture("cpu")
    key = c.key(env.key("cpu"))
    with ResultStore(tmp_path / "s.sqlite") as store:
        # another runner (alive: it has our pid) holds the cell's lease ...
        assert store.acquire_leases([key], "someone-else", stale_after_s=600) == ({key}, {})

        def other_runner_stores_its_row() -> None:  # ... and stores the cell's row a little later
            with ResultStore(tmp_path / "s.sqlite") as other:
                other.add(pooled_record(c, [ok(2.0)], env, env.key("cpu")), [[2.0]], cell_key=key)

        threading.Timer(1.5, other_runner_stores_its_row).start()
        ex = FakeExecutor(lambda cell_, r: ok(1.0))
        summary = Runner(store, executor=ex, log=lambda m: None).run([c])
        assert not ex.calls and summary.waited == 1 and summary.rows[key]["latency_ms_median"] == 2.0
        # a lease whose holder died is free at once
        store.acquire_leases(["x"], "ghost", 600)
        with sqlite3.connect(tmp_path / "s.sqlite") as conn:  # the ghost's pid: a process that does not exist
            conn.execute("UPDATE leases SET pid = 999999999 WHERE owner = 'ghost'")
        assert store.acquire_leases(["x"], "me", 600)[0] == {"x"}


# -- real workers ---------------------------------------------------------------------------------------------


def test_real_workers_give_complete_rows_and_failures_as_rows(tmp_path: Path) -> None:
    cells = [cell(), cell(size=70), Cell(ModelForward("vim_t", 64, 64), replace(QUICK, scan_backend="torch")),
             Cell(ModelForward("alloc_probe_t", 64, 64), replace(QUICK, imports=(str(ALLOC_MODEL),)))]  # fmt: skip
    with ResultStore(tmp_path / "s.sqlite") as store:
        summary = Runner(store, rounds=2).run(cells)
    good, bad, vim, alloc = summary.rows.values()
    assert good["status"] == "ok" and good["rounds"] == 2, good["error"]
    assert good["latency_ms_p10"] <= good["latency_ms_median"] <= good["latency_ms_p90"]
    assert good["latency_ms_ci_low"] <= good["latency_ms_median"] <= good["latency_ms_ci_high"]
    assert good["throughput_ips"] == pytest.approx(1000 / good["latency_ms_median"])
    assert good["mem_method"] in ("rss_hwm", "rss_sampled")
    assert_peak_is_the_allocation(alloc)  # the forward's known allocation, seen by the worker's memory probe
    assert good["params_m"] == pytest.approx(2.026408) and good["gmacs"] > 0  # context weights sized for 64x64
    assert good["timer"] == "perf_counter" and good["device_name"] and good["scan_backend"] == ""
    # VMINet cannot be built for 70x70: the worker's error is a row, with its traceback kept
    assert bad["status"] == "error" and "multiples of 32" in bad["error"] and "Traceback" in bad["error_detail"]
    assert vim["status"] == "ok" and vim["scan_backend"] == "torch"


def test_a_worker_past_its_deadline_is_a_timeout_row() -> None:
    slow = replace(QUICK, policy=TimingPolicy(max_time_s=60, min_time_s=60))
    ex = LocalExecutor()
    try:
        result = ex.run(cell(**{"policy": slow.policy}), timeout_s=3)
    finally:
        ex.close()
    assert result.status == "timeout" and "budget" in result.error


# cgroup v2 memory.events and kernel OOM-killer lines as the kernel writes them (pid 4242 was OOM-killed)
EVENTS = "low 0\nhigh 0\nmax 12\noom 3\noom_kill {}\noom_group_kill 0\n"
DMESG_KILLED = (
    "[12345.678001] python invoked oom-killer: gfp_mask=0x140cca(GFP_HIGHUSER_MOVABLE|__GFP_COMP), order=0, "
    "oom_score_adj=0\n"
    "[12345.678002] CPU: 3 PID: 4243 Comm: python Not tainted 6.1.0-18-amd64 #1  Debian 6.1.76-1\n"
    "[12345.678900] oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,"
    "task_memcg=/user.slice/user-0.slice/session-1.scope,task=python,pid=4242,uid=0\n"
    "[12345.678901] Out of memory: Killed process 4242 (python) total-vm:9061236kB, anon-rss:7862840kB, "
    "file-rss:4kB, shmem-rss:0kB, UID:0 pgtables:15520kB oom_score_adj:0\n"
)
DMESG_UNRELATED = (
    "[    1.234567] systemd[1]: Started Journal Service.\n"
    "[  200.000001] python[4242]: segfault at 0 ip 00007f0000000000 sp 00007ffc00000000 error 4\n"
    "[12345.678901] Memory cgroup out of memory: Killed process 42420 (python) total-vm:9061236kB, anon-rss:1kB\n"
    "[12345.678902] oom-kill:constraint=CONSTRAINT_MEMCG,task=python,pid=14242,uid=0\n"
)


def test_oom_kills_are_read_from_cgroup_events_and_kernel_log_lines() -> None:
    assert oom_kill_count(EVENTS.format(1)) == 1 and oom_kill_count(EVENTS.format(27)) == 27
    assert oom_kill_count("low 0\nhigh 0\nmax 0\noom 0\noom_group_kill 0\n") is None  # oom_group_kill only
    assert oom_kill_count("") is None and oom_kill_count(None) is None
    assert kernel_log_names_oom_kill(DMESG_KILLED, 4242)
    assert kernel_log_names_oom_kill(DMESG_KILLED.splitlines()[2], 4242)  # the oom-kill: summary line alone
    assert kernel_log_names_oom_kill(DMESG_KILLED.splitlines()[3], 4242)  # the Killed process line alone
    assert kernel_log_names_oom_kill("[1.0] Memory cgroup out of memory: Killed process 4242 (python) x\n", 4242)
    assert not kernel_log_names_oom_kill(DMESG_KILLED, 424) and not kernel_log_names_oom_kill(DMESG_KILLED, 4243)
    assert not kernel_log_names_oom_kill(DMESG_UNRELATED, 4242) and not kernel_log_names_oom_kill("", 4242)


def test_a_sigkill_is_called_an_oom_only_on_the_kernels_word(monkeypatch) -> None:
    """describe_death on real memory.events and dmesg text (only the reading of the files is replaced)."""
    import vmibench.measure.executor as executor

    monkeypatch.setattr(executor, "read_memory_events", lambda: EVENTS.format(3))
    monkeypatch.setattr(executor, "read_kernel_log", lambda: DMESG_UNRELATED)
    assert describe_death(-9, "", 4242, 3) == ("crashed", "worker killed by SIGKILL")  # counter unchanged
    assert describe_death(-9, "", 4242, 2)[0] == "oom"  # the cgroup's counter rose
    assert describe_death(-9, "", 4242, None)[0] == "crashed"  # no count before: the counter cannot say
    monkeypatch.setattr(executor, "read_kernel_log", lambda: DMESG_UNRELATED + DMESG_KILLED)
    assert describe_death(-9, "", 4242, 3)[0] == "oom"  # the kernel log names the pid
    assert describe_death(-9, "", 4243, 3)[0] == "crashed"  # ... and only that pid
    monkeypatch.setattr(executor, "read_memory_events", lambda: None)  # no cgroup v2 here
    assert describe_death(-9, "", 4242, None)[0] == "oom" and describe_death(-9, "", 77, None)[0] == "crashed"
    assert describe_death(-14, "", 4242, 3)[0] == "timeout"
    assert describe_death(1, "Traceback\nValueError: boom\n", 4242, 3)[1].endswith("status 1: ValueError: boom")
