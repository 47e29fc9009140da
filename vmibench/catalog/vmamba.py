"""VMamba records: published numbers, eval settings and how the model runs at other input sizes."""

from __future__ import annotations

from vmibench.registry import EvalConfig, ModelInfo, Published, add_info

_OFFICIAL = "github.com/MzeroMiko/VMamba classification/models/vmamba.py @2ed52ea"
_SOURCE = "github.com/MzeroMiko/VMamba README"
_FLOPS_RULE = (
    "fvcore with each selective scan counted 9*B*L*D*N + B*D*L (VMamba csms6s.flops_selective_scan_fn, "
    "state-spaces/mamba#110)"
)
_THROUGHPUT_SETUP = "A100 + EPYC 7542; batch 128; fp32"
_ADAPTATION = (
    "none needed: apart from the selective scan (whose length follows the input) VMamba is convolutional "
    "(stride-2 3x3 stem and down-sampler convs, depthwise 3x3 conv, 1x1 projections, global average pool), "
    "so a model built for any size takes the same weights; sizes are restricted to multiples of 32 so every "
    "stage grid is exact. The released configs set posembed=False (no position tensor); if posembed=True is "
    "asked for, the embedding is built for (H/4, W/4) and a saved one is resized bicubically in the "
    "checkpoint filter, as the released loader does."
)


def _info(name: str, paper: str, params: float, gmacs: float, top1: float, ips: float, note: str) -> None:
    add_info(
        ModelInfo(
            name=name,
            family="vmamba",
            paper_name=paper,
            published=Published(
                params_m=params,
                gmacs=gmacs,
                top1=top1,
                eval_res=224,
                throughput_ips=ips,
                throughput_setup=_THROUGHPUT_SETUP,
                source=_SOURCE,
                note=note,
                flops_rule=_FLOPS_RULE,
            ),
            # classification/config.py: DATA.INTERPOLATION="bicubic", TEST.CROP=True; data/build.py then resizes
            # to int(256/224*224)=256 and centre-crops 224, i.e. crop_pct 0.875, with timm's ImageNet mean/std.
            eval=EvalConfig(input_size=(3, 224, 224), crop_pct=0.875, interpolation="bicubic"),
            module="vmibench.baselines.vmamba",
            official=_OFFICIAL,
            res_multiple=32,
            min_res=32,
            first_conv="patch_embed.0",
            classifier="classifier.head",
            adaptation=_ADAPTATION,
            uses_scan=True,
        )
    )


_info(
    "vmamba_t",
    "VMamba-T [s1l8]",
    30,
    4.9,
    82.6,
    1686,
    "config vmambav2v_tiny (vssm1_tiny_0230s); scan FLOPs 9*B*L*D*N + B*D*L",
)
_info("vmamba_s", "VMamba-S [s2l15]", 50, 8.7, 83.6, 877, "")
