"""Report rendering from a store: sections, numbers and intervals drawn from the data, valid PNGs, staleness, the CLI.

The stores are filled the way the runner fills them: synthetic per-round samples pooled by
:func:`vmibench.measure.rows.pooled_record` and stored with ``store.add(record, samples)``.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
from conftest import assert_user_error

from vmibench.env import capture, utc_now
from vmibench.measure.rows import failure_record, pooled_record
from vmibench.measure.timing import TimingPolicy
from vmibench.measure.workloads import (
    Cell,
    MaxBatch,
    Memory,
    MixerOp,
    ModelForward,
    Settings,
    WorkerResult,
    Workload,
)
from vmibench.records import BandwidthRecord, PeakRecord
from vmibench.reports import selection, staleness
from vmibench.reports.report import write_report
from vmibench.store import ResultStore
from vmibench.sweep import CPU_LADDER

ENV = capture("cpu")
SETTINGS = Settings(device="cpu", dtype="fp32", threads=2, scan_backend="", policy=TimingPolicy.quick())
ROUNDS, CALLS = 3, 25
SECTIONS = ["Answers", "(1) Linear complexity: the algorithm or the machine?",
            "(2) VMINet against MLLA and FLatten Transformer, matched",
            "(3) EfficientVMamba: slow for its FLOPs, and growing with size?",
            "(4) The causal mask's cost (reconstruction)", "Setup", "Appendix"]  # fmt: skip
APPENDIX = ["Pre-registered comparisons", "Models, parameters and FLOPs", "Latency, throughput and memory at 224",
            "Roofline: bytes moved against measured bandwidth", "Resolution scaling", "Token mixers vs sequence length",
            "Training", "Throughput at max batch", "Accuracy vs latency", "Protocol"]  # fmt: skip

# model: (latency ms at 224, exponent in pixels, GMACs at 224, noise seed).  Models sharing a seed get the same
# relative noise, so their exponents and intervals are identical: "not distinguishable" by construction.
# flatten_swin_t at 224 reuses vminet_t's very samples (identical noisy samples -> ratio interval around 1).
MODELS = {"vminet_t": (10.0, 1.0, 0.35, 1), "deit_t": (20.0, 1.6, 1.26, 2), "effvmamba_t": (40.0, 1.0, 0.81, 1),
          "mlla_t": (20.0, 1.1, 4.15, 3), "flatten_swin_t": (10.0, 1.2, 4.50, 4),
          "vminet_b": (70.0, 1.0, 4.78, 5)}  # fmt: skip
# op: (latency ms at L=256, exponent in L, noise seed)
OPS = {"sdpa": (0.1, 2.0, 6), "vmisa": (0.05, 1.0, 7), "vmisa_recurrent": (0.3, 1.0, 7), "vmisa_matrix": (0.2, 2.0, 8)}
LENGTHS = [256, 1024, 4096, 16384]
# GB moved per image at 224 (scaled with pixels): with the fixture's roofs (100 GFLOP/s, 10 GB/s; ridge at 10
# FLOP/byte) effvmamba_t is memory-bound at roofline_frac 0.5, the others compute-bound and nearer their roof.
GBYTES = {"vminet_t": 0.05, "deit_t": 0.1, "effvmamba_t": 0.2, "mlla_t": 0.3, "flatten_swin_t": 0.3, "vminet_b": 0.4}


def rounds_of(ms: float, seed: int) -> list[tuple[float, ...]]:
    """ROUNDS rounds of CALLS calls around ``ms``: 2% call noise, 0.5% between rounds."""
    rng = np.random.default_rng(seed)
    levels = 1 + 0.005 * rng.standard_normal(ROUNDS)
    return [tuple(ms * level * (1 + 0.02 * rng.standard_normal(CALLS))) for level in levels]


def add_cell(store: ResultStore, workload: Workload, samples: list[tuple[float, ...]], *, gmacs: float | None,
             mem: float, settings: Settings = SETTINGS, env=ENV, gbytes: float | None = None,
             values: dict | None = None) -> None:  # fmt: skip
    """Store one cell the runner's way: a WorkerResult per round, pooled into a row, raw samples alongside."""
    cell = Cell(workload, settings)
    results = [WorkerResult(status="ok", samples_ms=s, warmup_iters=1, warmup_s=0.01, converged=True,
                            memory=Memory(mem, mem + 500, None, "rss_hwm"), params_m=1.0, gmacs=gmacs,
                            gflops=None if gmacs is None else 2 * gmacs, gbytes_moved=gbytes,
                            values=values or {}) for s in samples]  # fmt: skip
    record = pooled_record(cell, results, env, env.key("cpu"))
    store.add(record, [list(s) for s in samples], cell_key=record.cell_key)


def add_failure(store: ResultStore, workload: Workload, status: str, error: str, skip_reason: str = "") -> None:
    """Store a failed or skipped cell the runner's way: a row without samples."""
    record = failure_record(Cell(workload, SETTINGS), ENV, ENV.key("cpu"), status, error, skip_reason=skip_reason)
    store.add(record, cell_key=record.cell_key)


