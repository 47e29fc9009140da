"""`vmibench accuracy`: a trained toy checkpoint gives the same top-1 as a plain timm loop, in one process and
under torchrun; bad input is one line and exit status 2, caught before anything is evaluated."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from conftest import assert_user_error, run_cli
from PIL import Image

import vmibench
from vmibench.accuracy import (
    ACCURACY_COLUMNS,
    ShardSampler,
    accumulate,
    checkpoint_classes,
    data_dir_hash,
    spread,
)
from vmibench.cli import main
from vmibench.store import ResultStore

MODEL = "vminet_t"
RES = 64  # VMINet's context weight is built per grid: train and evaluate at the same size
CLASS_SIZES = (21, 20, 22)  # 63 images: odd, so two processes get 32 + 31 and padding would show
COLOURS = ((200, 40, 40), (40, 180, 60), (50, 60, 210))
TRAIN_STEPS = 12
EMA_STEP = 3  # the checkpoint's "EMA" copy is the model after this many steps: a different, known result


@dataclass(frozen=True)
class Trained:
    """The toy set, its checkpoint and what a plain timm loop measures for both weight copies."""

    data: Path
    checkpoint: Path
    direct: dict[str, float]
    direct_ema: dict[str, float]


def _write_images(root: Path) -> None:
    # Each class: its own colour and stripe pattern under heavy noise, random sizes (exercises resize + crop).
    rng = np.random.default_rng(0)
    for c, n in enumerate(CLASS_SIZES):
        folder = root / f"class_{c}"
        folder.mkdir(parents=True)
        for i in range(n):
            h, w = rng.integers(36, 57, 2)
            yy, xx = np.mgrid[0:h, 0:w]
            pattern = ((yy // 4) % 2, (xx // 4) % 2, (yy // 4 + xx // 4) % 2)[c]
            base = np.array(COLOURS[c]) * (0.6 + 0.4 * pattern[..., None])
            pixels = np.clip(base + rng.normal(0, 110, (h, w, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"img_{i:03d}.png")


def _timm_inputs(model: nn.Module, root: Path, size: int = RES) -> tuple[torch.Tensor, torch.Tensor]:
    """The whole set through timm's own eval pipeline and torchvision's ImageFolder (the reference path)."""
    from timm.data import create_transform, resolve_data_config
    from torchvision.datasets import ImageFolder

    config = resolve_data_config({"input_size": (3, size, size)}, model=model)
    dataset = ImageFolder(str(root), transform=create_transform(**config))
    images = torch.stack([dataset[i][0] for i in range(len(dataset))])
    return images, torch.tensor(dataset.targets)


def _direct_eval(model: nn.Module, images: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    """Plain loop: top-1 and mean cross-entropy of ``model`` in eval mode."""
    model.eval()
    correct, loss = 0, 0.0
    with torch.no_grad():
        for x, y in zip(images.split(16), targets.split(16), strict=True):
            logits = model(x)
            correct += int((logits.argmax(1) == y).sum())
            loss += float(F.cross_entropy(logits, y, reduction="sum"))
    n = len(targets)
    return {"correct": correct, "top1": 100.0 * correct / n, "loss": loss / n, "n": n}


def _recalibrate_bn(model: nn.Module, images: torch.Tensor) -> None:
    # A dozen steps leave BatchNorm's running averages behind the weights; exact averages make eval mode sound.
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    model.train()
    with torch.no_grad():
        model(images)


def _train(images: torch.Tensor, targets: torch.Tensor) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """Seeded AdamW steps on the toy set; returns the model and a copy of its weights after EMA_STEP steps."""
    torch.manual_seed(0)
    model = vmibench.create_model(MODEL, res=RES, num_classes=len(CLASS_SIZES))
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    early: dict[str, torch.Tensor] = {}
    for step in range(TRAIN_STEPS):
        if step == EMA_STEP:
            early = {k: v.clone() for k, v in model.state_dict().items()}
        idx = torch.randperm(len(images))[:16]
        model.train()
        loss = F.cross_entropy(model(images[idx]), targets[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    _recalibrate_bn(model, images)
    return model.eval(), early


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    root = tmp_path_factory.mktemp("accuracy")
    data = root / "val"
    _write_images(data)
    probe = vmibench.create_model(MODEL, res=RES, num_classes=len(CLASS_SIZES))
    images, targets = _timm_inputs(probe, data)
    model, early = _train(images, targets)
    ema = vmibench.create_model(MODEL, res=RES, num_classes=len(CLASS_SIZES))
    ema.load_state_dict(early)
    checkpoint = root / "vminet_t_toy.pth.tar"
    # timm train-script wrapping, saved from a DDP-wrapped model (module. prefix), with an EMA copy.
    torch.save(
        {
            "epoch": 3,
            "arch": MODEL,
            "state_dict": {f"module.{k}": v for k, v in model.state_dict().items()},
            "state_dict_ema": {f"module.{k}": v for k, v in early.items()},
        },
        checkpoint,
    )
    return Trained(data, checkpoint, _direct_eval(model, images, targets), _direct_eval(ema, images, targets))


def _base_args(t: Trained, db: Path) -> list[str]:
    return ["--models", MODEL, "--checkpoint", f"{MODEL}={t.checkpoint}", "--data", str(t.data),
            "--res", str(RES), "--batch", "16", "--workers", "0", "--db", str(db)]  # fmt: skip


def _in_process(*args: str) -> subprocess.CompletedProcess[str]:
    """``vmibench accuracy ARGS`` through the CLI entry point in this process (the error paths, cheaply)."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err), pytest.raises(SystemExit) as exit_info:
        main(["accuracy", *args])
    return subprocess.CompletedProcess(args, int(exit_info.value.code or 0), out.getvalue(), err.getvalue())


