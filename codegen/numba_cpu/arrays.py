"""Whole-array lowerings (``ARRAY``): views, data movement, reductions, normalisations,
contractions, pooling, losses and guards. Each writes lines into the njit body and
returns the node's output operands; heavy work goes to the generic kernels (``K.*``)."""

from __future__ import annotations

import math

from ir.errors import LoweringError
from ir.graph import Node
from ir.shapes import norm_dim, norm_dims
from ir.types import DType

from .emit import Body, Operand, ctor, lit
from .lower import emit_loop

ARRAY = {}


def lowers(*names):
    def register(fn):
        for name in names:
            ARRAY[name] = fn
        return fn
    return register


def _out(body: Body, node: Node, expr: str, k: int = 0, contiguous=True, alias=None):
    var = body.tmp("v")
    body.line(f"{var} = {expr}")
    return Operand(var, node.outputs[k].type, contiguous, alias)


def _reshape(body: Body, x: Operand, shape) -> str:
    return f"{body.contig(x)}.reshape({body.shape(shape)})"


def _acc(dt: DType) -> str:
    return "np.float64" if dt.is_float else "np.int64"


def _empty(dt: DType) -> str:
    return f"np.empty(0, {ctor(dt)})"


# ---- views and data movement ----------------------------------------------------------


@lowers("reshape", "flatten", "squeeze", "unsqueeze")
def _view_reshape(body, node, ins):
    return [_out(body, node, _reshape(body, ins[0], node.output.type.shape),
                 alias=ins[0].alias)]


@lowers("permute", "transpose")
def _permute(body, node, ins):
    rank = ins[0].type.rank
    if node.op == "permute":
        perm = tuple(d % rank for d in node.attrs["dims"])
    else:
        perm = list(range(rank))
        a, b = norm_dim(node.attrs["dim0"], rank), norm_dim(node.attrs["dim1"], rank)
        perm[a], perm[b] = perm[b], perm[a]
        perm = tuple(perm)
    if perm == tuple(range(rank)):
        return [ins[0]]
    return [_out(body, node, f"np.transpose({body.materialise(ins[0])}, {perm})",
                 contiguous=False, alias=ins[0].alias)]


@lowers("expand")
def _expand(body, node, ins):
    (o,) = emit_loop(body, node.output.type.shape, ins, lambda s: s, [node.output.type])
    return [Operand(o, node.output.type)]


def _index(rank, dim, item):
    return ", ".join(item if i == dim else ":" for i in range(rank))


@lowers("slice")
def _slice(body, node, ins):
    x = ins[0]
    d = norm_dim(node.attrs.get("dim", 0), x.type.rank)
    start, end, step = (node.attrs.get("start", 0), node.attrs.get("end"),
                        node.attrs.get("step", 1))
    size = x.type.shape[d]
    end = size if end is None else end
    if isinstance(size, int):
        start, end, _ = slice(start, end, step).indices(size)
        item = f"{start}:{end}:{step}"
    else:
        item = f"{start}:{body.dim(size) if end >= 2 ** 62 else end}:{step}"
    return [_out(body, node, f"{body.materialise(x)}[{_index(x.type.rank, d, item)}]",
                 contiguous=False, alias=x.alias)]


@lowers("select")
def _select(body, node, ins):
    x = ins[0]
    d = norm_dim(node.attrs["dim"], x.type.rank)
    i = node.attrs["index"]
    item = str(i) if i >= 0 else f"{body.dim(x.type.shape[d])} - {-i}"
    if x.type.rank == 1:
        var = body.tmp("v")
        body.line(f"{var} = np.full((), {body.materialise(x)}[{item}])")
        return [Operand(var, node.output.type)]
    return [_out(body, node, f"{body.materialise(x)}[{_index(x.type.rank, d, item)}]",
                 contiguous=False, alias=x.alias)]


@lowers("split")
def _split(body, node, ins):
    x = ins[0]
    d = norm_dim(node.attrs.get("dim", 0), x.type.rank)
    outs, start = [], 0
    for k, size in enumerate(node.attrs["sizes"]):
        item = f"{start}:{start + size}"
        outs.append(_out(body, node, f"{body.materialise(x)}[{_index(x.type.rank, d, item)}]",
                         k, contiguous=False, alias=x.alias))
        start += size
    return outs


