"""Selective-scan backend comparison: speed and agreement with the sequential reference (``vmibench check scan``).

Each shape gets Mamba-like inputs (S4D-real ``A``, ``delta_bias`` from a log-uniform step size, softplus on,
``D`` skip) so that decays and magnitudes look like a trained model's, and every backend is timed with
``torch.utils.benchmark.Timer.blocked_autorange`` at a fixed thread count.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch.utils.benchmark import Timer

from vmibench.ops.selective_scan import resolve_backend, selective_scan


@dataclass(frozen=True)
class ScanShape:
    """One scan call: u is (batch, channels, length), the state has ``d_state`` entries per channel.

    ``groups`` is the number of B/C groups (VMamba folds its 4 scan directions into the channels with one
    group each); ``gated`` adds Mamba's z gate (Vim has it, VMamba's SS2D does not).
    """

    label: str
    batch: int
    length: int
    channels: int
    d_state: int
    groups: int = 1
    gated: bool = False

    def inputs(self, device: torch.device | str = "cpu", seed: int = 0) -> dict[str, torch.Tensor | bool]:
        """Keyword arguments for :func:`selective_scan`, as a Mamba layer at initialisation would pass them."""
        gen = torch.Generator().manual_seed(seed)
        b, d, n, length = self.batch, self.channels, self.d_state, self.length

        def randn(*shape: int) -> torch.Tensor:
            return torch.randn(*shape, generator=gen)

        # dt ~ log-uniform [1e-3, 1e-1], stored as its softplus inverse (Mamba's dt_proj bias init).
        dt = torch.exp(torch.rand(d, generator=gen) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3))
        args: dict[str, torch.Tensor | bool] = {
            "u": randn(b, d, length),
            "delta": 0.5 * randn(b, d, length),
            "A": -torch.arange(1, n + 1, dtype=torch.float32).repeat(d, 1),
            "B": randn(b, self.groups, n, length),
            "C": randn(b, self.groups, n, length),
            "D": torch.ones(d),
            "delta_bias": dt + torch.log(-torch.expm1(-dt)),
            "delta_softplus": True,
        }
        if self.gated:
            args["z"] = randn(b, d, length)
        return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in args.items()}


DEFAULT_SHAPES: tuple[ScanShape, ...] = (
    # VMamba-T stage 1 at 224: 56x56 tokens, 4 directions x 96 channels, d_state 1.
    ScanShape("vmamba_t-stage1-224", batch=1, length=3136, channels=384, d_state=1, groups=4),
    # Vim-Ti at 224: 196 patches + class token, d_inner 384, d_state 16, gated.
    ScanShape("vim_t-224", batch=1, length=197, channels=384, d_state=16, gated=True),
)


@dataclass(frozen=True)
class ScanBenchRow:
    """Timing of one backend on one shape; errors and speedups are against the ``reference`` backend."""

    shape: str
    B: int
    L: int
    D: int
    N: int
    backend: str
    median_ms: float
    iqr_ms: float
    n: int  # timed blocks behind the median
    max_abs_err: float  # max |y - y_reference|
    speedup: float | None  # reference median / this median; None when the reference was not timed


def _time_ms(
    fn_args: dict[str, torch.Tensor | bool], backend: str, threads: int, min_time_s: float, label: str
) -> tuple[float, float, int]:
    timer = Timer(
        stmt="selective_scan(**args, backend=backend)",
        globals={"selective_scan": selective_scan, "args": fn_args, "backend": backend},
        num_threads=threads,
        label="selective_scan",
        sub_label=label,
        description=backend,
    )
    with torch.no_grad():
        m = timer.blocked_autorange(min_run_time=min_time_s)
    return m.median * 1e3, m.iqr * 1e3, len(m.times)


def compare_scan_backends(
    shapes: Sequence[ScanShape] = DEFAULT_SHAPES,
    backends: Sequence[str] = ("torch", "reference"),
    threads: int | None = None,
    device: torch.device | str = "cpu",
    min_time_s: float = 1.0,
) -> list[ScanBenchRow]:
    """Time each backend on each shape and check it against the reference.

    ``threads`` is the intra-op thread count while timing (None: the current one); ``min_time_s`` is the
    least total time ``blocked_autorange`` spends per backend and shape.  Unknown backends, or ones that
    cannot run on ``device`` (``mamba_ssm`` off CUDA), raise before anything is timed.
    """
    for backend in backends:
        resolve_backend(backend, device)
    threads = torch.get_num_threads() if threads is None else threads
    rows: list[ScanBenchRow] = []
    for shape in shapes:
        args = shape.inputs(device)
        with torch.no_grad():
            expected = selective_scan(**args, backend="reference")  # type: ignore[arg-type]
        timings = {b: _time_ms(args, b, threads, min_time_s, shape.label) for b in backends}
        reference_ms = timings["reference"][0] if "reference" in timings else None
        for backend, (median_ms, iqr_ms, n) in timings.items():
            with torch.no_grad():
                y = selective_scan(**args, backend=backend)  # type: ignore[arg-type]
            rows.append(
                ScanBenchRow(
                    shape=shape.label,
                    B=shape.batch,
                    L=shape.length,
                    D=shape.channels,
                    N=shape.d_state,
                    backend=backend,
                    median_ms=median_ms,
                    iqr_ms=iqr_ms,
                    n=n,
                    max_abs_err=(y.float() - expected.float()).abs().max().item(),
                    speedup=None if reference_ms is None else reference_ms / median_ms,
                )
            )
    return rows
