"""ONNX lowerings of the elementwise and reduction ops, keyed by op name.

Each rule gets ``(b, node, *inputs, **attrs)`` (see ``builder.py``). Opset differences
(17-21) are handled here: Gelu and the Bitwise ops only exist from opsets 20 and 18.
"""

from __future__ import annotations

import math

import numpy as np

from ir.errors import LoweringError
from ir.shapes import norm_dim, norm_dims
from ir.types import DType

from .builder import ONNX_DTYPE, lowers, where_of


def _in(node, i=0):
    return node.inputs[i].type


def _simple(op_type: str):
    def rule(b, node, *xs, **_):
        return b.op(op_type, xs)
    return rule


# ---- elementwise ----------------------------------------------------------------------------

DIRECT = {
    "neg": "Neg", "abs": "Abs", "exp": "Exp", "log": "Log", "sqrt": "Sqrt",
    "reciprocal": "Reciprocal", "sin": "Sin", "cos": "Cos", "tanh": "Tanh",
    "sigmoid": "Sigmoid", "sub": "Sub", "div": "Div", "pow": "Pow", "eq": "Equal",
}
for _name, _onnx in DIRECT.items():
    lowers(_name)(_simple(_onnx))

BOOL_AS = {"add": ("Add", "Or"), "mul": ("Mul", "And"), "maximum": ("Max", "Or"),
           "minimum": ("Min", "And")}
"""Arithmetic ONNX defines for numbers only; on bools it is a logical op."""


def _with_bool(op_type: str, bool_op: str):
    def rule(b, node, x, y):
        return b.op(bool_op if _in(node).dtype == DType.bool else op_type, [x, y])
    return rule


for _name, (_num, _bool) in BOOL_AS.items():
    lowers(_name)(_with_bool(_num, _bool))

ORDER = {"lt": "Less", "le": "LessOrEqual", "gt": "Greater", "ge": "GreaterOrEqual"}


def _order(op_type: str):
    """Order comparisons have no bool kernels: compare bools as uint8."""
    def rule(b, node, x, y):
        if _in(node).dtype == DType.bool:
            x, y = (b.op("Cast", [v], to=ONNX_DTYPE[DType.u8]) for v in (x, y))
        return b.op(op_type, [x, y])
    return rule


for _name, _onnx in ORDER.items():
    lowers(_name)(_order(_onnx))


@lowers("where")
def _where(b, node, cond, x, y):
    """onnxruntime has no bool Where kernel: select uint8 and cast back."""
    if _in(node, 1).dtype != DType.bool:
        return b.op("Where", [cond, x, y])
    x, y = (b.op("Cast", [v], to=ONNX_DTYPE[DType.u8]) for v in (x, y))
    return b.op("Cast", [b.op("Where", [cond, x, y])], to=ONNX_DTYPE[DType.bool])


def _float_only(op_type: str):
    """Floor, Ceil and Round of an integer are the integer itself."""
    def rule(b, node, x):
        return b.op(op_type if _in(node).dtype.is_float else "Identity", [x])
    return rule


for _name, _onnx in {"floor": "Floor", "ceil": "Ceil", "round": "Round"}.items():
    lowers(_name)(_float_only(_onnx))


def erf(b, x, dt: DType) -> str:
    """onnxruntime has Erf for float32 only: other float types go through it."""
    if dt == DType.f32:
        return b.op("Erf", [x])
    y = b.op("Erf", [b.op("Cast", [x], to=ONNX_DTYPE[DType.f32])])
    return b.op("Cast", [y], to=ONNX_DTYPE[dt])


@lowers("erf")
def _erf(b, node, x):
    return erf(b, x, _in(node).dtype)


@lowers("isnan")
def _isnan(b, node, x):
    if _in(node).dtype.is_float:
        return b.op("IsNaN", [x])
    return b.op("Not", [b.op("Equal", [x, x])])


@lowers("logical_not")
def _logical_not(b, node, x):
    if _in(node).dtype != DType.bool:
        x = b.op("Cast", [x], to=ONNX_DTYPE[DType.bool])
    return b.op("Not", [x])


@lowers("sign")
def _sign(b, node, x):
    """torch.sign(NaN) is 0."""
    y = b.op("Sign", [x])
    if not _in(node).dtype.is_float:
        return y
    return b.op("Where", [b.op("IsNaN", [x]), b.scalar(0, _in(node).dtype), y])