@lowers("cat", "stack")
def _cat(body, node, ins):
    rank = node.output.type.rank
    d = norm_dim(node.attrs.get("dim", 0), rank)
    parts = "".join(body.contig(x) + ", " for x in ins)
    fn = "np.concatenate" if node.op == "cat" else "np.stack"
    return [_out(body, node, f"{fn}(({parts}), axis={d})")]


@lowers("gather")
def _gather(body, node, ins):
    x, index = ins
    rank = x.type.rank
    d = norm_dim(node.attrs["dim"], rank)

    # explicit loops: out[i...] = x[i... with dim d replaced by index[i...]]
    out = body.tmp("o")
    t = node.output.type
    body.line(f"{out} = np.empty({body.shape(t.shape)}, {ctor(t)})")
    xi, ii = body.materialise(x), body.materialise(index)
    idx = [body.tmp("i") for _ in range(rank)]
    for k, dim in enumerate(t.shape):
        body.line(f"for {idx[k]} in range({body.dim(dim)}):")
        body.indent += 1
    j = body.tmp("j")
    where = ", ".join(idx)
    body.line(f"{j} = {ii}[{where}]")
    body.line(f"{j} = {j} + {xi}.shape[{d}] if {j} < 0 else {j}")
    src = ", ".join(j if k == d else idx[k] for k in range(rank))
    body.line(f"{out}[{where}] = {xi}[{src}]")
    body.indent -= rank
    return [Operand(out, t)]


def _three(body: Body, x: Operand, d: int) -> str:
    """x as (outer, x.shape[d], inner), C-contiguous."""
    s = x.type.shape
    return (f"{body.contig(x)}.reshape(({body.prod(s[:d])}, {body.dim(s[d])}, "
            f"{body.prod(s[d + 1:])}))")


@lowers("index_select")
def _index_select(body, node, ins):
    x, index = ins
    d = norm_dim(node.attrs["dim"], x.type.rank)
    res = f"K.index_select({_three(body, x, d)}, {_reshape(body, index, (-1,))})"
    return [_out(body, node, f"{res}.reshape({body.shape(node.output.type.shape)})")]


@lowers("embedding")
def _embedding(body, node, ins):
    w, idx = ins
    w3 = _reshape(body, w, (1,) + tuple(w.type.shape))
    res = f"K.index_select({w3}, {_reshape(body, idx, (-1,))})"
    return [_out(body, node, f"{res}.reshape({body.shape(node.output.type.shape)})")]


@lowers("tril", "triu")
def _tri(body, node, ins):
    x = ins[0]
    s = x.type.shape
    x3 = (f"{body.contig(x)}.reshape(({body.prod(s[:-2])}, {body.dim(s[-2])}, "
          f"{body.dim(s[-1])}))")
    upper = node.op == "triu"
    res = f"K.tri({x3}, {node.attrs.get('diagonal', 0)}, {upper})"
    return [_out(body, node, f"{res}.reshape({body.shape(s)})")]


@lowers("pad")
def _pad(body, node, ins):
    x = ins[0]
    t = node.output.type
    pads = node.attrs["pads"]
    out = body.tmp("o")
    fill = lit(node.attrs.get("value", 0.0), t.dtype)
    body.line(f"{out} = np.full({body.shape(t.shape)}, {fill})")
    src, dst = [], []
    for d in range(x.type.rank):
        k = x.type.rank - 1 - d
        lo, hi = (pads[2 * k], pads[2 * k + 1]) if 2 * k + 1 < len(pads) else (0, 0)
        n = body.dim(x.type.shape[d])
        src.append(f"{max(-lo, 0)}:{n} - {max(-hi, 0)}")
        dst.append(f"{max(lo, 0)}:{max(lo, 0)} + {n} - {max(-lo, 0)} - {max(-hi, 0)}")
    if x.type.rank:
        body.line(f"{out}[{', '.join(dst)}] = {body.materialise(x)}[{', '.join(src)}]")
    else:
        body.line(f"{out}[()] = {body.materialise(x)}[()]")
    return [Operand(out, t)]


# ---- creation -----------------------------------------------------------------------------


@lowers("full")
def _full(body, node, ins):
    t = node.output.type
    fill = lit(node.attrs["value"], t.dtype)
    return [_out(body, node, f"np.full({body.shape(t.shape)}, {fill})")]


@lowers("arange")
def _arange(body, node, ins):
    a = node.attrs
    t = node.output.type
    return [_out(body, node, f"np.arange({a.get('start', 0)!r}, {a['end']!r}, "
                             f"{a.get('step', 1)!r}).astype({ctor(t)})")]


