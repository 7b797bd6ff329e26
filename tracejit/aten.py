"""Rules from aten ops to IR nodes, keyed by aten overload (``"add.Tensor"``) or packet
(``"add"``) name. A rule gets the tracer, the eager result and the aten arguments, and
returns the IR value(s) for the result (None for an output the IR cannot represent).

In-place variants (``add_``) reuse the functional rule; the tracer rebinds the written
tensor. Ops without a rule fall to torch's decompositions, then to ``extern``.
"""

from __future__ import annotations

import math

import torch

from ir.types import DType

from .errors import TraceAbort

RULES: dict = {}


def rule(*names):
    def register(fn):
        for n in names:
            RULES[n] = fn
        return fn
    return register


TORCH_TO_IR = {
    torch.float16: DType.f16, torch.float32: DType.f32, torch.float64: DType.f64,
    torch.int8: DType.i8, torch.uint8: DType.u8, torch.int16: DType.i16,
    torch.int32: DType.i32, torch.int64: DType.i64, torch.bool: DType.bool,
}


def ir_dtype(dtype: torch.dtype) -> DType:
    try:
        return TORCH_TO_IR[dtype]
    except KeyError:
        raise TraceAbort(f"dtype {dtype} is not supported by the IR") from None


def _dt(t: torch.Tensor) -> DType:
    return ir_dtype(t.dtype)


def _dims(dim, rank):
    if dim is None or (isinstance(dim, (list, tuple)) and len(dim) == 0):
        return None
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    return tuple(sorted(d % max(rank, 1) for d in dims))


# ---- elementwise ----------------------------------------------------------------------------

def _unary(op):
    def conv(tr, out, x, *args, **kwargs):
        return tr.emit(op, [tr.operand(x, _dt(out))])
    return conv


for _name in ("neg", "abs", "exp", "log", "log1p", "expm1", "sqrt", "rsqrt", "reciprocal",
              "sin", "cos", "tanh", "sigmoid", "erf", "relu", "silu", "floor", "ceil",
              "sign", "bitwise_not"):
    rule(_name)(_unary(_name))
rule("round.default")(_unary("round"))


def _bool_unary_rule(op):
    def conv(tr, out, x):
        return tr.emit(op, [tr.value_of(x)])
    return conv


RULES["logical_not"] = _bool_unary_rule("logical_not")
RULES["isnan"] = _bool_unary_rule("isnan")


@rule("leaky_relu")
def _leaky_relu(tr, out, x, negative_slope=0.01):
    return tr.emit("leaky_relu", [tr.value_of(x)], negative_slope=float(negative_slope))


@rule("gelu")
def _gelu(tr, out, x, approximate="none"):
    return tr.emit("gelu", [tr.value_of(x)], approximate=approximate)


def _clamp_rule(kind):
    def conv(tr, out, x, a=None, b=None, **kwargs):
        lo, hi = {"clamp": (a, b), "clamp_min": (a, None), "clamp_max": (None, a),
                  "hardtanh": (-1.0 if a is None else a, 1.0 if b is None else b)}[kind]
        lo = kwargs.get("min", lo) if kind == "clamp" else lo
        hi = kwargs.get("max", hi) if kind == "clamp" else hi
        if isinstance(lo, torch.Tensor) or isinstance(hi, torch.Tensor):
            v = tr.operand(x, _dt(out))
            if lo is not None:
                v = tr.emit("maximum", [v, tr.operand(lo, _dt(out))])
            if hi is not None:
                v = tr.emit("minimum", [v, tr.operand(hi, _dt(out))])
            return v
        cast = float if _dt(out).is_float else int
        return tr.emit("clamp", [tr.operand(x, _dt(out))],
                       min=None if lo is None else cast(lo), max=None if hi is None else cast(hi))
    return conv


for _kind in ("clamp", "clamp_min", "clamp_max", "hardtanh"):
    RULES[_kind] = _clamp_rule(_kind)