def _one_row(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert len(rows) == 1
    return rows[0]


# -- the trained model, by both paths ------------------------------------------------------------------------


def test_trained_model_is_clearly_better_than_chance(trained: Trained) -> None:
    assert trained.direct["n"] == sum(CLASS_SIZES)
    assert trained.direct["top1"] >= 60.0, trained.direct  # chance is 33.3 %


def test_cli_matches_plain_timm_loop_and_stores_the_row(trained: Trained, tmp_path: Path) -> None:
    db = tmp_path / "results.sqlite"
    row = _one_row(run_cli("accuracy", *_base_args(trained, db), "--format", "json", cwd=tmp_path))
    assert list(row)[: len(ACCURACY_COLUMNS)] == ACCURACY_COLUMNS
    assert row["n_samples"] == trained.direct["n"] == 63
    assert row["n_correct_top1"] == trained.direct["correct"]
    assert row["top1"] == pytest.approx(trained.direct["top1"], abs=1e-9)
    assert row["loss"] == pytest.approx(trained.direct["loss"], abs=1e-4)
    assert row["top5"] == 100.0 and row["top5_k"] == 3  # three classes: top-k with k = 3
    assert (row["input_size"], row["crop_pct"], row["interpolation"]) == ("3x64x64", 0.875, "bicubic")
    assert (row["num_classes"], row["world_size"], row["status"]) == (3, 1, "ok")
    assert row["images_per_s"] > 0 and len(row["ckpt_sha256"]) == 64 and row["data_dir_hash"]
    with ResultStore(db) as store:
        stored = store.read("accuracy")
    assert len(stored) == 1
    for col in ("top1", "top5", "loss"):
        assert stored[col].iloc[0] == pytest.approx(row[col], rel=1e-9), col  # JSON keeps 10 decimals
    for col in ("n_samples", "ckpt_sha256", "data_dir_hash"):
        assert stored[col].iloc[0] == row[col], col


def _torchrun(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``torchrun --standalone --nproc-per-node 2 -m vmibench accuracy ARGS`` (gloo on CPU, a free port)."""
    env = dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "vmibench", "accuracy", *args, "--format", "json", "--device", "cpu"]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


def _with_corrupt_image(t: Trained, root: Path, name: str) -> Path:
    """A copy of the toy set plus one undecodable file ``class_0/NAME``."""
    shutil.copytree(t.data, root)
    (root / "class_0" / name).write_bytes(b"not a png")
    return root


def test_two_processes_give_identical_counts(trained: Trained, tmp_path: Path) -> None:
    db = tmp_path / "results.sqlite"
    row = _one_row(_torchrun(*_base_args(trained, db), cwd=tmp_path))  # rank 1 prints nothing
    assert row["world_size"] == 2 and row["status"] == "ok"
    assert row["n_samples"] == 63  # 32 + 31: no tail sample evaluated twice
    assert row["n_correct_top1"] == trained.direct["correct"]
    assert row["top1"] == pytest.approx(trained.direct["top1"], abs=1e-9)
    assert row["loss"] == pytest.approx(trained.direct["loss"], abs=1e-4)
    with ResultStore(db) as store:
        assert len(store.read("accuracy")) == 1  # stored once, by rank 0


def _bomb_png(path: Path) -> None:
    """A tiny PNG whose header claims 20000 x 20000 pixels: PIL refuses it as a decompression bomb, which is a
    failure of the cell (not an unreadable image to skip)."""
    import struct
    import zlib

    header = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + header
    ihdr = struct.pack(">I", len(header)) + chunk + struct.pack(">I", zlib.crc32(chunk) & 0xFFFFFFFF)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + ihdr + struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND"))
    )


def test_a_failure_on_one_rank_is_an_error_row_not_a_hang(trained: Trained, tmp_path: Path) -> None:
    # Sorted position 1 of 64 files: rank 1's first sample; rank 0 finishes its shard and waits in the reduction.
    args = _base_args(trained, tmp_path / "r.sqlite")
    root = _with_corrupt_image(trained, tmp_path / "val", "img_000b.png")
    _bomb_png(root / "class_0" / "img_000b.png")
    args[args.index(str(trained.data))] = str(root)
    proc = _torchrun(*args, cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr  # rows printed and stored, but the command did not succeed
    row = json.loads(proc.stdout)[0]
    assert (row["status"], row["n_samples"], row["top1"]) == ("error", 0, None)
    assert "other rank" in row["error"]


def test_an_unreadable_image_is_skipped_counted_and_warned(trained: Trained, tmp_path: Path) -> None:
    db = tmp_path / "r.sqlite"
    args = _base_args(trained, db)
    args[args.index(str(trained.data))] = str(_with_corrupt_image(trained, tmp_path / "val", "img_000b.png"))
    proc = _in_process(*args, "--format", "json")
    row = _one_row(proc)
    assert (row["status"], row["n_samples"], row["n_skipped"]) == ("ok", 63, 1)
    assert row["n_correct_top1"] == trained.direct["correct"]  # the 63 readable images, exactly as before
    assert "skipped unreadable image" in proc.stderr and "img_000b.png" in proc.stderr
    with ResultStore(db) as store:
        assert store.read("accuracy")["n_skipped"].tolist() == [1]


def test_a_cell_that_read_no_image_fails(trained: Trained, tmp_path: Path) -> None:
    root = tmp_path / "broken"
    for cls in ("a", "b", "c"):  # as many classes as the checkpoint's head
        (root / cls).mkdir(parents=True)
        (root / cls / "x.png").write_bytes(b"not a png")
    args = _base_args(trained, tmp_path / "r.sqlite")
    args[args.index(str(trained.data))] = str(root)
    proc = _in_process(*args, "--format", "json")
    assert proc.returncode == 1, proc.stderr
    row = json.loads(proc.stdout)[0]
    assert (row["status"], row["n_samples"], row["n_skipped"]) == ("error", 0, 3)
    assert "no image could be read" in row["error"]


def test_ema_flag_evaluates_the_ema_copy(trained: Trained, tmp_path: Path) -> None:
    row = _one_row(_in_process(*_base_args(trained, tmp_path / "r.sqlite"), "--ema", "--format", "json"))
    assert row["ema"] is True
    assert row["n_correct_top1"] == trained.direct_ema["correct"]
    assert row["loss"] == pytest.approx(trained.direct_ema["loss"], abs=1e-4)
    assert row["loss"] != pytest.approx(trained.direct["loss"], abs=1e-3)


def test_limit_and_class_map(trained: Trained, tmp_path: Path) -> None:
    # Class map in reverse order: labels change, so must the checkpoint's verdict -- unless we map back.
    cmap = tmp_path / "classes.txt"
    cmap.write_text("class_0\nclass_1\nclass_2\n")
    args = (*_base_args(trained, tmp_path / "r.sqlite"), "--format", "json", "--no-store")
    full = _one_row(_in_process(*args, "--class-map", str(cmap)))
    assert full["n_correct_top1"] == trained.direct["correct"]
    cmap.write_text("class_2\nclass_1\nclass_0\n")
    swapped = _one_row(_in_process(*args, "--class-map", str(cmap)))
    assert swapped["n_correct_top1"] != trained.direct["correct"]
    limited = _one_row(_in_process(*args, "--limit", "10"))
    assert limited["n_samples"] == 10 and limited["data_dir_hash"] != full["data_dir_hash"]
    assert not (tmp_path / "r.sqlite").exists()


# -- timm weights from a local Hugging Face cache ------------------------------------------------------------


def _fake_hub_cache(root: Path, timm_name: str) -> tuple[str, nn.Module]:
    """A Hugging Face cache holding random weights for ``timm_name`` under its real hub id (no network);
    returns the hub id and the model those weights came from."""
    import timm
    from safetensors.torch import save_file

    hub_id = timm.get_pretrained_cfg(timm_name).hf_hub_id
    repo = root / f"models--{hub_id.replace('/', '--')}"
    revision = "0" * 40
    snapshot = repo / "snapshots" / revision
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    torch.manual_seed(0)
    model = timm.create_model(timm_name)
    save_file(model.state_dict(), str(snapshot / "model.safetensors"))
    return hub_id, model


def test_hub_cache_uses_cached_timm_weights_offline(
    trained: Trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # the command sets these; monkeypatch restores them afterwards
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    hub_id, model = _fake_hub_cache(tmp_path / "hub", "test_vit")
    common = ("--models", "test_vit", "--data", str(trained.data), "--workers", "0", "--no-store")
    proc = _in_process(*common, "--hub-cache", str(tmp_path / "hub"), "--num-classes", "1000", "--format", "json")
    row = _one_row(proc)
    assert row["checkpoint"] == f"hf-hub:{hub_id}" and row["n_samples"] == 63 and row["top5_k"] == 5
    assert row["input_size"] == "3x160x160" and row["crop_pct"] == 0.95  # timm's eval settings of test_vit
    direct = _direct_eval(model, *_timm_inputs(model, trained.data, 160))
    assert row["loss"] == pytest.approx(direct["loss"], abs=1e-4)  # the cached weights, not a fresh init
    assert os.environ["HF_HUB_OFFLINE"] == "1" and huggingface_hub.constants.HF_HUB_OFFLINE
    assert_user_error(
        _in_process(*common, "--hub-cache", str(tmp_path / "hub")), "classifier has 1000 classes", "3 are evaluated"
    )
    (tmp_path / "empty").mkdir()
    assert_user_error(_in_process(*common, "--hub-cache", str(tmp_path / "empty")), "not in --hub-cache", "never")
    assert_user_error(_in_process(*common), "no checkpoint for test_vit", "--hub-cache")


# -- bad input ------------------------------------------------------------------------------------------------


def test_unknown_model_is_one_line_in_a_real_process(trained: Trained, tmp_path: Path) -> None:
    proc = run_cli("accuracy", "--models", "vminet_tt", "--data", str(trained.data), cwd=tmp_path)
    assert_user_error(proc, "unknown model 'vminet_tt'", "vminet_t")


def _two_class_folder(t: Trained, tmp: Path) -> Path:
    root = tmp / "two"
    for c in ("class_0", "class_1"):
        (root / c).mkdir(parents=True)
        (root / c / "a.png").write_bytes((t.data / c / "img_000.png").read_bytes())
    return root


def _folder_without_images(tmp: Path) -> Path:
    (tmp / "noimg" / "class_0").mkdir(parents=True)
    (tmp / "noimg" / "class_0" / "notes.txt").write_text("not an image")
    return tmp / "noimg"


def _resaved(t: Trained, path: Path, edit: Callable[[dict[str, torch.Tensor]], None]) -> Path:
    """The trained weights unwrapped (raw state dict, no EMA copy), edited, saved to ``path``."""
    state = {k.removeprefix("module."): v for k, v in torch.load(t.checkpoint)["state_dict"].items()}
    edit(state)
    torch.save(state, path)
    return path


def _unchanged(state: dict[str, torch.Tensor]) -> None:
    pass


def _rename_norm(state: dict[str, torch.Tensor]) -> None:
    state["extra.weight"] = state.pop("norm.weight")


def _text_file(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


Options = dict[str, str]
# case -> (what the one line must say, how a valid command is broken)
BAD_INPUT: dict[str, tuple[tuple[str, ...], Callable[[Options, Trained, Path], None]]] = {
    "missing_data": (("does not exist",), lambda o, t, tmp: o.update({"--data": str(tmp / "nope")})),
    "no_class_folders": (("no class folders",), lambda o, t, tmp: o.update({"--data": str(tmp)})),
    "no_images": (("no images",), lambda o, t, tmp: o.update({"--data": str(_folder_without_images(tmp))})),
    "head_too_big": (
        ("classifier has 3 classes but 4 are evaluated", "--num-classes 4"),
        lambda o, t, tmp: o.update({"--num-classes": "4"}),
    ),
    "head_too_small": (
        ("classifier has 3 classes but 2 are evaluated", "2 class folders"),
        lambda o, t, tmp: o.update({"--data": str(_two_class_folder(t, tmp))}),
    ),
    "num_classes_too_small": (
        ("--num-classes 2 is too small",),
        lambda o, t, tmp: o.update({"--num-classes": "2"}),
    ),
    "unreadable": (
        ("cannot read checkpoint",),
        lambda o, t, tmp: o.update({"--checkpoint": f"{MODEL}={_text_file(tmp / 'bad.pth', 'garbage')}"}),
    ),
    "mismatched": (
        ("1 missing: norm.weight", "1 unexpected: extra.weight"),
        lambda o, t, tmp: o.update({"--checkpoint": f"{MODEL}={_resaved(t, tmp / 'mm.pth', _rename_norm)}"}),
    ),
    "no_ema_copy": (
        ("no EMA weights",),
        lambda o, t, tmp: o.update(
            {"--checkpoint": f"{MODEL}={_resaved(t, tmp / 'raw.pth', _unchanged)}", "--ema": ""}
        ),
    ),
    "checkpoint_not_in_models": (
        ("--checkpoint names deit_t, which is not in --models",),
        lambda o, t, tmp: o.update({"--checkpoint": f"{o['--checkpoint']},deit_t={t.checkpoint}"}),
    ),
    "malformed_entry": (
        ("bad --checkpoint entry", "NAME=PATH"),
        lambda o, t, tmp: o.update({"--checkpoint": str(t.checkpoint)}),
    ),
    "model_without_checkpoint": (
        ("no checkpoint for vminet_xs",),
        lambda o, t, tmp: o.update({"--models": f"{MODEL},vminet_xs"}),
    ),
    "unknown_model": (("unknown model 'vminet_tt'",), lambda o, t, tmp: o.update({"--models": "vminet_tt"})),
    "class_map_lacks_a_folder": (
        ("missing from the class map", "class_2"),
        lambda o, t, tmp: o.update({"--class-map": str(_text_file(tmp / "map.txt", "class_0\nclass_1\n"))}),
    ),
    "bad_resolution": (("multiples of 32",), lambda o, t, tmp: o.update({"--res": "100"})),
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_is_one_line_exit_2(trained: Trained, tmp_path: Path, case: str) -> None:
    db = tmp_path / "r.sqlite"
    opts: Options = {"--models": MODEL, "--checkpoint": f"{MODEL}={trained.checkpoint}", "--data": str(trained.data),
                     "--res": str(RES), "--workers": "0", "--db": str(db)}  # fmt: skip
    fragments, breaks = BAD_INPUT[case]
    breaks(opts, trained, tmp_path)
    args = [part for key, value in opts.items() for part in (key, value) if part]  # "" marks a flag
    assert_user_error(_in_process(*args), *fragments)
    assert not db.exists()  # rejected before anything was evaluated or stored


def test_a_bad_second_checkpoint_stops_before_the_first_model_runs(trained: Trained, tmp_path: Path) -> None:
    db = tmp_path / "r.sqlite"
    args = _base_args(trained, db)
    args[args.index(MODEL)] = f"{MODEL},vminet_xs"
    args[args.index(f"{MODEL}={trained.checkpoint}")] = f"{MODEL}={trained.checkpoint},vminet_xs={trained.checkpoint}"
    assert_user_error(_in_process(*args), "vminet_xs", "does not match")
    assert not db.exists()


# -- pieces ---------------------------------------------------------------------------------------------------


def test_shard_sampler_covers_every_index_once() -> None:
    for n in (0, 1, 7, 63):
        for world in (1, 2, 3, 8):
            shards = [list(ShardSampler(n, r, world)) for r in range(world)]
            assert sorted(i for s in shards for i in s) == list(range(n))
            assert [len(ShardSampler(n, r, world)) for r in range(world)] == [len(s) for s in shards]


def test_spread_keeps_order_and_reaches_the_end() -> None:
    assert spread(list(range(10)), 5) == [0, 2, 4, 6, 8]
    assert spread(list(range(3)), 5) == [0, 1, 2]
    assert spread(list(range(3)), None) == [0, 1, 2]


def test_data_dir_hash_sees_names_and_sizes(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    f = tmp_path / "a" / "x.png"
    f.write_bytes(b"123")
    before = data_dir_hash(tmp_path, [str(f)])
    assert data_dir_hash(tmp_path, [str(f)]) == before
    f.write_bytes(b"1234")
    assert data_dir_hash(tmp_path, [str(f)]) != before


def test_accumulate_counts_top1_topk_and_loss() -> None:
    logits = torch.tensor([[3.0, 2.0, 1.0, 0.0, -1.0, -2.0], [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]])
    tally = torch.zeros(5, dtype=torch.float64)
    accumulate(tally, logits, torch.tensor([0, 0]), k=5)
    assert tally[:2].tolist() == [1.0, 1.0]  # sample 2's label is its smallest logit: outside its top-5
    assert tally[3] == 2 and tally[2] == pytest.approx(float(F.cross_entropy(logits, torch.tensor([0, 0]))) * 2)


def test_checkpoint_classes_tells_a_head_from_other_mismatches() -> None:
    model = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 3))
    other = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 10)).state_dict()
    assert checkpoint_classes(model, other, 3) == 10
    assert checkpoint_classes(model, model.state_dict(), 3) is None
    wider = nn.Sequential(nn.Linear(4, 9), nn.Linear(9, 10)).state_dict()
    assert checkpoint_classes(model, wider, 3) is None
