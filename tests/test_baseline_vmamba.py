"""VMamba (``baselines.vmamba``): official state-dict layout, parameter counts, FLOPs, scan wiring, sizes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
import vmibench.baselines.vmamba as vm
from conftest import manifest as load_manifest
from conftest import random_state_dict

import vmibench
from vmibench.checkpoint import load_state_dict_strict
from vmibench.errors import UserError
from vmibench.flops import count_flops, scan_macs
from vmibench.ops import selective_scan
from vmibench.registry import get_entry

NAMES = ("vmamba_t", "vmamba_s")
# Parameter counts of the official models (manifests vmamba_t.json / vmamba_s.json, field "params").
OFFICIAL_PARAMS = {"vmamba_t": 30_249_064, "vmamba_s": 50_147_752}
DEPTHS = {"vmamba_t": (2, 2, 8, 2), "vmamba_s": (2, 2, 15, 2)}
SSM_RATIO = {"vmamba_t": 1, "vmamba_s": 2}


pytestmark = pytest.mark.usefixtures("one_thread")


def _filter(name: str) -> Any:
    return get_entry(name).checkpoint_filter


@pytest.mark.parametrize("name", NAMES)
def test_params_exact(name: str) -> None:
    model = vmibench.create_model(name)
    assert sum(p.numel() for p in model.parameters()) == OFFICIAL_PARAMS[name]


@pytest.mark.parametrize("name", NAMES)
def test_manifest_state_dict_loads_strictly(name: str) -> None:
    manifest = load_manifest(name)
    model = vmibench.create_model(name)
    own = model.state_dict()
    assert list(own) == list(manifest["state_dict"])  # same names, same order
    assert {k: list(v.shape) for k, v in own.items()} == manifest["state_dict"]
    assert sum(p.numel() for p in model.parameters()) == manifest["params"]
    sd = random_state_dict(manifest["state_dict"])
    load_state_dict_strict(model, sd, filter_fn=_filter(name))
    assert torch.equal(model.layers[2].blocks[1].op.x_proj_weight, sd["layers.2.blocks.1.op.x_proj_weight"])


@pytest.mark.parametrize("name", NAMES)
def test_flops_match_manifest(name: str) -> None:
    manifest = load_manifest(name)
    fc = count_flops(vmibench.create_model(name), torch.randn(1, 3, 224, 224))
    assert fc.params == manifest["params"]
    assert fc.gmacs == pytest.approx(manifest["fvcore_gmacs"], rel=0.03)
    # One scan per block over 4 directions x d_inner channels, d_state 1, on a 56/28/14/7 grid.
    expected = sum(
        depth * scan_macs(1, (56 >> i) ** 2, 4 * SSM_RATIO[name] * 96 * 2**i, 1) for i, depth in enumerate(DEPTHS[name])
    )
    assert fc.scan_gmacs == pytest.approx(expected / 1e9, rel=1e-6)
    assert fc.scan_gmacs == pytest.approx(manifest["scan_gmacs"], rel=0.03)


# vmamba_s at 224 already runs forward in test_flops_match_manifest; a second run would only cost time.
@pytest.mark.parametrize(("name", "res"), [("vmamba_t", (224, 224)), ("vmamba_t", (160, 224)), ("vmamba_s", (96, 160))])
def test_forward(name: str, res: tuple[int, int]) -> None:
    model = vmibench.create_model(name, res=res).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, *res))
    assert out.shape == (1, 1000)
    assert torch.isfinite(out).all()


def test_rejects_sizes_not_multiple_of_32() -> None:
    with pytest.raises(UserError):
        vmibench.create_model("vmamba_t", res=100)


def test_cross_resolution_checkpoint(tmp_path: Path) -> None:
    """A 224 checkpoint (released ``{"model": ...}`` wrapping) loads into a 384 model; same function."""
    sd = random_state_dict(load_manifest("vmamba_t")["state_dict"])
    path = tmp_path / "vmamba_t_224.pth"
    torch.save({"model": sd}, path)
    big = vmibench.create_model("vmamba_t", res=384, checkpoint=path).eval()
    small = vmibench.create_model("vmamba_t", res=224, checkpoint=path).eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        a, b = big(x), small(x)
    assert torch.isfinite(a).all()
    assert torch.equal(a, b)  # nothing in VMamba depends on the build size


def test_filter_resizes_pos_embed_and_accepts_conv_shaped_linear() -> None:
    src = vm.VSSM(depths=(1, 1), dims=16, posembed=True, img_size=64, num_classes=10)
    dst = vm.VSSM(depths=(1, 1), dims=16, posembed=True, img_size=(128, 96), num_classes=10)
    sd = src.state_dict()
    sd["layers.0.blocks.0.mlp.fc1.weight"] = sd["layers.0.blocks.0.mlp.fc1.weight"][:, :, None, None].clone()
    load_state_dict_strict(dst, dict(sd), filter_fn=vm.checkpoint_filter_fn)
    assert dst.pos_embed.shape == (1, 16, 32, 24)
    want = F.interpolate(src.pos_embed.detach(), size=(32, 24), mode="bicubic", align_corners=False)
    assert torch.allclose(dst.pos_embed, want)
    assert torch.equal(dst.layers[0].blocks[0].mlp.fc1.weight, src.layers[0].blocks[0].mlp.fc1.weight)


def test_cross_scan_layout_and_merge() -> None:
    x = torch.arange(2 * 3 * 5, dtype=torch.float32).reshape(1, 2, 3, 5)
    xs = vm.cross_scan(x)
    assert xs.shape == (1, 4, 2, 15)
    assert torch.equal(xs[:, 0], x.flatten(2))  # row-major
    h, w = 1, 3
    assert torch.equal(xs[0, 1, :, w * 3 + h], x[0, :, h, w])  # column-major: index w*H + h
    assert torch.equal(xs[:, 2:], xs[:, :2].flip(-1))  # both reversed
    assert torch.equal(vm.cross_merge(xs, 3, 5), 4 * x.flatten(2))


def test_ss2d_core_matches_per_direction_scans() -> None:
    """One grouped scan call == four independent scans, each with its own projections (d_state > 1)."""
    torch.manual_seed(0)
    op = vm.SS2D(d_model=8, d_state=3, ssm_ratio=2.0).eval()
    with torch.no_grad():
        for p in op.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x = torch.randn(2, op.d_inner, 3, 5)
    d, n, r = op.d_inner, op.d_state, op.dt_rank
    seqs = vm.cross_scan(x)
    a = -op.A_logs.exp().reshape(4, d, n)
    ys = []
    for k in range(4):
        proj = torch.einsum("cd,bdl->bcl", op.x_proj_weight[k], seqs[:, k])
        dt = torch.einsum("dr,brl->bdl", op.dt_projs_weight[k], proj[:, :r])
        ys.append(
            selective_scan(
                seqs[:, k],
                dt,
                a[k],
                proj[:, r : r + n],
                proj[:, r + n :],
                D=op.Ds.reshape(4, d)[k],
                delta_bias=op.dt_projs_bias[k],
                delta_softplus=True,
                backend="reference",
            )
        )
    want = op.out_norm(vm.cross_merge(torch.stack(ys, 1), 3, 5).reshape(2, d, 3, 5))
    with torch.no_grad():
        got = op.forward_core(x)
    assert torch.allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_record(name: str) -> None:
    info = get_entry(name).info
    assert info.uses_scan and get_entry(name).checkpoint_filter is vm.checkpoint_filter_fn
    assert info.official == "github.com/MzeroMiko/VMamba classification/models/vmamba.py @2ed52ea"
    assert (info.eval.crop_pct, info.eval.interpolation) == (0.875, "bicubic")
    assert info.published.top1 == {"vmamba_t": 82.6, "vmamba_s": 83.6}[name]
    assert "9*B*L*D*N" in info.published.flops_rule
