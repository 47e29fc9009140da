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

triton = pytest.importorskip("triton")


def test_in_the_interpreter() -> None:
    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, TRITON_INTERPRET="1")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "ignore",
                           "tests/interpreted"],
                          cwd=root, env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert "7 passed" in proc.stdout and "skipped" not in proc.stdout, proc.stdout[-2000:]


@pytest.mark.parametrize("io_dtype", ["fp32", "bf16"])
def test_the_kernel_compiles_for_a_cuda_target(io_dtype: str) -> None:
    """Triton's compiler, not its interpreter, on the kernel, for an H100/H200 (sm_90), without a GPU.

    The interpreter runs the kernel's Python and lets through what the compiler refuses (a plain-float module
    global read inside the kernel passed every interpreted test and failed on the first real GPU), so the kernel
    also goes through the whole compiler here: front end, LLVM and ptxas, down to a cubin."""
    import inspect

    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from vmibench.ops import triton_scan

    kernel = triton_scan.scan_fwd_kernel
    names = list(inspect.signature(kernel.fn).parameters)
    fp32_inputs = {"a_ptr", "d_ptr", "bias_ptr", "last_ptr"}  # A, D, the bias and the last state stay fp32
    block_d, block_n, block_t = triton_scan.launch_config(channels=384, d_state=16, length=197)  # Vim-Ti's scan
    flags = {"HAS_D": True, "HAS_Z": True, "HAS_BIAS": True, "SOFTPLUS": True,
             "BLOCK_D": block_d, "BLOCK_N": block_n, "BLOCK_T": block_t}  # fmt: skip
    signature = {n: ("constexpr" if n in flags else f"*{'fp32' if n in fp32_inputs else io_dtype}"
                     if n.endswith("_ptr") else "i32") for n in names}  # fmt: skip
    constexprs = {(names.index(n),): v for n, v in flags.items()}
    try:
        compiled = triton.compile(ASTSource(fn=kernel, signature=signature, constexprs=constexprs),
                                  target=GPUTarget("cuda", 90, 32))  # fmt: skip
    except RuntimeError as err:  # a Triton without its NVIDIA back end (or its ptxas) cannot test this here
        if "ptxas" in str(err) or "backend" in str(err).lower():
            pytest.skip(f"Triton cannot compile for CUDA here: {err}")
        raise
    assert compiled.asm["cubin"] and ".visible .entry scan_fwd_kernel" in compiled.asm["ptx"]