def _binary(op, compare=False):
    def conv(tr, out, a, b, *, alpha=1, rounding_mode=None, **_):
        dtype = _dt_of_result(a, b) if compare else _dt(out)
        va, vb = tr.operand(a, dtype), tr.operand(b, dtype)
        if alpha != 1:
            vb = tr.emit("mul", [vb, tr.constant(alpha, dtype)])
        return tr.emit(op, [va, vb])
    return conv


def _dt_of_result(a, b) -> DType:
    return ir_dtype(torch.result_type(a, b))


for _name in ("add", "sub", "mul", "maximum", "minimum", "remainder", "floor_divide",
              "bitwise_and", "bitwise_or", "bitwise_xor"):
    RULES[_name] = _binary(_name)
for _name in ("eq", "ne", "lt", "le", "gt", "ge", "logical_and", "logical_or", "logical_xor"):
    RULES[_name] = _binary(_name, compare=True)   # operands meet in their common dtype


@rule("div")
def _div(tr, out, a, b, *, rounding_mode=None):
    if rounding_mode == "trunc":
        raise TraceAbort("div with rounding_mode='trunc' has no IR rule")
    dtype = _dt(out)
    op = "floor_divide" if rounding_mode == "floor" else "div"
    return tr.emit(op, [tr.operand(a, dtype), tr.operand(b, dtype)])


@rule("pow")
def _pow(tr, out, a, b):
    dtype = _dt(out)
    if not isinstance(b, torch.Tensor):
        va = tr.operand(a, dtype)
        if b == 2:
            return tr.emit("mul", [va, va])
        if b == 1:
            return va
        if b == 0.5 and dtype.is_float:
            return tr.emit("sqrt", [va])
    return tr.emit("pow", [tr.operand(a, dtype), tr.operand(b, dtype)])


@rule("where.self", "where.ScalarOther", "where.ScalarSelf", "where.Scalar")
def _where(tr, out, cond, a, b):
    dtype = _dt(out)
    return tr.emit("where", [tr.operand(cond, DType.bool), tr.operand(a, dtype),
                             tr.operand(b, dtype)])


@rule("_to_copy", "to.dtype", "_to_dtype", "type_as")
def _to_copy(tr, out, x, *args, **kwargs):
    if out.device.type != "cpu" or x.device != out.device:
        raise TraceAbort(f"device copy to {out.device} is not captured")
    return tr.operand(x, _dt(out))


@rule("clone", "contiguous", "alias", "detach")
def _identity(tr, out, x, *args, **kwargs):
    return tr.value_of(x)


@rule("lift_fresh", "lift_fresh_copy")
def _lift_fresh(tr, out, x):
    return tr.literal(x)


@rule("copy")
def _copy(tr, out, dst, src, non_blocking=False):
    v = tr.operand(src, _dt(dst))
    if v.type.shape != tuple(dst.shape):
        v = tr.emit("expand", [v], shape=tuple(dst.shape))
    return v


@rule("fill.Scalar", "zero", "fill.Tensor")
def _fill(tr, out, x, value=0):
    if isinstance(value, torch.Tensor):
        return _expand_to(tr, tr.operand(value, _dt(out)), tuple(out.shape))
    return _full(tr, out, value)


def _expand_to(tr, v, shape):
    if v.type.shape == shape:
        return v
    return tr.emit("expand", [v], shape=shape)


def _full(tr, out, value):
    dtype = _dt(out)
    value = bool(value) if dtype == DType.bool else int(value) if dtype.is_int else float(value)
    return tr.emit("full", [], shape=tuple(out.shape), value=value, dtype=str(dtype))


# ---- creation -----------------------------------------------------------------------------

@rule("full", "full_like", "new_full")
def _full_rule(tr, out, *args, **kwargs):
    value = kwargs.get("fill_value", args[1] if len(args) > 1 else None)
    return _full(tr, out, value)


