"""Sessions: `nox -s bench` (the main job: default CPU benchmark -> results/<machine>/), `nox -s tests`, `nox -s lint`,
and `nox -s slurm` (a real single-node SLURM cluster; root on Debian).

Environments are made with venv + pip on purpose: pip takes torch/torchvision from the machine's local wheel
store, where uv would download several GB.
"""

from __future__ import annotations

import os

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "tests"]

# Library deprecation chatter off and a headless matplotlib backend in every session.
_QUIET = {"PYTHONWARNINGS": "ignore::FutureWarning,ignore::UserWarning", "MPLBACKEND": "Agg"}


def _install(session: nox.Session) -> None:
    session.install("-e", ".[dev]")


@nox.session
def tests(session: nox.Session) -> None:
    """Install vmibench with its dev extra and run the test suite (pytest exit 5, no tests, fails)."""
    _install(session)
    session.run("pytest", "-q", *session.posargs, env=_QUIET)


@nox.session
def slurm(session: nox.Session) -> None:
    """A real single-node SLURM cluster and a scaled-out sweep on it (tests/slurm): root on Debian only.

    scripts/slurm_cluster.py installs slurm-wlm and munge with apt where missing, starts munged, slurmctld and
    slurmd in a temp dir and always stops them; the test submits, cancels, resubmits and collects a tiny sweep."""
    _install(session)
    session.run("pytest", "-q", "-s", "tests/slurm", *session.posargs, env={**_QUIET, "VMIBENCH_SLURM": "1"})


@nox.session
def bench(session: nox.Session) -> None:
    """The main job: default CPU benchmark (`--preset cpu-default` sweep and ops, each with its adaptive rounds for
    undecided pre-registered comparisons, plus training steps of three models and profiles of two) into a scratch
    store, the interval calibration study on it, then `vmibench publish`: the committed result set
    results/<machine>/ (raw data, manifest, REPORT.md, tables, figures).  VMIBENCH_DB names the scratch store
    (default bench.sqlite, git-ignored)."""
    _install(session)
    db = os.environ.get("VMIBENCH_DB", "bench.sqlite")
    cpu = ("--device", "cpu", "--db", db)
    session.run("vmibench", "sweep", "--preset", "cpu-default", *cpu, *session.posargs, env=_QUIET)
    session.run("vmibench", "ops", "--preset", "cpu-default", *cpu, env=_QUIET)
    # training steps of one model per kind (the report's Training section); inference comes from the sweep
    session.run("vmibench", "latency", "--models", "vminet_t,vmamba_t,deit_t", "--res", "224", "--mode", "train",
                "--rounds", "3", "--threads", "1", "--max-time", "3", *cpu, env=_QUIET)  # fmt: skip
    # where the time goes (reviewer question 3): EfficientVMamba and VMINet-T at 224 and at 4x the tokens, by operator
    # class (1024 profiles for minutes per model, vim_t for minutes at any size: `vmibench profile` adds them)
    session.run("vmibench", "profile", "--models", "effvmamba_t,vminet_t", "--res", "224,512",
                "--threads", "1", *cpu, env=_QUIET)  # fmt: skip
    session.run("vmibench", "check", "calibrate", "--db", db, "--trials", "1000", env=_QUIET)
    session.run("vmibench", "publish", "--db", db, env=_QUIET)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and format check."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
