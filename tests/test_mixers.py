"""Token mixers of the ops sweep: shapes, the causal VMI-SA reconstruction, FLOPs scaling, the builder's errors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from vmibench.errors import UserError
from vmibench.flops import count_flops
from vmibench.ops.mixers import OPS, VMISA, build_op, grid_for, op_label

DIM = 32


def _unit_scale(module: nn.Module) -> None:
    """Re-draw weights so activations stay O(1): at the released 0.02 init every output is ~1e-3, which would
    let an absolute tolerance pass almost any bug."""
    with torch.no_grad():
        for p in module.parameters():
            if p.dim() == 2:
                p.normal_(0.0, p.shape[1] ** -0.5)
            else:
                p.normal_(0.0, 1.0)


def _causal_pair(seq_len: int) -> tuple[nn.Module, nn.Module, torch.Tensor]:
    rec, x = build_op("vmisa_recurrent", seq_len=seq_len, dim=DIM, batch=2)
    mat, _ = build_op("vmisa_matrix", seq_len=seq_len, dim=DIM, batch=2)
    _unit_scale(rec)
    mat.load_state_dict(rec.state_dict())
    return rec, mat, x


@pytest.mark.parametrize(("seq_len", "grid"), [(1024, (32, 32)), (512, (16, 32)), (12, (3, 4)), (7, (1, 7))])
def test_grid_for_is_most_square(seq_len: int, grid: tuple[int, int]) -> None:
    assert grid_for(seq_len) == grid


def test_metadata_marks_the_reconstruction() -> None:
    assert {n for n, info in OPS.items() if info.reconstruction} == {"vmisa_recurrent", "vmisa_matrix"}
    assert {n for n, info in OPS.items() if info.expected_complexity == "O(L^2)"} == {"sdpa", "vmisa_matrix"}
    for name, info in OPS.items():
        assert info.name == name and info.source and info.description
        assert ("RECONSTRUCTION" in info.description) == info.reconstruction
    assert "RECONSTRUCTION" in (VMISA.__doc__ or "")


@pytest.mark.parametrize("seq_len", [64, 96])
@pytest.mark.parametrize("name", sorted(OPS))
def test_op_maps_tokens_to_tokens(name: str, seq_len: int) -> None:
    module, x = build_op(name, seq_len=seq_len, dim=DIM, batch=2)
    assert x.shape == (2, seq_len, DIM)
    assert not module.training
    with torch.no_grad():
        y = module(x)
    assert y.shape == x.shape
    assert torch.isfinite(y).all()


def test_builds_are_deterministic_and_causal_forms_share_weights() -> None:
    a, xa = build_op("vmisa_recurrent", seq_len=40, dim=DIM, batch=1)
    b, xb = build_op("vmisa_matrix", seq_len=40, dim=DIM, batch=1)
    torch.testing.assert_close(xa, xb, rtol=0, atol=0)
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        torch.testing.assert_close(sa[key], sb[key], rtol=0, atol=0)


@pytest.mark.parametrize("seq_len", [24, 50, 128, 257, 1024])  # 4x6, 5x10, 8x16, 1x257, 32x32
def test_recurrent_and_matrix_forms_agree(seq_len: int) -> None:
    rec, mat, x = _causal_pair(seq_len)
    with torch.no_grad():
        a, b = rec(x), mat(x)
    assert a.abs().max() > 0.5  # the unit-scale weights make the tolerance below meaningful
    assert (a - b).abs().max().item() <= 1e-5


@pytest.mark.parametrize("name", ["vmisa", "vmisa_recurrent", "vmisa_matrix"])
def test_vmisa_forms_follow_the_written_formula(name: str) -> None:
    seq_len = 20
    module, x = build_op(name, seq_len=seq_len, dim=DIM, batch=2)
    _unit_scale(module)
    with torch.no_grad():
        z = F.relu6(module.f1(x)) * module.f2(x)
        w = module.sum.weight[0]
        alpha, beta = module.stack
        causal = name != "vmisa"
        rows = []
        for t in range(seq_len):
            last = t if causal else seq_len - 1  # the released context sums every position
            context = sum(w[n] * z[:, n] for n in range(last + 1))
            rows.append(module.g(F.relu6(alpha * context + beta * z[:, t])))
        torch.testing.assert_close(module(x), torch.stack(rows, dim=1), rtol=1e-5, atol=1e-5)


def test_global_context_is_the_causal_context_at_the_last_token() -> None:
    rec, _, x = _causal_pair(60)
    released, _ = build_op("vmisa", seq_len=60, dim=DIM, batch=2)
    released.load_state_dict(rec.state_dict())
    with torch.no_grad():
        a, b = rec(x), released(x)
    torch.testing.assert_close(a[:, -1], b[:, -1], rtol=1e-5, atol=1e-5)
    assert (a[:, 0] - b[:, 0]).abs().max() > 1e-2


@pytest.mark.parametrize("name", ["vmisa_recurrent", "vmisa_matrix", "vmisa"])
def test_causality(name: str) -> None:
    module, x = build_op(name, seq_len=48, dim=DIM, batch=2)
    _unit_scale(module)
    t = 20
    later = x.clone()
    later[:, t + 1 :] += torch.randn_like(later[:, t + 1 :])
    with torch.no_grad():
        y, y_later = module(x), module(later)
    prefix_change = (y[:, : t + 1] - y_later[:, : t + 1]).abs().max().item()
    assert (y[:, t + 1 :] - y_later[:, t + 1 :]).abs().max() > 1e-2
    if name == "vmisa":  # the released global context sees every token
        assert prefix_change > 1e-2
    else:
        assert prefix_change <= 1e-6


def test_sdpa_is_softmax_attention() -> None:
    module, x = build_op("sdpa", seq_len=30, dim=128, batch=2)
    heads = 2  # 128 // 64
    with torch.no_grad():
        q, k, v = module.qkv(x).reshape(2, 30, 3, heads, 64).permute(2, 0, 3, 1, 4)
        attn = torch.softmax(q @ k.transpose(-2, -1) / 8.0, dim=-1)
        expected = module.proj((attn @ v).transpose(1, 2).reshape(2, 30, 128))
        torch.testing.assert_close(module(x), expected, rtol=1e-5, atol=1e-5)


def test_mobilevitv2_softmax_runs_over_tokens() -> None:
    module, x = build_op("mobilevitv2_sa", seq_len=30, dim=DIM, batch=2)
    attn = module.inner
    with torch.no_grad():
        weight = attn.qkv_proj.weight.flatten(1)
        qkv = x @ weight.t() + attn.qkv_proj.bias
        query, key, value = qkv.split([1, DIM, DIM], dim=-1)
        context = (torch.softmax(query, dim=1) * key).sum(dim=1, keepdim=True)
        expected = F.linear(F.relu(value) * context, attn.out_proj.weight.flatten(1), attn.out_proj.bias)
        torch.testing.assert_close(module(x), expected, rtol=1e-5, atol=1e-5)


def _macs(name: str, seq_len: int) -> float:
    module, x = build_op(name, seq_len=seq_len, dim=16, batch=1)
    return count_flops(module, x).gmacs * 1e9


@pytest.mark.parametrize("name", sorted(OPS))
def test_flops_grow_with_the_expected_power_of_l(name: str) -> None:
    slope = math.log(_macs(name, 1024) / _macs(name, 256)) / math.log(4)
    if OPS[name].expected_complexity == "O(L^2)":
        assert 1.8 <= slope <= 2.05, slope
    else:
        assert 0.95 <= slope <= 1.05, slope


def test_quadratic_terms_are_counted_exactly() -> None:
    n, c = 256, 16
    # sdpa: qkv + proj (4 C^2 per token) plus QK^T and AV through the SDPA handle (2 L^2 C, one head)
    assert _macs("sdpa", n) == 4 * n * c * c + 2 * n * n * c
    # vmisa_matrix: f1, f2, g (3 * C * 2C per token) plus the (L x L) @ (L x 2C) masked context
    assert _macs("vmisa_matrix", n) == 6 * n * c * c + n * n * 2 * c


def test_unknown_op_is_a_user_error_listing_the_ops() -> None:
    with pytest.raises(UserError) as err:
        build_op("attention", seq_len=64, dim=DIM, batch=1)
    message = str(err.value)
    assert "\n" not in message
    assert all(name in message for name in OPS)


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("sdpa", dict(seq_len=0, dim=DIM, batch=1)),
        ("sdpa", dict(seq_len=64, dim=200, batch=1)),  # 3 heads do not divide 200
        ("mlla_linear", dict(seq_len=64, dim=66, batch=1)),  # RoPE needs dim % 4 == 0
        ("selective_scan", dict(seq_len=64, dim=DIM, batch=1, scan_backend="nope")),
        ("selective_scan", dict(seq_len=64, dim=DIM, batch=1, scan_backend="mamba_ssm")),  # CPU tensors
    ],
)
def test_bad_arguments_are_user_errors(name: str, kwargs: dict) -> None:
    with pytest.raises(UserError):
        build_op(name, **kwargs)


def test_scan_label_carries_the_backend() -> None:
    assert op_label("selective_scan", scan_backend="reference") == "selective_scan[reference]"
    assert op_label("selective_scan") == "selective_scan[torch]"  # auto on CPU
    assert op_label("sdpa", scan_backend="reference") == "sdpa"
    module, _ = build_op("selective_scan", seq_len=16, dim=DIM, batch=1, scan_backend="reference")
    assert module.backend == "reference"