@pytest.fixture(scope="module")
def store_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("rep") / "r.sqlite"
    with ResultStore(path) as store:
        for model, (ms, k, gm, seed) in MODELS.items():
            for i, s in enumerate([224, 448, 896] if model != "vminet_b" else [224]):
                f = (s / 224) ** 2
                workload = ModelForward(model, s, s)
                if model == "deit_t" and s == 896:
                    add_failure(store, workload, "oom", "OutOfMemoryError: synthetic")
                    continue
                samples = rounds_of(ms * f**k, seed * 100 + i)
                if model == "flatten_swin_t" and s == 224:
                    samples = rounds_of(MODELS["vminet_t"][0], MODELS["vminet_t"][3] * 100)
                add_cell(store, workload, samples, gmacs=gm * f, mem=5 * f, gbytes=GBYTES[model] * f)
        for op, (ms, k, seed) in OPS.items():
            for i, L in enumerate(LENGTHS):
                add_cell(store, MixerOp(op, L, 64), rounds_of(ms * (L / 256) ** k, seed * 100 + i),
                         gmacs=0.01 * (L / 256) ** k, mem=L / 100)  # fmt: skip
        add_failure(store, MixerOp("vmisa_matrix", 65536, 64), "skipped", "predicted over --time-cap", "cap")
        store.add(PeakRecord(timestamp=utc_now(), env=ENV, env_key=ENV.key("cpu"), device="cpu", dtype="fp32",
                             threads=2, matmul_n=2048, peak_gflops=100.0))  # fmt: skip
        store.add(BandwidthRecord(timestamp=utc_now(), env=ENV, env_key=ENV.key("cpu"), device="cpu", dtype="fp32",
                                  threads=2, triad_n=1 << 24, bw_peak_gbs=10.0))  # fmt: skip
        for model in ("vminet_t", "deit_t"):
            add_cell(store, ModelForward(model, 224, 224, 1, "train"), rounds_of(3 * MODELS[model][0], 11),
                     gmacs=MODELS[model][2], mem=60.0)  # fmt: skip
        add_cell(store, MaxBatch("vminet_t", 224, 224, "infer", 2.0), rounds_of(400.0, 12), gmacs=None, mem=1500.0,
                 values={"max_batch": 96, "mem_limit_gb": 2.0, "mem_limit_method": "rlimit_as",
                        "probes": {"64": "ok", "128": "oom", "96": "ok", "112": "oom"}})  # fmt: skip
    return path


@pytest.fixture(scope="module")
def built(store_path: Path, tmp_path_factory) -> tuple[Path, str]:
    """The report of the main store, written once: (output directory, REPORT.md text)."""
    out = tmp_path_factory.mktemp("out")
    return out, write_report(str(store_path), out).read_text()


def answers_of(text: str) -> str:
    """Everything above the appendix: the answers table and the four questions' sections."""
    return text.split("\n## Setup")[0]


def section_of(text: str, title: str) -> str:
    return text.split(f"## {title}\n")[1].split("\n## ")[0]


def interval(text: str, pattern: str) -> tuple[float, float, float]:
    """(value, low, high) of the first ``value [low, high]`` after ``pattern`` (a regex)."""
    m = re.search(pattern + r"\s*([-\d.]+)x? \[([-\d.]+), ([-\d.]+)\]", text)
    assert m, (pattern, text)
    return float(m.group(1)), float(m.group(2)), float(m.group(3))


def test_report_has_every_section_and_valid_figures(built: tuple[Path, str]) -> None:
    out, text = built
    for title in SECTIONS:
        assert f"\n## {title}\n" in text
    for title in APPENDIX:
        assert f"\n### {title}\n" in text.split("\n## Appendix\n")[1]
    figures = re.findall(r"\]\((figures/[^)]+\.png)\)", text)
    assert {"figures/latency_vs_resolution.png", "figures/ops_latency_vs_L.png", "figures/accuracy_vs_latency.png",
            "figures/memory_vs_resolution.png", "figures/roofline_models.png", "figures/latency_vs_gmacs.png",
            "figures/ops_memory_vs_L.png"} <= set(figures)  # fmt: skip
    # throughput at batch 1 is 1/latency, utilisation latency over GMACs: never drawn again
    assert not {"figures/throughput_vs_resolution.png", "figures/utilisation_vs_resolution.png"} & set(figures)
    for rel in figures:
        image = mpimg.imread(out / rel)
        assert image.ndim == 3 and image.shape[0] > 100
    assert "threads 2" in text and "scan backend" in text and "torch " + ENV.torch_version in text
    # provenance once: the setup line is in the Setup block only, captions refer to it
    assert "torch " + ENV.torch_version not in text.replace(section_of(text, "Setup"), "")
    assert "setup as in [Setup](#setup)" in text