@lowers("constant")
def _constant(body, node, ins):
    t = node.output.type
    value = node.attrs["value"]
    if t.shape == () and not isinstance(value, tuple):
        return [Operand(None, t, True, None, lit(value, t.dtype))]
    vals = value if isinstance(value, tuple) else (value,) * (t.numel or 0)
    items = ", ".join(lit(v, t.dtype) for v in vals)
    arr = f"np.array([{items}], {ctor(t)})" if vals else f"np.empty(0, {ctor(t)})"
    return [_out(body, node, f"{arr}.reshape({body.shape(t.shape)})")]


# ---- reductions and normalisations ------------------------------------------------------


def _canon(body: Body, x: Operand, dims):
    """x as (outer, reduced, inner) C array; transposes (a copy) when dims are not adjacent."""
    s = x.type.shape
    dims = norm_dims(dims, x.type.rank)
    if not dims:
        return f"{body.contig(x)}.reshape((1, 1, {body.prod(s)}))"
    if list(dims) == list(range(dims[0], dims[-1] + 1)):
        return (f"{body.contig(x)}.reshape(({body.prod(s[:dims[0]])}, "
                f"{body.prod(s[dims[0]:dims[-1] + 1])}, {body.prod(s[dims[-1] + 1:])}))")
    keep = [d for d in range(x.type.rank) if d not in dims]
    perm = tuple(keep + list(dims))
    return (f"np.ascontiguousarray(np.transpose({body.materialise(x)}, {perm}))"
            f".reshape(({body.prod([s[d] for d in keep])}, {body.prod([s[d] for d in dims])}, 1))")


def _red_dims(node):
    return node.attrs.get("dims")


def _count(body, x: Operand, dims):
    return body.prod([x.type.shape[d] for d in norm_dims(dims, x.type.rank)])


@lowers("sum", "mean", "prod")
def _sum(body, node, ins):
    x, t = ins[0], node.output.type
    x3 = body.tmp("x")
    body.line(f"{x3} = {_canon(body, x, _red_dims(node))}")
    init = "np.ones" if node.op == "prod" else "np.zeros"
    kern = "K.reduce_prod" if node.op == "prod" else "K.reduce_sum"
    res = f"{kern}({x3}, {init}(({x3}.shape[0], {x3}.shape[2]), {_acc(x.type.dtype)}))"
    if node.op == "mean":        # torch sums in the dtype (float32 overflows), then divides
        res = f"({res}.astype({ctor(t)}) / {x3}.shape[1])"
    return [_out(body, node, f"{res}.astype({ctor(t)}).reshape({body.shape(t.shape)})")]


@lowers("amax", "amin", "any", "all")
def _minmax(body, node, ins):
    kern = {"amax": "K.reduce_max", "amin": "K.reduce_min", "any": "K.reduce_any",
            "all": "K.reduce_all"}[node.op]
    t = node.output.type
    res = f"{kern}({_canon(body, ins[0], _red_dims(node))})"
    return [_out(body, node, f"{res}.reshape({body.shape(t.shape)})")]


@lowers("var")
def _var(body, node, ins):
    t = node.output.type
    x3 = _canon(body, ins[0], _red_dims(node))
    res = f"K.reduce_var({x3}, {node.attrs.get('correction', 1)})"
    return [_out(body, node, f"{res}.astype({ctor(t)}).reshape({body.shape(t.shape)})")]


@lowers("argmax")
def _argmax(body, node, ins):
    dim = node.attrs.get("dim")
    t = node.output.type
    res = f"K.argmax({_canon(body, ins[0], None if dim is None else (dim,))})"
    return [_out(body, node, f"{res}.reshape({body.shape(t.shape)})")]


@lowers("cumsum")
def _cumsum(body, node, ins):
    x = ins[0]
    t = node.output.type
    if x.type.rank == 0:
        return [_out(body, node, f"{body.materialise(x)}.copy()")]
    x3 = body.tmp("x")
    body.line(f"{x3} = {_canon(body, x, (node.attrs['dim'],))}")
    res = f"K.cumsum({x3}, np.zeros({x3}.shape[2], {_acc(x.type.dtype)}))"
    return [_out(body, node, f"{res}.reshape({body.shape(t.shape)})")]


