"""The ``triton`` selective-scan backend: one fused forward kernel (the backward is the analytic one of the
``torch`` backend, see :mod:`vmibench.ops.selective_scan`).

Like mamba-ssm's CUDA kernel, one program owns a block of channels of one batch entry and walks the sequence
in order, its state h (channels x N, fp32) living in registers from the first token to the last; the inputs
are read once and y written once, so the scan costs one pass over memory instead of the ``torch`` backend's
log2(L) passes.  The walk goes chunk by chunk: a chunk of ``BLOCK_T`` tokens is loaded as whole tiles, scanned
in parallel with ``tl.associative_scan`` over the pairs (decay, input) -- the composition of two steps
h -> a1*h + b1 and h -> a2*h + b2 is (a1*a2, a2*b1 + b2) -- and joined to the state carried in from the previous
chunk, h_t = b_t + a_t * h_carry.  Arithmetic is fp32 whatever the input dtype (bf16/fp16 inputs are read as
such and converted in registers; fp64 is computed in fp32 too); y is stored in u's dtype, the last state in fp32.

B and C arrive as (batch, G, N, L) with any strides (a fixed (D, N) B or C is a stride-0 view with one group
per channel, see ``as_grouped``), and channel d reads group d // (D / G) of each, so channel blocks may straddle
groups.

Triton decides when a kernel is *defined* whether it is compiled or run by its CPU interpreter
(``TRITON_INTERPRET=1``) -- its own library functions when triton is first imported -- so the variable has to
be in the environment of the process from its start; this module is imported only on the first call of the
backend, to keep Triton's import out of start-up.

The block sizes below are a reasoned first choice, not tuned on a GPU (none was available when this was
written): about four channels per program, so that a batch-1 Vim/VMamba layer (384 channels) still spreads over
~100 programs, and chunk tiles of ~4K state elements.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

# a compiled kernel may read a module global only when it is a tl.constexpr (Triton's interpreter does not check)
_LOG2_E: tl.constexpr = tl.constexpr(1.4426950408889634)

# Launch parameters (see the module docstring): channels per program, state elements per chunk tile.
CHANNELS_PER_PROGRAM = 4
TILE_ELEMENTS = 4096
MAX_BLOCK_T = 1024
NUM_WARPS = 4


@triton.jit
def _compose(a1, b1, a2, b2):  # type: ignore[no-untyped-def]
    # Two recurrence steps h -> a1*h + b1, then h -> a2*h + b2, as one.
    return a1 * a2, b1 * a2 + b2


@triton.jit
def scan_fwd_kernel(  # type: ignore[no-untyped-def]
    u_ptr, delta_ptr, a_ptr, b_ptr, c_ptr, d_ptr, z_ptr, bias_ptr, out_ptr, last_ptr,
    channels, length, d_state, b_group_size, c_group_size,
    s_u_b, s_u_d, s_u_l, s_dt_b, s_dt_d, s_dt_l, s_a_d, s_a_n,
    s_b_b, s_b_g, s_b_n, s_b_l, s_c_b, s_c_g, s_c_n, s_c_l,
    s_d, s_z_b, s_z_d, s_z_l, s_bias, s_o_b, s_o_d, s_o_l,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_T: tl.constexpr,
):  # fmt: skip
    batch = tl.program_id(0)
    d = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    n = tl.arange(0, BLOCK_N)
    steps = tl.arange(0, BLOCK_T)
    d_ok = d < channels
    n_ok = n < d_state
    dn_ok = d_ok[:, None] & n_ok[None, :]
    # Padded states (n >= N) get A = 0 and B = C = 0: decay 1, input 0, so they stay 0 and add nothing.
    a = tl.load(a_ptr + d[:, None] * s_a_d + n[None, :] * s_a_n, mask=dn_ok, other=0.0).to(tl.float32) * _LOG2_E
    if HAS_D:
        skip = tl.load(d_ptr + d * s_d, mask=d_ok, other=0.0).to(tl.float32)
    if HAS_BIAS:
        bias = tl.load(bias_ptr + d * s_bias, mask=d_ok, other=0.0).to(tl.float32)
    b_rows = b_ptr + batch * s_b_b + (d // b_group_size)[:, None, None] * s_b_g + n[None, :, None] * s_b_n
    c_rows = c_ptr + batch * s_c_b + (d // c_group_size)[:, None, None] * s_c_g + n[None, :, None] * s_c_n
    h = tl.zeros((BLOCK_D, BLOCK_N), dtype=tl.float32)
    for start in range(0, length, BLOCK_T):
        t = start + steps
        dt_ok = d_ok[:, None] & (t < length)[None, :]
        dnt_ok = dt_ok[:, None, :] & n_ok[None, :, None]
        u = tl.load(u_ptr + batch * s_u_b + d[:, None] * s_u_d + t[None, :] * s_u_l, mask=dt_ok, other=0.0)
        u = u.to(tl.float32)
        dt = tl.load(delta_ptr + batch * s_dt_b + d[:, None] * s_dt_d + t[None, :] * s_dt_l, mask=dt_ok, other=0.0)
        dt = dt.to(tl.float32)
        if HAS_BIAS:
            dt += bias[:, None]
        if SOFTPLUS:
            # mamba-ssm's threshold: softplus(x) = x in fp32 well before 20; exp(x) there may overflow, unused.
            dt = tl.where(dt <= 20.0, tl.log(1.0 + tl.exp(dt)), dt)
        # Tokens past the end get delta = 0: decay 1 and input 0, so the last column holds the final state.
        dt = tl.where(dt_ok, dt, 0.0)
        b = tl.load(b_rows + t[None, None, :] * s_b_l, mask=dnt_ok, other=0.0).to(tl.float32)
        c = tl.load(c_rows + t[None, None, :] * s_c_l, mask=dnt_ok, other=0.0).to(tl.float32)
        decay = tl.exp2(dt[:, None, :] * a[:, :, None])
        inputs = (dt * u)[:, None, :] * b
        decay_prefix, state_prefix = tl.associative_scan((decay, inputs), 2, _compose)
        states = state_prefix + decay_prefix * h[:, :, None]
        y = tl.sum(states * c, axis=1)
        if HAS_D:
            y += skip[:, None] * u
        if HAS_Z:
            z = tl.load(z_ptr + batch * s_z_b + d[:, None] * s_z_d + t[None, :] * s_z_l, mask=dt_ok, other=0.0)
            z = z.to(tl.float32)
            y *= z * tl.sigmoid(z)
        out = out_ptr + batch * s_o_b + d[:, None] * s_o_d + t[None, :] * s_o_l
        tl.store(out, y.to(out_ptr.dtype.element_ty), mask=dt_ok)
        h = tl.sum(tl.where(steps[None, None, :] == BLOCK_T - 1, states, 0.0), axis=2)
    last = last_ptr + batch * channels * d_state + d[:, None] * d_state + n[None, :]
    tl.store(last, h, mask=dn_ok)


# Fixed when the kernel was defined (above): compiled for a GPU, or run by Triton's interpreter.  Triton's own
# library functions (tl.sum, tl.zeros) were fixed the same way when triton was first imported: a variable set
# in between leaves a kernel the interpreter cannot run.
INTERPRETED = not isinstance(scan_fwd_kernel, triton.runtime.jit.JITFunction)
_LIBRARY_COMPILED = isinstance(tl.sum, triton.runtime.jit.JITFunction)


def launch_config(channels: int, d_state: int, length: int) -> tuple[int, int, int]:
    """(BLOCK_D, BLOCK_N, BLOCK_T): channels per program, padded state size, tokens per chunk (powers of 2)."""
    block_n = triton.next_power_of_2(d_state)
    block_d = max(1, min(CHANNELS_PER_PROGRAM, triton.next_power_of_2(channels), TILE_ELEMENTS // (16 * block_n)))
    block_t = TILE_ELEMENTS // (block_d * block_n)
    block_t = max(16, min(block_t, MAX_BLOCK_T, triton.next_power_of_2(length)))
    return block_d, block_n, block_t


def scan_forward(
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
    """(y in u's dtype, last state (batch, D, N) in fp32); B and C as (batch, G, N, L), any strides."""
    if (u.device.type != "cuda" and not INTERPRETED) or (INTERPRETED and _LIBRARY_COMPILED):
        raise RuntimeError(
            "the Triton scan kernel cannot run here: Triton's interpreter (for CPU tensors) needs TRITON_INTERPRET=1 "
            "set before triton is first imported, e.g. in the environment of the process"
        )
    batch, channels, length = u.shape
    d_state = A.shape[1]
    out = torch.empty(u.shape, dtype=u.dtype, device=u.device)
    last = torch.empty(batch, channels, d_state, dtype=torch.float32, device=u.device)
    if u.numel() == 0:
        return out, last.zero_()
    block_d, block_n, block_t = launch_config(channels, d_state, length)
    # Absent optional inputs: any valid pointer stands in (the constexpr flags keep it unread), stride 0.
    skip = u if D is None else D
    gate = u if z is None else z
    bias = u if delta_bias is None else delta_bias
    grid = (batch, triton.cdiv(channels, block_d))
    scan_fwd_kernel[grid](
        u, delta, A, B, C, skip, gate, bias, out, last,
        channels, length, d_state, channels // B.shape[1], channels // C.shape[1],
        *u.stride(), *delta.stride(), *A.stride(), *B.stride(), *C.stride(),
        0 if D is None else D.stride(0), *(gate.stride() if z is not None else (0, 0, 0)),
        0 if delta_bias is None else delta_bias.stride(0), *out.stride(),
        HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=delta_bias is not None, SOFTPLUS=delta_softplus,
        BLOCK_D=block_d, BLOCK_N=block_n, BLOCK_T=block_t, num_warps=NUM_WARPS,
    )  # fmt: skip
    return out, last