@rule("zeros", "zeros_like", "new_zeros", "empty", "empty_like", "new_empty",
      "empty.memory_format", "empty_strided")
def _zeros(tr, out, *args, **kwargs):
    return _full(tr, out, 0)


@rule("ones", "ones_like", "new_ones")
def _ones(tr, out, *args, **kwargs):
    return _full(tr, out, 1)


@rule("scalar_tensor")
def _scalar_tensor(tr, out, value, **kwargs):
    return tr.constant(value, _dt(out))


@rule("arange.default", "arange.start", "arange.start_step")
def _arange(tr, out, *args, **kwargs):
    start, end, step = (0, args[0], 1) if len(args) == 1 else (
        args[0], args[1], args[2] if len(args) > 2 else kwargs.get("step", 1))
    if _dt(out).is_float or any(isinstance(v, float) for v in (start, end, step)):
        raise TraceAbort("float arange is not captured exactly; it runs in torch")
    return tr.emit("arange", [], start=int(start), end=int(end), step=int(step),
                   dtype=str(_dt(out)))


# ---- views and data movement -----------------------------------------------------------------

@rule("view", "_unsafe_view", "reshape", "view.dtype", "_reshape_alias")
def _reshape(tr, out, x, *args, **kwargs):
    if out.dtype != x.dtype:
        raise TraceAbort("view as another dtype is not captured")
    return tr.emit("reshape", [tr.value_of(x)], shape=tuple(out.shape))


@rule("expand")
def _expand(tr, out, x, *args, **kwargs):
    return _expand_to(tr, tr.value_of(x), tuple(out.shape))


@rule("permute")
def _permute(tr, out, x, dims):
    return tr.reuse("permute", [tr.value_of(x)], dims=tuple(d % max(x.dim(), 1) for d in dims))


@rule("t")
def _t(tr, out, x):
    v = tr.value_of(x)
    return v if x.dim() < 2 else tr.reuse("permute", [v], dims=(1, 0))


@rule("transpose.int", "transpose_")
def _transpose(tr, out, x, d0, d1):
    rank = max(x.dim(), 1)
    dims = list(range(x.dim()))
    if dims:
        dims[d0 % rank], dims[d1 % rank] = dims[d1 % rank], dims[d0 % rank]
    return tr.reuse("permute", [tr.value_of(x)], dims=tuple(dims))


@rule("unsqueeze")
def _unsqueeze(tr, out, x, dim):
    return tr.emit("unsqueeze", [tr.value_of(x)], dim=dim % (x.dim() + 1))


@rule("squeeze.default", "squeeze.dim", "squeeze.dims")
def _squeeze(tr, out, x, dim=None):
    dims = tuple(d for d in (_dims(dim, x.dim()) or range(x.dim())) if x.shape[d] == 1)
    return tr.emit("squeeze", [tr.value_of(x)], dims=dims) if dims else tr.value_of(x)


@rule("select.int")
def _select(tr, out, x, dim, index):
    d = dim % x.dim()
    return tr.emit("select", [tr.value_of(x)], dim=d, index=index % x.shape[d])


@rule("slice.Tensor")
def _slice(tr, out, x, dim=0, start=None, end=None, step=1):
    d = dim % x.dim()
    start, end, _ = slice(start, end, step).indices(x.shape[d])
    return tr.emit("slice", [tr.value_of(x)], dim=d, start=start, end=end, step=step)


@rule("split.Tensor", "split_with_sizes", "unsafe_split.Tensor", "unsafe_split_with_sizes",
      "split.sizes", "chunk")
def _split(tr, out, x, _size, dim=0):
    d = dim % x.dim()
    sizes = tuple(o.shape[d] for o in out)
    if len(sizes) == 1:
        return [tr.value_of(x)]
    return list(tr.emit("split", [tr.value_of(x)], dim=d, sizes=sizes))