def test_exponents_side_by_side_with_the_counts(built: tuple[Path, str]) -> None:
    out, text = built
    q1 = section_of(text, SECTIONS[1])
    row = next(line for line in q1.splitlines() if line.startswith("| vminet_t |"))
    value, low, high = interval(row, r"\| 1\.00 \| 1\.00 \|")  # GMACs and bytes moved exponents, then latency's
    assert value == pytest.approx(1.0, abs=0.01) and low <= value <= high and high - low < 0.05
    assert row.rstrip().endswith("| equivalent |")  # latency exponent against the larger count exponent
    assert re.search(r"\| flatten_swin_t \| 3 [^\n]*\| higher \|", q1)  # latency 1.2 against counts 1.0
    assert "for flatten_swin_t (by at least the margin)" in q1
    assert re.search(r"\| deit_t \| 2 \(224x224-448x448\) \|  \|  \| too few sizes \|", q1)  # oom at 896
    answers = section_of(text, "Answers")
    assert "| (1) latency exponent vs 1 (linear) | higher for 1 of 6 models; equivalent for 2" in answers
    for name in ("resolution_fits", "ops_fits"):
        fits = pd.read_csv(out / "tables" / f"{name}.csv")
        lat = fits[fits["metric"] == "latency_ms_median"]
        assert {"slope_ci_low", "slope_ci_high"} <= set(fits.columns) and not lat.empty
        assert (lat["slope_ci_low"] <= lat["slope"]).all() and (lat["slope"] <= lat["slope_ci_high"]).all()
    ops_fits = pd.read_csv(out / "tables" / "ops_fits.csv")
    sdpa = ops_fits[(ops_fits["op"] == "sdpa") & (ops_fits["metric"] == "latency_ms_median")]["slope"].iloc[0]
    assert sdpa == pytest.approx(2.0, abs=0.01)


def test_rivals_are_matched_and_verdicts_are_three_way(built: tuple[Path, str]) -> None:
    text = built[1]
    q2 = section_of(text, SECTIONS[2])
    assert "vminet_b ~ mlla_t, flatten_swin_t" in q2  # GMACs 4.8 against 4.2 and 4.5 (records)
    assert "vminet_t" not in q2  # 0.35 GMACs against 4.2-4.5: never paired with them
    n = len(CPU_LADDER)  # the pre-registered sizes; only 224 is measured here
    value, low, _ = interval(q2, rf"vminet_b/mlla_t: slower at 1 of {n} sizes; no interval at {n - 1}; 224:")
    assert value == pytest.approx(3.5, rel=0.03) and low > 1.1
    row = next(line for line in q2.splitlines() if line.startswith("| vminet_b |"))
    assert "| 82.4 | 80.9 |" in row  # the paper's and the released checkpoint's top-1, side by side
    assert "vminet_b top-1 80.9 (released) below flatten_swin_t 82.1" in q2


def test_ratio_wording_is_the_three_way_verdict() -> None:
    from vmibench.analysis import Estimate
    from vmibench.reports.text import Tally, ratio_clause

    tally = Tally()
    assert ratio_clause(Estimate(0.5, 0.45, 0.55), "a", "b", tally).endswith(": a faster than b")
    assert ratio_clause(Estimate(1.0, 0.97, 1.03), "a", "b", tally).endswith(": equivalent")
    # the interval misses 1 but crosses the margin: undetermined, never "slower"
    assert ratio_clause(Estimate(1.06, 1.02, 1.12), "a", "b", tally).endswith(": undetermined")
    assert (tally.decided, tally.undetermined) == (2, 1)


def test_answers_table_counts_the_verdict_table(built: tuple[Path, str]) -> None:
    out, text = built
    verdicts = pd.read_csv(out / "tables" / "verdicts.csv")
    answers = section_of(text, "Answers")
    for (a, b), rows in verdicts[verdicts["question"] == "q2"].groupby(["a", "b"]):
        line = next(x for x in answers.splitlines() if x.startswith(f"| (2) {a} vs {b} |"))
        assert f" of {len(rows)} sizes" in line
        for verdict, n in rows["verdict"].value_counts().items():
            assert f"{verdict} at {n}" in line, line
    assert "2-thread CPU" in answers and "GPU claims are not tested by this run" in answers


def test_effvmamba_answer_comes_from_the_data_and_the_roofline(built: tuple[Path, str]) -> None:
    out, text = built
    answers = section_of(text, SECTIONS[3])
    assert "fewest FLOPs" not in answers
    # 4 of the 5 others have more GMACs (vminet_t has fewer): "few" is the conditional verdict, not a given
    assert "effvmamba_t has fewer GMACs than 4 of the 5 other models with a count at 224 here: few FLOPs" in answers
    # the same exponent as its GMACs (1.0): its cost per GMAC does not grow with size, said from the data
    assert "equivalent: its cost per GMAC does not grow with size" in answers
    value = float(re.search(r"vminet_t@224 ([\d.]+)x slower", answers).group(1))  # per-GMAC ratio, paired
    assert value == pytest.approx((40.0 / 0.81) / (10.0 / 0.35), rel=0.03)
    assert "effvmamba_t moves 0.200 GB per image, 8.10 FLOP/byte, so it is memory-bound" in answers
    assert re.search(r"its roofline time 20 ms is 0\.49\d of its latency", answers)
    assert "1 of the 6 models with a roofline is memory-bound" in answers
    assert "effvmamba_t is further from its roof than the others" in answers
    roof = pd.read_csv(out / "tables" / "roofline_224.csv").set_index("model")
    assert roof.loc["effvmamba_t", "bound"] == "memory" and roof.loc["vminet_t", "bound"] == "compute"
    assert roof.loc["vminet_t", "arith_intensity"] == pytest.approx(2 * 0.35 / 0.05)
    assert roof.loc["vminet_t", "roofline_ms"] == pytest.approx(0.7 / 100 * 1e3)  # compute roof: 2*gmacs/peak
    assert (out / "figures" / "roofline_models.png").is_file()


