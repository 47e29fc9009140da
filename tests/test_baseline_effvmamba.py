"""EfficientVMamba baselines: official state-dict layout, exact sizes, FLOPs, atrous scan layout, resolutions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import vmibench.baselines.effvmamba as effv
from conftest import manifest as load_manifest
from conftest import random_state_dict

import vmibench
from vmibench.checkpoint import load_state_dict_strict
from vmibench.errors import UserError
from vmibench.flops import count_flops

# effvmamba_t.json "params"; Small has no manifest: 11,273,688 is the log's 11.274M
# (classification/logs/log_efficient_vmamba_small.txt), reproduced by dims=64.
PARAMS = {"effvmamba_t": 6_493_660, "effvmamba_s": 11_273_688}
# effvmamba_t.json fvcore_gmacs / scan_gmacs; Small: the training log's 1.343 G (fvcore with the scan rule).
GMACS = {"effvmamba_t": 0.8064, "effvmamba_s": 1.343}
SCAN_GMACS_T = 0.131


pytestmark = pytest.mark.usefixtures("one_thread")


def test_manifest_state_dict_loads_strictly() -> None:
    manifest = load_manifest("effvmamba_t")
    model = effv.effvmamba_t()
    assert list(model.state_dict()) == list(manifest["state_dict"])  # same names, same order
    sd = random_state_dict(manifest["state_dict"])
    load_state_dict_strict(model, sd, filter_fn=effv.checkpoint_filter_fn)
    assert torch.equal(model.layers[0].blocks[0].op.A_logs, sd["layers.0.blocks.0.op.A_logs"])
    assert sum(p.numel() for p in model.parameters()) == manifest["params"]


@pytest.mark.parametrize("name", ["effvmamba_t", "effvmamba_s"])
def test_param_counts_exact(name: str) -> None:
    model = getattr(effv, name)()
    assert sum(p.numel() for p in model.parameters()) == PARAMS[name]


def test_code_ignores_config_d_state() -> None:
    # The yaml's D_STATE/DT_RANK never reach the blocks: the official code builds d_state 16, dt_rank ceil(C/16).
    op = effv.effvmamba_s().layers[1].blocks[0].op
    assert op.d_state == 16 and op.dt_rank == 8
    assert tuple(op.x_proj_weight.shape) == (4, 8 + 32, 256)


@pytest.mark.parametrize("name", ["effvmamba_t", "effvmamba_s"])
def test_fvcore_gmacs(name: str) -> None:
    model = getattr(effv, name)()
    fc = count_flops(model, torch.randn(1, 3, 224, 224))
    assert fc.gmacs == pytest.approx(GMACS[name], rel=0.03)
    if name == "effvmamba_t":
        assert fc.scan_gmacs == pytest.approx(SCAN_GMACS_T, rel=0.01)


def test_constants_match_manifest() -> None:
    # test_fvcore_gmacs measures against these constants; keep them equal to the manifest.
    manifest = load_manifest("effvmamba_t")
    assert (PARAMS["effvmamba_t"], GMACS["effvmamba_t"]) == (manifest["params"], manifest["fvcore_gmacs"])
    assert manifest["scan_gmacs"] == SCAN_GMACS_T


def _official_subgrids(x: torch.Tensor) -> list[torch.Tensor]:
    """The four sequences as the official EfficientScan indexes them (even-sized maps)."""
    b, c = x.shape[:2]
    xt = x.transpose(2, 3)
    return [
        x[:, :, ::2, ::2].reshape(b, c, -1),
        xt[:, :, ::2, 1::2].reshape(b, c, -1),
        x[:, :, ::2, 1::2].reshape(b, c, -1),
        xt[:, :, 1::2, 1::2].reshape(b, c, -1),
    ]


@pytest.mark.parametrize("hw", [(6, 10), (5, 7), (1, 3)])
def test_atrous_partition_layout_and_round_trip(hw: tuple[int, int]) -> None:
    h, w = hw
    x = torch.randn(2, 3, h, w)
    seqs = effv.atrous_partition(x)
    assert seqs.shape == (2, 4, 3, ((h + 1) // 2) * ((w + 1) // 2))
    padded = torch.nn.functional.pad(x, (0, w % 2, 0, h % 2))  # the official zero pad for odd sizes
    for k, ref in enumerate(_official_subgrids(padded)):
        assert torch.equal(seqs[:, k], ref)
    assert torch.equal(effv.atrous_merge(seqs, h, w), x)


def test_each_block_scans_four_subgrids_in_one_call() -> None:
    calls: list[tuple[int, ...]] = []
    op = effv.effvmamba_t().layers[0].blocks[0].op.eval()
    real = effv.selective_scan

    def spy(u: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        calls.append((tuple(u.shape), tuple(args[2].shape)))  # u and B
        return real(u, *args, **kwargs)

    effv.selective_scan = spy
    try:
        with torch.no_grad():
            op(torch.randn(1, 8, 12, 48))
    finally:
        effv.selective_scan = real
    assert calls == [((1, 4 * 96, 4 * 6), (1, 4, 16, 4 * 6))]


@pytest.mark.parametrize("res", [224, (256, 320)])
def test_forward(res: int | tuple[int, int]) -> None:
    model = vmibench.create_model("effvmamba_t", res=res).eval()
    h, w = (res, res) if isinstance(res, int) else res
    with torch.no_grad():
        out = model(torch.randn(1, 3, h, w))
    assert out.shape == (1, 1000) and torch.isfinite(out).all()


def test_cross_resolution_checkpoint(tmp_path: Path) -> None:
    torch.manual_seed(0)
    src = effv.effvmamba_t(img_size=224).eval()
    with torch.no_grad():  # non-trivial SSM and BN state so a wrong load would show
        for p in src.parameters():
            p.add_(0.05 * torch.randn_like(p))
        for name, b in src.named_buffers():
            if name.endswith("running_var"):
                b.uniform_(0.5, 1.5)
    path = tmp_path / "effvmamba_t.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in src.state_dict().items()}}, path)
    dst = vmibench.create_model("effvmamba_t", res=(256, 320), checkpoint=path).eval()
    x = torch.randn(1, 3, 256, 320)
    with torch.no_grad():
        # No weight depends on resolution: the 224 model run at 256x320 is what the official code computes.
        assert torch.allclose(dst(x), src(x), atol=1e-5)


def test_legacy_names_and_resolution_check() -> None:
    model = effv.effvmamba_t()
    sd = model.state_dict()
    legacy = {
        k.replace("patch_embed.0", "patch_embed.proj")
        .replace("classifier.head", "head")
        .replace("blocks.0.op", "blocks.0.self_attention"): v
        for k, v in sd.items()
    }
    assert set(effv.checkpoint_filter_fn(legacy, model)) == set(sd)
    with pytest.raises(UserError):
        vmibench.create_model("effvmamba_s", res=240)
