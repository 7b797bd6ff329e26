"""The op table: every IR op, defined once (signature, type rule, flags, NumPy semantics).

Backends keep their lowerings keyed by these names; tests walk this table against every
backend. Attributes follow torch's conventions (dims may be negative; pads list the last
dimension first) so the tracer maps aten calls without translation.
"""

from __future__ import annotations

import numpy as np

from . import reference as R
from .opdef import REQUIRED, Flag, defop
from .shapes import (TypeRuleError, broadcast, broadcast_to_bool, norm_dim, norm_dims,
                     numel, pool_out, reduction, same_as, same_dtypes)
from .types import DType, TensorType, parse_type

EW, RED, NORM, VIEW = Flag.ELEMENTWISE, Flag.REDUCTION, Flag.NORMALIZATION, Flag.VIEW
COMM, SIDE, CREATE, CONTRACT = Flag.COMMUTATIVE, Flag.SIDE_EFFECT, Flag.CREATION, Flag.CONTRACTION

# ---- elementwise ------------------------------------------------------------------------

UNARY = {
    "neg": np.negative,
    "abs": np.abs,
    "exp": np.exp,
    "log": np.log,
    "log1p": np.log1p,
    "expm1": np.expm1,
    "sqrt": np.sqrt,
    "rsqrt": lambda x: (1 / np.sqrt(x)).astype(x.dtype),
    "reciprocal": lambda x: (1 / x).astype(x.dtype),
    "sin": np.sin,
    "cos": np.cos,
    "tanh": np.tanh,
    "sigmoid": R.sigmoid,
    "erf": R.erf,
    "relu": lambda x: np.where(np.isnan(x) | (x > 0), x, np.zeros_like(x))
    if x.dtype.kind == "f" else np.maximum(x, 0),   # keeps NaN, as torch does
    "silu": lambda x: (x * R.sigmoid(x)).astype(x.dtype),
    "floor": np.floor,
    "ceil": np.ceil,
    "round": np.round,
    "sign": R.sign,
    "bitwise_not": lambda x: np.logical_not(x) if x.dtype == np.bool_ else np.invert(x),
}
for _name, _fn in UNARY.items():
    defop(_name, infer=same_as(0), ref=_fn, flags={EW})

defop("logical_not", infer=lambda ts: ts[0].with_dtype(DType.bool),
      ref=np.logical_not, flags={EW})
defop("isnan", infer=lambda ts: ts[0].with_dtype(DType.bool), ref=np.isnan, flags={EW})
defop("leaky_relu", attrs={"negative_slope": 0.01}, infer=same_as(0), flags={EW},
      ref=lambda x, negative_slope: np.where(x > 0, x, x * x.dtype.type(negative_slope)))
defop("gelu", attrs={"approximate": "none"}, infer=same_as(0), flags={EW}, ref=R.gelu)
defop("clamp", attrs={"min": None, "max": None}, infer=same_as(0), flags={EW},
      ref=lambda x, min, max: x if min is None and max is None else np.clip(x, min, max)
      .astype(x.dtype))
defop("cast", attrs={"dtype": REQUIRED}, flags={EW},
      infer=lambda ts, dtype: ts[0].with_dtype(DType(dtype)),
      ref=lambda x, dtype: x.astype(DType(dtype).np))

BINARY = {
    "add": (np.add, {COMM}),
    "sub": (np.subtract, set()),
    "mul": (np.multiply, {COMM}),
    "div": (np.true_divide, set()),
    "pow": (np.power, set()),
    "maximum": (np.maximum, {COMM}),
    "minimum": (np.minimum, {COMM}),
    "remainder": (np.mod, set()),
    "floor_divide": (np.floor_divide, set()),
    "bitwise_and": (np.bitwise_and, {COMM}),
    "bitwise_or": (np.bitwise_or, {COMM}),
    "bitwise_xor": (np.bitwise_xor, {COMM}),
}
for _name, (_fn, _flags) in BINARY.items():
    defop(_name, inputs=("a", "b"), infer=broadcast, flags={EW} | _flags,
          ref=lambda a, b, _fn=_fn: _fn(a, b).astype(np.result_type(a, b)))

