"""Rounds go where verdicts are open: after a run's minimum rounds, top up the cells of undecided comparisons.

Each pass evaluates the pre-registered comparisons (:mod:`vmibench.questions`) on the rows measured so far at a 99%
level from 5 rounds on (:data:`vmibench.analysis.calibration.LOOK_LEVEL`, ``FIRST_LOOK``; the report then gives 95%
intervals), takes the ones still undecided whose cells have fewer than ``max_rounds`` rounds, and measures one more
round of their cells (the runner's top-up: the new round is pooled with the stored ones, in a fresh random order, so
the cells of one comparison are measured in the same pass).  Passes repeat until every comparison is decided, the
round cap is reached or the time budget is gone.  The cheapest open comparisons go first when the budget cannot pay
for all of them, so the budget buys as many verdicts as it can.  The calibration study simulates this whole
procedure (:mod:`vmibench.analysis.calibration`), because stopping when an interval looks decided changes its
coverage.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from vmibench.measure.cells import Cell
from vmibench.measure.kinds import MixerOp, ModelForward
from vmibench.measure.runner import Runner
from vmibench.questions import EXPONENT, OPS, Comparison


@dataclass
class Settled:
    """What the adaptive phase did: passes, cells topped up per pass, and the final verdict table."""

    passes: list[int] = field(default_factory=list)  # cells topped up in each pass
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


def read_verdicts(
    store: object, cells: Sequence[Cell], comparisons: Sequence[Comparison], margin: float, level: float = 0.95
) -> tuple[object, dict[Cell, float]]:
    """Evaluate ``comparisons`` on the newest stored rows of ``cells`` (one environment: the cells' keys); also
    each cell's cost of one more round (its row's wall time per round)."""
    import pandas as pd

    from vmibench.analysis.comparisons import evaluate
    from vmibench.env import capture

    envs = {c.settings.device: capture(c.settings.device) for c in cells}
    keys: dict[str, dict[str, Cell]] = {}
    for c in cells:
        keys.setdefault(c.workload.TABLE, {})[c.key(envs[c.settings.device].key(c.settings.device))] = c
    frames, samples, cost = {}, {}, {}
    for table, by_key in keys.items():
        rows = store.latest_rows(table, by_key)  # type: ignore[attr-defined]
        frames[table] = pd.DataFrame(list(rows.values()))
        samples[table] = store.samples(table, [int(r["row_id"]) for r in rows.values()])  # type: ignore[attr-defined]
        for key, row in rows.items():
            if row.get("wall_s") and row.get("rounds"):
                cost[by_key[key]] = float(row["wall_s"]) / int(row["rounds"])
    return evaluate(comparisons, frames, samples, margin=margin, level=level), cost


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
    """Top up the cells of open comparisons, one round per pass, until decided, capped or out of budget."""
    from vmibench.analysis.calibration import FIRST_LOOK, LOOK_LEVEL
    from vmibench.analysis.intervals import decided

    result = Settled()
    deadline = None if budget_s is None else time.monotonic() + budget_s
    for rounds in range(min_rounds + 1, max_rounds + 1):
        # stop a comparison on a stricter look than the report's level (see LOOK_LEVEL: coverage after stopping)
        verdicts, cost = read_verdicts(store, cells, comparisons, margin, LOOK_LEVEL)
        result.verdicts = verdicts
        # a comparison is settled only once decided on at least FIRST_LOOK rounds (see the calibration study)
        open_ = [c for c, v, k in zip(comparisons, verdicts["verdict"], verdicts["rounds"], strict=True)
                 if not decided(v) or k < FIRST_LOOK]  # fmt: skip
        chosen: dict[Cell, None] = {}
        left = None if deadline is None else deadline - time.monotonic()
        spend = 0.0
        for comp in sorted(open_, key=lambda c: sum(cost.get(x, 0.0) for x in cells_of(c, cells))):
            new = [x for x in cells_of(comp, cells) if x not in chosen]
            price = sum(cost.get(x, 0.0) for x in new)
            if left is not None and spend + price > left:
                continue
            spend += price
            chosen.update(dict.fromkeys(new))
        if not chosen:
            break
        log(f"adaptive pass to {rounds} rounds: {len(open_)} comparison(s) open, topping up {len(chosen)} cell(s)")
        runner_factory(rounds).run(list(chosen))
        result.passes.append(len(chosen))
        if deadline is not None and time.monotonic() > deadline:
            break
    result.verdicts, _ = read_verdicts(store, cells, comparisons, margin)
    result.open_after = int(sum(not decided(v) for v in result.verdicts["verdict"]))  # type: ignore[index]
    return result
