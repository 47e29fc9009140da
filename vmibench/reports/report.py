"""``vmibench report``: results/REPORT.md, CSV tables and PNG figures, generated from the results store.

Everything printed is read from the store at generation time -- the *Reviewer questions* sentences included --
so the report cannot drift from its data.  One report covers one device (``--device``, default: that of the
newest latency row) and, for it, the newest environment (machine + libraries + vmibench commit) of the
latency and ops tables, so rows of different code versions are never mixed.  Published numbers appear only in
columns named ``published_*`` and are marked as such in figures.

Uncertainty.  Each stored row keeps its raw per-call samples, one list per round (worker process).  From them
the report gives every conclusion a 95% bootstrap interval (:mod:`vmibench.analysis`): exponents, latency
ratios (paired by round), crossovers.  A difference is stated only where the intervals resolve it -- a ratio's
interval excludes 1, two exponents' intervals do not overlap -- and is otherwise called "not distinguishable on
this machine"; the reviewer answers end with a count of how many of their comparisons were resolved.

Staleness.  The header names the commit(s) that measured the rows and the commit the report was generated at, and
marks as stale the models and ops (and lists the measurement files) whose code changed in between, so a report
does not pass old timings off as current ones.  A published result set (:mod:`vmibench.resultset`) records this
in its manifest when it is published, so its report is rebuilt from the data and manifest alone, byte for byte.

Layout.  :mod:`~vmibench.reports.selection` turns stored rows into the frames a report reads (one device, its
newest environment, the newest row per cell); :mod:`~vmibench.reports.sections` and
:mod:`~vmibench.reports.questions` are functions from those frames to markdown (one module per section and per
reviewer question); :mod:`~vmibench.reports.figures` writes the CSV tables and PNG figures they refer to, drawn
by :mod:`~vmibench.reports.plots`; :mod:`~vmibench.reports.text` holds the number formatting and the conditional
wording every finding sentence is built from.  This module only orders the sections.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from vmibench.reports.figures import Builder
from vmibench.reports.questions.section import section_questions
from vmibench.reports.sections.backbone import section_backbone
from vmibench.reports.sections.latency import section_latency
from vmibench.reports.sections.maxbatch import section_maxbatch
from vmibench.reports.sections.models import section_flops
from vmibench.reports.sections.ops import section_ops
from vmibench.reports.sections.pareto import section_pareto
from vmibench.reports.sections.roofline import section_roofline
from vmibench.reports.sections.scaling import section_scaling
from vmibench.reports.sections.setup import section_setup
from vmibench.reports.sections.training import section_training
from vmibench.reports.sections.verdicts import CALIBRATION_TABLE, section_verdicts
from vmibench.reports.selection import load
from vmibench.reports.staleness import Staleness, check_staleness, staleness_lines
from vmibench.store import ResultStore

if TYPE_CHECKING:
    from vmibench.resultset import Manifest


def provenance_of(store: ResultStore, device: str | None = None) -> tuple[str, Staleness]:
    """The device a report of ``store`` covers and the staleness of today's code against its measuring commits."""
    data = load(store, device)
    return data.device, check_staleness(data)


def write_report(
    db: str | Path | None, out: str | Path, device: str | None = None, *, manifest: Manifest | None = None
) -> Path:
    """Generate ``out/REPORT.md`` with its tables and figures from the store; returns the report path.

    With a result set's ``manifest`` the header names the data's hash and the staleness recorded at publishing, so
    the same data and manifest give the same bytes; without, staleness is computed against today's code.  Nothing
    in the report depends on the clock."""
    out = Path(out)
    with ResultStore(db, readonly=True) as store:
        data = load(store, device)
        calibration = store.read(CALIBRATION_TABLE)
        db_path = store.path
    staleness = Staleness.from_dict(manifest.staleness) if manifest is not None else check_staleness(data)
    data.staleness = staleness
    b = Builder(data, out)
    scaling, model_fits = section_scaling(b)
    ops_section, op_fits = section_ops(b)
    verdicts, _ = section_verdicts(b, calibration)
    sections = [section_setup(b), verdicts, section_questions(data, model_fits, op_fits), section_flops(b),
                section_latency(b),
                section_roofline(b), scaling, section_backbone(b), ops_section, section_training(b),
                section_maxbatch(b), section_pareto(b)]  # fmt: skip
    if manifest is not None:
        source = (f"from the result set's `{db_path.name}` (SHA-256 `{manifest.data_sha256[:16]}`, see "
                  f"`manifest.json`)")  # fmt: skip
    else:
        source = f"from the scratch store `{db_path.name}` (not a published result set)"
    head = (f"# vmibench report -- {data.device}\n\nGenerated by `vmibench report` {source}, newest environment of "
            f"this device. Regenerate, do not edit.\n\n" + "\n".join(staleness_lines(staleness)) + "\n")  # fmt: skip
    text = head + "\n" + "\n".join(s.render() for s in sections)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "REPORT.md"
    path.write_text(text)
    return path