@rule("unbind.int")
def _unbind(tr, out, x, dim=0):
    d = dim % x.dim()
    v = tr.value_of(x)
    return [tr.emit("select", [v], dim=d, index=i) for i in range(x.shape[d])]


@rule("cat")
def _cat(tr, out, tensors, dim=0):
    dtype = _dt(out)
    parts = [t for t in tensors if not (t.dim() == 1 and t.shape[0] == 0 and out.dim() > 1)]
    vals = [tr.operand(t, dtype) for t in parts]
    if len(vals) == 1:
        return vals[0]
    return tr.emit("cat", vals, dim=dim % out.dim())


@rule("stack")
def _stack(tr, out, tensors, dim=0):
    dtype = _dt(out)
    return tr.emit("stack", [tr.operand(t, dtype) for t in tensors], dim=dim % out.dim())


@rule("constant_pad_nd")
def _pad(tr, out, x, pad, value=0):
    return tr.emit("pad", [tr.value_of(x)], pads=tuple(pad), value=float(value))


def _tri(op):
    def conv(tr, out, x, diagonal=0):
        return tr.emit(op, [tr.value_of(x)], diagonal=diagonal)
    return conv


RULES["tril"], RULES["triu"] = _tri("tril"), _tri("triu")


@rule("gather")
def _gather(tr, out, x, dim, index, sparse_grad=False):
    return tr.emit("gather", [tr.value_of(x), tr.value_of(index)], dim=dim % max(x.dim(), 1))


@rule("index_select")
def _index_select(tr, out, x, dim, index):
    return tr.emit("index_select", [tr.value_of(x), tr.value_of(index)],
                   dim=dim % max(x.dim(), 1))


@rule("embedding")
def _embedding(tr, out, weight, indices, padding_idx=-1, *args):
    return tr.emit("embedding", [tr.value_of(weight), tr.value_of(indices)],
                   padding_idx=padding_idx)


@rule("cumsum")
def _cumsum(tr, out, x, dim, dtype=None):
    return tr.emit("cumsum", [tr.operand(x, _dt(out))], dim=dim % max(x.dim(), 1))


# ---- reductions -----------------------------------------------------------------------------

def _reduce(op):
    def conv(tr, out, x, dim=None, keepdim=False, *, dtype=None, **kwargs):
        if isinstance(dim, bool):           # sum.default(x, dtype) has no dims
            dim, keepdim = None, False
        return tr.emit(op, [tr.operand(x, _dt(out) if op not in ("any", "all") else _dt(x))],
                       dims=_dims(dim, x.dim()), keepdim=bool(keepdim))
    return conv


for _name in ("sum", "mean", "prod", "amax", "amin", "any", "all"):
    RULES[_name] = _reduce(_name)


def _extreme(reduce_op, flip):
    def whole(tr, out, x):
        return tr.emit(reduce_op, [tr.value_of(x)])

    def along(tr, out, x, dim, keepdim=False):
        v = tr.value_of(x)
        d = dim % max(x.dim(), 1)
        vals = tr.emit(reduce_op, [v], dims=(d,), keepdim=keepdim)
        if flip and not x.dtype.is_floating_point:
            return vals, None               # argmin of ints: not expressible with argmax
        src = tr.emit("neg", [v]) if flip else v
        return vals, tr.emit("argmax", [src], dim=d, keepdim=keepdim)
    return whole, along


RULES["max.default"], RULES["max.dim"] = _extreme("amax", flip=False)
RULES["min.default"], RULES["min.dim"] = _extreme("amin", flip=True)


@rule("argmax")
def _argmax(tr, out, x, dim=None, keepdim=False):
    return tr.emit("argmax", [tr.value_of(x)], dim=None if dim is None else dim % max(x.dim(), 1),
                   keepdim=keepdim)