@lowers("relu")
def _relu(b, node, x):
    """Relu for floats (onnxruntime keeps NaN, as torch does, and fuses Conv/Gemm + Relu);
    Max(x, 0) for integers, which Relu does not take in every opset."""
    if _in(node).dtype.is_float:
        return b.op("Relu", [x])
    return b.op("Max", [x, b.scalar(0, _in(node).dtype)])


@lowers("ne")
def _ne(b, node, x, y):
    return b.op("Not", [b.op("Equal", [x, y])])


@lowers("rsqrt")
def _rsqrt(b, node, x):
    return b.op("Reciprocal", [b.op("Sqrt", [x])])


@lowers("silu")
def _silu(b, node, x):
    return b.op("Mul", [x, b.op("Sigmoid", [x])])


@lowers("log1p")
def _log1p(b, node, x):
    """Kahan's accurate log1p: x * log(u) / (u - 1) with u = 1 + x; x where u rounds to 1."""
    dt = _in(node).dtype
    u = b.op("Add", [x, b.scalar(1, dt)])
    um1 = b.op("Sub", [u, b.scalar(1, dt)])
    log_u = b.op("Log", [u])
    ratio = b.op("Div", [b.op("Mul", [x, log_u]), um1])
    inner = b.op("Where", [b.op("IsInf", [u]), log_u, ratio])
    return b.op("Where", [b.op("Equal", [um1, b.scalar(0, dt)]), x, inner])


@lowers("expm1")
def _expm1(b, node, x):
    """Kahan's accurate expm1: (u - 1) * x / log(u) with u = exp(x), exact at the ends."""
    dt = _in(node).dtype
    u = b.op("Exp", [x])
    um1 = b.op("Sub", [u, b.scalar(1, dt)])
    ratio = b.op("Mul", [um1, b.op("Div", [x, b.op("Log", [u])])])
    ends = b.op("Or", [b.op("Equal", [um1, b.scalar(-1, dt)]), b.op("IsInf", [u])])
    inner = b.op("Where", [ends, um1, ratio])
    return b.op("Where", [b.op("Equal", [um1, b.scalar(0, dt)]), x, inner])


@lowers("bitwise_not")
def _bitwise_not(b, node, x):
    if _in(node).dtype == DType.bool:
        return b.op("Not", [x])
    if b.opset >= 18:
        return b.op("BitwiseNot", [x])
    return b.op("Sub", [b.scalar(-1, _in(node).dtype), x])   # ~x == -1 - x (two's complement)


def _bitwise(bool_op: str, int_op: str):
    def rule(b, node, x, y):
        if _in(node).dtype == DType.bool:
            return b.op(bool_op, [x, y])
        if b.opset < 18:
            raise LoweringError(f"{node.op} on integers needs ONNX opset 18 or later "
                                f"(asked for {b.opset}) at {where_of(node)}; export with "
                                "opset=18 or newer")
        return b.op(int_op, [x, y])
    return rule


for _name, (_bool, _int) in {"bitwise_and": ("And", "BitwiseAnd"),
                             "bitwise_or": ("Or", "BitwiseOr"),
                             "bitwise_xor": ("Xor", "BitwiseXor")}.items():
    lowers(_name)(_bitwise(_bool, _int))


def _logical(op_type: str):
    def rule(b, node, x, y):
        xs = [v if _in(node, i).dtype == DType.bool else
              b.op("Cast", [v], to=ONNX_DTYPE[DType.bool]) for i, v in enumerate((x, y))]
        return b.op(op_type, xs)
    return rule


for _name, _onnx in {"logical_and": "And", "logical_or": "Or", "logical_xor": "Xor"}.items():
    lowers(_name)(_logical(_onnx))


@lowers("remainder")
def _remainder(b, node, x, y):
    """Python-style modulo: Mod(fmod=0) for integers; for floats torch's rule, C fmod moved
    into the divisor's sign."""
    dt = _in(node).dtype
    if not dt.is_float:
        return b.op("Mod", [x, y], fmod=0)
    m = b.op("Mod", [x, y], fmod=1)
    zero = b.scalar(0, dt)
    differ = b.op("Xor", [b.op("Less", [y, zero]), b.op("Less", [m, zero])])
    fix = b.op("And", [b.op("Not", [b.op("Equal", [m, zero])]), differ])
    return b.op("Where", [fix, b.op("Add", [m, y]), m])