COMPARE = {"eq": (np.equal, {COMM}), "ne": (np.not_equal, {COMM}), "lt": (np.less, set()),
           "le": (np.less_equal, set()), "gt": (np.greater, set()),
           "ge": (np.greater_equal, set())}
for _name, (_fn, _flags) in COMPARE.items():
    defop(_name, inputs=("a", "b"), infer=broadcast_to_bool, ref=_fn, flags={EW} | _flags)

LOGICAL = {"logical_and": np.logical_and, "logical_or": np.logical_or,
           "logical_xor": np.logical_xor}
for _name, _fn in LOGICAL.items():
    defop(_name, inputs=("a", "b"), ref=_fn, flags={EW, COMM},
          infer=lambda ts: TensorType(DType.bool, broadcast(
              [t.with_dtype(DType.bool) for t in ts]).shape))


def _where_type(ts):
    if ts[0].dtype != DType.bool:
        raise TypeRuleError(f"where: condition must be bool, got {ts[0].dtype}")
    out = broadcast(ts[1:])
    return out.with_shape(broadcast([ts[0].with_dtype(out.dtype), out]).shape)


defop("where", inputs=("cond", "a", "b"), infer=_where_type, flags={EW},
      ref=lambda c, a, b: np.where(c, a, b))

# ---- reductions and normalisations ------------------------------------------------------

RED_ATTRS = {"dims": None, "keepdim": False}
REDUCE = {
    "sum": lambda x, dims, keepdim: np.sum(x, axis=_axes(dims), keepdims=keepdim, dtype=x.dtype),
    "mean": lambda x, dims, keepdim: R.mean(x, _axes(dims), keepdim),
    "prod": lambda x, dims, keepdim: np.prod(x, axis=_axes(dims), keepdims=keepdim, dtype=x.dtype),
    "amax": lambda x, dims, keepdim: np.amax(x, axis=_axes(dims), keepdims=keepdim),
    "amin": lambda x, dims, keepdim: np.amin(x, axis=_axes(dims), keepdims=keepdim),
}


def _axes(dims):
    return None if dims is None else tuple(dims) if isinstance(dims, tuple) else dims


for _name, _fn in REDUCE.items():
    defop(_name, attrs=RED_ATTRS, infer=reduction(), ref=_fn, flags={RED})
for _name, _fn in {"any": np.any, "all": np.all}.items():
    defop(_name, attrs=RED_ATTRS, infer=reduction(DType.bool), flags={RED},
          ref=lambda x, dims, keepdim, _fn=_fn: _fn(x, axis=_axes(dims), keepdims=keepdim))
defop("var", attrs={"dims": None, "correction": 1, "keepdim": False}, infer=reduction(),
      flags={RED}, ref=lambda x, dims, correction, keepdim: np.var(
          x.astype(np.float64), axis=_axes(dims), ddof=correction, keepdims=keepdim)
      .astype(x.dtype))


def _argmax_type(ts, dim, keepdim):
    if dim is None:
        return TensorType(DType.i64, (1,) * ts[0].rank if keepdim else ())
    return reduction(DType.i64)(ts, dims=(dim,), keepdim=keepdim)


def _argmax_ref(x, dim, keepdim):
    return np.asarray(np.argmax(x, axis=dim, keepdims=keepdim), dtype=np.int64)


defop("argmax", attrs={"dim": None, "keepdim": False}, infer=_argmax_type, ref=_argmax_ref,
      flags={RED})
defop("cumsum", attrs={"dim": REQUIRED}, infer=same_as(0),
      ref=lambda x, dim: np.cumsum(  # floats accumulate in f64, as torch's CPU kernel does
          x, axis=dim, dtype=np.float64 if x.dtype.kind == "f" else x.dtype).astype(x.dtype))
defop("softmax", attrs={"dim": REQUIRED}, infer=same_as(0), ref=R.softmax, flags={NORM})
defop("log_softmax", attrs={"dim": REQUIRED}, infer=same_as(0), ref=R.log_softmax, flags={NORM})
defop("layer_norm", inputs=("x", "weight?", "bias?"),
      attrs={"normalized_shape": REQUIRED, "eps": 1e-5}, infer=same_as(0),
      ref=R.layer_norm, flags={NORM})