@lowers("softmax", "log_softmax")
def _softmax(body, node, ins):
    x = ins[0]
    t = node.output.type
    if x.type.rank == 0:
        val = lit(0.0 if node.op == "log_softmax" else 1.0, t.dtype)
        return [_out(body, node, f"np.full((), {val})")]
    res = f"K.softmax({_canon(body, x, (node.attrs['dim'],))}, {node.op == 'log_softmax'})"
    return [_out(body, node, f"{res}.reshape({body.shape(t.shape)})")]


def _flat_or_empty(body, op: Operand | None, dt: DType) -> str:
    return _empty(dt) if op is None else _reshape(body, op, (-1,))


@lowers("layer_norm")
def _layer_norm(body, node, ins):
    x = ins[0]
    t = node.output.type
    k = len(node.attrs["normalized_shape"])
    s = x.type.shape
    x2 = f"{body.contig(x)}.reshape(({body.prod(s[:len(s) - k])}, {body.prod(s[len(s) - k:])}))"
    w = _flat_or_empty(body, ins[1] if len(ins) > 1 else None, t.dtype)
    b = _flat_or_empty(body, ins[2] if len(ins) > 2 else None, t.dtype)
    res = f"K.layer_norm({x2}, {w}, {b}, {float(node.attrs.get('eps', 1e-5))!r})"
    return [_out(body, node, f"{res}.reshape({body.shape(t.shape)})")]


def _nc_s(body, x: Operand) -> str:
    s = x.type.shape
    return f"{body.contig(x)}.reshape(({body.dim(s[0])}, {body.dim(s[1])}, {body.prod(s[2:])}))"


@lowers("batch_norm")
def _batch_norm(body, node, ins):
    x, *stats = ins
    t = node.output.type
    args = ", ".join(_reshape(body, a, (-1,)) for a in stats)
    res = f"K.batch_norm({_nc_s(body, x)}, {args}, {float(node.attrs.get('eps', 1e-5))!r})"
    return [_out(body, node, f"{res}.reshape({body.shape(t.shape)})")]


@lowers("batch_norm_train")
def _batch_norm_train(body, node, ins):
    x, w, b, rm, rv = ins
    t = node.outputs[0].type
    m = float(node.attrs.get("momentum", 0.1))
    x3, mean, var = body.tmp("x"), body.tmp("mean"), body.tmp("var")
    body.line(f"{x3} = {_nc_s(body, x)}")
    body.line(f"{mean}, {var} = K.channel_stats({x3})")
    n = f"({x3}.shape[0] * {x3}.shape[2])"
    eps = float(node.attrs.get("eps", 1e-5))
    out = _out(body, node, f"K.batch_norm({x3}, {_reshape(body, w, (-1,))}, "
                           f"{_reshape(body, b, (-1,))}, {mean}, {var}, "
                           f"{eps!r}).reshape({body.shape(t.shape)})")
    rmc = ctor(node.outputs[1].type)
    new_mean = _out(body, node, f"((1.0 - {m!r}) * {body.contig(rm)} + {m!r} * {mean})"
                                f".astype({rmc})", 1)
    new_var = _out(body, node, f"((1.0 - {m!r}) * {body.contig(rv)} + {m!r} * {var} * {n} "
                               f"/ max({n} - 1, 1)).astype({rmc})", 2)
    return [out, new_mean, new_var]


# ---- contractions -----------------------------------------------------------------------


def _batched(body, x: Operand, batch, mat):
    """x broadcast to batch + mat and reshaped to (prod(batch), *mat), C-contiguous."""
    t = x.type
    full = tuple(batch) + tuple(mat)
    if tuple(t.shape) != full:
        src = x
        if t.rank < 2:
            src = Operand(_reshape(body, x, mat), t.with_shape(mat))
        (var,) = emit_loop(body, full, [src], lambda s: s, [t.with_shape(full)])
        x = Operand(var, t.with_shape(full))
    return f"{body.contig(x)}.reshape(({body.prod(batch)}, {body.dim(mat[0])}, {body.dim(mat[1])}))"


