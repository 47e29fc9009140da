"""What a worker's child runs, the parts the kinds share: a model's forward or training step, its CUDA graph, its
FLOPs count, and timing one step under the memory probe into a :class:`WorkerResult`.

Imported by the kinds' :meth:`~vmibench.measure.kinds.registry.Workload.run` inside the child only (torch is
imported here, at module level); the zygote preloads it.
"""

from __future__ import annotations

import contextlib
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from vmibench.errors import classify_failure, one_line
from vmibench.measure.cells import Memory, Settings, WorkerResult
from vmibench.measure.memory import PeakMemory
from vmibench.measure.timing import TimingStats, time_alternating, time_calls

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}

# Calls of a step before its CUDA graph is captured, on a side stream (lazy initialisations, cuDNN/cuBLAS
# workspaces and torch.compile must not happen inside the capture).
GRAPH_WARMUP_CALLS = 3


@dataclass
class Step:
    """One callable to time; ``model`` and ``x`` are counted (parameters, FLOPs) when given."""

    call: Callable[[], object]
    model: torch.nn.Module | None = None
    x: torch.Tensor | None = None
    scan_backend: str = ""


def timer_name(device: torch.device) -> str:
    return "cuda_event" if device.type == "cuda" else "perf_counter"


def time_step(
    build: Callable[[], Step], settings: Settings, device: torch.device, *, build_in_probe: bool = False
) -> WorkerResult:
    """Build a step, time it under ``settings.policy`` inside the memory probe, count its model's FLOPs.

    ``build_in_probe``: the step's own buffers count in its peak memory (an op's L x L mask); otherwise only what
    the calls allocate does (a model's weights and input do not: peak_mem_mb = activations and workspaces).
    Failures are returned as results."""
    info: dict[str, Any] = {"timer": timer_name(device)}
    step = None
    try:
        mem = PeakMemory(device)
        with mem if build_in_probe else contextlib.nullcontext():
            step = build()
            if step.model is not None:
                info["params_m"] = params_m(step.model)
                info["scan_backend"] = step.scan_backend
            with contextlib.nullcontext() if build_in_probe else mem:
                stats = time_calls(step.call, device, settings.policy)
    except Exception as exc:
        return WorkerResult(status=classify_failure(exc), error=one_line(exc),
                            error_detail=traceback.format_exc(limit=8), **info)  # fmt: skip
    if settings.count_flops and step.model is not None and step.x is not None:
        try:
            info.update(count(step.model, step.x))
        except Exception as exc:  # a FLOPs failure must not throw away a good timing
            info["flops_error"] = one_line(exc)
    return ok_result(stats, mem, **info)


def time_interleaved(builds: Sequence[Callable[[], Step]], settings: Settings, device: torch.device) -> WorkerResult:
    """Build several steps in this process, then time them in strict alternation (:func:`time_alternating`): the
    samples are in call order, call ``i`` of step ``i % len(builds)``.  No memory probe (the steps share the
    process's memory) and no FLOPs count (each step's own cell has it).  Failures are returned as results."""
    info: dict[str, Any] = {"timer": timer_name(device)}
    try:
        built = [build() for build in builds]
        info["scan_backend"] = next((s.scan_backend for s in built if s.scan_backend), "")
        stats = time_alternating([s.call for s in built], device, settings.policy)
    except Exception as exc:
        return WorkerResult(status=classify_failure(exc), error=one_line(exc),
                            error_detail=traceback.format_exc(limit=8), **info)  # fmt: skip
    return WorkerResult(status="ok", samples_ms=stats.samples_ms, warmup_iters=stats.warmup_iters,
                        warmup_s=stats.warmup_s, converged=stats.converged, **info)  # fmt: skip


def ok_result(stats: TimingStats, mem: PeakMemory, **info: Any) -> WorkerResult:
    """The result of a step timed under the memory probe ``mem``."""
    assert mem.result is not None
    return WorkerResult(status="ok", samples_ms=stats.samples_ms, warmup_iters=stats.warmup_iters,
                        warmup_s=stats.warmup_s, converged=stats.converged, memory=Memory(**asdict(mem.result)),
                        **info)  # fmt: skip


def params_m(model: torch.nn.Module) -> float:
    return sum(p.numel() for p in model.parameters()) / 1e6


