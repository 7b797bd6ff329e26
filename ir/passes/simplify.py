"""Algebraic and view simplification: rules as data, each with its algebra beside it.

Every rule keeps the node's output type exactly (``keep`` checks it), so a rewrite never
changes a shape through broadcasting or a dtype through promotion.
"""

from __future__ import annotations

from ..graph import Graph, Node, Value
from ..shapes import norm_dim
from .patterns import P, Pat, Var, apply_rules, const, keep
from .rewriter import Rewriter

X = Var("x")

RESHAPES = ("reshape", "squeeze", "unsqueeze", "flatten")
"""View ops that only regroup dimensions in row-major order: any chain is one reshape."""


def _is_identity(dims) -> bool:
    return tuple(d % len(dims) for d in dims) == tuple(range(len(dims)))


def _as_permute(m: dict, rw: Rewriter, node: Node) -> Value:
    rank = node.inputs[0].type.rank
    a, b = norm_dim(node.attrs["dim0"], rank), norm_dim(node.attrs["dim1"], rank)
    dims = list(range(rank))
    dims[a], dims[b] = b, a
    return rw.emit("permute", [m["x"]], {"dims": tuple(dims)})


def _compose_permutes(m: dict, rw: Rewriter, node: Node) -> Value:
    """permute(permute(x, p1), p2)[i] reads x's dim p1[p2[i]]."""
    rank = node.output.type.rank
    inner = norm_dims_list(m["@inner"].attrs["dims"], rank)
    outer = norm_dims_list(node.attrs["dims"], rank)
    dims = tuple(inner[d] for d in outer)
    if _is_identity(dims):
        return m["x"]
    return rw.emit("permute", [m["x"]], {"dims": dims})


def norm_dims_list(dims, rank: int) -> list[int]:
    return [norm_dim(d, rank) for d in dims]


def _as_reshape(m: dict, rw: Rewriter, node: Node) -> Value:
    if m["x"].type == node.output.type:
        return m["x"]
    return rw.emit("reshape", [m["x"]], {"shape": node.output.type.shape})


ALGEBRA = [
    (P.mul(X, const(1)), keep("x")),                     # x * 1 -> x
    (P.div(X, const(1)), keep("x")),                     # x / 1 -> x
    (P.add(X, const(0)), keep("x")),                     # x + 0 -> x
    (P.sub(X, const(0)), keep("x")),                     # x - 0 -> x
    (P.neg(P.neg(X)), keep("x")),                        # -(-x) -> x
    (P.cast(X), keep("x")),                              # cast to its own dtype -> x
]

VIEWS = [
    (P.reshape(X), keep("x")),                           # reshape to its own shape -> x
    (P.expand(X), keep("x")),                            # expand to its own shape -> x
    (P.slice(X), keep("x")),                             # a slice taking everything -> x
    (P.squeeze(X), keep("x")),                           # squeeze of no size-1 dim -> x
    (P.flatten(X), _as_reshape),                         # flatten -> reshape
    (Pat(RESHAPES, Pat(RESHAPES, X)), _as_reshape),      # reshape chain -> one reshape
    (P.permute(X, dims=_is_identity), keep("x")),        # permute by identity -> x
    (P.transpose(X), _as_permute),                       # transpose -> permute
    (P.permute(P.permute(X, bind="inner")), _compose_permutes),  # p2(p1(x)) -> p(x)
]


def simplify(graph: Graph) -> int:
    """Apply ALGEBRA and VIEWS rules once over the graph; returns the number of rewrites.

    Outputs keep their types and values exactly (up to the sign of a zero for x + 0).
    """
    return apply_rules(graph, ALGEBRA + VIEWS)
