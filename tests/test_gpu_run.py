"""The one-shot GPU run: scripts/gpu_run.sh dry-run on CPU, its smoke test, and the --cuda-graph setting
(refused off CUDA, part of a cell's identity, carried by rows, planned by the GPU preset)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

import vmibench.sweep as sweep
from vmibench.env import capture
from vmibench.measure.rows import failure_record
from vmibench.measure.timing import TimingPolicy
from vmibench.measure.workloads import Cell, ModelForward, Settings

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "gpu_run.sh"
BASE = Settings(threads=1, policy=TimingPolicy.quick(), count_flops=False)


def _script(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VMIBENCH_DB", "TRITON_INTERPRET")}
    env.update(PYTHON=sys.executable, PYTHONWARNINGS="ignore")
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=900)  # fmt: skip


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_gpu_script_dry_run_on_cpu(tmp_path: Path) -> None:
    """The whole script on CPU with the smoke preset: a run whose every step must succeed and leave its file."""
    out = tmp_path / "run"
    proc = _script(str(out), "--device", "cpu", "--preset", "smoke", "--budget-min", "5", "--ops-budget-min", "5",
                   "--smoke-models", "vim_t", "--smoke-dtypes", "fp32", "--smoke-res", "64", "--quick",
                   tmp_path=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    checks = json.loads((out / "smoke.json").read_text())
    assert {(c["kind"], c["name"]) for c in checks} == {("scan", "quick[torch]"), ("forward", "vim_t")}
    assert all(c["ok"] for c in checks)
    latency = pd.read_csv(out / "sweep.csv")
    assert list(latency["model"]) == ["vim_t"] and list(latency["status"]) == ["ok"]  # no graph variant on CPU
    ops = pd.read_csv(out / "ops.csv")
    assert set(ops["op"]) == {"vmisa", "selective_scan[torch]"} and set(ops["status"]) == {"ok"}
    assert (out / "REPORT.md").is_file() and (out / "vmibench.sqlite").is_file()
    assert (out / "store.sqlite").is_file() and (out / "manifest.json").is_file()  # a result set, data committed


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_gpu_script_needs_an_output_directory_and_known_options(tmp_path: Path) -> None:
    for args in ((), ("--device", "cpu"), ("out", "--budget"), ("out", "--device")):
        proc = _script(*args, tmp_path=tmp_path)
        assert proc.returncode == 2 and "usage: scripts/gpu_run.sh OUT_DIR" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_smoke_refuses_unknown_models_and_absent_devices(capsys: pytest.CaptureFixture[str]) -> None:
    from vmibench.smoke import main

    assert main(["--device", "cpu", "--models", "no_such_model"]) == 2
    assert "unknown model or dtype: no_such_model" in capsys.readouterr().err
    if not __import__("torch").cuda.is_available():
        assert main(["--device", "cuda", "--models", "vim_t"]) == 2
        assert "cuda is not available" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["latency", "sweep"])
def test_cuda_graph_is_refused_off_cuda(vmi, command: str) -> None:  # type: ignore[no-untyped-def]
    res = vmi(command, "--models", "vim_t", "--res", "64", "--device", "cpu", "--cuda-graph")
    assert res.returncode == 2
    assert (
        res.stderr.strip()
        == "vmibench: error: --cuda-graph needs a CUDA device, not cpu (it replays a captured CUDA graph)"
    )


def test_cuda_graph_is_part_of_identity_and_rows_only_when_set() -> None:
    plain, graphed = BASE, replace(BASE, cuda_graph=True)
    assert "cuda_graph" not in plain.ident() and graphed.ident()["cuda_graph"] is True
    cell = Cell(ModelForward("vim_t", 64, 64), graphed)
    assert Cell.from_json(cell.to_json()) == cell
    assert cell.key("env") != replace(cell, settings=plain).key("env")
    env = capture("cpu")
    for settings in (plain, graphed):
        row = failure_record(Cell(cell.workload, settings), env, env.key("cpu"), "error", "boom").to_row()
        assert row["cuda_graph"] is settings.cuda_graph


def test_gpu_preset_measures_small_models_both_ways_at_batch_1_only_on_cuda() -> None:
    preset = sweep.get_preset("gpu-default")
    cells = sweep.expand_groups(preset.groups, replace(BASE, device="cuda", policy=preset.policy))
    both = {(m, 224, 1, d) for m in sweep.REPRESENTATIVE for d in ("fp32", "bf16")}

    def keys(graphed: bool) -> set[tuple[str, int, int, str]]:
        return {(c.workload.model, c.workload.height, c.workload.batch, c.settings.dtype)  # type: ignore[attr-defined]
                for c in cells if c.settings.cuda_graph is graphed}  # fmt: skip

    assert keys(True) == both and both <= keys(False)
    assert not any(p.settings.cuda_graph for p in sweep.peak_cells(cells))
    on_cpu = sweep.expand_groups(preset.groups, replace(BASE, policy=preset.policy))
    assert on_cpu and not any(c.settings.cuda_graph for c in on_cpu)
