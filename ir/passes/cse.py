"""Common subexpression elimination over the top-level nodes."""

from __future__ import annotations

from ..graph import Graph, Node
from ..opdef import OPS
from .rewriter import Rewriter, rewrite


def _key(node: Node) -> tuple | None:
    op = OPS[node.op]
    if op.has_side_effects or node.region is not None:
        return None
    ins = node.inputs
    if op.is_commutative and len(ins) == 2:
        ins = tuple(sorted(ins, key=lambda v: v.uid))
    return node.op, ins, node.attr_key()


def eliminate_common_subexpressions(graph: Graph) -> int:
    """Merge nodes with the same op, inputs (either order if commutative) and attributes.

    The first node stays; later twins read its outputs. Side-effect and random ops are
    never merged (two draws are two draws). Returns the number of nodes merged.
    """
    seen: dict[tuple, Node] = {}

    def rule(node: Node, rw: Rewriter):
        key = _key(node)
        if key is None:
            return None
        first = seen.setdefault(key, node)
        return None if first is node else first.outputs

    return rewrite(graph, rule)
