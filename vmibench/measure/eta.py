"""How long the rest of a run will take: a prior from each cell's timing budget, corrected by what was measured.

A job is one round of one cell (one worker process).  Before anything ran, a job is predicted from its timing
policy: its share of the time budget plus warm-up, plus building the model and counting FLOPs.  That is an upper
bound, since most cells converge before their budget.  Once jobs finish, a cell's later rounds are predicted by
its own first round (the best predictor: same model, same size), and cells not yet started by their prior scaled
by how far the finished jobs came in under theirs.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from vmibench.measure.cells import Cell

# Seconds a job spends outside its timing loop: fork a worker, build the model, allocate the input, report back.
SETUP_S = 2.0
# Seconds an fvcore trace adds to the first round of a cell that counts FLOPs.
FLOPS_S = 3.0
# Seconds a new round's zygote needs to import torch, timm and the models.
ZYGOTE_S = 8.0


def job_prior_s(cell: Cell, rounds: int, first_round: bool) -> float:
    """Predicted seconds of one round of ``cell`` from its timing policy alone (an upper bound)."""
    policy = cell.settings.policy
    warmup = min(policy.max_warmup_s, max(policy.min_warmup_s, 0.5))
    flops = FLOPS_S if first_round and cell.settings.count_flops else 0.0
    return policy.max_time_s / rounds + warmup + SETUP_S + flops


@dataclass
class RunClock:
    """Predicts the remaining seconds of a run as its jobs finish."""

    rounds: int
    observed: dict[str, list[float]] = field(default_factory=dict)  # cell key -> seconds of its finished jobs
    ratios: list[float] = field(default_factory=list)  # observed / prior of every finished job

    def observe(self, key: str, cell: Cell, first_round: bool, seconds: float) -> None:
        self.observed.setdefault(key, []).append(seconds)
        self.ratios.append(seconds / job_prior_s(cell, self.rounds, first_round))

    def job_s(self, key: str, cell: Cell, first_round: bool) -> float:
        """Predicted seconds of one job."""
        own = self.observed.get(key)
        if own and not first_round:
            return min(own)  # later rounds skip the FLOPs count the first one did
        prior = job_prior_s(cell, self.rounds, first_round)
        return prior * min(1.0, statistics.median(self.ratios)) if self.ratios else prior

    def remaining_s(self, jobs: list[tuple[str, Cell, bool]], new_rounds: int) -> float:
        """Seconds for ``jobs`` (key, cell, first round?) plus ``new_rounds`` zygote start-ups."""
        return sum(self.job_s(k, c, first) for k, c, first in jobs) + new_rounds * ZYGOTE_S
