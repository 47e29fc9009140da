"""The environment a measurement was taken in: every stored row carries one of these."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import subprocess
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import ClassVar

import vmibench
from vmibench.errors import UserError


@dataclass(frozen=True)
class Environment:
    """Machine, libraries and code version (per process; the per-cell settings live in the record)."""

    device_name: str  # GPU name, or the CPU model for CPU runs
    cpu_model: str
    cpu_count: int  # cores this process may run on (affinity)
    hostname: str
    platform: str
    python: str
    torch_version: str
    timm_version: str
    fvcore_version: str
    cuda_version: str
    vmibench_version: str
    git_commit: str  # commit of the vmibench checkout, "+dirty" when code that measures has uncommitted changes

    # the row columns behind key() other than the commit: rows equal on these ran on one machine with one set of
    # libraries, and a report takes them together (the newest row of each cell), whichever commit measured them; its
    # staleness check says which models' and ops' code changed since each commit (vmibench.reports.staleness)
    MACHINE_COLUMNS: ClassVar[tuple[str, ...]] = ("device", "device_name", "cpu_model", "cpu_count", "torch_version",
                                                  "timm_version", "vmibench_version")  # fmt: skip

    def key(self, device: str) -> str:
        """Short hash of what makes timings comparable (machine + libraries + code), for resume/skip logic."""
        parts = {
            "device": device,
            "device_name": self.device_name if device != "cpu" else self.cpu_model,
            "cpu_model": self.cpu_model,
            "cpu_count": self.cpu_count,
            "torch": self.torch_version,
            "timm": self.timm_version,
            "vmibench": self.vmibench_version,
            "commit": self.git_commit,
        }
        return hashlib.sha1(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:12]

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def usable_cores() -> int:
    """Cores this process may run on (respects affinity/cgroup pinning, unlike os.cpu_count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def cpu_model() -> str:
    """CPU model string from /proc/cpuinfo (Linux) or platform.processor()."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "absent"


def git_commit() -> str:
    """Commit of the checkout vmibench runs from ("unknown" for an installed wheel)."""
    root = Path(vmibench.__file__).resolve().parents[1]
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        # the report writer does not touch a measurement: its edits do not make rows "dirty"
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--", "vmibench", "baselines", ":!vmibench/reports"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def resolve_device(device: str | None) -> str:
    """``None`` -> ``cuda`` when available else ``cpu``; validates the rest (torch is imported only to ask about
    CUDA, so a CPU run's options are checked without it)."""
    if device == "cpu":
        return device
    import torch

    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"device '{device}' requested but CUDA is not available here: use --device cpu")
        return device
    raise UserError(f"unknown device '{device}': use cpu or cuda[:N]")


def device_name(device: str) -> str:
    """Human name of a torch device string ("cpu" -> CPU model, "cuda:0" -> GPU name)."""
    if device.startswith("cuda"):
        import torch

        return torch.cuda.get_device_name(device)
    return cpu_model()


@functools.cache
def capture(device: str = "cpu") -> Environment:
    """The environment of this process for measurements on ``device``."""
    import torch

    return Environment(
        device_name=device_name(device),
        cpu_model=cpu_model(),
        cpu_count=usable_cores(),
        hostname=platform.node(),
        platform=platform.platform(),
        python=platform.python_version(),
        torch_version=torch.__version__,
        timm_version=_version("timm"),
        fvcore_version=_version("fvcore"),
        cuda_version=str(torch.version.cuda or "none"),
        vmibench_version=vmibench.__version__,
        git_commit=git_commit(),
    )


def utc_now() -> str:
    """ISO-8601 UTC timestamp, second resolution."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def file_sha256(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks: the identity of checkpoints and of a result set's data."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
