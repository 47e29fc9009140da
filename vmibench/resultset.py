"""Committed result sets: the raw data, a manifest and the report rebuilt from them byte for byte.

A result set is a folder, ``results/<machine>/``::

    store.sqlite     the measurements: every row with its raw per-call samples (a compacted copy of a store)
    manifest.json    SHA-256 of store.sqlite, the commits that measured it, the commit the report was generated at,
                     the staleness of that code against the measuring commit(s), and the library versions
    REPORT.md, tables/, figures/   written by `vmibench report` from store.sqlite and manifest.json

``vmibench publish --db SCRATCH --out results/<machine>`` makes one (the only command that writes into a result
set); ``vmibench report --from results/<machine>`` rebuilds its report into a scratch folder, and ``--check``
compares the rebuild with the committed files.  The report depends on nothing but the data and the manifest (no
clock, no HEAD at rebuild time), so the rebuild is byte for byte; figures are too when matplotlib's version
matches the manifest's (PNG rendering changes between versions).
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path

from vmibench.env import file_sha256
from vmibench.errors import UserError

DATA = "store.sqlite"
MANIFEST = "manifest.json"
REPORT_FILES = ("REPORT.md", "tables", "figures")


def machine_slug() -> str:
    """A result set's folder name for this machine: device kind, CPU model and usable cores, e.g.
    ``cpu-intel-xeon-platinum-8481c-2core`` (one committed result set per machine)."""
    import re

    from vmibench.env import usable_cores

    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1]
                break
    except OSError:
        pass
    model = re.sub(r"\(r\)|\(tm\)|cpu|@.*|processor", " ", model.lower())
    slug = re.sub(r"[^a-z0-9]+", "-", model).strip("-") or "unknown"
    return f"cpu-{slug}-{usable_cores()}core"


def is_result_set(folder: Path) -> bool:
    """Whether ``folder`` holds a result set (its manifest)."""
    return (folder / MANIFEST).is_file()


def _versions() -> dict[str, str]:
    import platform

    import matplotlib
    import numpy
    import pandas

    return {"python": platform.python_version(), "numpy": numpy.__version__, "pandas": pandas.__version__,
            "matplotlib": matplotlib.__version__}  # fmt: skip


@dataclass(frozen=True)
class Manifest:
    """What a result set's report is rebuilt from, besides its data."""

    data_sha256: str
    device: str
    measured_commits: tuple[str, ...]
    report_commit: str
    staleness: dict[str, object]
    versions: dict[str, str]

    def to_json(self) -> str:
        body = {"data": DATA, "data_sha256": self.data_sha256, "device": self.device,
                "measured_commits": list(self.measured_commits), "report_commit": self.report_commit,
                "staleness": self.staleness, "versions": self.versions}  # fmt: skip
        return json.dumps(body, indent=2, sort_keys=True) + "\n"

    @classmethod
    def read(cls, folder: Path) -> Manifest:
        try:
            d = json.loads((folder / MANIFEST).read_text())
            return cls(d["data_sha256"], d["device"], tuple(d["measured_commits"]), d["report_commit"],
                       dict(d["staleness"]), dict(d["versions"]))  # fmt: skip
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UserError(f"{folder / MANIFEST} is not a vmibench result-set manifest ({exc}): republish it with "
                            "`vmibench publish`") from None  # fmt: skip


def check_data(folder: Path) -> Manifest:
    """The manifest of a result set whose data still has the hash the manifest names (else a one-line error)."""
    if not is_result_set(folder):
        raise UserError(f"{folder} is not a result set (no {MANIFEST}): give a folder made by `vmibench publish`")
    manifest = Manifest.read(folder)
    data = folder / DATA
    if not data.is_file():
        raise UserError(f"{data} is missing: a result set needs its raw data beside the report")
    digest = file_sha256(data)
    if digest != manifest.data_sha256:
        raise UserError(f"{data} has SHA-256 {digest[:12]}, the manifest says {manifest.data_sha256[:12]}: the data "
                        "was changed after publishing; restore it (git checkout) or republish")  # fmt: skip
    return manifest


