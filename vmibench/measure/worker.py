"""Worker processes: a *zygote* that has imported torch, timm and the models, and forks one child per cell.

Run as ``python -m vmibench.measure.worker --zygote`` by :mod:`vmibench.measure.executor`.  Importing torch and
timm costs this machine 4-7 s per process; paid once per round by the zygote instead of once per cell, it no
longer dominates a sweep, while every cell still runs in a fresh process (its own allocator state, caches,
compiled kernels and memory peak) that has never run another model.  The zygote itself never runs a model:
CUDA and the OpenMP pool are first touched in the child.

Protocol (JSON lines): the executor writes ``{"cell": ..., "deadline_s": T}`` to the zygote's stdin; the zygote
answers ``{"event": "started", "pid": P}`` once the child exists, then ``{"event": "done", "pid": P,
"returncode": R, "result": {...} | null, "stderr_tail": "..."}``.  The child's result travels over a pipe, its
stdout and stderr over another (no temp files to leak).

Supervision: the zygote runs in its own process group (the executor starts it in a new session) and each child
in a group of its own.  Both ask the kernel for SIGKILL when their parent dies (``PR_SET_PDEATHSIG``, Linux; a
watchdog thread polling the parent pid elsewhere), so a runner killed with SIGKILL takes its workers with it.  A
child also arms ``alarm(deadline)``: it dies at its deadline even when nobody is left to kill it.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import math
import os
import selectors
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict
from typing import Any

import torch

from vmibench.errors import classify_failure, one_line
from vmibench.measure.workloads import (
    TASK_BACKBONE,
    TASK_CLASSIFY,
    Cell,
    MatmulPeak,
    MaxBatch,
    Memory,
    MixerOp,
    ModelForward,
    Settings,
    StreamTriad,
    TimerCrosscheck,
    WorkerResult,
)

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
STDERR_TAIL = 4000  # characters of a child's output kept for error_detail


# -- building and timing one workload (runs in the child) ---------------------------------------------------------


# Calls of a step before its CUDA graph is captured, on a side stream (lazy initialisations, cuDNN/cuBLAS
# workspaces and torch.compile must not happen inside the capture).
GRAPH_WARMUP_CALLS = 3


@contextlib.contextmanager
def _autocast(device: torch.device, dtype: str, cache: bool = True) -> Iterator[None]:
    if dtype == "fp32":
        yield
        return
    with torch.autocast(device_type=device.type, dtype=DTYPES[dtype], cache_enabled=cache):
        yield


def _build_model(workload: ModelForward | TimerCrosscheck, settings: Settings, device: torch.device, batch: int):
    import vmibench

    # A backbone is the model as timm's features_only builds it: stage maps from forward_intermediates, no head.
    features = {"features_only": True} if getattr(workload, "task", TASK_CLASSIFY) == TASK_BACKBONE else {}
    res = (workload.height, workload.width)
    model = vmibench.create_model(workload.model, res=res, **features).eval().to(device)
    x = torch.randn(batch, 3, workload.height, workload.width, device=device)
    if settings.channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    return model, x


def _step(model: torch.nn.Module, x: torch.Tensor, settings: Settings, device: torch.device) -> Callable[[], object]:
    runner: Callable[[torch.Tensor], object] = torch.compile(model) if settings.compile else model

    def step() -> object:
        # autocast's weight-cast cache would hand the graph tensors freed when the context exits
        with torch.inference_mode(), _autocast(device, settings.dtype, cache=not settings.cuda_graph):
            return runner(x)

    return _graphed(step, device) if settings.cuda_graph else step


def _graphed(step: Callable[[], object], device: torch.device) -> Callable[[], object]:
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


def _train_step(
    model: torch.nn.Module, x: torch.Tensor, settings: Settings, device: torch.device
) -> Callable[[], object]:
    """One training step: forward in train mode, cross-entropy against class 0 (any class count has one),
    backward, and a plain SGD update (no optimizer state, so memory is activations + gradients)."""
    model.train()
    runner: Callable[[torch.Tensor], object] = torch.compile(model) if settings.compile else model
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)
    target = torch.zeros(x.shape[0], dtype=torch.long, device=device)

    def step() -> object:
        with _autocast(device, settings.dtype):
            out = runner(x)
            logits = out[0] if isinstance(out, (tuple, list)) else out
            loss = torch.nn.functional.cross_entropy(logits.float(), target)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss

    return step


def _flops(model: torch.nn.Module, x: torch.Tensor) -> dict[str, Any]:
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


def _scan_backend(cell: Cell) -> str:
    from vmibench.ops import resolve_backend
    from vmibench.registry import resolve_info

    wl = cell.workload
    scans = wl.op == "selective_scan" if isinstance(wl, MixerOp) else resolve_info(wl.model).uses_scan  # type: ignore[union-attr]
    return resolve_backend(cell.settings.scan_backend, cell.settings.device) if scans else ""


def measure_cell(cell: Cell) -> WorkerResult:
    """Build the cell's workload, time it under its policy and probe its peak memory; failures are returned."""
    from vmibench.measure.memory import PeakMemory
    from vmibench.measure.timing import measure
    from vmibench.ops import set_default_backend

    wl, st = cell.workload, cell.settings
    if st.imports:
        from vmibench.user_models import import_models

        import_models(st.imports)  # the user's model file, as the planning process imported it
    torch.set_num_threads(st.threads)
    set_default_backend(st.scan_backend if st.scan_backend else "auto")
    device = torch.device(st.device)
    if isinstance(wl, TimerCrosscheck):
        return _crosscheck(wl, st, device)
    if isinstance(wl, MaxBatch):
        return _max_batch(wl, st, device)
    info: dict[str, Any] = {"timer": "cuda_event" if device.type == "cuda" else "perf_counter"}
    model = x = None
    try:
        # An op's own buffers (the matrix form's L x L mask) are part of its cost, so ops are built inside the
        # memory probe; a model's weights and input are not (peak_mem_mb = activations and workspaces).
        mem = PeakMemory(device)
        with mem if isinstance(wl, MixerOp) else contextlib.nullcontext():
            if isinstance(wl, MatmulPeak):
                a = torch.randn(wl.n, wl.n, device=device, dtype=DTYPES[st.dtype])
                b = torch.randn_like(a)

                def step() -> object:
                    return torch.mm(a, b)

            elif isinstance(wl, StreamTriad):
                a, b, c = (torch.rand(wl.n, device=device, dtype=DTYPES[st.dtype]) for _ in range(3))

                def step() -> object:
                    return torch.add(b, c, alpha=3.0, out=a)

            else:
                if isinstance(wl, MixerOp):
                    from vmibench.ops.mixers import build_op

                    model, x = build_op(wl.op, seq_len=wl.seq_len, dim=wl.dim, batch=wl.batch, device=device,
                                        scan_backend=st.scan_backend or "auto")  # fmt: skip
                else:
                    assert isinstance(wl, ModelForward)
                    model, x = _build_model(wl, st, device, wl.batch)
                train = isinstance(wl, ModelForward) and wl.mode == "train"
                step = (_train_step if train else _step)(model, x, st, device)
                info["params_m"] = sum(p.numel() for p in model.parameters()) / 1e6
                info["scan_backend"] = _scan_backend(cell)
            with contextlib.nullcontext() if isinstance(wl, MixerOp) else mem:
                stats = measure(step, device, st.policy)
    except Exception as exc:
        return WorkerResult(status=classify_failure(exc), error=one_line(exc),
                            error_detail=traceback.format_exc(limit=8), **info)  # fmt: skip
    assert mem.result is not None
    if st.count_flops and model is not None and x is not None:
        try:
            info.update(_flops(model, x))
        except Exception as exc:  # a FLOPs failure must not throw away a good timing
            info["flops_error"] = one_line(exc)
    return WorkerResult(status="ok", samples_ms=stats.samples_ms, warmup_iters=stats.warmup_iters,
                        warmup_s=stats.warmup_s, converged=stats.converged, memory=Memory(**asdict(mem.result)),
                        **info)  # fmt: skip


