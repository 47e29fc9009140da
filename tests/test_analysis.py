"""Complexity fits, crossovers and utilisation on synthetic data with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vmibench.analysis import add_utilisation, crossover, fit_loglog, fit_table


@pytest.mark.parametrize("exponent", [1.0, 2.0, 1.5])
def test_fit_recovers_known_exponent(exponent: float) -> None:
    rng = np.random.default_rng(0)
    x = 2.0 ** np.arange(8, 17)
    y = 3e-4 * x**exponent * np.exp(rng.normal(0, 0.02, size=x.size))
    fit = fit_loglog(x, y)
    assert fit is not None
    assert fit.slope == pytest.approx(exponent, abs=0.05)
    assert fit.r2 > 0.99
    assert fit.n == 5 and fit.x_min == 2.0**12 and fit.x_max == 2.0**16  # upper half of 9 points


def test_fit_uses_only_the_upper_part() -> None:
    # Constant overhead dominates small sizes; the asymptotic exponent is 2.
    x = np.array([1, 2, 4, 8, 16, 32, 64, 128], dtype=float) * 256
    y = 50.0 + 1e-6 * x**2
    upper = fit_loglog(x, y, upper_fraction=0.25, min_points=3)
    whole = fit_loglog(x, y, upper_fraction=1.0)
    assert upper is not None and whole is not None
    assert upper.slope > 1.6 > whole.slope


def test_fit_drops_bad_points_and_needs_two() -> None:
    assert fit_loglog([1, 2], [1, float("nan")]) is None
    assert fit_loglog([1, 0, 4], [1, 5, 16], min_points=2) is not None
    fit = fit_loglog([1, 2, 4, None], [1, 4, 16, 3], upper_fraction=1.0)  # type: ignore[list-item]
    assert fit is not None and fit.slope == pytest.approx(2.0)


def test_fit_table_groups_and_ignores_failed_rows() -> None:
    frame = pd.DataFrame({
        "op": ["a"] * 4 + ["b"] * 4,
        "L": [1, 2, 4, 8] * 2,
        "t": [1, 2, 4, 8, 1, 4, 16, 1e9],
        "status": ["ok"] * 7 + ["oom"],
    })  # fmt: skip
    fits = fit_table(frame, ["op"], "L", ["t"], upper_fraction=1.0)
    slopes = dict(zip(fits["op"], fits["slope"], strict=True))
    assert slopes["a"] == pytest.approx(1.0) and slopes["b"] == pytest.approx(2.0)


def test_crossover_interpolates_in_log_space() -> None:
    xs = [256, 1024, 4096, 16384]
    linear = [4.0, 16.0, 64.0, 256.0]  # slope 1 from 4 ms
    quadratic = [1.0, 16.0 / 4, 64.0, 1024.0]  # slope 2: cheaper first, equal at 4096
    x = crossover(xs, linear, xs, quadratic)
    assert x is not None and 1024 < x <= 4096
    assert crossover(xs, [0.5] * 4, xs, [1.0] * 4) == 256
    assert crossover(xs, [2.0] * 4, xs, [1.0] * 4) is None


def test_utilisation_uses_the_matching_peak() -> None:
    timed = pd.DataFrame({"env_key": ["e", "e"], "device": ["cpu", "cpu"], "dtype": ["fp32", "bf16"],
                          "threads": [2, 2], "gflops": [1.0, 1.0], "batch": [4, 4],
                          "latency_ms_median": [100.0, 100.0]})  # fmt: skip
    peak = pd.DataFrame({"env_key": ["e"], "device": ["cpu"], "dtype": ["fp32"], "threads": [2],
                         "peak_gflops": [80.0], "status": ["ok"], "timestamp": ["t"]})  # fmt: skip
    out = add_utilisation(timed, peak)
    assert out["achieved_gflops"].tolist() == [40.0, 40.0]
    assert out["utilisation"].iloc[0] == pytest.approx(0.5)
    assert np.isnan(out["utilisation"].iloc[1])  # no bf16 peak measured: no made-up number
