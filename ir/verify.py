"""The verifier: the IR invariants every pass keeps (SSA, op signatures and types, region
scoping). Tests run it after every pass; a failure says what, shows the node with its
neighbours as printed text, and ends with a hint.
"""

from __future__ import annotations

from typing import Callable

from .errors import VerifyError
from .graph import ROLES, Graph, GraphInput, Node, Value
from .opdef import OPS
from .printer import format_name, format_node, name_values, ref

CONTEXT = 3
"""Nodes shown before and after the offending one."""

FUSED_KINDS = ("elementwise", "reduction", "epilogue", "lstm", "gru")

HINTS = {
    "twice": "every value is defined once (SSA); give each node fresh output Values.",
    "never": "a pass removed or forgot to insert the node that defines it.",
    "before": "graph.nodes must stay topologically ordered; move the node after its inputs.",
    "capture": "a region does not capture outer values: add it to the fused node's inputs "
               "and use the matching region parameter.",
    "inside": "values of a region are private to it; use the fused node's output instead "
              "(region results map 1:1 to the node's outputs).",
    "op": "ops are defined once in ir/ops.py; check the spelling or add the op there.",
    "region": "only 'fused' nodes carry a region (its body); build them with Region(...).",
    "arity": "inputs follow the op's signature in ir/ops.py ('x?' optional, '*xs' variadic).",
    "attrs": "attributes follow the op's definition in ir/ops.py (REQUIRED ones must be set).",
    "types": "output types must be what OpDef.infer_types gives; recompute them after "
             "changing the node's inputs or attributes.",
    "fused": "a fused node's inputs bind region.params 1:1 and region.results give its "
             "outputs 1:1, with equal types.",
    "inputs": "graph inputs are named by state_dict keys or argument names, once each, with "
              f"a role in {ROLES}.",
    "write": "writes go back to 'buffer' inputs and keep their type; check graph.writes.",
}


def verify(graph: Graph) -> None:
    """Raise ``VerifyError`` at the first broken invariant; return None when all hold."""
    _Verifier(graph).run()


class _Scope:
    """One SSA scope: the graph's body (owner None) or a fused node's region."""

    def __init__(self, owner: Node | None, nodes, parent: "_Scope | None"):
        self.owner, self.nodes, self.parent = owner, list(nodes), parent

    def encloses(self, other: "_Scope") -> bool:
        while other is not None:
            if other is self:
                return True
            other = other.parent
        return False