GIB = 1 << 30


def _limit_memory(wl: MaxBatch, device: torch.device) -> tuple[float, str, Callable[[], None]]:
    """Cap this worker's memory at ``wl.mem_limit_gb`` GiB (or CUDA's free memory); returns (GiB, method).

    CUDA: the caching allocator's per-process fraction of the device.  CPU: ``RLIMIT_AS`` at the worker's
    current address space plus the limit, so weights, inputs, activations (and, in training, gradients) share
    it; virtual reservations count too, so the CPU limit is conservative.  The third value lifts the limit
    again (CPU), so that the timing at the batch found runs like any latency cell.
    """
    if device.type == "cuda":
        free, total = torch.cuda.mem_get_info(device)
        limit = wl.mem_limit_gb * GIB if wl.mem_limit_gb else float(free)
        torch.cuda.set_per_process_memory_fraction(min(1.0, limit / total), device)
        return limit / GIB, "cuda_memory_fraction", lambda: None
    import resource

    from vmibench.measure.memory import virtual_bytes

    assert wl.mem_limit_gb is not None  # planning refuses a CPU search without a limit
    _set_mmap_threshold(1 << 20)
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = virtual_bytes() + int(wl.mem_limit_gb * GIB)
    resource.setrlimit(resource.RLIMIT_AS, (cap if hard == resource.RLIM_INFINITY else min(cap, hard), hard))

    def lift() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        _set_mmap_threshold(32 << 20)  # glibc's ceiling for its dynamic threshold, where a long run settles

    return wl.mem_limit_gb, "rlimit_as", lift


