"""Random well-typed graphs for property tests of the passes, and a tiny graph builder.

``graphs()`` is a hypothesis strategy drawing ``(graph, arrays)``: elementwise unary and
binary ops with broadcasting and casts, 0/1 constants (so the algebraic rules fire),
reductions with keepdim, softmax, views, matmul/linear with parameter inputs. Input data
is never all zero and stays finite and moderate.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from ir.graph import Graph, Value
from ir.passes.rewriter import make_node
from ir.types import DType, TensorType

MAX_NUMEL = 256


class Builder:
    """Appends typed nodes to a graph: ``b.op("add", x, y)`` returns the output value."""

    def __init__(self, name: str = "g"):
        self.graph = Graph(name)

    def input(self, name: str, shape, dtype: str = "f32", role: str = "input") -> Value:
        return self.graph.add_input(name, TensorType(DType(dtype), tuple(shape)), role)

    def op(self, op: str, *inputs: Value, **attrs):
        node = make_node(op, inputs, attrs)
        self.graph.nodes.append(node)
        return node.outputs[0] if len(node.outputs) == 1 else node.outputs

    def const(self, value, shape=(), dtype: str = "f32") -> Value:
        return self.op("constant", value=value, shape=tuple(shape), dtype=dtype)

    def ret(self, *values: Value, writes=None) -> Graph:
        self.graph.outputs = list(values)
        self.graph.writes = dict(writes or {})
        return self.graph


class _Skip(Exception):
    pass


UNARY = ["neg", "abs", "tanh", "sigmoid", "relu", "sin", "exp", "cast_same", "cast_f64"]
BINARY = ["add", "sub", "mul", "div", "maximum"]
SCALARS = [0.0, 1.0, 2.0, -0.5]


class _Gen:
    def __init__(self, draw):
        self.draw = draw
        self.b = Builder("gen")
        self.pool: list[Value] = []
        self.arrays_shapes: list[tuple] = []
        self.n_inputs = 0

    def pick(self, items):
        return self.draw(st.sampled_from(items))

    def new_input(self, shape, role="input") -> Value:
        self.n_inputs += 1
        return self.b.input(f"{'p' if role == 'param' else 'x'}{self.n_inputs}", shape,
                            role=role)

    def small(self, shape) -> tuple:
        n = int(np.prod(shape)) if shape else 1
        if n > MAX_NUMEL:
            raise _Skip
        return tuple(shape)

    def unary(self, x):
        op = self.pick(UNARY)
        if op == "cast_same":
            return self.b.op("cast", x, dtype="f32")
        if op == "cast_f64":
            return self.b.op("cast", self.b.op("cast", x, dtype="f64"), dtype="f32")
        if op == "exp":
            x = self.b.op("tanh", x)
        return self.b.op(op, x)

    def partner(self, x):
        shape = x.type.shape
        choice = self.pick(["scalar", "full", "same", "bcast_input", "bigger_zero", "folded"])
        if choice == "scalar":
            return self.b.const(self.pick(SCALARS))
        if choice == "full":
            return self.b.op("full", shape=shape, value=self.pick(SCALARS), dtype="f32")
        if choice == "same":
            same = [v for v in self.pool if v.type == x.type and v is not x]
            return self.pick(same) if same else x
        if choice == "bcast_input":
            keep = self.draw(st.lists(st.booleans(), min_size=len(shape), max_size=len(shape)))
            drop = self.draw(st.integers(0, len(shape)))
            sub = tuple(d if k else 1 for d, k in zip(shape, keep))[drop:]
            return self.new_input(sub, role=self.pick(["input", "param"]))
        if choice == "bigger_zero":
            return self.b.op("full", shape=self.small((2,) + shape), value=0.0, dtype="f32")
        a, c = self.b.const(self.pick(SCALARS)), self.b.const(self.pick(SCALARS))
        return self.b.op(self.pick(BINARY[:3]), a, c)

    def binary(self, x):
        y = self.partner(x)
        a, c = (x, y) if self.draw(st.booleans()) else (y, x)
        return self.b.op(self.pick(BINARY), a, c)

    def reduce(self, x):
        rank = x.type.rank
        if rank == 0:
            raise _Skip
        dims = tuple(self.draw(st.sets(st.integers(0, rank - 1), min_size=1)))
        if self.pick(["sum", "mean", "amax", "softmax"]) == "softmax":
            return self.b.op("softmax", x, dim=dims[0])
        return self.b.op(self.pick(["sum", "mean", "amax"]), x, dims=tuple(sorted(dims)),
                         keepdim=self.draw(st.booleans()))

    def view(self, x):
        shape, rank = x.type.shape, x.type.rank
        kind = self.pick(["reshape", "permute", "transpose", "expand", "slice", "unsqueeze",
                          "squeeze", "flatten", "reshape_same"])
        if kind in ("permute", "transpose", "slice") and rank == 0:
            raise _Skip
        if kind == "reshape":
            return self.b.op("reshape", x, shape=self.pick([(int(np.prod(shape)),),
                                                            (1,) + shape]))
        if kind == "reshape_same":
            return self.b.op("reshape", x, shape=shape)
        if kind == "permute":
            return self.b.op("permute", x, dims=tuple(self.draw(st.permutations(range(rank)))))
        if kind == "transpose":
            return self.b.op("transpose", x, dim0=self.pick(range(rank)),
                             dim1=self.pick(range(rank)))
        if kind == "expand":
            new = tuple(3 if d == 1 and self.draw(st.booleans()) else d for d in shape)
            return self.b.op("expand", x, shape=self.small(self.pick([new, (2,) + new])))
        if kind == "slice":
            dim = self.pick(range(rank))
            start = self.pick([0, 0, 1]) if shape[dim] > 1 else 0
            return self.b.op("slice", x, dim=dim, start=start, end=self.pick([None, shape[dim]]))
        if kind == "unsqueeze":
            return self.b.op("unsqueeze", x, dim=self.pick(range(rank + 1)))
        if kind == "squeeze":
            return self.b.op("squeeze", x)
        return self.b.op("flatten", x)

    def contraction(self, x):
        if x.type.rank != 2:
            raise _Skip
        k, n = x.type.shape[1], self.pick([1, 3, 5])
        w = self.new_input((n, k), role="param")
        bias = self.new_input((n,), role="param")
        kind = self.pick(["matmul_t", "matmul_t_bias", "linear", "addmm", "matmul"])
        if kind == "linear":
            return self.b.op("linear", x, w, bias)
        if kind == "matmul":
            return self.b.op("matmul", x, self.new_input((k, n), role="param"))
        wt = self.b.op("permute", w, dims=(1, 0))
        if kind == "addmm":
            return self.b.op("addmm", bias, x, wt)
        y = self.b.op("matmul", x, wt)
        return self.b.op("add", y, bias) if kind == "matmul_t_bias" else y

    def step(self):
        x = self.pick(self.pool)
        kind = self.pick(["unary", "binary", "binary", "reduce", "view", "contraction"])
        try:
            self.pool.append(getattr(self, kind)(x))
        except (_Skip, ValueError):
            pass


@st.composite
def graphs(draw, max_ops: int = 10):
    """A strategy for ``(graph, arrays)``: a random well-typed f32 graph and its inputs."""
    g = _Gen(draw)
    rank = draw(st.integers(0, 3))
    shape = tuple(draw(st.lists(st.sampled_from([1, 2, 3, 4]), min_size=rank, max_size=rank)))
    g.pool.append(g.new_input(shape))
    for _ in range(draw(st.integers(1, max_ops))):
        g.step()
    outs = [g.pool[-1]] + draw(st.lists(st.sampled_from(g.pool), max_size=2))
    graph = g.b.ret(*dict.fromkeys(outs))
    seed = draw(st.integers(0, 2 ** 32 - 1))
    return graph, random_arrays(graph, seed)


def random_arrays(graph: Graph, seed: int = 0) -> list[np.ndarray]:
    """Arrays for the graph's inputs: magnitudes in [0.5, 2), random signs, never zero."""
    rng = np.random.default_rng(seed)
    out = []
    for inp in graph.inputs:
        t = inp.value.type
        mag = rng.uniform(0.5, 2.0, size=t.shape)
        sign = np.where(rng.random(size=t.shape) < 0.5, -1.0, 1.0)
        out.append(np.asarray(mag * sign, dtype=t.dtype.np))
    return out
