"""Evidence: committed result sets rebuild byte for byte, scratch never touches them, short rows are topped up,
CSV carries every column, comparisons are three-way verdicts on paired intervals, the roof is the best peak."""

from __future__ import annotations

import io
import shlex
import shutil
import sqlite3
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import assert_user_error
from vmibench.resultset import DATA, MANIFEST, check_data, rebuild, verify

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "resultset"
QUICK = ("--threads", "1", "--max-time", "0.15", "--no-peak", "--db", "s.sqlite")


def committed_result_sets() -> list[Path]:
    return sorted(p.parent for p in (ROOT / "results").glob(f"*/{MANIFEST}"))


@pytest.mark.parametrize("folder", [FIXTURE, *committed_result_sets()], ids=lambda p: p.name)
def test_committed_result_sets_rebuild_byte_for_byte(folder: Path) -> None:
    diffs, _ = verify(folder)
    assert diffs == []


def test_a_changed_report_or_changed_data_is_caught(tmp_path: Path, vmi) -> None:  # type: ignore[no-untyped-def]
    copy = tmp_path / "rs"
    shutil.copytree(FIXTURE, copy)
    report = copy / "REPORT.md"
    report.write_text(report.read_text().replace("vmibench report", "vmibench  report", 1))
    diffs, _ = verify(copy)
    assert diffs == ["REPORT.md: differs"]
    assert vmi("report", "--from", str(copy), "--check").returncode == 1
    with sqlite3.connect(copy / DATA) as conn:  # one sample nudged: the hash no longer matches the manifest
        conn.execute("UPDATE samples SET ms = ms * 1.01 WHERE rowid = 1")
    before = (copy / DATA).read_bytes()
    assert_user_error(vmi("report", "--from", str(copy), "--out", str(tmp_path / "r")), "SHA-256", "republish")
    assert (copy / DATA).read_bytes() == before and not (tmp_path / "r").exists()


def test_a_scratch_report_is_never_written_into_a_result_set(tmp_path: Path, vmi) -> None:  # type: ignore[no-untyped-def]
    copy = tmp_path / "rs"
    shutil.copytree(FIXTURE, copy)
    before = {p: p.read_bytes() for p in copy.rglob("*") if p.is_file()}
    assert_user_error(vmi("report", "--db", str(copy / DATA), "--out", str(copy)), "committed result set")
    assert {p: p.read_bytes() for p in copy.rglob("*") if p.is_file()} == before
    assert vmi("report", "--db", str(copy / DATA)).returncode == 0  # default: report/ in the working directory
    assert (tmp_path / "report" / "REPORT.md").is_file()


def test_a_rebuild_depends_on_data_and_manifest_only(tmp_path: Path) -> None:
    a, b = rebuild(FIXTURE, tmp_path / "a"), rebuild(FIXTURE, tmp_path / "b")
    assert a.read_bytes() == b.read_bytes() == (FIXTURE / "REPORT.md").read_bytes()
    manifest = check_data(FIXTURE)
    setup = a.read_text().split("\n## Setup\n")[1].split("\n## ")[0]
    assert f"SHA-256 `{manifest.data_sha256[:16]}`" in setup  # the Setup block names the data's hash


def _readme_commands() -> list[list[str]]:
    text = (ROOT / "README.md").read_text()
    block = text[text.index("## Using it") :]
    block = block[: block.index("\n## ", 5)]
    out = []
    for line in block.splitlines():
        if line.startswith("vmibench "):
            out.append(shlex.split(line.split("#", 1)[0])[1:])
    return out