@rule("var.correction", "var.dim")
def _var(tr, out, x, dim=None, *args, correction=None, keepdim=False, **kwargs):
    if args:                     # var.dim(x, dim, unbiased, keepdim)
        correction = 1 if args[0] else 0
        keepdim = args[1] if len(args) > 1 else keepdim
    corr = 1 if correction is None else correction
    return tr.emit("var", [tr.value_of(x)], dims=_dims(dim, x.dim()), correction=corr,
                   keepdim=keepdim)


def _softmax(op):
    def conv(tr, out, x, dim, *args, **kwargs):
        return tr.emit(op, [tr.operand(x, _dt(out))], dim=dim % max(x.dim(), 1))
    return conv


for _name in ("_softmax", "softmax.int", "_safe_softmax"):
    RULES[_name] = _softmax("softmax")
for _name in ("_log_softmax", "log_softmax.int"):
    RULES[_name] = _softmax("log_softmax")


# ---- contractions, convolution, pooling, normalisation -----------------------------------

@rule("mm", "bmm", "matmul")
def _matmul(tr, out, a, b):
    return tr.emit("matmul", [tr.value_of(a), tr.value_of(b)])


@rule("addmm")
def _addmm(tr, out, bias, a, b, *, beta=1, alpha=1):
    return tr.emit("addmm", [tr.value_of(bias), tr.value_of(a), tr.value_of(b)],
                   beta=float(beta), alpha=float(alpha))


@rule("convolution")
def _convolution(tr, out, x, w, b, stride, padding, dilation, transposed, output_padding,
                 groups):
    nsp = x.dim() - 2
    if transposed or nsp not in (1, 2):
        raise UseExtern()
    inputs = [tr.value_of(x), tr.value_of(w)] + ([tr.value_of(b)] if b is not None else [])
    return tr.emit(f"conv{nsp}d", inputs, stride=tuple(stride), padding=tuple(padding),
                   dilation=tuple(dilation), groups=groups)


class UseExtern(Exception):
    """Raised by a rule that declines an op variant; the tracer records an extern."""


def _pair(v, default=None):
    if v is None or (isinstance(v, (list, tuple)) and len(v) == 0):
        return default
    v = tuple(v) if isinstance(v, (list, tuple)) else (v,)
    return v * 2 if len(v) == 1 else v


@rule("max_pool2d_with_indices", "max_pool2d")
def _max_pool(tr, out, x, kernel_size, stride=(), padding=0, dilation=1, ceil_mode=False):
    k = _pair(kernel_size)
    v = tr.emit("max_pool2d", [tr.value_of(x)], kernel_size=k, stride=_pair(stride, k),
                padding=_pair(padding), dilation=_pair(dilation), ceil_mode=ceil_mode)
    return (v, None) if isinstance(out, tuple) else v


@rule("avg_pool2d")
def _avg_pool(tr, out, x, kernel_size, stride=(), padding=0, ceil_mode=False,
              count_include_pad=True, divisor_override=None):
    k = _pair(kernel_size)
    return tr.emit("avg_pool2d", [tr.value_of(x)], kernel_size=k, stride=_pair(stride, k),
                   padding=_pair(padding), ceil_mode=ceil_mode,
                   count_include_pad=count_include_pad, divisor_override=divisor_override)


@rule("_adaptive_avg_pool2d", "adaptive_avg_pool2d")
def _adaptive_avg_pool(tr, out, x, output_size):
    return tr.emit("adaptive_avg_pool2d", [tr.value_of(x)], output_size=tuple(out.shape[-2:]))


def _channel_param(tr, t, x, value, dtype):
    if t is not None:
        return tr.operand(t, dtype)
    return tr.emit("full", [], shape=(x.shape[1],), value=value, dtype=str(dtype))


