"""Executors run one cell in a supervised worker process and always hand back a :class:`WorkerResult`.

:class:`LocalExecutor` keeps one *zygote* (see :mod:`vmibench.measure.worker`) per round and asks it to fork a
child per cell.  It enforces the cell's deadline (kills the child's process group), turns every way a child can
die into a result row (timeout, a signal, an interpreter crash), and kills the zygote and any child when it is
closed.  The interface (``run``, ``new_round``, ``close``) is what a cluster executor implements too.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from vmibench.measure.cells import Cell, WorkerResult
from vmibench.records import STATUS_CRASHED, STATUS_OOM, STATUS_TIMEOUT

ZYGOTE_START_TIMEOUT_S = 300.0  # importing torch + timm + models; minutes on a loaded machine
KILL_GRACE_S = 5.0  # past its deadline a child has this long to die from its own alarm before we kill it


class Executor(Protocol):
    """Runs cells; ``new_round`` lets the next cells run in freshly started worker processes."""

    def run(self, cell: Cell, timeout_s: float) -> WorkerResult: ...

    def new_round(self) -> None: ...

    def close(self) -> None: ...


def worker_env(threads: int) -> dict[str, str]:
    """Environment of a worker: thread counts fixed before OpenMP/MKL initialise, library chatter off."""
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(threads)
    env.setdefault("PYTHONWARNINGS", "ignore")
    # the worker must import this very checkout, installed or not
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
    return env


def read_memory_events() -> str | None:
    """This process's cgroup v2 ``memory.events`` text, or None where there is none or it is unreadable."""
    try:
        rel = next(ln.split("::", 1)[1] for ln in Path("/proc/self/cgroup").read_text().splitlines() if "::" in ln)
        return Path("/sys/fs/cgroup", rel.lstrip("/"), "memory.events").read_text()
    except (OSError, StopIteration):
        return None


def read_kernel_log() -> str:
    """The kernel log (``dmesg``) where this user may read it, else an empty string."""
    try:
        return subprocess.run(["dmesg"], capture_output=True, text=True, timeout=3).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def oom_kill_count(memory_events: str | None) -> int | None:
    """The ``oom_kill`` counter of a cgroup v2 ``memory.events`` text (None: no text, or no such line)."""
    match = re.search(r"^oom_kill (\d+)$", memory_events or "", re.MULTILINE)
    return int(match.group(1)) if match else None


def kernel_log_names_oom_kill(log: str, pid: int) -> bool:
    """True when kernel-log text records the OOM killer taking ``pid``: its ``Killed process PID (comm)`` line
    (global or memory-cgroup OOM, any kernel version) or its ``oom-kill:...,pid=PID,...`` summary line."""
    killed = re.compile(rf"\bKilled process {pid} \(")
    summary = re.compile(rf"\boom-kill:\S*[:,]pid={pid}(?:,|\s|$)")
    return any(killed.search(line) or summary.search(line) for line in log.splitlines())


def cgroup_oom_kills() -> int | None:
    """The kernel's count of OOM kills in this process's cgroup (cgroup v2), or None where unreadable."""
    return oom_kill_count(read_memory_events())


def describe_death(returncode: int, stderr_tail: str, pid: int | None, oom_before: int | None) -> tuple[str, str]:
    """(status, one-line error) for a child that exited without a result.

    A SIGKILL is an OOM kill only when the cgroup's ``oom_kill`` counter rose or the kernel log names the pid.
    """
    if returncode == -signal.SIGALRM:
        return STATUS_TIMEOUT, "worker reached its deadline (--cell-timeout) and killed itself"
    if returncode < 0:
        sig = signal.Signals(-returncode).name
        if sig == "SIGKILL":
            after = cgroup_oom_kills()
            oom = (oom_before is not None and after is not None and after > oom_before) or (
                pid is not None and kernel_log_names_oom_kill(read_kernel_log(), pid)
            )
            if oom:
                return STATUS_OOM, "worker killed by SIGKILL: the kernel's out-of-memory killer (cgroup/kernel log)"
        return STATUS_CRASHED, f"worker killed by {sig}"
    lines = [ln for ln in stderr_tail.strip().splitlines() if ln.strip()]
    return STATUS_CRASHED, f"worker exited with status {returncode}: {lines[-1][:300] if lines else 'no message'}"


class ZygoteDied(RuntimeError):
    """The zygote process ended or stopped answering."""


