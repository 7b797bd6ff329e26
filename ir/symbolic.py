"""Symbolic dimensions from two traces: the automatic-dynamic step.

Two traces of the same program at two sizes of one dimension (batch 2 and batch 3, say)
differ exactly where that size flows. ``generalize`` walks them in lockstep and, where a
dimension or an integer attribute is k times the first size in one trace and k times the
second in the other, writes ``k*symbol`` (the symbol itself for k = 1) instead. Anything
else that differs (another op, another branch, a size not proportional to the dimension)
means the program is not uniform in it, and the answer is None: keep specialising.
"""

from __future__ import annotations

from .graph import Graph, GraphInput, Node, Region, Value
from .shapes import scaled_dim
from .types import TensorType


class _NotUniform(Exception):
    pass


class _Merger:
    def __init__(self, sizes: tuple[int, int], symbol: str):
        if sizes[0] == sizes[1]:
            raise ValueError("generalize needs two traces at different sizes")
        self.sizes = sizes
        self.symbol = symbol
        self.values: dict[Value, Value] = {}    # value of trace a -> value of the result
        self.partner: dict[Value, Value] = {}   # value of trace a -> value of trace b

    def dim(self, da, db):
        if da == db:
            return da
        a, b = self.sizes
        if isinstance(da, int) and isinstance(db, int) and da % a == 0 and da // a * b == db:
            return scaled_dim(self.symbol, da // a)
        raise _NotUniform(f"size {da} vs {db}")

    def type(self, ta: TensorType, tb: TensorType) -> TensorType:
        if ta.dtype != tb.dtype or ta.rank != tb.rank:
            raise _NotUniform(f"{ta} vs {tb}")
        return TensorType(ta.dtype, tuple(self.dim(x, y) for x, y in zip(ta.shape, tb.shape)))

    def attr(self, a, b):
        if isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b):
            return tuple(self.attr(x, y) for x, y in zip(a, b))
        if type(a) is int and type(b) is int:
            return self.dim(a, b)
        if a == b or (a != a and b != b):
            return a
        raise _NotUniform(f"attribute {a!r} vs {b!r}")

    def value(self, va: Value, vb: Value) -> Value:
        new = Value(self.type(va.type, vb.type), va.name)
        self.values[va] = new
        self.partner[va] = vb
        return new

    def use(self, va: Value, vb: Value) -> Value:
        if self.partner.get(va) is not vb:
            raise _NotUniform("different dataflow")
        return self.values[va]

    def nodes(self, nodes_a, nodes_b) -> list[Node]:
        if len(nodes_a) != len(nodes_b):
            raise _NotUniform("different number of nodes")
        out = []
        for na, nb in zip(nodes_a, nodes_b):
            if na.op != nb.op or set(na.attrs) != set(nb.attrs) or \
                    len(na.inputs) != len(nb.inputs) or len(na.outputs) != len(nb.outputs):
                raise _NotUniform(f"{na.op} vs {nb.op}")
            inputs = [self.use(x, y) for x, y in zip(na.inputs, nb.inputs)]
            attrs = {k: self.attr(na.attrs[k], nb.attrs[k]) for k in na.attrs}
            region = None
            if na.region is not None:
                if nb.region is None:
                    raise _NotUniform("region vs none")
                params = [self.value(x, y) for x, y in zip(na.region.params, nb.region.params)]
                body = self.nodes(na.region.nodes, nb.region.nodes)
                results = [self.use(x, y) for x, y in zip(na.region.results, nb.region.results)]
                region = Region(tuple(params), tuple(body), tuple(results))
            outputs = [self.value(x, y) for x, y in zip(na.outputs, nb.outputs)]
            out.append(na.replace(inputs=inputs, outputs=outputs, attrs=attrs, region=region))
        return out


def generalize(a: Graph, b: Graph, sizes: tuple[int, int], symbol: str = "B") -> Graph | None:
    """Merge two traces taken at ``sizes[0]`` and ``sizes[1]`` of one dimension into a graph
    where that dimension is ``symbol``; None if the traces are not uniform in it."""
    if len(a.inputs) != len(b.inputs) or len(a.outputs) != len(b.outputs) or \
            set(a.writes) != set(b.writes):
        return None
    m = _Merger(sizes, symbol)
    try:
        inputs = []
        for ia, ib in zip(a.inputs, b.inputs):
            if ia.name != ib.name or ia.role != ib.role:
                return None
            inputs.append(GraphInput(m.value(ia.value, ib.value), ia.role))
        nodes = m.nodes(a.nodes, b.nodes)
        outputs = [m.use(x, y) for x, y in zip(a.outputs, b.outputs)]
        writes = {k: m.use(a.writes[k], b.writes[k]) for k in a.writes}
    except _NotUniform:
        return None
    return Graph(a.name, inputs, nodes, outputs, writes)
