"""Shared machinery for passes: typed node construction, use replacement, a forward rewriter.

Nodes are immutable, so a pass never edits one: it maps old values to new ones and lets
``replace_uses`` (the one helper for use lists) point inputs, outputs and writes at them.
"""

from __future__ import annotations

from collections import Counter
from itertools import chain
from typing import Callable, Sequence

from ..graph import Graph, Node, Value
from ..opdef import OPS

CONST_OPS = frozenset({"constant", "full", "arange"})
"""Ops whose result depends on attributes alone: what constant folding may look through."""


def make_node(op: str, inputs: Sequence[Value], attrs: dict | None = None,
              like: Node | None = None) -> Node:
    """A node with fresh output values typed by the op's rule; provenance copied from ``like``."""
    attrs = dict(attrs or {})
    types = OPS[op].infer_types([v.type for v in inputs], attrs)
    return Node(op, tuple(inputs), tuple(Value(t) for t in types), attrs,
                scope=like.scope if like else "", loc=like.loc if like else "")


def resolve(mapping: dict[Value, Value], v: Value) -> Value:
    while v in mapping:
        v = mapping[v]
    return v


def replace_uses(graph: Graph, mapping: dict[Value, Value]) -> int:
    """Point every top-level use of a key at its (transitively resolved) value.

    Covers node inputs, graph outputs and writes; region bodies are their own scope and
    never see outer values directly. Returns the number of uses changed.
    """
    if not mapping:
        return 0
    changed = 0
    nodes = []
    keys = mapping.keys()
    for node in graph.nodes:
        if not keys.isdisjoint(node.inputs):
            ins = tuple(resolve(mapping, v) for v in node.inputs)
            changed += sum(a is not b for a, b in zip(ins, node.inputs))
            node = node.replace(inputs=ins)
        nodes.append(node)
    graph.nodes = nodes
    outs = [resolve(mapping, v) for v in graph.outputs]
    changed += sum(a is not b for a, b in zip(outs, graph.outputs))
    graph.outputs = outs
    for k, v in list(graph.writes.items()):
        new = resolve(mapping, v)
        changed += new is not v
        graph.writes[k] = new
    return changed


def use_counts(graph: Graph) -> Counter:
    """How often each value is used at top level, graph outputs and writes included."""
    counts = Counter(chain.from_iterable(node.inputs for node in graph.nodes))
    counts.update(graph.result_values())
    return counts


Rule = Callable[[Node, "Rewriter"], "Value | Sequence[Value] | None"]


class Rewriter:
    """One forward sweep over the top-level nodes, asking ``rule`` about each.

    A rule sees the node with its inputs already rewritten and returns None (keep it) or
    replacement values of the same types, possibly built with ``emit``. Replaced nodes are
    dropped; whatever they fed now reads the replacement. Dead leftovers are DCE's job.
    """

    def __init__(self, graph: Graph):
        self.graph = graph
        self.defs: dict[Value, Node] = {}
        self.mapping: dict[Value, Value] = {}
        self.counts = use_counts(graph)
        self.nodes: list[Node] = []
        self.current: Node | None = None

    def producer(self, v: Value) -> Node | None:
        """The top-level node defining ``v`` (None for graph inputs)."""
        return self.defs.get(v)

    def uses(self, v: Value) -> int:
        return self.counts[v]

    def emit(self, op: str, inputs: Sequence[Value], attrs: dict | None = None) -> Value:
        """Add a node before the current one (provenance copied from it); returns its output."""
        node = make_node(op, inputs, attrs, like=self.current)
        self._keep(node)
        return node.output

    def _keep(self, node: Node) -> None:
        self.nodes.append(node)
        for v in node.outputs:
            self.defs[v] = node
        self.counts.update(node.inputs)

    def run(self, rule: Rule) -> int:
        changes = 0
        replaced = self.mapping.keys()
        for node in self.graph.nodes:
            if not replaced.isdisjoint(node.inputs):
                node = node.replace(inputs=tuple(resolve(self.mapping, v) for v in node.inputs))
            self.current = node
            mark = len(self.nodes)
            res = rule(node, self)
            if res is None:
                del self.nodes[mark:]
                for v in node.outputs:
                    self.defs[v] = node
                self.nodes.append(node)
                continue
            res = (res,) if isinstance(res, Value) else tuple(res)
            for old, new in zip(node.outputs, res, strict=True):
                if old.type != new.type:
                    raise AssertionError(f"rewrite of {node.op} changed type {old.type} "
                                         f"-> {new.type}")
                self.mapping[old] = new
                self.counts[new] += self.counts[old]
            self.counts.subtract(node.inputs)
            changes += 1
        self.graph.nodes = self.nodes
        replace_uses(self.graph, self.mapping)
        return changes


def rewrite(graph: Graph, rule: Rule) -> int:
    """Run ``rule`` over ``graph`` in place; returns the number of nodes replaced."""
    return Rewriter(graph).run(rule)