@contextlib.contextmanager
def autocast(device: torch.device, dtype: str, cache: bool = True) -> Iterator[None]:
    if dtype == "fp32":
        yield
        return
    with torch.autocast(device_type=device.type, dtype=DTYPES[dtype], cache_enabled=cache):
        yield


def build_model(
    name: str, height: int, width: int, settings: Settings, device: torch.device, batch: int, *, features: bool
) -> tuple[torch.nn.Module, torch.Tensor]:
    """A registered (or timm) model in eval mode on ``device`` and a random batch for it; ``features``: the model
    as timm's features_only builds it (stage maps from forward_intermediates, no head)."""
    import vmibench

    model = vmibench.create_model(name, res=(height, width), **({"features_only": True} if features else {}))
    model = model.eval().to(device)
    x = model_input(batch, height, width, settings, device)
    if settings.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model, x


def model_input(batch: int, height: int, width: int, settings: Settings, device: torch.device) -> torch.Tensor:
    """A random ``batch x 3 x height x width`` input in the settings' memory format."""
    x = torch.randn(batch, 3, height, width, device=device)
    return x.contiguous(memory_format=torch.channels_last) if settings.channels_last else x


def infer_step(
    model: torch.nn.Module, x: torch.Tensor, settings: Settings, device: torch.device
) -> Callable[[], object]:
    """One forward under inference mode and the settings' autocast (compiled, or a replayed CUDA graph)."""
    call: Callable[[torch.Tensor], object] = torch.compile(model) if settings.compile else model

    def step() -> object:
        # autocast's weight-cast cache would hand the graph tensors freed when the context exits
        with torch.inference_mode(), autocast(device, settings.dtype, cache=not settings.cuda_graph):
            return call(x)

    return graphed(step, device) if settings.cuda_graph else step


def train_step(
    model: torch.nn.Module, x: torch.Tensor, settings: Settings, device: torch.device
) -> Callable[[], object]:
    """One training step: forward in train mode, cross-entropy against class 0 (any class count has one),
    backward, and a plain SGD update (no optimizer state, so memory is activations + gradients)."""
    model.train()
    call: Callable[[torch.Tensor], object] = torch.compile(model) if settings.compile else model
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)
    target = torch.zeros(x.shape[0], dtype=torch.long, device=device)

    def step() -> object:
        with autocast(device, settings.dtype):
            out = call(x)
            logits = out[0] if isinstance(out, (tuple, list)) else out
            loss = torch.nn.functional.cross_entropy(logits.float(), target)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss

    return step


def graphed(step: Callable[[], object], device: torch.device) -> Callable[[], object]:
    """``step`` as the replay of a CUDA graph captured on its first call (after GRAPH_WARMUP_CALLS warm-up calls
    on a side stream): the capture runs inside the timer's warm-up and the memory probe, so the graph's memory
    pool counts in the cell's peak memory."""
    graph: list[torch.cuda.CUDAGraph] = []

    def replay() -> object:
        if not graph:
            side = torch.cuda.Stream(device)
            side.wait_stream(torch.cuda.current_stream(device))
            with torch.cuda.stream(side):
                for _ in range(GRAPH_WARMUP_CALLS):
                    step()
            torch.cuda.current_stream(device).wait_stream(side)
            captured = torch.cuda.CUDAGraph()
            with torch.cuda.graph(captured):
                step()
            graph.append(captured)
        graph[0].replay()
        return None

    return replay


def count(model: torch.nn.Module, x: torch.Tensor) -> dict[str, Any]:
    """Per-sample GMACs and bytes moved (fp32, the first sample of ``x``); GMACs are absent where fvcore is not
    installed (bare GPU image), bytes moved need only torch."""
    from vmibench.bytes_moved import count_bytes

    out: dict[str, Any] = {"gbytes_moved": count_bytes(model, x[:1].float()).gbytes}
    try:
        from vmibench.flops import count_flops
    except ImportError:
        return out
    fc = count_flops(model, x[:1].float(), cross_check=False)
    return {**out, "gmacs": fc.gmacs, "gflops": fc.gflops}


def scan_backend(settings: Settings, scans: bool) -> str:
    """The selective-scan backend this cell's settings run (resolved for its device), "" when nothing scans."""
    from vmibench.ops import resolve_backend

    return resolve_backend(settings.scan_backend, settings.device) if scans else ""
