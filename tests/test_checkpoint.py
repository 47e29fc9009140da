"""Checkpoint formats: raw, wrapped (state_dict / state_dict_ema / model / model_ema), module. prefixes, errors."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch

import vmibench
from vmibench.checkpoint import unwrap_state_dict
from vmibench.errors import CheckpointError


@pytest.fixture(scope="module")
def weights() -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    return {k: v.clone() for k, v in vmibench.create_model("vminet_t", res=64).state_dict().items()}


def _prefixed(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"module.{k}": v for k, v in sd.items()}


@pytest.mark.parametrize(
    "wrap",
    [
        lambda sd: sd,
        lambda sd: {"state_dict": sd, "epoch": 3, "args": argparse.Namespace(lr=1e-3)},
        lambda sd: {"model": sd, "optimizer": {"lr": 0.1}},
        lambda sd: {"model": _prefixed(sd)},
        lambda sd: _prefixed(sd),
        lambda sd: {"state_dict": {f"_orig_mod.{k}": v for k, v in sd.items()}},
    ],
    ids=["raw", "state_dict+args", "model", "model+module", "module", "compiled"],
)
def test_wrapped_formats_load_strictly(tmp_path: Path, weights, wrap) -> None:
    path = tmp_path / "ckpt.pth.tar"
    torch.save(wrap(weights), path)
    model = vmibench.create_model("vminet_t", res=64, checkpoint=path)
    assert torch.equal(model.head.weight, weights["head.weight"])


@pytest.mark.parametrize("key", ["state_dict_ema", "model_ema"])
def test_ema_weights_are_chosen_with_ema(tmp_path: Path, weights, key: str) -> None:
    ema = {k: v + 1 if v.is_floating_point() else v for k, v in weights.items()}
    plain_key = "state_dict" if key == "state_dict_ema" else "model"
    path = tmp_path / "ckpt.pth"
    torch.save({plain_key: weights, key: ema}, path)
    plain = vmibench.create_model("vminet_t", res=64, checkpoint=path)
    averaged = vmibench.create_model("vminet_t", res=64, checkpoint=path, ema=True)
    assert torch.equal(plain.head.weight, weights["head.weight"])
    assert torch.equal(averaged.head.weight, ema["head.weight"])


def test_ema_requested_but_absent(weights) -> None:
    with pytest.raises(CheckpointError, match="no EMA"):
        unwrap_state_dict({"state_dict": weights}, ema=True)


def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.pth"
    path.write_bytes(b"this is not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        vmibench.create_model("vminet_t", res=64, checkpoint=path)
    with pytest.raises(CheckpointError, match="does not exist"):
        vmibench.create_model("vminet_t", res=64, checkpoint=tmp_path / "missing.pth")


def test_mismatch_names_missing_unexpected_and_shapes(tmp_path: Path, weights) -> None:
    bad = dict(weights)
    bad.pop("head.bias")
    bad["extra.weight"] = torch.zeros(1)
    bad["head.weight"] = torch.zeros(10, 192)
    path = tmp_path / "bad.pth"
    torch.save({"model": bad}, path)
    with pytest.raises(CheckpointError) as info:
        vmibench.create_model("vminet_t", res=64, checkpoint=path)
    text = str(info.value)
    assert "1 missing: head.bias" in text and "1 unexpected: extra.weight" in text and "head.weight (10, 192)" in text
    assert "\n" not in text


def test_no_state_dict_inside(tmp_path: Path) -> None:
    path = tmp_path / "meta.pth"
    torch.save({"epoch": 3, "note": "nothing"}, path)
    with pytest.raises(CheckpointError, match="no state dict"):
        vmibench.create_model("vminet_t", res=64, checkpoint=path)
