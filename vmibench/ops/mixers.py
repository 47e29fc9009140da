"""Token mixers for the ``vmibench ops`` sweep: one uniform builder over sequence length L.

Every mixer maps tokens ``x`` of shape (B, L, C) to (B, L, C).  The tokens are an H x W grid flattened
row-major (token t = i * W + j), with (H, W) = :func:`grid_for` (L): the most square factorisation, H <= W.  A
prime L gives a 1 x L grid, which the convolutional mixers accept (they pad); nothing requires L to be square.

Ops (metadata in :data:`OPS`, construction with :func:`build_op`):

* ``sdpa`` -- multi-head softmax attention (qkv Linear, ``F.scaled_dot_product_attention``, output Linear),
  dim // 64 heads (at least 1).  O(L^2).
* ``mobilevitv2_sa`` -- MobileViTv2 separable self-attention, timm's ``LinearSelfAttention`` used as is, with
  all L tokens as one patch-pixel row (B, C, 1, L): one softmax over the L tokens, one context vector.  O(L).
  (MobileViTv2 itself unfolds 2x2 patches and keeps one context per patch pixel; the maths per row is the same.)
* ``vmisa`` -- VMINet's released VMI-SA mixer body (f1, f2, per-position context weight, alpha/beta, g); the
  released block's 7x7 depthwise conv + BN in front, BN after g and the residual are left out.  O(L).
* ``vmisa_recurrent`` / ``vmisa_matrix`` -- **RECONSTRUCTION** (not in the released code) of the causal-mask
  VMI-SA the paper describes, in its recurrent (cumulative sum, O(L)) and matrix (lower-triangular L x L mask,
  O(L^2)) forms; same module class and parameters as ``vmisa``.  See :class:`VMISA`.
* ``flatten_fla`` -- FLatten focused linear attention over the whole grid (``vmibench.baselines.flatten``).  O(L).
* ``mlla_linear`` -- MLLA linear attention with RoPE and LePE on the grid (``vmibench.baselines.mlla``).  O(L).
* ``selective_scan`` -- one Mamba S6 layer over the L tokens through :func:`vmibench.ops.selective_scan`; the
  backend is fixed at build time and carried by :func:`op_label`.  O(L).

Head widths follow each source: 64 for ``sdpa`` (the brief's ViT convention), 32 for FLatten-Swin and MLLA
(both use 32-wide heads in every stage of their released configs).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import trunc_normal_

from vmibench.errors import UserError
from vmibench.ops.selective_scan import dt_bias_init, resolve_backend, s4d_real_log_a, selective_scan

Grid = tuple[int, int]

SEED = 0
_SDPA_HEAD_DIM = 64
_LINEAR_ATTN_HEAD_DIM = 32
_VMI_EXPANSION = 2  # VMINet-Ti/XS/B's mlp_ratio
_SCAN_STATE = 16  # Mamba's d_state

_VMINET = "arXiv 2501.02040; github.com/yws-wxs/VMINet vminet.py @127f8bd"


def grid_for(seq_len: int) -> Grid:
    """(H, W) with H * W == ``seq_len``, H <= W and H as large as possible (the most square grid)."""
    if seq_len < 1:
        raise UserError(f"sequence length must be a positive integer, got {seq_len}")
    h = math.isqrt(seq_len)
    while seq_len % h:
        h -= 1
    return h, seq_len // h


@dataclass(frozen=True)
class OpInfo:
    """What an op is: shown by ``vmibench ops`` and stored beside its timings."""

    name: str
    description: str
    expected_complexity: str  # "O(L)" or "O(L^2)" in the sequence length, at fixed width and batch
    reconstruction: bool  # True when the op is our reading of a paper's text, not released code
    source: str  # paper and official code the op follows


# -- adapters ---------------------------------------------------------------------------------------------------


class GridTokens(nn.Module):
    """Run a mixer that wants a 2-D map on (B, L, C) tokens: reshape in, reshape back out.

    ``channels_last`` picks (B, H, W, C) (MLLA) over (B, C, H, W) (timm's MobileViTv2 attention).
    """

    def __init__(self, inner: nn.Module, grid: Grid, channels_last: bool) -> None:
        super().__init__()
        self.inner = inner
        self.grid = grid
        self.channels_last = channels_last

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        h, w = self.grid
        if self.channels_last:
            return self.inner(x.reshape(b, h, w, c)).reshape(b, n, c)
        y = self.inner(x.transpose(1, 2).reshape(b, c, h, w))
        return y.reshape(b, c, n).transpose(1, 2)

    def extra_repr(self) -> str:
        return f"grid={self.grid}, channels_last={self.channels_last}"


# -- mixers written here ----------------------------------------------------------------------------------------


class SoftmaxAttention(nn.Module):
    """Global multi-head softmax attention on (B, L, C) tokens, through ``F.scaled_dot_product_attention``."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))

    def extra_repr(self) -> str:
        return f"num_heads={self.num_heads}"


def _pointwise(linear: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """A Linear over the channels of channel-first (B, C, L) tokens (the released block's 1x1 conv)."""
    out = linear.weight @ x
    return out if linear.bias is None else out + linear.bias[:, None]


class VMISA(nn.Module):
    """VMI-SA mixer body on (B, L, C) tokens, with the global (released) or a causal (reconstructed) context.

    Common to every form, with expansion r (hidden width rC)::

        z = ReLU6(f1(x)) * f2(x)                      element-wise "Q ⊙ K", (B, L, rC)
        y = alpha * context + beta * z                alpha, beta = stack[0], stack[1] (learned, init 1)
        out = g(ReLU6(y))

    ``form`` picks the context, with w = ``sum.weight`` one learned weight per position (L of them):

    * ``"global"`` (released): s = sum_n w_n z_n, one vector broadcast to every token.  O(L).
    * ``"recurrent"`` (**RECONSTRUCTION**): c_t = sum_{n<=t} w_n z_n as a cumulative sum over tokens.  O(L).
    * ``"matrix"`` (**RECONSTRUCTION**): the same c = (M ⊙ w) z with M the materialised L x L lower-triangular
      ones mask (a buffer, built once).  O(L^2) time and memory.

    The causal forms are not in the released code: they follow the paper's description as summarised in
    shared/reference/vminet.md (a causal mask, learnable alpha/beta balancing causal and direct context).  Our
    choices: the prefix context is not normalised by the prefix length (the released global context is a plain
    weighted sum too, and the learned w sets its scale), and the depthwise conv in front of the released block
    is left out of every form, since a 2-D conv would let a token see later rows and break causality.  The
    global context equals the causal one at the last token, so the forms agree there.

    Names follow the released block (``f1``, ``f2``, ``sum``, ``stack``, ``g``); the 1x1 convs are Linears.
    All forms have the same parameters, so one form's state dict loads into another.
    """

    FORMS = ("global", "recurrent", "matrix")

    def __init__(self, dim: int, seq_len: int, form: str = "global", expansion: int = _VMI_EXPANSION) -> None:
        super().__init__()
        if form not in self.FORMS:
            raise ValueError(f"VMISA form must be one of {', '.join(self.FORMS)}, got {form!r}")
        hidden = expansion * dim
        self.form = form
        self.seq_len = seq_len
        self.f1 = nn.Linear(dim, hidden)
        self.f2 = nn.Linear(dim, hidden)
        self.sum = nn.Linear(seq_len, 1, bias=False)
        self.stack = nn.Parameter(torch.ones(2))
        self.g = nn.Linear(hidden, dim)
        self.act = nn.ReLU6()
        # Derived from L alone, so not saved: state dicts stay identical across forms.
        mask = torch.ones(seq_len, seq_len).tril() if form == "matrix" else None
        self.register_buffer("mask", mask, persistent=False)
        for m in (self.f1, self.f2, self.sum, self.g):  # the released init (trunc-normal 0.02, zero bias)
            trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    def context(self, z: torch.Tensor) -> torch.Tensor:
        """Context of channel-first ``z`` (B, rC, L): (B, rC, 1) for the global form, (B, rC, L) prefix sums for
        the causal ones."""
        if z.shape[-1] != self.seq_len:
            raise ValueError(f"VMISA built for {self.seq_len} tokens got {z.shape[-1]}: build it for this length")
        w = self.sum.weight  # (1, L)
        if self.form == "global":
            return z @ w.t()
        if self.form == "recurrent":
            return torch.cumsum(z * w, dim=-1)
        return z @ (self.mask * w).t()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Channel-first inside, like the released conv block: the token axis is then contiguous, which makes the
        # recurrent form's cumulative sum 2-3x faster on CPU than summing along a strided axis.
        xc = x.transpose(1, 2)
        z = self.act(_pointwise(self.f1, xc)) * _pointwise(self.f2, xc)
        y = self.stack[0] * self.context(z) + self.stack[1] * z
        return _pointwise(self.g, self.act(y)).transpose(1, 2)

    def extra_repr(self) -> str:
        return f"form={self.form}, seq_len={self.seq_len}"


class SelectiveScanMixer(nn.Module):
    """One Mamba S6 layer on (B, L, C) tokens: input-dependent delta, B, C, then the selective scan.

    Following Mamba's ``selective_scan_fn`` call (state-spaces/mamba, Gu & Dao 2023): x_proj gives
    (dt, B, C) per token, dt_proj's weight lifts dt to delta (its bias is the scan's ``delta_bias``, softplus
    inside the scan), A = -exp(A_log) of shape (C, N), skip D.  Mamba's in/out projections, causal conv and
    SiLU gate are outside the scan and left out.  Initialisation is Mamba's (S4D-real A, log-uniform dt).
    """

    def __init__(
        self,
        dim: int,
        backend: str,
        d_state: int = _SCAN_STATE,
        dt_min: float = 1e-3,
        dt_max: float = 0.1,
        dt_floor: float = 1e-4,
    ) -> None:
        super().__init__()
        self.backend = backend
        self.d_state = d_state
        self.dt_rank = math.ceil(dim / 16)
        self.x_proj = nn.Linear(dim, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, dim)
        self.A_log = nn.Parameter(s4d_real_log_a(dim, d_state))
        self.D = nn.Parameter(torch.ones(dim))
        with torch.no_grad():
            bound = self.dt_rank**-0.5
            self.dt_proj.weight.uniform_(-bound, bound)
            self.dt_proj.bias.copy_(dt_bias_init(dim, dt_min=dt_min, dt_max=dt_max, floor=dt_floor))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.d_state
        dt, b_in, c_in = self.x_proj(x).split([self.dt_rank, n, n], dim=-1)
        delta = F.linear(dt, self.dt_proj.weight)
        y = selective_scan(
            x.transpose(1, 2),
            delta.transpose(1, 2),
            -self.A_log.float().exp(),
            b_in.transpose(1, 2),
            c_in.transpose(1, 2),
            D=self.D.float(),
            delta_bias=self.dt_proj.bias.float(),
            delta_softplus=True,
            backend=self.backend,
        )
        return y.transpose(1, 2)

    def extra_repr(self) -> str:
        return f"d_state={self.d_state}, dt_rank={self.dt_rank}, backend={self.backend}"


# -- construction -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Spec:
    """Everything a builder needs (backend already resolved to a concrete one)."""

    seq_len: int
    dim: int
    grid: Grid
    scan_backend: str


def _heads(op: str, dim: int, head_dim: int) -> int:
    heads = max(1, dim // head_dim)
    if dim % heads:
        raise UserError(f"op {op} needs dim divisible by its {heads} heads ({head_dim}-wide), got dim={dim}")
    return heads


def _build_sdpa(spec: _Spec) -> nn.Module:
    return SoftmaxAttention(spec.dim, _heads("sdpa", spec.dim, _SDPA_HEAD_DIM))


def _build_mobilevitv2(spec: _Spec) -> nn.Module:
    from timm.models.mobilevit import LinearSelfAttention

    # (B, C, 1, L): timm softmaxes over its last axis, so all L tokens share one context vector.
    return GridTokens(LinearSelfAttention(spec.dim), (1, spec.seq_len), channels_last=False)


def _vmisa_builder(form: str) -> Callable[[_Spec], nn.Module]:
    def build(spec: _Spec) -> nn.Module:
        return VMISA(spec.dim, spec.seq_len, form)

    return build


def _build_flatten(spec: _Spec) -> nn.Module:
    from vmibench.baselines.flatten import FocusedLinearAttention

    heads = _heads("flatten_fla", spec.dim, _LINEAR_ATTN_HEAD_DIM)
    return FocusedLinearAttention(spec.dim, spec.grid, heads, focusing_factor=3, kernel_size=5)


def _build_mlla(spec: _Spec) -> nn.Module:
    from vmibench.baselines.mlla import LinearAttention

    if spec.dim % 4:
        raise UserError(f"op mlla_linear needs dim divisible by 4 (2-D RoPE), got dim={spec.dim}")
    heads = _heads("mlla_linear", spec.dim, _LINEAR_ATTN_HEAD_DIM)
    return GridTokens(LinearAttention(spec.dim, spec.grid, heads), spec.grid, channels_last=True)


def _build_scan(spec: _Spec) -> nn.Module:
    return SelectiveScanMixer(spec.dim, spec.scan_backend)


_REC_NOTE = (
    "RECONSTRUCTION (not in the released code) of the causal-mask VMI-SA the paper describes: "
    "z = ReLU6(f1 x) * f2 x; c_t = sum_{n<=t} w_n z_n; y = alpha c + beta z; out = g(ReLU6 y); "
)
_REC_SOURCE = f"{_VMINET}, reconstructed from the paper's description (shared/reference/vminet.md)"

_REGISTRY: dict[str, tuple[OpInfo, Callable[[_Spec], nn.Module]]] = {
    info.name: (info, builder)
    for info, builder in (
        (
            OpInfo(
                "sdpa",
                "multi-head softmax attention: qkv Linear, F.scaled_dot_product_attention (dim//64 heads), out Linear",
                "O(L^2)",
                False,
                "Vaswani et al. 2017; torch.nn.functional.scaled_dot_product_attention",
            ),
            _build_sdpa,
        ),
        (
            OpInfo(
                "mobilevitv2_sa",
                "MobileViTv2 separable self-attention: 1x1 conv to 1+2C, softmax over the L tokens weights the "
                "keys into one context vector, ReLU(value) * context, 1x1 out conv (timm LinearSelfAttention)",
                "O(L)",
                False,
                "Mehta & Rastegari 2022 (arXiv 2206.02680); timm.models.mobilevit.LinearSelfAttention "
                "(= apple/ml-cvnets LinearSelfAttention)",
            ),
            _build_mobilevitv2,
        ),
        (
            OpInfo(
                "vmisa",
                "VMINet released VMI-SA mixer body: z = ReLU6(f1 x) * f2 x, global context s = sum_n w_n z_n "
                "(one learned weight per position), out = g(ReLU6(alpha s + beta z)); expansion 2, "
                "without the released block's dw7x7+BN, BN and residual",
                "O(L)",
                False,
                f"{_VMINET} (VMI-SA block body)",
            ),
            _vmisa_builder("global"),
        ),
        (
            OpInfo(
                "vmisa_recurrent",
                _REC_NOTE + "recurrent form: cumulative sum over tokens",
                "O(L)",
                True,
                _REC_SOURCE,
            ),
            _vmisa_builder("recurrent"),
        ),
        (
            OpInfo(
                "vmisa_matrix",
                _REC_NOTE + "matrix form: (M ⊙ w) @ z with M the materialised L x L lower-triangular mask",
                "O(L^2)",
                True,
                _REC_SOURCE,
            ),
            _vmisa_builder("matrix"),
        ),
        (
            OpInfo(
                "flatten_fla",
                "FLatten focused linear attention over the whole H x W grid: ReLU kernel, focusing factor 3 "
                "with norm rescaling, learned L x C positional encoding on k, kv aggregation, 5x5 depthwise conv "
                "on v, out Linear (32-wide heads)",
                "O(L)",
                False,
                "Han et al. ICCV 2023 (arXiv 2308.00442); github.com/LeapLabTHU/FLatten-Transformer "
                "models/flatten_swin.py FocusedLinearAttention, via vmibench.baselines.flatten",
            ),
            _build_flatten,
        ),
        (
            OpInfo(
                "mlla_linear",
                "MLLA linear attention on the H x W grid: ELU+1 kernel, 2-D RoPE on q and k, LePE 3x3 depthwise "
                "conv on v; qk Linear only (the MLLA block's in/out projections are outside; 32-wide heads)",
                "O(L)",
                False,
                "Han et al. NeurIPS 2024 (arXiv 2405.16605); github.com/LeapLabTHU/MLLA models/mlla.py "
                "LinearAttention, via vmibench.baselines.mlla",
            ),
            _build_mlla,
        ),
        (
            OpInfo(
                "selective_scan",
                "one Mamba S6 selective scan over the L tokens: x_proj/dt_proj to delta, B, C; A (C, 16); "
                "skip D; through vmibench.ops.selective_scan (backend in the label)",
                "O(L)",
                False,
                "Gu & Dao 2023 (arXiv 2312.00752); state-spaces/mamba selective_scan_fn",
            ),
            _build_scan,
        ),
    )
}

OPS: dict[str, OpInfo] = {name: info for name, (info, _) in _REGISTRY.items()}


def _info(name: str) -> OpInfo:
    if name not in OPS:
        raise UserError(f"unknown op {name!r}: choose one of {', '.join(OPS)}")
    return OPS[name]


def _resolve_scan_backend(scan_backend: str, device: torch.device) -> str:
    try:
        return resolve_backend(scan_backend, device)
    except (ValueError, RuntimeError) as exc:
        raise UserError(str(exc).splitlines()[0]) from exc


def op_label(name: str, *, device: torch.device | str = "cpu", scan_backend: str = "auto") -> str:
    """The name results are stored under: ``selective_scan[<concrete backend>]`` for the scan, else ``name``."""
    _info(name)
    if name != "selective_scan":
        return name
    return f"{name}[{_resolve_scan_backend(scan_backend, torch.device(device))}]"


def _rng_devices(device: torch.device) -> list[int]:
    if device.type != "cuda":
        return []
    return [device.index if device.index is not None else torch.cuda.current_device()]


def build_op(
    name: str,
    *,
    seq_len: int,
    dim: int,
    batch: int,
    device: torch.device | str = "cpu",
    scan_backend: str = "auto",
) -> tuple[nn.Module, torch.Tensor]:
    """Build op ``name`` for ``seq_len`` tokens of width ``dim``: (eval-mode module on ``device``, x (B, L, C)).

    Weights and input come from a fixed seed (the caller's RNG state is left alone), so two builds with the
    same arguments are identical, and ``vmisa_recurrent`` / ``vmisa_matrix`` get the same weights.  The module
    is created on ``device`` directly, so O(L^2) buffers are never staged in host memory.

    Raises :class:`~vmibench.errors.UserError` for an unknown op, a non-positive size, a width the op's heads
    do not divide, or a scan backend that cannot run on ``device``.
    """
    _info(name)
    for label, value in (("seq_len", seq_len), ("dim", dim), ("batch", batch)):
        if value < 1:
            raise UserError(f"{label} must be a positive integer, got {value}")
    dev = torch.device(device)
    backend = _resolve_scan_backend(scan_backend, dev) if name == "selective_scan" else scan_backend
    spec = _Spec(seq_len=seq_len, dim=dim, grid=grid_for(seq_len), scan_backend=backend)
    _, builder = _REGISTRY[name]
    with torch.random.fork_rng(devices=_rng_devices(dev)), dev:
        torch.manual_seed(SEED)
        module = builder(spec)
        x = torch.randn(batch, seq_len, dim)
    return module.to(dev).eval(), x
