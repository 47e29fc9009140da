"""Vim (``baselines.vim``): official state-dict layout, parameter counts, FLOPs, scan wiring, resolutions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
import vmibench.baselines.vim as vim
from conftest import manifest as load_manifest
from conftest import random_state_dict

import vmibench
from vmibench.checkpoint import load_state_dict_strict
from vmibench.errors import UserError
from vmibench.flops import count_flops, scan_macs
from vmibench.registry import get_entry

# Parameter counts of the official models (manifests vim_t.json / vim_s.json, field "params").
OFFICIAL_PARAMS = {"vim_t": 7_148_008, "vim_s": 25_796_584}
WIDTH = {"vim_t": 192, "vim_s": 384}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("name", ["vim_t", "vim_s"])
def test_params_exact(name: str) -> None:
    model = vmibench.create_model(name)
    assert sum(p.numel() for p in model.parameters()) == OFFICIAL_PARAMS[name]


@pytest.mark.parametrize("name", ["vim_t", "vim_s"])
def test_manifest_state_dict_loads_strictly(name: str) -> None:
    manifest = load_manifest(name)
    model = vmibench.create_model(name)
    own = model.state_dict()
    assert list(own) == list(manifest["state_dict"])  # same names, same order
    assert {k: list(v.shape) for k, v in own.items()} == manifest["state_dict"]
    assert sum(p.numel() for p in model.parameters()) == manifest["params"]
    sd = random_state_dict(manifest["state_dict"])
    load_state_dict_strict(model, sd, filter_fn=get_entry(name).checkpoint_filter)
    assert torch.equal(model.layers[23].mixer.A_b_log, sd["layers.23.mixer.A_b_log"])


@pytest.mark.parametrize("name", ["vim_t", "vim_s"])
def test_flops_match_manifest(name: str) -> None:
    manifest = load_manifest(name)
    fc = count_flops(vmibench.create_model(name), torch.randn(1, 3, 224, 224))
    assert fc.params == manifest["params"]
    assert fc.gmacs == pytest.approx(manifest["fvcore_gmacs"], rel=0.03)
    # 24 layers x 2 directions, each one z-gated scan over 14*14 + 1 tokens and 2*width channels.
    expected_scan = 48 * scan_macs(1, 197, 2 * WIDTH[name], 16, gated=True) / 1e9
    assert fc.scan_gmacs == pytest.approx(expected_scan, rel=1e-6)
    # The manifest counts the same rule (B*D*L credited for the z gate too).
    assert fc.scan_gmacs == pytest.approx(manifest["scan_gmacs"], rel=0.01)


def _tiny(**kwargs: Any) -> vim.VisionMamba:
    torch.manual_seed(0)
    model = vim.VisionMamba(img_size=(48, 32), embed_dim=16, depth=2, num_classes=5, **kwargs)
    return model.eval()


def test_every_scan_is_gated_and_goes_through_vmibench(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []
    real = vim.selective_scan

    def record(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False, **kw):  # type: ignore[no-untyped-def]
        calls.append(dict(u=u, A=A, B=B, D=D, z=z, delta_bias=delta_bias, softplus=delta_softplus))
        return real(u, delta, A, B, C, D=D, z=z, delta_bias=delta_bias, delta_softplus=delta_softplus, **kw)

    monkeypatch.setattr(vim, "selective_scan", record)
    model = _tiny()
    with torch.no_grad():
        model(torch.randn(2, 3, 48, 32))
    assert len(calls) == 2 * len(model.layers)  # forward and backward direction of every layer
    for call in calls:
        assert call["softplus"] is True
        assert call["z"] is not None and call["z"].shape == call["u"].shape == (2, 32, 7)
        assert call["D"] is not None and call["delta_bias"] is not None
        assert call["B"].shape == (2, 16, 7) and torch.all(call["A"] < 0)


def _official_direction(xz: torch.Tensor, m: vim.BiMambaV2, backward: bool) -> torch.Tensor:
    """Independent token loop of mamba_inner_fn_no_out_proj for one direction; xz (B, 2*Di, L)."""
    if backward:
        conv, x_proj, dt_proj, a_log, d = m.conv1d_b, m.x_proj_b, m.dt_proj_b, m.A_b_log, m.D_b
    else:
        conv, x_proj, dt_proj, a_log, d = m.conv1d, m.x_proj, m.dt_proj, m.A_log, m.D
    di, length, n, rank = m.d_inner, xz.shape[-1], m.d_state, m.dt_rank
    x, z = xz[:, :di], xz[:, di:]
    k = conv.weight.shape[-1]
    xp = F.pad(x, (k - 1, 0))  # causal: output t sees inputs t-k+1 .. t
    x = F.silu(sum(xp[:, :, j : j + length] * conv.weight[:, 0, j, None] for j in range(k)) + conv.bias[:, None])
    a = -torch.exp(a_log)
    h = torch.zeros(x.shape[0], di, n)
    ys = []
    for t in range(length):
        proj = x[:, :, t] @ x_proj.weight.t()  # (B, rank + 2N): dt, B, C in this order
        delta = F.softplus(proj[:, :rank] @ dt_proj.weight.t() + dt_proj.bias)  # (B, Di)
        b, c = proj[:, rank : rank + n], proj[:, rank + n :]
        h = torch.exp(delta[..., None] * a) * h + delta[..., None] * b[:, None] * x[:, :, t, None]
        y = (h * c[:, None]).sum(-1) + d * x[:, :, t]
        ys.append(y * F.silu(z[:, :, t]))
    return torch.stack(ys, dim=-1)


def test_bimamba_v2_mixer_matches_official_semantics() -> None:
    torch.manual_seed(0)
    mixer = vim.BiMambaV2(d_model=8, d_state=4).eval()
    with torch.no_grad():
        for p in mixer.parameters():  # break the symmetric init so a swapped parameter would show
            p.add_(0.1 * torch.randn_like(p))
        x = torch.randn(2, 9, 8)
        xz = (x @ mixer.in_proj.weight.t()).transpose(1, 2)
        fwd = _official_direction(xz, mixer, backward=False)
        bwd = _official_direction(xz.flip(-1), mixer, backward=True)
        expected = ((fwd + bwd.flip(-1)) / 2).transpose(1, 2) @ mixer.out_proj.weight.t()
        torch.testing.assert_close(mixer(x), expected, rtol=1e-4, atol=1e-5)


def test_add_norm_keeps_fp32_residual() -> None:
    norm = vim.RMSNorm(6)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
    x = torch.randn(2, 3, 6).bfloat16()
    out, residual = norm.add_norm(x, None, residual_in_fp32=True)
    assert residual.dtype == torch.float32 and out.dtype == torch.bfloat16
    out, residual = norm.add_norm(x, residual, residual_in_fp32=True)
    assert residual.dtype == torch.float32
    total = 2 * x.float()
    expected = total / torch.sqrt(total.square().mean(-1, keepdim=True) + 1e-5) * norm.weight
    torch.testing.assert_close(out.float(), expected, rtol=1e-2, atol=1e-2)
    torch.testing.assert_close(residual, total)


def test_forward_at_224() -> None:
    model = vmibench.create_model("vim_t").eval()
    assert model.cls_index == 98
    with torch.no_grad():
        out = model(torch.randn(1, 3, 224, 224))
    assert out.shape == (1, 1000) and torch.isfinite(out).all()


def test_checkpoint_at_224_loads_into_another_resolution(tmp_path: Path) -> None:
    torch.manual_seed(0)
    sd = vmibench.create_model("vim_t").state_dict()
    torch.save({"model": sd}, tmp_path / "vim_t.pth")  # the official release wraps weights in "model"
    model = vmibench.create_model("vim_t", res=(160, 128), checkpoint=tmp_path / "vim_t.pth").eval()

    grid = (10, 8)
    mid = grid[0] * grid[1] // 2
    assert model.patch_embed.grid_size == grid and model.cls_index == mid
    pos = model.pos_embed.detach()
    assert pos.shape == (1, 81, 192)
    torch.testing.assert_close(pos[:, mid], sd["pos_embed"][:, 98])  # the cls entry moves, unchanged
    old_patches = torch.cat((sd["pos_embed"][:, :98], sd["pos_embed"][:, 99:]), dim=1)
    resized = F.interpolate(
        old_patches.reshape(1, 14, 14, 192).permute(0, 3, 1, 2), size=grid, mode="bicubic", align_corners=False
    )
    resized = resized.permute(0, 2, 3, 1).reshape(1, -1, 192)
    torch.testing.assert_close(torch.cat((pos[:, :mid], pos[:, mid + 1 :]), dim=1), resized)
    torch.testing.assert_close(model.layers[5].mixer.x_proj_b.weight.detach(), sd["layers.5.mixer.x_proj_b.weight"])

    with torch.no_grad():
        out = model(torch.randn(2, 3, 160, 128))
    assert out.shape == (2, 1000) and torch.isfinite(out).all()


def test_same_resolution_filter_is_identity() -> None:
    model = vim.VisionMamba(img_size=64, embed_dim=16, depth=1, num_classes=3)
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    out = vim.checkpoint_filter_fn(dict(sd), model)
    assert all(torch.equal(out[k], sd[k]) for k in sd)


def test_record_and_resolution_checks() -> None:
    info = get_entry("vim_t").info
    assert info.uses_scan and info.res_multiple == 16
    assert info.published.gmacs == 1.5 and info.published.top1 == 76.1 and info.published.flops_rule
    assert "M//2" in info.adaptation and "bicubic" in info.adaptation
    assert info.official.startswith("github.com/hustvl/Vim ")
    with pytest.raises(UserError):
        vmibench.create_model("vim_t", res=200)
    model = _tiny()
    with pytest.raises(ValueError):
        model(torch.randn(1, 3, 32, 32))
