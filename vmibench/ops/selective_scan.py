"""Selective scan (Mamba's S6 recurrence): one function, four backends.

``selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
return_last_state=False, backend="auto")`` takes mamba-ssm's ``selective_scan_fn`` signature and layout
(``mamba_ssm/ops/selective_scan_interface.py``, whose ``selective_scan_ref`` documents the semantics):
``u, delta, z``: (batch, D, L); ``A``: (D, N); ``B`` and ``C`` each fixed, (D, N), or variable, (batch, N, L)
or (batch, G, N, L) with D divisible by G (channel d reads group d // (D/G)); ``D``: (D,); ``delta_bias``: (D,).

    delta = softplus(delta + delta_bias)  (softplus only if delta_softplus)
    h_t   = exp(delta_t * A) * h_{t-1} + delta_t * B_t * u_t      (state per channel d and state index n)
    y_t   = <C_t, h_t> + D * u_t;   y = y * silu(z) if z is given

``return_last_state=True`` returns ``(y, h_{L-1})``, the state (batch, D, N) in the compute dtype, as mamba-ssm
does; unlike mamba-ssm's backward (which ignores it), the gradient of the last state is propagated.  Complex
``A``, ``B`` or ``C`` (mamba-ssm's complex mode, with B/C interleaving real and imaginary parts along L) is
refused with a ValueError rather than cast to real: no model here uses it.

Arithmetic is fp32 (fp64 for fp64 inputs, so that gradcheck works, except in the Triton kernel, which is fp32
throughout); the output has ``u``'s dtype.

Backends: ``reference`` (sequential loop, for tests), ``torch`` (vectorised plain PyTorch, default off-GPU),
``mamba_ssm`` (the fused CUDA kernel, when mamba-ssm imports and the tensors are on CUDA), ``triton`` (a fused
Triton forward kernel, :mod:`vmibench.ops.triton_scan`, on CUDA; on CPU tensors only under ``TRITON_INTERPRET=1``,
Triton's interpreter, which is how it is tested without a GPU).  ``auto`` picks ``mamba_ssm`` when usable, then
``triton`` on CUDA, else ``torch``; :func:`set_default_backend` overrides ``auto`` process-wide (the CLI's
``--scan-backend``), and :func:`resolve_backend` tells which backend a call will use (recorded in result rows).

The public function dispatches through the custom operator ``vmibench::selective_scan`` so that FLOPs
counters see the scan as one operator (counted by the 9*B*L*D*N + B*D*L rule of :mod:`vmibench.flops`).
Its gradient, whichever backend ran the forward (the Triton backend included: it has no backward kernel), is
the analytic backward of the ``torch`` backend, run as the opaque operator ``vmibench::selective_scan_backward``
(so ``torch.compile`` keeps both as single nodes).

How the ``torch`` backend works: per block of (batch, channel) rows -- about ``BLOCK_ELEMENTS`` state
elements, so its scratch memory stays a few MiB whatever the input -- it lays the decays ``exp(delta*A)``
and inputs ``delta*B*u`` out time-major, (L, rows*N), and runs an in-place odd/even prefix scan over the
pairs (decay, input): log2(L) levels of whole-row operations, about 3 element operations per element in
all, and no exponent of a cumulative sum, so it overflows exactly when the sequential recurrence does.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from vmibench.backends import BACKENDS

_default_backend = "auto"

# Elements (rows * L * N) per block of the torch backend: bounds its scratch memory at a few times this
# whatever the input size.  On a CPU 512 Ki floats (2 MiB per buffer) measured fastest (1-2 MiB of L2);
# on a GPU, where each of a block's ~100 small kernels costs a launch, blocks are as large as memory allows.
BLOCK_ELEMENTS = 1 << 19
BLOCK_ELEMENTS_GPU = 1 << 26


def set_default_backend(backend: str) -> None:
    """Make ``backend`` what ``auto`` means in this process (validated)."""
    global _default_backend
    if backend not in BACKENDS:
        raise ValueError(f"scan backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    _default_backend = backend


def _importable(package: str, module: str) -> bool:
    """True when ``module`` imports: an installed but broken build (a wheel for another CUDA) counts as absent."""
    if importlib.util.find_spec(package) is None:
        return False
    try:
        importlib.import_module(module)
    except Exception:
        return False
    return True


@functools.cache
def mamba_ssm_available() -> bool:
    """True when mamba-ssm's CUDA selective scan can be imported (checked once per process)."""
    return _importable("mamba_ssm", "mamba_ssm.ops.selective_scan_interface")


