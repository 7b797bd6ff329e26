"""Symbolic dimensions from several traces: the automatic-dynamic step.

Traces of the same program at several sizes of some dimensions (batch 2 and 3, or batch
and sequence length 2x5, 3x5, 3x7) differ exactly where those sizes flow. ``generalize``
walks them in lockstep and, where a dimension or an integer attribute differs between
traces, fits it to one product ``k*s1*s2...`` of the symbols (at most three factors) that
gives its size in every trace, and writes that product (``B``, ``5*B``, ``B*S``). Anything
else that differs (another op, another branch, a size no single product explains, or two
products that explain it equally well) means the program is not uniform in those sizes,
and the answer is None: keep specialising. The merged graph must pass the verifier, whose
type rules recompute each output type from the symbolic inputs.
"""

from __future__ import annotations

from itertools import combinations

from .errors import TraceJitError
from .graph import Graph, GraphInput, Node, Region, Value
from .shapes import TypeRuleError, product_dim
from .types import TensorType
from .verify import verify

MAX_FACTORS = 3


class _NotUniform(Exception):
    pass


class _Merger:
    def __init__(self, envs: list[dict[str, int]]):
        self.envs = envs
        syms = sorted(envs[0])
        self.products = [(c, [_prod(env, c) for env in envs])
                         for n in range(1, min(MAX_FACTORS, len(syms)) + 1)
                         for c in combinations(syms, n)]
        self.values: dict[Value, Value] = {}    # value of trace 0 -> value of the result
        self.partner: dict[Value, tuple] = {}   # value of trace 0 -> its twins in the others

    def dim(self, ds):
        if all(d == ds[0] for d in ds):
            return ds[0]
        if not all(isinstance(d, int) for d in ds):
            raise _NotUniform(f"sizes {ds}")
        fits = [product_dim(ds[0] // sizes[0], syms) for syms, sizes in self.products
                if ds[0] % sizes[0] == 0 and
                all(d * sizes[0] == ds[0] * n for d, n in zip(ds, sizes))]
        if len(fits) != 1:
            raise _NotUniform(f"sizes {ds}: {fits or 'no product of symbols'} fits")
        return fits[0]

    def type(self, ts) -> TensorType:
        if any(t.dtype != ts[0].dtype or t.rank != ts[0].rank for t in ts):
            raise _NotUniform(f"types {[str(t) for t in ts]}")
        return TensorType(ts[0].dtype, tuple(self.dim(ds) for ds in zip(*(t.shape for t in ts))))

    def attr(self, xs):
        if all(isinstance(x, tuple) and len(x) == len(xs[0]) for x in xs):
            return tuple(self.attr(ys) for ys in zip(*xs))
        if all(type(x) is int for x in xs):
            return self.dim(xs)
        if all(x == xs[0] or (x != x and xs[0] != xs[0]) for x in xs):
            return xs[0]
        raise _NotUniform(f"attribute values {xs!r}")

    def value(self, vs) -> Value:
        new = Value(self.type([v.type for v in vs]), vs[0].name)
        self.values[vs[0]] = new
        self.partner[vs[0]] = tuple(vs[1:])
        return new

    def use(self, vs) -> Value:
        if self.partner.get(vs[0]) != tuple(vs[1:]):
            raise _NotUniform("different dataflow")
        return self.values[vs[0]]

    def nodes(self, lists) -> list[Node]:
        if any(len(ns) != len(lists[0]) for ns in lists):
            raise _NotUniform("different number of nodes")
        return [self.node(ns) for ns in zip(*lists)]

    def node(self, ns) -> Node:
        first = ns[0]
        if any(n.op != first.op or set(n.attrs) != set(first.attrs) or
               len(n.inputs) != len(first.inputs) or len(n.outputs) != len(first.outputs) or
               (n.region is None) != (first.region is None) for n in ns):
            raise _NotUniform(f"{[n.op for n in ns]}")
        inputs = [self.use(vs) for vs in zip(*(n.inputs for n in ns))]
        attrs = {k: self.attr([n.attrs[k] for n in ns]) for k in first.attrs}
        region = None
        if first.region is not None:
            regions = [n.region for n in ns]
            params = [self.value(vs) for vs in zip(*(r.params for r in regions))]
            body = self.nodes([r.nodes for r in regions])
            results = [self.use(vs) for vs in zip(*(r.results for r in regions))]
            region = Region(tuple(params), tuple(body), tuple(results))
        outputs = [self.value(vs) for vs in zip(*(n.outputs for n in ns))]
        return first.replace(inputs=inputs, outputs=outputs, attrs=attrs, region=region)


def _prod(env: dict[str, int], syms) -> int:
    n = 1
    for s in syms:
        n *= env[s]
    return n


def generalize_traces(graphs: list[Graph], envs: list[dict[str, int]]) -> Graph | None:
    """Merge traces of one program, ``graphs[i]`` taken where symbol ``s`` had size
    ``envs[i][s]``, into one graph over those symbols; None if they are not uniform.

    Every symbol must take at least two sizes across the traces, else it could not be told
    apart from a constant."""
    if len(graphs) < 2 or len(envs) != len(graphs) or \
            any(set(env) != set(envs[0]) for env in envs) or \
            any(len({env[s] for env in envs}) < 2 for s in envs[0]):
        raise ValueError("generalize needs traces at two or more sizes of every symbol")
    m = _Merger(envs)
    if any(min(sizes) < 1 or len(set(sizes)) < 2 for _, sizes in m.products):
        return None           # a product of symbols that looks constant: ambiguous
    a = graphs[0]
    if any(len(g.inputs) != len(a.inputs) or len(g.outputs) != len(a.outputs) or
           set(g.writes) != set(a.writes) for g in graphs):
        return None
    try:
        inputs = []
        for ins in zip(*(g.inputs for g in graphs)):
            if any(i.name != ins[0].name or i.role != ins[0].role for i in ins):
                return None
            inputs.append(GraphInput(m.value([i.value for i in ins]), ins[0].role))
        nodes = m.nodes([g.nodes for g in graphs])
        outputs = [m.use(vs) for vs in zip(*(g.outputs for g in graphs))]
        writes = {k: m.use([g.writes[k] for g in graphs]) for k in a.writes}
    except _NotUniform:
        return None
    merged = Graph(a.name, inputs, nodes, outputs, writes)
    try:
        verify(merged)
    except (TraceJitError, TypeRuleError, TypeError, ValueError):
        return None           # a type rule cannot follow the symbols: not uniform
    return merged


def generalize(a: Graph, b: Graph, sizes: tuple[int, int], symbol: str = "B") -> Graph | None:
    """Merge two traces taken at ``sizes[0]`` and ``sizes[1]`` of one dimension into a graph
    where that dimension is ``symbol``; None if the traces are not uniform in it."""
    return generalize_traces([a, b], [{symbol: sizes[0]}, {symbol: sizes[1]}])