defop("batch_norm", inputs=("x", "weight", "bias", "mean", "var"), attrs={"eps": 1e-5},
      infer=same_as(0), ref=R.batch_norm, flags={NORM},
      doc="Inference-mode batch norm over dim 1 with the given statistics.")
defop("batch_norm_train", inputs=("x", "weight", "bias", "running_mean", "running_var"),
      attrs={"momentum": 0.1, "eps": 1e-5}, infer=lambda ts, **_: (ts[0], ts[3], ts[4]),
      ref=R.batch_norm_train, flags={NORM},
      doc="Training-mode batch norm: batch statistics, and the updated running statistics.")

# ---- views and data movement --------------------------------------------------------------


def _reshape_type(ts, shape):
    n_in, n_out = numel(ts[0].shape), numel(shape)
    if n_in is not None and n_out is not None and n_in != n_out:
        raise TypeRuleError(f"reshape {ts[0].shape} -> {shape} changes the element count")
    return ts[0].with_shape(shape)


defop("reshape", attrs={"shape": REQUIRED}, infer=_reshape_type, flags={VIEW},
      ref=lambda x, shape: np.reshape(x, shape))
defop("flatten", attrs={"start_dim": 0, "end_dim": -1}, flags={VIEW},
      infer=lambda ts, start_dim, end_dim: ts[0].with_shape(
          _flat_shape(ts[0].shape, start_dim, end_dim)),
      ref=lambda x, start_dim, end_dim: x.reshape(_flat_shape(x.shape, start_dim, end_dim)))


def _flat_shape(shape, start, end):
    if not shape:
        return (1,)
    s, e = norm_dim(start, len(shape)), norm_dim(end, len(shape))
    mid = numel(shape[s:e + 1])
    if mid is None:
        raise TypeRuleError("flatten across a symbolic dimension; use reshape")
    return tuple(shape[:s]) + (mid,) + tuple(shape[e + 1:])


def _permute_type(ts, dims):
    if sorted(norm_dims(dims, ts[0].rank)) != list(range(ts[0].rank)) or len(dims) != ts[0].rank:
        raise TypeRuleError(f"permute dims {dims} are not a permutation of rank {ts[0].rank}")
    return ts[0].with_shape(tuple(ts[0].shape[d] for d in dims))


defop("permute", attrs={"dims": REQUIRED}, infer=_permute_type, flags={VIEW},
      ref=lambda x, dims: np.transpose(x, dims))
defop("transpose", attrs={"dim0": REQUIRED, "dim1": REQUIRED}, flags={VIEW},
      infer=lambda ts, dim0, dim1: ts[0].with_shape(_swap(ts[0].shape, dim0, dim1)),
      ref=lambda x, dim0, dim1: np.swapaxes(x, dim0, dim1))


def _swap(shape, a, b):
    s = list(shape)
    a, b = norm_dim(a, len(s)), norm_dim(b, len(s))
    s[a], s[b] = s[b], s[a]
    return tuple(s)


def _expand_type(ts, shape):
    src = ts[0].shape
    if len(shape) < len(src):
        raise TypeRuleError(f"expand {src} -> {shape} drops dimensions")
    for d_in, d_out in zip(src[::-1], shape[::-1]):
        if d_in != 1 and d_in != d_out:
            raise TypeRuleError(f"cannot expand {src} to {shape}")
    return ts[0].with_shape(shape)


defop("expand", attrs={"shape": REQUIRED}, infer=_expand_type, flags={VIEW},
      ref=lambda x, shape: np.broadcast_to(x, shape))


def _slice_len(size, start, end, step):
    return len(range(*slice(start, end, step).indices(size)))


def _slice_type(ts, dim, start, end, step):
    shape = list(ts[0].shape)
    d = norm_dim(dim, len(shape))
    if isinstance(shape[d], str):
        if start == 0 and step == 1 and (end is None or end == shape[d] or
                                         (isinstance(end, int) and end >= 2 ** 62)):
            return ts[0]
        raise TypeRuleError(f"slice of symbolic dimension {shape[d]} is not supported")
    shape[d] = _slice_len(shape[d], start, end, step)
    return ts[0].with_shape(shape)