@lowers("matmul")
def _matmul(body, node, ins):
    a, b = ins
    t = node.output.type
    sa, sb = a.type.shape, b.type.shape
    ma = (1, sa[0]) if len(sa) == 1 else tuple(sa[-2:])
    mb = (sb[0], 1) if len(sb) == 1 else tuple(sb[-2:])
    from ir.shapes import broadcast_shapes
    batch = broadcast_shapes(tuple(sa[:-2]), tuple(sb[:-2]))
    fn = "K.bmm" if t.dtype.is_float else "K.bmm_loop"
    if not batch and t.dtype.is_float and len(sa) == 2 and len(sb) == 2:
        return [_out(body, node, f"np.dot({body.contig(a)}, {body.contig(b)})")]
    res = f"{fn}({_batched(body, a, batch, ma)}, {_batched(body, b, batch, mb)})"
    return [_out(body, node, f"{res}.reshape({body.shape(t.shape)})")]


@lowers("linear")
def _linear(body, node, ins):
    x, w = ins[:2]
    t = node.output.type
    if not t.dtype.is_float:
        raise LoweringError(f"numba-cpu: linear on {t.dtype} (BLAS is float only)")
    s = x.type.shape
    x2 = f"{body.contig(x)}.reshape(({body.prod(s[:-1])}, {body.dim(s[-1])}))"
    bias = _flat_or_empty(body, ins[2] if len(ins) > 2 else None, t.dtype)
    res = f"K.linear({x2}, {body.contig(w)}, {bias})"
    return [_out(body, node, f"{res}.reshape({body.shape(t.shape)})")]


@lowers("addmm")
def _addmm(body, node, ins):
    bias, a, b = ins
    t = node.output.type
    prod = body.tmp("p")
    if t.dtype.is_float:
        body.line(f"{prod} = np.dot({body.contig(a)}, {body.contig(b)})")
    else:
        body.line(f"{prod} = K.bmm_loop({_reshape(body, a, (1,) + tuple(a.type.shape))}, "
                  f"{_reshape(body, b, (1,) + tuple(b.type.shape))})[0]")
    beta = lit(node.attrs.get("beta", 1.0), t.dtype)
    alpha = lit(node.attrs.get("alpha", 1.0), t.dtype)
    (o,) = emit_loop(body, t.shape, [bias, Operand(prod, t)],
                     lambda s: [f"{beta} * {s[0]} + {alpha} * {s[1]}"], [t])
    return [Operand(o, t)]


@lowers("conv1d", "conv2d")
def _conv(body, node, ins):
    x, w = ins[:2]
    t = node.output.type
    a = node.attrs
    stride, pad, dil = a["stride"], a["padding"], a["dilation"]
    xs, ws = x.type.shape, w.type.shape
    if node.op == "conv1d":
        x4 = _reshape(body, x, (xs[0], xs[1], 1, xs[2]))
        w4 = _reshape(body, w, (ws[0], ws[1], 1, ws[2]))
        stride, pad, dil = (1,) + tuple(stride), (0,) + tuple(pad), (1,) + tuple(dil)
        oh, ow = 1, t.shape[2]
    else:
        x4, w4 = body.contig(x), body.contig(w)
        oh, ow = t.shape[2], t.shape[3]
    bias = _flat_or_empty(body, ins[2] if len(ins) > 2 else None, t.dtype)
    res = (f"K.conv2d({x4}, {w4}, {bias}, {stride[0]}, {stride[1]}, {pad[0]}, {pad[1]}, "
           f"{dil[0]}, {dil[1]}, {a.get('groups', 1)}, {body.dim(oh)}, {body.dim(ow)})")
    return [_out(body, node, f"{res}.reshape({body.shape(t.shape)})")]


def _planes(body, x: Operand) -> str:
    s = x.type.shape
    return (f"{body.contig(x)}.reshape(({body.prod(s[:-2])}, {body.dim(s[-2])}, "
            f"{body.dim(s[-1])}))")


@lowers("max_pool2d")
def _max_pool(body, node, ins):
    a, t = node.attrs, node.output.type
    k, s, p = a["kernel_size"], a["stride"], a.get("padding", (0, 0))
    d = a.get("dilation", (1, 1))
    res = (f"K.max_pool2d({_planes(body, ins[0])}, {k[0]}, {k[1]}, {s[0]}, {s[1]}, {p[0]}, "
           f"{p[1]}, {d[0]}, {d[1]}, {body.dim(t.shape[-2])}, {body.dim(t.shape[-1])})")
    return [_out(body, node, f"{res}.reshape({body.shape(t.shape)})")]


