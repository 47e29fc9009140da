"""Operator classes, declared once: which kind of work each aten operator is, and which roof bounds it.

Torch-free: :func:`op_class` takes an operator's name as the profiler or a dispatch mode spells it
(``aten::addmm``, ``vmibench::selective_scan``) and, for convolutions, its arguments or their shapes.

Classes (:data:`CLASSES`) and the roof each is held against (:data:`ROOF_OF`):

=================  ==================  ==========================================================================
class              roof                what falls in it
=================  ==================  ==========================================================================
``matmul``         ``matmul``          dense matmul / linear / bmm / einsum
``conv_dense``     ``matmul``          convolutions with ``groups < in_channels`` (or ``in_channels == 1``)
``conv_depthwise`` ``elementwise``     convolutions with ``groups == in_channels > 1``
``attention``      ``matmul``          scaled-dot-product attention and its fused kernels
``scan``           ``transcendental``  the selective scan (``vmibench::selective_scan`` and its backward)
``elementwise``    ``elementwise``     arithmetic, comparisons, fills, piecewise-linear activations
``transcendental`` ``transcendental``  exp, log, softplus, sigmoid, silu, gelu, tanh, erf, ... (and backwards)
``norm``           ``elementwise``     layer / batch / group / instance norm
``reduction``      ``elementwise``     sum, mean, cumsum, softmax, max, pooling, losses
``layout``         ``elementwise``     views, permutes, copies, concatenation, padding, allocation
``other``          ``elementwise``     anything not in the table (the coverage test keeps this empty)
=================  ==================  ==========================================================================

Roof assumptions (what :func:`vmibench.attribution.roofs.class_roofline` relies on):

* A depthwise convolution does ``k*k`` MACs per element it reads: it is held against the *elementwise* roof
  (bytes/s of a large fused-free add) -- an assumption, since a well-blocked depthwise kernel can keep its
  input in cache and be faster than streaming it per tap, and a poor one can fall below that roof.
* The selective scan is held against the *transcendental* roof: its ``exp(delta * A)`` per state element
  (``B*L*D*N`` exponentials, about ``scan_macs / 9``) bounds a fused scan before its multiply-adds do, and its
  minimum traffic (operands once) at the elementwise roof is the other floor; the larger wins.
* ``norm`` / ``reduction`` / ``layout`` are memory-bound: their roof is bytes at the elementwise rate.
* ``other`` falls back to the elementwise roof (memory-bound is the likely case for an unknown operator).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

MATMUL = "matmul"
CONV_DENSE = "conv_dense"
CONV_DEPTHWISE = "conv_depthwise"
ATTENTION = "attention"
SCAN = "scan"
ELEMENTWISE = "elementwise"
TRANSCENDENTAL = "transcendental"
NORM = "norm"
REDUCTION = "reduction"
LAYOUT = "layout"
OTHER = "other"

CLASSES: tuple[str, ...] = (
    MATMUL,
    CONV_DENSE,
    CONV_DEPTHWISE,
    ATTENTION,
    SCAN,
    ELEMENTWISE,
    TRANSCENDENTAL,
    NORM,
    REDUCTION,
    LAYOUT,
    OTHER,
)

# Roof names: the measured ceilings a class is held against.
MATMUL_ROOF = "matmul"  # dense-matmul peak, GFLOP/s
ELEMENTWISE_ROOF = "elementwise"  # bytes read + written per second of a large fused-free add
TRANSCENDENTAL_ROOF = "transcendental"  # exp on a large tensor: elements/s and bytes/s

ROOF_OF: dict[str, str] = {
    MATMUL: MATMUL_ROOF,
    CONV_DENSE: MATMUL_ROOF,
    ATTENTION: MATMUL_ROOF,
    CONV_DEPTHWISE: ELEMENTWISE_ROOF,
    ELEMENTWISE: ELEMENTWISE_ROOF,
    NORM: ELEMENTWISE_ROOF,
    REDUCTION: ELEMENTWISE_ROOF,
    LAYOUT: ELEMENTWISE_ROOF,
    OTHER: ELEMENTWISE_ROOF,
    TRANSCENDENTAL: TRANSCENDENTAL_ROOF,
    SCAN: TRANSCENDENTAL_ROOF,
}

_CONV = "conv"  # resolved to conv_dense / conv_depthwise from the arguments


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


# Base operator names (namespace, overload and in-place '_' dropped: see base_name), whitespace-separated.
_TABLE: dict[str, tuple[str, ...]] = {
    MATMUL: _words(
        """
        mm addmm bmm baddbmm addbmm matmul linear einsum addmv mv dot vdot _addmm_activation mkldnn_linear
        _mkl_linear outer tensordot
        """
    ),
    _CONV: _words(
        """
        conv1d conv2d conv3d convolution _convolution mkldnn_convolution thnn_conv2d _slow_conv2d_forward
        slow_conv3d_forward cudnn_convolution convolution_overrideable _nnpack_spatial_convolution
        conv_transpose1d conv_transpose2d slow_conv_transpose2d convolution_backward _slow_conv2d_backward
        cudnn_convolution_transpose miopen_convolution
        """
    ),
    CONV_DEPTHWISE: _words(
        """
        _conv_depthwise2d conv_depthwise3d miopen_depthwise_convolution _conv_depthwise2d_backward
        """
    ),
    ATTENTION: _words(
        """
        scaled_dot_product_attention _scaled_dot_product_attention_math _fused_sdp_choice
        _scaled_dot_product_flash_attention_for_cpu _scaled_dot_product_flash_attention_for_cpu_backward
        _scaled_dot_product_flash_attention _scaled_dot_product_flash_attention_backward
        _scaled_dot_product_efficient_attention _scaled_dot_product_efficient_attention_backward
        _scaled_dot_product_cudnn_attention _scaled_dot_product_cudnn_attention_backward
        _flash_attention_forward _flash_attention_backward _efficient_attention_forward
        _efficient_attention_backward _scaled_dot_product_fused_attention_overrideable
        """
    ),
    SCAN: _words(
        """
        selective_scan selective_scan_backward
        """
    ),
    ELEMENTWISE: _words(
        """
        add sub rsub mul div neg abs sign square addcmul addcdiv lerp relu relu6 leaky_relu hardtanh
        hardswish hardsigmoid threshold threshold_backward hardswish_backward hardsigmoid_backward
        hardtanh_backward leaky_relu_backward clamp clamp_min clamp_max clip maximum minimum where
        masked_fill eq ne lt le gt ge logical_and logical_or logical_not bitwise_and bitwise_or bitwise_not
        floor ceil round trunc frac remainder fmod floor_divide fill zero zeros zeros_like ones ones_like
        full full_like new_zeros new_ones new_full arange linspace scalar_tensor dropout native_dropout
        native_dropout_backward feature_dropout alpha_dropout bernoulli uniform normal rand randn rand_like
        randn_like randint mul_scalar add_scalar tril triu isnan isinf isfinite nan_to_num masked_scatter
        heaviside reciprocal sgn copysign
        """
    ),
    TRANSCENDENTAL: _words(
        """
        exp exp2 expm1 log log2 log10 log1p softplus softplus_backward sigmoid sigmoid_backward log_sigmoid
        log_sigmoid_forward log_sigmoid_backward silu silu_backward gelu gelu_backward tanh tanh_backward
        erf erfc erfinv sqrt rsqrt pow sin cos tan asin acos atan atan2 sinh cosh mish mish_backward elu
        elu_backward selu celu logit xlogy special_expit
        """
    ),
    NORM: _words(
        """
        layer_norm native_layer_norm native_layer_norm_backward batch_norm _batch_norm_impl_index
        native_batch_norm _native_batch_norm_legit _native_batch_norm_legit_no_training
        native_batch_norm_backward _batch_norm_impl_index_backward cudnn_batch_norm
        cudnn_batch_norm_backward miopen_batch_norm batch_norm_backward group_norm native_group_norm
        native_group_norm_backward instance_norm rms_norm _fused_rms_norm _fused_rms_norm_backward
        local_response_norm _batch_norm_with_update _batch_norm_no_update batch_norm_stats batch_norm_elemt
        batch_norm_gather_stats_with_counts
        """
    ),
    REDUCTION: _words(
        """
        sum mean prod cumsum cumprod logcumsumexp softmax _softmax _safe_softmax _softmax_backward_data log_softmax
        _log_softmax _log_softmax_backward_data logsumexp max min amax amin argmax argmin var std var_mean
        std_mean all any topk sort argsort adaptive_avg_pool1d adaptive_avg_pool2d _adaptive_avg_pool2d
        _adaptive_avg_pool2d_backward adaptive_avg_pool3d adaptive_max_pool2d avg_pool1d avg_pool2d
        avg_pool2d_backward max_pool1d max_pool2d max_pool2d_with_indices max_pool2d_with_indices_backward
        mkldnn_max_pool2d cross_entropy_loss nll_loss nll_loss_nd nll_loss_forward nll_loss_backward
        nll_loss2d_forward mse_loss l1_loss smooth_l1_loss count_nonzero _reshape_copy sum_to_size
        norm renorm linalg_vector_norm frobenius_norm
        mean_backward
        """
    ),
    LAYOUT: _words(
        """
        view _unsafe_view reshape _reshape_alias view_as reshape_as permute transpose t numpy_T mT
        contiguous clone copy _to_copy to type_as _copy_from _copy_from_and_resize cat _cat stack hstack
        vstack flip roll expand expand_as unsqueeze squeeze flatten unflatten select slice narrow split
        split_with_sizes tensor_split chunk unbind unfold as_strided alias detach lift_fresh lift_fresh_copy
        index index_select gather scatter scatter_add index_put _index_put_impl index_add index_copy
        masked_select take pad constant_pad_nd reflection_pad1d reflection_pad2d replicate_pad2d
        replication_pad2d repeat repeat_interleave tile movedim moveaxis swapaxes swapdims resolve_conj
        resolve_neg pixel_shuffle pixel_unshuffle channel_shuffle native_channel_shuffle upsample_nearest1d
        upsample_nearest2d upsample_bilinear2d upsample_bicubic2d _upsample_nearest_exact2d
        upsample_nearest2d_backward upsample_bilinear2d_backward im2col col2im empty empty_like
        empty_strided new_empty new_empty_strided resize as_strided_scatter slice_scatter select_scatter
        slice_backward select_backward index_select_backward expand_copy permute_copy view_copy
        transpose_copy t_copy _local_scalar_dense item embedding embedding_dense_backward _unsafe_split
        unsafe_split unsafe_chunk diagonal diag_embed set
        _has_compatible_shallow_copy_type _unsafe_index meshgrid broadcast_tensors unfold_backward
        _reshape_from_tensor _shape_as_tensor ravel atleast_1d atleast_2d squeeze_copy unsqueeze_copy
        one_hot _pad_circular _pad_enum circular_pad2d
        """
    ),
}

_CLASS_OF: dict[str, str] = {}
for _cls, _names in _TABLE.items():
    for _name in _names:
        assert _name not in _CLASS_OF, f"{_name} is declared twice"
        _CLASS_OF[_name] = _cls
del _cls, _names, _name

_NAMESPACES = ("aten", "vmibench", "prims")


def _shape(value: Any) -> tuple[int, ...] | None:
    shape = getattr(value, "shape", value)
    if isinstance(shape, Sequence) and not isinstance(shape, str) and all(isinstance(s, int) for s in shape):
        return tuple(int(s) for s in shape)
    return None


def conv_class(input_shape: Sequence[int] | None, weight_shape: Sequence[int] | None) -> str:
    """``conv_depthwise`` when ``groups == in_channels > 1``, read from the shapes (the weight of a grouped
    convolution is ``(out, in / groups, *kernel)``, so ``groups == in_channels`` iff ``weight[1] == 1``),
    else ``conv_dense``.  Unknown shapes give ``conv_dense``."""
    if input_shape is None or weight_shape is None or len(input_shape) < 2 or len(weight_shape) < 2:
        return CONV_DENSE
    in_channels = int(input_shape[1])
    return CONV_DEPTHWISE if in_channels > 1 and int(weight_shape[1]) == 1 else CONV_DENSE


def _conv_operands(base: str, args: Sequence[Any]) -> tuple[Any, Any]:
    # convolution_backward(grad_output, input, weight, ...); every forward convolution is (input, weight, ...)
    start = 1 if base.endswith("_backward") else 0
    if len(args) < start + 2:
        return None, None
    return args[start], args[start + 1]


def base_name(name: str) -> str:
    """``aten::add_`` -> ``add``, ``aten::_foreach_mul_`` -> ``mul``, ``vmibench::selective_scan`` ->
    ``selective_scan``; names outside the known namespaces are returned unchanged."""
    ns, sep, op = name.partition("::")
    if not sep or ns not in _NAMESPACES:
        return name
    op = op.split(".")[0]  # an overload suffix (aten::add.Tensor)
    if op.startswith("_foreach_"):
        op = op[len("_foreach_") :]
    if op not in _CLASS_OF and op.endswith("_") and not op.endswith("__"):
        op = op[:-1]  # in-place variant
    return op


def is_operator(name: str) -> bool:
    """Whether a profiler event name is an operator (``aten::`` / ``vmibench::`` / ``prims::``), not a scope,
    an autograd wrapper or a user annotation."""
    ns, sep, _ = name.partition("::")
    return bool(sep) and ns in _NAMESPACES


def op_class(name: str, args_or_shapes: Sequence[Any] | None = None) -> str:
    """The class of operator ``name`` (``aten::addmm``, ``aten::add_``, ``vmibench::selective_scan``).

    ``args_or_shapes``: the operator's positional arguments (tensors) or their shapes (sequences of ints, as the
    profiler's ``input_shapes`` gives them); only convolutions use them, to tell depthwise from dense.
    """
    if not is_operator(name):
        return OTHER
    op = base_name(name)
    cls = _CLASS_OF.get(op, OTHER)
    if cls == _CONV:
        if args_or_shapes is None:
            return CONV_DENSE
        inp, weight = _conv_operands(op, args_or_shapes)
        return conv_class(_shape(inp), _shape(weight))
    return cls


def roof_of(cls: str) -> str:
    """The roof class ``cls`` is held against (see the module docstring for the assumptions)."""
    return ROOF_OF[cls]


def known_operators() -> dict[str, str]:
    """Every operator base name in the table and its class (convolutions as ``conv``: resolved per call)."""
    return dict(_CLASS_OF)


# -- (block, class) tables ------------------------------------------------------------------------------------


def by_class(cells: Mapping[tuple[str, str], float]) -> dict[str, float]:
    """Sum a (block, class) table over blocks, in :data:`CLASSES` order (absent classes left out)."""
    out = dict.fromkeys(CLASSES, 0.0)
    for (_, cls), value in cells.items():
        out[cls] += value
    return {cls: v for cls, v in out.items() if v or any(c == cls for _, c in cells)}


def by_block(cells: Mapping[tuple[str, str], float]) -> dict[str, float]:
    """Sum a (block, class) table over classes, blocks in first-seen order."""
    out: dict[str, float] = {}
    for (block, _), value in cells.items():
        out[block] = out.get(block, 0.0) + value
    return out


def shares(values: Mapping[str, float]) -> dict[str, float]:
    """Each value's fraction of their sum (all zero when the sum is zero)."""
    total = sum(values.values())
    return {k: (v / total if total else 0.0) for k, v in values.items()}
