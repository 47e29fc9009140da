"""The ``triton`` scan backend run by Triton's CPU interpreter (``TRITON_INTERPRET=1``) against ``reference``.

Triton decides when it is first imported whether its kernels (its library's included) are compiled or
interpreted, and this test session imports it early and compiled; so the interpreter tests live in
``tests/interpreted/`` (collected only when ``TRITON_INTERPRET=1``, see ``conftest.py``) and
:func:`test_in_the_interpreter` runs them in a child process started with it.  The process boundary is the point
here, not a convenience.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("triton")


def test_in_the_interpreter() -> None:
    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, TRITON_INTERPRET="1")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "ignore",
                           "tests/interpreted"],
                          cwd=root, env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert "7 passed" in proc.stdout and "skipped" not in proc.stdout, proc.stdout[-2000:]
