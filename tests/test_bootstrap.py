"""Bootstrap intervals: known-answer, coverage and shape checks on synthetic data (numpy only, fast)."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from vmibench.analysis import (
    CrossoverEstimate,
    Estimate,
    compare_text,
    crossover,
    crossover_ci,
    distinguishable,
    fit_loglog,
    median_ci,
    ratio_ci,
    ratio_differs_from_one,
    slope_ci,
)
from vmibench.analysis.intervals import ratio_verdict

BOOT = "bootstrap"


def _naive_median_interval(procs: list[np.ndarray], n_boot: int, seed: int, level: float = 0.95) -> np.ndarray:
    """Reference implementation: the hierarchical bootstrap written as a plain loop."""
    rng = np.random.default_rng(seed)
    reps = []
    for _ in range(n_boot):
        chosen = rng.integers(0, len(procs), len(procs))
        pooled = np.concatenate([procs[i][rng.integers(0, procs[i].size, procs[i].size)] for i in chosen])
        reps.append(np.median(pooled))
    alpha = (1 - level) / 2
    return np.quantile(reps, [alpha, 1 - alpha])


# --- Estimate ------------------------------------------------------------------------------------------------------


def test_estimate_format_and_interval_helpers() -> None:
    e = Estimate(1.2846, 1.19, 1.371)
    assert e.format() == "1.28 [1.19, 1.37]"
    assert str(e) == "1.28 [1.19, 1.37]"
    assert e.format(3) == "1.285 [1.190, 1.371]"
    assert e.format(0) == "1 [1, 1]"
    assert e.width == pytest.approx(0.181)
    assert e.rel_width == pytest.approx(0.181 / 1.2846)
    assert e.level == 0.95 and e.n_boot == 0
    assert e.overlaps(Estimate(1.5, 1.371, 1.6))  # closed intervals: touching counts
    assert not e.overlaps(Estimate(1.5, 1.372, 1.6))
    assert Estimate(1.5, 1.0, 2.0).overlaps(e) and e.overlaps(Estimate(1.3, 1.2, 1.3))  # containment
    assert not e.excludes(1.19) and not e.excludes(1.371) and e.excludes(1.0) and e.excludes(1.4)


def test_distinguishable_and_compare_text() -> None:
    a, b, c = Estimate(10.0, 9.5, 10.5), Estimate(12.0, 11.0, 13.0), Estimate(10.8, 10.4, 11.2)
    assert distinguishable(a, b) and not distinguishable(a, c)
    assert compare_text(a, b, "vmi", "vim") == (
        "vmi 10.00 [9.50, 10.50] vs vim 12.00 [11.00, 13.00]: different (intervals do not overlap)"
    )
    assert compare_text(a, c, "vmi", "vim") == (
        "vmi 10.00 [9.50, 10.50] vs vim 10.80 [10.40, 11.20]: not distinguishable on this machine (intervals overlap)"
    )
    assert ratio_differs_from_one(Estimate(1.2, 1.1, 1.3))
    assert not ratio_differs_from_one(Estimate(1.05, 0.98, 1.1))


# --- median_ci -----------------------------------------------------------------------------------------------------


def test_median_value_is_the_pooled_median_and_errors() -> None:
    procs = [[1.0, 2.0, 9.0], [4.0], [3.0, 100.0]]
    e = median_ci(procs, n_boot=200, method=BOOT)
    assert e.value == np.median([1.0, 2.0, 9.0, 4.0, 3.0, 100.0]) == 3.5
    assert e.low <= e.value <= e.high and e.n_boot == 200
    with pytest.raises(ValueError):
        median_ci([])
    with pytest.raises(ValueError):
        median_ci([[], []])
    with pytest.raises(ValueError):
        median_ci([[1.0, float("nan")]])
    with pytest.raises(ValueError):
        median_ci([[1.0]], level=1.0)
    with pytest.raises(ValueError):
        ratio_ci([], [[1.0]])


def test_median_ci_is_deterministic_given_seed() -> None:
    rng = np.random.default_rng(7)
    procs = [rng.lognormal(0, 0.3, n) for n in (40, 55, 33)]
    assert median_ci(procs, seed=3, method=BOOT) == median_ci(procs, seed=3, method=BOOT)
    assert (
        len({median_ci(procs, seed=s, method=BOOT) for s in range(5)}) > 1
    )  # the seed matters (bounds are order statistics)
    assert ratio_ci(procs, procs[::-1], seed=1, method=BOOT) == ratio_ci(procs, procs[::-1], seed=1, method=BOOT)


def test_median_ci_matches_a_plain_loop_with_unequal_process_sizes() -> None:
    rng = np.random.default_rng(3)
    procs = [rng.normal(m, 1.0, n) for m, n in ((10, 30), (12, 51), (11, 20), (13, 44))]
    e = median_ci(procs, n_boot=3000, seed=0, method=BOOT)
    ref = _naive_median_interval(procs, 3000, seed=99)
    assert abs(e.low - ref[0]) < 0.05 * e.width and abs(e.high - ref[1]) < 0.05 * e.width


def test_median_ci_unequal_sizes_exact_support() -> None:
    # Constant processes: a replicate's median is 5 only if both draws pick [5.0]; otherwise the three 1.0s win.
    e = median_ci([[5.0], [1.0, 1.0, 1.0]], level=0.9, n_boot=2000, method=BOOT)
    assert e.value == 1.0 and e.low == 1.0 and e.high == 5.0


def _coverage(method: str, rounds: int, trials: int, seed: int) -> float:
    """Share of ``trials`` simulated cells whose interval covers the true level: each round (process) draws its
    own level, lognormal with a spread of 15% (what a shared CPU shows between processes), and its calls scatter
    2% around it; the true level is the median of the process levels, 1.0."""
    rng = np.random.default_rng(seed)
    covered = 0
    for trial in range(trials):
        levels = rng.lognormal(0.0, 0.15, rounds)
        procs = [lv * rng.lognormal(0.0, 0.02, 40) for lv in levels]
        covered += not median_ci(procs, n_boot=300, seed=trial, method=method).excludes(1.0)
    return covered / trials


def test_default_intervals_reach_their_level_under_between_process_variance() -> None:
    from vmibench.measure.api import DEFAULT_ROUNDS

    trials = 2000
    coverage = _coverage("t-rounds", DEFAULT_ROUNDS, trials, seed=7)
    mc_error = 3 * math.sqrt(0.95 * 0.05 / trials)  # three Monte-Carlo standard errors
    assert abs(coverage - 0.95) < mc_error, coverage


def test_the_bootstrap_undercovers_at_three_rounds() -> None:
    # why the default is not the bootstrap: its interval can be no wider than the spread of the round medians
    assert _coverage(BOOT, 3, 300, seed=8) < 0.85


def test_hierarchical_interval_widens_with_process_effects() -> None:
    rng = np.random.default_rng(0)
    procs = [level * rng.lognormal(0, 0.02, 500) for level in (1.0, 1.5, 2.0)]
    hierarchical = median_ci(procs, seed=0, method=BOOT)
    single = median_ci([np.concatenate(procs)], seed=0, method=BOOT)  # same pooled samples, one "process"
    assert hierarchical.value == single.value
    assert hierarchical.width > 5 * single.width


# --- ratio_ci ------------------------------------------------------------------------------------------------------


def _drifting_rounds(seed: int, ratio: float, rounds: int = 8, n: int = 200) -> tuple[list, list]:
    rng = np.random.default_rng(seed)
    drift = rng.lognormal(0, 0.2, rounds)  # machine state shared by both models within a round
    a = [ratio * d * rng.lognormal(0, 0.02, n) for d in drift]
    b = [d * rng.lognormal(0, 0.02, n) for d in drift]
    return a, b


def test_paired_ratio_cancels_common_drift() -> None:
    a, b = _drifting_rounds(0, 1.3)
    paired = ratio_ci(a, b, seed=0, method=BOOT)
    # Same samples, but b's last round split in two: round counts differ, so the sides are resampled independently.
    b_split = [*b[:-1], b[-1][:100], b[-1][100:]]
    unpaired = ratio_ci(a, b_split, seed=0, method=BOOT)
    assert paired.value == unpaired.value
    assert not paired.excludes(1.3) and ratio_differs_from_one(paired)
    assert paired.width < 0.3 * unpaired.width


def test_ratio_of_identical_distributions_contains_one() -> None:
    a, b = _drifting_rounds(1, 1.0)
    e = ratio_ci(a, b, seed=0)
    assert not ratio_differs_from_one(ratio_ci(a, b, seed=0, method=BOOT))
    # the t-interval is so tight here that an edge may miss 1.0 by a hair: the three-way verdict, not the edge,
    # is what a comparison reports, and it calls these two equivalent within the 10% margin
    assert ratio_verdict(e) == "equivalent"


# --- slope_ci ------------------------------------------------------------------------------------------------------


def _power_law(exponent: float, seed: int = 0, noise: float = 0.02) -> tuple[list[float], list[list[np.ndarray]]]:
    rng = np.random.default_rng(seed)
    xs = [float(2**k) for k in range(8, 17)]
    samples = [[2e-4 * x**exponent * (1 + noise * rng.standard_normal(30)) for _ in range(3)] for x in xs]
    return xs, samples


def test_slope_ci_recovers_exponent() -> None:
    xs, samples = _power_law(1.5)
    e = slope_ci(xs, samples, seed=0, method=BOOT)
    assert e is not None
    assert not e.excludes(1.5) and e.excludes(1.0) and e.excludes(2.0)
    medians = [float(np.median(np.concatenate(s))) for s in samples]
    fit = fit_loglog(xs, medians)
    assert fit is not None and e.value == pytest.approx(fit.slope)


def test_slope_ci_uses_the_fit_loglog_points() -> None:
    xs, samples = _power_law(1.0)
    samples[0] = [np.full(30, 1e6)]  # a wild small-size point: outside the upper half, so it must not matter
    samples[1] = []  # an empty cell is dropped like a missing value
    e = slope_ci(xs, samples, seed=0, method=BOOT)
    assert e is not None and not e.excludes(1.0) and e.width < 0.1
    assert slope_ci([256.0, 512.0], [[[1.0, 2.0]], []]) is None  # one usable point
    assert slope_ci([0.0, 512.0], [[[1.0]], [[2.0]]]) is None  # non-positive size


# --- crossover_ci --------------------------------------------------------------------------------------------------


def _curve(xs: list[int], ys: list[float], seed: int, noise: float = 0.03) -> list[list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [[y * rng.lognormal(0, noise, 40) for _ in range(3)] for y in ys]


XS = [256, 1024, 4096, 16384]


def test_crossover_ci_interval_brackets_the_value() -> None:
    linear = _curve(XS, [4.0, 16.0, 64.0, 256.0], seed=1)
    quadratic = _curve(XS, [1.0, 8.0, 128.0, 2048.0], seed=2)  # cheaper first, crosses between 1024 and 4096
    # "a becomes cheaper than b": the linear model overtakes the quadratic one.
    e = crossover_ci(XS, linear, XS, quadratic, seed=0)
    assert e is not None and e.value is not None and e.low is not None and e.high is not None
    medians = [[float(np.median(np.concatenate(s))) for s in c] for c in (linear, quadratic)]
    assert e.value == crossover(XS, medians[0], XS, medians[1])
    assert 1024 < e.low <= e.value <= e.high < 4096
    assert e.never_fraction == 0.0 and (e.smallest, e.largest) == (256, 16384)
    assert e.format() == f"{e.value:.0f} [{e.low:.0f}, {e.high:.0f}]"


def test_crossover_ci_at_smallest_size_formats_as_upper_bound() -> None:
    cheap = _curve(XS, [1.0, 2.0, 4.0, 8.0], seed=3)
    dear = _curve(XS, [3.0, 6.0, 12.0, 24.0], seed=4)
    e = crossover_ci(XS, cheap, XS, dear, seed=0)
    assert e is not None and e.value == e.low == e.high == 256
    assert e.format() == "≤ 256"
    never = crossover_ci(XS, dear, XS, cheap, seed=0)
    assert never is not None and never.value is None and never.low is None and never.never_fraction == 1.0
    assert never.format() == "none up to 16384 (no crossover in 100% of resamples)"
    assert crossover_ci([256], cheap[:1], [512], dear[:1]) is None


def test_crossover_estimate_format_cases() -> None:
    assert CrossoverEstimate(3100.4, 2499.6, 4100.0, 256, 16384, 0.0).format() == "3100 [2500, 4100]"
    assert CrossoverEstimate(256, 256, 1024, 256, 16384, 0.0).format() == "≤ 256 [≤ 256, 1024]"
    assert CrossoverEstimate(256, 256, 256, 256, 16384, 0.0).format() == "≤ 256"
    assert (
        CrossoverEstimate(3100, 2500, 4100, 256, 16384, 0.12).format()
        == "3100 [2500, 4100] (no crossover in 12% of resamples)"
    )
    assert CrossoverEstimate(None, 9000, 12000, 256, 16384, 0.7).format() == (
        "none up to 16384 (no crossover in 70% of resamples)"
    )


# --- packaging -----------------------------------------------------------------------------------------------------


def test_analysis_package_does_not_import_torch() -> None:
    # vmibench/__init__.py itself imports torch, so stand in an empty parent package and import only analysis.
    root = Path(__file__).resolve().parents[1]
    code = textwrap.dedent(f"""
        import sys, types
        pkg = types.ModuleType("vmibench")
        pkg.__path__ = [{str(root / "vmibench")!r}]
        sys.modules["vmibench"] = pkg
        import vmibench.analysis as a
        assert a.fit_table and a.median_ci and a.Fit
        assert "torch" not in sys.modules, "torch imported"
    """)
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)


def test_an_estimate_without_an_interval_is_never_called_different() -> None:
    from vmibench.analysis.bootstrap import Estimate, distinguishable, ratio_differs_from_one

    none = Estimate(2.0, float("nan"), float("nan"))
    assert not none.has_interval and none.overlaps(Estimate(9.0, 8.0, 10.0))
    assert not distinguishable(none, Estimate(9.0, 8.0, 10.0)) and not ratio_differs_from_one(none)
    assert distinguishable(Estimate(2.0, 1.9, 2.1), Estimate(9.0, 8.0, 10.0))


def test_rows_of_different_runs_are_not_paired() -> None:
    from vmibench.analysis.bootstrap import ratio_ci

    drift = [1.0, 1.4, 0.8]  # one machine state per round, shared by both models only within a run
    a = [[10.0 * d * f for f in (0.99, 1.0, 1.01)] for d in drift]
    b = [[20.0 * d * f for f in (0.99, 1.0, 1.01)] for d in drift]
    paired, unpaired = ratio_ci(a, b, method=BOOT), ratio_ci(a, b, paired=False, method=BOOT)
    assert paired.value == unpaired.value == 0.5
    assert paired.width < 0.05 < unpaired.width  # the common drift cancels only when rounds are matched
