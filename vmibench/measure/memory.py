"""Peak memory of the forward passes of one cell (the worker process measures only its own cell).

``peak_mem_mb`` means the same on both devices: how far memory rose above what was held before the first
forward (model weights and input already allocated), i.e. activations and workspaces.

* CUDA (``mem_method = "cuda_max_allocated"``): ``torch.cuda.max_memory_allocated`` after a reset, minus the
  bytes allocated before; the absolute peak and the allocator's reserved peak are kept too.
* CPU (``mem_method = "rss_hwm"``): the kernel's resident-set high-water mark (VmHWM), reset to the current RSS
  through ``/proc/self/clear_refs`` before the first forward, minus the RSS then.  Where that reset is not
  allowed, a sampling thread polls RSS every millisecond (``"rss_sampled"``; it can miss short spikes).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path

import torch

MB = 1024 * 1024


@dataclass(frozen=True)
class MemoryPeak:
    peak_mb: float  # growth above the baseline during the forwards
    total_mb: float  # absolute peak (RSS or allocated bytes)
    reserved_mb: float | None  # CUDA caching-allocator reserved peak
    method: str


def _status_kb(field: str) -> int:
    text = Path("/proc/self/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    if match is None:
        raise OSError(f"{field} not in /proc/self/status")
    return int(match.group(1))


def virtual_bytes() -> int:
    """This process's virtual address-space size (VmSize): what ``RLIMIT_AS`` limits."""
    return _status_kb("VmSize") * 1024


class _RssSampler(threading.Thread):
    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak_kb = _status_kb("VmRSS")
        self._stop = threading.Event()

    def run(self) -> None:
        while not self._stop.wait(0.001):
            self.peak_kb = max(self.peak_kb, _status_kb("VmRSS"))

    def stop(self) -> int:
        self._stop.set()
        self.join()
        return max(self.peak_kb, _status_kb("VmRSS"))


class PeakMemory:
    """Context manager measuring the peak memory growth of the code inside it on ``device``."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.result: MemoryPeak | None = None
        self._sampler: _RssSampler | None = None

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
            return self
        self._base = _status_kb("VmRSS")
        try:
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
            self._method = "rss_hwm"
        except OSError:
            self._method = "rss_sampled"
            self._sampler = _RssSampler()
            self._sampler.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device)
            self.result = MemoryPeak(
                peak_mb=(peak - self._base) / MB,
                total_mb=peak / MB,
                reserved_mb=torch.cuda.max_memory_reserved(self.device) / MB,
                method="cuda_max_allocated",
            )
            return
        peak_kb = self._sampler.stop() if self._sampler is not None else _status_kb("VmHWM")
        self.result = MemoryPeak(
            peak_mb=max(0, peak_kb - self._base) / 1024,
            total_mb=peak_kb / 1024,
            reserved_mb=None,
            method=self._method,
        )
