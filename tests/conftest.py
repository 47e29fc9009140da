"""Shared fixtures: paths to the reference manifests, a CLI runner, quiet single-thread torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
MANIFESTS = ROOT.parent / "shared" / "reference" / "state_dicts"

torch.set_num_threads(1)


def manifest(name: str) -> dict:
    """The official state-dict manifest for ``name``; skips the test when ../shared is absent."""
    path = MANIFESTS / f"{name}.json"
    if not path.exists():
        pytest.skip(f"reference manifest {path} not available")
    return json.loads(path.read_text())


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


def assert_user_error(proc: subprocess.CompletedProcess[str], *fragments: str) -> None:
    """Exit status 2, one line on stderr starting 'vmibench: error:', no traceback, containing ``fragments``."""
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and "Warning" not in ln and "warnings.warn" not in ln]
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    assert len(lines) == 1 and lines[0].startswith("vmibench: error:"), proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
