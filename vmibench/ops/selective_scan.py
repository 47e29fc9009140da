"""Selective scan (Mamba's S6 recurrence): one function, three backends.

``selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False, backend="auto")``
takes mamba-ssm's ``selective_scan_fn`` layout: ``u, delta, z``: (batch, D, L); ``A``: (D, N);
``B, C``: (batch, N, L) or (batch, groups, N, L) with D divisible by groups; ``D``: (D,); ``delta_bias``: (D,).

    delta = softplus(delta + delta_bias)  (softplus only if delta_softplus)
    h_t   = exp(delta_t * A) * h_{t-1} + delta_t * B_t * u_t      (state per channel d and state index n)
    y_t   = <C_t, h_t> + D * u_t;   y = y * silu(z) if z is given

Backends: ``reference`` (sequential loop, for tests), ``torch`` (vectorised plain PyTorch, default off-GPU),
``mamba_ssm`` (the fused CUDA kernel, when mamba-ssm imports and the tensors are on CUDA).  ``auto`` picks
``mamba_ssm`` when usable, else ``torch``; :func:`set_default_backend` overrides ``auto`` process-wide (the CLI's
``--scan-backend``), and :func:`resolve_backend` tells which backend a call will use (recorded in result rows).

The public function dispatches through the custom operator ``vmibench::selective_scan`` so that FLOPs
counters see the scan as one operator (counted by the 9*B*L*D*N + B*D*L rule, see :mod:`vmibench.flops`).
"""

from __future__ import annotations

import importlib.util

import torch
import torch.nn.functional as F

BACKENDS = ("auto", "torch", "reference", "mamba_ssm")
_default_backend = "auto"


def set_default_backend(backend: str) -> None:
    """Make ``backend`` what ``auto`` means in this process (validated)."""
    global _default_backend
    if backend not in BACKENDS:
        raise ValueError(f"scan backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    _default_backend = backend


def mamba_ssm_available() -> bool:
    """True when mamba-ssm's CUDA selective scan can be imported."""
    if importlib.util.find_spec("mamba_ssm") is None:
        return False
    try:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn  # noqa: F401
    except Exception:
        return False
    return True


def available_backends(device: torch.device | str = "cpu") -> list[str]:
    """Backends that can run on ``device``."""
    names = ["torch", "reference"]
    if torch.device(device).type == "cuda" and mamba_ssm_available():
        names.insert(0, "mamba_ssm")
    return names


def resolve_backend(backend: str = "auto", device: torch.device | str = "cpu") -> str:
    """The concrete backend a call with ``backend`` on ``device`` runs."""
    if backend == "auto":
        backend = _default_backend
    if backend == "auto":
        return available_backends(device)[0]
    if backend not in BACKENDS:
        raise ValueError(f"scan backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "mamba_ssm" and backend not in available_backends(device):
        raise RuntimeError("scan backend mamba_ssm needs mamba-ssm installed and CUDA tensors")
    return backend


def _prepare(
    delta: torch.Tensor, delta_bias: torch.Tensor | None, delta_softplus: bool
) -> torch.Tensor:
    delta = delta.float()
    if delta_bias is not None:
        delta = delta + delta_bias.float()[None, :, None]
    if delta_softplus:
        delta = F.softplus(delta)
    return delta


def _expand_groups(x: torch.Tensor, channels: int) -> torch.Tensor:
    """(B, N, L) or (B, G, N, L) -> (B, D, N, L) float."""
    x = x.float()
    if x.dim() == 3:
        return x.unsqueeze(1).expand(-1, channels, -1, -1)
    groups = x.shape[1]
    return x.repeat_interleave(channels // groups, dim=1)


def _finish(
    y: torch.Tensor, u: torch.Tensor, D: torch.Tensor | None, z: torch.Tensor | None, dtype: torch.dtype
) -> torch.Tensor:
    if D is not None:
        y = y + u.float() * D.float()[None, :, None]
    if z is not None:
        y = y * F.silu(z.float())
    return y.to(dtype)


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
) -> torch.Tensor:
    """Token-by-token recurrence, written for clarity; the ground truth the other backends are tested against."""
    channels, length = u.shape[1], u.shape[2]
    delta = _prepare(delta, delta_bias, delta_softplus)
    Bx, Cx = _expand_groups(B, channels), _expand_groups(C, channels)
    A = A.float()
    h = u.new_zeros(u.shape[0], channels, A.shape[1], dtype=torch.float32)
    ys = []
    for t in range(length):
        dt = delta[:, :, t, None]
        h = torch.exp(dt * A) * h + dt * Bx[:, :, :, t] * u[:, :, t, None].float()
        ys.append((h * Cx[:, :, :, t]).sum(-1))
    return _finish(torch.stack(ys, dim=-1), u, D, z, u.dtype)


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
) -> torch.Tensor:
    # Placeholder until the vectorised backend lands: same maths as the reference.
    return _scan_reference(u, delta, A, B, C, D, z, delta_bias, delta_softplus)


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
) -> torch.Tensor:
    from mamba_ssm.ops.selective_scan_interface import selective_scan_fn

    return selective_scan_fn(
        u.contiguous(),
        delta.contiguous(),
        A.contiguous(),
        B.contiguous(),
        C.contiguous(),
        D=None if D is None else D.float(),
        z=None if z is None else z.contiguous(),
        delta_bias=None if delta_bias is None else delta_bias.float(),
        delta_softplus=delta_softplus,
    )


_IMPLS = {"reference": _scan_reference, "torch": _scan_torch, "mamba_ssm": _scan_mamba_ssm}


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
) -> torch.Tensor:
    impl = _IMPLS[resolve_backend(backend, u.device)]
    return impl(u, delta, A, B, C, D, z, delta_bias, delta_softplus)


@_selective_scan_op.register_fake
def _(u, delta, A, B, C, D, z, delta_bias, delta_softplus, backend):  # type: ignore[no-untyped-def]
    return torch.empty_like(u)


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
    backend: str = "auto",
) -> torch.Tensor:
    """Run the selective scan (see module docstring for layout and maths); returns y shaped like ``u``."""
    return torch.ops.vmibench.selective_scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus, backend)