def test_effvmamba_with_many_flops_is_not_called_low(tmp_path: Path) -> None:
    """A store where EfficientVMamba has the most GMACs: no sentence may say it has few."""
    path = tmp_path / "heavy.sqlite"
    with ResultStore(path) as store:
        for model, ms, gmacs in (("vminet_t", 10.0, 0.35), ("deit_t", 20.0, 1.26), ("effvmamba_t", 40.0, 5.0)):
            add_cell(store, ModelForward(model, 224, 224), rounds_of(ms, 3), gmacs=gmacs, mem=5.0)
    text = write_report(str(path), tmp_path / "out").read_text()
    assert "effvmamba_t has fewer GMACs than 0 of the 2 other models" in text
    assert "not a low-FLOPs model in this set and the question's premise does not hold here" in text
    for sentence in re.split(r"(?<=[.:;])\s", text):
        if "effvmamba" in sentence.lower() or "efficientvmamba" in sentence.lower():
            assert not re.search(r"fewest|few FLOPs|low[- ]FLOPs? model(?! in this set and)|fewer FLOPs", sentence), (
                sentence
            )


def test_training_and_max_batch_sections(built: tuple[Path, str]) -> None:
    out, text = built
    training = text.split("## Training")[1].split("\n## ")[0]
    assert re.search(r"\| vminet_t \| 224 \| 1 \| 30\.\d", training)
    low, high = map(float, re.findall(r"A training step costs ([\d.]+)-([\d.]+)x", training)[0])
    assert low == pytest.approx(3.0, abs=0.05) and high == pytest.approx(3.0, abs=0.05)  # the fixture's 3x
    assert "within the usual 2.5-4x for every model" in training
    maxbatch = text.split("## Throughput at max batch")[1].split("\n## ")[0]
    assert re.search(r"\| vminet_t \| 224 \| infer \| 96 \| 2[34]\d", maxbatch)  # 96 images / ~0.4 s
    rows = pd.read_csv(out / "tables" / "maxbatch.csv")
    assert rows["max_batch"].tolist() == [96] and "128" in rows["probes"].iloc[0]


def test_causal_mask_and_crossovers_with_intervals(built: tuple[Path, str]) -> None:
    out, text = built
    q4 = section_of(text, SECTIONS[4])
    for L in LENGTHS:  # the whole L range, each with its verdict
        assert re.search(rf"\| {L} \| 6\.00x \[[\d.]+, [\d.]+\] slower \| [\d.]+x \[[\d.]+, [\d.]+\] slower \|", q4)
    # VMINet-T's stage 1 at 224 (56 x 56 tokens, from its stage strides) lies between measured lengths
    assert "stage 1 (L=3,136): recurrent ~6.00x (interpolated between L=1024 and 4096, no verdict)" in q4
    # stages 3 and 4 (14 x 14 and 7 x 7 tokens) lie below every form's range: said once, not once per stage and form
    assert "stages 3, 4 (L=196, 49): outside the measured L range of every form." in q4
    assert q4.count("outside the") == 1
    assert "vmisa_matrix was not run from L=65536 (skipped" in q4
    assert "| (4) recurrent mask / vmisa | slower at 4 of 4 lengths |" in text
    assert "slower from L=256 on" in text
    cross = pd.read_csv(out / "tables" / "ops_crossovers.csv").set_index("op")
    assert {"crossover_ci_low", "crossover_ci_high", "never_fraction", "at_smallest"} <= set(cross.columns)
    assert cross.loc["vmisa", "at_smallest"] and cross.loc["vmisa", "faster_than_sdpa_from_L"] == 256
    rec = cross.loc["vmisa_recurrent"]
    assert rec["crossover_ci_low"] < rec["faster_than_sdpa_from_L"] < rec["crossover_ci_high"]
    assert rec["faster_than_sdpa_from_L"] == pytest.approx(768, rel=0.05) and not rec["at_smallest"]
    assert cross.loc["vmisa_matrix", "never_fraction"] == 1.0
    ops_section = text.split("## Token mixers vs sequence length")[1]
    assert re.search(r"\| vmisa \| fp32 \| 64 \| 1 \| ≤ 256", ops_section)
    assert "none up to 16384" in ops_section


