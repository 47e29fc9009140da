"""EfficientVMamba records: published numbers, eval settings, and what the Small record is built from."""

from __future__ import annotations

from vmibench.registry import EvalConfig, ModelInfo, Published, add_info

_OFFICIAL = "github.com/TerryPei/EfficientVMamba classification/models/vmamba_efficient.py @0bc5ee2"
_SOURCE = "github.com/TerryPei/EfficientVMamba README"
_FLOPS_RULE = (
    "fvcore with each selective scan counted 9*B*L*D*N + B*D*L (VMamba's rule); the repo's FLOPs script "
    "(analyze/get_flops.py) deletes the classifier (final LayerNorm + head) before counting, while the "
    "training log's figure counts the whole model (Small: log 1.343 G, we measure 1.3426 with the classifier, "
    "1.3419 without); the difference is below the README's one-decimal precision"
)
_ADAPTATION = (
    "nothing in the weights depends on resolution (no position embeddings), so a 224 checkpoint loads "
    "unchanged at any size; the atrous scan runs over (H/2)(W/2) tokens per sub-grid at whatever grid it "
    "gets. Inputs must be multiples of 32 so the stage-1/2 grids (H/4, H/8) are even and every patch merge "
    "sees an even grid; for odd grids the official code zero-pads bottom/right before splitting into "
    "sub-grids and crops after merging, which this implementation reproduces (it is only reached when the "
    "model is called directly with other sizes)"
)
_CHECKPOINT_NOTE = "checkpoint filter renames the legacy keys VSSM._load_from_state_dict renames"
_SMALL_RECONSTRUCTION = (
    "no manifest exists for Small, so it is not checked against an official state dict. The repo's "
    "configs/vssm/vssm_efficient_small.yaml (EMBED_DIM 96, depths 2-2-4-2) builds 24.76M params / 2.8 GMACs, "
    "not the published 11M / 1.3G. The module tree printed in classification/logs/log_efficient_vmamba_small.txt "
    "(the run behind the README row) has widths 64-128-256-512 and depths 2-2-4-2: the same code with dims=64. "
    "That configuration gives exactly the log's 11.274M params (11,273,688) and 1.3426 fvcore GMACs at 224 "
    "(log: 1.343 G; the training script's hook fallback would print 0.708, so the log's figure is fvcore with "
    "the scan rule). d_state 16 and dt_rank ceil(C/16) follow from the code (the log does not print them)"
)


def _info(name: str, paper: str, params: float, gmacs: float, top1: float, note: str, reconstruction: str) -> None:
    add_info(
        ModelInfo(
            name=name,
            family="effvmamba",
            paper_name=paper,
            published=Published(
                params_m=params,
                gmacs=gmacs,
                top1=top1,
                eval_res=224,
                source=_SOURCE,
                note=note,
                flops_rule=_FLOPS_RULE,
            ),
            # Official eval (classification/lib/dataset/transform.py build_val_transforms with the logged
            # interpolation='bicubic'; classification/utils/config.py agrees): resize 256, center crop 224.
            eval=EvalConfig(input_size=(3, 224, 224), crop_pct=0.875, interpolation="bicubic"),
            module="vmibench.baselines.effvmamba",
            official=_OFFICIAL,
            res_multiple=32,
            min_res=32,
            first_conv="patch_embed.0",
            classifier="classifier.head",
            adaptation=f"{_ADAPTATION}; {_CHECKPOINT_NOTE}",
            reconstruction=reconstruction,
            uses_scan=True,
        )
    )


_info(
    "effvmamba_t",
    "EfficientVMamba-T",
    6.0,
    0.8,
    76.5,
    "training log reports 6.494M params; its FLOPs script drops the classifier head "
    "(configs/vssm/vssm_efficient_tiny.yaml: dims 48, depths 2-2-4-2)",
    "",
)
_info(
    "effvmamba_s",
    "EfficientVMamba-S",
    11.0,
    1.3,
    78.7,
    "training log reports 11.274M params and 1.343 GMACs; built from the log's printed architecture "
    "(dims 64), not vssm_efficient_small.yaml (dims 96: 24.8M params / 2.8 GMACs)",
    _SMALL_RECONSTRUCTION,
)
