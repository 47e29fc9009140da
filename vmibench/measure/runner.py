"""The runner: one loop for `latency`, `sweep`, `ops` and `check timer` -- order, rounds, leases, resume, supervision.

* **Rounds.**  Every cell is measured in ``rounds`` separate worker processes.  The cells are visited
  round-robin, in a fresh random order each round (sizes of one ladder stay ascending), so slow drift of a shared
  machine falls on every model alike instead of on whichever ran last (Kalibera and Jones, "Rigorous benchmarking
  in reasonable time", ISMM 2013).  Each round gets a new zygote (:mod:`vmibench.measure.worker`): a new process
  image.  Rounds split a cell's time budget (:func:`vmibench.measure.timing.split_policy`; a kind may say otherwise,
  :meth:`~vmibench.measure.cells.Workload.round_policy`).
* **Resume.**  A cell is identified by (environment key, workload, settings) -- :meth:`Cell.key`.  A cell with a
  stored row is not measured again unless ``force``, or unless the row has fewer rounds than this run asks for: then
  the missing rounds are measured and pooled with the stored ones (top-up), and the new row supersedes it;
  ``retry_failed`` re-opens failed cells (error, timeout, crashed) and the cells skipped because of them.  A finished
  round is kept in the store's ``pending`` table, so an interrupted run resumes at the round it stopped in.
* **Ladders.**  Along a resolution or sequence-length ladder (sweeps; ``stop_ladders``) a failure (oom, timeout,
  crash) stops the larger sizes, stored as ``skipped`` with ``skip_reason = after_failure``; a cap prediction
  stops them with ``skip_reason = cap``.  ``vmibench latency`` is a sweep without a ladder: every cell runs.
* **Leases.**  Before measuring, the runner leases its cells in the store; a cell leased by another live runner is
  not measured twice: this runner waits for its row (or takes the cell over if that runner dies).
* **Supervision.**  SIGINT and SIGTERM are trapped: the workers' process groups are killed, leases released, and
  :class:`Interrupted` raised for the CLI to report.  Workers die with the runner even on SIGKILL (see the worker).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from vmibench.env import Environment, capture
from vmibench.measure.cells import Cell, WorkerResult
from vmibench.measure.eta import RunClock
from vmibench.measure.executor import Executor, LocalExecutor
from vmibench.measure.interrupt import Interrupted
from vmibench.measure.rows import failure_record, pooled_record, stored_results
from vmibench.records import (
    FAILED,
    SKIP_AFTER_FAILURE,
    SKIP_CAP,
    STATUS_CRASHED,
    STATUS_OK,
    STATUS_OOM,
    STATUS_SKIPPED,
    STATUS_TIMEOUT,
    RunRecord,
)

# predict(cell, first round's median ms, its peak memory MB) -> reason the next size of its ladder is over a cap
CapPredictor = Callable[[Cell, float, float], str]
# progress(description of the job about to run, jobs done, jobs planned, predicted seconds left)
Progress = Callable[[str, int, int, float], None]
LONG_RUN_S = 600.0  # a run predicted to take longer says so before it starts


@dataclass
class RunSummary:
    """What a run did, and every requested cell's row: stored before (``from_store``) or new."""

    rows: dict[str, dict[str, Any]] = field(default_factory=dict)  # cell_key -> newest row, in request order
    keys: list[str] = field(default_factory=list)  # cell keys in request order (cells without a row included)
    measured: int = 0
    failed: int = 0
    skipped: int = 0
    from_store: int = 0
    waited: int = 0  # cells another runner measured while this one waited
    not_reached: int = 0  # cells left for a resumed run when the time budget ran out
    results: dict[str, list[WorkerResult]] = field(default_factory=dict)  # unstored runs: raw results per cell
    adaptive_passes: list[int] = field(default_factory=list)  # cells topped up in each adaptive pass
    open_comparisons: int | None = None  # pre-registered comparisons still undecided after the adaptive phase