def test_readme_commands_never_touch_results(tmp_path: Path, vmi, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """The README's "Using it" commands, run inside a clone, change nothing under results/ (git status --ignored).

    Workers are replaced by instant synthetic results: what is under test is where each command writes."""
    from vmibench.measure.executor import LocalExecutor
    from vmibench.measure.workloads import Memory, WorkerResult

    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    for folder in committed_result_sets():  # the working tree's result sets, committed or not yet
        target = clone / folder.relative_to(ROOT)
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(folder, target)
    subprocess.run(["git", "-C", str(clone), "add", "-A", "."], check=True)
    subprocess.run(["git", "-C", str(clone), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "sets",
                    "--allow-empty"], check=True)  # fmt: skip

    def fake_run(self: object, cell: object, timeout_s: float) -> WorkerResult:
        return WorkerResult(status="ok", samples_ms=(5.0, 5.1, 4.9), converged=True, warmup_iters=1,
                            memory=Memory(10.0, 100.0, None, "rss_hwm"), gmacs=1.0, gflops=2.0)  # fmt: skip

    monkeypatch.setattr(LocalExecutor, "run", fake_run)
    monkeypatch.chdir(clone)
    commands = _readme_commands()
    assert any(c[0] == "report" for c in commands) and any(c[0] == "latency" for c in commands)
    for args in commands:
        if args[0] in ("accuracy", "check") and args[1:2] != ["calibrate"]:
            continue  # accuracy needs ImageNet and a checkpoint; the cross-checks time real workers
        vmi(*args)
    status = subprocess.run(["git", "status", "--porcelain", "--ignored", "results/"], capture_output=True, text=True,
                            check=True).stdout  # fmt: skip
    assert status == ""
    assert (clone / "vmibench.sqlite").is_file()  # the scratch store, in the working directory


def test_a_one_round_row_is_topped_up_to_three_rounds(vmi) -> None:  # type: ignore[no-untyped-def]
    from vmibench.store import ResultStore

    first = vmi("latency", "--models", "vminet_t", "--res", "64", "--rounds", "1", *QUICK, "--format", "csv")
    assert first.returncode == 0, first.stderr
    again = vmi("latency", "--models", "vminet_t", "--res", "64", "--rounds", "3", *QUICK, "--format", "csv")
    assert again.returncode == 0, again.stderr
    row = pd.read_csv(io.StringIO(again.stdout)).iloc[0]
    assert row["rounds"] == 3 and row["latency_ms_ci_low"] < row["latency_ms_ci_high"]
    with ResultStore("s.sqlite", readonly=True) as store:
        rows = store.read("latency", keep_row_id=True).sort_values("row_id")
        samples = store.samples("latency", [int(rows["row_id"].iloc[-1])])
    assert list(rows["rounds"]) == [1, 3]
    assert sorted(samples["round"].unique()) == [0, 1, 2]
    first_samples = pd.read_csv(io.StringIO(first.stdout)).iloc[0]
    # the stored round is pooled, not measured again: the new row's first round is the old row's samples
    assert rows["run_id"].iloc[0] == rows["run_id"].iloc[1]
    assert first_samples["n_iters"] == int((samples["round"] == 0).sum())


def test_csv_and_json_carry_every_column(vmi) -> None:  # type: ignore[no-untyped-def]
    from vmibench.store import ResultStore

    cmds = {
        "latency": ("latency", "--models", "vminet_t", "--res", "64", "--rounds", "2", *QUICK),
        "sweep": ("sweep", "--models", "vminet_t", "--res", "64", "--rounds", "2", *QUICK),
        "ops": ("ops", "--ops", "vmisa", "--seq", "256", "--rounds", "2", *QUICK),
        "results": ("results", "--db", "s.sqlite"),
    }
    for name, args in cmds.items():
        proc = vmi(*args, "--format", "csv")
        assert proc.returncode == 0, (name, proc.stderr)
        frame = pd.read_csv(io.StringIO(proc.stdout))
        table = "ops" if name == "ops" else "latency"
        with ResultStore("s.sqlite", readonly=True) as store:
            stored = set(store.columns(table)) - {"row_id", "timestamp"}
        assert {"rounds", "latency_ms_ci_low", "latency_ms_ci_high", "ci_method"} <= set(frame.columns), name
        assert stored <= set(frame.columns), (name, stored - set(frame.columns))
        js = vmi(*args, "--format", "json")
        assert stored <= set(pd.read_json(io.StringIO(js.stdout)).columns), name


# -- verdicts -------------------------------------------------------------------------------------------------------


def _frames(levels: dict[tuple[str, int], float], rounds: int = 5, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Latency rows and samples: each (model, res) at its level, a shared drift per round, 1% process noise."""
    rng = np.random.default_rng(seed)
    drift = rng.lognormal(0, 0.2, rounds)
    rows, samples = [], []
    for i, ((model, res), level) in enumerate(levels.items()):
        rows.append({"row_id": i, "model": model, "height": res, "width": res, "batch": 1, "status": "ok",
                     "dtype": "fp32", "cell_key": f"k{i}", "run_id": "r", "gmacs": 1.0})  # fmt: skip
        for r in range(rounds):
            for j, ms in enumerate(level * drift[r] * rng.lognormal(0, 0.01, 4)):
                samples.append({"row_id": i, "round": r, "iter": j, "ms": ms})
    return pd.DataFrame(rows), pd.DataFrame(samples)


def test_verdicts_are_three_way_on_paired_intervals() -> None:
    from vmibench.analysis.comparisons import evaluate
    from vmibench.questions import EXPONENT, RATIO, Comparison

    sizes = (224, 512, 1024)
    levels = {("lin", s): s**2 / 1e3 for s in sizes} | {("quad", s): s**4 / 1e8 for s in sizes}
    levels |= {("same", s): 1.02 * s**2 / 1e3 for s in sizes}
    rows, samples = _frames(levels)
    comps = [Comparison("q", RATIO, "lin", "quad", at=1024), Comparison("q", RATIO, "lin", "same", at=224),
             Comparison("q", EXPONENT, "lin", "quad"), Comparison("q", EXPONENT, "lin"),
             Comparison("q", EXPONENT, "quad")]  # fmt: skip
    table = evaluate(comps, {"latency": rows}, {"latency": samples})
    assert list(table["verdict"]) == ["faster", "equivalent", "lower", "equivalent", "higher"]
    # the drift shared by every cell of a round (lognormal sd 0.2) cancels in the paired intervals: the ratio of two
    # cells 2% apart is resolved as equivalent although each cell's own interval spans tens of percent
    assert table.loc[1, "ci_high"] - table.loc[1, "ci_low"] < 0.05


def test_a_fit_on_two_sizes_is_never_a_verdict() -> None:
    from vmibench.analysis.comparisons import evaluate
    from vmibench.questions import EXPONENT, Comparison

    rows, samples = _frames({("lin", 224): 1.0, ("lin", 512): 5.2})
    table = evaluate([Comparison("q", EXPONENT, "lin")], {"latency": rows}, {"latency": samples})
    assert table["verdict"].iloc[0] == "no interval" and table["rounds"].iloc[0] == 0


def test_the_roof_is_the_best_peak_and_a_cell_above_it_is_flagged() -> None:
    from vmibench.analysis.roofline import add_roofline

    env = {"env_key": "e", "device": "cpu", "dtype": "fp32", "threads": 1, "status": "ok"}
    peak = pd.DataFrame([{**env, "matmul_n": 512, "peak_gflops": 30.0, "peak_gflops_best": 36.0},
                         {**env, "matmul_n": 2048, "peak_gflops": 38.0, "peak_gflops_best": 40.0}])  # fmt: skip
    bw = pd.DataFrame([{**env, "bw_peak_gbs": 10.0, "timestamp": "t"}])
    timed = pd.DataFrame([{**env, "model": "m", "gmacs": 1.0, "gflops": 2.0, "gbytes_moved": 0.01, "batch": 1,
                           "latency_ms_median": ms} for ms in (100.0, 40.0)])  # fmt: skip
    out = add_roofline(timed, peak, bw)
    assert list(out["peak_gflops"]) == [40.0, 40.0]  # the fastest round of the fastest size
    assert list(out["roof_exceeded"]) == [False, True]  # 2 GFLOP in 40 ms = 50 GFLOP/s > 40: the roof is invalid


# -- calibration and stability --------------------------------------------------------------------------------------


def _cells(seed: int, n: int = 30, rounds: int = 3) -> list[list[np.ndarray]]:
    """Cells whose process levels spread (lognormal sd 0.05-0.2) around each cell's level, calls 2% around them."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        sd = rng.uniform(0.05, 0.2)
        out.append([np.exp(lv + 0.02 * rng.standard_normal(20)) for lv in sd * rng.standard_normal(rounds)])
    return out


def test_the_calibration_study_finds_the_bootstrap_short_and_the_t_interval_on_level() -> None:
    from vmibench.analysis.calibration import fit_structure, simulate_adaptive, simulate_coverage

    structure = fit_structure(_cells(0))
    table = simulate_coverage(structure, round_counts=(3,), trials=400, seed=1).set_index("method")["actual"]
    assert abs(table["t-rounds"] - 0.95) < 0.035 and table["bootstrap"] < 0.88
    adaptive = simulate_adaptive(structure, min_rounds=3, max_rounds=6, margin=0.1, trials=300, seed=2).iloc[0]
    assert adaptive["actual"] >= 0.9 and 3 <= adaptive["mean_rounds"] <= 6


def test_check_calibrate_stores_its_table_and_stability_compares_two_runs(tmp_path: Path, vmi) -> None:  # type: ignore[no-untyped-def]
    from vmibench.store import ResultStore

    copy = tmp_path / "store.sqlite"
    shutil.copy(FIXTURE / DATA, copy)
    with ResultStore(copy, readonly=True) as store:
        before = len(store.read("calibration"))
    proc = vmi("check", "calibrate", "--db", str(copy), "--trials", "60", "--format", "csv")
    assert proc.returncode == 0, proc.stderr
    table = pd.read_csv(io.StringIO(proc.stdout))
    assert {"t-rounds", "bootstrap", "re-logmean"} <= set(table["method"]) and set(table["nominal"]) == {0.95}
    with ResultStore(copy, readonly=True) as store:
        assert len(store.read("calibration")) == before + len(table)
    same = vmi("check", "stability", str(FIXTURE), str(copy), "--format", "csv")
    assert same.returncode == 0, same.stderr
    assert pd.read_csv(io.StringIO(same.stdout))["agree"].all()  # the same rows: every verdict agrees
    stable = pd.read_csv(io.StringIO(same.stdout))
    assert stable["expected_agree"].between(0, 1).any()  # the simulation ran on the comparisons with intervals
    runs = vmi("check", "runs", str(FIXTURE), str(copy), "--format", "csv")
    assert runs.returncode == 0, runs.stderr
    families = pd.read_csv(io.StringIO(runs.stdout))
    assert len(families) and (families["between_sd"] == 0).all() and (families["run_level_sd"] == 0).all()
    assert_user_error(vmi("check", "runs", str(FIXTURE)), "check runs needs two or more runs")
    assert_user_error(vmi("check", "runs", str(FIXTURE), str(tmp_path / "nowhere")), "no store at")
