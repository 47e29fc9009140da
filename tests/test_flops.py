"""FLOPs engine: VMINet and timm references against official / published counts, handles, records."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import vmibench
from vmibench.flops import count_flops, measure_flops, sdpa_macs

# fvcore on the official code at 224 (tests/reference/state_dicts/vminet_*.json, "fvcore_gmacs").
OFFICIAL_GMACS = {"vminet_t": 0.3504, "vminet_xs": 1.2582, "vminet_s": 2.3009, "vminet_b": 4.7806}
# Published GMACs at 224 (timm model cards / Swin MODELHUB).
PUBLISHED_GMACS = {"deit_s": 4.6, "swin_t": 4.5}


@pytest.mark.parametrize("name", sorted(OFFICIAL_GMACS))
def test_vminet_gmacs_within_2pct_of_official(name: str) -> None:
    rec = measure_flops(name, (224, 224))
    assert rec.status == "ok"
    assert rec.gmacs == pytest.approx(OFFICIAL_GMACS[name], rel=0.02)
    assert rec.gflops == pytest.approx(2 * rec.gmacs)
    assert rec.gmacs_torch == pytest.approx(rec.gmacs, rel=0.03)
    assert "aten::mul" in rec.uncounted_ops


@pytest.mark.parametrize("name", sorted(PUBLISHED_GMACS))
def test_timm_references_within_3pct_of_published(name: str) -> None:
    rec = measure_flops(name, (224, 224))
    assert rec.gmacs == pytest.approx(PUBLISHED_GMACS[name], rel=0.03)
    assert rec.published_gmacs == PUBLISHED_GMACS[name]


class _Attention(nn.Module):
    def forward(self, q, k, v):  # type: ignore[no-untyped-def]
        return F.scaled_dot_product_attention(q, k, v)


def test_sdpa_handle_counts_qk_and_av() -> None:
    q, k, v = torch.randn(2, 3, 50, 16), torch.randn(2, 3, 70, 16), torch.randn(2, 3, 70, 8)
    fc = count_flops(_Attention(), (q, k, v))
    assert fc.gmacs * 1e9 == sdpa_macs(q.shape, k.shape, v.shape) == 2 * 3 * 50 * 70 * (16 + 8)
    assert fc.gmacs_torch * 1e9 == pytest.approx(fc.gmacs * 1e9)


def test_deit_attention_is_counted_not_dropped() -> None:
    model = vmibench.create_model("deit_t")
    fc = count_flops(model, torch.randn(1, 3, 224, 224))
    attn = fc.by_operator.get("scaled_dot_product_attention", 0.0)
    # 12 blocks x 3 heads x 197^2 x (64 + 64)
    assert attn == pytest.approx(12 * 3 * 197 * 197 * 128 / 1e9, rel=1e-6)


def test_gmacs_are_per_image() -> None:
    one = measure_flops("vminet_t", (64, 64), batch=1)
    two = measure_flops("vminet_t", (64, 64), batch=2)
    assert two.gmacs == pytest.approx(one.gmacs, rel=1e-9)


def test_flops_scale_with_pixels_for_vminet() -> None:
    small = measure_flops("vminet_t", (224, 224))
    big = measure_flops("vminet_t", (448, 448))
    assert big.gmacs / small.gmacs == pytest.approx(4.0, rel=0.02)
