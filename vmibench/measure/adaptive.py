"""Rounds go where verdicts are open: after a run's minimum rounds, measure more of the undecided comparisons.

Each pass evaluates the pre-registered comparisons (:mod:`vmibench.questions`) on the rows measured so far at a 99%
level from 5 rounds on (:data:`vmibench.analysis.calibration.LOOK_LEVEL`, ``FIRST_LOOK``; the report then gives 95%
intervals) and takes the ones still undecided.  What one more round of a comparison measures is its *unit*
(:func:`units_of`):

* a ratio whose two cells can share a process is measured as their interleaved pair
  (:mod:`vmibench.measure.kinds.pair`): both cells alternated call by call in one worker per round, so the shared
  host's moment-to-moment speed cancels in the ratio.  The pair starts with the run's minimum rounds, and its own
  row (table ``pairs``) then decides the comparison;
* an exponent tops up both ladders (the runner's top-up: the new round is pooled with the stored ones, in a fresh
  random order, so the cells of one comparison are measured in the same pass).

Each pass adds one round to every chosen unit, up to ``max_rounds``, and spends at most half of the budget left
(:data:`PASS_SHARE`); passes repeat until every comparison is decided, the round cap is reached or the time budget is
gone.  When the budget cannot pay for every open comparison,
the undecided ones go first (a comparison that looks decided but has too few rounds to stop comes after), cheapest
first within each, so the budget buys as many verdicts as it can.  The calibration study simulates
this whole procedure (:mod:`vmibench.analysis.calibration`), because stopping when an interval looks decided changes
its coverage.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from vmibench.measure.cells import Cell
from vmibench.measure.kinds import InterleavedPair, MixerOp, ModelForward, pair_cell
from vmibench.measure.rows import TimedWorkload
from vmibench.measure.runner import Runner
from vmibench.questions import EXPONENT, OPS, RATIO, Comparison

PASS_SHARE = 0.5  # the share of the remaining budget one pass may spend


@dataclass
class Settled:
    """What the adaptive phase did: passes, cells topped up per pass, and the final verdict table."""

    passes: list[int] = field(default_factory=list)  # units (cells or pairs) measured in each pass
    open_after: int = 0
    verdicts: object = None  # pandas DataFrame of vmibench.analysis.comparisons.evaluate


def cells_of(comparison: Comparison, cells: Sequence[Cell]) -> list[Cell]:
    """The planned cells a comparison rests on (a ratio: its two cells; an exponent: both ladders)."""
    names = {comparison.a, comparison.b} - {""}
    out = []
    for cell in cells:
        wl = cell.workload
        if comparison.table == OPS and isinstance(wl, MixerOp) and wl.op in names:
            size = wl.seq_len
        elif comparison.table != OPS and type(wl) is ModelForward and wl.model in names:  # not a profile cell
            if wl.batch != 1 or wl.mode != "infer" or wl.height != wl.width:
                continue
            size = wl.height
        else:
            continue
        if comparison.kind == EXPONENT or size == comparison.at:
            out.append(cell)
    return out


def units_of(comparison: Comparison, cells: Sequence[Cell]) -> list[Cell]:
    """What one more round of ``comparison`` measures: the interleaved pair of a ratio's two cells where they can
    share a process (:func:`vmibench.measure.kinds.pair_cell`), else the cells it rests on."""
    mine = cells_of(comparison, cells)
    if comparison.kind == RATIO:
        by_name = {c.workload.name(): c for c in mine if isinstance(c.workload, TimedWorkload)}
        if comparison.a in by_name and comparison.b in by_name:
            pair = pair_cell(by_name[comparison.a], by_name[comparison.b])
            if pair is not None:
                return [pair]
    return mine


def read_verdicts(
    store: object, cells: Sequence[Cell], comparisons: Sequence[Comparison], margin: float, level: float = 0.95
) -> tuple[object, dict[Cell, float], dict[Cell, int]]:
    """Evaluate ``comparisons`` on the newest stored rows of ``cells`` (one environment: the cells' keys; pairs
    among them are used for their ratios); also each cell's cost of one more round (its row's wall time per round)
    and its stored rounds."""
    import pandas as pd

    from vmibench.analysis.comparisons import evaluate
    from vmibench.env import capture

    envs = {c.settings.device: capture(c.settings.device) for c in cells}
    keys: dict[str, dict[str, Cell]] = {}
    for c in cells:
        keys.setdefault(c.workload.TABLE, {})[c.key(envs[c.settings.device].key(c.settings.device))] = c
    frames, samples, cost, have = {}, {}, {}, {}
    for table, by_key in keys.items():
        rows = store.latest_rows(table, by_key)  # type: ignore[attr-defined]
        frames[table] = pd.DataFrame(list(rows.values()))
        samples[table] = store.samples(table, [int(r["row_id"]) for r in rows.values()])  # type: ignore[attr-defined]
        for key, row in rows.items():
            if row.get("status") == "ok" and row.get("rounds"):
                have[by_key[key]] = int(row["rounds"])
                if row.get("wall_s"):
                    cost[by_key[key]] = float(row["wall_s"]) / int(row["rounds"])
    return evaluate(comparisons, frames, samples, margin=margin, level=level), cost, have


def settle(
    store: object,
    cells: Sequence[Cell],
    comparisons: Sequence[Comparison],
    *,
    min_rounds: int,
    max_rounds: int,
    budget_s: float | None,
    runner_factory: Callable[[int], Runner],
    margin: float = 0.10,
    log: Callable[[str], None] = print,
) -> Settled:
    """Measure one more round of the units of open comparisons per pass, until decided, capped or out of budget."""
    from vmibench.analysis.calibration import FIRST_LOOK, LOOK_LEVEL
    from vmibench.analysis.intervals import decided

    result = Settled()
    deadline = None if budget_s is None else time.monotonic() + budget_s
    units = {c: units_of(c, cells) for c in comparisons}
    # a pair's members are its comparison's two cells: their costs price the pair's first rounds
    members = {u: cells_of(c, cells) for c, us in units.items() for u in us if isinstance(u.workload, InterleavedPair)}
    known = list(dict.fromkeys([*cells, *(u for us in units.values() for u in us)]))

    chosen: dict[Cell, int] = {}  # unit -> rounds it should have after the pass
    stuck: set[Cell] = set()  # units a pass did not bring to their rounds (failed, or left for a resumed run)
    while True:
        # stop a comparison on a stricter look than the report's level (see LOOK_LEVEL: coverage after stopping)
        verdicts, cost, have = read_verdicts(store, known, comparisons, margin, LOOK_LEVEL)
        result.verdicts = verdicts
        stuck |= {u for u, target in chosen.items() if have.get(u, 0) < target}
        # a comparison is settled only once decided on at least FIRST_LOOK rounds (see the calibration study)
        looks = dict(zip(comparisons, verdicts["verdict"], strict=True))  # type: ignore[index]
        open_ = [c for c, k in zip(comparisons, verdicts["rounds"], strict=True)  # type: ignore[index]
                 if not decided(looks[c]) or k < FIRST_LOOK]  # fmt: skip
        left = None if deadline is None else deadline - time.monotonic()
        prices = {u: _price(u, members.get(u, ()), cost, have, min_rounds) for us in units.values() for u in us}
        usable = {c: [u for u in units[c] if u not in stuck and have.get(u, 0) < max_rounds] for c in open_}
        chosen = plan_pass([(c, decided(looks[c])) for c in open_], usable, prices, left)
        if not chosen:
            break
        n_pairs = sum(isinstance(u.workload, InterleavedPair) for u in chosen)
        log(f"adaptive pass: {len(open_)} comparison(s) open, measuring {len(chosen)} unit(s) one more round "
            f"({n_pairs} interleaved pair(s))")  # fmt: skip
        for target in sorted(set(chosen.values())):
            runner_factory(target).run([u for u, t in chosen.items() if t == target])
        result.passes.append(len(chosen))
        if deadline is not None and time.monotonic() > deadline:
            break
    result.verdicts, _, _ = read_verdicts(store, known, comparisons, margin)
    result.open_after = int(sum(not decided(v) for v in result.verdicts["verdict"]))  # type: ignore[index]
    return result


def choose(
    open_: Sequence[tuple[Comparison, bool]],
    units: dict[Comparison, list[Cell]],
    prices: dict[Cell, tuple[int, float]],
    budget_s: float | None,
) -> dict[Cell, int]:
    """The units one pass measures, each with the rounds it is to reach: of the open comparisons (each with whether
    it already looks decided), the undecided first, then those decided on too few rounds to stop -- when the budget
    cannot pay for every open one it goes where a verdict can still change -- cheapest first within each; a
    comparison whose new units do not fit in what is left of ``budget_s`` is passed over (a cheaper one may fit)."""
    chosen: dict[Cell, int] = {}
    spend = 0.0
    for comp, _ in sorted(open_, key=lambda o: (o[1], sum(prices[u][1] for u in units[o[0]]))):
        new = [u for u in units[comp] if u not in chosen]
        total = sum(prices[u][1] for u in new)
        if not new or (budget_s is not None and spend + total > budget_s):
            continue
        spend += total
        chosen.update({u: prices[u][0] for u in new})
    return chosen


def plan_pass(
    open_: Sequence[tuple[Comparison, bool]],
    units: dict[Comparison, list[Cell]],
    prices: dict[Cell, tuple[int, float]],
    left_s: float | None,
) -> dict[Cell, int]:
    """One pass's units (:func:`choose`) within :data:`PASS_SHARE` of the budget left, or within all of it when
    nothing fits the share.  Why a share: one pass of expensive units (a ladder, a pair at 1024) would otherwise sink
    the whole budget into one more round each, while cheap comparisons near their verdict get no second look."""
    if left_s is None:
        return choose(open_, units, prices, None)
    return choose(open_, units, prices, left_s * PASS_SHARE) or choose(open_, units, prices, left_s)


def _price(unit: Cell, members: Sequence[Cell], cost: dict[Cell, float], have: dict[Cell, int],
           min_rounds: int) -> tuple[int, float]:  # fmt: skip
    """(rounds ``unit`` reaches in this pass, what they cost): one more round, or the run's minimum for a unit not
    yet measured; a new pair's rounds cost its ``members``' (one call of each per cycle, both built)."""
    target = max(min_rounds, have.get(unit, 0) + 1)
    per_round = cost.get(unit)
    if per_round is None and members:
        per_round = sum(cost.get(c, 0.0) for c in members)
    return target, (per_round or 0.0) * (target - have.get(unit, 0))
