"""Worker processes: a *zygote* that has imported torch, timm and the models, and forks one child per cell.

Run as ``python -m vmibench.measure.worker --zygote`` by :mod:`vmibench.measure.executor`.  Importing torch and
timm costs this machine 4-7 s per process; paid once per round by the zygote instead of once per cell, it no
longer dominates a sweep, while every cell still runs in a fresh process (its own allocator state, caches,
compiled kernels and memory peak) that has never run another model.  The zygote itself never runs a model:
CUDA and the OpenMP pool are first touched in the child.

Protocol (JSON lines): the executor writes ``{"cell": ..., "deadline_s": T}`` to the zygote's stdin; the zygote
answers ``{"event": "started", "pid": P}`` once the child exists, then ``{"event": "done", "pid": P,
"returncode": R, "result": {...} | null, "stderr_tail": "..."}``.  The child's result travels over a pipe, its
stdout and stderr over another (no temp files to leak).  The child reads the cell (after the modules its settings
import, where a kind may be registered) and runs its kind's child step: this module knows no kind.

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
from collections.abc import Sequence
from typing import Any

import torch

from vmibench.errors import classify_failure, one_line
from vmibench.measure.cells import Cell, WorkerResult

STDERR_TAIL = 4000  # characters of a child's output kept for error_detail


# -- one cell (runs in the child) ------------------------------------------------------------------------------


def measure_cell(cell: Cell) -> WorkerResult:
    """Apply the cell's settings to this process (imports, threads, scan backend), then run its kind's child step
    (:meth:`vmibench.measure.cells.Workload.run`); failures are returned."""
    from vmibench.ops import set_default_backend

    st = cell.settings
    _import(st.imports)  # the user's model file, as the planning process imported it
    torch.set_num_threads(st.threads)
    set_default_backend(st.scan_backend if st.scan_backend else "auto")
    return cell.workload.run(st, torch.device(st.device))


def _read_cell(data: dict[str, Any]) -> Cell:
    """A cell from its JSON form; the modules its settings import come first, since a kind may be registered there
    (a workload kind defined outside vmibench, as a model is)."""
    _import(data["settings"].get("imports", ()))
    return Cell.from_dict(data)


def _import(specs: Sequence[str]) -> None:
    if specs:
        from vmibench.user_models import import_models

        import_models(specs)


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


def _child(data: dict[str, Any], deadline_s: float, result_fd: int, out_fd: int, parent_pid: int) -> None:
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
            result = measure_cell(_read_cell(data))
        except Exception as exc:
            result = WorkerResult(
                status=classify_failure(exc), error=one_line(exc), error_detail=traceback.format_exc()
            )
        from dataclasses import replace

        from vmibench.env import capture

        result = replace(result, interop_threads=torch.get_num_interop_threads(), wall_s=time.perf_counter() - start,
                         pid=os.getpid(), env=capture(data["settings"]["device"]).as_dict())  # fmt: skip
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
        import vmibench.measure.kinds
        import vmibench.measure.memory
        import vmibench.measure.steps
        import vmibench.ops.mixers

        with contextlib.suppress(ImportError):
            import vmibench.flops  # noqa: F401
    _send({"event": "ready", "pid": os.getpid()})
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        result_r, result_w = os.pipe()
        out_r, out_w = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            os.close(result_r)
            os.close(out_r)
            _child(request["cell"], float(request["deadline_s"]), result_w, out_w, os.getppid())
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