def test_tables_show_intervals_protocol_and_failures(built: tuple[Path, str]) -> None:
    out, text = built
    table = text.split("## Resolution scaling")[1]
    deit_row = next(line for line in table.splitlines() if line.startswith("| deit_t"))
    assert deit_row.rstrip().endswith("oom |")
    lat = pd.read_csv(out / "tables" / "latency_224.csv")
    assert {"latency_ms_ci_low", "latency_ms_ci_high", "rounds", "process_spread", "stale"} <= set(lat.columns)
    assert (lat["latency_ms_ci_low"] < lat["latency_ms_median"]).all() and (lat["rounds"] == ROUNDS).all()
    section = text.split("## Latency, throughput and memory at 224")[1].split("\n## ")[0]
    assert "| ci95 |" in section and re.search(r"\| vminet_t \| 10\.\d \| \d+\.\d+-\d+\.\d+ \| 3 \|", section)
    setup = section_of(text, "Setup")
    protocol = text.split("### Protocol\n")[1]
    policy = TimingPolicy.quick()
    assert f"each cell: {ROUNDS} rounds (worker processes)" in setup
    assert f"warm-up >= {policy.min_warmup_iters} calls" in protocol and "precision target 1%" in protocol


@pytest.fixture
def small_store(tmp_path: Path):
    """Latency rows only (no peak, no ops), one row without GMACs, measured at ``commit`` with 2 rounds."""

    def make(commit: str) -> Path:
        env = replace(ENV, git_commit=commit)
        settings = replace(SETTINGS, policy=TimingPolicy(rel_precision=0.02, max_time_s=3.0))
        path = tmp_path / f"{commit.replace('+', '_')}.sqlite"
        with ResultStore(path) as store:
            for model, ms in (("vminet_t", 10.0), ("mlla_t", 20.0)):
                for i, s in enumerate([224, 448]):
                    samples = rounds_of(ms * 4**i, i)[:2]
                    gmacs = None if (model, s) == ("mlla_t", 448) else 0.35 * 4**i
                    add_cell(store, ModelForward(model, s, s), samples, gmacs=gmacs, mem=5.0, settings=settings,
                             env=env)  # fmt: skip
        return path

    return make


def test_latency_that_grows_slower_than_its_counts_is_read_as_the_machine(tmp_path: Path) -> None:
    """A ladder whose latency grows as its GMACs shows the algorithm; one that grows by half their exponent (a
    fixed per-call cost, as a GPU at batch 1 shows) is read as the machine, not as a cheaper algorithm."""
    path = tmp_path / "slow.sqlite"
    with ResultStore(path) as store:
        for model, k, seed in (("vminet_t", 1.0, 1), ("deit_t", 0.5, 2)):
            for i, s in enumerate([224, 448, 896]):
                f = (s / 224) ** 2
                add_cell(store, ModelForward(model, s, s), rounds_of(10.0 * f**k, seed * 100 + i), gmacs=f, mem=5.0)
    section = section_of(write_report(str(path), tmp_path / "out").read_text(), SECTIONS[1])
    assert "as its counts do (equivalent within the margin) for vminet_t: there the ladder shows" in section
    assert "slower than its counts (lower by at least the margin) for deit_t: costs that do not scale" in section
    assert "shows the machine, not the algorithm's complexity" in section


def test_a_rerun_at_a_later_commit_adds_to_the_report_and_other_libraries_replace_it(tmp_path: Path) -> None:
    """One machine and set of libraries: the newest row of each cell, whichever commit measured it (a model that
    failed at one commit and was measured again after a fix); rows under other library versions, when newer, are
    another environment and the report takes theirs alone."""
    first, fixed = replace(ENV, git_commit="aaaaaaaaaaaa"), replace(ENV, git_commit="bbbbbbbbbbbb")
    path = tmp_path / "two_commits.sqlite"
    with ResultStore(path) as store:
        add_cell(store, ModelForward("vminet_t", 224, 224), rounds_of(10.0, 0), gmacs=0.35, mem=5.0, env=first)
        failed = failure_record(Cell(ModelForward("vim_t", 224, 224), SETTINGS), first, first.key("cpu"), "error",
                                "CompilationError")  # fmt: skip
        store.add(failed, cell_key=failed.cell_key)
        add_cell(store, ModelForward("vim_t", 224, 224), rounds_of(30.0, 0), gmacs=1.5, mem=5.0, env=fixed)
    with ResultStore(path, readonly=True) as view:
        lat = selection.load(view).latency
    assert sorted(zip(lat["model"], lat["status"], lat["git_commit"], strict=True)) == [
        ("vim_t", "ok", "bbbbbbbbbbbb"),
        ("vminet_t", "ok", "aaaaaaaaaaaa"),
    ]
    with ResultStore(path) as store:
        other = replace(fixed, torch_version="0.0.0-other")
        add_cell(store, ModelForward("deit_t", 224, 224), rounds_of(5.0, 0), gmacs=1.3, mem=5.0, env=other)
    with ResultStore(path, readonly=True) as view:
        assert list(selection.load(view).latency["model"]) == ["deit_t"]


