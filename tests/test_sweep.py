"""Planning: presets, model and op cells, per-backend scan cells, cap prediction, peak cells."""

from __future__ import annotations

from dataclasses import replace

import pytest

import vmibench.sweep as sweep
from vmibench.errors import UserError
from vmibench.measure.timing import TimingPolicy
from vmibench.measure.workloads import Cell, MatmulPeak, MixerOp, Settings

BASE = Settings(threads=1, policy=TimingPolicy.quick(), count_flops=False)


def test_selective_scan_is_swept_per_fast_backend_and_other_ops_have_none() -> None:
    cells = sweep.ops_cells(["selective_scan", "vmisa"], [1024, 256, 256], 16, 1, ["fp32"], BASE)
    by_op = {(c.workload.op, c.settings.scan_backend) for c in cells}  # type: ignore[attr-defined]
    assert by_op == {("selective_scan", "torch"), ("vmisa", "")}  # the sequential oracle only by name
    named = sweep.ops_cells(["selective_scan"], [256], 16, 1, ["fp32"], replace(BASE, scan_backend="reference"))
    assert [c.settings.scan_backend for c in named] == ["reference"]
    assert [c.workload.seq_len for c in cells if c.workload.op == "vmisa"] == [256, 1024]  # type: ignore[attr-defined]


def test_bad_presets_ops_and_backends_are_user_errors() -> None:
    with pytest.raises(UserError, match="preset"):
        sweep.get_preset("gpu-fast")
    with pytest.raises(UserError, match="unknown op"):
        sweep.ops_cells(["softmax"], [256], 16, 1, ["fp32"], BASE)
    with pytest.raises(UserError, match="mamba_ssm"):
        sweep.plan_cells(["vim_t"], [(224, 224)], [1], replace(BASE, scan_backend="mamba_ssm"))


def test_cpu_default_preset_covers_every_model_a_1024_ladder_and_three_rounds() -> None:
    from vmibench.registry import list_infos

    preset = sweep.get_preset("cpu-default")
    cells = sweep.expand_groups(preset.groups, replace(BASE, policy=preset.policy))
    at_224 = {c.workload.model for c in cells if c.workload.height == 224}  # type: ignore[attr-defined]
    assert at_224 == {m.name for m in list_infos()}
    assert len(cells) == len(set(cells))  # 224 is in both groups for the ladder models: planned once
    at_1024 = {c.workload.model for c in cells if c.workload.height == 1024}  # type: ignore[attr-defined]
    assert at_1024 >= {"vminet_t", "mlla_t", "flatten_swin_t", "effvmamba_t"}
    assert preset.rounds == 3


def test_one_peak_ladder_per_device_dtype_and_threads() -> None:
    cells = sweep.plan_cells(["vminet_t", "vim_t"], [(224, 224)], [1, 2], replace(BASE, scan_backend="auto"))
    cells += [replace(c, settings=replace(c.settings, dtype="bf16")) for c in cells]
    peaks = sweep.peak_cells(cells)
    assert all(isinstance(p.workload, MatmulPeak) for p in peaks)
    # every matrix size once per dtype (the roof is the best of the sizes), whatever the models' settings
    sizes = sorted((p.settings.dtype, p.workload.n) for p in peaks)  # type: ignore[attr-defined]
    assert sizes == sorted((d, n) for d in ("bf16", "fp32") for n in sweep.CPU_PEAK_SIZES)


def test_caps_predict_from_the_expected_exponent() -> None:
    predict = sweep.cap_predictor([256, 1024, 4096], time_cap_s=1.0, mem_cap_mb=100.0)
    sdpa, vmisa = Cell(MixerOp("sdpa", 1024, 32), BASE), Cell(MixerOp("vmisa", 1024, 32), BASE)
    assert "exceeds --time-cap" in predict(sdpa, 105.0, 1.0)  # x16 (quadratic) -> 1.7 s
    assert predict(vmisa, 105.0, 1.0) == ""  # x4 (linear) -> 0.4 s
    assert "exceeds --mem-cap" in predict(vmisa, 1.0, 30.0)
    assert predict(Cell(MixerOp("vmisa", 4096, 32), BASE), 1e6, 1e6) == ""  # nothing larger to predict
