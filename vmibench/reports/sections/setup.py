"""*Setup*: device, libraries, protocol, and the measured roofs (matmul peak, triad bandwidth)."""

from __future__ import annotations

import pandas as pd

from vmibench.reports.figures import Builder
from vmibench.reports.text import Section, few_rounds_caveat, fmt, protocol_lines, setup_line


def section_setup(b: Builder) -> Section:
    d = b.data
    # every selected row (selection guarantees one): inference, ops, training and backbone rows
    both = pd.concat([f for f in (d.latency, d.ops, d.training, d.backbone) if not f.empty])
    first = both.iloc[0]
    peak = d.peak[(d.peak["status"] == "ok") & d.peak["env_key"].isin(both["env_key"])] if not d.peak.empty else d.peak
    s = Section("Setup")
    s.lines += [
        f"- Device: `{d.device}` -- {first.get('device_name', '?')}; CPU {first.get('cpu_model', '?')}, "
        f"{first.get('cpu_count', '?')} usable cores; host {first.get('hostname', '?')} "
        f"({first.get('platform', '?')}).",
        f"- Libraries: torch {first.get('torch_version')}, timm {first.get('timm_version')}, fvcore "
        f"{first.get('fvcore_version')}, CUDA {first.get('cuda_version')}, Python {first.get('python')}; vmibench "
        f"{first.get('vmibench_version')} at commit `{first.get('git_commit')}`.",
        f"- Settings found: {setup_line(both)}.",
    ]
    protocol = protocol_lines(both)
    if len(protocol) == 1:
        s.lines.append(f"- Protocol (from the rows' stored timing policy): {protocol[0]}.")
    else:
        s.lines += ["- Protocols (from the rows' stored timing policies; they differ between rows):",
                    *[f"  - {p}." for p in protocol]]  # fmt: skip
    s.lines += [
        "- Timing: per call (perf_counter on CPU, CUDA events on GPU). Latency = median of all calls of all rounds, "
        "with a hierarchical bootstrap 95% CI (rounds, then calls); throughput = batch / median. Ratios, exponents "
        "and crossovers carry bootstrap 95% intervals from the raw samples (ratios paired by round)."
        + few_rounds_caveat(both),
        "- Memory: `peak_mem_mb` = rise above what was held before the first forward (activations + workspaces; "
        "for ops also the op's own buffers), by `mem_method` (rss_hwm = resident-set high-water mark on CPU).",
        '- FLOPs: fvcore, 1 multiply-add = 1 FLOP (`gmacs`, the papers\' "GFLOPs"); selective scans as one op, '
        "9*B*L*D*N + B*D*L (+B*D*L with a z gate). Published numbers are reference columns, never ours.",
    ]
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
