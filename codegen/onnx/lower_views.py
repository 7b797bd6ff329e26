"""ONNX lowerings of the view, data-movement and creation ops, keyed by op name."""

from __future__ import annotations

import numpy as np
from onnx import helper

from ir.shapes import norm_dim, norm_dims
from ir.types import DType

from .builder import INT64_MAX, ONNX_DTYPE, lowers


def _in(node, i=0):
    return node.inputs[i].type


def _out(node, i=0):
    return node.outputs[i].type


# ---- views and data movement ------------------------------------------------------------------


@lowers("reshape", "flatten")
def _reshape(b, node, x, **_):
    return b.reshape(x, _in(node).shape, _out(node).shape)


@lowers("squeeze")
def _squeeze(b, node, x, dims):
    shape = _in(node).shape
    axes = [d for d in norm_dims(dims, len(shape)) if shape[d] == 1]
    return b.op("Squeeze", [x, b.ints(axes)]) if axes else b.op("Identity", [x])


@lowers("unsqueeze")
def _unsqueeze(b, node, x, dim):
    return b.op("Unsqueeze", [x, b.ints([dim % (_in(node).rank + 1)])])


@lowers("permute")
def _permute(b, node, x, dims):
    if not dims:
        return b.op("Identity", [x])
    return b.op("Transpose", [x], perm=[norm_dim(d, _in(node).rank) for d in dims])


@lowers("transpose")
def _transpose(b, node, x, dim0, dim1):
    rank = _in(node).rank
    perm = list(range(rank))
    a, c = norm_dim(dim0, rank), norm_dim(dim1, rank)
    perm[a], perm[c] = perm[c], perm[a]
    return b.op("Transpose", [x], perm=perm)


@lowers("expand")
def _expand(b, node, x, shape):
    """Expand broadcasts both ways, so a symbol lined up with the same input symbol is 1."""
    src = _in(node).shape
    off = len(shape) - len(src)
    dims = [1 if isinstance(d, str) and i >= off and src[i - off] == d else d
            for i, d in enumerate(shape)]
    return b.op("Expand", [x, b.shape(dims)])


@lowers("slice")
def _slice(b, node, x, dim, start, end, step):
    end = INT64_MAX if end is None else min(end, INT64_MAX)
    return b.op("Slice", [x, b.ints([start]), b.ints([end]),
                          b.ints([norm_dim(dim, _in(node).rank)]), b.ints([step])])


@lowers("select")
def _select(b, node, x, dim, index):
    return b.op("Gather", [x, b.const(np.array(index, np.int64))],
                axis=norm_dim(dim, _in(node).rank))


@lowers("cat")
def _cat(b, node, *xs, dim):
    return b.op("Concat", xs, axis=norm_dim(dim, _in(node).rank))


@lowers("stack")
def _stack(b, node, *xs, dim):
    axis = dim % (_in(node).rank + 1)
    return b.op("Concat", [b.op("Unsqueeze", [x, b.ints([axis])]) for x in xs], axis=axis)


@lowers("split")
def _split(b, node, x, dim, sizes):
    outs = b.op("Split", [x, b.ints(sizes)], n_out=len(sizes),
                axis=norm_dim(dim, _in(node).rank))
    return [outs] if len(sizes) == 1 else outs


@lowers("gather")
def _gather(b, node, x, index, dim):
    """GatherElements wants the index's shape in the other dims: crop x to it first."""
    xs, ix = _in(node).shape, _in(node, 1).shape
    axis = norm_dim(dim, len(xs))
    crop = [i for i, (a, c) in enumerate(zip(xs, ix)) if i != axis and a != c]
    if crop:
        x = b.op("Slice", [x, b.ints([0] * len(crop)), b.shape([ix[i] for i in crop]),
                           b.ints(crop)])
    return b.op("GatherElements", [x, index], axis=axis)


@lowers("index_select")
def _index_select(b, node, x, index, dim):
    return b.op("Gather", [x, index], axis=norm_dim(dim, _in(node).rank))


@lowers("embedding")
def _embedding(b, node, weight, indices, padding_idx):
    return b.op("Gather", [weight, indices], axis=0)


@lowers("tril", "triu")
def _trilu(b, node, x, diagonal):
    return b.op("Trilu", [x, b.const(np.array(diagonal, np.int64))], upper=int(node.op == "triu"))


@lowers("pad")
def _pad(b, node, x, pads, value):
    rank = _in(node).rank
    begin, end = [0] * rank, [0] * rank
    for i in range(len(pads) // 2):
        begin[rank - 1 - i], end[rank - 1 - i] = pads[2 * i], pads[2 * i + 1]
    return b.op("Pad", [x, b.ints(begin + end), b.scalar(value, _in(node).dtype)],
                mode="constant")


# ---- creation ---------------------------------------------------------------------------------


@lowers("full")
def _full(b, node, shape, value, dtype):
    dt = DType(dtype)
    fill = helper.make_tensor("value", ONNX_DTYPE[dt], [1],
                              np.array([value], dtype=dt.np).tolist())
    return b.op("ConstantOfShape", [b.shape(shape)], value=fill)


@lowers("arange")
def _arange(b, node, start, end, step, dtype):
    return b.const(np.arange(start, end, step).astype(DType(dtype).np))


@lowers("constant")
def _constant(b, node, value, shape, dtype):
    return b.const(np.array(value, dtype=DType(dtype).np).reshape(shape))
