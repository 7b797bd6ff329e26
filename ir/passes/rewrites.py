"""Pattern rewrites into the ops backends lower best: linear, silu, softmax, conv+bn.

Each rule is a pattern and a builder (see ``patterns``). Builders check types before they
emit anything, and rewrites that would compute a shared value twice require single use.
Folding BatchNorm into a convolution is expressed over the graph inputs (the scaled
weight and bias are computed at run time), so it stays right when the weights change.
"""

from __future__ import annotations

from ..graph import Graph, Node, Value
from ..opdef import OPS
from .patterns import P, Pat, Var, apply_rules, match_node
from .rewriter import Rewriter

X, W, B, E = Var("x"), Var("w"), Var("b"), Var("e")
G, BETA, MEAN, VAR = Var("gamma"), Var("beta"), Var("mean"), Var("var")


def _is_t(dims) -> bool:
    return tuple(d % 2 for d in dims) == (1, 0) and len(dims) == 2


def _one_dim(dims) -> bool:
    return isinstance(dims, int) or (isinstance(dims, tuple) and len(dims) == 1)


def emit_same(rw: Rewriter, node: Node, op: str, inputs, attrs=None) -> Value | None:
    """Emit ``op`` only if its result has exactly the node's output type."""
    try:
        (t,) = OPS[op].infer_types([v.type for v in inputs], dict(attrs or {}))
    except ValueError:
        return None
    return rw.emit(op, inputs, attrs) if t == node.output.type else None


def _bias_ok(m: dict) -> bool:
    b, w = m["b"].type, m["w"].type
    return b.rank == 1 and w.rank == 2 and b.shape[0] == w.shape[0] and b.dtype == w.dtype


def _linear(m: dict, rw: Rewriter, node: Node) -> Value | None:
    if m["w"].type.rank != 2:
        return None
    if "b" in m:
        if not _bias_ok(m):
            return None
        return emit_same(rw, node, "linear", [m["x"], m["w"], m["b"]])
    return emit_same(rw, node, "linear", [m["x"], m["w"]])


def _linear_nd(m: dict, rw: Rewriter, node: Node) -> Value | None:
    """reshape(linear(reshape(x, (n, k)), ...), x.shape[:-1] + (out,)) -> linear(x, ...)."""
    x, lin = m["x"], m["@lin"]
    if x.type.rank < 2 or rw.producer(lin.inputs[0]).output.type.shape[-1:] != x.type.shape[-1:]:
        return None
    return emit_same(rw, node, "linear", [x, *lin.inputs[1:]])


def _silu(m: dict, rw: Rewriter, node: Node) -> Value | None:
    return emit_same(rw, node, "silu", [m["x"]])


def _conv_bn(m: dict, rw: Rewriter, node: Node) -> Value | None:
    """bn(conv(x, w, b)) = conv(x, w * s, (b - mean) * s + beta), s = gamma / sqrt(var+eps)."""
    conv, w = m["@conv"], m["w"]
    vals = [w, m["gamma"], m["beta"], m["mean"], m["var"]] + ([m["b"]] if "b" in m else [])
    if len({v.type.dtype for v in vals}) != 1 or any(v.type.rank != 1 for v in vals[1:]):
        return None
    dtype = str(w.type.dtype)
    eps = rw.emit("constant", [], {"value": float(node.attrs.get("eps", 1e-5)),
                                   "shape": (), "dtype": dtype})
    scale = rw.emit("mul", [m["gamma"], rw.emit("rsqrt", [rw.emit("add", [m["var"], eps])])])
    per_out = (w.type.shape[0],) + (1,) * (w.type.rank - 1)
    w2 = rw.emit("mul", [w, rw.emit("reshape", [scale], {"shape": per_out})])
    shifted = rw.emit("sub", [m["b"], m["mean"]]) if "b" in m else rw.emit("neg", [m["mean"]])
    b2 = rw.emit("add", [rw.emit("mul", [shifted, scale]), m["beta"]])
    return emit_same(rw, node, conv.op, [m["x"], w2, b2], conv.attrs)


def _softmax(m: dict, rw: Rewriter, node: Node) -> Value | None:
    """exp(x - amax(x, d)) / sum(..., d) or exp(x) / sum(exp(x), d) -> softmax(x, d)."""
    dim = m["@sum"].attrs["dims"]
    dim = dim if isinstance(dim, int) else dim[0]
    exp = match_node(P.exp(X), rw.producer(m["e"]), rw, {})
    if exp is None:
        return None
    stable = P.sub(X, P.amax(X, dims=lambda d: d in (dim, (dim,)), keepdim=True))
    inner = match_node(stable, rw.producer(exp["x"]), rw, {})
    x = inner["x"] if inner is not None else exp["x"]
    return emit_same(rw, node, "softmax", [x], {"dim": dim})


CONV_OPS = ("conv1d", "conv2d")
REWRITES = [
    (P.addmm(B, X, P.permute(W, dims=_is_t), beta=1.0, alpha=1.0), _linear),  # -> linear
    (P.matmul(X, P.permute(W, dims=_is_t)), _linear),           # x @ w.T -> linear(x, w)
    (P.add(P.linear(X, W, single_use=True), B), _linear),       # linear(x, w) + b
    (P.reshape(P.linear(P.reshape(X, single_use=True), W, bind="lin", single_use=True)),
     _linear_nd),                                               # linear on flattened rows
    (P.reshape(P.linear(P.reshape(X, single_use=True), W, B, bind="lin", single_use=True)),
     _linear_nd),
    (P.mul(X, P.sigmoid(X)), _silu),                            # x * sigmoid(x) -> silu
    (P.batch_norm(Pat(CONV_OPS, X, W, bind="conv", single_use=True), G, BETA, MEAN, VAR),
     _conv_bn),                                                 # bn(conv(x, w)) -> conv
    (P.batch_norm(Pat(CONV_OPS, X, W, B, bind="conv", single_use=True), G, BETA, MEAN, VAR),
     _conv_bn),                                                 # bn(conv(x, w, b)) -> conv
    (P.div(E, P.sum(E, dims=_one_dim, keepdim=True, bind="sum")), _softmax),  # -> softmax
]


def rewrite_patterns(graph: Graph) -> int:
    """Apply the REWRITES once; outputs keep their types and (up to rounding) their values."""
    return apply_rules(graph, REWRITES)
