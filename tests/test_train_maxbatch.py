"""Training steps, the triad bandwidth and the max-batch search: planning, identities, real workers, roofline."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from conftest import ALLOC_MODEL, assert_peak_is_the_allocation, assert_user_error

from vmibench.analysis import add_roofline
from vmibench.errors import UserError
from vmibench.measure.kinds.maxbatch import search_max_batch
from vmibench.measure.runner import Runner
from vmibench.measure.timing import TimingPolicy
from vmibench.measure.workloads import Cell, MaxBatch, ModelForward, Settings, StreamTriad
from vmibench.store import ResultStore
from vmibench.sweep import bandwidth_cells, plan_cells, plan_maxbatch, triad_elements

QUICK = Settings(device="cpu", threads=1, scan_backend="", policy=TimingPolicy.quick())


def test_search_doubles_then_bisects_within_an_eighth() -> None:
    tried: list[int] = []

    def fits(limit: int):  # type: ignore[no-untyped-def]
        def probe(batch: int) -> bool:
            tried.append(batch)
            return batch <= limit

        return probe

    assert search_max_batch(fits(300), 4096) in range(300 - 300 // 8, 301)
    assert tried[:10] == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512] and len(tried) <= 14
    assert search_max_batch(fits(0), 4096) == 0
    assert search_max_batch(fits(10**6), 64) == 64
    tried.clear()
    assert search_max_batch(fits(10**6), 100) == 100 and max(tried) == 100  # the cap, never past it
    assert search_max_batch(fits(5), 4096, tolerance=10**6) == 5  # exact when asked


def test_train_cells_have_their_own_identity_and_inference_keys_are_unchanged() -> None:
    infer, train = (Cell(ModelForward("vminet_t", 64, 64, 1, mode), QUICK) for mode in ("infer", "train"))
    assert "mode" not in infer.workload.ident() and train.workload.ident()["mode"] == "train"
    assert infer.key("env") != train.key("env") and infer.ladder() != train.ladder()
    assert Cell.from_json(train.to_json()) == train and Cell.from_json(infer.to_json()) == infer
    cells = plan_cells(["vminet_t"], [(64, 64)], [1, 2], QUICK, mode="train")
    assert {c.workload.mode for c in cells} == {"train"}  # type: ignore[attr-defined]
    with pytest.raises(UserError, match="unknown mode 'fly'"):
        plan_cells(["vminet_t"], [(64, 64)], [1], QUICK, mode="fly")


def test_maxbatch_planning_refuses_what_cannot_run() -> None:
    with pytest.raises(UserError, match="give --mem-limit-gb on CPU"):
        plan_maxbatch(["vminet_t"], [(224, 224)], QUICK)
    with pytest.raises(UserError, match="bad --mem-limit-gb"):
        plan_maxbatch(["vminet_t"], [(224, 224)], QUICK, mem_limit_gb=math.nan)
    (cell,) = plan_maxbatch(["vminet_t"], [(224, 224)], QUICK, mode="train", mem_limit_gb=2.0)
    assert cell.workload == MaxBatch("vminet_t", 224, 224, "train", 2.0)
    assert Cell.from_json(cell.to_json()) == cell


def test_triad_arrays_outgrow_the_last_level_cache() -> None:
    (cell,) = bandwidth_cells([Cell(ModelForward("vminet_t", 64, 64), QUICK)])
    assert isinstance(cell.workload, StreamTriad) and cell.workload.n == triad_elements("cpu", "fp32")
    assert cell.workload.n * 4 >= 64 << 20
    assert triad_elements("cuda", "bf16") == 2 * triad_elements("cuda", "fp32")


def test_cli_refuses_bad_mode_and_limits(vmi) -> None:
    assert_user_error(vmi("latency", "--models", "vminet_t", "--mode", "fly"), "unknown mode 'fly'")
    assert_user_error(vmi("maxbatch", "--models", "vminet_t", "--device", "cpu"), "--mem-limit-gb")
    assert_user_error(vmi("maxbatch", "--models", "vminet_t", "--mem-limit-gb", "0", "--device", "cpu"),
                      "bad --mem-limit-gb")  # fmt: skip


def test_real_workers_train_step_triad_and_max_batch(tmp_path: Path) -> None:
    """One runner, one zygote: a training step, the triad (small arrays: the rule is tested above) and a capped
    max-batch search under a real RLIMIT_AS."""
    alloc_train = ModelForward("alloc_probe_t", 64, 64, 2, "train")
    cells = [Cell(ModelForward("vminet_t", 64, 64, 2, "train"), QUICK), Cell(StreamTriad(n=1 << 20), QUICK),
             Cell(MaxBatch("vminet_t", 64, 64, "infer", 1.0, batch_cap=4), QUICK),
             Cell(alloc_train, replace(QUICK, imports=(str(ALLOC_MODEL),)))]  # fmt: skip
    with ResultStore(tmp_path / "s.sqlite") as store:
        summary = Runner(store, rounds=1, cell_timeout_s=300).run(cells)
        train, triad, found, alloc = summary.rows.values()
        assert train["status"] == "ok" and train["mode"] == "train", train["error_detail"]
        assert train["gmacs"] > 0 and train["gbytes_moved"] > 0
        assert alloc["mode"] == "train"
        assert_peak_is_the_allocation(alloc)  # a training step's peak memory holds the forward's allocation
        assert triad["status"] == "ok" and triad["bw_peak_gbs"] > 0 and triad["triad_n"] == 1 << 20
        assert store.read("bandwidth")["bw_peak_gbs"].iloc[0] == triad["bw_peak_gbs"]
        assert found["status"] == "ok", found["error_detail"]
        assert found["max_batch"] == 4 == found["batch"] and found["mem_limit_method"] == "rlimit_as"
        assert json.loads(found["probes"]) == {"1": "ok", "2": "ok", "4": "ok"}
        assert found["throughput_ips"] == pytest.approx(4000 / found["latency_ms_median"])


def test_roofline_columns_follow_the_larger_roof() -> None:
    base = {"env_key": "e", "device": "cpu", "dtype": "fp32", "threads": 1, "batch": 2, "status": "ok"}
    timed = pd.DataFrame([dict(base, model="dense", gmacs=1.0, gflops=2.0, gbytes_moved=0.01, latency_ms_median=50.0),
                          dict(base, model="thin", gmacs=0.01, gflops=0.02, gbytes_moved=0.1, latency_ms_median=50.0),
                          dict(base, model="uncounted", gmacs=1.0, gflops=2.0, gbytes_moved=None,
                               latency_ms_median=50.0)])  # fmt: skip
    peak = pd.DataFrame([dict(base, peak_gflops=100.0, timestamp="t")])
    bw = pd.DataFrame([dict(base, bw_peak_gbs=10.0, timestamp="t")])
    out = add_roofline(timed, peak, bw).set_index("model")
    assert out.loc["dense", "bound"] == "compute" and out.loc["dense", "arith_intensity"] == pytest.approx(200)
    assert out.loc["dense", "roofline_ms"] == pytest.approx(2 * 2 / 100 * 1e3)  # 2 GFLOP x batch 2 at 100 GFLOP/s
    assert out.loc["thin", "bound"] == "memory" and out.loc["thin", "roofline_ms"] == pytest.approx(0.2 / 10 * 1e3)
    assert out.loc["thin", "roofline_frac"] == pytest.approx(20 / 50)
    assert out.loc["uncounted", "bound"] == "" and math.isnan(out.loc["uncounted", "roofline_frac"])
    no_bw = add_roofline(timed, peak, bw.iloc[0:0])
    assert no_bw["roofline_ms"].isna().all() and (no_bw["bound"] == "").all()
