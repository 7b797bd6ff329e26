"""Lowerings of reductions, normalisations, losses and guards (``ARRAY`` entries)."""

from __future__ import annotations

import math

from ir.ops import GUARD_RTOL
from ir.shapes import norm_dims
from ir.types import DType

from .arrays import (acc_ctor, canon, flat_or_empty, lowers, out_operand, permuted_copy,
                     reshaped)
from .emit import Operand, ctor, lit
from .lower import emit_loop


# ---- reductions and normalisations ------------------------------------------------------


def _red_dims(node):
    return node.attrs.get("dims")


def _count(body, x: Operand, dims):
    return body.prod([x.type.shape[d] for d in norm_dims(dims, x.type.rank)])


@lowers("sum", "mean", "prod")
def _sum(body, node, ins):
    x, t = ins[0], node.output.type
    x3 = body.tmp("x")
    body.line(f"{x3} = {canon(body, x, _red_dims(node))}")
    init = "np.ones" if node.op == "prod" else "np.zeros"
    kern = "K.reduce_prod" if node.op == "prod" else "K.reduce_sum"
    res = f"{kern}({x3}, {init}(({x3}.shape[0], {x3}.shape[2]), {acc_ctor(x.type.dtype)}))"
    if node.op == "mean":        # torch sums in the dtype (float32 overflows), then divides
        res = f"({res}.astype({ctor(t)}) / {x3}.shape[1])"
    return [out_operand(body, node, f"{res}.astype({ctor(t)}).reshape({body.shape(t.shape)})")]


@lowers("amax", "amin", "any", "all")
def _minmax(body, node, ins):
    kern = {"amax": "K.reduce_max", "amin": "K.reduce_min", "any": "K.reduce_any",
            "all": "K.reduce_all"}[node.op]
    t = node.output.type
    res = f"{kern}({canon(body, ins[0], _red_dims(node))})"
    return [out_operand(body, node, f"{res}.reshape({body.shape(t.shape)})")]


@lowers("var")
def _var(body, node, ins):
    t = node.output.type
    x3 = canon(body, ins[0], _red_dims(node))
    res = f"K.reduce_var({x3}, {node.attrs.get('correction', 1)})"
    return [out_operand(body, node, f"{res}.astype({ctor(t)}).reshape({body.shape(t.shape)})")]


@lowers("argmax")
def _argmax(body, node, ins):
    dim = node.attrs.get("dim")
    t = node.output.type
    res = f"K.argmax({canon(body, ins[0], None if dim is None else (dim,))})"
    return [out_operand(body, node, f"{res}.reshape({body.shape(t.shape)})")]


@lowers("cumsum")
def _cumsum(body, node, ins):
    x = ins[0]
    t = node.output.type
    if x.type.rank == 0:
        return [out_operand(body, node, f"{body.materialise(x)}.copy()")]
    x3 = body.tmp("x")
    body.line(f"{x3} = {canon(body, x, (node.attrs['dim'],))}")
    res = f"K.cumsum({x3}, np.zeros({x3}.shape[2], {acc_ctor(x.type.dtype)}))"
    return [out_operand(body, node, f"{res}.reshape({body.shape(t.shape)})")]


@lowers("softmax", "log_softmax")
def _softmax(body, node, ins):
    x = ins[0]
    t = node.output.type
    if x.type.rank == 0:
        val = lit(0.0 if node.op == "log_softmax" else 1.0, t.dtype)
        return [out_operand(body, node, f"np.full((), {val})")]
    res = f"K.softmax({canon(body, x, (node.attrs['dim'],))}, {node.op == 'log_softmax'})"
    return [out_operand(body, node, f"{res}.reshape({body.shape(t.shape)})")]


@lowers("layer_norm")
def _layer_norm(body, node, ins):
    x = ins[0]
    t = node.output.type
    k = len(node.attrs["normalized_shape"])
    s = x.type.shape
    x2 = f"{body.contig(x)}.reshape(({body.prod(s[:len(s) - k])}, {body.prod(s[len(s) - k:])}))"
    w = flat_or_empty(body, ins[1] if len(ins) > 1 else None, t.dtype)
    b = flat_or_empty(body, ins[2] if len(ins) > 2 else None, t.dtype)
    res = f"K.layer_norm({x2}, {w}, {b}, {float(node.attrs.get('eps', 1e-5))!r})"
    return [out_operand(body, node, f"{res}.reshape({body.shape(t.shape)})")]


def _nc_s(body, x: Operand) -> str:
    s = x.type.shape
    return f"{body.contig(x)}.reshape(({body.dim(s[0])}, {body.dim(s[1])}, {body.prod(s[2:])}))"


@lowers("batch_norm")
def _batch_norm(body, node, ins):
    x, *stats = ins
    t = node.output.type
    args = ", ".join(reshaped(body, a, (-1,)) for a in stats)
    res = f"K.batch_norm({_nc_s(body, x)}, {args}, {float(node.attrs.get('eps', 1e-5))!r})"
    return [out_operand(body, node, f"{res}.reshape({body.shape(t.shape)})")]


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
    out = out_operand(body, node, f"K.batch_norm({x3}, {reshaped(body, w, (-1,))}, "
                      f"{reshaped(body, b, (-1,))}, {mean}, {var}, "
                           f"{eps!r}).reshape({body.shape(t.shape)})")
    rmc = ctor(node.outputs[1].type)
    new_mean = out_operand(body, node, f"((1.0 - {m!r}) * {body.contig(rm)} + {m!r} * {mean})"
                           f".astype({rmc})", 1)
    new_var = out_operand(body, node, f"((1.0 - {m!r}) * {body.contig(rv)} + {m!r} * {var} * {n} "
                          f"/ max({n} - 1, 1)).astype({rmc})", 2)
    return [out, new_mean, new_var]


# ---- losses and guards ------------------------------------------------------------------


def _reduce_loss(body, node, loss: str, count: str):
    t = node.output.type
    red = node.attrs.get("reduction", "mean")
    if red == "none":
        return [out_operand(body, node, f"{loss}.reshape({body.shape(t.shape)})")]
    total = f"np.float64(K.sum_all({loss}))"     # NumPy division: IEEE, no ZeroDivisionError
    value = total if red == "sum" else f"{total} / {count}"
    return [out_operand(body, node, f"np.full((), {ctor(t)}({value}))")]


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
        lp = f"{permuted_copy(body, logp, perm)}.reshape((-1, {body.dim(s[1])}))"
    else:
        lp = reshaped(body, logp, (1, s[0]) if len(s) == 1 else (s[0], s[1]))
    tg = reshaped(body, target, (-1,))
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
    value = x.scalar if x.var is None else f"{body.contig(x)}.ravel()[0]"
    body.line(f"{g} = {value}")
    if isinstance(exp, bool) and x.type.dtype == DType.bool:    # `if t > 0:`, the usual
        body.line(f"if {'not ' if exp else ''}{g}:")
    elif isinstance(exp, float) and math.isnan(exp):
        body.line(f"if {g} == {g}:")
    elif isinstance(exp, float) and math.isfinite(exp):    # as ir.ops.guard_holds
        body.line(f"if not abs({g} - {e}) <= {GUARD_RTOL!r} * abs({e}):")
    else:
        body.line(f"if {g} != {e}:")
    body.line(f"    raise GuardFailed({e}, {g})")
    return []