def test_stale_models_are_named_in_the_header(small_store, monkeypatch) -> None:
    calls = []

    def fake_git(*args: str) -> str | None:
        calls.append(args)
        if args[0] == "rev-parse":
            return "fedcba987654\n"
        if args[0] == "status":
            return ""  # a clean working tree
        assert args[:3] == ("diff", "--name-only", "0123456789ab")  # "+dirty" stripped: diff its committed part
        return "baselines/mlla.py\nREADME.md\n"

    monkeypatch.setattr(staleness, "_git", fake_git)
    checked = checked_staleness(small_store("0123456789ab+dirty"))
    head = " ".join(staleness.staleness_lines(checked))
    assert "measured at commit `0123456789ab+dirty`; report generated at `fedcba987654`" in head
    assert "**Stale**" in head and "mlla_t (baselines/mlla.py)" in head and "vminet_t (" not in head
    assert "had uncommitted changes" in head
    diff_args = next(a for a in calls if a[0] == "diff")
    assert "baselines/mlla.py" in diff_args and "vmibench/modeling.py" in diff_args
    assert checked.mark("mlla_t") == "stale" and checked.mark("vminet_t") == ""

    monkeypatch.setattr(staleness, "_git", lambda *args: None)  # no git / not a checkout
    head = " ".join(staleness.staleness_lines(checked_staleness(small_store("0123456789ab"))))
    assert "report generated at unknown" in head and "Stale status unknown for: mlla_t, vminet_t" in head


def checked_staleness(path: Path) -> staleness.Staleness:
    """The staleness of the report's models and ops, checked without drawing the figures."""
    with ResultStore(path) as store:
        data = selection.load(store)
    return staleness.check_staleness(data.latency, data.ops)


def test_a_rows_scan_backend_kernel_is_among_its_files(monkeypatch) -> None:
    """A row that ran the Triton scan is stale when that kernel changed; a CPU row of the same model (torch scan)
    and a model without a scan are not."""
    changed = "vmibench/ops/triton_scan.py\n"
    monkeypatch.setattr(staleness, "_git", lambda *args: {"rev-parse": "fedcba987654\n", "status": "",
                                                         "diff": changed}[args[0]])  # fmt: skip
    rows = pd.DataFrame({"model": ["vim_t", "vmamba_t", "mlla_t"], "git_commit": ["0123456789ab"] * 3,
                         "scan_backend": ["triton", "torch", ""]})  # fmt: skip
    checked = staleness.check_staleness(rows, pd.DataFrame())
    assert checked.mark("vim_t") == "stale" and checked.mark("vmamba_t") == "" and checked.mark("mlla_t") == ""


def test_code_files_of_models_and_ops() -> None:
    assert {"baselines/mlla.py", "vmibench/modeling.py"} <= set(staleness.model_files("mlla_t"))
    assert "vmibench/ops/selective_scan.py" in staleness.model_files("vim_t")
    assert "vmibench/ops/selective_scan.py" not in staleness.model_files("mlla_t")
    assert set(staleness.op_files("mlla_linear")) == {"vmibench/ops/mixers.py", "baselines/mlla.py"}
    assert "vmibench/ops/selective_scan.py" in staleness.op_files("selective_scan[torch]")
    head = staleness.head_commit()
    assert head is None or re.fullmatch(r"[0-9a-f]{12}(\+dirty)?", head)  # +dirty: tracked files modified


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_head_is_dirty_for_code_not_for_a_committed_result_set(tmp_path: Path, monkeypatch) -> None:
    """`vmibench publish` rewrites a tracked result set before it reads HEAD: in a clean clone that must not make
    the report's commit "+dirty", while any other tracked change must."""
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--no-local", str(ROOT), str(clone)], check=True, timeout=120)
    monkeypatch.setattr(staleness, "_repo_root", lambda: clone)
    head = staleness.head_commit()
    assert head is not None and re.fullmatch(r"[0-9a-f]{12}", head)
    report = next((clone / staleness.RESULTS_DIR).glob("*/REPORT.md"))
    report.write_text(report.read_text() + "rewritten\n")
    assert staleness.head_commit() == head
    (clone / "README.md").write_text("changed\n")
    assert staleness.head_commit() == head + "+dirty"


def test_latency_rows_alone_from_the_cli(vmi, small_store, tmp_path: Path) -> None:
    """No peak row, no ops rows, one row without GMACs: figures that cannot be drawn are skipped with a note."""
    out = tmp_path / "rep"
    rep = vmi("report", "--db", str(small_store(ENV.git_commit)), "--out", str(out))
    assert rep.returncode == 0, rep.stderr
    text = (out / "REPORT.md").read_text()
    assert "## Answers" in text and "| vminet_t | 2 (224x224-448x448) |  |  | too few sizes |" in text
    assert (out / "figures" / "latency_vs_resolution.png").is_file() and (
        out / "figures" / "latency_vs_gmacs.png"
    ).is_file()
    for png in (out / "figures").glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "each cell: 2 rounds (worker processes)" in text and "precision target 2%" in text
    assert "1-3 s" in text  # the cell's timing budget, from the stored policy
    assert "## Token mixers vs sequence length\n\n*(no ops rows" in text
    assert "Throughput at max batch" not in text  # no max-batch rows: no section at all
    assert_user_error(vmi("report", "--db", "missing.sqlite"), "no results database")


