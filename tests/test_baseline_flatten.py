"""FLatten-Swin baseline: official state-dict layout, sizes, FLOPs, resolution adaptation, attention maths."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import vmibench.baselines.flatten as fl
from conftest import manifest as load_manifest
from conftest import random_state_dict

import vmibench
from vmibench.checkpoint import load_state_dict_strict
from vmibench.flops import count_flops
from vmibench.registry import get_entry

# Official counts, from tests/reference/state_dicts/flatten_swin_{t,s}.json ("params", "fvcore_gmacs").
OFFICIAL = {"flatten_swin_t": (29_192_384, 4.502), "flatten_swin_s": (50_510_288, 8.7613)}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny224() -> torch.nn.Module:
    return vmibench.create_model("flatten_swin_t", res=224).eval()


def _randomised(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # Zero-initialised tensors (positional encodings, scales) would hide resizing mistakes.
    return {k: torch.randn(v.shape) if v.is_floating_point() else v.clone() for k, v in sd.items()}


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_manifest_state_dict_loads_strictly(name: str) -> None:
    manifest = load_manifest(name)
    shapes = manifest["state_dict"]
    model = vmibench.create_model(name, res=224)
    assert list(model.state_dict()) == list(shapes)  # same order as the official module tree
    sd = random_state_dict(shapes)
    load_state_dict_strict(model, sd, filter_fn=fl.checkpoint_filter_fn)
    assert manifest["params"] == OFFICIAL[name][0]


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_params_and_gmacs_match_official(name: str) -> None:
    params, gmacs = OFFICIAL[name]
    model = vmibench.create_model(name, res=224)
    count = count_flops(model, torch.randn(1, 3, 224, 224))
    assert count.params == params
    assert count.gmacs == pytest.approx(gmacs, rel=0.03)


@pytest.mark.parametrize("res", [224, (224, 320)])
def test_forward(tiny224: torch.nn.Module, res: int | tuple[int, int]) -> None:
    model = tiny224 if res == 224 else vmibench.create_model("flatten_swin_t", res=res).eval()
    h, w = (res, res) if isinstance(res, int) else res
    with torch.no_grad():
        y = model(torch.randn(1, 3, h, w))
    assert y.shape == (1, 1000) and torch.isfinite(y).all()
    with pytest.raises((AssertionError, ValueError)):  # built for one size only (timm's PatchEmbed asserts)
        model.forward_features(torch.randn(1, 3, h + 32, w))


def test_checkpoint_224_loads_at_384(tiny224: torch.nn.Module) -> None:
    sd = _randomised(tiny224.state_dict())
    model = vmibench.create_model("flatten_swin_t", res=384).eval()
    load_state_dict_strict(model, dict(sd), filter_fn=fl.checkpoint_filter_fn)
    own = model.state_dict()
    key = "layers.0.blocks.1.attn.positional_encoding"
    assert own[key].shape == (1, 96 * 96, 96)
    expected = F.interpolate(sd[key].transpose(1, 2).reshape(1, 96, 56, 56), size=(96, 96), mode="bicubic")
    torch.testing.assert_close(own[key], expected.flatten(2).transpose(1, 2))
    # Fixed geometry is the model's own: 24x24 stage-3 map padded to 28x28 -> 16 shifted windows.
    assert own["layers.2.blocks.1.attn_mask"].shape == (16, 49, 49)
    assert "layers.3.blocks.1.attn_mask" in own  # 12x12 > 7: stage 4 now shifts (the 224 file has no mask)
    torch.testing.assert_close(
        own["layers.2.blocks.0.attn.relative_position_bias_table"],
        sd["layers.2.blocks.0.attn.relative_position_bias_table"],
    )
    with torch.no_grad():
        assert torch.isfinite(model(torch.randn(1, 3, 384, 384))).all()


def test_small_maps_clamp_the_window(tiny224: torch.nn.Module) -> None:
    model = vmibench.create_model("flatten_swin_t", res=64)
    load_state_dict_strict(model, _randomised(tiny224.state_dict()), filter_fn=fl.checkpoint_filter_fn)
    block = model.layers[2].blocks[1]  # 4x4 map: one unshifted 4x4 window, as the official rule does
    assert (block.window_size, block.shift_size, block.attn_mask) == (4, 0, None)
    assert block.attn.relative_position_bias_table.shape == (49, 12)


def test_filter_is_identity_at_build_size(tiny224: torch.nn.Module) -> None:
    sd = _randomised(tiny224.state_dict())
    out = fl.checkpoint_filter_fn(dict(sd), tiny224)
    assert set(out) == set(sd)
    for k, v in sd.items():
        if not k.endswith(("attn_mask", "relative_position_index")):
            assert out[k] is v


def test_window_helpers() -> None:
    x = torch.randn(2, 14, 21, 5)
    torch.testing.assert_close(fl.window_reverse(fl.window_partition(x, 7), 7, 14, 21), x)
    index = fl.relative_position_index(7)
    assert index.min() == 0 and index.max() == 13 * 13 - 1 and (index.diagonal() == 6 * 13 + 6).all()
    mask = fl.shifted_window_mask((14, 14), 7, 3)
    assert mask.shape == (4, 49, 49)
    assert (mask[0] == 0).all()  # the top-left window holds no seam
    assert (mask[3] == -100).any() and (mask[3].diagonal() == 0).all()


def test_focused_linear_attention_matches_quadratic_form() -> None:
    torch.manual_seed(0)
    dim, heads, grid = 16, 2, (3, 5)
    attn = fl.FocusedLinearAttention(dim, grid, heads).eval()
    with torch.no_grad():
        attn.scale.normal_()
        attn.positional_encoding.normal_()
        attn.dwc.weight.zero_()
        attn.dwc.bias.zero_()
        attn.proj.weight.copy_(torch.eye(dim))
        attn.proj.bias.zero_()
    x = torch.randn(2, 15, dim)
    with torch.no_grad():
        out = attn(x)
        q, k, v = attn.qkv(x).chunk(3, dim=-1)
        s = F.softplus(attn.scale)
        q = fl._focus(q, s, 3)
        k = fl._focus(k + attn.positional_encoding, s, 3)
        q, k, v = (t.unflatten(-1, (heads, -1)).transpose(1, 2) for t in (q, k, v))
        sim = q @ k.transpose(-2, -1) / 15  # explicit N x N map, normalised per query (with the 1e-6 guard)
        ref = (sim @ v) / (sim.sum(-1, keepdim=True) + 1e-6)
    torch.testing.assert_close(out, ref.transpose(1, 2).flatten(2), rtol=1e-4, atol=1e-5)
    # The rank-restoring conv runs on each head's v map with weights shared by the heads.
    with torch.no_grad():
        attn.dwc.weight.normal_()
        attn.dwc.bias.normal_()
        extra = attn(x) - out
        v_img = v.transpose(1, 2).reshape(2, *grid, heads, -1)  # (B, H, W, heads, d)
        conv = [attn.dwc(v_img[..., h, :].permute(0, 3, 1, 2)) for h in range(heads)]
    torch.testing.assert_close(extra, torch.cat(conv, dim=1).flatten(2).transpose(1, 2), rtol=1e-4, atol=1e-5)
    # Focusing points each token along t^3 but keeps its norm.
    t = torch.rand(4, dim) + 0.1
    focused = fl._focus(t, torch.ones(1), 3)
    torch.testing.assert_close(focused.norm(dim=-1), (t + 1e-6).norm(dim=-1))
    torch.testing.assert_close(F.normalize(focused, dim=-1), F.normalize((t + 1e-6) ** 3, dim=-1))


def test_records() -> None:
    for name in OFFICIAL:
        info = get_entry(name).info
        assert info.official.startswith("github.com/LeapLabTHU/FLatten-Transformer")
        assert get_entry(name).checkpoint_filter is fl.checkpoint_filter_fn
        assert info.res_multiple == 32 and info.eval.crop_pct == 0.875
    assert get_entry("flatten_swin_t").info.published.top1 == 82.1
    assert get_entry("flatten_swin_s").info.published.params_m is None


def test_window_block_matches_timm_swin_block() -> None:
    # timm's Swin block is an independent reference for (shifted) window attention on a map 7 divides.
    from timm.models.swin_transformer import SwinTransformerBlock

    torch.manual_seed(0)
    ref = SwinTransformerBlock(32, (14, 14), num_heads=2, window_size=7, shift_size=3).eval()
    ours = fl.FLattenBlock(32, (14, 14), 2, "S", shift=True).eval()
    with torch.no_grad():
        ref.attn.relative_position_bias_table.normal_()
    weights = {k: v for k, v in ref.state_dict().items() if k in ours.state_dict() and "attn_mask" not in k}
    missing, _ = ours.load_state_dict(weights, strict=False)
    assert set(missing) == {"attn_mask", "attn.relative_position_index"}  # timm does not save its buffers
    torch.testing.assert_close(ours.attn_mask, ref.attn_mask)
    torch.testing.assert_close(ours.attn.relative_position_index, ref.attn.relative_position_index)
    x = torch.randn(2, 14, 14, 32)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), rtol=1e-4, atol=1e-5)


def test_padded_windows_are_independent() -> None:
    # A 7x10 map is one row of windows padded to 7x14: its first window must not see the padding.
    torch.manual_seed(0)
    wide = fl.FLattenBlock(32, (7, 10), 2, "S").eval()
    square = fl.FLattenBlock(32, (7, 7), 2, "S").eval()
    square.load_state_dict(wide.state_dict())
    x = torch.randn(1, 7, 10, 32)
    with torch.no_grad():
        torch.testing.assert_close(wide(x)[:, :, :7], square(x[:, :, :7].contiguous()))


def test_patch_merging_matches_timm() -> None:
    from timm.models.swin_transformer import PatchMerging

    torch.manual_seed(0)
    ref = PatchMerging(8)
    ours = fl.PatchMerging(8)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(2, 6, 4, 8)
    torch.testing.assert_close(ours(x), ref(x))
