"""A small pattern language so rewrite rules are data: a pattern and a replacement.

``P.mul(X, const(1))`` matches a ``mul`` node whose inputs match ``X`` (any value, bound
to the name "x") and a constant that is all ones; commutative ops try both input orders.
A rule is ``(pattern, build)``; ``build(m, rw, node)`` returns the replacement value or
None, where ``m`` maps names to matched values (and ``"@name"`` to matched nodes).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..graph import Graph, Node, Value
from ..opdef import OPS
from .rewriter import CONST_OPS, Rewriter, rewrite


class Var:
    """Any value, bound to ``name``; a repeated name must bind the same value."""

    def __init__(self, name: str, where: Callable[[Value], bool] | None = None):
        self.name, self.where = name, where


class Pat:
    """A node: op name (or a set of names), input patterns and attribute constraints.

    An attribute constraint is a value (compared after defaults are filled in) or a
    predicate. ``bind`` names the matched node in the bindings as ``"@" + bind``;
    ``single_use`` refuses a match whose value is used elsewhere (so it is not computed
    twice).
    """

    def __init__(self, op, *args, bind: str | None = None, single_use: bool = False, **attrs):
        self.ops = frozenset([op] if isinstance(op, str) else op)
        self.args, self.attrs, self.bind, self.single_use = args, attrs, bind, single_use


class Const:
    """A value made by a constant-like node whose every element equals ``value``."""

    def __init__(self, value: float):
        self.value = value


class _P:
    def __getattr__(self, op: str) -> Callable[..., Pat]:
        return lambda *args, **kw: Pat(op, *args, **kw)


P = _P()


def const(value: float) -> Const:
    return Const(value)


def const_value(node: Node | None) -> np.ndarray | None:
    """The array a constant-like node makes, or None (also for big ones)."""
    if node is None or node.op not in CONST_OPS or not node.outputs[0].type.is_static:
        return None
    if (node.outputs[0].type.numel or 0) > 1 << 16:
        return None
    op = OPS[node.op]
    return np.asarray(op.ref(**op.full_attrs(node.attrs)))


def _uniform_value(node: Node | None):
    if node is None:
        return None
    if node.op == "full":
        return node.attrs["value"]
    arr = const_value(node)
    if arr is None or arr.size == 0 or not (arr == arr.flat[0]).all():
        return None
    return arr.flat[0]


def match(pat: Any, v: Value, rw: Rewriter, m: dict) -> dict | None:
    """Bindings extending ``m`` when ``v`` matches ``pat``; None otherwise."""
    if isinstance(pat, Var):
        if pat.name in m:
            return m if m[pat.name] is v else None
        if pat.where is not None and not pat.where(v):
            return None
        return {**m, pat.name: v}
    node = rw.producer(v)
    if isinstance(pat, Const):
        u = _uniform_value(node)
        return m if u is not None and u == pat.value else None
    return match_node(pat, node, rw, m)


def match_node(pat: Pat, node: Node | None, rw: Rewriter, m: dict) -> dict | None:
    if node is None or node.op not in pat.ops or len(node.inputs) != len(pat.args):
        return None
    if pat.single_use and any(rw.uses(o) > 1 for o in node.outputs):
        return None
    full = OPS[node.op].full_attrs(node.attrs) if pat.attrs else {}
    for k, want in pat.attrs.items():
        ok = want(full[k]) if callable(want) else full[k] == want
        if not ok:
            return None
    if pat.bind:
        m = {**m, "@" + pat.bind: node}
    orders = [node.inputs]
    if OPS[node.op].is_commutative and len(node.inputs) == 2:
        orders.append(node.inputs[::-1])
    for inputs in orders:
        got = m
        for sub, v in zip(pat.args, inputs):
            got = match(sub, v, rw, got)
            if got is None:
                break
        if got is not None:
            return got
    return None


Build = Callable[[dict, Rewriter, Node], "Value | None"]


def apply_rules(graph: Graph, rules: list[tuple[Pat, Build]]) -> int:
    """Rewrite each top-level node by the first rule that matches and builds a value."""
    by_op: dict[str, list[tuple[Pat, Build]]] = {}
    for pat, build in rules:
        for op in pat.ops:
            by_op.setdefault(op, []).append((pat, build))

    def rule(node: Node, rw: Rewriter):
        for pat, build in by_op.get(node.op, ()):
            m = match_node(pat, node, rw, {})
            if m is not None:
                out = build(m, rw, node)
                if out is not None:
                    return out
        return None

    return rewrite(graph, rule)


def keep(name: str) -> Build:
    """Replace the node by the matched value ``name`` when the types agree exactly.

    The type check is what makes ``x + 0`` safe: a 0 that broadcasts x to a bigger
    shape, or a constant of another dtype, changes the type, so nothing is rewritten.
    """
    def build(m: dict, rw: Rewriter, node: Node) -> Value | None:
        v = m[name]
        return v if len(node.outputs) == 1 and v.type == node.output.type else None
    return build
