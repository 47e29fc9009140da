"""timm's generic model contract on every registered model, and the package structure behind it.

Each registered model is built at its smallest accepted size with 10 classes and put through the checks of
timm's ``tests/test_models.py`` (forward/backward, classifier reset, pre-logits, ``pretrained_cfg``,
``features_only`` against ``feature_info``) plus ``forward_intermediates`` against ``features_only``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from PIL import Image
from timm.data import create_transform, resolve_data_config

import vmibench
from vmibench.registry import ModelInfo, list_infos, resolve_info

ROOT = Path(__file__).resolve().parents[1]
NAMES = [info.name for info in list_infos()]
CFG_KEYS = ("input_size", "mean", "std", "crop_pct", "interpolation", "first_conv", "classifier")


def smallest(info: ModelInfo) -> tuple[int, int]:
    m = info.res_multiple
    side = -(-max(info.min_res, m) // m) * m
    return side, side


@pytest.mark.parametrize("name", NAMES)
def test_generic_contract(name: str) -> None:
    hw = smallest(resolve_info(name))
    x = torch.randn(1, 3, *hw)
    torch.manual_seed(0)
    model = vmibench.create_model(name, res=hw, num_classes=10).eval()
    torch.manual_seed(0)
    features = vmibench.create_model(name, res=hw, num_classes=10, features_only=True).eval()  # same weights

    info = features.feature_info
    with torch.no_grad():
        maps = features(x)
        intermediates = model.forward_intermediates(x, indices=list(info.out_indices), intermediates_only=True)
    assert len(maps) == len(info.channels()) == len(intermediates)
    if getattr(features, "output_fmt", "NCHW") == "NHWC":  # timm's own Swin hands out channels-last maps
        maps = [m.permute(0, 3, 1, 2) for m in maps]
    for got, channels, reduction, want in zip(maps, info.channels(), info.reduction(), intermediates, strict=True):
        assert tuple(got.shape) == (1, channels, hw[0] // reduction, hw[1] // reduction)
        torch.testing.assert_close(got, want)

    cfg = model.pretrained_cfg
    assert model.default_cfg == cfg
    assert all(cfg.get(key) is not None for key in CFG_KEYS), cfg
    assert tuple(cfg["input_size"]) == (3, *hw)
    state = model.state_dict()
    assert f"{cfg['first_conv']}.weight" in state and f"{cfg['classifier']}.weight" in state

    with torch.no_grad():
        pre = model.forward_head(model.forward_features(x), pre_logits=True)
        assert pre.shape == (1, model.num_features) and model.head_hidden_size == model.num_features
        assert model.get_classifier().out_features == model.num_classes == 10

    model.train()
    out = model(x.repeat(2, 1, 1, 1))  # batch 2, as timm's backward test: a 1x1 map in BatchNorm needs two
    assert out.shape == (2, 10)
    out.mean().backward()
    assert [n for n, p in model.named_parameters() if p.grad is None] == []

    model.eval()
    model.reset_classifier(0)
    with torch.no_grad():
        pooled = model(x)
    assert pooled.shape == (1, model.num_features)


OURS = [info.name for info in list_infos() if info.timm_name is None]


@pytest.mark.parametrize("name", ["vminet_t", "vim_t"])
def test_forward_intermediates_final_is_forward_features(name: str) -> None:
    hw = smallest(resolve_info(name))
    model = vmibench.create_model(name, res=hw).eval()
    x = torch.randn(1, 3, *hw)
    with torch.no_grad():
        final, maps = model.forward_intermediates(x, indices=2, norm=True)
        torch.testing.assert_close(final, model.forward_features(x))
    assert len(maps) == 2


def test_records_are_one_source_for_timm_cfgs() -> None:
    import timm

    import vmibench.models  # noqa: F401  # registers the architectures with timm

    for name in OURS:
        info = resolve_info(name)
        cfg = timm.get_pretrained_cfg(name)
        assert cfg is not None and cfg.input_size == info.eval.input_size, name
        assert (cfg.crop_pct, cfg.interpolation, cfg.fixed_input_size) == (
            info.eval.crop_pct,
            info.eval.interpolation,
            info.fixed_input_size,
        )


def test_built_resolution_drives_timm_eval_pipeline() -> None:
    model = vmibench.create_model("vminet_s", res=384).eval()
    assert model.pretrained_cfg["input_size"] == (3, 384, 384)
    config = resolve_data_config(model=model)
    x = create_transform(**config)(Image.new("RGB", (500, 375), (120, 60, 30))).unsqueeze(0)
    assert x.shape == (1, 3, 384, 384)
    with torch.no_grad():
        assert model(x).shape == (1, 1000)


# One model per family whose structure is tied to its input size (the family shares the check).
SIZE_TIED = list({i.family: i.name for i in reversed(list_infos()) if i.fixed_input_size and not i.timm_name}.values())


@pytest.mark.parametrize("name", SIZE_TIED)
def test_size_tied_models_name_their_build_size(name: str) -> None:
    model = vmibench.create_model(name, res=64).eval()
    assert model.pretrained_cfg["fixed_input_size"] is True
    with pytest.raises(ValueError, match="built for 64x64 inputs and got 96x96"):
        model(torch.randn(1, 3, 96, 96))


@pytest.mark.parametrize("name", ["vim_t"])
def test_torch_compile_captures_the_model(name: str) -> None:
    # Dynamo's graph capture with the aot_eager backend, on the model whose selective scan is the likeliest to
    # break it; inductor's C++ code generation is left out (on CPU 0.3-6 min per model, too slow for the suite).
    torch._dynamo.reset()
    hw = smallest(resolve_info(name))
    model = vmibench.create_model(name, res=hw).eval()
    x = torch.randn(1, 3, *hw)
    with torch.no_grad():
        torch.testing.assert_close(torch.compile(model, backend="aot_eager")(x), model(x))


def test_grad_checkpointing_keeps_gradients() -> None:
    torch.manual_seed(0)
    model = vmibench.create_model("vmamba_t", res=32, num_classes=3, drop_path_rate=0.0)
    x = torch.randn(1, 3, 32, 32)
    model(x).sum().backward()
    plain = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model.set_grad_checkpointing(True)
    model(x).sum().backward()
    for a, p in zip(plain, model.parameters(), strict=True):
        torch.testing.assert_close(p.grad, a)


def _python(code: str, cwd: Path, pythonpath: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=pythonpath, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_records_need_no_torch(tmp_path: Path) -> None:
    code = textwrap.dedent(
        """
        import sys
        import vmibench
        from vmibench.registry import list_infos, resolve_info
        assert len(list_infos()) >= 18 and resolve_info("vminet_t").fixed_input_size
        resolve_info("mlla_t").check_resolution((224, 224))
        print(sorted(m for m in ("torch", "timm") if m in sys.modules))
        """
    )
    done = _python(code, tmp_path, str(ROOT))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_a_stray_baselines_module_changes_nothing(tmp_path: Path) -> None:
    (tmp_path / "baselines.py").write_text("raise ImportError('the user script, not our rivals')\n")
    code = textwrap.dedent(
        """
        import importlib.util, sys
        import vmibench, vmibench.baselines
        print(importlib.util.find_spec("vmibench.baselines.vim").origin)
        print("baselines" in sys.modules)
        """
    )
    done = _python(code, tmp_path, os.pathsep.join((str(tmp_path), str(ROOT))))
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(ROOT / "baselines" / "vim.py"), "False"]
