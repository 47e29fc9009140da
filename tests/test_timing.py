"""Timing statistics and stopping rules; peak-memory probe."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from vmibench.measure.memory import PeakMemory
from vmibench.measure.timing import TimingPolicy, median_rel_se, quantile, summarize, time_calls


def test_summary_matches_numpy() -> None:
    rng = np.random.default_rng(0)
    data = list(rng.lognormal(size=101))
    s = summarize(data)
    assert s.median_ms == pytest.approx(np.median(data))
    assert s.iqr_ms == pytest.approx(np.percentile(data, 75) - np.percentile(data, 25))
    assert s.p10_ms == pytest.approx(np.percentile(data, 10))
    assert s.p90_ms == pytest.approx(np.percentile(data, 90))
    assert s.n == 101 and s.min_ms == min(data)


def test_quantile_edges() -> None:
    assert quantile([5.0], 0.9) == 5.0
    assert quantile([1.0, 2.0], 0.5) == 1.5
    with pytest.raises(ValueError):
        quantile([], 0.5)


def test_rel_se_shrinks_with_more_samples() -> None:
    rng = np.random.default_rng(1)
    few = list(10 + rng.normal(size=10))
    many = list(10 + rng.normal(size=1000))
    assert median_rel_se(many) < median_rel_se(few) < 1


def test_measure_recovers_a_known_duration() -> None:
    policy = TimingPolicy(min_warmup_iters=2, min_warmup_s=0.0, min_iters=10, min_time_s=0.1, max_time_s=2.0)
    stats = time_calls(lambda: time.sleep(0.004), torch.device("cpu"), policy)
    assert 3.9 <= stats.median_ms <= 6.0
    assert stats.warmup_iters == 2 and stats.n >= 10


def test_measure_stops_on_budget_with_hard_minimum() -> None:
    policy = TimingPolicy(
        min_warmup_iters=1, min_warmup_s=0.0, min_iters=100, min_time_s=0.0, max_time_s=0.05, hard_min_iters=3
    )
    stats = time_calls(lambda: time.sleep(0.03), torch.device("cpu"), policy)
    assert stats.n == 3 and not stats.converged


def test_measure_converges_on_a_steady_workload() -> None:
    policy = TimingPolicy(
        min_warmup_iters=1, min_warmup_s=0.0, min_iters=10, min_time_s=0.0, max_time_s=5.0, rel_precision=0.05
    )
    stats = time_calls(lambda: time.sleep(0.002), torch.device("cpu"), policy)
    assert stats.converged and stats.rel_se <= 0.05


def test_cpu_peak_memory_sees_a_large_temporary() -> None:
    with PeakMemory(torch.device("cpu")) as mem:
        x = torch.ones(64, 1024, 1024)  # 256 MiB, freed before the probe ends
        del x
    assert mem.result is not None
    assert mem.result.method in ("rss_hwm", "rss_sampled")
    assert mem.result.peak_mb >= 200
