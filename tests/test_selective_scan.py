"""Selective scan: every CPU backend against the sequential reference, gradients, dispatch, FLOPs counting."""

from __future__ import annotations

import importlib
import itertools
import math
import operator
import sys
import types
import warnings
from typing import Any

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from vmibench.flops import count_flops
from vmibench.ops import available_backends, resolve_backend, selective_scan, set_default_backend
from vmibench.ops.scan_bench import ScanShape, compare_scan_backends

# The package re-exports the function selective_scan, which shadows the module of that name as an attribute.
ss = importlib.import_module("vmibench.ops.selective_scan")
FAST_BACKENDS = [b for b in available_backends("cpu") if b != "reference"]
OPTION_NAMES = ("D", "z", "delta_bias", "delta_softplus")


def make_inputs(
    batch: int = 2,
    channels: int = 8,
    length: int = 37,
    d_state: int = 4,
    groups: int | None = None,
    options: tuple[str, ...] = OPTION_NAMES,
    seed: int = 0,
) -> dict[str, Any]:
    """Keyword arguments for selective_scan; ``groups=None`` gives (batch, N, L) B/C.

    A is negative, and without softplus delta and delta_bias are positive, so every decay is below 1 and
    the recurrence is stable (as in Mamba).
    """
    gen = torch.Generator().manual_seed(seed)

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=gen)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen)

    softplus = "delta_softplus" in options
    bc_shape = (batch, d_state, length) if groups is None else (batch, groups, d_state, length)
    args: dict[str, Any] = {
        "u": randn(batch, channels, length),
        "delta": randn(batch, channels, length) if softplus else 0.5 * rand(batch, channels, length),
        "A": -(rand(channels, d_state) + 0.1),
        "B": randn(*bc_shape),
        "C": randn(*bc_shape),
        "delta_softplus": softplus,
    }
    optional = {
        "D": randn(channels),
        "z": randn(batch, channels, length),
        "delta_bias": 0.5 * randn(channels) if softplus else 0.1 * rand(channels),
    }
    args.update({k: v for k, v in optional.items() if k in options})
    return args


def reference(**args: Any) -> torch.Tensor:
    return selective_scan(**args, backend="reference")


@pytest.fixture(autouse=True)
def _restore_default_backend():
    yield
    set_default_backend("auto")


# -- forward agreement ----------------------------------------------------------------------------------------


def test_hand_computed_two_steps() -> None:
    """Ground truth for the ground truth: one channel, N=1, two tokens, worked out by hand."""
    args = {
        "u": torch.tensor([[[1.0, 2.0]]]),
        "delta": torch.tensor([[[0.5, 0.25]]]),
        "A": torch.tensor([[-1.0]]),
        "B": torch.tensor([[[1.0, 2.0]]]),
        "C": torch.tensor([[[3.0, 1.0]]]),
    }
    h0 = 0.5 * 1.0 * 1.0
    h1 = math.exp(-0.25) * h0 + 0.25 * 2.0 * 2.0
    expected = torch.tensor([[[3.0 * h0, 1.0 * h1]]])
    for backend in ("reference", *FAST_BACKENDS):
        torch.testing.assert_close(selective_scan(**args, backend=backend), expected)


