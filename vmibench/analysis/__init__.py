"""Analysis of stored measurements.

* :mod:`vmibench.analysis.fits` -- complexity fits (log-log slope on the upper part of a sweep), crossover points
  between two cost curves, and utilisation against the measured matmul peak.
* :mod:`vmibench.analysis.roofline` -- arithmetic intensity, roofline time, fraction of the roof and the bound
  (compute or memory) of every timed cell, against the measured matmul peak and triad bandwidth.
* :mod:`vmibench.analysis.bootstrap` -- confidence intervals for those numbers: hierarchical (process, then call)
  bootstrap of median latency, paired-by-round latency ratios, slopes and crossovers, plus helpers that say whether
  two results are distinguishable on this machine.

Everything is importable from here (``from vmibench.analysis import fit_table, median_ci``).  Only numpy and pandas
are used, no torch, so reports can be built where no model code runs.
"""

from __future__ import annotations

from vmibench.analysis.bootstrap import (
    CrossoverEstimate,
    Estimate,
    compare_text,
    crossover_ci,
    distinguishable,
    median_ci,
    ratio_ci,
    ratio_differs_from_one,
    slope_ci,
)
from vmibench.analysis.fits import Fit, add_utilisation, crossover, fit_loglog, fit_table
from vmibench.analysis.roofline import ROOFLINE_COLUMNS, add_roofline

__all__ = [
    "ROOFLINE_COLUMNS",
    "CrossoverEstimate",
    "Estimate",
    "Fit",
    "add_roofline",
    "add_utilisation",
    "compare_text",
    "crossover",
    "crossover_ci",
    "distinguishable",
    "fit_loglog",
    "fit_table",
    "median_ci",
    "ratio_ci",
    "ratio_differs_from_one",
    "slope_ci",
]
