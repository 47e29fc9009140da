"""Which reported models and ops had their code changed since the commit that measured them (git diff)."""

from __future__ import annotations

import inspect
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from vmibench.errors import UserError
from vmibench.reports.text import join

RESULTS_DIR = "results"  # committed result sets, results/<machine>/ (vmibench.resultset): data, not code
MODEL_SHARED_FILES = ("vmibench/modeling.py",)


SCAN_FILES = ("vmibench/ops/selective_scan.py",)
# a scan backend's own kernel, a file of the rows that ran it (a CPU row's torch scan does not run Triton's kernel)
BACKEND_FILES = {"triton": ("vmibench/ops/triton_scan.py",)}


OP_FILES = ("vmibench/ops/mixers.py",)


# what measures, counts and reduces: a change here can change every row, whichever model it measured
MEASUREMENT_FILES = ("vmibench/measure", "vmibench/flops.py", "vmibench/bytes_moved.py", "vmibench/env.py")
OP_EXTRA_FILES = {"selective_scan": SCAN_FILES, "flatten_fla": ("baselines/flatten.py",),
                  "mlla_linear": ("baselines/mlla.py",)}  # fmt: skip


@dataclass(frozen=True)
class Staleness:
    """Which reported models and ops had their code changed since the commit that measured them.

    ``changed`` maps a name to the files that differ between its measuring commit and the working tree;
    ``unknown`` lists names that could not be checked (no git, not a checkout, commit not found).
    """

    head: str | None = None
    commits: tuple[str, ...] = ()
    changed: dict[str, tuple[str, ...]] = field(default_factory=dict)
    unknown: tuple[str, ...] = ()
    measurement: tuple[str, ...] = ()  # measurement files changed since the (first) measuring commit

    def to_dict(self) -> dict[str, object]:
        """JSON form (a result set's manifest keeps the staleness of its report, so regeneration reproduces it)."""
        changed = {k: list(v) for k, v in self.changed.items()}
        return {"head": self.head, "commits": list(self.commits), "changed": changed, "unknown": list(self.unknown),
                "measurement": list(self.measurement)}  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> Staleness:
        changed = {str(k): tuple(v) for k, v in dict(d.get("changed") or {}).items()}  # type: ignore[call-overload]
        return cls(d.get("head"), tuple(d.get("commits") or ()), changed, tuple(d.get("unknown") or ()),  # type: ignore[arg-type]
                   tuple(d.get("measurement") or ()))  # type: ignore[arg-type]  # fmt: skip

    def mark(self, name: str) -> str:
        """``stale``, ``?`` (unknown) or empty, for a table column."""
        if name in self.changed:
            return "stale"
        return "?" if name in self.unknown else ""


def _repo_root() -> Path:
    """The checkout vmibench runs from (as :func:`vmibench.env.git_commit` locates it)."""
    import vmibench

    return Path(vmibench.__file__).resolve().parents[1]


def _git(*args: str) -> str | None:
    """Output of ``git ARGS`` in vmibench's checkout; None when git is missing, this is no checkout, or it fails."""
    try:
        return subprocess.run(["git", "-C", str(_repo_root()), *args], capture_output=True, text=True, timeout=20,
                              check=True).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None


def head_commit() -> str | None:
    """The current HEAD, 12 hex digits like the stored ``git_commit`` (``+dirty`` with uncommitted changes to
    tracked files outside ``results/``); None when unknown.

    Committed result sets are data, not code: ``vmibench publish`` replaces a tracked set's files before it reads
    this, and a report generated in a clean clone must not be labelled dirty by the data it is writing."""
    out = _git("rev-parse", "--short=12", "HEAD")
    if out is None or not out.strip():
        return None
    dirty = _git("status", "--porcelain", "--untracked-files=no", "--", ".", f":(exclude){RESULTS_DIR}")
    return out.strip() + ("+dirty" if dirty else "")


def _in_repo(path: str | None) -> tuple[str, ...]:
    """``path`` relative to the checkout, or nothing for a file outside it (timm: versioned in the env key)."""
    if not path:
        return ()
    try:
        return (Path(path).resolve().relative_to(_repo_root()).as_posix(),)
    except ValueError:
        return ()


def model_files(name: str) -> tuple[str, ...]:
    """Files whose change can change a model's timing: its builder's source file (``registry.py`` for a timm
    reference), the helpers every model shares, and the selective scan for scan models."""
    from vmibench.registry import resolve

    try:
        entry = resolve(name)
        source = inspect.getsourcefile(entry.builder)
    except (UserError, TypeError, OSError):
        return MODEL_SHARED_FILES
    return (*_in_repo(source), *MODEL_SHARED_FILES, *(SCAN_FILES if entry.info.uses_scan else ()))