@lowers("floor_divide")
def _floor_divide(b, node, x, y):
    """Integers: (a - a mod b) / b is exact. Floats: torch's div_floor step by step (fmod,
    correct the sign, round a quotient that floor left short), so inf and NaN agree."""
    dt = _in(node).dtype
    if not dt.is_float:
        return b.op("Div", [b.op("Sub", [x, b.op("Mod", [x, y], fmod=0)]), y])
    zero, one = b.scalar(0, dt), b.scalar(1, dt)
    m = b.op("Mod", [x, y], fmod=1)
    div = b.op("Div", [b.op("Sub", [x, m]), y])
    differ = b.op("Xor", [b.op("Less", [y, zero]), b.op("Less", [m, zero])])
    fix = b.op("And", [b.op("Not", [b.op("Equal", [m, zero])]), differ])
    div = b.op("Where", [fix, b.op("Sub", [div, one]), div])
    fl = b.op("Floor", [div])
    up = b.op("Greater", [b.op("Sub", [div, fl]), b.scalar(0.5, dt)])
    fl = b.op("Where", [up, b.op("Add", [fl, one]), fl])
    quotient = b.op("Div", [x, y])
    fl = b.op("Where", [b.op("Equal", [div, zero]), b.op("Mul", [quotient, zero]), fl])
    return b.op("Where", [b.op("Equal", [y, zero]), quotient, fl])


@lowers("leaky_relu")
def _leaky_relu(b, node, x, negative_slope):
    dt = _in(node).dtype
    if dt in (DType.f32, DType.f16):
        return b.op("LeakyRelu", [x], alpha=float(negative_slope))
    neg = b.op("Mul", [x, b.scalar(negative_slope, dt)])   # no f64 kernel in onnxruntime
    return b.op("Where", [b.op("Greater", [x, b.scalar(0, dt)]), x, neg])


@lowers("gelu")
def _gelu(b, node, x, approximate):
    dt = _in(node).dtype
    if b.opset >= 20 and dt == DType.f32:
        return b.op("Gelu", [x], approximate=approximate)
    half_x = b.op("Mul", [x, b.scalar(0.5, dt)])
    if approximate == "tanh":
        cube = b.op("Mul", [x, b.op("Mul", [x, x])])
        inner = b.op("Add", [x, b.op("Mul", [cube, b.scalar(0.044715, dt)])])
        t = b.op("Tanh", [b.op("Mul", [inner, b.scalar(math.sqrt(2 / math.pi), dt)])])
    else:
        t = erf(b, b.op("Mul", [x, b.scalar(1 / math.sqrt(2), dt)]), dt)
    return b.op("Mul", [half_x, b.op("Add", [t, b.scalar(1, dt)])])


@lowers("clamp")
def _clamp(b, node, x, min, max):
    dt = _in(node).dtype
    if min is None and max is None:
        return b.op("Identity", [x])
    lo = None if min is None else b.scalar(min, dt)
    hi = None if max is None else b.scalar(max, dt)
    return b.op("Clip", [x, lo, hi])


@lowers("cast")
def _cast(b, node, x, dtype):
    return b.op("Cast", [x], to=ONNX_DTYPE[DType(dtype)])


# ---- reductions -------------------------------------------------------------------------------

LONG_REDUCTION = 4096
"""Float reductions over more elements than this accumulate in float64: onnxruntime sums
sequentially, ten times further from the exact sum than torch's pairwise sums."""


def _axes(node, dims):
    return None if dims is None else norm_dims(dims, _in(node).rank)


def _reduced(node, axes) -> list:
    t = _in(node)
    return [t.shape[a] for a in (range(t.rank) if axes is None else axes)]


def _reduce_rule(op_type: str):
    def rule(b, node, x, dims, keepdim):
        if dims == ():
            return b.op("Identity", [x])
        axes, dt = _axes(node, dims), _in(node).dtype
        n = _reduced(node, axes)
        if dt in (DType.f32, DType.f16) and all(isinstance(d, int) for d in n) \
                and int(np.prod(n)) > LONG_REDUCTION and op_type != "ReduceProd":
            wide = b.op("Cast", [x], to=ONNX_DTYPE[DType.f64])
            return b.op("Cast", [b.reduce(op_type, wide, axes, keepdim)], to=ONNX_DTYPE[dt])
        return b.reduce(op_type, x, axes, keepdim)
    return rule