def test_compare_table_shows_every_header_at_80_columns(vmi, tmp_path: Path, monkeypatch) -> None:
    """The terminal table is compact (baseline and size in the title, a shared `paired` in the caption) and a
    model without a comparable row says why in the verdict column; CSV keeps every column."""
    db = tmp_path / "cmp.sqlite"
    with ResultStore(db) as store:
        for model in ("vminet_t", "flatten_swin_t"):  # the same samples: a ratio of 1, equivalent within 10%
            add_cell(store, ModelForward(model, 224, 224), rounds_of(10.0, 1), gmacs=0.35, mem=5.0)
    monkeypatch.setenv("COLUMNS", "80")
    args = ("compare", "--models", "flatten_swin_t,deit_t", "--baseline", "vminet_t", "--db", str(db))
    proc = vmi(*args)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    header = next(line for line in lines if line.split()[:1] == ["model"])
    assert header.split() == ["model", "latency_ms_median", "ratio", "[95%", "CI]", "verdict"], proc.stdout
    assert "…" not in proc.stdout and max(map(len, lines)) <= 80, proc.stdout
    assert re.search(r"flatten_swin_t +10\.\d+ +1\.000 \[(0\.9\d+|1\.000), 1\.0\d+\] +equivalent", proc.stdout)
    assert "not stored with" in proc.stdout and "all rows: paired True" in proc.stdout
    frame = pd.read_csv(io.StringIO(vmi(*args, "--format", "csv").stdout))
    assert list(frame.columns[:4]) == ["model", "baseline", "res", "latency_ms_median"] and len(frame.columns) == 15


def test_compare_never_sets_a_training_step_against_an_inference_row(vmi, tmp_path: Path) -> None:
    """Rows match on mode and task too: a training-step row of a model is not its inference row, and the verdict is
    the three-way one with the 10% margin."""
    db = tmp_path / "modes.sqlite"
    with ResultStore(db) as store:
        add_cell(store, ModelForward("vminet_t", 224, 224), rounds_of(10.0, 1), gmacs=0.35, mem=5.0)
        add_cell(store, ModelForward("deit_t", 224, 224, mode="train"), rounds_of(30.0, 2), gmacs=1.0, mem=5.0)
        args = ("compare", "--models", "deit_t", "--baseline", "vminet_t", "--db", str(db), "--format", "json")
        (infer,) = json.loads(vmi(*args).stdout)
        assert infer["status"] == "not stored with these settings" and infer.get("ratio") is None
        assert_user_error(vmi(*args, "--mode", "train"), "no ok row of vminet_t", "mode train")
        add_cell(store, ModelForward("vminet_t", 224, 224, mode="train"), rounds_of(20.0, 3), gmacs=0.35, mem=5.0)
    (train,) = json.loads(vmi(*args, "--mode", "train").stdout)
    assert train["status"] == "ok" and 1.4 < train["ratio"] < 1.6 and train["verdict"] == "slower"


def results_rows(vmi, db: Path, *args: str) -> pd.DataFrame:
    """`vmibench results --db DB ARGS` as a frame (CSV; sizes as printed: "224", "512x1024")."""
    proc = vmi("results", "--db", str(db), "--format", "csv", *args)
    assert proc.returncode == 0, proc.stderr
    return pd.read_csv(io.StringIO(proc.stdout), dtype={"res": str})


def test_results_filter_by_size(vmi, small_store) -> None:
    db = small_store(ENV.git_commit)
    with ResultStore(db) as store:
        add_cell(store, ModelForward("vminet_t", 512, 1024), rounds_of(30.0, 5)[:2], gmacs=3.5, mem=9.0)
    rows = results_rows(vmi, db, "--res", "448,512x1024")
    assert sorted(zip(rows["model"], rows["res"], strict=True)) == [
        ("mlla_t", "448"), ("vminet_t", "448"), ("vminet_t", "512x1024")]  # fmt: skip
    assert list(results_rows(vmi, db, "--res", "224", "--models", "mlla_t")["res"]) == ["224"]
    assert set(results_rows(vmi, db, "--table", "samples", "--res", "512x1024")["name"]) == {"vminet_t"}
    assert results_rows(vmi, db, "--res", "800x1280").empty
    assert_user_error(vmi("results", "--db", str(db), "--res", "224,abc"), "bad resolution")


def test_results_columns_take_the_printed_name_of_the_time_stamp(vmi, small_store) -> None:
    """Rows are printed with `measured_at` (the stored `timestamp`): --columns takes either name."""
    stamped = results_rows(vmi, small_store(ENV.git_commit), "--columns", "model,measured_at,timestamp")
    assert list(stamped.columns) == ["model", "measured_at", "timestamp"] and len(stamped) == 4
    assert (stamped["measured_at"] == stamped["timestamp"]).all()


# -- a report a reviewer reads in five minutes -------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]
WORD_BUDGET = 1500  # words above the appendix


def above_appendix(text: str) -> str:
    assert "\n## Appendix\n" in text
    return text.split("\n## Appendix\n")[0]


def test_answers_table_is_the_first_thing_after_the_title(built: tuple[Path, str]) -> None:
    lines = built[1].splitlines()
    assert lines[0].startswith("# vmibench report -- ") and lines[1] == "" and lines[3] == ""
    assert lines[4] == "## Answers" and lines[5] == ""
    assert lines[6] == "| question | verdict | effect [interval, level] | where | main caveat |"


