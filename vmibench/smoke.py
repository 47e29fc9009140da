"""Device smoke test, the first step of ``scripts/gpu_run.sh``: before minutes of a borrowed GPU go to a sweep,
check that every model builds and runs one forward there in each dtype, and that the selective-scan backends
available there agree with the sequential reference.

``python -m vmibench.smoke --device cuda [--models a,b] [--dtypes fp32,bf16] [--out smoke.json]`` prints one line
per check and exits 1 when any failed (2 for bad arguments).  It needs only torch and timm: no fvcore, no store.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch

# Largest |y - y_reference| / max |y_reference| a backend may show: fp32 differs only in summation order;
# bf16 inputs are rounded the same way for every backend but the output is rounded to 8 bits of mantissa.
SCAN_TOLERANCE = {"fp32": 1e-4, "bf16": 2e-2}
# ``--quick``: two groups, a gate, several state entries; small enough for the sequential reference on a CPU.
QUICK_SHAPE_ARGS = {
    "label": "quick",
    "batch": 2,
    "length": 64,
    "channels": 16,
    "d_state": 4,
    "groups": 2,
    "gated": True,
}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Check:
    """One smoke check: ``kind`` is ``forward`` (a model) or ``scan`` (a backend on a shape)."""

    kind: str
    name: str
    dtype: str
    ok: bool
    detail: str  # output shape and seconds, or the error; for scans the relative error
    value: float | None = None  # scans: max relative error against the reference


def model_forward(name: str, device: torch.device, dtype: str, res: int = 224) -> Check:
    """Build ``name`` on ``device`` and run one batch-1 forward (autocast for bf16/fp16); ok when finite."""
    import vmibench

    start = time.perf_counter()
    try:
        model = vmibench.create_model(name, res=(res, res)).eval().to(device)
        x = torch.randn(1, 3, res, res, device=device)
        with torch.inference_mode(), torch.autocast(device.type, DTYPES[dtype], enabled=dtype != "fp32"):
            y = model(x)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        finite = bool(torch.isfinite(y.float()).all())
        detail = f"out {tuple(y.shape)} in {time.perf_counter() - start:.1f} s" + ("" if finite else ", NOT FINITE")
        return Check("forward", name, dtype, finite, detail)
    except Exception as exc:
        line = traceback.format_exception_only(type(exc), exc)[-1].strip()
        return Check("forward", name, dtype, False, line[:300])


def scan_agreement(device: torch.device, dtype: str, quick: bool = False) -> list[Check]:
    """Every backend available on ``device`` (``auto``'s candidates) against ``reference`` at the Vim-Ti and
    VMamba-T stage-1 shapes of :mod:`vmibench.ops.scan_bench` (``quick``: one small shape), inputs in ``dtype``."""
    from vmibench.ops import available_backends, selective_scan
    from vmibench.ops.scan_bench import DEFAULT_SHAPES, ScanShape

    shapes = [ScanShape(**QUICK_SHAPE_ARGS)] if quick else DEFAULT_SHAPES
    checks = []
    for shape in shapes:
        args = {k: v.to(DTYPES[dtype]) if k in ("u", "delta", "B", "C", "z") else v  # type: ignore[union-attr]
                for k, v in shape.inputs(device).items()}  # fmt: skip
        with torch.inference_mode():
            expected = selective_scan(**args, backend="reference").float()  # type: ignore[arg-type]
            scale = expected.abs().max().item() or 1.0
            for backend in (b for b in available_backends(device) if b != "reference"):
                label = f"{shape.label}[{backend}]"
                try:
                    y = selective_scan(**args, backend=backend).float()  # type: ignore[arg-type]
                except Exception as exc:
                    checks.append(Check("scan", label, dtype, False, f"{type(exc).__name__}: {exc}"[:300]))
                    continue
                err = (y - expected).abs().max().item() / scale
                ok = err <= SCAN_TOLERANCE.get(dtype, 2e-2)
                checks.append(Check("scan", label, dtype, ok, f"max rel. error {err:.2e}", err))
    return checks


def _print(check: Check) -> None:
    print(f"{'ok  ' if check.ok else 'FAIL'} {check.kind} {check.name} {check.dtype}: {check.detail}", flush=True)


def run(
    models: Sequence[str], device: torch.device, dtypes: Sequence[str], res: int = 224, quick: bool = False
) -> list[Check]:
    """Scan agreement in each dtype, then every model's forward in each dtype; each check printed as it ends."""
    checks: list[Check] = []
    for dtype in dtypes:
        for check in scan_agreement(device, dtype, quick):
            _print(check)
            checks.append(check)
    for name in models:
        for dtype in dtypes:
            checks.append(model_forward(name, device, dtype, res))
            _print(checks[-1])
    return checks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vmibench.smoke", description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu (a dry run)")
    parser.add_argument("--models", default="all", help="comma list of registered models (default: all)")
    parser.add_argument("--dtypes", default="fp32,bf16", help="comma list: fp32, bf16, fp16")
    parser.add_argument("--res", type=int, default=224, help="input size (default 224)")
    parser.add_argument("--quick", action="store_true", help="one small scan shape (a CPU dry run)")
    parser.add_argument("--out", help="also write the checks here as JSON")
    args = parser.parse_args(argv)
    from vmibench.registry import list_infos

    known = [m.name for m in list_infos()]
    models = known if args.models == "all" else [m.strip() for m in args.models.split(",") if m.strip()]
    dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    bad = [m for m in models if m not in known] + [d for d in dtypes if d not in DTYPES]
    if bad or (args.device.startswith("cuda") and not torch.cuda.is_available()):
        what = f"unknown model or dtype: {', '.join(bad)}" if bad else f"{args.device} is not available"
        print(f"vmibench.smoke: error: {what}", file=sys.stderr)
        return 2
    device = torch.device(args.device)
    print(f"smoke test on {torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}", flush=True)
    checks = run(models, device, dtypes, args.res, args.quick)
    if args.out:
        with open(args.out, "w") as fh:
            json.dump([asdict(c) for c in checks], fh, indent=1)
    failed = [c for c in checks if not c.ok]
    print(f"{len(checks) - len(failed)} of {len(checks)} checks passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
