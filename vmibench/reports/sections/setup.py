"""*Setup*: the report's provenance, stated once -- data source, code version and staleness, device, libraries,
settings, measured roofs -- and, in the appendix, the measurement *Protocol*."""

from __future__ import annotations

import pandas as pd

from vmibench.reports.figures import Builder
from vmibench.reports.text import Section, few_rounds_caveat, fmt, protocol_lines, setup_line


def _rows(d) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    """Every selected row (selection guarantees one): inference, ops, training and backbone rows."""
    return pd.concat([f for f in (d.latency, d.ops, d.training, d.backbone) if not f.empty])


def section_setup(b: Builder, provenance: list[str]) -> Section:
    """Provenance, once: every table and figure caption refers here instead of repeating it."""
    d = b.data
    both = _rows(d)
    first = both.iloc[0]
    peak = d.peak[(d.peak["status"] == "ok") & d.peak["env_key"].isin(both["env_key"])] if not d.peak.empty else d.peak
    s = Section("Setup")
    s.lines += [
        *provenance,
        "",
        f"- Device: `{d.device}` -- {first.get('device_name', '?')}; CPU {first.get('cpu_model', '?')}, "
        f"{first.get('cpu_count', '?')} usable cores; host {first.get('hostname', '?')} "
        f"({first.get('platform', '?')}).",
        f"- Libraries: torch {first.get('torch_version')}, timm {first.get('timm_version')}, fvcore "
        f"{first.get('fvcore_version')}, CUDA {first.get('cuda_version')}, Python {first.get('python')}; vmibench "
        f"{first.get('vmibench_version')} at commit `{first.get('git_commit')}`.",
        f"- Settings found: {setup_line(both)}.",
        "- Protocol: "
        + (protocol_lines(both) or ["not stored"])[0].split(";")[0]
        + "; per-round policy, timing, memory and FLOPs rules in [Protocol](#protocol).",
    ]
    if not peak.empty:
        best = peak.loc[peak["peak_gflops"].astype(float).idxmax()]
        s.lines.append(f"- Roofs measured in the same environment: dense-matmul peak {fmt(best['peak_gflops'])} GFLOP/s"
                       + _bandwidth(d, both))  # fmt: skip
    return s


def _bandwidth(d, both: pd.DataFrame) -> str:  # type: ignore[no-untyped-def]
    bw = d.bandwidth
    if not bw.empty:
        bw = bw[(bw["status"] == "ok") & bw["env_key"].isin(both["env_key"])]
    return "." if bw.empty else f", STREAM-triad bandwidth {fmt(float(bw['bw_peak_gbs'].astype(float).max()))} GB/s."


def section_protocol(b: Builder) -> Section:
    """The measurement protocol in full (appendix)."""
    d = b.data
    both = _rows(d)
    peak = d.peak[(d.peak["status"] == "ok") & d.peak["env_key"].isin(both["env_key"])] if not d.peak.empty else d.peak
    s = Section("Protocol", level=3)
    protocol = protocol_lines(both)
    if len(protocol) == 1:
        s.lines.append(f"- Protocol (from the rows' stored timing policy): {protocol[0]}.")
    else:
        s.lines += ["- Protocols (from the rows' stored timing policies; they differ between rows):",
                    *[f"  - {p}." for p in protocol]]  # fmt: skip
    s.lines += [
        "- Timing: per call (perf_counter on CPU, CUDA events on GPU). Latency = median of all calls of all rounds, "
        "with a 95% t-interval over rounds (on the rounds' log medians); throughput = batch / median. Verdicts rest "
        "on t-intervals over rounds of the ratio or exponent difference itself (paired by round); crossovers carry "
        "hierarchical bootstrap 95% intervals (rounds, then calls) from the raw samples." + few_rounds_caveat(both),
        "- Memory: `peak_mem_mb` = rise above what was held before the first forward (activations + workspaces; "
        "for ops also the op's own buffers), by `mem_method` (rss_hwm = resident-set high-water mark on CPU).",
        '- FLOPs: fvcore, 1 multiply-add = 1 FLOP (`gmacs`, the papers\' "GFLOPs"); selective scans as one op, '
        "9*B*L*D*N + B*D*L (+B*D*L with a z gate). Published numbers are reference columns, never ours.",
    ]
    if not d.pairs.empty and (d.pairs["status"] == "ok").any():
        pairs = d.pairs[d.pairs["status"] == "ok"]
        s.lines.append(
            f"- Interleaved pairs ({len(pairs)} stored, table `pairs`): a ratio still undecided after the preset's "
            "rounds was measured again as its two cells built in one worker and called in strict alternation (a, b, "
            "a, b, ...; samples in call order), a fresh process per round, each round under the cell's whole timing "
            "policy; its verdict rests on the t-interval over rounds of the per-round log ratio of medians."
        )  # fmt: skip
    if not peak.empty:
        peaks = ", ".join(f"{r.dtype}/{int(r.threads)} threads: {fmt(r.peak_gflops)} GFLOP/s (n={int(r.matmul_n)})"
                          for r in peak.itertuples(index=False))  # fmt: skip
        s.lines.append(f"- Dense-matmul peak measured in the same environment: {peaks}.")
    bw = d.bandwidth
    if not bw.empty:
        bw = bw[(bw["status"] == "ok") & bw["env_key"].isin(both["env_key"])]
    if not bw.empty:
        rates = ", ".join(f"{r.dtype}/{int(r.threads)} threads: {fmt(r.bw_peak_gbs)} GB/s (3 arrays of "
                          f"{fmt(r.triad_n)} elements)" for r in bw.itertuples(index=False))  # fmt: skip
        s.lines.append(f"- Memory bandwidth (STREAM triad a = b + s*c, each array >= 4x the last-level cache) in the "
                       f"same environment: {rates}.")  # fmt: skip
    return s