COMMITTED_REPORTS = sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("results/*/REPORT.md"))


@pytest.mark.parametrize("source", ["synthetic", "tests/fixtures/resultset/REPORT.md", *COMMITTED_REPORTS])
def test_words_above_the_appendix_fit_the_budget(built: tuple[Path, str], source: str) -> None:
    text = built[1] if source == "synthetic" else (ROOT / source).read_text()
    words = len(above_appendix(text).split())
    assert 0 < words <= WORD_BUDGET, words


def test_a_two_size_ladder_is_too_few_sizes_never_a_verdict(small_store, tmp_path: Path) -> None:
    text = write_report(str(small_store(ENV.git_commit)), tmp_path / "out").read_text()  # 224 and 448 only
    front = above_appendix(text)
    assert "| vminet_t | 2 (224x224-448x448) |  |  | too few sizes |" in front
    assert "| mlla_t | 2 (224x224-448x448) |  |  | too few sizes |" in front
    assert not re.search(r"R\^?2|latency grows faster|No model's latency grows", front)
    row = next(line for line in front.splitlines() if line.startswith("| (1) latency exponent vs 1"))
    assert not re.search(r"\b(higher|lower|equivalent|undetermined)\b", row), row
    fits = text.split("### Resolution scaling\n")[1]
    assert not re.search(r"\| latency_ms_median \| [-\d.]+ \[", fits)  # no exponent printed from two points
    assert "| too few sizes |" in fits


def test_a_toy_accuracy_set_is_never_called_imagenet(store_path: Path, tmp_path: Path) -> None:
    from vmibench.accuracy import AccuracyRecord

    path = tmp_path / "acc.sqlite"
    path.write_bytes(store_path.read_bytes())
    with ResultStore(path) as store:
        for model, top1, images, classes, name in (("vminet_t", 99.0, 21, 3, "toyset"),
                                                   ("deit_t", 70.0, 50_000, 1_000, "val")):  # fmt: skip
            store.add(AccuracyRecord(timestamp=utc_now(), env=ENV, env_key=ENV.key("cpu"), model=model, res="224",
                                     top1=top1, n_samples=images, num_classes=classes, dataset=name,
                                     data_dir=f"/data/{name}"))  # fmt: skip
    out = tmp_path / "out"
    text = write_report(str(path), out).read_text()
    points = pd.read_csv(out / "tables" / "accuracy_vs_latency.csv").set_index(["model", "top1_source"])
    assert ("deit_t", "measured (ImageNet-1k val)") in points.index  # the full validation set is ImageNet top-1
    assert 99.0 not in set(points["top1"])  # the toy set's 99% is not plotted as ImageNet top-1
    assert "| vminet_t | 224 | toyset (21 images, 3 classes) | 99 |" in text
    for line in text.splitlines():
        if "toyset" in line or "99.0" in line:
            assert "imagenet" not in line.lower() or "not ImageNet" in line, line


def test_every_figure_passes_the_lint(store_path: Path, tmp_path: Path) -> None:
    """Every figure the report makes, from the synthetic store and the committed fixture, linted as it is built."""
    from vmibench.reports import plots
    from vmibench.reports.lint import lint_figure

    found: dict[str, list[str]] = {}
    hook = lambda fig, path: found.__setitem__(f"{path.parent.parent.name}/{path.name}", lint_figure(fig))  # noqa: E731
    plots.FIGURE_HOOKS.append(hook)
    try:
        texts = {name: write_report(str(db), tmp_path / name).read_text()
                 for name, db in (("synthetic", store_path),
                                  ("fixture", Path(__file__).parent / "fixtures/resultset/store.sqlite"))}  # fmt: skip
    finally:
        plots.FIGURE_HOOKS.remove(hook)
    drawn = {f"{name}/{Path(rel).name}" for name, text in texts.items()
             for rel in re.findall(r"\]\((figures/[^)]+\.png)\)", text)}  # fmt: skip
    assert drawn and drawn <= set(found)  # every figure in a report went through the lint
    assert {"synthetic/roofline_models.png", "synthetic/accuracy_vs_latency.png",
            "fixture/roofline_mixers.png"} <= drawn  # fmt: skip
    assert {name: problems for name, problems in found.items() if problems} == {}


def test_the_lint_catches_overlaps_off_canvas_text_and_covered_points() -> None:
    import matplotlib.pyplot as plt

    from vmibench.reports.lint import lint_figure

    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([0, 1, 2], [0, 1, 2], marker="o", label="data")
    ax.legend(loc="center")  # over the middle point
    ax.annotate("first label", (1, 1))
    ax.annotate("second label", (1, 1))  # on top of the first
    fig.text(0.9, 0.5, "a footer running off the right edge of the canvas")
    problems = lint_figure(fig)
    plt.close(fig)
    assert any(p.startswith("overlapping text: 'first label' and 'second label'") for p in problems), problems
    assert any(p.startswith("text outside the canvas: 'a footer") for p in problems), problems
    assert "legend covers 1 data point(s)" in problems, problems