class _Zygote:
    """One zygote process: a line protocol over its stdin/stdout, its stderr kept in a ring buffer."""

    def __init__(self, threads: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "vmibench.measure.worker", "--zygote"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=worker_env(threads),
            start_new_session=True,  # its own process group: killpg reaches it and nothing else
        )
        self.child: int | None = None
        self._buf = b""
        self._stderr: collections.deque[str] = collections.deque(maxlen=50)
        threading.Thread(target=self._drain_stderr, daemon=True).start()

    def wait_ready(self) -> None:
        """Wait for the zygote's imports; :class:`ZygoteDied` if it fails to start."""
        ready = self.read(time.monotonic() + ZYGOTE_START_TIMEOUT_S)
        if ready is None or ready.get("event") != "ready":
            raise ZygoteDied(f"worker zygote did not start: {self.stderr_tail() or 'no message'}")

    def _drain_stderr(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            self._stderr.append(raw.decode(errors="replace").rstrip())

    def stderr_tail(self) -> str:
        return "\n".join(self._stderr)

    def send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write((json.dumps(message) + "\n").encode())
            self.proc.stdin.flush()
        except OSError as exc:
            raise ZygoteDied(f"worker zygote is gone ({exc})") from None

    def read(self, deadline: float) -> dict[str, Any] | None:
        """Next message, or None at ``deadline``; :class:`ZygoteDied` at end of stream."""
        import select

        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], min(left, 1.0))
            if ready:
                data = os.read(fd, 65536)
                if not data:
                    raise ZygoteDied(f"worker zygote exited: {self.stderr_tail()[-300:] or 'no message'}")
                self._buf += data
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line)

    def kill_child(self) -> None:
        if self.child is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.child, signal.SIGKILL)

    def kill(self) -> None:
        """Kill the running child's group and the zygote's group, and reap the zygote."""
        self.kill_child()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            self.proc.wait(timeout=10)
        for stream in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(Exception):
                stream.close()  # type: ignore[union-attr]


class LocalExecutor:
    """Cells in forked children of a zygote on this machine; a fresh zygote for every round."""

    def __init__(self, threads: int = 1) -> None:
        self.threads = threads
        self._zygote: _Zygote | None = None

    def new_round(self) -> None:
        """Start the next cells from a new zygote (a new process image: fresh address-space layout)."""
        self.close()

    def close(self) -> None:
        if self._zygote is not None:
            self._zygote.kill()
            self._zygote = None

    def kill(self) -> None:
        self.close()

    def run(self, cell: Cell, timeout_s: float) -> WorkerResult:
        """Run ``cell`` in a forked child, killed at ``timeout_s``; every outcome is a result."""
        try:
            if self._zygote is None:
                # kept before it is ready, so that an interrupt while it imports still kills it (close())
                self._zygote = _Zygote(self.threads)
                self._zygote.wait_ready()
            return self._run(self._zygote, cell, timeout_s)
        except ZygoteDied as exc:
            self.close()
            return WorkerResult(status=STATUS_CRASHED, error=str(exc).splitlines()[0][:300], error_detail=str(exc))

    def _run(self, zyg: _Zygote, cell: Cell, timeout_s: float) -> WorkerResult:
        oom_before = cgroup_oom_kills()
        zyg.send({"cell": cell.to_dict(), "deadline_s": timeout_s})
        started = zyg.read(time.monotonic() + 60)
        if started is None:
            raise ZygoteDied("worker zygote did not fork a child within 60 s")
        zyg.child = int(started["pid"])
        deadline = time.monotonic() + timeout_s + KILL_GRACE_S
        killed = False
        done = zyg.read(deadline)
        if done is None:  # the child outlived its own alarm: kill its group, then collect what the zygote says
            zyg.kill_child()
            killed = True
            done = zyg.read(time.monotonic() + 30)
            if done is None:
                raise ZygoteDied("worker zygote did not reap a killed child")
        zyg.child = None
        tail = done.get("stderr_tail", "")
        if done.get("result") is not None:
            result = WorkerResult.from_dict(done["result"])
            if not result.ok and tail.strip():
                result = replace(result, error_detail=f"{result.error_detail}\n--- worker output (tail) ---\n{tail}")
            return result
        if killed:
            return WorkerResult(status=STATUS_TIMEOUT, error=f"cell exceeded its budget of {timeout_s:.0f}s "
                                "(--cell-timeout)", error_detail=tail)  # fmt: skip
        status, error = describe_death(int(done["returncode"]), tail, zyg.child or int(started["pid"]), oom_before)
        if status == STATUS_TIMEOUT:
            error = f"cell exceeded its budget of {timeout_s:.0f}s (--cell-timeout)"
        return WorkerResult(status=status, error=error, error_detail=tail)
