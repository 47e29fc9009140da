"""Pre-registered comparisons: what the report will conclude on, declared as data before anything is measured.

A :class:`Comparison` names two cells (or two ladders) and how they are compared; presets carry their list
(:data:`vmibench.sweep.PRESETS`), the runner's adaptive phase spends rounds on the ones still undecided
(:mod:`vmibench.measure.adaptive`), the report prints their verdicts, and ``vmibench check stability`` holds two
independent runs' verdicts against each other.  Evaluating them is :mod:`vmibench.analysis.comparisons`.
Torch-free and pandas-free: planning stays light.

Kinds:

* ``ratio``: latency of ``a`` over latency of ``b`` at one size (``at``: square resolution, or sequence length for
  ops), paired by round.  ``per_gmac=True`` divides each side by its GMACs (cost per GMAC; the counts are exact).
* ``exponent``: log-log slope of ``a``'s latency over its ladder minus ``b``'s, refitted per round on the sizes
  both have; with ``b=""`` minus ``reference`` (1.0: linear in pixels or tokens), or, with ``reference=None``,
  minus ``a``'s own GMACs exponent (does its cost per GMAC grow with size?).
"""

from __future__ import annotations

from dataclasses import dataclass

RATIO, EXPONENT = "ratio", "exponent"
MODELS, OPS = "latency", "ops"


@dataclass(frozen=True)
class Comparison:
    """One pre-registered comparison (see the module docstring)."""

    question: str  # "q1" .. "q4": the reviewer question it answers
    kind: str
    a: str
    b: str = ""
    table: str = MODELS
    at: int = 0  # ratio: resolution (square) or sequence length
    per_gmac: bool = False
    reference: float | None = 1.0  # exponent without b: held against this (None: a's own GMACs exponent)

    def label(self) -> str:
        """A short, stable name: ``vminet_b/mlla_t @224``, ``exp(vim_t) - exp(deit_t)``, ``exp(vim_t) - 1``."""
        if self.kind == RATIO:
            unit = "L=" if self.table == OPS else "@"
            what = "ms/GMAC " if self.per_gmac else ""
            return f"{what}{self.a}/{self.b} {unit}{self.at}"
        other = self.b and f"exp({self.b})"
        if not other:
            other = "exp(GMACs)" if self.reference is None else f"{self.reference:g}"
        return f"exp({self.a}) - {other}"


def ratios(question: str, pairs: list[tuple[str, str]], sizes: tuple[int, ...], *, table: str = MODELS,
           per_gmac: bool = False) -> list[Comparison]:  # fmt: skip
    """``ratio`` comparisons for every (a, b) pair at every size."""
    return [Comparison(question, RATIO, a, b, table, s, per_gmac) for s in sizes for a, b in pairs]