@lowers("avg_pool2d")
def _avg_pool(body, node, ins):
    a, t = node.attrs, node.output.type
    k, s, p = a["kernel_size"], a["stride"], a.get("padding", (0, 0))
    div = a.get("divisor_override") or 0
    res = (f"K.avg_pool2d({_planes(body, ins[0])}, {k[0]}, {k[1]}, {s[0]}, {s[1]}, {p[0]}, "
           f"{p[1]}, {body.dim(t.shape[-2])}, {body.dim(t.shape[-1])}, "
           f"{bool(a.get('count_include_pad', True))}, {div})")
    return [_out(body, node, f"{res}.reshape({body.shape(t.shape)})")]


@lowers("adaptive_avg_pool2d")
def _adaptive(body, node, ins):
    t = node.output.type
    oh, ow = node.attrs["output_size"]
    res = f"K.adaptive_avg_pool2d({_planes(body, ins[0])}, {oh}, {ow})"
    return [_out(body, node, f"{res}.reshape({body.shape(t.shape)})")]


@lowers("scaled_dot_product_attention")
def _sdpa(body, node, ins):
    q, k, v = ins[:3]
    mask = ins[3] if len(ins) > 3 else None
    t = node.output.type
    batch = tuple(t.shape[:-2])
    L, S = q.type.shape[-2], k.type.shape[-2]
    q3 = _batched(body, q, batch, q.type.shape[-2:])
    k3 = _batched(body, k, batch, k.type.shape[-2:])
    v3 = _batched(body, v, batch, v.type.shape[-2:])
    scale = node.attrs.get("scale")
    scale = 1.0 / math.sqrt(q.type.shape[-1]) if scale is None else float(scale)
    if mask is None:
        m3, mode = "np.zeros((1, 1, 1), np.bool_)", 0
    else:
        mfull = batch + (L, S)
        (mv,) = emit_loop(body, mfull, [mask], lambda s: s, [mask.type.with_shape(mfull)])
        m3 = f"{mv}.reshape(({body.prod(batch)}, {body.dim(L)}, {body.dim(S)}))"
        mode = 1 if mask.type.dtype == DType.bool else 2
    causal = bool(node.attrs.get("is_causal", False))
    res = f"K.attention({q3}, {k3}, {v3}, {m3}, {mode}, {causal}, {scale!r})"
    return [_out(body, node, f"{res}.reshape({body.shape(t.shape)})")]


# ---- losses and guards ------------------------------------------------------------------


def _reduce_loss(body, node, loss: str, count: str):
    t = node.output.type
    red = node.attrs.get("reduction", "mean")
    if red == "none":
        return [_out(body, node, f"{loss}.reshape({body.shape(t.shape)})")]
    total = f"K.sum_all({loss})"
    value = total if red == "sum" else f"{total} / {count}"
    return [_out(body, node, f"np.full((), {ctor(t)}({value}))")]


@lowers("mse_loss")
def _mse(body, node, ins):
    x, y = ins
    t = x.type
    (sq,) = emit_loop(body, t.shape, [x, y],
                      lambda s: [f"({s[0]} - {s[1]}) * ({s[0]} - {s[1]})"], [t])
    return _reduce_loss(body, node, sq, f"{sq}.size")


@lowers("nll_loss")
def _nll(body, node, ins):
    logp, target = ins
    s = logp.type.shape
    if len(s) > 2:               # (N, C, d...) -> rows of classes, as the targets (N, d...)
        perm = (0,) + tuple(range(2, len(s))) + (1,)
        lp = (f"np.ascontiguousarray(np.transpose({body.materialise(logp)}, {perm}))"
              f".reshape((-1, {body.dim(s[1])}))")
    else:
        lp = _reshape(body, logp, (1, s[0]) if len(s) == 1 else (s[0], s[1]))
    tg = _reshape(body, target, (-1,))
    loss, kept = body.tmp("loss"), body.tmp("kept")
    body.line(f"{loss}, {kept} = K.nll_loss({lp}, {tg}, {node.attrs.get('ignore_index', -100)})")
    return _reduce_loss(body, node, loss, kept)


@lowers("guard")
def _guard(body, node, ins):
    x = ins[0]
    exp = node.attrs["expected"]
    if isinstance(exp, float) and not math.isfinite(exp):
        e = "np.nan" if math.isnan(exp) else ("np.inf" if exp > 0 else "-np.inf")
    else:
        e = repr(exp)
    g = body.tmp("g")
    body.line(f"{g} = {body.contig(x)}.ravel()[0]")
    body.line(f"if not ({g} == {e} or ({g} != {g} and {e} != {e})):")
    body.line(f"    raise GuardFailed({e}, {g})")
    return []
