"""Where the time goes: operator classes, profiled class times, class FLOPs / bytes and class roofs."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import vmibench
from vmibench.attribution.classes import (
    CLASSES,
    ROOF_OF,
    by_block,
    by_class,
    op_class,
    shares,
)
from vmibench.attribution.counts import count_by_class
from vmibench.attribution.profile import BACKWARD_PREFIX, CALL_PREFIX, Event, attribute, profile_calls
from vmibench.attribution.roofs import Roofs, class_roofline, elementwise_roof, transcendental_roof
from vmibench.attribution.scopes import BLOCK_PREFIX, BlockScopes, block_names
from vmibench.registry import list_infos, resolve_info

# Operators allowed to fall into ``other``, each with the reason.  Empty: every operator the registered models
# dispatch has a class.
ALLOWED_OTHER: dict[str, str] = {}


def smallest(name: str) -> tuple[int, int]:
    info = resolve_info(name)
    m = info.res_multiple
    side = -(-max(info.min_res, m) // m) * m
    return side, side


@pytest.mark.parametrize("name", [info.name for info in list_infos()])
def test_op_table_covers_registered_models(name: str) -> None:
    hw = smallest(name)
    model = vmibench.create_model(name, res=hw, num_classes=10)
    x = torch.randn(1, 3, *hw)
    counts = count_by_class(model, x)  # every dispatched operator
    sample = profile_calls(model, x, calls=1, warmup=0, profiler_warmup=0)[0]  # operators as Python calls them
    print(f"{name}: allowed in 'other': {ALLOWED_OTHER or 'none'}")
    other = (set(counts.other_ops) | set(sample.other_ops)) - set(ALLOWED_OTHER)
    assert not other, f"{name} dispatches operators without a class: {sorted(other)}"
    assert counts.op_classes and sample.times_ms


def test_op_class_table() -> None:
    assert op_class("aten::addmm") == op_class("aten::linear") == "matmul"
    assert op_class("aten::add_") == op_class("aten::_foreach_add_") == op_class("aten::add.Tensor") == "elementwise"
    assert op_class("aten::exp") == op_class("aten::silu") == "transcendental"
    assert op_class("vmibench::selective_scan") == op_class("vmibench::selective_scan_backward") == "scan"
    assert op_class("aten::_scaled_dot_product_flash_attention_for_cpu") == "attention"
    assert op_class("aten::native_layer_norm") == "norm" and op_class("aten::cumsum") == "reduction"
    assert op_class("aten::permute") == op_class("aten::copy_") == "layout"
    assert op_class("aten::no_such_op") == op_class("autograd::engine::evaluate_function: X") == "other"
    # depthwise from the shapes: weight (out, in / groups, k, k)
    assert op_class("aten::conv2d", [(1, 8, 4, 4), (8, 1, 3, 3)]) == "conv_depthwise"
    assert op_class("aten::conv2d", [(1, 8, 4, 4), (8, 8, 3, 3)]) == "conv_dense"
    assert op_class("aten::conv2d", [(1, 1, 4, 4), (8, 1, 3, 3)]) == "conv_dense"  # one input channel
    assert op_class("aten::convolution_backward", [(1, 8, 4, 4), (1, 8, 4, 4), (8, 1, 3, 3)]) == "conv_depthwise"
    assert set(ROOF_OF) == set(CLASSES)
    assert ROOF_OF["conv_depthwise"] == "elementwise" and ROOF_OF["scan"] == "transcendental"


def test_tables() -> None:
    cells = {("a", "matmul"): 1.0, ("b", "matmul"): 2.0, ("b", "layout"): 1.0}
    assert by_class(cells) == {"matmul": 3.0, "layout": 1.0}
    assert by_block(cells) == {"a": 1.0, "b": 3.0}
    assert shares({"x": 1.0, "y": 3.0}) == {"x": 0.25, "y": 0.75}


class LinearExp(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(1024, 1024)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.exp(self.fc(x))


def test_linear_exp_counts_by_hand() -> None:
    from vmibench.bytes_moved import count_bytes
    from vmibench.flops import count_flops

    batch, d = 512, 1024
    model, x = LinearExp(), torch.randn(batch, d)
    counts = count_by_class(model, x)
    gmacs, gbytes = counts.class_gmacs(), counts.class_gbytes()
    assert gmacs["matmul"] == pytest.approx(batch * d * d / 1e9)
    assert sum(gmacs.values()) == gmacs["matmul"]  # all MACs are the matmul's
    # matmul reads x, W, b and writes y; exp reads y and writes exp(y); float32
    assert gbytes["matmul"] == pytest.approx(4 * (batch * d + d * d + d + batch * d) / 1e9)
    assert gbytes["transcendental"] == pytest.approx(4 * 2 * batch * d / 1e9)
    assert counts.gmacs[("fc", "matmul")] == gmacs["matmul"]
    assert counts.gbytes[("", "transcendental")] == gbytes["transcendental"]  # exp runs in the root forward
    # same totals as the FLOP and byte counters
    assert sum(gmacs.values()) == pytest.approx(count_flops(model, x).gmacs_torch)
    assert sum(gbytes.values()) == pytest.approx(count_bytes(model, x).gbytes)


def test_linear_exp_profiled_times() -> None:
    model, x = LinearExp(), torch.randn(1024, 1024)
    samples = profile_calls(model, x, calls=2)
    assert len(samples) == 2
    for s in samples:
        ms = s.class_ms()
        assert ms["matmul"] > 0 and ms["transcendental"] > 0
        assert set(ms) <= {"matmul", "transcendental", "layout"}
        assert abs(s.total_ms - s.wall_ms) <= 0.10 * s.wall_ms, (s.total_ms, s.wall_ms)
        assert s.total_ms + s.unclassified_ms <= s.wall_ms * 1.001


class TwoStage(nn.Module):
    """stem, two stages of (depthwise conv, GELU, pointwise conv) blocks, head: timm-style names."""

    def __init__(self, c: int = 16) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, c, 3, padding=1)
        self.stages = nn.Sequential(
            *[nn.Sequential(nn.Conv2d(c, c, 3, padding=1, groups=c), nn.GELU(), nn.Conv2d(c, c, 1)) for _ in "ab"]
        )
        self.head = nn.Linear(c, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)).mean((2, 3)))


def test_block_names_rule() -> None:
    names = list(block_names(TwoStage()))
    assert names == ["stem", "stages.0", "stages.0.0", "stages.0.1", "stages.0.2", "stages.1", "stages.1.0",
                     "stages.1.1", "stages.1.2", "head"]  # fmt: skip

    seen: list[str] = []

    class Probe(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(scopes.current)
            return x

    class Layer(nn.Module):
        def __init__(self, shared: nn.Module) -> None:
            super().__init__()
            self.shared = [shared]  # not a child: the model's top-level drop_path, called from each layer

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.shared[0](x)

    class Shared(nn.Module):  # Vim's layout: a top-level drop_path called from inside each layer
        def __init__(self) -> None:
            super().__init__()
            self.drop_path = Probe()
            self.layers = nn.ModuleList([Layer(self.drop_path)])

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.drop_path(x)
            return self.layers[0](x)

    model = Shared()
    with BlockScopes(model) as scopes:
        model(torch.zeros(1))
        assert scopes.current == ""
    assert seen == ["drop_path", "layers.0"]


def test_block_attribution_two_stages() -> None:
    model, x = TwoStage(), torch.randn(2, 3, 32, 32)
    s = profile_calls(model, x, calls=1)[0]
    blocks = s.block_ms()
    for stage in ("stages.0", "stages.1"):
        assert sum(v for b, v in blocks.items() if b.startswith(stage + ".")) > 0
    assert s.times_ms[("stages.0.0", "conv_depthwise")] > 0 and s.times_ms[("stages.1.2", "conv_dense")] > 0
    assert s.times_ms[("stem", "conv_dense")] > 0 and s.times_ms[("head", "matmul")] > 0
    counts = count_by_class(model, x)
    assert counts.gmacs[("stages.0.0", "conv_depthwise")] == pytest.approx(2 * 16 * 32 * 32 * 9 / 1e9)
    assert counts.gmacs[("stages.1.2", "conv_dense")] == pytest.approx(2 * 16 * 16 * 32 * 32 / 1e9)
    assert counts.op_classes["aten::convolution"] == ("conv_dense", "conv_depthwise")
    # a training step: backward operators go to the blocks of their forward operators
    t = profile_calls(model, x, calls=1, mode="train")[0]
    assert t.mode == "train"
    for block in ("stages.0.0", "stages.1.0", "loss", "optimizer"):
        assert t.block_ms()[block] > 0
    assert not {k for k in t.times_ms if k[0] == "" and k[1].startswith("conv")}  # no backward conv left unplaced


def _ev(id: int, parent: int | None, name: str, start: float, total: float, self_us: float, dev: float = 0.0,
        seq: int = -1, shapes: tuple = ()) -> Event:  # fmt: skip
    return Event(id, parent, name, start, total, self_us, dev, seq, shapes)


def test_cuda_path_dry_run() -> None:
    """The CUDA parse on recorded events: kernel (device) self time, a backward thread's root inside the call."""
    events = [
        _ev(1, None, CALL_PREFIX + "0", 0, 1000, 50),
        _ev(2, 1, BLOCK_PREFIX + "stages.0", 10, 400, 5),
        _ev(3, 2, "aten::linear", 20, 100, 10, dev=0, seq=7),
        _ev(4, 3, "aten::t", 21, 5, 5, seq=7),
        _ev(5, 3, "aten::addmm", 30, 80, 20, dev=300, seq=8),
        _ev(6, 2, "aten::conv2d", 200, 100, 30, dev=120, shapes=((1, 8, 4, 4), (8, 1, 3, 3))),
        _ev(7, 1, "aten::exp", 500, 50, 40, dev=60),
        _ev(8, 1, "aten::weird_op", 600, 10, 10, dev=5),
        # autograd's device thread: a root of its own, inside the call's interval
        _ev(9, None, BACKWARD_PREFIX + ": AddmmBackward0", 700, 100, 3, seq=8),
        _ev(10, 9, "AddmmBackward0", 701, 90, 2),
        _ev(11, 10, "aten::mm", 702, 80, 30, dev=500),
        # a second call
        _ev(12, None, CALL_PREFIX + "1", 2000, 500, 20),
        _ev(13, 12, "aten::exp", 2100, 50, 40, dev=70),
    ]
    first, second = attribute(events, mode="train", clock="cuda")
    assert first.clock == "cuda" and first.wall_ms == 1.0
    # forward addmm (0.3) + its backward mm (0.5, matched by sequence number) in stages.0
    assert first.times_ms == pytest.approx(
        {
            ("stages.0", "matmul"): 0.8,
            ("stages.0", "conv_depthwise"): 0.12,
            ("", "transcendental"): 0.06,
            ("", "other"): 0.005,
        }
    )
    assert first.other_ops == ("aten::weird_op",)
    assert second.times_ms == {("", "transcendental"): pytest.approx(0.07)}
    # the host clock reads self time instead
    host = attribute(events, clock="cpu")[0]
    assert host.times_ms[("stages.0", "matmul")] == pytest.approx((10 + 5 + 20 + 30) / 1e3)
    assert host.unclassified_ms == pytest.approx((50 + 5 + 3 + 2) / 1e3)