@rule("native_batch_norm", "_native_batch_norm_legit")
def _batch_norm(tr, out, x, weight, bias, running_mean, running_var, training, momentum, eps):
    dtype = _dt(x)
    w = _channel_param(tr, weight, x, 1.0, dtype)
    b = _channel_param(tr, bias, x, 0.0, dtype)
    if not training:
        v = tr.emit("batch_norm", [tr.value_of(x), w, b, tr.value_of(running_mean),
                                   tr.value_of(running_var)], eps=float(eps))
        return (v, None, None)
    if running_mean is None:
        raise TraceAbort("batch norm in training without running statistics is not captured")
    # eager has updated the running stats in place already (its schema does not say so);
    # their values in the trace are still the ones from before this op, as at run time
    y, rm, rv = tr.emit("batch_norm_train", [tr.value_of(x), w, b, tr.value_of(running_mean),
                                             tr.value_of(running_var)],
                        momentum=float(momentum), eps=float(eps))
    tr.hidden_write(running_mean, rm)
    tr.hidden_write(running_var, rv)
    return (y, None, None)


@rule("_native_batch_norm_legit_no_training")
def _batch_norm_eval(tr, out, x, weight, bias, running_mean, running_var, momentum, eps):
    return _batch_norm(tr, out, x, weight, bias, running_mean, running_var, False, momentum, eps)


@rule("native_layer_norm")
def _layer_norm(tr, out, x, normalized_shape, weight, bias, eps):
    inputs = [tr.value_of(x)]
    if weight is not None or bias is not None:
        inputs.append(tr.value_of(weight) if weight is not None else tr.emit(
            "full", [], shape=tuple(normalized_shape), value=1.0, dtype=str(_dt(x))))
    if bias is not None:
        inputs.append(tr.value_of(bias))
    v = tr.emit("layer_norm", inputs, normalized_shape=tuple(normalized_shape), eps=float(eps))
    return (v, None, None)


@rule("_scaled_dot_product_flash_attention_for_cpu")
def _sdpa(tr, out, q, k, v, dropout_p=0.0, is_causal=False, *, attn_mask=None, scale=None):
    if dropout_p:
        raise UseExtern()
    inputs = [tr.value_of(q), tr.value_of(k), tr.value_of(v)]
    if attn_mask is not None:
        inputs.append(tr.value_of(attn_mask))
    o = tr.emit("scaled_dot_product_attention", inputs, is_causal=bool(is_causal),
                scale=None if scale is None else float(scale))
    return (o, None)


_REDUCTIONS = {0: "none", 1: "mean", 2: "sum"}


@rule("mse_loss")
def _mse_loss(tr, out, x, target, reduction=1):
    return tr.emit("mse_loss", [tr.value_of(x), tr.operand(target, _dt(x))],
                   reduction=_REDUCTIONS[reduction])


@rule("nll_loss_forward", "nll_loss2d_forward")
def _nll_loss(tr, out, logp, target, weight, reduction, ignore_index):
    if weight is not None:
        raise UseExtern()
    v = tr.emit("nll_loss", [tr.value_of(logp), tr.value_of(target)],
                reduction=_REDUCTIONS[reduction], ignore_index=ignore_index)
    return (v, None)


# ---- data-dependent Python --------------------------------------------------------------------

@rule("_local_scalar_dense")
def _item(tr, out, x):
    value = out
    if isinstance(value, float) and math.isnan(value):
        value = float("nan")
    tr.emit("guard", [tr.value_of(x)], expected=value)
    return None


@rule("equal")
def _equal(tr, out, a, b):
    if a.shape != b.shape:
        return None                         # shapes are guarded: the answer cannot change
    dtype = _dt_of_result(a, b)
    same = tr.emit("all", [tr.emit("eq", [tr.operand(a, dtype), tr.operand(b, dtype)])])
    tr.emit("guard", [same], expected=bool(out))
    return None


@rule("is_nonzero")
def _is_nonzero(tr, out, x):
    tr.emit("guard", [tr.emit("ne", [tr.value_of(x), tr.operand(0, _dt(x))])], expected=out)
    return None