@dataclass
class _CellState:
    cell: Cell
    key: str
    results: dict[int, WorkerResult] = field(default_factory=dict)  # round -> ok result
    done: bool = False
    run_id: str = ""  # a topped-up row keeps the run of its first rounds (their round i pair with that run's)


class Runner:
    """Measures cells into a store (or, with ``store=None``, only returns their raw results)."""

    def __init__(
        self,
        store: Any = None,
        *,
        rounds: int = 1,
        cell_timeout_s: float = 600.0,
        force: bool = False,
        retry_failed: bool = False,
        budget_s: float | None = None,
        cap_predictor: CapPredictor | None = None,
        stop_ladders: bool = True,
        executor: Executor | None = None,
        progress: Progress | None = None,
        seed: int | None = None,
        log: Callable[[str], None] | None = None,
        reference: Any = None,
    ) -> None:
        if rounds < 1:
            raise ValueError("rounds must be >= 1")
        self.store = store
        self.rounds = rounds
        self.cell_timeout_s = cell_timeout_s
        self.force = force
        self.retry_failed = retry_failed
        self.budget_s = budget_s
        self.cap_predictor = cap_predictor
        self.stop_ladders = stop_ladders
        self.executor = executor
        self.progress = progress
        self.rng = random.Random(seed)
        self.log = log or (lambda msg: print(msg, file=sys.stderr))
        self.owner = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._stored = 0
        self._last_heartbeat = time.monotonic()
        self._foreign: dict[str, _CellState] = {}
        # a read-only store whose rows count as stored too: a scaled-out job measures into its own shard and
        # skips what the main store already has
        self.reference = reference

    # -- public ---------------------------------------------------------------------------------------------------

    def run(self, cells: Sequence[Cell]) -> RunSummary:
        """Measure ``cells`` (duplicates dropped), resuming from the store; see the module docstring."""
        cells = list(dict.fromkeys(cells))
        summary = RunSummary()
        if not cells:
            return summary
        envs = {c.settings.device: capture(c.settings.device) for c in cells}
        states = [_CellState(c, c.key(envs[c.settings.device].key(c.settings.device))) for c in cells]
        summary.keys = [s.key for s in states]
        with self._trap_signals(), self._executor(max(c.settings.threads for c in cells)) as executor:
            try:
                todo = self._resume(states, summary)
                self._measure(todo, envs, executor, summary)
                self._wait_for_others(states, envs, executor, summary)
            finally:
                if self.store is not None:
                    self.store.release_leases(self.owner)
        if self.store is not None:
            summary.rows = self.stored_rows(cells, summary.keys)
        return summary

    def stored_rows(self, cells: Sequence[Cell], keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The newest stored row of each of ``cells`` (whose keys are ``keys``), in that order."""
        stored = self._stored_rows(_CellState(c, k) for c, k in zip(cells, keys, strict=True))
        return {k: stored[k] for k in keys if k in stored}

    def _stored_rows(self, states: Iterable[_CellState]) -> dict[str, dict[str, Any]]:
        """The newest stored row of each cell that has one, by cell key (each workload's own table)."""
        assert self.store is not None
        by_table: dict[str, list[str]] = {}
        for s in states:
            by_table.setdefault(s.cell.workload.TABLE, []).append(s.key)
        rows: dict[str, dict[str, Any]] = {}
        for table, keys in by_table.items():
            if self.reference is not None:
                rows.update(self.reference.latest_rows(table, keys))
            rows.update(self.store.latest_rows(table, keys))
        return rows

    def _load_pending(self, states: Sequence[_CellState]) -> None:
        """Give each cell the rounds an earlier, interrupted run finished for it."""
        assert self.store is not None
        by_key = {s.key: s for s in states}
        for key, rounds in self.store.pending(by_key).items():
            by_key[key].results = {r: WorkerResult.from_json(text) for r, text in rounds.items() if r < self.rounds}

    # -- resume and leases -------------------------------------------------------------------------------------------

    def _short(self, state: _CellState, row: dict[str, Any]) -> bool:
        """A stored ok row with fewer rounds than this run asks for: it is topped up, not taken as it is (unless
        its kind says rounds do not add up, as a max-batch search's do not)."""
        return bool(state.cell.workload.TOP_UP and row.get("status") == STATUS_OK
                    and int(row.get("rounds") or 0) < self.rounds and row.get("row_id"))  # fmt: skip

    def _reopen(self, state: _CellState, row: dict[str, Any]) -> bool:
        """Whether a stored row's cell is measured again (from scratch, or topped up when short of rounds)."""
        if self.force or self._short(state, row):
            return True
        if not self.retry_failed:
            return False
        status = row.get("status")
        return status in FAILED or (status == STATUS_SKIPPED and row.get("skip_reason") == SKIP_AFTER_FAILURE)

    def _resume(self, states: list[_CellState], summary: RunSummary) -> list[_CellState]:
        """Cells to measure now: no stored row (or re-opened), leased by this runner; finished rounds loaded."""
        if self.store is None:
            return states
        stored = self._stored_rows(states)
        todo = [s for s in states if s.key not in stored or self._reopen(s, stored[s.key])]
        summary.from_store = len(states) - len(todo)
        if self.force or self.retry_failed:
            self.store.drop_pending([s.key for s in todo if s.key in stored and not self._short(s, stored[s.key])])
        if not self.force:
            self._load_stored_rounds([s for s in todo if s.key in stored and self._short(s, stored[s.key])], stored)
        stale_after = max(3 * self.cell_timeout_s, 600.0)
        mine, theirs = self.store.acquire_leases([s.key for s in todo], self.owner, stale_after)
        self._foreign = {s.key: s for s in todo if s.key in theirs}
        if theirs:
            pids = ", ".join(str(p) for p in sorted(set(theirs.values())))
            self.log(f"{len(theirs)} cell(s) are being measured by another runner (pid {pids}) on this store: "
                     "waiting for their rows instead of measuring them twice")  # fmt: skip
        todo = [s for s in todo if s.key in mine]
        self._load_pending(todo)
        return todo

    def _load_stored_rounds(self, states: list[_CellState], stored: dict[str, dict[str, Any]]) -> None:
        """Top-up: a short row's rounds become this run's first rounds, so only the missing ones are measured and
        the row is rebuilt from all of them.  Stored rows of a cell key share its environment (the key includes
        it), so rounds from another environment are never pooled."""
        assert self.store is not None
        for s in states:
            row = stored[s.key]
            samples = self.store.samples(s.cell.workload.TABLE, [int(row["row_id"])])
            by_round = [list(g["ms"].astype(float)) for _, g in samples.groupby("round", sort=True)]
            s.results = dict(enumerate(stored_results(row, by_round)))
            s.run_id = str(row.get("run_id") or "")

    def _wait_for_others(
        self, states: list[_CellState], envs: dict[str, Environment], executor: Executor, summary: RunSummary
    ) -> None:
        """Wait until every cell leased by another runner has its row; take over cells whose runner died."""
        foreign = dict(self._foreign)
        while foreign and self.store is not None:
            time.sleep(1.0)
            for key in self._stored_rows(foreign.values()):
                foreign.pop(key, None)
                summary.waited += 1
            if not foreign:
                break
            mine, _ = self.store.acquire_leases(list(foreign), self.owner, max(3 * self.cell_timeout_s, 600.0))
            if mine:
                taken = [foreign.pop(k) for k in list(foreign) if k in mine]
                self.log(f"took over {len(taken)} cell(s) whose runner stopped")
                self._load_pending(taken)
                self._measure(taken, envs, executor, summary)

    # -- measuring -----------------------------------------------------------------------------------------------

    def _order(self, states: list[_CellState]) -> list[_CellState]:
        """A fresh random order, with each ladder's slots given to its cells in ascending size."""
        order = list(states)
        self.rng.shuffle(order)
        ladders: dict[tuple[Any, ...], list[_CellState]] = {}
        for s in order:
            ladders.setdefault(s.cell.ladder(), []).append(s)
        ascending = {k: iter(sorted(v, key=lambda s: s.cell.workload.size())) for k, v in ladders.items()}
        return [next(ascending[s.cell.ladder()]) for s in order]

    def _measure(
        self, todo: list[_CellState], envs: dict[str, Environment], executor: Executor, summary: RunSummary
    ) -> None:
        deadline = None if self.budget_s is None else time.monotonic() + self.budget_s
        # ladder -> (size that failed or was capped, skip_reason, message): larger sizes not yet measured are skipped
        stopped: dict[tuple[Any, ...], tuple[float, str, str]] = {}
        total = sum(self.rounds - len(s.results) for s in todo)
        done_jobs = 0
        clock = RunClock(self.rounds)
        predicted = clock.remaining_s(self._jobs_left(todo, 0), self.rounds)
        if predicted > LONG_RUN_S:
            self.log(f"{total} jobs ({len(todo)} cells x up to {self.rounds} rounds) are predicted to take up to "
                     f"{predicted / 60:.0f} min from their timing budgets; --budget-min caps a run, and a rerun "
                     "resumes it")  # fmt: skip
        for rnd in range(self.rounds):
            active = [s for s in todo if not s.done]
            if not active:
                break
            if rnd > 0:
                executor.new_round()  # a new process image per round (round 0 may reuse a warm zygote)
            for state in self._order(active):
                if state.done:
                    continue
                ladder = state.cell.ladder()
                stop = stopped.get(ladder)
                if stop is not None and state.cell.workload.size() > stop[0] and not state.results:
                    _, reason, message = stop
                    self._finish_failure(state, envs, STATUS_SKIPPED, message, skip_reason=reason, summary=summary)
                    continue
                if rnd not in state.results:
                    if deadline is not None and time.monotonic() > deadline:
                        summary.not_reached = sum(1 for s in todo if not s.done)
                        self.log(f"time budget used up: {summary.not_reached} cell(s) left for a resumed run")
                        return
                    if self.progress is not None:
                        eta = clock.remaining_s(self._jobs_left(todo, rnd), self.rounds - rnd - 1)
                        self.progress(f"round {rnd + 1}/{self.rounds} {state.cell.describe()}", done_jobs, total, eta)
                    started = time.monotonic()
                    result = self._run_one(executor, state.cell, rnd)
                    clock.observe(state.key, state.cell, rnd == 0, time.monotonic() - started)
                    done_jobs += 1
                    self._heartbeat()
                    if not result.ok:
                        self._finish_failure(state, envs, result.status, result.error, detail=result.error_detail,
                                             summary=summary)  # fmt: skip
                        if self.stop_ladders and result.status in (STATUS_OOM, STATUS_TIMEOUT, STATUS_CRASHED):
                            stopped[ladder] = (state.cell.workload.size(), SKIP_AFTER_FAILURE,
                                               f"not run: {result.status} at a smaller size "
                                               f"({state.cell.describe()})")  # fmt: skip
                        continue
                    state.results[rnd] = result
                    if self.store is not None and self.rounds > 1:
                        self.store.save_pending(state.key, rnd, result.to_json())
                if rnd == 0 and self.cap_predictor is not None and 0 in state.results:
                    first = state.results[0]
                    median = sorted(first.samples_ms)[len(first.samples_ms) // 2] if first.samples_ms else 0.0
                    reason = self.cap_predictor(state.cell, median, first.memory.peak_mb if first.memory else 0.0)
                    if reason:
                        stopped[ladder] = (state.cell.workload.size(), SKIP_CAP, reason)
                if len(state.results) >= self.rounds:
                    self._finish_ok(state, envs, summary)
        if self.progress is not None:
            self.progress("done", done_jobs, total, 0.0)

    def _jobs_left(self, todo: list[_CellState], from_round: int) -> list[tuple[str, Cell, bool]]:
        """(key, cell, first round?) of every job not yet run, from round ``from_round`` on."""
        return [(s.key, s.cell, r == 0) for s in todo if not s.done for r in range(from_round, self.rounds)
                if r not in s.results]  # fmt: skip

    def _heartbeat(self) -> None:
        """Renew this runner's leases now and then, so a runner on another host sees them as alive."""
        now = time.monotonic()
        if self.store is not None and now - self._last_heartbeat > 30.0:
            self.store.renew_leases(self.owner)
            self._last_heartbeat = now

    def _run_one(self, executor: Executor, cell: Cell, rnd: int) -> WorkerResult:
        settings = replace(cell.settings, policy=cell.workload.round_policy(cell.settings.policy, self.rounds),
                           count_flops=cell.settings.count_flops and rnd == 0)  # fmt: skip
        return executor.run(replace(cell, settings=settings), self.cell_timeout_s)

    def _finish_ok(self, state: _CellState, envs: dict[str, Environment], summary: RunSummary) -> None:
        results = [state.results[r] for r in sorted(state.results)]
        state.done = True
        summary.measured += 1
        if self.store is None or not state.cell.workload.TABLE:
            summary.results[state.key] = results
            return
        env = _env_of(results[0], envs[state.cell.settings.device])
        rec = pooled_record(state.cell, results, env, env.key(state.cell.settings.device), rounds=self.rounds)
        companions = state.cell.workload.companion_rows(state.cell.settings, results)
        self._store(rec, [list(r.samples_ms) for r in results], state.key, run_id=state.run_id, companions=companions)

    def _finish_failure(
        self,
        state: _CellState,
        envs: dict[str, Environment],
        status: str,
        error: str,
        *,
        summary: RunSummary,
        detail: str = "",
        skip_reason: str = "",
    ) -> None:
        state.done = True
        if status == STATUS_SKIPPED:
            summary.skipped += 1
        else:
            summary.failed += 1
        if self.store is None or not state.cell.workload.TABLE:
            summary.results[state.key] = [WorkerResult(status=status, error=error, error_detail=detail)]
            return
        # A crashed worker reports no environment: the runner's own capture for the cell's device stands in
        # (the CUDA device's name, not the CPU's, for a CUDA cell).
        env = envs[state.cell.settings.device]
        rec = failure_record(state.cell, env, env.key(state.cell.settings.device), status, error, detail=detail,
                             skip_reason=skip_reason, rounds=self.rounds)  # fmt: skip
        self._store(rec, [], state.key)

    def _store(
        self,
        rec: RunRecord,
        samples: list[list[float]],
        key: str,
        run_id: str = "",
        companions: dict[str, list[dict[str, Any]]] | None = None,
    ) -> None:
        assert self.store is not None
        rec.run_id = run_id or self.owner
        # The row keeps the identity the runner planned and resumes by.  The worker's own environment (in the
        # row's columns) can differ from the runner's capture -- a commit made while a run is in progress -- and
        # a key recomputed from it would leave the row unfound by this run and measured again by the next.
        rec.cell_key = key
        self.store.add(rec, samples, cell_key=key, companions=companions)
        self._stored += 1

    # -- supervision -----------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _executor(self, threads: int) -> Iterator[Executor]:
        """The given executor (its owner closes it) or a local one closed here."""
        if self.executor is not None:
            yield self.executor
            return
        executor = LocalExecutor(threads=threads)
        try:
            yield executor
        finally:
            executor.close()

    @contextlib.contextmanager
    def _trap_signals(self) -> Iterator[None]:
        """SIGINT/SIGTERM -> :class:`Interrupted` (after the ``finally`` blocks kill workers and free leases)."""
        import threading

        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum: int, _frame: object) -> None:
            # ignore repeats while cleaning up; the first one decides the exit status
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            raise Interrupted(signum, self._stored)

        old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        except Interrupted as exc:
            exc.stored = self._stored
            raise
        finally:
            for s, h in old.items():
                signal.signal(s, h)


def _env_of(result: WorkerResult, fallback: Environment) -> Environment:
    return Environment(**result.env) if result.env else fallback