def test_roofs() -> None:
    add = elementwise_roof(1 << 16, calls=3, warmup=1)
    exp = transcendental_roof(1 << 16, calls=3, warmup=1)
    assert len(add.times_s) == 3 and add.bytes_per_call == 3 * 4 << 16 and add.gbs > 0
    assert exp.bytes_per_call == 2 * 4 << 16 and exp.gelems > 0
    roofs = Roofs(matmul_gflops=100.0, elementwise_gbs=10.0, transcendental_gbs=5.0, transcendental_gelems=1.0)
    out = class_roofline(
        {"matmul": 30.0, "elementwise": 2.0, "transcendental": 4.0, "scan": 50.0},
        {"matmul": 1.0, "scan": 0.9},
        {"matmul": 0.05, "elementwise": 0.01, "transcendental": 0.01, "scan": 0.02},
        roofs,
    )
    assert out["matmul"].roof_ms == pytest.approx(20.0)  # 2 GFLOP at 100 GFLOP/s beats 0.05 GB at 10 GB/s
    assert out["elementwise"].roof_ms == pytest.approx(1.0)
    assert out["transcendental"].roof_ms == pytest.approx(2.0)
    assert out["scan"].roof_ms == pytest.approx(100.0)  # 0.1 G exponentials at 1 G/s
    assert out["scan"].frac == pytest.approx(2.0) and out["matmul"].roof == "matmul"
    assert sum(r.roof_ms for r in out.values()) == pytest.approx(123.0)