def op_files(op: str) -> tuple[str, ...]:
    """Files of a token mixer: the mixers module and what its builder imports (``op`` may carry ``[backend]``)."""
    return (*OP_FILES, *OP_EXTRA_FILES.get(op.split("[", 1)[0], ()))


def _measured_at(latency: pd.DataFrame, ops: pd.DataFrame) -> dict[tuple[str, str], tuple[str, ...]]:
    """``{(name, measuring commit): files}`` for every reported model and op."""
    out: dict[tuple[str, str], tuple[str, ...]] = {}
    for frame, col, files_of in ((latency, "model", model_files), (ops, "op", op_files)):
        if frame.empty:
            continue
        commits = frame["git_commit"] if "git_commit" in frame.columns else pd.Series("unknown", index=frame.index)
        backends = frame["scan_backend"] if "scan_backend" in frame.columns else pd.Series("", index=frame.index)
        cache: dict[str, tuple[str, ...]] = {}
        for name, commit, backend in zip(frame[col].astype(str), commits.fillna("unknown").astype(str),
                                         backends.fillna("").astype(str), strict=True):  # fmt: skip
            if name not in cache:
                cache[name] = files_of(name)
            files = (*cache[name], *BACKEND_FILES.get(backend, ()))
            out[(name, commit)] = tuple(dict.fromkeys((*out.get((name, commit), ()), *files)))
    return out


def check_staleness(latency: pd.DataFrame, ops: pd.DataFrame) -> Staleness:
    """Diff each measuring commit against the working tree, over the files of the models (``latency`` rows) and
    ops (``ops`` rows) it measured.

    One ``git diff --name-only`` per commit.  A ``+dirty`` commit is diffed from its committed part (what its
    uncommitted changes were is not recorded); an ``unknown`` commit, a commit missing from this checkout or a
    missing HEAD leaves its names' status unknown.
    """
    measured = _measured_at(latency, ops)
    head = head_commit()
    commits = tuple(sorted({c for _, c in measured}))
    changed: dict[str, set[str]] = {}
    unknown: set[str] = set()
    for commit in commits:
        names = {n: files for (n, c), files in measured.items() if c == commit}
        base = commit.removesuffix("+dirty")
        files = sorted({f for fs in names.values() for f in fs})
        diff = None if head is None or base in ("", "unknown") else _git("diff", "--name-only", base, "--", *files)
        if diff is None:
            unknown.update(names)
            continue
        touched = set(diff.split())
        for name, fs in names.items():
            hit = touched.intersection(fs)
            if hit:
                changed.setdefault(name, set()).update(hit)
    measurement: set[str] = set()
    for commit in commits:
        base = commit.removesuffix("+dirty")
        diff = None if head is None or base in ("", "unknown") else _git("diff", "--name-only", base, "--",
                                                                         *MEASUREMENT_FILES)  # fmt: skip
        measurement.update((diff or "").split())
    return Staleness(head, commits, {n: tuple(sorted(f)) for n, f in sorted(changed.items())},
                     tuple(sorted(unknown - set(changed))), tuple(sorted(measurement)))  # fmt: skip


def staleness_lines(st: Staleness) -> list[str]:
    """The header paragraph: measuring commit(s), HEAD, and the stale (or unchecked) models and ops."""
    measured = ", ".join(f"`{c}`" for c in st.commits) or "unknown"
    head = f"`{st.head}`" if st.head else "unknown (no git, or not a checkout)"
    lines = [f"**Code version.** Rows measured at commit {measured}; report generated at {head}."]
    dirty = [c for c in st.commits if c.endswith("+dirty")]
    if dirty:
        lines.append(f"{join(f'`{c}`' for c in dirty)} had uncommitted changes, not recorded: the check diffs from "
                     "the committed part, so a change already present then shows as stale.")  # fmt: skip
    if st.changed:
        stale = "; ".join(f"{n} ({', '.join(f)})" for n, f in st.changed.items())
        lines.append(f"**Stale** (code changed since measuring; re-measure with `--force`): {stale}.")
    elif st.head and not st.unknown:
        lines.append("No reported model's or op's code changed since.")
    if st.measurement:
        lines.append(f"**Measurement code changed** since (may affect every row): {', '.join(st.measurement)}.")
    if st.unknown:
        lines.append(f"Stale status unknown for: {', '.join(st.unknown)}.")
    return [" ".join(lines)]
