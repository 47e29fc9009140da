"""timm reference models under short names, with the published numbers vmibench compares against.

They are built by timm (``ModelInfo.timm_name``); nothing here imports it."""

from __future__ import annotations

from dataclasses import replace

from vmibench.registry import EvalConfig, ModelInfo, Published, add_info

_TIMM_CARD = "params/GMACs from the timm model card"


_VIT_EVAL = EvalConfig(input_size=(3, 224, 224), crop_pct=0.9, interpolation="bicubic")

_DEIT_T = ModelInfo(
    name="deit_t",
    family="deit",
    paper_name="DeiT-Ti",
    published=Published(
        params_m=5.7,
        gmacs=1.3,
        top1=72.2,
        eval_res=224,
        source=f"github.com/facebookresearch/deit README; {_TIMM_CARD} deit_tiny_patch16_224.fb_in1k",
    ),
    eval=_VIT_EVAL,
    official="timm deit_tiny_patch16_224",
    res_multiple=16,
    min_res=32,
    adaptation="timm img_size: the learned position embedding is built for the requested grid",
    timm_name="deit_tiny_patch16_224",
)

for _info in (
    _DEIT_T,
    replace(
        _DEIT_T,
        name="deit_s",
        paper_name="DeiT-S",
        published=replace(
            _DEIT_T.published,
            params_m=22.1,
            gmacs=4.6,
            top1=79.9,
            source=f"github.com/facebookresearch/deit README; {_TIMM_CARD} deit_small_patch16_224.fb_in1k",
        ),
        official="timm deit_small_patch16_224",
        timm_name="deit_small_patch16_224",
    ),
    ModelInfo(
        name="swin_t",
        family="swin",
        paper_name="Swin-T",
        published=Published(
            params_m=28,
            gmacs=4.5,
            top1=81.2,
            eval_res=224,
            throughput_ips=755,
            throughput_setup="GPU not named in MODELHUB (paper: V100)",
            source="github.com/microsoft/Swin-Transformer MODELHUB.md",
            note="VMamba's table measures Swin-T at 1244 img/s on A100 batch 128",
        ),
        eval=_VIT_EVAL,
        official="timm swin_tiny_patch4_window7_224",
        res_multiple=32,
        min_res=64,
        adaptation="timm img_size: window 7 kept, feature maps padded to whole windows; "
        "relative-position tables unchanged",
        timm_name="swin_tiny_patch4_window7_224",
    ),
    ModelInfo(
        name="mobilevitv2_100",
        family="mobilevitv2",
        paper_name="MobileViTv2-1.0",
        published=Published(
            params_m=4.9,
            gmacs=1.8,
            top1=78.09,
            eval_res=256,
            source="github.com/apple/ml-cvnets model zoo (top-1); GMACs at 256 from the timm model card "
            "mobilevitv2_100.cvnets_in1k",
            note="trained and evaluated at 256x256",
        ),
        eval=EvalConfig(
            input_size=(3, 256, 256),
            crop_pct=0.888,
            interpolation="bicubic",
            mean=(0.0, 0.0, 0.0),
            std=(1.0, 1.0, 1.0),
        ),
        official="timm mobilevitv2_100",
        res_multiple=32,
        min_res=64,
        adaptation="fully convolutional + unfold attention: runs at any multiple of 32 as built",
        timm_name="mobilevitv2_100",
    ),
):
    add_info(_info)
