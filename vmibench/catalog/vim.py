"""Vim records: published numbers, eval settings and how the model is adapted to other input sizes."""

from __future__ import annotations

from vmibench.registry import EvalConfig, ModelInfo, Published, add_info

_OFFICIAL = "github.com/hustvl/Vim vim/models_mamba.py + mamba-1p1p1/mamba_ssm/modules/mamba_simple.py @dd0358a"
_ADAPTATION = (
    "built for the requested grid (H/16 x W/16 patches, any size divisible by 16): the official PatchEmbed "
    "asserts its build size, so the stem and the absolute pos-embed are sized at construction; the cls token "
    "sits in the middle of the patch sequence, at position M//2 for M patches (as the official forward does "
    "for any M).  checkpoint_filter_fn takes the saved pos-embed (14x14 patches + cls at 224, the cls "
    "entry at index 98 = its own M//2), keeps the cls embedding unchanged, resizes the patch entries on "
    "their 2-D grid (bicubic, align_corners=False, as vim/main.py does when fine-tuning at another size) and "
    "re-inserts the cls entry at the new M//2.  vim/main.py itself splits off index 0 as the 'extra token', "
    "which for the middle-cls models would take patch (0, 0) for the cls entry; we keep the entry the model "
    "adds to the cls token. As a backbone (features_only, --task backbone) it hands out the residual stream after "
    "layers 5, 11, 17 and 23 (the out_indices of the official segmentation configs) as H/16 x W/16 maps, its "
    "middle cls token dropped from them; the official segmentation backbone is a separate class that we did not "
    "check, so this feature interface is a reconstruction"
)
_RECONSTRUCTION = (
    "none in the architecture; the fused CUDA/Triton kernels (rms_norm_fn with residual, causal_conv1d, "
    "selective_scan) are replaced by plain-torch code following their reference functions, not run against "
    "the kernels here"
)
_CSV_SOURCE = {
    "vim_t": "github.com/hustvl/Vim README (params top-1); GMACs from github.com/TerryPei/EfficientVMamba README",
    "vim_s": "github.com/hustvl/Vim README; GMACs from MLLA figures/fig4_cls.png (listed there with 80.3)",
}
_FLOPS_RULE = (
    "not stated: the Vim repo has no FLOPs code and the figure is quoted by a third party; it is "
    "lower than fvcore on the official model with each of its 48 scans counted 9*B*L*D*N + B*D*L "
    "(+ B*D*L for the z gate)"
)


def _info(name: str, paper: str, params: float, gmacs: float, top1: float, top5: float, note: str) -> None:
    add_info(
        ModelInfo(
            name=name,
            family="vim",
            paper_name=paper,
            published=Published(
                params_m=params,
                gmacs=gmacs,
                top1=top1,
                top5=top5,
                eval_res=224,
                source=_CSV_SOURCE[name],
                note=note,
                flops_rule=_FLOPS_RULE,
            ),
            # vim/main.py evaluation: --eval-crop-ratio 0.875, datasets.build_transform resizes bicubic (3).
            eval=EvalConfig(input_size=(3, 224, 224), crop_pct=0.875, interpolation="bicubic"),
            module="vmibench.baselines.vim",
            official=_OFFICIAL,
            res_multiple=16,
            min_res=16,
            fixed_input_size=True,  # the absolute pos-embed is one entry per patch of the built grid
            first_conv="patch_embed.proj",
            classifier="head",
            adaptation=_ADAPTATION,
            reconstruction=_RECONSTRUCTION,
            uses_scan=True,
        )
    )


_info(
    "vim_t",
    "Vim-Ti",
    7,
    1.5,
    76.1,
    93.0,
    "Vim repo has no FLOPs code; the official model has 7,148,008 params and counts 1.82 GMACs under the "
    "9*B*L*D*N scan rule (0.53 G of it in the scans)",
)
_info(
    "vim_s",
    "Vim-S",
    26,
    5.1,
    80.5,
    95.1,
    "the official model has 25,796,584 params and counts 5.91 GMACs under the 9*B*L*D*N scan rule "
    "(1.06 G of it in the scans)",
)