defop("slice", attrs={"dim": 0, "start": 0, "end": None, "step": 1}, infer=_slice_type,
      flags={VIEW}, ref=lambda x, dim, start, end, step: x[
          (slice(None),) * (dim % x.ndim) + (slice(start, end, step),)])
defop("select", attrs={"dim": REQUIRED, "index": REQUIRED}, flags={VIEW},
      infer=lambda ts, dim, index: ts[0].with_shape(
          tuple(s for i, s in enumerate(ts[0].shape) if i != norm_dim(dim, ts[0].rank))),
      ref=lambda x, dim, index: np.take(x, index, axis=dim))


def _squeeze_dims(shape, dims):
    """Listed dims must have size 1 (the tracer lists only those); None: all size-1 dims."""
    if dims is None:
        return {d for d, s in enumerate(shape) if s == 1}
    dims = set(norm_dims(dims, len(shape)))
    bad = [d for d in dims if shape[d] != 1]
    if bad:
        raise TypeRuleError(f"squeeze of dims {sorted(bad)} of shape {tuple(shape)}: not size 1")
    return dims


defop("squeeze", attrs={"dims": None}, flags={VIEW},
      infer=lambda ts, dims: ts[0].with_shape(
          tuple(s for i, s in enumerate(ts[0].shape) if i not in _squeeze_dims(ts[0].shape, dims))),
      ref=lambda x, dims: np.squeeze(x, axis=tuple(_squeeze_dims(x.shape, dims))))


def _unsqueeze_shape(shape, dim):
    d = dim % (len(shape) + 1)
    return tuple(shape[:d]) + (1,) + tuple(shape[d:])


defop("unsqueeze", attrs={"dim": REQUIRED}, flags={VIEW},
      infer=lambda ts, dim: ts[0].with_shape(_unsqueeze_shape(ts[0].shape, dim)),
      ref=lambda x, dim: x.reshape(_unsqueeze_shape(x.shape, dim)))


def _cat_type(ts, dim):
    dt = same_dtypes(ts)
    d = norm_dim(dim, ts[0].rank)
    sizes = [t.shape[d] for t in ts]
    if any(isinstance(s, str) for s in sizes):
        raise TypeRuleError("cat along a symbolic dimension is not supported")
    return TensorType(dt, ts[0].shape[:d] + (sum(sizes),) + ts[0].shape[d + 1:])


defop("cat", inputs=("*xs",), attrs={"dim": 0}, infer=_cat_type,
      ref=lambda *xs, dim: np.concatenate(xs, axis=dim))
defop("stack", inputs=("*xs",), attrs={"dim": 0},
      infer=lambda ts, dim: TensorType(same_dtypes(ts), _unsqueeze_shape(ts[0].shape, dim)
                                       [:dim % (ts[0].rank + 1)] + (len(ts),)
                                       + ts[0].shape[dim % (ts[0].rank + 1):]),
      ref=lambda *xs, dim: np.stack(xs, axis=dim))


def _split_types(ts, dim, sizes):
    d = norm_dim(dim, ts[0].rank)
    if isinstance(ts[0].shape[d], int) and sum(sizes) != ts[0].shape[d]:
        raise TypeRuleError(f"split sizes {sizes} do not add up to {ts[0].shape[d]}")
    return tuple(ts[0].with_shape(ts[0].shape[:d] + (s,) + ts[0].shape[d + 1:]) for s in sizes)


defop("split", attrs={"dim": 0, "sizes": REQUIRED}, infer=_split_types, ref=R.split)
defop("gather", inputs=("x", "index"), attrs={"dim": REQUIRED},
      infer=lambda ts, dim: ts[1].with_dtype(ts[0].dtype), ref=R.gather)
defop("index_select", inputs=("x", "index"), attrs={"dim": REQUIRED},
      infer=lambda ts, dim: ts[0].with_shape(tuple(
          ts[1].shape[0] if i == norm_dim(dim, ts[0].rank) else s
          for i, s in enumerate(ts[0].shape))),
      ref=lambda x, index, dim: np.take(x, index, axis=dim))
defop("embedding", inputs=("weight", "indices"), attrs={"padding_idx": -1},
      infer=lambda ts, padding_idx: TensorType(ts[0].dtype, ts[1].shape + ts[0].shape[1:]),
      ref=lambda weight, indices, padding_idx: weight[indices])
