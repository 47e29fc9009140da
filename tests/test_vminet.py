"""VMINet: official layout and counts, any-resolution generalisation, checkpoint round trips."""

from __future__ import annotations

import pytest
import timm
import torch
from conftest import manifest, random_state_dict

import vmibench
from vmibench.models.vminet import VMINet, checkpoint_filter_fn, resize_context_weight

# Exact parameter counts of the released code (tests/reference/state_dicts/vminet_*.json, "params").
OFFICIAL_PARAMS = {"vminet_t": 2_036_938, "vminet_xs": 7_440_370, "vminet_s": 13_347_442, "vminet_b": 28_387_138}


@pytest.mark.parametrize("name", sorted(OFFICIAL_PARAMS))
def test_params_equal_official(name: str) -> None:
    model = vmibench.create_model(name)
    assert sum(p.numel() for p in model.parameters()) == OFFICIAL_PARAMS[name]


@pytest.mark.parametrize("name", sorted(OFFICIAL_PARAMS))
def test_state_dict_matches_manifest_and_loads_strictly(name: str) -> None:
    ref = manifest(name)
    model = vmibench.create_model(name)
    own = model.state_dict()
    assert list(own) == list(ref["state_dict"])
    assert {k: list(v.shape) for k, v in own.items()} == ref["state_dict"]
    fake = random_state_dict(ref["state_dict"])
    vmibench.checkpoint.load_state_dict_strict(model, fake)
    assert torch.equal(model.head.weight, fake["head.weight"])


def test_forward_any_resolution_divisible_by_32() -> None:
    for res in [(224, 224), (256, 320), (96, 64)]:
        model = vmibench.create_model("vminet_t", res=res).eval()
        with torch.no_grad():
            out = model(torch.randn(1, 3, *res))
        assert out.shape == (1, 1000) and torch.isfinite(out).all()
        assert model.stages[0][1].sum.weight.shape[-1] == (res[0] // 4) * (res[1] // 4)


def test_timm_create_model_knows_registered_names() -> None:
    model = timm.create_model("vminet_s", num_classes=10)
    assert isinstance(model, VMINet) and model.head.out_features == 10


def test_resize_context_weight_keeps_sum_and_constant_fields() -> None:
    w = torch.rand(1, 56 * 56)
    for dst in [(112, 112), (28, 28), (64, 80)]:
        out = resize_context_weight(w, (56, 56), dst)
        assert out.shape == (1, dst[0] * dst[1])
        assert out.sum().item() == pytest.approx(w.sum().item(), rel=0.02)
    const = torch.full((1, 49), 0.5)
    out = resize_context_weight(const, (7, 7), (16, 16))
    assert torch.allclose(out, torch.full_like(out, 0.5 * 49 / 256))


def test_checkpoint_at_224_loads_into_larger_model_and_keeps_context_scale() -> None:
    torch.manual_seed(0)
    src = vmibench.create_model("vminet_t").eval()
    dst = vmibench.create_model("vminet_t", res=448).eval()
    vmibench.checkpoint.load_state_dict_strict(dst, src.state_dict(), filter_fn=checkpoint_filter_fn)
    w_src = src.stages[2][3].sum.weight
    w_dst = dst.stages[2][3].sum.weight
    assert w_dst.shape == (1, 28 * 28)
    assert w_dst.sum().item() == pytest.approx(w_src.sum().item(), rel=0.02)
    # A spatially constant input gives a constant z, so the context s = sum_n w_n z scales with sum_n w_n:
    # the resized model's block must produce the same output at the centre as the 224 model's.
    x_small, x_big = torch.ones(1, 3, 224, 224), torch.ones(1, 3, 448, 448)
    with torch.no_grad():
        a = src.stages[0][1](src.stages[0][0](src.stem(x_small)))
        b = dst.stages[0][1](dst.stages[0][0](dst.stem(x_big)))
    assert torch.allclose(a[..., 28, 28], b[..., 56, 56], rtol=0.05, atol=1e-3)


def test_vminet_rejects_sizes_not_divisible_by_32() -> None:
    with pytest.raises(vmibench.errors.UserError, match="multiples of 32"):
        vmibench.create_model("vminet_t", res=225)
