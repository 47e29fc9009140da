"""``vmibench report``: REPORT.md, CSV tables and PNG figures, generated from a store or a result set.

Everything printed is read from the store at generation time, so the report cannot drift from its data.  One
report covers one device (``--device``, default: that of the newest latency row) and, for it, the newest
environment (machine + libraries + vmibench commit), so rows of different code versions are never mixed.

Order.  A reviewer reads it in five minutes: right after the title, the *Answers* table (question, verdict,
effect [interval, level as calibrated], where, main caveat), then one short section per reviewer question, then
the *Setup* block -- the only place the provenance (source data, code version and staleness, device, libraries)
is stated; captions refer to it.  Everything else (full tables, per-model notes, protocol, every pre-registered
comparison) is in the *Appendix*.  Above the appendix the report stays within a word budget (a test holds it).

Uncertainty.  Every verdict is three-way with a 10% margin (faster/slower/higher/lower, equivalent, undetermined,
no interval) on a t-interval over rounds of the ratio or exponent difference itself, paired by round
(:mod:`vmibench.analysis.intervals`): pre-registered comparisons from the preset, and matched comparisons the
preset did not declare through the same evaluation, marked as not pre-registered.  A fit on fewer than 3 sizes is
"too few sizes", never a verdict.

Staleness.  The *Setup* block names the commit(s) that measured the rows and the commit the report was generated
at, and marks as stale the models and ops whose code changed in between.  A published result set
(:mod:`vmibench.resultset`) records this in its manifest, so its report is rebuilt from the data and manifest
alone, byte for byte.

Layout.  :mod:`~vmibench.reports.selection` turns stored rows into the frames a report reads (one device, its
newest environment, the newest row per cell); :mod:`~vmibench.reports.sections` and
:mod:`~vmibench.reports.questions` are functions from those frames to markdown (one module per section and per
reviewer question); :mod:`~vmibench.reports.figures` writes the CSV tables and PNG figures they refer to, drawn
by :mod:`~vmibench.reports.plots`; :mod:`~vmibench.reports.text` holds the number formatting and the conditional
wording every finding sentence is built from; :mod:`~vmibench.reports.lint` checks every figure as it is drawn
(in the tests).  This module only orders the sections.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from vmibench.reports.figures import Builder
from vmibench.reports.questions.section import section_questions
from vmibench.reports.sections.backbone import section_backbone
from vmibench.reports.sections.breakdown import section_breakdown
from vmibench.reports.sections.latency import section_latency
from vmibench.reports.sections.maxbatch import section_maxbatch
from vmibench.reports.sections.models import section_flops
from vmibench.reports.sections.ops import section_ops
from vmibench.reports.sections.pareto import section_pareto
from vmibench.reports.sections.roofline import section_roofline
from vmibench.reports.sections.scaling import section_scaling
from vmibench.reports.sections.setup import section_protocol, section_setup
from vmibench.reports.sections.training import section_training
from vmibench.reports.sections.verdicts import CALIBRATION_TABLE, section_verdicts, verdict_table
from vmibench.reports.selection import ReportData, load
from vmibench.reports.staleness import Staleness, check_staleness, staleness_lines
from vmibench.reports.text import Section
from vmibench.store import ResultStore

APPENDIX = "Appendix"


def _model_rows(data: ReportData) -> pd.DataFrame:
    """Every reported row that measured a model (inference, profiles): their commits are the measuring commits."""
    frames = [f for f in (data.latency, data.profile) if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else data.latency


def provenance_of(store: ResultStore, device: str | None = None) -> tuple[str, Staleness]:
    """The device a report of ``store`` covers and the staleness of today's code against its measuring commits."""
    data = load(store, device)
    return data.device, check_staleness(_model_rows(data), data.ops)


def write_report(
    db: str | Path | None,
    out: str | Path,
    device: str | None = None,
    *,
    data_sha256: str | None = None,
    recorded_staleness: dict[str, object] | None = None,
) -> Path:
    """Generate ``out/REPORT.md`` with its tables and figures from the store; returns the report path.

    For a result set, ``data_sha256`` (the hash of its data) and ``recorded_staleness`` (the staleness its manifest
    recorded at publishing, :meth:`Staleness.to_dict`): the header names the hash and that staleness, so the same
    data and manifest give the same bytes; without, staleness is computed against today's code.  Nothing in the
    report depends on the clock."""
    out = Path(out)
    with ResultStore(db, readonly=True) as store:
        data = load(store, device)
        calibration = store.read(CALIBRATION_TABLE)
        db_path = store.path
    if recorded_staleness is not None:
        staleness = Staleness.from_dict(recorded_staleness)
    else:
        staleness = check_staleness(_model_rows(data), data.ops)
    b = Builder(data, out, staleness)
    table = verdict_table(data)
    if data_sha256 is not None:
        source = (f"Data: the result set's `{db_path.name}` (SHA-256 `{data_sha256[:16]}`, see "
                  f"`manifest.json`), newest environment of this device.")  # fmt: skip
    else:
        source = f"Data: the scratch store `{db_path.name}` (not a published result set), newest environment."
    # above the appendix: what a reviewer reads (answers, one short section per question, provenance once)
    front = [*section_questions(b, table, calibration), section_setup(b, [source, "", *staleness_lines(staleness)])]
    appendix = [section_verdicts(b, calibration, table), section_flops(b), section_latency(b), section_roofline(b),
                section_breakdown(b) if not data.breakdown.empty else None, section_scaling(b), section_backbone(b),
                section_ops(b), section_training(b), section_maxbatch(b),
                section_pareto(b), section_protocol(b)]  # fmt: skip
    appendix = [s for s in appendix if s is not None]
    for s in appendix:
        s.level = 3
    head = (f"# vmibench report -- {data.device}\n\nThe reviewers' questions answered from this run's data; "
            "provenance in [Setup](#setup), every table and the full verdict table in the [Appendix](#appendix). "
            "Generated by `vmibench report`: regenerate, do not edit.\n")  # fmt: skip
    intro = Section(APPENDIX, ["Full tables (also as CSV under `tables/`), per-model notes, the protocol and every "
                               "pre-registered comparison."])  # fmt: skip
    text = head + "\n" + "\n".join(s.render() for s in [*front, intro, *appendix])
    out.mkdir(parents=True, exist_ok=True)
    path = out / "REPORT.md"
    path.write_text(text)
    return path