def _compact_copy(db: Path, target: Path) -> None:
    """A compacted copy of the store without the runner's scratch (pending rounds, leases)."""
    tmp = target.with_name(target.name + ".tmp")
    tmp.unlink(missing_ok=True)
    src = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        src.execute("VACUUM INTO ?", (str(tmp),))
    finally:
        src.close()
    out = sqlite3.connect(tmp)
    try:
        with out:
            for table in ("pending", "leases"):
                out.execute(f"DELETE FROM {table}")
        out.execute("VACUUM")
    finally:
        out.close()
    tmp.replace(target)


def publish(db: Path, out: Path, device: str | None = None) -> Path:
    """Copy the store ``db`` into the result set ``out`` (compacted), write its manifest, then its report."""
    from vmibench.reports.report import provenance_of
    from vmibench.store import ResultStore, check_file

    check_file(db, writable=False)
    out.mkdir(parents=True, exist_ok=True)
    if db.resolve() != (out / DATA).resolve():  # republishing a set from its own data keeps its bytes (and hash)
        _compact_copy(db, out / DATA)
    with ResultStore(out / DATA, readonly=True) as store:
        data_device, staleness = provenance_of(store, device)
    manifest = Manifest(file_sha256(out / DATA), data_device, tuple(staleness.commits), staleness.head or "unknown",
                        staleness.to_dict(), _versions())  # fmt: skip
    # the old report goes only now, after the code version was read (its deletion would mark the checkout dirty),
    # so a figure the new report no longer makes does not linger beside it
    for name in REPORT_FILES:
        if (out / name).is_dir():
            shutil.rmtree(out / name)
        else:
            (out / name).unlink(missing_ok=True)
    (out / MANIFEST).write_text(manifest.to_json())
    return _write(out / DATA, out, manifest)


def rebuild(folder: Path, out: Path) -> Path:
    """Rebuild a result set's report into ``out`` from its data and manifest (the data's hash checked first)."""
    manifest = check_data(folder)
    return _write(folder / DATA, out, manifest)


def _write(data: Path, out: Path, manifest: Manifest) -> Path:
    """The report of a result set's ``data`` into ``out``, from its manifest's device, hash and staleness."""
    from vmibench.reports.report import write_report

    return write_report(data, out, manifest.device, data_sha256=manifest.data_sha256,
                        recorded_staleness=manifest.staleness)  # fmt: skip


def _files(root: Path) -> dict[str, Path]:
    out = {}
    for name in REPORT_FILES:
        path = root / name
        if path.is_file():
            out[name] = path
        elif path.is_dir():
            out.update({p.relative_to(root).as_posix(): p for p in sorted(path.rglob("*")) if p.is_file()})
    return out


def verify(folder: Path) -> tuple[list[str], list[str]]:
    """Rebuild a result set in a temporary folder and compare with the committed files, byte for byte.

    Returns (differences, notes): a difference is a file that differs, is missing or is extra (figures only when
    matplotlib's version matches the manifest's; otherwise a note says they were not compared)."""
    manifest = check_data(folder)
    same_plotting = _versions()["matplotlib"] == manifest.versions.get("matplotlib")
    notes = [] if same_plotting else [f"figures not compared: matplotlib {_versions()['matplotlib']} here, "
                                      f"{manifest.versions.get('matplotlib')} in the manifest"]  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="vmibench-rebuild-") as tmp:
        rebuild(folder, Path(tmp))
        built, committed = _files(Path(tmp)), _files(folder)
        diffs = []
        for name in sorted(set(built) | set(committed)):
            if name.startswith("figures/") and not same_plotting:
                continue
            if name not in committed:
                diffs.append(f"{name}: rebuilt but not committed")
            elif name not in built:
                diffs.append(f"{name}: committed but not rebuilt")
            elif built[name].read_bytes() != committed[name].read_bytes():
                diffs.append(f"{name}: differs")
    return diffs, notes