defop("tril", attrs={"diagonal": 0}, infer=same_as(0),
      ref=lambda x, diagonal: np.tril(x, diagonal))
defop("triu", attrs={"diagonal": 0}, infer=same_as(0),
      ref=lambda x, diagonal: np.triu(x, diagonal))


def _pad_type(ts, pads, value):
    shape = list(ts[0].shape)
    for i in range(len(pads) // 2):
        d = len(shape) - 1 - i
        shape[d] = shape[d] + pads[2 * i] + pads[2 * i + 1]
    return ts[0].with_shape(shape)


defop("pad", attrs={"pads": REQUIRED, "value": 0.0}, infer=_pad_type, ref=R.pad)

# ---- creation -------------------------------------------------------------------------------

defop("full", inputs=(), attrs={"shape": REQUIRED, "value": REQUIRED, "dtype": "f32"},
      flags={CREATE}, infer=lambda ts, shape, value, dtype: TensorType(DType(dtype), shape),
      ref=lambda shape, value, dtype: np.full(shape, value, dtype=DType(dtype).np))
defop("arange", inputs=(), attrs={"start": 0, "end": REQUIRED, "step": 1, "dtype": "i64"},
      flags={CREATE}, infer=lambda ts, start, end, step, dtype: TensorType(
          DType(dtype), (len(np.arange(start, end, step)),)),
      ref=lambda start, end, step, dtype: np.arange(start, end, step).astype(DType(dtype).np))
defop("constant", inputs=(), attrs={"value": REQUIRED, "shape": (), "dtype": "f32"},
      flags={CREATE}, infer=lambda ts, value, shape, dtype: TensorType(DType(dtype), shape),
      ref=lambda value, shape, dtype: np.array(value, dtype=DType(dtype).np).reshape(shape),
      doc="A small literal tensor: value is a number or a flat tuple in row-major order.")

# ---- contractions -----------------------------------------------------------------------


def _matmul_type(ts):
    a, b = ts[0].shape, ts[1].shape
    dt = same_dtypes(ts)
    if not a or not b:
        raise TypeRuleError("matmul of a 0-d tensor")
    a2 = (1,) + a if len(a) == 1 else a
    b2 = b + (1,) if len(b) == 1 else b
    if a2[-1] != b2[-2] and isinstance(a2[-1], int) and isinstance(b2[-2], int):
        raise TypeRuleError(f"matmul inner dimensions differ: {a} @ {b}")
    from .shapes import broadcast_shapes
    batch = broadcast_shapes(a2[:-2], b2[:-2])
    out = batch + (a2[-2], b2[-1])
    if len(a) == 1:
        out = out[:-2] + out[-1:]
    if len(b) == 1:
        out = out[:-1]
    return TensorType(dt, out)


defop("matmul", inputs=("a", "b"), infer=_matmul_type, flags={CONTRACT},
      ref=lambda a, b: np.matmul(a, b))
defop("linear", inputs=("x", "weight", "bias?"), flags={CONTRACT},
      infer=lambda ts: TensorType(same_dtypes(ts), ts[0].shape[:-1] + ts[1].shape[:1]),
      ref=lambda x, weight, bias=None: (x @ weight.T if bias is None else x @ weight.T + bias)
      .astype(x.dtype))
defop("addmm", inputs=("bias", "a", "b"), attrs={"beta": 1.0, "alpha": 1.0}, flags={CONTRACT},
      infer=lambda ts, beta, alpha: TensorType(same_dtypes(ts), (ts[1].shape[0], ts[2].shape[1])),
      ref=lambda bias, a, b, beta, alpha: (beta * bias + alpha * (a @ b)).astype(a.dtype))


def _conv_type(ts, stride, padding, dilation, groups):
    x, w = ts[0].shape, ts[1].shape
    same_dtypes(ts)
    nsp = len(x) - 2
    if len(w) != nsp + 2 or x[1] != w[1] * groups:
        raise TypeRuleError(f"conv: input {x} does not fit weight {w} with groups={groups}")
    out = tuple(pool_out(x[2 + i], w[2 + i], stride[i], padding[i], dilation[i], False)
                for i in range(nsp))
    return ts[0].with_shape((x[0], w[0]) + out)


CONV_ATTRS = {"stride": REQUIRED, "padding": REQUIRED, "dilation": REQUIRED, "groups": 1}
for _name in ("conv1d", "conv2d"):
    defop(_name, inputs=("x", "weight", "bias?"), attrs=CONV_ATTRS, infer=_conv_type,
          ref=R.conv, flags={CONTRACT})


def _pool_type(ts, kernel_size, stride, padding, dilation=(1, 1), ceil_mode=False, **_):
    s = ts[0].shape
    out = tuple(pool_out(s[-2 + i], kernel_size[i], stride[i], padding[i], dilation[i],
                         ceil_mode) for i in range(2))
    return ts[0].with_shape(s[:-2] + out)


defop("max_pool2d", attrs={"kernel_size": REQUIRED, "stride": REQUIRED, "padding": (0, 0),
                           "dilation": (1, 1), "ceil_mode": False},
      infer=_pool_type, ref=R.max_pool2d)
defop("avg_pool2d", attrs={"kernel_size": REQUIRED, "stride": REQUIRED, "padding": (0, 0),
                           "ceil_mode": False, "count_include_pad": True,
                           "divisor_override": None},
      infer=_pool_type, ref=R.avg_pool2d)
defop("adaptive_avg_pool2d", attrs={"output_size": REQUIRED},
      infer=lambda ts, output_size: ts[0].with_shape(ts[0].shape[:-2] + tuple(output_size)),
      ref=R.adaptive_avg_pool2d)
defop("scaled_dot_product_attention", inputs=("q", "k", "v", "mask?"),
      attrs={"is_causal": False, "scale": None},
      infer=lambda ts, **_: ts[0].with_shape(ts[0].shape[:-1] + ts[2].shape[-1:]),
      ref=R.scaled_dot_product_attention, flags={CONTRACT})

# ---- losses -----------------------------------------------------------------------------


def _loss_type(ts, reduction, **_):
    return ts[0] if reduction == "none" else ts[0].with_shape(())


def _nll_type(ts, reduction, ignore_index):
    return ts[1].with_dtype(ts[0].dtype) if reduction == "none" else ts[0].with_shape(())


defop("mse_loss", inputs=("x", "target"), attrs={"reduction": "mean"}, infer=_loss_type,
      ref=R.mse_loss)
defop("nll_loss", inputs=("logp", "target"), attrs={"reduction": "mean", "ignore_index": -100},
      infer=_nll_type, ref=R.nll_loss)

# ---- guards, externs, fused regions -----------------------------------------------------


class GuardFailed(Exception):
    """A guard saw a different value from the one seen at trace time."""

    def __init__(self, expected, actual):
        super().__init__(f"guard expected {expected!r}, got {actual!r}")
        self.expected, self.actual = expected, actual


GUARD_RTOL = 1e-6
"""How far a float a guard sees may be from the traced one: a backend may reduce in another
order than eager did, a few ulps apart. Ints and bools compare exactly; NaN equals NaN."""


def guard_holds(actual, expected) -> bool:
    if actual == expected:
        return True
    if isinstance(expected, float):
        if expected != expected:
            return actual != actual
        return abs(actual - expected) <= GUARD_RTOL * abs(expected)
    return False


def _guard_ref(x, expected):
    actual = x.item()
    if not guard_holds(actual, expected):
        raise GuardFailed(expected, actual)
    return ()


defop("guard", attrs={"expected": REQUIRED}, infer=lambda ts, expected: (), ref=_guard_ref,
      flags={SIDE}, doc="Checks that a one-element tensor still holds the traced value.")
defop("extern", inputs=("*xs",), attrs={"target": REQUIRED, "call": "", "types": ()},
      flags={SIDE}, ref=None,
      infer=lambda ts, target, call, types: tuple(parse_type(t) for t in types),
      doc="Calls the host framework's op `target` at run time; `call` encodes the "
          "non-tensor arguments. Output types are recorded, not inferred.")
defop("fused", inputs=("*xs",), attrs={"kind": "elementwise"}, ref=None,
      infer=lambda ts, kind: (),  # the region's results give the types (see verify)
      doc="A fused group: its region is the body, its inputs bind the region's params.")