def _libc() -> Any:
    return ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def _set_mmap_threshold(size: int) -> None:
    """Blocks of ``size`` bytes and more straight from ``mmap`` and back to the system on free (glibc).

    During the search a small threshold makes memory a failed probe freed leave the address space that
    ``RLIMIT_AS`` counts; glibc otherwise raises its threshold after the first large free and serves later
    blocks up to 32 MB from a heap it does not give back, and the next probe fails early."""
    libc = _libc()
    if libc is None:
        return
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's mallopt parameters
    with contextlib.suppress(AttributeError, OSError):
        libc.mallopt(m_mmap_threshold, size)
        libc.mallopt(m_trim_threshold, size)


def _release_freed_memory() -> None:
    libc = _libc()
    if libc is not None:
        with contextlib.suppress(AttributeError, OSError):
            libc.malloc_trim(0)


def search_max_batch(fits: Callable[[int], bool], cap: int, tolerance: int = 8) -> int:
    """Largest batch ``fits`` accepts, up to ``cap``: powers of two until one fails, then bisection between the
    last that ran and the first that did not, to within ``1/tolerance`` of the answer.  0 when batch 1 fails."""
    good, bad, batch = 0, None, 1
    while batch <= cap:
        if not fits(batch):
            bad = batch
            break
        good, batch = batch, batch * 2
    if good == 0:
        return 0
    if bad is None and good < cap:  # every power of two up to the cap fitted: try the cap itself
        if fits(cap):
            return cap
        bad = cap
    while bad is not None and bad - good > max(1, good // tolerance):
        mid = (good + bad) // 2
        good, bad = (mid, bad) if fits(mid) else (good, mid)
    return good


def _max_batch(wl: MaxBatch, st: Settings, device: torch.device) -> WorkerResult:
    """Search the largest batch that runs within the limit (powers of two, then bisection), then time it."""
    import gc

    from vmibench.measure.memory import PeakMemory
    from vmibench.measure.timing import measure

    limit_gb, method, lift = _limit_memory(wl, device)
    forward = ModelForward(wl.model, wl.height, wl.width, 1, wl.mode)
    model, _ = _build_model(forward, st, device, 1)
    make = _train_step if wl.mode == "train" else _step
    probes: dict[int, str] = {}

    def build(batch: int) -> Callable[[], object]:
        x = torch.randn(batch, 3, wl.height, wl.width, device=device)
        if st.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return make(model, x, st, device)

    def fits(batch: int) -> bool:
        step = None
        try:
            step = build(batch)
            step()  # one call reaches the peak: a training step's gradients are allocated in its backward
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            probes[batch] = "ok"
        except Exception as exc:
            if classify_failure(exc) != "oom":
                raise
            probes[batch] = "oom"
        finally:
            del step
            model.zero_grad(set_to_none=True)
            gc.collect()
            if device.type == "cuda":
                torch.cuda.empty_cache()
            else:
                _release_freed_memory()
        return probes[batch] == "ok"

    info: dict[str, Any] = {"timer": "cuda_event" if device.type == "cuda" else "perf_counter",
                            "params_m": sum(p.numel() for p in model.parameters()) / 1e6}  # fmt: skip
    extra: dict[str, Any] = {"mem_limit_gb": limit_gb, "mem_limit_method": method, "probes": probes}
    good = search_max_batch(fits, wl.batch_cap)
    if good == 0:
        return WorkerResult(status="oom", error=f"batch 1 does not fit in {limit_gb:.3g} GiB ({method})",
                            extra=extra, **info)  # fmt: skip
    extra["max_batch"] = good
    lift()
    step = build(good)
    with PeakMemory(device) as mem:
        stats = measure(step, device, st.policy)
    assert mem.result is not None
    return WorkerResult(status="ok", samples_ms=stats.samples_ms, warmup_iters=stats.warmup_iters,
                        warmup_s=stats.warmup_s, converged=stats.converged, memory=Memory(**asdict(mem.result)),
                        extra=extra, **info)  # fmt: skip


def _crosscheck(wl: TimerCrosscheck, st: Settings, device: torch.device) -> WorkerResult:
    """vmibench's loop and ``Timer.blocked_autorange`` alternately on one model instance, in this one process.

    Alternating inside one process compares the two timers on the same allocation, threads and caches; the
    differences between processes (which on a shared machine can exceed 20%) hit both equally.
    """
    from torch.utils.benchmark import Timer

    from vmibench.measure.timing import measure

    model, x = _build_model(wl, st, device, 1)
    step = _step(model, x, st, device)
    ours, theirs = [], []
    for _ in range(wl.alternations):
        ours.append(measure(step, device, st.policy).median_ms)
        m = Timer(stmt="step()", globals={"step": step}, num_threads=st.threads).blocked_autorange(
            min_run_time=wl.timer_min_run_time
        )
        theirs.append(m.median * 1e3)
    return WorkerResult(status="ok", timer="perf_counter vs blocked_autorange",
                        extra={"ours_ms": ours, "timer_ms": theirs})  # fmt: skip


# -- supervision helpers ------------------------------------------------------------------------------------------


def die_with_parent(parent_pid: int) -> None:
    """Get SIGKILL when the parent process dies (Linux prctl; elsewhere a watchdog thread polls the parent pid)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            pr_set_pdeathsig = 1
            if libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0) == 0:
                if os.getppid() != parent_pid:  # the parent died before prctl took effect
                    os._exit(1)
                return

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _child(cell: Cell, deadline_s: float, result_fd: int, out_fd: int, parent_pid: int) -> None:
    """Body of a forked child: never returns."""
    code = 0
    try:
        os.setpgid(0, 0)
        die_with_parent(parent_pid)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.alarm(max(1, math.ceil(deadline_s)))  # default SIGALRM action: terminate, runner or not
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(out_fd, 1)
        os.dup2(out_fd, 2)
        sys.stdout = os.fdopen(1, "w", buffering=1)
        sys.stderr = os.fdopen(2, "w", buffering=1)
        start = time.perf_counter()
        try:
            result = measure_cell(cell)
        except Exception as exc:
            result = WorkerResult(
                status=classify_failure(exc), error=one_line(exc), error_detail=traceback.format_exc()
            )
        from dataclasses import replace

        from vmibench.env import capture

        result = replace(result, interop_threads=torch.get_num_interop_threads(), wall_s=time.perf_counter() - start,
                         pid=os.getpid(), env=capture(cell.settings.device).as_dict())  # fmt: skip
        data = result.to_json().encode()
        view = memoryview(data)
        while view:
            view = view[os.write(result_fd, view) :]
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _collect(result_fd: int, out_fd: int) -> tuple[bytes, bytes]:
    """Read a child's result pipe and output pipe until both close (together, so neither pipe fills up)."""
    sel = selectors.DefaultSelector()
    chunks: dict[int, list[bytes]] = {result_fd: [], out_fd: []}
    for fd in chunks:
        sel.register(fd, selectors.EVENT_READ)
    open_fds = set(chunks)
    while open_fds:
        for key, _ in sel.select():
            data = os.read(key.fd, 65536)
            if data:
                chunks[key.fd].append(data)
                if key.fd == out_fd and sum(map(len, chunks[out_fd])) > 4 * STDERR_TAIL:
                    tail = b"".join(chunks[out_fd])[-STDERR_TAIL:]
                    chunks[out_fd] = [tail]
            else:
                sel.unregister(key.fd)
                open_fds.discard(key.fd)
    sel.close()
    return b"".join(chunks[result_fd]), b"".join(chunks[out_fd])[-STDERR_TAIL:]


def _send(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def zygote(preload: bool = True) -> int:
    """Serve cells from stdin until it closes: fork a child per cell, report its pid, then its result."""
    die_with_parent(os.getppid())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the runner decides what an interrupt means
    if preload:
        import vmibench
        import vmibench.measure.memory
        import vmibench.ops.mixers

        with contextlib.suppress(ImportError):
            import vmibench.flops  # noqa: F401
    _send({"event": "ready", "pid": os.getpid()})
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        cell = Cell.from_dict(request["cell"])
        result_r, result_w = os.pipe()
        out_r, out_w = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            os.close(result_r)
            os.close(out_r)
            _child(cell, float(request["deadline_s"]), result_w, out_w, os.getppid())
        os.close(result_w)
        os.close(out_w)
        _send({"event": "started", "pid": pid})
        raw, out = _collect(result_r, out_r)
        os.close(result_r)
        os.close(out_r)
        _, status = os.waitpid(pid, 0)
        returncode = os.waitstatus_to_exitcode(status)
        result = json.loads(raw) if raw else None
        _send({"event": "done", "pid": pid, "returncode": returncode, "result": result,
               "stderr_tail": out.decode(errors="replace")})  # fmt: skip
    return 0


if __name__ == "__main__":
    if sys.argv[1:] != ["--zygote"]:
        print("usage: python -m vmibench.measure.worker --zygote  (started by vmibench's runner)", file=sys.stderr)
        sys.exit(2)
    sys.exit(zygote())
