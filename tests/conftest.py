"""Shared fixtures: reference manifests and random state dicts, a CLI runner, quiet single-thread torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
# A user model whose forward holds a known allocation (tests/alloc_model.py): real workers' peak memory must see it.
ALLOC_MODEL = ROOT / "tests" / "alloc_model.py"
# Official state-dict keys and shapes, parameter counts and FLOPs per model (the repository's own reference data;
# provenance in tests/reference/README.md).
MANIFESTS = ROOT / "tests" / "reference" / "state_dicts"
# Integer buffers of official state dicts (BatchNorm counters, Swin index tables): loaded as long zeros.
_INTEGER_BUFFERS = ("num_batches_tracked", "relative_position_index")

torch.set_num_threads(1)

# Triton's interpreter tests need TRITON_INTERPRET=1 before triton is first imported: test_triton_scan.py runs
# them in a child process that sets it; elsewhere they are not collected (not skipped).
collect_ignore_glob = [] if os.environ.get("TRITON_INTERPRET") == "1" else ["interpreted/*"]
# The real SLURM cluster's tests (tests/slurm) start daemons as root: collected only by `nox -s slurm`, which sets
# VMIBENCH_SLURM=1 and starts the cluster (scripts/slurm_cluster.py).
if os.environ.get("VMIBENCH_SLURM") != "1":
    collect_ignore_glob.append("slurm/*")


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Torch on one thread during the test (the count before is restored); use with ``pytest.mark.usefixtures``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def manifest(name: str) -> dict[str, Any]:
    """The official state-dict manifest for ``name`` (a missing one is a failure: the data ships with the repo)."""
    return json.loads((MANIFESTS / f"{name}.json").read_text())


def random_state_dict(shapes: dict[str, list[int]], seed: int = 0) -> dict[str, torch.Tensor]:
    """Seeded standard-normal tensors of the manifest ``shapes``; integer buffers get long zeros."""
    g = torch.Generator().manual_seed(seed)
    return {
        k: torch.zeros(shape, dtype=torch.long) if k.endswith(_INTEGER_BUFFERS) else torch.randn(shape, generator=g)
        for k, shape in shapes.items()
    }


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run ``python -m vmibench ARGS`` in a subprocess (fresh interpreter, as a user would)."""
    env = dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
    return subprocess.run(
        [sys.executable, "-m", "vmibench", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout
    )


@pytest.fixture
def cli(tmp_path: Path):
    """CLI runner whose working directory (and so default results/ database) is a temp dir."""

    def run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, cwd=tmp_path, timeout=timeout)

    return run


@pytest.fixture
def vmi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    """The CLI in this process (``main([...])``), working directory a temp dir; returns exit code and output."""
    from vmibench.cli import main

    monkeypatch.chdir(tmp_path)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(list(args), code, out, err)

    return run


def assert_user_error(proc: subprocess.CompletedProcess[str], *fragments: str) -> None:
    """Exit status 2, one line on stderr starting 'vmibench: error:', no traceback, containing ``fragments``."""
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and "Warning" not in ln and "warnings.warn" not in ln]
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    assert len(lines) == 1 and lines[0].startswith("vmibench: error:"), proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def assert_peak_is_the_allocation(row: dict[str, Any]) -> None:
    """A real worker's row for ``alloc_probe_t`` (:data:`ALLOC_MODEL`): its peak memory is the known allocation
    (at least ``ALLOC_MB``, and not far above it: the model itself is tiny)."""
    from alloc_model import ALLOC_MB

    assert row["status"] == "ok", row["error_detail"]
    assert ALLOC_MB - 1 <= row["peak_mem_mb"] <= ALLOC_MB + 64, (row["peak_mem_mb"], row["mem_method"])
