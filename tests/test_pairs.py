"""Interleaved pairs: two cells alternated call by call in one process; the ratio verdict rests on the pair where one
was measured, and the adaptive phase measures open ratios as pairs (exponents keep topping up their ladders)."""

from __future__ import annotations

import io
import math
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vmibench.measure.cells import Cell, Settings
from vmibench.measure.kinds import InterleavedPair, MixerOp, ModelForward, pair_cell, split_calls
from vmibench.measure.timing import TimingPolicy
from vmibench.questions import EXPONENT, OPS, RATIO, Comparison

QUICK = TimingPolicy(min_warmup_iters=1, min_warmup_s=0.0, min_iters=4, min_time_s=0.0, max_time_s=0.3)


def test_alternating_calls_are_recorded_in_call_order() -> None:
    import torch

    from vmibench.measure.timing import time_alternating

    calls: list[str] = []

    def call(name: str, seconds: float):  # type: ignore[no-untyped-def]
        def fn() -> None:
            calls.append(name)
            end = time.perf_counter() + seconds
            while time.perf_counter() < end:
                pass

        return fn

    stats = time_alternating([call("a", 0.001), call("b", 0.004)], torch.device("cpu"), QUICK)
    warm = 2 * QUICK.min_warmup_iters  # each member warms up first, on its own
    timed = calls[warm:]
    assert timed == ["a", "b"] * (len(timed) // 2) and len(timed) >= 2 * QUICK.min_iters
    assert len(stats.samples_ms) == len(timed)
    a, b = split_calls(stats.samples_ms)
    assert max(a) < min(b)  # call i belongs to member i % 2: every 1 ms call is an a, every 4 ms call a b


def test_a_pair_is_planned_only_for_cells_that_can_share_a_process() -> None:
    st = Settings(threads=1, policy=QUICK)
    a, b = Cell(ModelForward("vminet_t", 224, 224), st), Cell(ModelForward("deit_t", 224, 224), st)
    pair = pair_cell(a, b)
    assert pair is not None and isinstance(pair.workload, InterleavedPair)
    assert [m.name() for m in pair.workload.members] == ["vminet_t", "deit_t"]
    assert not pair.settings.count_flops  # the members' own cells have the counts
    assert Cell.from_json(pair.to_json()) == pair  # crosses the process boundary unchanged
    assert pair_cell(a, replace(b, settings=replace(st, threads=2))) is None
    scan = [Cell(MixerOp("selective_scan", 256, 64), replace(st, scan_backend=x)) for x in ("torch", "chunked")]
    assert pair_cell(*scan) is None  # one process runs one scan backend
    # a pair's round is a whole measurement: rounds do not split its budget
    assert pair.workload.round_policy(QUICK, 8) == QUICK != a.workload.round_policy(QUICK, 8)


def _rows(levels: dict[str, float], noise: float, rounds: int, seed: int, table: str = "ops") -> tuple:
    """Ops rows of L=256 and their samples: each op at its level, times a lognormal ``noise`` per (round, op) --
    each cell timed at its own moment of a host whose speed wanders."""
    rng = np.random.default_rng(seed)
    rows, samples = [], []
    for i, (op, level) in enumerate(levels.items()):
        rows.append({"row_id": i, "op": op, "seq_len": 256, "batch": 1, "status": "ok", "dtype": "fp32",
                     "cell_key": f"k{i}", "run_id": "r", "gmacs": 1.0})  # fmt: skip
        for r in range(rounds):
            for j, ms in enumerate(level * rng.lognormal(0, noise) * rng.lognormal(0, 0.01, 6)):
                samples.append({"row_id": i, "round": r, "iter": j, "ms": ms})
    return pd.DataFrame(rows), pd.DataFrame(samples)


def _pair(a: str, b: str, ratio: float, rounds: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A pair row of a / b at L=256: per round a shared host speed (lognormal 0.3) times each call; calls alternate."""
    rng = np.random.default_rng(seed)
    row = {"row_id": 0, "a": a, "b": b, "at": 256, "member_table": OPS, "batch": 1, "status": "ok", "dtype": "fp32",
           "cell_key": "pair"}  # fmt: skip
    samples = []
    for r in range(rounds):
        speed = rng.lognormal(0, 0.3)
        for c in range(6):
            for m, level in enumerate((ratio, 1.0)):
                samples.append({"row_id": 0, "round": r, "iter": 2 * c + m,
                                "ms": level * speed * rng.lognormal(0, 0.01)})  # fmt: skip
    return pd.DataFrame([row]), pd.DataFrame(samples)


def test_a_ratio_rests_on_its_interleaved_pair_where_one_was_measured() -> None:
    from vmibench.analysis.comparisons import INTERLEAVED, SEPARATE, evaluate

    comp = [Comparison("q4", RATIO, "slow", "base", OPS, 256)]
    rows, samples = _rows({"slow": 1.3, "base": 1.0}, noise=0.3, rounds=4, seed=1)
    alone = evaluate(comp, {"ops": rows}, {"ops": samples}).iloc[0]
    assert alone["design"] == SEPARATE and alone["verdict"] == "undetermined"
    pair_rows, pair_samples = _pair("slow", "base", 1.3, rounds=4, seed=2)
    both = evaluate(comp, {"ops": rows, "pairs": pair_rows}, {"ops": samples, "pairs": pair_samples}).iloc[0]
    # the host's speed of the moment is shared by adjacent calls and cancels: the pair decides what cells could not
    assert both["design"] == INTERLEAVED and both["cells"] == "pair" and both["verdict"] == "slower"
    assert both["ci_low"] < 1.3 < both["ci_high"] and both["ci_high"] - both["ci_low"] < 0.1
    moved = pair_rows.assign(at=1024)  # a pair of another size is not this comparison's
    other = evaluate(comp, {"ops": rows, "pairs": moved}, {"ops": samples, "pairs": pair_samples}).iloc[0]
    assert other["design"] == SEPARATE and other["verdict"] == "undetermined"


def test_open_ratios_are_measured_as_pairs_and_exponents_top_up_their_ladders() -> None:
    from vmibench.measure.adaptive import units_of

    st = Settings(threads=1, policy=QUICK)
    cells = [Cell(MixerOp(op, n, 64), st) for op in ("vmisa", "vmisa_recurrent") for n in (256, 1024, 4096)]
    ratio = units_of(Comparison("q4", RATIO, "vmisa_recurrent", "vmisa", OPS, 1024), cells)
    assert len(ratio) == 1 and isinstance(ratio[0].workload, InterleavedPair)
    assert [m.describe() for m in ratio[0].workload.members] == ["vmisa_recurrent L=1024", "vmisa L=1024"]
    exponent = units_of(Comparison("q4", EXPONENT, "vmisa_recurrent", "vmisa", OPS), cells)
    assert exponent == cells


def test_the_adaptive_phase_stores_a_pair_that_decides_the_ratio(tmp_path: Path, vmi) -> None:  # type: ignore[no-untyped-def]
    """Real workers: after 2 rounds of separate cells, the open ratio gets a pair row of its own (samples in call
    order, two members), and the final verdict rests on it."""
    from vmibench.measure.api import measure_cells
    from vmibench.store import ResultStore

    st = Settings(threads=1, policy=QUICK, count_flops=False)
    cells = [Cell(MixerOp(op, 256, 64), st) for op in ("vmisa", "vmisa_matrix")]
    comp = Comparison("q4", RATIO, "vmisa_matrix", "vmisa", OPS, 256)
    db = str(tmp_path / "s.sqlite")
    summary = measure_cells(cells, db=db, rounds=2, comparisons=[comp], max_rounds=3, adaptive_budget_s=120,
                            with_peak=False)  # fmt: skip
    assert summary.adaptive_passes and summary.adaptive_passes[0] == 1  # one unit: the pair, not its two cells
    with ResultStore(db, readonly=True) as store:
        pairs = store.read("pairs", keep_row_id=True).sort_values("row_id")
        latency = store.read("ops")
        last = pairs.iloc[-1]
        samples = store.samples("pairs", [int(last["row_id"])])
    assert list(latency["rounds"]) == [2, 2]  # the cells were not topped up
    assert (last["a"], last["b"], last["at"], last["member_table"]) == ("vmisa_matrix", "vmisa", 256, OPS)
    assert last["rounds"] >= 2 and last["ratio_ci_low"] <= last["ratio"] <= last["ratio_ci_high"]
    per_round = samples.groupby("round")["ms"].apply(list)
    a, b = zip(*(split_calls(s) for s in per_round), strict=True)
    assert np.median([np.median(x) / np.median(y) for x, y in zip(a, b, strict=True)]) > 1.0  # the L x L mask costs
    shown = vmi("results", "--table", "pairs", "--db", db, "--format", "csv")
    assert shown.returncode == 0 and {"ratio", "ratio_ci_low", "ratio_ci_high", "a_ms_median"} <= set(
        pd.read_csv(io.StringIO(shown.stdout)).columns
    )
    calls = pd.read_csv(io.StringIO(vmi("results", "--table", "samples", "--db", db, "--format", "csv").stdout))
    assert set(calls.loc[calls["row_table"] == "pairs", "name"]) == {"vmisa_matrix | vmisa"}
    # the report's pre-registered row of this ratio rests on the pair, and its protocol says what a pair is
    from vmibench.reports.report import write_report

    text = write_report(db, tmp_path / "report").read_text()
    verdicts = pd.read_csv(tmp_path / "report" / "tables" / "verdicts.csv")
    row = verdicts[verdicts["comparison"] == "vmisa_matrix/vmisa L=256"].iloc[0]
    assert row["design"] == "interleaved" and row["cells"] == str(last["cell_key"])
    assert "Interleaved pairs (1 stored, table `pairs`)" in text


@pytest.mark.parametrize("bad", ["a", "b"])
def test_a_pair_member_must_be_a_timed_workload(bad: str) -> None:
    from vmibench.measure.kinds import MatmulPeak

    good = '{"kind": "op", "op": "vmisa", "seq_len": 256, "dim": 64, "batch": 1}'
    peak = '{"kind": "matmul", "n": 64}'
    assert MatmulPeak(64).KIND == "matmul"
    pair = InterleavedPair(**{"a": good, "b": good, bad: peak})
    with pytest.raises(ValueError, match="timed workload"):
        _ = pair.members


def test_a_pairs_calibration_series_is_its_per_cycle_ratio() -> None:
    from vmibench.measure.kinds import call_ratios

    # calls in order a, b, a, b, a (the unmatched last call has no neighbour and is dropped)
    assert call_ratios([2.0, 1.0, 6.0, 2.0, 9.0]) == [2.0, 3.0]


def test_the_budget_goes_to_undecided_comparisons_first() -> None:
    from vmibench.measure.adaptive import choose

    st = Settings(threads=1, policy=QUICK)
    cell = {n: Cell(MixerOp("vmisa", n, 64), st) for n in (256, 1024, 4096)}
    comps = {n: Comparison("q4", RATIO, "x", "vmisa", OPS, n) for n in cell}
    prices = {cell[256]: (4, 10.0), cell[1024]: (3, 20.0), cell[4096]: (4, 100.0)}
    units = {comps[n]: [cell[n]] for n in cell}
    # 256 looks decided (too few rounds to stop), 1024 and 4096 are undecided; 125 s pays for 1024 and 4096 only
    open_ = [(comps[256], True), (comps[1024], False), (comps[4096], False)]
    assert choose(open_, units, prices, 125.0) == {cell[1024]: 3, cell[4096]: 4}
    assert choose(open_, units, prices, None) == {cell[1024]: 3, cell[4096]: 4, cell[256]: 4}
    # a unit two comparisons share is paid for once: the second pays only for its other unit
    both = replace(comps[1024], question="q2")
    shared = {comps[1024]: [cell[1024]], both: [cell[1024], cell[256]]}
    assert choose([(comps[1024], False), (both, False)], shared, prices, 35.0) == {cell[1024]: 3, cell[256]: 4}


def test_the_ops_command_has_its_own_adaptive_budget() -> None:
    from vmibench.cli.measure import adaptive_args
    from vmibench.sweep import PRESETS

    preset = PRESETS["cpu-default"]
    sweep, ops = adaptive_args(preset, None), adaptive_args(preset, None, ops=True)
    assert preset.ops_adaptive_budget_min is not None
    assert (sweep["adaptive_budget_s"], ops["adaptive_budget_s"]) == (
        preset.adaptive_budget_min * 60,
        preset.ops_adaptive_budget_min * 60,
    )
    assert adaptive_args(replace(preset, ops_adaptive_budget_min=None), None, ops=True) == sweep


def test_a_pass_spends_half_the_budget_left_unless_nothing_fits_it() -> None:
    from vmibench.measure.adaptive import plan_pass

    st = Settings(threads=1, policy=QUICK)
    cheap, dear = Cell(MixerOp("vmisa", 256, 64), st), Cell(MixerOp("vmisa", 4096, 64), st)
    comps = [Comparison("q4", RATIO, "x", "vmisa", OPS, n) for n in (256, 4096)]
    units = {comps[0]: [cheap], comps[1]: [dear]}
    prices = {cheap: (4, 10.0), dear: (4, 60.0)}
    both = [(comps[0], False), (comps[1], False)]
    assert plan_pass(both, units, prices, 100.0) == {cheap: 4}  # 10 + 60 > half of 100: the dear one waits
    assert plan_pass([(comps[1], False)], units, prices, 100.0) == {dear: 4}  # alone, it may take the rest
    assert plan_pass(both, units, prices, None) == {cheap: 4, dear: 4}


def test_stability_counts_agreement_decisions_and_estimates_inside_the_other_interval() -> None:
    from vmibench.analysis.comparisons import stability

    def run(values: list[tuple[float, float, float, str]]) -> pd.DataFrame:
        return pd.DataFrame([{"question": "q", "comparison": f"c{i}", "value": v, "ci_low": lo, "ci_high": hi,
                              "verdict": verdict} for i, (v, lo, hi, verdict) in enumerate(values)])  # fmt: skip

    a = run([(0.80, 0.75, 0.85, "faster"), (0.95, 0.80, 1.10, "undetermined")])
    b = run([(0.78, 0.74, 0.83, "faster"), (0.70, 0.60, 0.82, "faster")])
    both, rates = stability(a, b)
    assert list(both["agree"]) == [True, False]
    assert list(both["b_in_a"]) == [True, False] and list(both["a_in_b"]) == [True, False]
    assert rates == {"agree": 0.5, "decided": 0.75, "inside": 0.5}


def test_expected_agreement_is_low_one_half_width_past_a_margin_edge_and_rises_with_rounds() -> None:
    """The simulation behind `check stability`'s expected agreement: a comparison far from the margin's edges
    agrees always; one whose estimate lies one half-width past the edge (its interval touching 1.1) is decided
    in about half of the runs; with 4x the rounds it is decided in most; a comparison without an interval in one
    run is left out of the mean."""
    from vmibench.analysis.comparisons import expected_agreement
    from vmibench.analysis.intervals import t_quantile

    half = t_quantile(0.975, 4) * 0.02  # 5 rounds, standard error 0.02 on the log ratio
    edge = math.log(1.1)

    def run(shift: float) -> pd.DataFrame:
        rows = [("ratio", 2.0, 1.9, 2.1, 5),  # far: slower in every run
                ("ratio", math.exp(edge + half + shift), math.exp(edge + shift), math.exp(edge + 2 * half + shift), 5),
                ("exponent", -0.35, -0.40, -0.30, 5),  # far: lower
                ("ratio", 1.5, math.nan, math.nan, 1)]  # fmt: skip
        return pd.DataFrame([{"kind": k, "value": v, "ci_low": lo, "ci_high": hi, "rounds": n, "level": 0.95,
                              "margin": 0.10} for k, v, lo, hi, n in rows])  # fmt: skip

    a, b = run(0.004), run(-0.004)  # two runs on either side of the same truth
    chances, mean = expected_agreement(a, b, trials=4000)
    assert chances[0] == 1.0 and chances[2] == 1.0 and math.isnan(chances[3])
    assert 0.35 < chances[1] < 0.65
    assert mean == pytest.approx((2 + chances[1]) / 3)
    more, _ = expected_agreement(a, b, rounds_factor=4.0, trials=4000)
    assert more[1] > 0.8 and more[0] == 1.0


def test_run_level_is_the_scatter_between_runs_that_their_own_intervals_do_not_explain() -> None:
    """Three runs of two comparisons: exponents that move by 0.1 between runs with standard errors of 0.01 carry a
    run-level s.d. of about 0.1; ratios whose runs scatter as their errors say carry none."""
    from vmibench.analysis.comparisons import run_level
    from vmibench.analysis.intervals import t_quantile

    half = t_quantile(0.975, 4) * 0.01  # 5 rounds, standard error 0.01

    def run(exponent: float, log_ratio: float) -> pd.DataFrame:
        rows = [("exponent", "", "", exponent, exponent - half, exponent + half),
                ("ratio", "mlla_t", "interleaved", *(math.exp(log_ratio + d) for d in (0, -half, half)))]  # fmt: skip
        return pd.DataFrame([{"kind": k, "b": b, "design": design, "value": v, "ci_low": lo, "ci_high": hi,
                              "rounds": 5, "level": 0.95} for k, b, design, v, lo, hi in rows])  # fmt: skip

    tables = [run(0.0, 0.0), run(0.1, 0.01), run(0.2, -0.01)]
    out = run_level(tables).set_index("family")
    assert set(out.index) == {"exponent vs constant", "ratio, interleaved"}
    mixers = [t.assign(comparison=["exp(vmisa) - 1", "vmisa_matrix/vmisa L=1024"]) for t in tables]
    assert set(run_level(mixers)["family"]) == {"exponent vs constant", "ratio, interleaved (token mixers)"}
    exp, ratio = out.loc["exponent vs constant"], out.loc["ratio, interleaved"]
    assert exp["within_se"] == pytest.approx(0.01) and exp["between_sd"] == pytest.approx(0.1)
    assert exp["run_level_sd"] == pytest.approx(math.sqrt(0.01 - 0.0001)) and exp["run_level_share"] > 0.98
    assert ratio["run_level_sd"] == 0.0 and ratio["between_sd"] == pytest.approx(0.01)
    assert (out["comparisons"] == 1).all() and (out["runs"] == 3).all()
    with pytest.raises(ValueError, match="at least two runs"):
        run_level(tables[:1])
