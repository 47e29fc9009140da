"""`vmibench report` on any subset of a valid store: it writes a report (exit 0) or says in one line what is
missing (exit 2), never a traceback.

The full store is synthesised through the public API the runner uses (records pooled from worker results, then
``ResultStore.add``): latency rows at several sizes with a failure and a row without GMACs, training-step and
max-batch rows, token-mixer rows, the matmul peak, the triad bandwidth and a FLOPs row.  Each trial stores a
random subset of those rows in a fresh store and reports it.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from conftest import assert_user_error
from test_report import ENV, add_cell, add_failure, rounds_of

from vmibench.env import utc_now
from vmibench.measure.workloads import MaxBatch, MixerOp, ModelForward
from vmibench.records import BandwidthRecord, FlopsRecord, PeakRecord
from vmibench.store import ResultStore

KEY = ENV.key("cpu")


def _latency(model: str, size: int, ms: float, gmacs: float | None, seed: int):  # type: ignore[no-untyped-def]
    return lambda st: add_cell(st, ModelForward(model, size, size), rounds_of(ms, seed), gmacs=gmacs, mem=5.0,
                               gbytes=None if gmacs is None else 0.1 * gmacs)  # fmt: skip


def _train(model: str, ms: float, gmacs: float):  # type: ignore[no-untyped-def]
    return lambda st: add_cell(st, ModelForward(model, 224, 224, 1, "train"), rounds_of(3 * ms, 9), gmacs=gmacs,
                               mem=50.0)  # fmt: skip


def _maxbatch(model: str, ms: float):  # type: ignore[no-untyped-def]
    values = {"max_batch": 64, "mem_limit_gb": 2.0, "mem_limit_method": "rlimit_as", "probes": {"64": "ok"}}
    return lambda st: add_cell(st, MaxBatch(model, 224, 224, "infer", 2.0), rounds_of(40 * ms, 8), gmacs=None,
                               mem=900.0, values=values)  # fmt: skip


def _op(op: str, length: int, k: int, seed: int):  # type: ignore[no-untyped-def]
    scale = (length / 256) ** k
    return lambda st: add_cell(st, MixerOp(op, length, 64), rounds_of(0.1 * scale, seed), gmacs=0.01 * scale,
                               mem=length / 100)  # fmt: skip


def _rows() -> list:  # type: ignore[type-arg]
    """Each item stores one row in a store: ``item(store)``."""
    items = []
    for model, ms, gmacs in (("vminet_t", 10.0, 0.35), ("effvmamba_t", 40.0, 0.81), ("deit_t", 20.0, 1.26)):
        for i, s in enumerate((224, 448, 896)):
            f = (s / 224) ** 2
            gm = None if (model, s) == ("deit_t", 448) else gmacs * f  # a row measured without fvcore
            items.append(_latency(model, s, ms * f, gm, i))
        items += [_train(model, ms, gmacs), _maxbatch(model, ms)]
    items.append(lambda st: add_failure(st, ModelForward("deit_t", 1024, 1024), "oom", "OutOfMemoryError: synthetic"))
    items += [_op(op, L, k, i) for op, k in (("sdpa", 2), ("vmisa", 1)) for i, L in enumerate((256, 1024, 4096))]
    items.append(lambda st: st.add(PeakRecord(timestamp=utc_now(), env=ENV, env_key=KEY, device="cpu", dtype="fp32",
                                              threads=2, matmul_n=2048, peak_gflops=100.0)))  # fmt: skip
    items.append(lambda st: st.add(BandwidthRecord(timestamp=utc_now(), env=ENV, env_key=KEY, device="cpu",
                                                   dtype="fp32", threads=2, triad_n=1 << 20,
                                                   bw_peak_gbs=10.0)))  # fmt: skip
    items.append(lambda st: st.add(FlopsRecord(timestamp=utc_now(), env=ENV, env_key=KEY, model="deit_t", res="448",
                                               batch=1, gmacs=5.0, gbytes_moved=0.3)))  # fmt: skip
    return items


@pytest.mark.parametrize("seed", range(4))
def test_report_on_a_random_subset_exits_0_or_2(vmi, tmp_path: Path, seed: int) -> None:
    items = _rows()
    rng = random.Random(seed)
    keep = [item for item in items if rng.random() < (0.2 if seed % 2 else 0.6)]
    path = tmp_path / "subset.sqlite"
    with ResultStore(path) as store:
        for item in keep:
            item(store)
    rep = vmi("report", "--db", str(path), "--out", str(tmp_path / "out"))
    assert rep.returncode in (0, 2), rep.stderr
    assert "Traceback" not in rep.stderr
    if rep.returncode == 2:
        assert rep.stderr.startswith("vmibench: error:") and len(rep.stderr.strip().splitlines()) == 1
    else:
        assert (tmp_path / "out" / "REPORT.md").is_file()


@pytest.mark.parametrize(("kinds", "code"), [(("train",), 0), (("op",), 0), (("peak", "maxbatch"), 2)])
def test_report_on_one_kind_of_row(vmi, tmp_path: Path, kinds: tuple[str, ...], code: int) -> None:
    """Only training rows, only ops rows, or no latency/ops row at all (exit 2, saying so)."""
    items = {
        "train": [_train("vminet_t", 10.0, 0.35)],
        "op": [_op("vmisa", 256, 1, 0), _op("vmisa", 1024, 1, 1)],
        "maxbatch": [_maxbatch("vminet_t", 10.0)],
        "peak": [
            lambda st: st.add(
                PeakRecord(
                    timestamp=utc_now(),
                    env=ENV,
                    env_key=KEY,
                    device="cpu",
                    dtype="fp32",
                    threads=2,
                    matmul_n=2048,
                    peak_gflops=1.0,
                )
            )
        ],
    }
    path = tmp_path / "one.sqlite"
    with ResultStore(path) as store:
        for kind in kinds:
            for item in items[kind]:
                item(store)
    rep = vmi("report", "--db", str(path), "--out", str(tmp_path / "out"))
    if code == 2:
        assert_user_error(rep, "no latency or ops rows")
    else:
        assert rep.returncode == 0, rep.stderr