class _Verifier:
    def __init__(self, graph: Graph):
        self.graph = graph
        self._names: dict[Value, str] | None = None
        self.home: dict[Value, tuple[_Scope, int]] = {}
        self.top = _Scope(None, graph.nodes, None)

    # ---- messages -------------------------------------------------------------------

    @property
    def names(self) -> dict[Value, str]:
        """Printed names, computed only when a message needs them."""
        if self._names is None:
            self._names = name_values(self.graph)
        return self._names

    def fail(self, what: str, hint: str, scope: _Scope | None = None, index: int = -1,
             where: str | Callable[[], str] | None = None) -> None:
        lines = [what]
        where = where() if callable(where) else where
        if where is None and scope is not None and 0 <= index < len(scope.nodes):
            where = "node " + format_node(scope.nodes[index], self.names, column=0)
        if where:
            lines.append(f"  in graph {self.graph.name}, {where}")
        if scope is not None and scope.nodes:
            at = min(index, len(scope.nodes))
            lo, hi = max(0, at - CONTEXT), min(len(scope.nodes), at + CONTEXT + 1)
            if lo < hi:
                lines.append("  nearby:")
            for j in range(lo, hi):
                mark = ">" if j == index else " "
                lines.append(f"  {mark} {format_node(scope.nodes[j], self.names, column=0)}")
        lines.append(f"Hint: {HINTS[hint]}")
        raise VerifyError("\n".join(lines))

    def name(self, v: Value) -> str:
        return ref(v, self.names)

    def short(self, node: Node) -> str:
        """``fused node %3, %4``: how a message names a node it does not print."""
        outs = ", ".join(self.name(v) for v in node.outputs)
        return f"{node.op} node {outs}".rstrip()

    # ---- definitions ----------------------------------------------------------------

    def define(self, v: Value, scope: _Scope, index: int,
               where: str | Callable[[], str] | None = None) -> None:
        if v in self.home:
            self.fail(f"{self.name(v)} is defined twice", "twice", scope, index, where)
        self.home[v] = (scope, index)

    def collect(self, scope: _Scope) -> None:
        """Record where each value is defined, so a bad use can say why it is bad."""
        for i, node in enumerate(scope.nodes):
            for v in node.outputs:
                self.define(v, scope, i)
            if node.region is not None:
                inner = _Scope(node, node.region.nodes, scope)
                self.scopes[node] = inner
                for p in node.region.params:
                    self.define(p, inner, -1, lambda node=node: "region parameters of "
                                + self.short(node))
                self.collect(inner)

    def use(self, v: Value, scope: _Scope, index: int, where: str | None = None) -> None:
        """``v`` is used at ``index`` of ``scope`` (len(nodes) for returns and yields)."""
        if v not in self.home:
            self.fail(f"{self.name(v)} is used but never defined", "never", scope, index, where)
        home, at = self.home[v]
        if home is scope:
            if at >= index:
                self.fail(f"{self.name(v)} is used before it is defined", "before", scope, index,
                          where)
        elif home.encloses(scope):
            self.fail(f"{self.name(v)} is defined outside the region of {self.short(scope.owner)}"
                      " that uses it", "capture", scope, index, where)
        else:
            self.fail(f"{self.name(v)} is defined inside the region of {self.short(home.owner)}"
                      " and is not visible here", "inside", scope, index, where)

    # ---- checks ---------------------------------------------------------------------

    def run(self) -> None:
        self.scopes: dict[Node, _Scope] = {}
        self.check_inputs()
        self.collect(self.top)
        self.check_block(self.top)
        end = len(self.graph.nodes)
        returns = ", ".join(self.name(v) for v in self.graph.outputs)
        for v in self.graph.outputs:
            self.use(v, self.top, end, f"return {returns}")
        self.check_writes(end)

    def check_inputs(self) -> None:
        seen: set[str] = set()
        for inp in self.graph.inputs:
            where = "input " + _input_text(inp)
            if inp.role not in ROLES:
                self.fail(f"input %{format_name(str(inp.name))} has unknown role {inp.role!r}",
                          "inputs", where=where)
            if inp.name in seen:
                self.fail(f"input name %{format_name(str(inp.name))} is used twice", "inputs",
                          where=where)
            seen.add(inp.name)
            self.define(inp.value, self.top, -1, where)

    def check_writes(self, end: int) -> None:
        roles = {inp.name: inp for inp in self.graph.inputs}
        for name, v in self.graph.writes.items():
            where = f"write %{format_name(name)} = {self.name(v)}"
            inp = roles.get(name)
            if inp is None or inp.role != "buffer":
                what = "no input" if inp is None else f"a {inp.role!r} input"
                self.fail(f"write to %{format_name(name)}, which is {what}, not a buffer",
                          "write", self.top, end, where)
            self.use(v, self.top, end, where)
            if v.type != inp.value.type:
                self.fail(f"write of {v.type} to buffer %{format_name(name)} of type "
                          f"{inp.value.type}", "write", self.top, end, where)

    def check_block(self, scope: _Scope) -> None:
        for i, node in enumerate(scope.nodes):
            for v in node.inputs:
                self.use(v, scope, i)
            self.check_node(node, scope, i)

    def check_node(self, node: Node, scope: _Scope, i: int) -> None:
        op = OPS.get(node.op)
        if op is None:
            self.fail(f"unknown op {node.op!r}", "op", scope, i)
        if (node.region is not None) != (node.op == "fused"):
            what = "has no region" if node.region is None else "has a region"
            self.fail(f"{node.op} node {what}", "region", scope, i)
        lo, hi = op.arity
        n = len(node.inputs)
        if n < lo or (hi is not None and n > hi):
            want = f"{lo}" if lo == hi else f"{lo} or more" if hi is None else f"{lo} to {hi}"
            self.fail(f"{node.op} takes {want} inputs, got {n}", "arity", scope, i)
        try:
            attrs = op.full_attrs(node.attrs)
        except ValueError as e:
            self.fail(str(e), "attrs", scope, i)
        if node.op == "fused":
            self.check_fused(node, attrs, scope, i)
        elif node.op != "extern":
            self.check_types(node, op, scope, i)

    def check_types(self, node: Node, op, scope: _Scope, i: int) -> None:
        try:
            want = op.infer_types([v.type for v in node.inputs], node.attrs)
        except Exception as e:  # noqa: BLE001  (any type-rule failure is the node's fault)
            self.fail(f"{node.op}: the type rule rejects the node: {e}", "types", scope, i)
        got = [v.type for v in node.outputs]
        if len(got) != len(want):
            self.fail(f"{node.op} gives {len(want)} outputs, the node has {len(got)}", "types",
                      scope, i)
        for v, t in zip(node.outputs, want):
            if v.type != t:
                self.fail(f"{self.name(v)} has type {v.type}, but {node.op} gives {t}", "types",
                          scope, i)

    def check_fused(self, node: Node, attrs: dict, scope: _Scope, i: int) -> None:
        region, inner = node.region, self.scopes[node]
        if attrs["kind"] not in FUSED_KINDS:
            self.fail(f"fused kind {attrs['kind']!r} is not one of {FUSED_KINDS}", "attrs",
                      scope, i)
        pairs = [("inputs", "parameters", node.inputs, region.params),
                 ("outputs", "results", node.outputs, region.results)]
        for outer_what, inner_what, outer, inner_values in pairs:
            if len(outer) != len(inner_values):
                self.fail(f"fused node has {len(outer)} {outer_what} but its region "
                          f"has {len(inner_values)} {inner_what}", "fused", scope, i)
        for a, p in zip(node.inputs, region.params):
            if a.type != p.type:
                self.fail(f"region parameter {self.name(p)}: {p.type} is bound to "
                          f"{self.name(a)}: {a.type}", "fused", scope, i)
        self.check_block(inner)
        results = ", ".join(self.name(v) for v in region.results)
        for v in region.results:
            self.use(v, inner, len(inner.nodes),
                     f"yield {results} (region of {self.short(node)})")
        for out, res in zip(node.outputs, region.results):
            if out.type != res.type:
                self.fail(f"{self.name(out)} has type {out.type}, but the region yields "
                          f"{self.name(res)}: {res.type}", "fused", scope, i)


def _input_text(inp: GraphInput) -> str:
    role = "" if inp.role == "input" else f" {inp.role}"
    return f"%{format_name(str(inp.name))}: {inp.value.type}{role}"
