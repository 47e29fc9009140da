"""MLLA records: published numbers, eval settings and how the model is adapted to other input sizes."""

from __future__ import annotations

from vmibench.registry import EvalConfig, ModelInfo, Published, add_info

_SOURCE = "github.com/LeapLabTHU/MLLA README"
_OFFICIAL = "github.com/LeapLabTHU/MLLA models/mlla.py @66b6d29"
_ADAPTATION = (
    "RoPE rotation tables (persistent buffers attn.rope.rotations, one per block) are built for the "
    "requested grid at construction time; the checkpoint filter replaces loaded tables by the model's own "
    "rebuilt ones (deterministic, same float32 formula as the official RoPE), so a 224 checkpoint behaves as "
    "the official model built at the new size; no learned tensor depends on resolution. The official stem "
    "assert becomes a build-size check; the attention uses the built grid instead of int(sqrt(N)), identical "
    "on square inputs and also valid for H != W (the official code is square-only)"
)
_RECONSTRUCTION = (
    "none in float32 (outputs bit-identical to the official model at 224 and 384 in our check); RoPE uses "
    "real arithmetic on channel pairs instead of complex views and returns the input dtype where the "
    "official returns float32, which only matters for half-precision runs without autocast (unverified)"
)


def _info(name: str, paper: str, params: float, gmacs: float, top1: float) -> None:
    add_info(
        ModelInfo(
            name=name,
            family="mlla",
            paper_name=paper,
            published=Published(params_m=params, gmacs=gmacs, top1=top1, eval_res=224, source=_SOURCE),
            # Official config.py: DATA.INTERPOLATION='bicubic', TEST.CROP=True -> Resize(int(256/224*size)) +
            # CenterCrop(size), i.e. crop_pct 0.875; data/build.py normalises with ImageNet mean/std.
            eval=EvalConfig(input_size=(3, 224, 224), crop_pct=0.875, interpolation="bicubic"),
            module="vmibench.baselines.mlla",
            official=_OFFICIAL,
            res_multiple=32,
            min_res=32,
            fixed_input_size=True,  # RoPE tables are built for one grid (the official stem asserts the size)
            first_conv="patch_embed.conv1.conv",
            classifier="head",
            adaptation=_ADAPTATION,
            reconstruction=_RECONSTRUCTION,
        )
    )


_info("mlla_t", "MLLA-T", 25.0, 4.2, 83.5)
_info("mlla_s", "MLLA-S", 43.0, 7.3, 84.4)
