"""*Models, parameters and FLOPs*: our counts at 224 beside the published ones."""

from __future__ import annotations

import pandas as pd

from vmibench.reports.figures import Builder
from vmibench.reports.text import Section, md_table


def section_flops(b: Builder) -> Section:
    d = b.data
    s = Section("Models, parameters and FLOPs")
    fl = d.flops
    models = d.models.set_index("model")
    rows = []
    ours_224 = fl[fl["res"].astype(str) == "224"].set_index("model") if not fl.empty else pd.DataFrame()
    lat224 = d.latency[d.latency["res"].astype(str) == "224"].drop_duplicates("model").set_index("model") \
        if not d.latency.empty else pd.DataFrame()  # fmt: skip
    for name, info in models.iterrows():
        src = ours_224 if name in ours_224.index else lat224
        if name not in src.index:
            continue
        r = src.loc[name]
        rows.append({
            "model": name, "paper_name": info["paper_name"], "params_m": r.get("params_m"), "gmacs": r.get("gmacs"),
            "published_params_m": info["published_params_m"], "published_gmacs": info["published_gmacs"],
            "published_top1": info["published_top1"], "flops_rule": info["published_flops_rule"],
            "note": info["note"],
        })  # fmt: skip
    frame = pd.DataFrame(rows)
    csv = b.table(frame, "models_flops_224")
    s.lines += md_table(frame, ["model", "paper_name", "params_m", "gmacs", "published_params_m", "published_gmacs",
                                "published_top1", "flops_rule", "note"])  # fmt: skip
    s.lines += ["", f"*gmacs/params_m: vmibench's count at 224x224 on {d.device}'s rows (fvcore + vmibench handles); "
                    f"published_*: the model record's reference numbers. Table: `{csv}`.*"]  # fmt: skip
    return s
