"""MLLA baseline: official state-dict layout, exact sizes, fvcore GMACs, RoPE rebuilding across resolutions."""

from __future__ import annotations

import copy

import pytest
import torch
import vmibench.baselines.mlla as mlla
from conftest import manifest as load_manifest
from conftest import random_state_dict

import vmibench
from vmibench.checkpoint import load_state_dict_strict
from vmibench.flops import count_flops
from vmibench.registry import get_entry

VARIANTS = ("mlla_t", "mlla_s")
# Official parameter counts, from tests/reference/state_dicts/mlla_t.json and mlla_s.json ("params").
OFFICIAL_PARAMS = {"mlla_t": 24_392_200, "mlla_s": 43_015_048}
ROPE = "attn.rope.rotations"


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def built() -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    return {name: vmibench.create_model(name, res=224).eval() for name in VARIANTS}


def _randomised(sd: dict[str, torch.Tensor], seed: int = 1) -> dict[str, torch.Tensor]:
    """Random weights and BN statistics (so a wrong load or a skipped module changes the output)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, v in sd.items():
        if not v.is_floating_point() or k.endswith(ROPE):
            out[k] = v.clone()
        elif k.endswith("running_var"):
            out[k] = torch.rand(v.shape, generator=g) + 0.5
        else:
            out[k] = torch.randn(v.shape, generator=g) * 0.05 + (1.0 if k.endswith("norm.weight") else 0.0)
    return out


@pytest.mark.parametrize("name", VARIANTS)
def test_param_count_is_official(built: dict[str, torch.nn.Module], name: str) -> None:
    assert sum(p.numel() for p in built[name].parameters()) == OFFICIAL_PARAMS[name]


@pytest.mark.parametrize("name", VARIANTS)
def test_state_dict_matches_manifest_and_loads_strictly(built: dict[str, torch.nn.Module], name: str) -> None:
    manifest = load_manifest(name)
    assert manifest["params"] == OFFICIAL_PARAMS[name]
    model = copy.deepcopy(built[name])  # the junk weights below must not leak into other tests
    shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert list(shapes) == list(manifest["state_dict"])  # same names, same order
    assert shapes == manifest["state_dict"]

    official = random_state_dict(manifest["state_dict"], seed=2)
    before = {k: v.clone() for k, v in model.state_dict().items() if k.endswith(ROPE)}
    load_state_dict_strict(model, official, filter_fn=get_entry(name).checkpoint_filter)
    after = model.state_dict()
    assert torch.equal(after["head.weight"], official["head.weight"])
    # Loaded tables are junk here; the model must have kept its own.
    assert before and all(torch.equal(after[k], v) for k, v in before.items())


@pytest.mark.parametrize("name", VARIANTS)
def test_fvcore_gmacs_match_manifest(built: dict[str, torch.nn.Module], name: str) -> None:
    manifest = load_manifest(name)
    flops = count_flops(built[name], torch.randn(1, 3, 224, 224))
    assert flops.params == manifest["params"]
    assert flops.gmacs == pytest.approx(manifest["fvcore_gmacs"], rel=0.03)
    assert flops.by_operator.get("matmul", 0.0) > 0  # the linear attention itself is counted


def test_rope_table_formula() -> None:
    """Table entry (i, j, m): angle i*f_m for the first C/4 pairs, j*f_(m-C/4) for the rest, f_m = 1e4^(-m/(C/4))."""
    h, w, dim = 5, 3, 16
    table = mlla.rope_table((h, w), dim)
    assert table.shape == (h, w, dim // 2, 2)
    k = dim // 4
    freqs = 10000.0 ** (-torch.arange(k, dtype=torch.float64) / k)
    i = torch.arange(h, dtype=torch.float64)[:, None, None]
    j = torch.arange(w, dtype=torch.float64)[None, :, None]
    angles = torch.cat([(i * freqs).expand(h, w, k), (j * freqs).expand(h, w, k)], dim=-1)
    torch.testing.assert_close(table[..., 0].double(), angles.cos(), atol=1e-6, rtol=0)
    torch.testing.assert_close(table[..., 1].double(), angles.sin(), atol=1e-6, rtol=0)


def test_rope_rotates_channel_pairs_as_complex_numbers() -> None:
    rope = mlla.RoPE((4, 6), 8)
    x = torch.randn(2, 4, 6, 8)
    expected = torch.view_as_real(
        torch.view_as_complex(rope.rotations) * torch.view_as_complex(x.unflatten(-1, (4, 2)))
    )
    torch.testing.assert_close(rope(x), expected.flatten(-2))


def test_linear_attention_equals_quadratic_form() -> None:
    """out_i = sum_j <R q_i, R k_j> v_j / N / (<q_i, mean_j k_j> + 1e-6) per head, plus LePE(v); non-square grid."""
    torch.manual_seed(3)
    h, w, dim, heads = 3, 5, 16, 2
    attn = mlla.LinearAttention(dim, (h, w), heads).eval()
    x = torch.randn(2, h, w, dim)
    with torch.no_grad():
        out = attn(x)
        q, k = (torch.nn.functional.elu(t) + 1 for t in attn.qk(x).chunk(2, -1))
        qr, kr = attn.rope(q), attn.rope(k)
        n, hd = h * w, dim // heads

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(2, n, heads, hd).transpose(1, 2).double()

        q, k, qr, kr, v = map(split, (q, k, qr, kr, x))
        weights = qr @ kr.transpose(-2, -1) / n  # (B, heads, N, N): the explicit attention matrix
        denom = q @ k.mean(-2, keepdim=True).transpose(-2, -1) + 1e-6
        ref = (weights @ v / denom).transpose(1, 2).reshape(2, h, w, dim)
        ref = ref + attn.lepe(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1).double()
    torch.testing.assert_close(out.double(), ref, atol=1e-4, rtol=1e-4)


def test_forward_224_and_other_resolutions(built: dict[str, torch.nn.Module]) -> None:
    with torch.no_grad():
        assert built["mlla_t"](torch.randn(1, 3, 224, 224)).shape == (1, 1000)
        model = vmibench.create_model("mlla_t", res=(256, 192)).eval()
        out = model(torch.randn(1, 3, 256, 192))
    assert out.shape == (1, 1000) and torch.isfinite(out).all()
    assert model.layers[0].blocks[0].attn.rope.rotations.shape == (64, 48, 32, 2)
    with pytest.raises(ValueError, match="built for"):
        model(torch.randn(1, 3, 224, 224))


def test_224_checkpoint_loads_at_384_with_rebuilt_rope(built: dict[str, torch.nn.Module]) -> None:
    sd224 = _randomised(built["mlla_t"].state_dict())
    model = vmibench.create_model("mlla_t", res=384).eval()
    load_state_dict_strict(model, sd224, filter_fn=get_entry("mlla_t").checkpoint_filter)

    direct = mlla.mlla_t(img_size=384).eval()
    learned = {k: v for k, v in sd224.items() if not k.endswith(ROPE)}
    result = direct.load_state_dict(learned, strict=False)
    assert result.unexpected_keys == [] and all(k.endswith(ROPE) for k in result.missing_keys)

    loaded = model.state_dict()
    for stage, side in enumerate((96, 48, 24, 12)):
        key = f"layers.{stage}.blocks.0.{ROPE}"
        assert sd224[key].shape[:2] == (56 >> stage, 56 >> stage)
        assert loaded[key].shape[:2] == (side, side)
        assert torch.equal(loaded[key], direct.state_dict()[key])
        assert torch.equal(loaded[key], mlla.rope_table((side, side), 64 * 2**stage))

    x = torch.randn(1, 3, 384, 384)
    with torch.no_grad():
        out, ref = model(x), direct(x)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, ref, atol=0, rtol=0)
    assert out.std() > 0
