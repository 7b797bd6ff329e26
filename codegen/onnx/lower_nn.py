"""ONNX lowerings of contractions, pooling, normalisation, attention and losses."""

from __future__ import annotations

import math

import numpy as np
from onnx import helper

from ir.types import DType

from .builder import ONNX_DTYPE, lowers


def _in(node, i=0):
    return node.inputs[i].type


# ---- contractions -----------------------------------------------------------------------------


@lowers("matmul")
def _matmul(b, node, x, y):
    return b.op("MatMul", [x, y])


@lowers("linear")
def _linear(b, node, x, weight, bias=None):
    """Gemm(transB=1) for 2-D inputs; MatMul with the transposed weight otherwise (onnxruntime
    fuses that pair back into one kernel)."""
    if _in(node).rank == 2:
        return b.op("Gemm", [x, weight, bias], transB=1)
    y = b.op("MatMul", [x, b.transposed(weight)])
    return y if bias is None else b.op("Add", [y, bias])


@lowers("addmm")
def _addmm(b, node, bias, x, y, beta, alpha):
    return b.op("Gemm", [x, y, bias], alpha=float(alpha), beta=float(beta))


@lowers("conv1d", "conv2d")
def _conv(b, node, x, weight, bias=None, *, stride, padding, dilation, groups):
    return b.op("Conv", [x, weight, bias], strides=list(stride), pads=list(padding) * 2,
                dilations=list(dilation), group=groups,
                kernel_shape=list(_in(node, 1).shape[2:]))


# ---- pooling ----------------------------------------------------------------------------------


def _batched(b, node, x, fn):
    """ONNX pools want N, C, H, W: add the batch dimension for 3-D inputs and drop it again."""
    if _in(node).rank == 4:
        return fn(x)
    y = fn(b.op("Unsqueeze", [x, b.ints([0])]))
    return b.op("Squeeze", [y, b.ints([0])])


@lowers("max_pool2d")
def _max_pool(b, node, x, kernel_size, stride, padding, dilation, ceil_mode):
    return _batched(b, node, x, lambda v: b.op(
        "MaxPool", [v], kernel_shape=list(kernel_size), strides=list(stride),
        pads=list(padding) * 2, dilations=list(dilation), ceil_mode=int(ceil_mode)))


@lowers("avg_pool2d")
def _avg_pool(b, node, x, kernel_size, stride, padding, ceil_mode, count_include_pad,
              divisor_override):
    include = count_include_pad or bool(divisor_override)
    y = _batched(b, node, x, lambda v: b.op(
        "AveragePool", [v], kernel_shape=list(kernel_size), strides=list(stride),
        pads=list(padding) * 2, ceil_mode=int(ceil_mode), count_include_pad=int(include)))
    if not divisor_override:
        return y
    scale = kernel_size[0] * kernel_size[1] / divisor_override
    return b.op("Mul", [y, b.scalar(scale, _in(node).dtype)])


def _avg_matrix(size: int, out: int) -> np.ndarray:
    """(out, size) matrix whose row i averages torch's adaptive window i."""
    m = np.zeros((out, size))
    for i in range(out):
        lo, hi = (i * size) // out, -(-((i + 1) * size) // out)
        m[i, lo:hi] = 1.0 / (hi - lo)
    return m