lowers("sum")(_reduce_rule("ReduceSum"))
lowers("prod")(_reduce_rule("ReduceProd"))


@lowers("mean")
def _mean(b, node, x, dims, keepdim):
    """ReduceMean of nothing gives 0 in onnxruntime; torch gives NaN, as sum / 0 does.
    A kept-dims mean over H, W of a small NCHW image is GlobalAveragePool (faster)."""
    axes = _axes(node, dims)
    n = _reduced(node, axes)
    image = _in(node).rank == 4 and _in(node).dtype.is_float and tuple(axes or ()) == (2, 3)
    if keepdim and image and all(isinstance(d, int) and d > 0 for d in n) \
            and n[0] * n[1] <= LONG_REDUCTION:
        return b.op("GlobalAveragePool", [x])
    if dims == () or 0 not in n:
        return _reduce_rule("ReduceMean")(b, node, x, dims, keepdim)
    return b.op("Div", [b.reduce("ReduceSum", x, axes, keepdim), b.scalar(0, _in(node).dtype)])


def _extreme(op_type: str):
    """ReduceMax/Min skip NaN in onnxruntime; torch's amax/amin propagate it."""
    def rule(b, node, x, dims, keepdim):
        if dims == ():
            return b.op("Identity", [x])
        dt = _in(node).dtype
        y = b.reduce(op_type, x, _axes(node, dims), keepdim)
        if not dt.is_float:
            return y
        nan = _any(b, b.op("IsNaN", [x]), _axes(node, dims), keepdim)
        return b.op("Where", [nan, b.scalar(np.nan, dt), y])
    return rule


lowers("amax")(_extreme("ReduceMax"))
lowers("amin")(_extreme("ReduceMin"))


def _any(b, mask, axes, keepdim) -> str:
    """Any of a bool tensor: count as int32 (no bool reductions before opset 20)."""
    count = b.reduce("ReduceSum", b.op("Cast", [mask], to=ONNX_DTYPE[DType.i32]), axes, keepdim)
    return b.op("Greater", [count, b.scalar(0, DType.i32)])


@lowers("any", "all")
def _any_all(b, node, x, dims, keepdim):
    """all(x) is not any(not x); an empty reduction gives False and True, as in torch."""
    mask = b.op("Cast", [x], to=ONNX_DTYPE[DType.bool])
    if dims == ():
        return mask
    if node.op == "any":
        return _any(b, mask, _axes(node, dims), keepdim)
    return b.op("Not", [_any(b, b.op("Not", [mask]), _axes(node, dims), keepdim)])


@lowers("var")
def _var(b, node, x, dims, correction, keepdim):
    t = _in(node)
    axes = norm_dims(dims, t.rank)
    mean = b.reduce("ReduceMean", x, axes, True)
    d = b.op("Sub", [x, mean])
    ss = b.reduce("ReduceSum", b.op("Mul", [d, d]), axes, keepdim)
    n = b.numel([t.shape[a] for a in axes], t.dtype)
    return b.op("Div", [ss, b.op("Sub", [n, b.scalar(correction, t.dtype)])])


@lowers("argmax")
def _argmax(b, node, x, dim, keepdim):
    """torch counts NaN as the largest value (its first NaN wins); ArgMax ignores it."""
    t = _in(node)
    if dim is None:
        x = b.op("Reshape", [x, b.ints([-1])])
        axis = 0
    else:
        axis = norm_dim(dim, t.rank)
    kd = int(keepdim and dim is not None)
    idx = b.op("ArgMax", [x], axis=axis, keepdims=kd)
    if t.dtype.is_float:
        nan = b.op("IsNaN", [x])
        first_nan = b.op("ArgMax", [b.op("Cast", [nan], to=ONNX_DTYPE[DType.i32])], axis=axis,
                         keepdims=kd)
        idx = b.op("Where", [_any(b, nan, [axis], kd), first_nan, idx])
    if dim is None:
        idx = b.op("Reshape", [idx, b.ints([1] * t.rank if keepdim else [])])
    return idx


@lowers("cumsum")
def _cumsum(b, node, x, dim):
    return b.op("CumSum", [x, b.const(np.array(norm_dim(dim, _in(node).rank), np.int64))])
