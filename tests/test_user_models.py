"""The user's own model beside the registered ones (``--import``), and dense-prediction backbone sweeps (``--task``).

The model file is the README's own example (section "Benchmark your own model"), so the documentation is tested.
"""

from __future__ import annotations

import io
import re
import sqlite3
from pathlib import Path

import pandas as pd
from conftest import ROOT, assert_user_error

from vmibench.user_models import file_digest

QUICK = ("--threads", "1", "--max-time", "0.3", "--rounds", "1", "--no-flops", "--no-peak")


def readme_model(path: Path) -> Path:
    """Write the README's example model file (the first python block after its heading) to ``path``."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Benchmark your own model", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None, "README lost its example model"
    path.write_text(code.group(1))
    return path


def rows(db: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


def test_imported_model_is_counted_timed_reported_and_remeasured_after_an_edit(vmi, tmp_path: Path) -> None:
    model = readme_model(tmp_path / "mynet.py")
    db = tmp_path / "r.sqlite"
    common = ("--import", str(model), "--models", "mynet_t,vminet_t", "--res", "224", "--db", str(db))

    flops = vmi("flops", *common[:3], "mynet_t", *common[4:], "--format", "csv")
    assert flops.returncode == 0, flops.stderr
    counted = pd.read_csv(io.StringIO(flops.stdout))
    assert counted[["model", "status"]].values.tolist() == [["mynet_t", "ok"]]

    first = vmi("latency", *common, *QUICK, "--format", "csv")
    assert first.returncode == 0, first.stderr
    digest = file_digest(model)
    assert sorted(rows(db, "SELECT model, model_source, task, status FROM latency")) == [
        ("mynet_t", digest, "classify", "ok"),
        ("vminet_t", "", "classify", "ok"),
    ]
    assert rows(db, "SELECT model_source FROM flops WHERE model = 'mynet_t'") == [(digest,)]

    model.write_text(model.read_text().replace("width=64", "width=48"))
    edited = vmi("latency", *common, *QUICK, "--format", "csv")
    assert edited.returncode == 0, edited.stderr
    assert "1 measured now" in edited.stderr and "1 from the store" in edited.stderr
    sources = rows(db, "SELECT model_source FROM latency WHERE model = 'mynet_t' ORDER BY timestamp")
    assert sources == [(digest,), (file_digest(model),)] and digest != file_digest(model)

    report = vmi("report", "--import", str(model), "--db", str(db), "--out", str(tmp_path / "rep"))
    assert report.returncode == 0, report.stderr
    assert "| mynet_t |" in (tmp_path / "rep" / "REPORT.md").read_text()


def test_backbone_sweep_stores_task_rows_and_reports_them(vmi, tmp_path: Path) -> None:
    db = tmp_path / "r.sqlite"
    args = ("sweep", "--models", "vminet_t,mlla_t,swin_t", "--res", "64x128", "--task", "backbone", "--db", str(db))
    proc = vmi(*args, *QUICK, "--format", "csv")
    assert proc.returncode == 0, proc.stderr
    assert sorted(rows(db, "SELECT model, res, task, status FROM latency")) == [
        (m, "64x128", "backbone", "ok") for m in ("mlla_t", "swin_t", "vminet_t")
    ]
    report = vmi("report", "--db", str(db), "--out", str(tmp_path / "rep"))
    assert report.returncode == 0, report.stderr
    text = (tmp_path / "rep" / "REPORT.md").read_text()
    section = text.split("## Dense-prediction backbones", 1)[1].split("\n## ", 1)[0]
    assert "| vminet_t | 64x128 | 1 |" in section and "at 64x128, vminet_t latency / rival latency" in section
    assert "**mlla_t** is built for each input size" in section and "swin_t**" not in section


def test_bad_task_and_missing_import_are_user_errors(vmi, tmp_path: Path) -> None:
    assert_user_error(vmi("sweep", "--models", "vminet_t", "--task", "detect"), "unknown task 'detect'")
    assert_user_error(vmi("latency", "--import", str(tmp_path / "nope.py")), "nope.py: no such file")
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('half-written')\n")
    assert_user_error(vmi("flops", "--import", str(broken), "--models", "vminet_t"), "half-written")


def test_a_file_registering_a_vmibench_record(tmp_path: Path) -> None:
    import vmibench
    from vmibench.registry import resolve_info
    from vmibench.user_models import import_models, source_digest

    path = tmp_path / "recorded.py"
    path.write_text(
        "import torch.nn as nn\n"
        "from vmibench.registry import ModelInfo, Published, register_model\n\n"
        "@register_model(ModelInfo(name='recorded_t', family='recorded', paper_name='Recorded-T',\n"
        "                          published=Published(top1=70.0, source='our paper'), res_multiple=16))\n"
        "def recorded_t(pretrained=False, num_classes=1000, **kwargs):\n"
        "    return nn.Sequential(nn.Conv2d(3, 8, 16, 16), nn.Flatten(2), nn.AdaptiveAvgPool1d(1), nn.Flatten(),\n"
        "                         nn.Linear(8, num_classes))\n"
    )
    (imported,) = import_models([str(path)])
    info = resolve_info("recorded_t")
    assert (info.published.top1, info.module, info.res_multiple) == (70.0, imported.module, 16)
    assert source_digest("recorded_t") == file_digest(path) == imported.digest
    model = vmibench.create_model("recorded_t", res=(32, 48), num_classes=5)
    assert model.pretrained_cfg["input_size"] == (3, 32, 48)
    assert source_digest("vminet_t") == ""
