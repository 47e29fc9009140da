"""FLatten-Swin records: published numbers, eval settings and how the model is adapted to other sizes."""

from __future__ import annotations

from vmibench.registry import EvalConfig, ModelInfo, Published, add_info

_OFFICIAL = "github.com/LeapLabTHU/FLatten-Transformer models/flatten_swin.py @abdb115"
_SOURCE_T = (
    "github.com/LeapLabTHU/FLatten-Transformer README (top-1); params/GMACs from the paper and its "
    "figures/result1.png (unconfirmed as printed text)"
)
_SOURCE_S = "github.com/LeapLabTHU/FLatten-Transformer README"
_ADAPTATION = (
    "our generalisation, fixed at construction for any resolution divisible by 32: stages 1-2 (focused linear "
    "attention) attend over their whole stage map, as the official config does at 224 (window 56) and the "
    "official FLatten-Swin-B 384 config (cfgs/flatten_swin_b_384.yaml) does with window 96; their "
    "positional_encoding (1, H*W, C) is built for that grid and a saved one is resized bicubically on its 2-D "
    "grid (align_corners=False, as official utils.load_pretrained). Stages 3-4 keep Swin window 7 (that 384 "
    "config would switch them to window 12 and resize the bias tables; we keep the trained window so 224 weights "
    "need no table resize). A map whose shorter side is <= 7 gets one window of that side and no shift (official "
    "rule; its bias table is then resized bicubically, as official load_pretrained does); a longer map not "
    "divisible by 7 is zero-padded bottom/right after norm1, before the cyclic shift, and the shift mask is built "
    "on the padded grid (as Swin's detection backbone and torchvision's Swin do; the official classification "
    "code fails there). relative_position_index and attn_mask are rebuilt for the model's geometry and the "
    "checkpoint filter replaces saved ones by the model's own (drops or adds attn_mask where the shift changes)."
)


# Official eval (config.py + data/build.py): DATA.IMG_SIZE 224, INTERPOLATION bicubic, TEST.CROP True -> resize
# to (256, 256) then center-crop 224 (crop_pct 0.875), ImageNet mean/std.  Note the official resize is to a
# square 256x256, not shorter-side 256; on ImageNet's non-square images this differs slightly from timm's.
_EVAL = EvalConfig(input_size=(3, 224, 224), crop_pct=0.875, interpolation="bicubic")


def _info(name: str, paper: str, published: Published) -> None:
    add_info(
        ModelInfo(
            name=name,
            family="flatten",
            paper_name=paper,
            published=published,
            eval=_EVAL,
            module="vmibench.baselines.flatten",
            official=_OFFICIAL,
            res_multiple=32,
            min_res=32,
            fixed_input_size=True,  # positional encodings, windows and shift masks are built for one grid
            first_conv="patch_embed.proj",
            classifier="head",
            adaptation=_ADAPTATION,
        )
    )


_info(
    "flatten_swin_t", "FLatten-Swin-T", Published(params_m=29.0, gmacs=4.5, top1=82.1, eval_res=224, source=_SOURCE_T)
)
_info("flatten_swin_s", "FLatten-Swin-S", Published(top1=83.5, eval_res=224, source=_SOURCE_S))