@functools.cache
def triton_available() -> bool:
    """True when Triton imports (it ships with torch's CUDA builds; checked once per process)."""
    return _importable("triton", "triton.language")


def triton_interpreted() -> bool:
    """True when ``TRITON_INTERPRET`` asks for Triton's CPU interpreter (read live, as Triton does)."""
    return os.environ.get("TRITON_INTERPRET", "").strip().lower() in ("1", "true", "on", "yes")


def available_backends(device: torch.device | str = "cpu") -> list[str]:
    """Backends that can run on ``device``, in ``auto``'s order of preference (``reference`` is never picked).

    Off CUDA ``triton`` is listed last, and only under ``TRITON_INTERPRET=1``: the interpreter is a testing
    tool, orders of magnitude slower than the ``torch`` backend, so ``auto`` must never choose it.
    """
    on_cuda = torch.device(device).type == "cuda"
    names = ["torch", "reference"]
    if on_cuda and triton_available():
        names.insert(0, "triton")
    if on_cuda and mamba_ssm_available():
        names.insert(0, "mamba_ssm")
    if not on_cuda and triton_available() and triton_interpreted():
        names.append("triton")
    return names


def resolve_backend(backend: str = "auto", device: torch.device | str = "cpu") -> str:
    """The concrete backend a call with ``backend`` on ``device`` runs."""
    if backend == "auto":
        backend = _default_backend
    if backend == "auto":
        return available_backends(device)[0]
    if backend not in BACKENDS:
        raise ValueError(f"scan backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend not in available_backends(device):
        if backend == "mamba_ssm":
            raise RuntimeError("scan backend mamba_ssm needs mamba-ssm installed and CUDA tensors")
        if not triton_available():
            raise RuntimeError("scan backend triton needs the triton package (it ships with torch's CUDA builds)")
        raise RuntimeError(
            "scan backend triton needs CUDA tensors (on CPU it runs only under TRITON_INTERPRET=1, Triton's "
            "interpreter, a testing tool)"
        )
    return backend


# -- shared pieces --------------------------------------------------------------------------------------------


def _compute_dtype(u: torch.Tensor) -> torch.dtype:
    return torch.float64 if u.dtype == torch.float64 else torch.float32


def _prepare(
    delta: torch.Tensor, delta_bias: torch.Tensor | None, delta_softplus: bool, dtype: torch.dtype
) -> torch.Tensor:
    delta = delta.to(dtype)
    if delta_bias is not None:
        delta = delta + delta_bias.to(dtype)[None, :, None]
    return F.softplus(delta) if delta_softplus else delta


def check_scan_args(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
) -> None:
    """ValueError, naming the argument, for complex tensors or shapes outside mamba-ssm's layout."""
    given = {"u": u, "delta": delta, "A": A, "B": B, "C": C, "D": D, "z": z, "delta_bias": delta_bias}
    complex_names = [name for name, x in given.items() if x is not None and x.is_complex()]
    if complex_names:
        raise ValueError(
            f"selective_scan: complex {', '.join(complex_names)} is not supported (mamba-ssm's complex mode, "
            "with B/C interleaving real and imaginary parts along L, is not implemented); pass real tensors"
        )
    if u.dim() != 3:
        raise ValueError(f"selective_scan: u must be (batch, D, L), got shape {tuple(u.shape)}")
    batch, channels, length = u.shape
    for name in ("delta", "z"):
        x = given[name]
        if x is not None and x.shape != u.shape:
            raise ValueError(f"selective_scan: {name} must have u's shape {tuple(u.shape)}, got {tuple(x.shape)}")
    if A.dim() != 2 or A.shape[0] != channels:
        raise ValueError(f"selective_scan: A must be (D, N) with D = {channels}, got shape {tuple(A.shape)}")
    n = A.shape[1]
    for name, x in (("B", B), ("C", C)):
        fixed = x.dim() == 2 and tuple(x.shape) == (channels, n)
        shared = x.dim() == 3 and tuple(x.shape) == (batch, n, length)
        grouped = x.dim() == 4 and x.shape[0] == batch and tuple(x.shape[2:]) == (n, length)
        if not (fixed or shared or (grouped and x.shape[1] > 0 and channels % x.shape[1] == 0)):
            raise ValueError(
                f"selective_scan: {name} must be (D, N) = {(channels, n)}, (batch, N, L) = {(batch, n, length)} "
                f"or (batch, G, N, L) with D = {channels} divisible by G; got shape {tuple(x.shape)}"
            )
    for name in ("D", "delta_bias"):
        x = given[name]
        if x is not None and tuple(x.shape) != (channels,):
            raise ValueError(f"selective_scan: {name} must be ({channels},), got shape {tuple(x.shape)}")


def as_grouped(x: torch.Tensor, batch: int, length: int) -> torch.Tensor:
    """B or C as (batch, G, N, L): (B, N, L) gets G = 1; a fixed (D, N) one becomes a stride-0 view with one
    group per channel, so that every backend handles fixed and variable B/C by the same indexing."""
    if x.dim() == 2:
        return x[None, :, :, None].expand(batch, -1, -1, length)
    return x.unsqueeze(1) if x.dim() == 3 else x


def _per_channel(x: torch.Tensor, channels: int) -> torch.Tensor:
    """(batch, G, N, L) -> (batch, D, N, L), each channel its group's values (a view when G is 1 or D)."""
    batch, groups, n, length = x.shape
    if groups == channels:
        return x
    return x.unsqueeze(2).expand(batch, groups, channels // groups, n, length).reshape(batch, channels, n, length)


def _common_groups(B: torch.Tensor, C: torch.Tensor, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Grouped B and C with one group count (the torch backend's blocks slice both alike): per channel when the
    two differ (a fixed one beside a variable one), which copies the variable one unless it has one group."""
    if B.shape[1] == C.shape[1]:
        return B, C
    return _per_channel(B, channels), _per_channel(C, channels)


def _reduce_grad(grad: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The gradient of B or C, computed in its (batch, G', N, L) working form, in the shape of ``x``."""
    if x.dim() == 2:  # fixed: the working form had one group per channel, constant over batch and L
        return grad.sum((0, 3))
    groups = 1 if x.dim() == 3 else x.shape[1]
    if grad.shape[1] != groups:
        grad = grad.unflatten(1, (groups, -1)).sum(2)
    return grad.squeeze(1) if x.dim() == 3 else grad


def _skip_and_gate(y: torch.Tensor, u: torch.Tensor, D: torch.Tensor | None, z: torch.Tensor | None) -> torch.Tensor:
    """y + D*u, times silu(z) when z is given (in y's dtype)."""
    if D is not None:
        y = torch.addcmul(y, u.to(y.dtype), D.to(y.dtype)[None, :, None])
    if z is not None:
        y = y * F.silu(z.to(y.dtype))
    return y


# -- reference backend ----------------------------------------------------------------------------------------


def _scan_reference(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None,
    z: torch.Tensor | None,
    delta_bias: torch.Tensor | None,
    delta_softplus: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token-by-token recurrence, written for clarity; the ground truth the other backends are tested against.

    Returns (y, last state); B and C each in any of the accepted layouts.
    """
    dtype = _compute_dtype(u)
    batch, channels, length = u.shape
    delta = _prepare(delta, delta_bias, delta_softplus, dtype)
    Bx, Cx = (_per_channel(as_grouped(x, batch, length), channels).to(dtype) for x in (B, C))
    A, uf = A.to(dtype), u.to(dtype)
    h = u.new_zeros(batch, channels, A.shape[1], dtype=dtype)
    ys = []
    for t in range(length):
        dt = delta[:, :, t, None]
        h = torch.exp(dt * A) * h + dt * Bx[:, :, :, t] * uf[:, :, t, None]
        ys.append((h * Cx[:, :, :, t]).sum(-1))
    y = torch.stack(ys, dim=-1) if ys else uf.new_zeros(u.shape)
    return _skip_and_gate(y, uf, D, z).to(u.dtype), h


# -- torch backend --------------------------------------------------------------------------------------------
#
# Layout: a block's per-row tensors are time-major (L, b, g, h, 1) -- b batch entries, g groups of B/C, h
# channels per group -- and its states (L, b, g, h, N); B and C are (L, b, g, 1, N).  Time-major makes every
# step of the prefix scan an operation on whole contiguous rows.

_LOG2_E = math.log2(math.e)


def _scan_(decay: torch.Tensor, x: torch.Tensor) -> None:
    """In place: x_t <- decay_t * x_{t-1} + x_t along dim 0 (x_{-1} = 0); clobbers odd rows of ``decay``.

    Odd/even recursion: fold each pair (2k, 2k+1) into its odd row, scan the odd rows (a strided view, so
    the recursion allocates nothing), then finish each even row from the odd row before it.  ``decay[0]``
    only ever meets the zero initial state, so callers may leave it arbitrary.
    """
    n = x.shape[0]
    if n < 2:
        return
    m = n - n % 2
    odd_decay = decay[1:m:2]
    x[1:m:2].addcmul_(odd_decay, x[0:m:2])
    odd_decay.mul_(decay[0:m:2])
    _scan_(odd_decay, x[1:m:2])
    x[2::2].addcmul_(decay[2::2], x[1 : n - 1 : 2])


def _reverse_scan(decay: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """g_t = decay_{t+1} * g_{t+1} + x_t along dim 0 (g_L = 0): the adjoint of :func:`_scan_`, via flips."""
    flipped_decay = torch.empty_like(decay)
    flipped_decay[1:] = decay[1:].flip(0)
    flipped_decay[:1] = 1.0
    g = x.flip(0)
    _scan_(flipped_decay, g)
    return g.flip(0)


def _time_major(rows: torch.Tensor, groups: int) -> torch.Tensor:
    """(b, d, L) -> (L, b, g, d/g) view."""
    return rows.permute(2, 0, 1).unflatten(2, (groups, -1))


def _rows(time_major: torch.Tensor) -> torch.Tensor:
    """(L, b, g, h) -> (b, g*h, L) view."""
    return time_major.flatten(2).permute(1, 2, 0)


class _Workspace:
    """Named scratch buffers, allocated once per call and reused by every block.

    Allocating each multi-megabyte intermediate afresh per block costs page faults (glibc returns big freed
    blocks to the OS); measured stage by stage, that made some element-wise stages several times slower.
    """

    def __init__(self, dtype: torch.dtype, device: torch.device) -> None:
        self._dtype, self._device = dtype, device
        self._buffers: dict[str, torch.Tensor] = {}

    def __call__(self, name: str, *shape: int) -> torch.Tensor:
        """A (shape) view of buffer ``name``; its contents are whatever the last user left."""
        size = math.prod(shape)
        buffer = self._buffers.get(name)
        if buffer is None or buffer.numel() < size:
            buffer = self._buffers[name] = torch.empty(size, dtype=self._dtype, device=self._device)
        return buffer[:size].view(shape)


@dataclass(frozen=True)
class _Block:
    """Rows of the scan handled together: batch entries x channels, the channels whole groups or part of one."""

    batch: slice
    channels: slice
    groups: slice

    @property
    def n_groups(self) -> int:
        return self.groups.stop - self.groups.start

    def rows(self, x: torch.Tensor) -> torch.Tensor:
        """This block's rows of a (batch, D, L) tensor."""
        return x[self.batch, self.channels]


def _channel_ranges(channels: int, per_group: int, rows: int) -> list[tuple[int, int]]:
    """Channel ranges of at most ``rows`` channels that are whole groups or lie inside one group."""
    if rows < per_group:
        return [
            (start, min(start + rows, group_start + per_group))
            for group_start in range(0, channels, per_group)
            for start in range(group_start, group_start + per_group, rows)
        ]
    step = rows // per_group * per_group
    return [(start, min(start + step, channels)) for start in range(0, channels, step)]


@dataclass(frozen=True)
class _ScanArgs:
    """The operator's arguments, B and C as (batch, G, N, L) with one G (see :meth:`of`)."""

    u: torch.Tensor
    delta: torch.Tensor
    A: torch.Tensor
    B: torch.Tensor
    C: torch.Tensor
    D: torch.Tensor | None
    z: torch.Tensor | None
    delta_bias: torch.Tensor | None
    delta_softplus: bool

    @classmethod
    def of(
        cls,
        u: torch.Tensor,
        delta: torch.Tensor,
        A: torch.Tensor,
        B: torch.Tensor,
        C: torch.Tensor,
        D: torch.Tensor | None,
        z: torch.Tensor | None,
        delta_bias: torch.Tensor | None,
        delta_softplus: bool,
    ) -> _ScanArgs:
        batch, channels, length = u.shape
        Bg, Cg = _common_groups(as_grouped(B, batch, length), as_grouped(C, batch, length), channels)
        return cls(u, delta, A, Bg, Cg, D, z, delta_bias, delta_softplus)

    @property
    def dtype(self) -> torch.dtype:
        return _compute_dtype(self.u)

    def blocks(self) -> Iterator[_Block]:
        """Blocks of about BLOCK_ELEMENTS state elements (at least one row)."""
        batch, channels, length = self.u.shape
        if self.u.numel() == 0:
            return
        per_group = channels // self.B.shape[1]
        budget = BLOCK_ELEMENTS if self.u.device.type == "cpu" else BLOCK_ELEMENTS_GPU
        rows = max(1, budget // (length * self.A.shape[1]))
        ranges = _channel_ranges(channels, per_group, rows)
        batch_step = max(1, rows // channels) if len(ranges) == 1 else 1
        for start in range(0, batch, batch_step):
            for first, last in ranges:
                groups = slice(first // per_group, (last - 1) // per_group + 1)
                yield _Block(slice(start, min(start + batch_step, batch)), slice(first, last), groups)

    def workspace(self) -> _Workspace:
        return _Workspace(self.dtype, self.u.device)

    def block_D(self, blk: _Block) -> torch.Tensor | None:
        return None if self.D is None else self.D[blk.channels].to(self.dtype)

    def gate(self, blk: _Block, ws: _Workspace) -> torch.Tensor:
        """silu(z) for the block's rows, (b, d, L) (z is not None)."""
        assert self.z is not None
        z = blk.rows(self.z)
        return F.silu(ws("gate", *z.shape).copy_(z), inplace=True)


@dataclass
class _BlockOperands:
    """One block's operands, time-major in the compute dtype, built per block so that they stay in cache.

    The intermediates live in ``ws``: a method's result is only valid until it runs for the next block.
    """

    ws: _Workspace
    pre: torch.Tensor  # (L, b, g, h, 1) delta + delta_bias
    delta: torch.Tensor  # (L, b, g, h, 1) after the softplus
    delta_u: torch.Tensor  # (L, b, g, h, 1) delta * u
    A: torch.Tensor  # (g, h, N)
    B: torch.Tensor  # (L, b, g, 1, N)
    C: torch.Tensor  # (L, b, g, 1, N)

    @classmethod
    def take(cls, args: _ScanArgs, blk: _Block, ws: _Workspace) -> _BlockOperands:
        groups = blk.n_groups
        batch, channels, length = blk.rows(args.u).shape
        shape = (length, batch, groups, channels // groups, 1)
        # The transposing copies read the inputs once; the arithmetic after them runs in cache.
        pre = ws("pre", *shape).copy_(_time_major(blk.rows(args.delta), groups).unsqueeze(-1))
        if args.delta_bias is not None:
            pre += args.delta_bias[blk.channels].view(groups, -1, 1)
        delta = _softplus(pre, ws("delta", *shape)) if args.delta_softplus else pre
        u = _time_major(blk.rows(args.u), groups).unsqueeze(-1)
        state_major = (args.B[blk.batch, blk.groups], args.C[blk.batch, blk.groups])  # (b, g, N, L) each
        B, C = (x.to(args.dtype).permute(3, 0, 1, 2).unsqueeze(3).contiguous() for x in state_major)
        return cls(
            ws=ws,
            pre=pre,
            delta=delta,
            delta_u=torch.mul(delta, u, out=ws("delta_u", *shape)),
            A=args.A[blk.channels].to(args.dtype).view(groups, channels // groups, -1),
            B=B,
            C=C,
        )

    @property
    def state_shape(self) -> tuple[int, ...]:
        return (*self.delta.shape[:4], self.A.shape[-1])

    def decays(self) -> torch.Tensor:
        """exp(delta * A), (L, b, g, h, N)."""
        # exp2 of a rescaled exponent: aten's CPU exp is ~3x slower than exp2, and ~7x slower still once its
        # results turn subnormal (delta * A < -87), which long, strongly-decaying scans hit routinely.
        return torch.mul(self.delta, self.A * _LOG2_E, out=self.ws("decay", *self.state_shape)).exp2_()

    def inputs(self, name: str = "inputs") -> torch.Tensor:
        """delta * B * u, (L, b, g, h, N), in buffer ``name``."""
        return torch.mul(self.delta_u, self.B, out=self.ws(name, *self.state_shape))

    def states(self, decay: torch.Tensor) -> torch.Tensor:
        """h (L, b, g, h, N), the scanned states; clobbers ``decay``."""
        h = self.inputs("states")
        _scan_(decay.view(h.shape[0], -1), h.view(h.shape[0], -1))
        return h

    def ungated_output(
        self, h: torch.Tensor, u: torch.Tensor, D: torch.Tensor | None, out: torch.Tensor | None = None
    ) -> torch.Tensor:
        """<C_t, h_t> + D u_t as (b, d, L) in the compute dtype; ``u`` is the block's (b, d, L) rows.

        Written into ``out`` when given (it must have the compute dtype), else into the workspace.
        """
        y = torch.einsum("lbghn,lbgn->lbgh", h, self.C.squeeze(3))  # beats mul+sum and bmm, N=1 and N=16
        out = (self.ws("output", *u.shape) if out is None else out).copy_(_rows(y))
        return out if D is None else out.addcmul_(u, D[:, None])


def _softplus(x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """softplus(x) = -log(sigmoid(-x)) into ``out``, equal to F.softplus up to fp32 rounding (~1e-6).

    aten's CPU softplus evaluates log1p, about 6x slower than sigmoid + log here; for VMamba's N=1 scans it
    was the largest single cost.  softplus(x) >= x, and equals x in fp32 well before sigmoid(-x) underflows
    (x > 88) and its log turns -inf; flooring sigmoid at 1e-30 (x > 69) and taking the maximum with x gives
    exactly x there.
    """
    out = torch.neg(x, out=out).sigmoid_().clamp_(min=1e-30).log_().neg_()
    return torch.maximum(out, x, out=out)


def _scan_torch(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None,
    z: torch.Tensor | None,
    delta_bias: torch.Tensor | None,
    delta_softplus: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Blocked odd/even prefix scan (see module docstring); returns (y, last state)."""
    args = _ScanArgs.of(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
    ws = args.workspace()
    out = torch.empty(u.shape, dtype=u.dtype, device=u.device)
    last = torch.zeros(u.shape[0], u.shape[1], A.shape[1], dtype=args.dtype, device=u.device)
    direct = out.dtype == args.dtype  # else each block is rounded to u's dtype once, at the end
    for blk in args.blocks():
        ops = _BlockOperands.take(args, blk, ws)
        dest = blk.rows(out) if direct else None
        h = ops.states(ops.decays())
        blk.rows(last).copy_(h[-1].flatten(1, 2))
        y = ops.ungated_output(h, blk.rows(u), args.block_D(blk), dest)
        if z is not None:
            y *= args.gate(blk, ws)
        if not direct:
            blk.rows(out).copy_(y)
    return out, last


@dataclass
class _Grads:
    """Gradient accumulators in the compute dtype; B and C as (batch, G, N, L)."""

    u: torch.Tensor
    delta: torch.Tensor
    A: torch.Tensor
    B: torch.Tensor
    C: torch.Tensor
    D: torch.Tensor | None
    z: torch.Tensor | None
    delta_bias: torch.Tensor | None

    @classmethod
    def zeros(cls, args: _ScanArgs) -> _Grads:
        def like(x: torch.Tensor | None) -> torch.Tensor | None:
            return None if x is None else torch.zeros(x.shape, dtype=args.dtype, device=x.device)

        return cls(*(like(x) for x in (args.u, args.delta, args.A, args.B, args.C, args.D, args.z, args.delta_bias)))


def _block_backward(
    args: _ScanArgs, blk: _Block, grad: torch.Tensor, grad_last: torch.Tensor | None, grads: _Grads, ws: _Workspace
) -> None:
    """Add one block's share of every gradient to ``grads`` (time-major (L, b, g, h) unless noted)."""
    ops = _BlockOperands.take(args, blk, ws)
    groups, u, D = blk.n_groups, blk.rows(args.u), args.block_D(blk)
    g_out = blk.rows(grad).to(args.dtype)
    g_y = g_out if args.z is None else g_out * args.gate(blk, ws)  # (b, d, L)
    gy = _time_major(g_y, groups)
    decay = ops.decays()
    length = decay.shape[0]
    # dL/dh_t = C_t dL/dy_t + decay_{t+1} dL/dh_{t+1}: the same recurrence, run backwards; the last state's
    # own gradient (return_last_state) enters at t = L-1.
    direct = gy.unsqueeze(-1) * ops.C
    if grad_last is not None:
        direct[-1] += blk.rows(grad_last).to(args.dtype).view(direct.shape[1:])
    gh = _reverse_scan(decay.view(length, -1), direct.reshape(length, -1)).view(decay.shape)
    h = ops.states(decay)
    grads.C[blk.batch, blk.groups] += torch.einsum("lbghn,lbgh->bgnl", h, gy)
    if grads.z is not None and args.z is not None:
        z = blk.rows(args.z).to(args.dtype)
        blk.rows(grads.z).copy_(g_out * ops.ungated_output(h, u, D) * _silu_grad(z))
    # decay_t * h_{t-1} = h_t - inputs_t, so dL/d(delta_t A) needs no shifted copy of h.
    g_log_decay = h.sub_(ops.inputs()).mul_(gh)
    delta = ops.delta.squeeze(-1)
    grads.A[blk.channels] += torch.einsum("lbghn,lbgh->ghn", g_log_decay, delta).flatten(0, 1)
    grads.B[blk.batch, blk.groups] += torch.einsum("lbghn,lbgh->bgnl", gh, ops.delta_u.squeeze(-1))
    gh_b = torch.einsum("lbghn,lbgn->lbgh", gh, ops.B.squeeze(3))
    g_delta = torch.einsum("lbghn,ghn->lbgh", g_log_decay, ops.A).addcmul_(gh_b, _time_major(u, groups))
    if args.delta_softplus:
        g_delta *= torch.sigmoid(ops.pre.squeeze(-1))
    if grads.delta_bias is not None:
        grads.delta_bias[blk.channels] += g_delta.sum((0, 1)).flatten()
    blk.rows(grads.delta).copy_(_rows(g_delta))
    g_u = _rows(gh_b * delta)
    if grads.D is not None and D is not None:
        grads.D[blk.channels] += (g_y * u).sum((0, 2))
        g_u = g_u + g_y * D[:, None]
    blk.rows(grads.u).copy_(g_u)


def _scan_backward(
    grad: torch.Tensor,
    grad_last: torch.Tensor | None,
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None,
    z: torch.Tensor | None,
    delta_bias: torch.Tensor | None,
    delta_softplus: bool,
) -> list[torch.Tensor]:
    """[du, ddelta, dA, dB, dC, dD, dz, ddelta_bias], each in its input's dtype; empty for absent inputs."""
    args = _ScanArgs.of(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
    grads = _Grads.zeros(args)
    ws = args.workspace()
    for blk in args.blocks():
        _block_backward(args, blk, grad, grad_last, grads, ws)
    grad_B, grad_C = _reduce_grad(grads.B, B), _reduce_grad(grads.C, C)
    computed = (grads.u, grads.delta, grads.A, grad_B, grad_C, grads.D, grads.z, grads.delta_bias)
    inputs = (u, delta, A, B, C, D, z, delta_bias)
    return [_grad_like(g, x, u) for g, x in zip(computed, inputs, strict=True)]


def _silu_grad(z: torch.Tensor) -> torch.Tensor:
    sig = torch.sigmoid(z)
    return sig * (1 + z * (1 - sig))


def _grad_like(g: torch.Tensor | None, x: torch.Tensor | None, u: torch.Tensor) -> torch.Tensor:
    if g is None or x is None:
        return u.new_empty(0)  # custom ops cannot return None in a list
    return g.to(x.dtype)


# -- mamba_ssm backend ----------------------------------------------------------------------------------------


def _scan_mamba_ssm(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None,
    z: torch.Tensor | None,
    delta_bias: torch.Tensor | None,
    delta_softplus: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """mamba-ssm's fused kernel.

    Its C++ entry (csrc/selective_scan/selective_scan.cpp) checks: u in fp32/fp16/bf16, and delta, z and the
    variable B/C in u's dtype; A, D, delta_bias and a fixed B/C in fp32; a unit last stride for every sequence
    tensor and for D and delta_bias (``selective_scan_fn`` copies the ones that lack it, except delta_bias);
    and one group count, taken from B when B is variable, else 1, that a variable C must have too.  Pairs it
    would refuse (different group counts, a fixed B beside a grouped C) are passed as per-channel variable
    B and C.  The output comes back in u's dtype, the last state in fp32.
    """
    from mamba_ssm.ops.selective_scan_interface import selective_scan_fn

    batch, channels, length = u.shape
    itype = u.dtype if u.dtype in (torch.float32, torch.float16, torch.bfloat16) else torch.float32
    groups = [1 if x.dim() < 4 else x.shape[1] for x in (B, C) if x.dim() > 2]
    if len(set(groups)) > 1 or (len(groups) == 1 and B.dim() == 2 and groups[0] > 1):
        B, C = (_per_channel(as_grouped(x, batch, length), channels).contiguous() for x in (B, C))

    def cast(x: torch.Tensor) -> torch.Tensor:
        return x.float() if x.dim() == 2 else x.to(itype)

    out, last = selective_scan_fn(
        u.to(itype),
        delta.to(itype),
        A.float(),
        cast(B),
        cast(C),
        D=None if D is None else D.float(),
        z=None if z is None else z.to(itype),
        delta_bias=None if delta_bias is None else delta_bias.float().contiguous(),
        delta_softplus=delta_softplus,
        return_last_state=True,
    )
    return out.to(u.dtype), last.to(_compute_dtype(u))


# -- triton backend -------------------------------------------------------------------------------------------


def _scan_triton(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None,
    z: torch.Tensor | None,
    delta_bias: torch.Tensor | None,
    delta_softplus: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The fused Triton forward (:mod:`vmibench.ops.triton_scan`, imported on first use: importing Triton
    costs start-up time, and Triton reads ``TRITON_INTERPRET`` when the kernel is defined)."""
    from vmibench.ops.triton_scan import scan_forward

    batch, length = u.shape[0], u.shape[2]
    out, last = scan_forward(u, delta, A, as_grouped(B, batch, length), as_grouped(C, batch, length), D, z,
                             delta_bias, delta_softplus)  # fmt: skip
    return out, last.to(_compute_dtype(u))


_IMPLS = {"reference": _scan_reference, "torch": _scan_torch, "mamba_ssm": _scan_mamba_ssm, "triton": _scan_triton}


# -- operators ------------------------------------------------------------------------------------------------


@torch.library.custom_op("vmibench::selective_scan", mutates_args=())
def _selective_scan_op(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None,
    z: torch.Tensor | None,
    delta_bias: torch.Tensor | None,
    delta_softplus: bool,
    backend: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(y, last state): every backend computes the last state, a (batch, D, N) by-product of the scan."""
    impl = _IMPLS[resolve_backend(backend, u.device)]
    return impl(u, delta, A, B, C, D, z, delta_bias, delta_softplus)


@_selective_scan_op.register_fake
def _(u, delta, A, B, C, D, z, delta_bias, delta_softplus, backend):  # type: ignore[no-untyped-def]
    last = u.new_empty(u.shape[0], u.shape[1], A.shape[1], dtype=_compute_dtype(u))
    return torch.empty_like(u, memory_format=torch.contiguous_format), last


@torch.library.custom_op("vmibench::selective_scan_backward", mutates_args=())
def _selective_scan_backward_op(
    grad: torch.Tensor,
    grad_last: torch.Tensor | None,
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None,
    z: torch.Tensor | None,
    delta_bias: torch.Tensor | None,
    delta_softplus: bool,
) -> list[torch.Tensor]:
    return _scan_backward(grad, grad_last, u, delta, A, B, C, D, z, delta_bias, delta_softplus)


@_selective_scan_backward_op.register_fake
def _(grad, grad_last, u, delta, A, B, C, D, z, delta_bias, delta_softplus):  # type: ignore[no-untyped-def]
    return [
        u.new_empty(0) if x is None else torch.empty_like(x, memory_format=torch.contiguous_format)
        for x in (u, delta, A, B, C, D, z, delta_bias)
    ]


def _setup_context(ctx, inputs, output):  # type: ignore[no-untyped-def]
    u, delta, A, B, C, D, z, delta_bias, delta_softplus, _backend = inputs
    ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias)
    ctx.delta_softplus = delta_softplus


def _backward(ctx, grad, grad_last):  # type: ignore[no-untyped-def]
    saved = ctx.saved_tensors
    if grad is None:  # only the last state was used
        grad = torch.zeros_like(saved[0])
    grads = torch.ops.vmibench.selective_scan_backward(grad, grad_last, *saved, ctx.delta_softplus)
    present = (None if x is None else g for g, x in zip(grads, saved, strict=True))
    return (*present, None, None)


_selective_scan_op.register_autograd(_backward, setup_context=_setup_context)


def dt_bias_init(*shape: int, dt_min: float = 1e-3, dt_max: float = 0.1, floor: float = 1e-4) -> torch.Tensor:
    """Mamba's ``dt_proj`` bias: softplus^-1 of a step drawn log-uniformly in [dt_min, dt_max], clamped at ``floor``."""
    lo, hi = math.log(dt_min), math.log(dt_max)
    dt = (torch.rand(*shape) * (hi - lo) + lo).exp().clamp(min=floor)
    return dt + torch.log(-torch.expm1(-dt))


def s4d_real_log_a(channels: int, d_state: int) -> torch.Tensor:
    """log(-A) of Mamba's S4D-real initialisation, A[c, n] = -(n + 1), as a (channels, d_state) tensor."""
    return torch.arange(1, d_state + 1, dtype=torch.float32).log().repeat(channels, 1)


def selective_scan(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
    return_last_state: bool = False,
    backend: str = "auto",
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Run the selective scan (see module docstring for layout and maths): y shaped like ``u``, or
    ``(y, last_state)`` with ``return_last_state``.  ValueError for complex tensors or malformed shapes."""
    check_scan_args(u, delta, A, B, C, D, z, delta_bias)
    out, last = torch.ops.vmibench.selective_scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus, backend)
    return (out, last) if return_last_state else out
