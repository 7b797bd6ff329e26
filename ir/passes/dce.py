"""Dead code elimination, at top level and inside fused regions."""

from __future__ import annotations

from ..graph import Graph, Node, Region, Value
from ..opdef import OPS
from .recurrent import RECURRENT_KINDS


def _live_nodes(nodes, roots) -> tuple[list[Node], set[Value]]:
    """Nodes (in order) that reach ``roots`` or have side effects, and the values they use."""
    live = set(roots)
    kept = []
    for node in reversed(nodes):
        if OPS[node.op].has_side_effects or any(v in live for v in node.outputs):
            kept.append(node)
            live.update(node.inputs)
    return kept[::-1], live


def _trim_fused(node: Node, live: set[Value]) -> Node:
    """Drop a fused node's unused results, then its dead body nodes and unused params
    (except in recurrent regions, whose params and results backends read by position)."""
    region = node.region
    if node.attrs.get("kind") in RECURRENT_KINDS:
        return node
    pairs = [(o, r) for o, r in zip(node.outputs, region.results) if o in live]
    if not pairs:
        pairs = [(node.outputs[0], region.results[0])]
    outs, results = zip(*pairs)
    body, used = _live_nodes(region.nodes, results)
    params = [(v, p) for v, p in zip(node.inputs, region.params) if p in used]
    ins = tuple(v for v, _ in params)
    new_region = Region(tuple(p for _, p in params), tuple(body), tuple(results))
    if (len(outs), len(body), len(ins)) == (len(node.outputs), len(region.nodes),
                                            len(node.inputs)):
        return node
    return node.replace(inputs=ins, outputs=tuple(outs), region=new_region)


def eliminate_dead_code(graph: Graph) -> int:
    """Drop nodes whose outputs reach no graph output or write.

    Nodes with side effects (guards, externs, random draws) always stay, as does whatever
    they read. Fused regions lose unused results and dead body nodes. Returns the
    number of nodes (and fused nodes trimmed) removed.
    """
    total = 0
    while n := _sweep(graph):
        total += n
    return total


def _sweep(graph: Graph) -> int:
    kept, live = _live_nodes(graph.nodes, graph.result_values())
    removed = len(graph.nodes) - len(kept)
    trimmed = []
    for node in kept:
        if node.region is not None:
            new = _trim_fused(node, live)
            removed += new is not node
            node = new
        trimmed.append(node)
    graph.nodes = trimmed
    return removed
