"""Worker process: measures exactly one cell and writes one JSON result.

Run as ``python -m vmibench.measure.worker SPEC.json RESULT.json`` by :mod:`vmibench.measure.runner`; a fresh
process per cell keeps allocator state, caches, compiled kernels and memory peaks of one model away from the
next.  The spec is a :class:`CellSpec` as JSON.  Thread-count environment variables are set by the runner before
this process starts (OpenMP reads them once).
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from vmibench.errors import classify_failure, one_line
from vmibench.measure.timing import TimingPolicy

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class CellSpec:
    """What one worker measures."""

    model: str
    height: int
    width: int
    batch: int = 1
    device: str = "cpu"
    dtype: str = "fp32"
    threads: int = 1
    channels_last: bool = False
    compile: bool = False
    scan_backend: str = "auto"
    policy: TimingPolicy = field(default_factory=TimingPolicy)
    count_flops: bool = True
    # "latency": a registered model (vmibench's engine); "op": a token mixer of the ops sweep; "matmul": the
    # dense-matmul peak; "crosscheck": vmibench's loop and torch.utils.benchmark alternately on one model.
    mode: str = "latency"
    timer_min_run_time: float = 2.0
    rounds: int = 3
    processes: int = 1  # worker processes per cell, samples pooled (read by the runner, not the worker)
    op: str = ""
    seq_len: int = 0
    dim: int = 0
    matmul_n: int = 0

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> CellSpec:
        data = json.loads(text)
        data["policy"] = TimingPolicy(**data["policy"])
        return cls(**data)


@contextlib.contextmanager
def _autocast(device: torch.device, dtype: str) -> Iterator[None]:
    if dtype == "fp32":
        yield
        return
    with torch.autocast(device_type=device.type, dtype=DTYPES[dtype]):
        yield


def _build(spec: CellSpec, device: torch.device) -> tuple[torch.nn.Module, torch.Tensor, Callable[[], object]]:
    """The module, its input and the timed step for a model (``latency``/``timer``) or a mixer (``op``) cell."""
    if spec.mode == "op":
        from vmibench.ops.mixers import build_op

        model, x = build_op(
            spec.op, seq_len=spec.seq_len, dim=spec.dim, batch=spec.batch, device=device, scan_backend=spec.scan_backend
        )
    else:
        import vmibench

        model = vmibench.create_model(spec.model, res=(spec.height, spec.width)).eval().to(device)
        x = torch.randn(spec.batch, 3, spec.height, spec.width, device=device)
        if spec.channels_last:
            model = model.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
    runner: Callable[[torch.Tensor], object] = torch.compile(model) if spec.compile else model

    def step() -> object:
        with torch.inference_mode(), _autocast(device, spec.dtype):
            return runner(x)

    return model, x, step


def _build_matmul(spec: CellSpec, device: torch.device) -> Callable[[], object]:
    a = torch.randn(spec.matmul_n, spec.matmul_n, device=device, dtype=DTYPES[spec.dtype])
    b = torch.randn_like(a)

    def step() -> object:
        return torch.mm(a, b)

    return step


def cell_scan_backend(spec: CellSpec) -> str:
    """The concrete selective-scan backend a cell runs ("" when its model or op has no scan)."""
    from vmibench.ops import resolve_backend
    from vmibench.registry import resolve

    scans = spec.op == "selective_scan" if spec.mode == "op" else resolve(spec.model).info.uses_scan
    return resolve_backend(spec.scan_backend, spec.device) if scans else ""


def op_row_label(op: str, scan_backend: str) -> str:
    """Name an ops row is stored under: the backend is part of the selective scan's name."""
    return f"{op}[{scan_backend}]" if scan_backend else op


def _flops(model: torch.nn.Module, x: torch.Tensor) -> dict[str, Any]:
    """Per-sample GMACs (fp32, the first sample of ``x``); empty where fvcore is not installed (bare GPU image)."""
    try:
        from vmibench.flops import count_flops
    except ImportError:
        return {}
    fc = count_flops(model, x[:1].float())
    return {"gmacs": fc.gmacs, "gflops": fc.gflops}


def run_latency(spec: CellSpec) -> dict[str, Any]:
    """Measure latency/throughput/peak memory of one model, mixer or matmul cell; failures are returned."""
    from vmibench.measure.memory import PeakMemory
    from vmibench.measure.timing import measure
    from vmibench.ops import set_default_backend

    torch.set_num_threads(spec.threads)
    set_default_backend(spec.scan_backend)
    device = torch.device(spec.device)
    result: dict[str, Any] = {"timer": "cuda_event" if device.type == "cuda" else "perf_counter"}
    model = x = None
    try:
        # An op's own buffers (the matrix form's L x L mask) are part of its cost, so ops are built inside the
        # memory probe; a model's weights and input are not (peak_mem_mb = activations and workspaces).
        mem = PeakMemory(device)
        with mem if spec.mode == "op" else contextlib.nullcontext():
            if spec.mode == "matmul":
                step = _build_matmul(spec, device)
            else:
                model, x, step = _build(spec, device)
                result["params_m"] = sum(p.numel() for p in model.parameters()) / 1e6
                result["scan_backend"] = cell_scan_backend(spec)
            with contextlib.nullcontext() if spec.mode == "op" else mem:
                stats = measure(step, device, spec.policy)
    except Exception as exc:
        result.update(status=classify_failure(exc), error=one_line(exc), traceback=traceback.format_exc(limit=8))
        return result
    assert mem.result is not None
    result.update(status="ok", stats=asdict(stats), memory=asdict(mem.result))
    if spec.count_flops and model is not None and x is not None:
        try:
            result.update(_flops(model, x))
        except Exception as exc:  # a FLOPs failure must not throw away a good timing
            result["flops_error"] = one_line(exc)
    return result


def run_crosscheck(spec: CellSpec) -> dict[str, Any]:
    """Time one model alternately with vmibench's loop and ``Timer.blocked_autorange``, in this one process.

    Alternating inside one process compares the two timers on the same allocation, threads and caches; the
    differences between processes (which on a shared machine can exceed 20%) hit both equally.
    """
    from torch.utils.benchmark import Timer

    from vmibench.measure.timing import measure

    torch.set_num_threads(spec.threads)
    device = torch.device(spec.device)
    _model, _x, step = _build(spec, device)
    ours, theirs = [], []
    for _ in range(spec.rounds):
        ours.append(measure(step, device, spec.policy).median_ms)
        m = Timer(stmt="step()", globals={"step": step}, num_threads=spec.threads).blocked_autorange(
            min_run_time=spec.timer_min_run_time
        )
        theirs.append(m.median * 1e3)
    return {"status": "ok", "timer": "perf_counter vs blocked_autorange", "ours_ms": ours, "timer_ms": theirs}


def main(argv: list[str]) -> int:
    spec_path, result_path = argv
    with open(spec_path) as f:
        spec = CellSpec.from_json(f.read())
    start = time.perf_counter()
    result = run_crosscheck(spec) if spec.mode == "crosscheck" else run_latency(spec)
    result["interop_threads"] = torch.get_num_interop_threads()
    result["wall_s"] = time.perf_counter() - start
    from vmibench.env import capture

    result["env"] = capture(spec.device).as_dict()
    with open(result_path, "w") as f:
        json.dump(result, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
