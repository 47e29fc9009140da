"""Start-up: help, the model listing and input errors never import torch (the process boundary is the point).

One exception is by design: a model name vmibench does not know is looked up in timm's registry, which needs
``import timm`` (and so torch) before it can be refused.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CASES = [
    ["--help"],
    ["--version"],
    ["latency", "--help"],
    ["sweep", "--help"],
    ["check", "timer", "--help"],
    ["models"],
    ["models", "--format", "csv"],
    ["latency", "--device", "cpu", "--threads", "0"],
    ["latency", "--device", "cpu", "--models", "vminet_t", "--res", "225"],
    ["sweep", "--preset", "nope"],
    ["results", "--status", "bogus"],
    ["latency", "--nonsense"],
]

PROBE = """
import contextlib, io, json, sys
from vmibench.cli import main
seen = []
for args in json.loads(sys.argv[1]):
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            main(args)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    seen.append({"args": args, "code": code, "torch": "torch" in sys.modules, "timm": "timm" in sys.modules})
print(json.dumps(seen))
"""


def test_help_listing_and_input_errors_do_not_import_torch(tmp_path: Path) -> None:
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-c", PROBE, json.dumps(CASES)], capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout)
    assert [s["code"] for s in seen] == [0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2], seen
    first = next((s["args"] for s in seen if s["torch"] or s["timm"]), None)
    assert first is None, f"`vmibench {' '.join(first)}` imported torch or timm"
