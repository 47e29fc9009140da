"""VMINet records (the subject): published numbers, eval settings and how it is adapted to other sizes."""

from __future__ import annotations

from vmibench.registry import EvalConfig, ModelInfo, Published, add_info

_SOURCE = "arXiv 2501.02040 (table as transcribed by github.com/igm503/heedless-backbones family_data/VMINet.yml)"
_ADAPTATION = (
    "our generalisation: the per-position context weight `sum` (Linear over H*W, 224x224 only in the released "
    "code) is built for the requested grid; 224 weights are resized bilinearly on the HxW grid and scaled by "
    "old/new area so the summed context keeps its scale"
)
_OFFICIAL = "github.com/yws-wxs/VMINet vminet.py @127f8bd"


_RELEASED = "yws-wxs/VMINet README"  # source of the released checkpoints' top-1


def _info(name: str, paper: str, params: float, gmacs: float, top1: float, note: str = "",
          released: float | None = None) -> ModelInfo:  # fmt: skip
    return add_info(
        ModelInfo(
            name=name,
            family="vminet",
            paper_name=paper,
            published=Published(
                params_m=params, gmacs=gmacs, top1=top1, eval_res=224, source=_SOURCE, note=note, released_top1=released
            ),
            # timm train-script defaults (the released model sets no pretrained_cfg)
            eval=EvalConfig(input_size=(3, 224, 224), crop_pct=0.875, interpolation="bicubic"),
            module="vmibench.models.vminet",
            official=_OFFICIAL,
            res_multiple=32,
            min_res=64,
            fixed_input_size=True,  # the context weights are one per position of the built grid
            stage_strides=(4, 8, 16, 32),  # stem halves, then each stage's down-sampler (models/vminet.py)
            first_conv="stem.0.conv",
            classifier="head",
            adaptation=_ADAPTATION,
        )
    )


_info("vminet_t", "VMINet-Ti", 2.0, 0.3, 70.7, "released code counts 2.04M params")
_info(
    "vminet_xs",
    "VMINet-XS",
    7.0,
    1.4,
    78.6,
    "paper and released code disagree: the paper prints 7.0M / 1.4G, the released code builds 7.44M params "
    "/ 1.26 GMACs (fvcore); released checkpoint top-1 from " + _RELEASED,
    released=76.5,
)
_info("vminet_s", "VMINet-S", 13.0, 2.3, 80.5, "released checkpoint top-1 from " + _RELEASED, released=79.0)
_info("vminet_b", "VMINet-B", 28.0, 4.8, 82.4, "released checkpoint top-1 from " + _RELEASED, released=80.9)