@pytest.mark.parametrize("backend", FAST_BACKENDS)
@pytest.mark.parametrize("groups", [None, 2])
@pytest.mark.parametrize(
    "options", [c for r in range(len(OPTION_NAMES) + 1) for c in itertools.combinations(OPTION_NAMES, r)]
)
def test_matches_reference_for_every_option(backend: str, groups: int | None, options: tuple[str, ...]) -> None:
    args = make_inputs(groups=groups, options=options)
    y = selective_scan(**args, backend=backend)
    assert y.shape == args["u"].shape and y.dtype == torch.float32
    torch.testing.assert_close(y, reference(**args), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("backend", FAST_BACKENDS)
@pytest.mark.parametrize("length", [1, 2, 3, 16, 63, 64, 65, 300])
def test_matches_reference_for_every_length(backend: str, length: int) -> None:
    args = make_inputs(length=length, groups=4)
    torch.testing.assert_close(selective_scan(**args, backend=backend), reference(**args), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("block_elements", [1, 7, 40, 200, 10**6])
@pytest.mark.parametrize("groups", [None, 2, 4])
def test_blocking_does_not_change_the_result(
    monkeypatch: pytest.MonkeyPatch, block_elements: int, groups: int | None
) -> None:
    """Blocks of one row, parts of a group, whole groups, several batch entries: all the same scan."""
    monkeypatch.setattr(ss, "BLOCK_ELEMENTS", block_elements)
    args = make_inputs(batch=3, length=11, groups=groups)
    torch.testing.assert_close(selective_scan(**args, backend="torch"), reference(**args), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_blocks_cover_every_row_once_within_the_budget(device: str) -> None:
    """Vim-S at 1024 px: CPU blocks stay within BLOCK_ELEMENTS; elsewhere (meta stands for CUDA) one block."""
    batch, channels, length, d_state = 2, 768, 4097, 16
    args = ss._ScanArgs(
        *(torch.empty(*s, device=device) for s in [(batch, channels, length)] * 2 + [(channels, d_state)]),
        *(torch.empty(batch, 1, d_state, length, device=device) for _ in range(2)),
        None,
        None,
        None,
        True,
    )
    blocks = list(args.blocks())
    covered = torch.zeros(batch, channels, dtype=torch.int)
    for blk in blocks:
        covered[blk.batch, blk.channels] += 1
        rows = (blk.batch.stop - blk.batch.start) * (blk.channels.stop - blk.channels.start)
        assert rows * length * d_state <= (ss.BLOCK_ELEMENTS if device == "cpu" else ss.BLOCK_ELEMENTS_GPU)
    assert (covered == 1).all()
    per_block = ss.BLOCK_ELEMENTS // (length * d_state)  # channels per CPU block
    # Off the CPU one batch entry (50M state elements) fits a block, two do not.
    assert len(blocks) == (batch * math.ceil(channels / per_block) if device == "cpu" else batch)


def _every_other(x: torch.Tensor) -> torch.Tensor:
    """The same values as a view with stride 2 along the last dim (no unit stride along L)."""
    spread = torch.zeros(*x.shape[:-1], 2 * x.shape[-1], dtype=x.dtype)
    spread[..., ::2] = x
    return spread[..., ::2]


def test_non_contiguous_inputs() -> None:
    args = make_inputs(groups=2)
    strided = {k: _every_other(v) if isinstance(v, torch.Tensor) and v.dim() >= 3 else v for k, v in args.items()}
    strided["u"] = args["u"].transpose(1, 2).contiguous().transpose(1, 2)  # channels-last, as after a Linear
    strided["A"] = args["A"].t().contiguous().t()
    strided["D"] = _every_other(args["D"])
    assert not any(v.is_contiguous() for k, v in strided.items() if k in ("u", "delta", "A", "B", "C", "D", "z"))
    for backend in FAST_BACKENDS:
        torch.testing.assert_close(selective_scan(**strided, backend=backend), reference(**args), atol=1e-4, rtol=1e-4)


def test_strong_decay_stays_finite() -> None:
    """delta*A far below -87 (subnormal exp) and softplus inputs far past its threshold."""
    args = make_inputs(length=50)
    args["A"] = args["A"] * 100
    args["delta"] = args["delta"] * 50
    y = selective_scan(**args, backend="torch")
    assert torch.isfinite(y).all()
    torch.testing.assert_close(y, reference(**args), atol=1e-4, rtol=1e-4)


def test_softplus_matches_torch() -> None:
    x = torch.cat([torch.linspace(-120, 120, 4001), torch.tensor([-1e4, 1e4, math.inf, -math.inf])])
    torch.testing.assert_close(ss._softplus(x, torch.empty_like(x)), F.softplus(x), atol=2e-6, rtol=2e-6)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_inputs(dtype: torch.dtype) -> None:
    """Half-precision sequence tensors (A, D, delta_bias in fp32, as under autocast): fp32 inside, u's dtype out."""
    args = make_inputs(groups=2)
    low = {k: v.to(dtype) if k in ("u", "delta", "B", "C", "z") else v for k, v in args.items()}
    expected = reference(**{k: v.float() if isinstance(v, torch.Tensor) else v for k, v in low.items()})
    for backend in ("reference", *FAST_BACKENDS):
        y = selective_scan(**low, backend=backend)
        assert y.dtype == dtype
        # The only error left is rounding the output to `dtype` (8 bits of mantissa for bf16).
        torch.testing.assert_close(y.float(), expected, atol=1e-2, rtol=1e-2 if dtype == torch.bfloat16 else 2e-3)


# -- mamba-ssm's full selective_scan_fn API ----------------------------------------------------------------


def documented_scan(**args: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """mamba-ssm's ``selective_scan_ref`` semantics restated independently of the backends, fp32, real A:
    a fixed (D, N) B or C is the same at every step and batch entry; (B, N, L) is shared by all channels;
    (B, G, N, L) gives channel d group d // (D/G).  Returns (out, last_state)."""
    u, delta, A = args["u"].float(), args["delta"].float(), args["A"].float()
    batch, channels, length = u.shape
    if args.get("delta_bias") is not None:
        delta = delta + args["delta_bias"][:, None].float()
    if args.get("delta_softplus"):
        delta = F.softplus(delta)

    def per_step(x: torch.Tensor) -> torch.Tensor:  # -> (batch, D, N, L)
        if x.dim() == 2:
            return x[None, :, :, None].expand(batch, -1, -1, length).float()
        if x.dim() == 3:
            return x[:, None].expand(-1, channels, -1, -1).float()
        return x.repeat_interleave(channels // x.shape[1], dim=1).float()

    B, C = per_step(args["B"]), per_step(args["C"])
    state = torch.zeros(batch, channels, A.shape[1])
    ys = []
    for t in range(length):
        step = delta[:, :, t, None]
        state = torch.exp(step * A) * state + step * B[..., t] * u[:, :, t, None]
        ys.append(torch.einsum("bdn,bdn->bd", state, C[..., t]))
    out = torch.stack(ys, dim=2)
    if args.get("D") is not None:
        out = out + u * args["D"][:, None]
    if args.get("z") is not None:
        out = out * F.silu(args["z"])
    return out.to(args["u"].dtype), state


BC_LAYOUTS = ["fixed", "shared", "g1", "g2", "gD"]  # (D, N), (B, N, L), (B, G, N, L) with G = 1, 2, D


def bc_like(layout: str, args: dict[str, Any], seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    batch, channels, length = args["u"].shape
    n = args["A"].shape[1]
    shapes = {"fixed": (channels, n), "shared": (batch, n, length), "g1": (batch, 1, n, length),
              "g2": (batch, 2, n, length), "gD": (batch, channels, n, length)}  # fmt: skip
    return torch.randn(*shapes[layout], generator=gen)


@pytest.mark.parametrize("backend", ["reference", "torch"])
@pytest.mark.parametrize(("b_layout", "c_layout"), [(b, c) for b in BC_LAYOUTS for c in BC_LAYOUTS if b <= c])
def test_every_bc_layout_and_last_state_follow_mamba_ssm(backend: str, b_layout: str, c_layout: str) -> None:
    args = make_inputs(length=9)
    args["B"], args["C"] = bc_like(b_layout, args, 1), bc_like(c_layout, args, 2)
    y, last = selective_scan(**args, return_last_state=True, backend=backend)
    expected_y, expected_last = documented_scan(**args)
    assert last.shape == (2, 8, 4) and last.dtype == torch.float32
    torch.testing.assert_close(y, expected_y, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(last, expected_last, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(("b_layout", "c_layout"), [("fixed", "fixed"), ("fixed", "g2"), ("g2", "shared")])
def test_gradients_for_fixed_bc_and_the_last_state(b_layout: str, c_layout: str) -> None:
    """The registered backward, last state's gradient included, vs autograd through the documented loop."""
    base = make_inputs(length=7)
    base["B"], base["C"] = bc_like(b_layout, base, 1), bc_like(c_layout, base, 2)
    ours, theirs = _differentiable(base, torch.float32), _differentiable(base, torch.float32)
    weights = torch.randn(2, 8, 7), torch.randn(2, 8, 4)
    y, last = selective_scan(**ours, return_last_state=True, backend="torch")
    ((y * weights[0]).sum() + (last * weights[1]).sum()).backward()
    y_ref, last_ref = documented_scan(**theirs)
    ((y_ref * weights[0]).sum() + (last_ref * weights[1]).sum()).backward()
    for name, value in ours.items():
        if isinstance(value, torch.Tensor):
            assert value.grad.shape == value.shape
            torch.testing.assert_close(value.grad, theirs[name].grad, atol=1e-4, rtol=1e-4, msg=name)


@pytest.mark.parametrize("name", ["A", "B", "C"])
def test_complex_inputs_are_refused_not_cast(name: str) -> None:
    args = make_inputs(length=4)
    args[name] = args[name].to(torch.complex64)
    for backend in ("reference", "torch", "auto"):
        with pytest.raises(ValueError, match=rf"complex {name} is not supported"):
            selective_scan(**args, backend=backend)


@pytest.mark.parametrize(
    ("name", "shape", "message"),
    [("B", (2, 3, 4, 5), "D = 8 divisible by G"), ("C", (8, 3), r"C must be \(D, N\)"), ("A", (4, 4), "A must be"),
     ("D", (4,), r"D must be \(8,\)"), ("z", (2, 8, 4), "z must have u's shape")],
)  # fmt: skip
def test_malformed_shapes_are_one_clear_error(name: str, shape: tuple[int, ...], message: str) -> None:
    args = make_inputs(length=5)
    args[name] = torch.randn(*shape)
    with pytest.raises(ValueError, match=message):
        selective_scan(**args)


# -- gradients ------------------------------------------------------------------------------------------------


def _differentiable(args: dict[str, Any], dtype: torch.dtype) -> dict[str, Any]:
    """Fresh leaf copies (never the caller's tensors, so two calls do not share .grad)."""
    return {k: v.to(dtype, copy=True).requires_grad_() if isinstance(v, torch.Tensor) else v for k, v in args.items()}


@pytest.mark.parametrize("groups", [None, 2])
def test_gradcheck_fp64(groups: int | None) -> None:
    args = _differentiable(make_inputs(channels=4, length=6, d_state=3, groups=groups), torch.float64)
    names = [k for k, v in args.items() if isinstance(v, torch.Tensor)]

    def fn(*tensors: torch.Tensor) -> torch.Tensor:
        return selective_scan(**dict(zip(names, tensors, strict=True)), delta_softplus=True, backend="torch")

    assert torch.autograd.gradcheck(fn, [args[k] for k in names])


@pytest.mark.parametrize("options", [OPTION_NAMES, ()])
def test_gradients_match_reference_autograd(monkeypatch: pytest.MonkeyPatch, options: tuple[str, ...]) -> None:
    """The registered backward (blocked, so accumulation across blocks is exercised) vs autograd of the loop."""
    monkeypatch.setattr(ss, "BLOCK_ELEMENTS", 50)
    base = make_inputs(batch=2, channels=8, length=30, groups=2, options=options)
    ours, theirs = _differentiable(base, torch.float32), _differentiable(base, torch.float32)
    grad_out = torch.randn_like(base["u"])
    selective_scan(**ours, backend="torch").backward(grad_out)
    kwargs = {k: theirs.get(k) for k in ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")}
    ss._scan_reference(**kwargs, delta_softplus=theirs["delta_softplus"])[0].backward(grad_out)
    for name, value in ours.items():
        if isinstance(value, torch.Tensor):
            torch.testing.assert_close(value.grad, theirs[name].grad, atol=1e-4, rtol=1e-4, msg=name)


def test_bf16_gradients_have_input_dtypes() -> None:
    """Autocast-style mix: bf16 sequence tensors, fp32 parameters; each gradient in its input's dtype."""
    args = make_inputs(groups=2)
    sequences = ("u", "delta", "B", "C", "z")
    low = {
        k: (v.bfloat16() if k in sequences else v).requires_grad_() if k != "delta_softplus" else v
        for k, v in args.items()
    }
    selective_scan(**low).float().sum().backward()
    for value in low.values():
        if isinstance(value, torch.Tensor):
            assert value.grad is not None and value.grad.dtype == value.dtype and torch.isfinite(value.grad).all()


class TinyMamba(nn.Module):
    """One selective scan between two projections, with Mamba's parameterisation of A, D and dt."""

    def __init__(self, dim: int = 6, d_state: int = 4) -> None:
        super().__init__()
        self.in_proj = nn.Linear(dim, 3 * dim + 2 * d_state)
        self.out_proj = nn.Linear(dim, dim)
        self.A_log = nn.Parameter(torch.log(torch.arange(1, d_state + 1.0)).repeat(dim, 1))
        self.D = nn.Parameter(torch.ones(dim))
        self.dt_bias = nn.Parameter(torch.full((dim,), -3.0))
        self.dim, self.d_state = dim, d_state

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u, delta, z, b, c = self.in_proj(x).transpose(1, 2).split([self.dim] * 3 + [self.d_state] * 2, dim=1)
        y = selective_scan(u, delta, -self.A_log.exp(), b, c, self.D, z, self.dt_bias, delta_softplus=True)
        return self.out_proj(y.transpose(1, 2))


def test_trains_on_cpu() -> None:
    torch.manual_seed(0)
    model, x = TinyMamba(), torch.randn(4, 20, 6)
    target = torch.randn(4, 20, 6)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(5):
        loss = F.mse_loss(model(x), target)
        opt.zero_grad()
        loss.backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
        assert model.A_log.grad.abs().sum() > 0
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


# -- the operator under tracing and compilation --------------------------------------------------------------


def test_opcheck() -> None:
    args = _differentiable(make_inputs(length=9, groups=2), torch.float32)
    positional = [args.get(k) for k in ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")]
    torch.library.opcheck(torch.ops.vmibench.selective_scan.default, (*positional, True, "torch"))


class ScanOnly(nn.Module):
    """Nothing but one selective scan (fixed operands), for the FLOPs counters."""

    def __init__(self, args: dict[str, Any]) -> None:
        super().__init__()
        self.args = {k: v for k, v in args.items() if k != "u"}

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return selective_scan(u, **self.args)


def test_compile_keeps_one_scan_node() -> None:
    from torch._dynamo.testing import CompileCounterWithBackend

    args = make_inputs(groups=2)
    model = ScanOnly(args)
    counter = CompileCounterWithBackend("eager")
    y = torch.compile(model, backend=counter, fullgraph=True)(args["u"])
    torch.testing.assert_close(y, model(args["u"]))
    (graph,) = counter.graphs
    calls = [n.target for n in graph.graph.nodes if n.op == "call_function" and n.target is not operator.getitem]
    assert calls == [torch.ops.vmibench.selective_scan]


def test_jit_trace_keeps_one_scan_node() -> None:
    args = make_inputs(groups=2)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated; fvcore still traces with it
        traced = torch.jit.trace(ScanOnly(args), (args["u"],))
    kinds = [node.kind() for node in traced.graph.nodes()]
    assert kinds.count("vmibench::selective_scan") == 1


@pytest.mark.parametrize("groups", [None, 4])
@pytest.mark.parametrize("gated", [False, True])
def test_flops_counted_by_the_scan_rule(groups: int | None, gated: bool) -> None:
    """9*B*L*D*N + B*D*L MACs per scan (plus B*D*L for a z gate, as VMamba's with_Z); FlopCounterMode: 2x."""
    batch, channels, length, d_state = 2, 8, 13, 3
    options = OPTION_NAMES if gated else ("D", "delta_bias", "delta_softplus")
    args = make_inputs(batch=batch, channels=channels, length=length, d_state=d_state, groups=groups, options=options)
    macs = 9 * batch * length * channels * d_state + batch * channels * length * (2 if gated else 1)
    count = count_flops(ScanOnly(args), args["u"])
    assert round(count.gmacs * 1e9) == macs
    assert round(count.scan_gmacs * 1e9) == macs
    assert round(count.gmacs_torch * 1e9) == macs
    assert "selective_scan" not in count.uncounted_ops
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        ScanOnly(args)(args["u"])
    assert counter.get_total_flops() == 2 * macs


# -- backend selection ----------------------------------------------------------------------------------------


def test_auto_is_torch_on_cpu_and_default_backend_overrides_it(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_backend() == "torch" == resolve_backend("auto", "cpu")
    used: list[str] = []
    for name in ("torch", "reference"):
        impl = ss._IMPLS[name]
        monkeypatch.setitem(ss._IMPLS, name, lambda *a, _name=name, _impl=impl: used.append(_name) or _impl(*a))
    args = make_inputs(length=4)
    selective_scan(**args)
    set_default_backend("reference")
    assert resolve_backend() == "reference" and resolve_backend("torch") == "torch"
    selective_scan(**args)
    selective_scan(**args, backend="torch")
    assert used == ["torch", "reference", "torch"]


def test_unknown_backend_is_an_error() -> None:
    with pytest.raises(ValueError, match="scan backend must be one of"):
        set_default_backend("cuda_magic")
    with pytest.raises(ValueError, match="scan backend must be one of"):
        resolve_backend("cuda_magic")
    with pytest.raises(ValueError, match="scan backend must be one of"):
        selective_scan(**make_inputs(length=3), backend="cuda_magic")


def test_mamba_ssm_needs_cuda_and_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(RuntimeError, match="mamba-ssm"):
        resolve_backend("mamba_ssm", "cpu")
    monkeypatch.setattr(ss, "triton_available", lambda: False)
    monkeypatch.setattr(ss, "mamba_ssm_available", lambda: False)
    assert resolve_backend("auto", "cuda") == "torch"
    monkeypatch.setattr(ss, "mamba_ssm_available", lambda: True)
    assert resolve_backend("auto", "cuda") == "mamba_ssm"
    assert resolve_backend("auto", "cpu") == "torch"
    assert available_backends("cuda") == ["mamba_ssm", "torch", "reference"]


def test_auto_prefers_mamba_ssm_then_triton_on_cuda_and_torch_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ss, "triton_available", lambda: True)
    monkeypatch.setattr(ss, "mamba_ssm_available", lambda: True)
    assert available_backends("cuda") == ["mamba_ssm", "triton", "torch", "reference"]
    monkeypatch.setattr(ss, "mamba_ssm_available", lambda: False)
    assert resolve_backend("auto", "cuda") == "triton"
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    assert available_backends("cpu") == ["torch", "reference"]
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET=1"):
        resolve_backend("triton", "cpu")
    # Under the interpreter triton runs on CPU tensors when asked by name, but auto never picks it.
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert available_backends("cpu") == ["torch", "reference", "triton"]
    assert resolve_backend("auto", "cpu") == "torch" and resolve_backend("triton", "cpu") == "triton"
    monkeypatch.setattr(ss, "triton_available", lambda: False)
    with pytest.raises(RuntimeError, match="needs the triton package"):
        resolve_backend("triton", "cuda")


def test_mamba_ssm_wrapper_passes_the_dtypes_its_kernel_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stand-in selective_scan_fn asserts selective_scan.cpp's dtype checks, then runs the reference."""
    seen: dict[str, torch.dtype] = {}

    def fake_selective_scan_fn(  # type: ignore[no-untyped-def]
        u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False, return_last_state=False
    ):
        assert delta.dtype == B.dtype == C.dtype == z.dtype == u.dtype
        assert A.dtype == D.dtype == delta_bias.dtype == torch.float32
        assert return_last_state
        seen["u"] = u.dtype
        y, last = ss._scan_reference(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
        return y, last.float()

    module = types.ModuleType("mamba_ssm.ops.selective_scan_interface")
    module.selective_scan_fn = fake_selective_scan_fn  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "mamba_ssm.ops.selective_scan_interface", module)
    args = make_inputs(groups=2)
    mixed = {k: v.bfloat16() if k in ("u", "z") else v for k, v in args.items()}  # delta, B, C stay fp32
    y, last = ss._scan_mamba_ssm(**mixed)
    assert seen["u"] == torch.bfloat16 and y.dtype == torch.bfloat16 and last.dtype == torch.float32


def test_mamba_ssm_wrapper_passes_group_layouts_its_kernel_accepts(monkeypatch: pytest.MonkeyPatch) -> None:
    """One group count for the variable B/C (from B, else 1), fixed ones in fp32: else both go per channel."""
    seen: list[tuple[tuple[int, ...], tuple[int, ...], torch.dtype, torch.dtype]] = []

    def fake_selective_scan_fn(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,  # type: ignore[no-untyped-def]
                               return_last_state=False):  # fmt: skip
        groups = B.shape[1] if B.dim() == 4 else 1
        assert C.dim() < 4 or C.shape[1] == groups
        seen.append((tuple(B.shape), tuple(C.shape), B.dtype, C.dtype))
        return ss._scan_reference(u, delta, A, B, C, D, z, delta_bias, delta_softplus)

    module = types.ModuleType("mamba_ssm.ops.selective_scan_interface")
    module.selective_scan_fn = fake_selective_scan_fn  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "mamba_ssm.ops.selective_scan_interface", module)
    args = make_inputs(groups=2, length=5)
    args["B"] = torch.randn(8, 4)  # fixed B beside a 2-group C: the kernel takes neither, so both per channel
    torch.testing.assert_close(ss._scan_mamba_ssm(**args)[0], ss._scan_reference(**args)[0])
    args["C"] = args["C"][:, 0]  # beside a one-group C the fixed B passes as is, in fp32 under a bf16 u
    ss._scan_mamba_ssm(**{k: v.bfloat16() if k == "u" else v for k, v in args.items()})
    assert seen == [((2, 8, 4, 5), (2, 8, 4, 5), torch.float32, torch.float32),
                    ((8, 4), (2, 4, 5), torch.float32, torch.bfloat16)]  # fmt: skip


# -- benchmark helper -----------------------------------------------------------------------------------------


def test_compare_scan_backends_rows() -> None:
    shape = ScanShape("tiny", batch=1, length=40, channels=8, d_state=2, groups=2, gated=True)
    rows = compare_scan_backends([shape], threads=1, min_time_s=0.01)
    assert [r.backend for r in rows] == ["torch", "reference"]
    fast, ref = rows
    assert (fast.shape, fast.B, fast.L, fast.D, fast.N) == ("tiny", 1, 40, 8, 2)
    assert fast.max_abs_err < 1e-4 and ref.max_abs_err == 0.0 and ref.speedup == 1.0
    assert fast.median_ms > 0 and fast.n >= 1 and fast.speedup == pytest.approx(ref.median_ms / fast.median_ms)
    with pytest.raises(RuntimeError, match="mamba-ssm"):
        compare_scan_backends([shape], backends=("mamba_ssm",))