@lowers("adaptive_avg_pool2d")
def _adaptive_avg_pool(b, node, x, output_size):
    """An AveragePool when the windows tile evenly; else P_h @ x @ P_w^T (exact averages)."""
    t = _in(node)
    (h, w), (oh, ow) = t.shape[-2:], output_size
    if (oh, ow) == (1, 1):
        return _batched(b, node, x, lambda v: b.op("GlobalAveragePool", [v]))
    if h % oh == 0 and w % ow == 0:
        k = [h // oh, w // ow]
        return _batched(b, node, x, lambda v: b.op("AveragePool", [v], kernel_shape=k,
                                                   strides=k))
    dt = t.dtype.np
    rows = b.op("MatMul", [b.const(_avg_matrix(h, oh).astype(dt)), x])
    return b.op("MatMul", [rows, b.const(_avg_matrix(w, ow).T.astype(dt))])


# ---- normalisation ----------------------------------------------------------------------------


@lowers("softmax")
def _softmax(b, node, x, dim):
    return b.op("Softmax", [x], axis=dim)


@lowers("log_softmax")
def _log_softmax(b, node, x, dim):
    return b.op("LogSoftmax", [x], axis=dim)


@lowers("layer_norm")
def _layer_norm(b, node, x, weight=None, bias=None, *, normalized_shape, eps):
    if weight is None:   # LayerNormalization requires a scale
        weight = b.const(np.ones(tuple(normalized_shape), _in(node).dtype.np))
    return b.op("LayerNormalization", [x, weight, bias], axis=-len(normalized_shape),
                epsilon=float(eps))


@lowers("batch_norm")
def _batch_norm(b, node, x, weight, bias, mean, var, eps):
    return b.op("BatchNormalization", [x, weight, bias, mean, var], epsilon=float(eps))


@lowers("batch_norm_train")
def _batch_norm_train(b, node, x, weight, bias, running_mean, running_var, momentum, eps):
    """Batch statistics written out; the running-statistics updates are two more outputs."""
    t = _in(node)
    dt = t.dtype
    axes = [0] + list(range(2, t.rank))
    channel = b.ints([1, -1] + [1] * (t.rank - 2))
    mean = b.reduce("ReduceMean", x, axes, True)
    d = b.op("Sub", [x, mean])
    var = b.reduce("ReduceMean", b.op("Mul", [d, d]), axes, True)
    inv = b.op("Reciprocal", [b.op("Sqrt", [b.op("Add", [var, b.scalar(eps, dt)])])])
    scale = b.op("Mul", [inv, b.op("Reshape", [weight, channel])])
    y = b.op("Add", [b.op("Mul", [d, scale]), b.op("Reshape", [bias, channel])])
    n = b.numel([t.shape[a] for a in axes], dt)
    n_minus_1 = b.op("Max", [b.op("Sub", [n, b.scalar(1, dt)]), b.scalar(1, dt)])
    unbiased = b.op("Mul", [var, b.op("Div", [n, n_minus_1])])
    keep = b.scalar(1 - momentum, dt)
    new = []
    for running, batch in ((running_mean, mean), (running_var, unbiased)):
        flat = b.op("Reshape", [batch, b.ints([-1])])
        upd = b.op("Add", [b.op("Mul", [running, keep]),
                           b.op("Mul", [flat, b.scalar(momentum, dt)])])
        new.append(upd)
    return y, new[0], new[1]


# ---- attention --------------------------------------------------------------------------------


@lowers("scaled_dot_product_attention")
def _sdpa(b, node, q, k, v, mask=None, *, is_causal, scale):
    tq, tk = _in(node), _in(node, 1)
    dt = tq.dtype
    scale = 1.0 / math.sqrt(tq.shape[-1]) if scale is None else scale
    perm = list(range(tk.rank - 2)) + [tk.rank - 1, tk.rank - 2]
    s = b.op("MatMul", [q, b.op("Transpose", [k], perm=perm)])
    s = b.op("Mul", [s, b.scalar(scale, dt)])
    neg_inf = b.scalar(-np.inf, dt)
    if is_causal:
        one = helper.make_tensor("value", ONNX_DTYPE[DType.f32], [1], [1.0])
        ones = b.op("ConstantOfShape", [b.shape([tq.shape[-2], tk.shape[-2]])], value=one)
        tri = b.op("Cast", [b.op("Trilu", [ones], upper=0)], to=ONNX_DTYPE[DType.bool])
        s = b.op("Where", [tri, s, neg_inf])
    if mask is not None:
        masked = _in(node, 3).dtype == DType.bool
        s = b.op("Where", [mask, s, neg_inf]) if masked else b.op("Add", [s, mask])
    p = b.op("Softmax", [s], axis=-1)
    if mask is not None:   # a fully masked row gives NaN in Softmax; the IR says zeros
        p = b.op("Where", [b.op("IsNaN", [p]), b.scalar(0, dt), p])
    return b.op("MatMul", [p, v])


# ---- losses -----------------------------------------------------------------------------------


@lowers("mse_loss")
def _mse_loss(b, node, x, target, reduction):
    d = b.op("Sub", [x, target])
    sq = b.op("Mul", [d, d])
    if reduction == "none":
        return sq
    return b.reduce("ReduceMean" if reduction == "mean" else "ReduceSum", sq, None, False)


@lowers("nll_loss")
def _nll_loss(b, node, logp, target, reduction, ignore_index):
    unbatched = _in(node).rank == 1
    if unbatched:
        logp = b.op("Unsqueeze", [logp, b.ints([0])])
        target = b.op("Unsqueeze", [target, b.ints([0])])
    out = b.op("NegativeLogLikelihoodLoss", [logp, target], reduction=reduction,
               ignore_index=int(ignore_index))
    if unbatched and reduction == "none":
        out = b.op("Squeeze", [out, b.ints([0])])
    return out
