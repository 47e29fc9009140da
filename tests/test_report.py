"""Report rendering from a store: sections, numbers drawn from the data, valid PNGs; the CLI round trip."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import matplotlib.image as mpimg
import pandas as pd
import pytest
from conftest import assert_user_error

from vmibench.env import capture
from vmibench.measure.runner import to_record
from vmibench.measure.timing import TimingPolicy
from vmibench.measure.worker import CellSpec
from vmibench.records import PeakRecord
from vmibench.reports.report import write_report
from vmibench.store import ResultStore

BASE = CellSpec(model="", height=0, width=0, threads=2, policy=TimingPolicy.quick())
ENV = capture("cpu")
SECTIONS = ["Setup", "Reviewer questions", "Models, parameters and FLOPs", "Latency, throughput and memory at 224",
            "Resolution scaling", "Token mixers vs sequence length", "Accuracy vs latency"]  # fmt: skip


def _result(ms: float, mem: float, gmacs: float) -> dict:
    return {"status": "ok", "gmacs": gmacs, "gflops": 2 * gmacs, "params_m": 1.0, "env": ENV.as_dict(),
            "stats": {"median_ms": ms, "iqr_ms": ms / 50, "p10_ms": ms, "p90_ms": ms, "mean_ms": ms, "min_ms": ms,
                      "n": 9, "rel_se": 0.01, "converged": True, "warmup_iters": 3},
            "memory": {"peak_mb": mem, "total_mb": mem + 500, "reserved_mb": None, "method": "rss_hwm"}}  # fmt: skip


# latency at 224 and exponent in pixels for each synthetic model
MODELS = {"vminet_t": (10.0, 1.0, 0.35), "deit_t": (20.0, 1.6, 1.26), "effvmamba_t": (40.0, 1.0, 0.81),
          "mlla_t": (60.0, 1.1, 4.15), "flatten_swin_t": (55.0, 1.2, 4.50), "vminet_b": (70.0, 1.0, 4.78)}  # fmt: skip
OPS = {"sdpa": 2.0, "vmisa": 1.0, "vmisa_recurrent": 1.0, "vmisa_matrix": 2.0}


@pytest.fixture(scope="module")
def store_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("rep") / "r.sqlite"
    with ResultStore(path) as store:
        for model, (ms, k, gm) in MODELS.items():
            sizes = [224, 448, 896] if model != "vminet_b" else [224]
            for s in sizes:
                f = (s / 224) ** 2
                res = _result(ms * f**k, 5 * f, gm * f)
                if model == "deit_t" and s == 896:
                    res = {"status": "oom", "error": "OutOfMemoryError: synthetic", "env": ENV.as_dict()}
                store.add(to_record(replace(BASE, model=model, height=s, width=s), res))
        for op, k in OPS.items():
            for L in [256, 1024, 4096, 16384]:
                res = _result(0.1 * (L / 256) ** k, L / 100, 0.01 * (L / 256) ** k)
                store.add(to_record(replace(BASE, mode="op", op=op, seq_len=L, dim=64), res))
        store.add(PeakRecord(timestamp="2026-01-01T00:00:00", env=ENV, env_key=ENV.key("cpu"), device="cpu",
                             dtype="fp32", threads=2, matmul_n=2048, peak_gflops=100.0))  # fmt: skip
    return path


def test_report_has_every_section_and_valid_figures(store_path: Path, tmp_path: Path) -> None:
    report = write_report(str(store_path), tmp_path)
    text = report.read_text()
    for title in SECTIONS:
        assert f"## {title}" in text
    figures = re.findall(r"\]\((figures/[^)]+\.png)\)", text)
    assert {"figures/latency_vs_resolution.png", "figures/ops_latency_vs_L.png", "figures/accuracy_vs_latency.png",
            "figures/memory_vs_resolution.png", "figures/utilisation_vs_resolution.png",
            "figures/latency_vs_gmacs.png", "figures/ops_memory_vs_L.png"} <= set(figures)  # fmt: skip
    for rel in figures:
        image = mpimg.imread(tmp_path / rel)
        assert image.ndim == 3 and image.shape[0] > 100
    assert "threads 2" in text and "scan backend" in text and "torch " + ENV.torch_version in text


def test_reviewer_answers_come_from_the_data(store_path: Path, tmp_path: Path) -> None:
    text = write_report(str(store_path), tmp_path).read_text()
    answers = text.split("## Reviewer questions")[1].split("## ")[0]
    assert "vminet_t: latency exponent 1.00" in answers  # synthetic: linear in pixels
    assert "deit_t: latency exponent 1.60" in answers
    assert "VMINet-Ti: latency exponent 1.00 while its GMACs grow with exponent 1.00" in answers
    assert "median latency exponent 1.10" in answers  # effvmamba 1.0, mlla 1.1, flatten 1.2
    assert "vminet_t takes 10.0 ms vs mlla_t 60.0 ms (0.17x" in answers
    assert "effvmamba_t has 0.810 GMACs" in answers and "49.4 ms per GMAC" in answers
    assert "vmisa_matrix latency exponent 2.00" in answers and "vmisa_recurrent latency exponent 1.00" in answers
    assert "published" in answers  # top-1 comes from the model records here, and says so
    fits = pd.read_csv(tmp_path / "tables" / "ops_fits.csv")
    sdpa = fits[(fits["op"] == "sdpa") & (fits["metric"] == "latency_ms_median")]["slope"].iloc[0]
    assert sdpa == pytest.approx(2.0)


def test_oom_cells_are_shown_not_dropped(store_path: Path, tmp_path: Path) -> None:
    text = write_report(str(store_path), tmp_path).read_text()
    table = text.split("## Resolution scaling")[1]
    deit_row = next(line for line in table.splitlines() if line.startswith("| deit_t"))
    assert deit_row.rstrip().endswith("oom |")


def test_sweep_then_report_from_the_cli(cli, tmp_path: Path) -> None:
    sweep = cli("sweep", "--models", "vminet_t,deit_t", "--res", "224,448", "--batch", "1", "--threads", "1",
                "--max-time", "0.3")  # fmt: skip
    assert sweep.returncode == 0, sweep.stderr
    out = tmp_path / "rep"
    rep = cli("report", "--out", str(out))
    assert rep.returncode == 0, rep.stderr
    text = (out / "REPORT.md").read_text()
    assert "## Reviewer questions" in text and "vminet_t: latency exponent" in text
    for png in (out / "figures").glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    again = cli("sweep", "--models", "vminet_t,deit_t", "--res", "224,448", "--threads", "1", "--max-time", "0.3")
    assert "already stored 4" in again.stderr
    assert_user_error(cli("report", "--db", "missing.sqlite"), "no results database")
    assert_user_error(cli("sweep", "--models", "vminet_t"), "--preset")
    assert_user_error(cli("sweep", "--preset", "fast"), "unknown preset")
