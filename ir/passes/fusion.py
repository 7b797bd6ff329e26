"""Fusion: group neighbouring ops into ``fused`` nodes whose region is the group's body.

Kinds (the contract with the backends, see DESIGN §2):
- "elementwise": a DAG of elementwise ops (with broadcasting);
- "reduction": reductions and normalisations with their elementwise producers, and their
  elementwise consumers whose shape already occurs in the group;
- "epilogue": a contraction (first body node) and elementwise ops on its result of the
  same shape (bias, activation, residual add).
A group only grows while it stays acyclic with respect to the rest of the graph. Views,
side-effect ops and anything else end a group; a lone op is never wrapped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..graph import Graph, Node, Region, Value
from ..opdef import OPS, Flag
from .rewriter import CONST_OPS, replace_uses

EPILOGUE_ANCHORS = frozenset({"linear", "matmul", "addmm", "conv2d"})
"""Contractions that may head an epilogue region (what the backends lower specially)."""


def _classify(node: Node) -> str | None:
    op = OPS[node.op]
    if node.region is not None or op.has_side_effects or len(node.outputs) != 1:
        return None
    if node.op in EPILOGUE_ANCHORS:
        return "anchor"
    if op.is_elementwise:
        return "ew"
    if op.has(Flag.REDUCTION) or op.has(Flag.NORMALIZATION):
        return "red"
    return None


@dataclass(eq=False)
class _Group:
    kind: str
    members: set[int] = field(default_factory=set)
    shapes: set[tuple] = field(default_factory=set)
    anchor_shape: tuple | None = None


def _join_kind(group: _Group, node: Node, cls: str) -> str | None:
    """The kind of ``group`` after adding ``node``, or None when it may not join."""
    shape = node.output.type.shape
    if group.kind == "epilogue":
        return "epilogue" if cls == "ew" and shape == group.anchor_shape else None
    if cls == "red":
        return "reduction"
    if group.kind == "reduction":
        return "reduction" if shape in group.shapes else None
    return "elementwise"


class _Fuser:
    def __init__(self, graph: Graph):
        self.graph = graph
        self.nodes = graph.nodes
        self.index = {v: i for i, n in enumerate(self.nodes) for v in n.outputs}
        self.consumers: list[list[int]] = [[] for _ in self.nodes]
        for i, n in enumerate(self.nodes):
            for v in n.inputs:
                if v in self.index:
                    self.consumers[self.index[v]].append(i)
        self.group_of: dict[int, _Group] = {}

    def _acyclic(self, members: set[int]) -> bool:
        """No path leaves ``members`` and comes back (so the group can be one node)."""
        hi = max(members)
        stack = [c for m in members for c in self.consumers[m] if c not in members and c < hi]
        seen: set[int] = set()
        while stack:
            c = stack.pop()
            if c in seen:
                continue
            seen.add(c)
            for d in self.consumers[c]:
                if d in members:
                    return False
                if d < hi:
                    stack.append(d)
        return True

    def _add(self, group: _Group, i: int, kind: str) -> None:
        node = self.nodes[i]
        group.kind = kind
        group.members.add(i)
        group.shapes.add(node.output.type.shape)
        if _classify(node) == "red":
            group.shapes.update(v.type.shape for v in node.inputs)
        self.group_of[i] = group

    def _absorb(self, target: _Group, other: _Group) -> None:
        if "epilogue" in (target.kind, other.kind):
            return
        if not self._acyclic(target.members | other.members):
            return
        if other.kind == "reduction":
            target.kind = "reduction"
        target.members |= other.members
        target.shapes |= other.shapes
        for m in other.members:
            self.group_of[m] = target

    def group(self) -> list[_Group]:
        for i, node in enumerate(self.nodes):
            cls = _classify(node)
            if cls is None:
                continue
            if cls == "anchor":
                g = _Group("epilogue", anchor_shape=node.output.type.shape)
                self._add(g, i, "epilogue")
                continue
            producers = []
            for v in node.inputs:
                g = self.group_of.get(self.index.get(v, -1))
                if g is not None and g not in producers:
                    producers.append(g)
            target = None
            for g in producers:
                kind = _join_kind(g, node, cls)
                if kind and self._acyclic(g.members | {i}):
                    target = g
                    self._add(g, i, kind)
                    break
            if target is None:
                target = _Group("elementwise" if cls == "ew" else "reduction")
                self._add(target, i, target.kind)
            for g in producers:
                if g is not target and self.group_of[min(g.members)] is g:
                    self._absorb(target, g)
        unique = {id(g): g for g in self.group_of.values()}
        return sorted((g for g in unique.values() if len(g.members) > 1),
                      key=lambda g: min(g.members))

    def build(self, group: _Group, results_used: set[Value]) -> tuple[Node, dict]:
        """The fused node for ``group`` and the map from its old values to its outputs."""
        members = sorted(group.members)
        inside = {v for i in members for v in self.nodes[i].outputs}
        body: list[Node] = []
        params: dict[Value, Value] = {}
        clones: dict[Value, Value] = {}
        for i in members:
            node = self.nodes[i]
            ins = []
            for v in node.inputs:
                if v in inside:
                    ins.append(v)
                elif v in clones:
                    ins.append(clones[v])
                elif self._is_scalar_const(v) and node.op not in EPILOGUE_ANCHORS:
                    clone = self.nodes[self.index[v]]
                    clone = clone.replace(outputs=(Value(v.type),), scope=node.scope,
                                          loc=node.loc)
                    body.append(clone)
                    clones[v] = clone.output
                    ins.append(clone.output)
                else:
                    ins.append(params.setdefault(v, Value(v.type)))
            body.append(node.replace(inputs=tuple(ins)))
        results = [v for i in members for v in self.nodes[i].outputs
                   if v in results_used
                   or any(c not in group.members for c in self.consumers[i])]
        outs = tuple(Value(v.type) for v in results)
        head = self.nodes[members[0]]
        fused = Node("fused", tuple(params), outs, {"kind": group.kind}, scope=head.scope,
                     loc=head.loc, region=Region(tuple(params.values()), tuple(body),
                                                 tuple(results)))
        return fused, dict(zip(results, outs))

    def _is_scalar_const(self, v: Value) -> bool:
        i = self.index.get(v)
        return i is not None and self.nodes[i].op in CONST_OPS and v.type.numel == 1


def toposort(nodes: list[Node]) -> list[Node]:
    """Nodes in an order where producers come first, otherwise keeping the given order."""
    producer = {v: n for n in nodes for v in n.outputs}
    done: set[int] = set()
    order: list[Node] = []
    for root in nodes:
        stack = [(root, False)]
        while stack:
            node, expanded = stack.pop()
            if id(node) in done:
                continue
            if expanded:
                done.add(id(node))
                order.append(node)
                continue
            stack.append((node, True))
            for v in reversed(node.inputs):
                p = producer.get(v)
                if p is not None and id(p) not in done:
                    stack.append((p, False))
    return order


def fuse(graph: Graph) -> int:
    """Replace each fusible group by one ``fused`` node; returns the number of groups.

    Keeps values: a fused node computes exactly its body. Values used outside a group
    (including graph outputs and writes) become its results.
    """
    fuser = _Fuser(graph)
    groups = fuser.group()
    if not groups:
        return 0
    results_used = set(graph.result_values())
    first_of = {min(g.members): g for g in groups}
    member_of = {i for g in groups for i in g.members}
    mapping: dict[Value, Value] = {}
    new_nodes = []
    for i, node in enumerate(graph.nodes):
        if i in first_of:
            fused, m = fuser.build(first_of[i], results_used)
            mapping.update(m)
            new_nodes.append(fused)
        elif i not in member_of:
            new_nodes.append(node)
    graph.nodes = new_nodes
    replace_uses(graph, mapping)
    graph.nodes = toposort(graph.nodes)
    return len(groups)
