"""Recognise unrolled LSTM and GRU layers and wrap each in one ``fused`` node of kind
"lstm" or "gru", so a backend can run the whole layer as one kernel.

The tracer unrolls torch's recurrent layers into a dozen nodes per time step. A layer is
recognised from its input projection ``linear(X[T,B,I], W_ih, b_ih)`` (read by one
``select`` per step), then step by step along the cell's exact arithmetic, every operand
checked. When nothing inside the layer is read from outside except the step outputs h_t
and the last cell state, the steps (not the input projection) become a region with params
``(xp, w_hh, b_hh, h0[, c0])`` (``b_hh`` a 0-length vector when the layer has no bias)
and results ``(H[T,B,H][, c_T])``: H stacks every h_t, readers of one h_t get a
``select`` of it. The body is the unrolled steps, so a backend without a special lowering
inlines it and computes exactly what it did before. ONNX export recognises the same layers
(codegen/onnx/recurrent.py) to emit native LSTM/GRU nodes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..graph import Graph, Node, Region, Value
from ..shapes import norm_dim
from ..types import DType
from .fusion import toposort
from .rewriter import replace_uses

RECURRENT_KINDS = frozenset({"lstm", "gru"})
"""Fused kinds made here; their params and results keep the positions described above."""


class _NoMatch(Exception):
    pass


@dataclass
class Layer:
    kind: str
    xp: Node                      # linear(X, W_ih, b_ih)
    w_hh: Value
    b_hh: Value | None
    h0: Value
    c0: Value | None
    hs: list[Value]               # h_1 .. h_T
    c_last: Value | None
    nodes: set = field(default_factory=set)    # ids of the nodes it replaces
    stack: Node | None = None     # stack[dim=0](h_1..h_T), replaced by the ONNX output
    last: Node | None = None      # the layer is emitted in place of this node
    read: set = field(default_factory=set)     # its values read from outside (not the stack)


class _Graph:
    def __init__(self, graph: Graph):
        self.users = graph.users()
        self.producer = {v: n for n in graph.nodes for v in n.outputs}
        self.by_id = {id(n): n for n in graph.nodes}

    def one_user(self, v: Value, op: str) -> Node:
        users = self.users.get(v, [])
        if len(users) != 1 or users[0].op != op:
            raise _NoMatch
        return users[0]

    def user(self, v: Value, op: str, also: Value | None = None) -> Node:
        """The one user of ``v`` with ``op`` (that also reads ``also``, when given)."""
        found = [n for n in self.users.get(v, []) if n.op == op
                 and (also is None or also in n.inputs)]
        if len(found) != 1:
            raise _NoMatch
        return found[0]


def _other(node: Node, v: Value) -> Value:
    """The other operand of a binary ``node`` that reads ``v``."""
    a, b = node.inputs
    if a is v:
        return b
    if b is v:
        return a
    raise _NoMatch


def _need(cond: bool) -> None:
    if not cond:
        raise _NoMatch


def _steps(g: _Graph, xp: Node) -> list[Node]:
    """The ``select`` nodes reading steps 0..T-1 of the input projection, in order."""
    x = xp.inputs[0].type
    _need(xp.op == "linear" and x.rank == 3 and isinstance(x.shape[0], int))
    sels = g.users.get(xp.output, [])
    by_index = {}
    for s in sels:
        _need(s.op == "select" and norm_dim(s.attrs["dim"], 3) == 0)
        by_index[s.attrs["index"] % x.shape[0]] = s
    _need(len(by_index) == len(sels) == x.shape[0])
    return [by_index[t] for t in range(x.shape[0])]


def _recurrent(g: _Graph, gates_in: Value, layer: Layer | None, h_prev):
    """``linear(h_prev, W_hh, b_hh)``: checks the weights match the earlier steps'."""
    rec = g.producer.get(gates_in)
    _need(rec is not None and rec.op == "linear" and len(g.users[gates_in]) == 1)
    h, w, *b = rec.inputs
    _need(h_prev is None or h is h_prev)
    if layer is not None:
        _need(w is layer.w_hh and (b[0] if b else None) is layer.b_hh)
    return rec, h, w, (b[0] if b else None)


def _match_lstm(g: _Graph, xp: Node) -> Layer:
    sels = _steps(g, xp)
    hidden = xp.output.type.shape[-1] // 4
    layer, h, c = None, None, None
    for sel in sels:
        add = g.one_user(sel.output, "add")
        rec, h_in, w, bias = _recurrent(g, _other(add, sel.output), layer, h)
        split = g.one_user(add.output, "split")
        _need(norm_dim(split.attrs["dim"], 2) == 1 and split.attrs["sizes"] == (hidden,) * 4)
        i, f, gg, o = (g.one_user(v, op).output for v, op in zip(
            split.outputs, ("sigmoid", "sigmoid", "tanh", "sigmoid")))
        ig = g.user(i, "mul", gg)
        fc = g.user(f, "mul")
        c_in = _other(fc, f)
        _need(c is None or c_in is c)
        cell = g.user(ig.output, "add", fc.output)
        tc = g.user(cell.output, "tanh")
        out = g.user(o, "mul", tc.output)
        if layer is None:
            layer = Layer("lstm", xp, w, bias, h_in, c_in, [], None)
            layer.nodes.add(id(xp))
        layer.nodes.update(id(n) for n in (sel, add, rec, split, ig, fc, cell, tc, out))
        layer.nodes.update(id(g.producer[v]) for v in (i, f, gg, o))
        h, c = out.output, cell.output
        layer.hs.append(h)
    layer.c_last = c
    return layer


def _match_gru(g: _Graph, xp: Node) -> Layer:
    sels = _steps(g, xp)
    hidden = xp.output.type.shape[-1] // 3
    layer, h = None, None
    for sel in sels:
        xsplit = g.one_user(sel.output, "split")
        _need(norm_dim(xsplit.attrs["dim"], 2) == 1 and xsplit.attrs["sizes"] == (hidden,) * 3)
        xr, xz, xn = xsplit.outputs
        r_add, z_add = g.one_user(xr, "add"), g.one_user(xz, "add")
        hr, hz = _other(r_add, xr), _other(z_add, xz)
        hsplit = g.producer.get(hr)
        _need(hsplit is not None and hsplit.op == "split" and hsplit.outputs[:2] == (hr, hz))
        hn = hsplit.outputs[2]
        rec, h_in, w, bias = _recurrent(g, hsplit.inputs[0], layer, h)
        r = g.one_user(r_add.output, "sigmoid").output
        z = g.one_user(z_add.output, "sigmoid").output
        rn = g.one_user(hn, "mul")
        _need(_other(rn, hn) is r)
        n_add = g.one_user(xn, "add")
        _need(_other(n_add, xn) is rn.output)
        n = g.one_user(n_add.output, "tanh").output
        sub = g.user(n, "sub")
        _need(sub.inputs == (h_in, n))
        zm = g.one_user(sub.output, "mul")
        _need(_other(zm, sub.output) is z)
        out = g.user(n, "add", zm.output)
        if layer is None:
            layer = Layer("gru", xp, w, bias, h_in, None, [], None)
            layer.nodes.add(id(xp))
        layer.nodes.update(id(x) for x in (sel, xsplit, r_add, z_add, hsplit, rec, rn, n_add,
                                           sub, zm, out, g.producer[r], g.producer[z],
                                           g.producer[n]))
        h = out.output
        layer.hs.append(h)
    return layer


MATCHERS = {"lstm": _match_lstm, "gru": _match_gru}


def layers(graph: Graph) -> list[Layer]:
    """Every unrolled recurrent layer in ``graph`` whose insides are read from outside only
    through its step outputs and last cell state (see ``finish``)."""
    g = _Graph(graph)
    order = {id(n): k for k, n in enumerate(graph.nodes)}
    found = []
    for node in graph.nodes:
        if node.op != "linear" or node.inputs[0].type.rank != 3:
            continue
        for match in MATCHERS.values():
            try:
                layer = match(g, node)
                finish(g, layer, order)
            except _NoMatch:
                continue
            found.append(layer)
            break
    return found


def finish(g: _Graph, layer: Layer, order) -> None:
    """Check the layer is float32 (the kernels' and onnxruntime's type) and that nothing
    reads its insides from outside but later readers of h_t and c_T."""
    _need(layer.xp.output.type.dtype == DType.f32)
    stack = [n for n in g.users.get(layer.hs[0], []) if n.op == "stack"
             and norm_dim(n.attrs["dim"], 3) == 0 and list(n.inputs) == layer.hs]
    layer.stack = stack[0] if stack else None
    inside = layer.nodes
    last = max(order[i] for i in inside)
    free = set(layer.hs) | {layer.c_last}
    for i in inside:
        node = g.by_id[i]
        for v in node.outputs:
            for user in g.users.get(v, []):
                if id(user) in inside or user is layer.stack:
                    continue
                _need(v in free and order[id(user)] > last)
                layer.read.add(v)
    layer.last = max((g.by_id[i] for i in inside), key=lambda n: order[id(n)])
    if layer.stack is not None:
        layer.nodes = inside | {id(layer.stack)}


def wrap_recurrent(graph: Graph) -> int:
    """Wrap each recognised layer in a ``fused`` node (see the module); returns how many."""
    found = layers(graph)
    results_used = set(graph.result_values())
    by_id = {id(n): n for n in graph.nodes}
    mapping: dict[Value, Value] = {}
    placed: dict[int, list[Node]] = {}
    dropped: set[int] = set()
    for layer in found:
        inner = {v for i in layer.nodes for v in by_id[i].outputs}
        shared = inner & results_used
        if not shared <= set(layer.hs) | {layer.c_last} | (
                {layer.stack.output} if layer.stack else set()):
            continue
        layer.read |= shared - ({layer.stack.output} if layer.stack else set())
        fused, extra, m = _wrap(layer, [by_id[i] for i in by_id if i in layer.nodes
                                        and i != id(layer.xp)])
        placed[id(layer.last)] = [fused, *extra]
        mapping.update(m)
        dropped |= layer.nodes - {id(layer.xp)}
    if not placed:
        return 0
    nodes = []
    for node in graph.nodes:
        nodes.extend(placed.get(id(node), ()))
        if id(node) not in dropped:
            nodes.append(node)
    graph.nodes = nodes
    replace_uses(graph, mapping)
    graph.nodes = toposort(graph.nodes)
    return len(placed)


def _wrap(layer: Layer, steps: list[Node]):
    """The fused node for ``layer``, ``select`` nodes for the h_t read outside, and the map
    from the layer's values read outside to their replacements."""
    outer = [layer.xp.output, layer.w_hh] + ([layer.b_hh] if layer.b_hh is not None else []) \
        + [layer.h0] + ([layer.c0] if layer.c0 is not None else [])
    params = [Value(v.type) for v in outer]     # h0 and c0 may be one value: keep both
    bind: dict[Value, Value] = {}
    for v, p in zip(outer, params):
        bind.setdefault(v, p)
    body = [n.replace(inputs=tuple(bind.get(v, v) for v in n.inputs)) for n in steps]
    if layer.stack is None:
        h = layer.hs[0].type
        stack = Node("stack", tuple(layer.hs), (Value(h.with_shape((len(layer.hs),) + h.shape)),),
                     {"dim": 0}, scope=steps[-1].scope, loc=steps[-1].loc)
        body.append(stack)
    else:
        stack = next(n for n in body if n.op == "stack" and n.outputs == layer.stack.outputs)
    results = (stack.output,) + ((layer.c_last,) if layer.c0 is not None else ())
    outs = tuple(Value(v.type) for v in results)
    fused = Node("fused", tuple(outer), outs, {"kind": layer.kind}, scope=steps[0].scope,
                 loc=steps[0].loc, region=Region(tuple(params), tuple(body), results))
    mapping = {stack.output: outs[0]}
    if layer.c0 is not None:
        mapping[layer.c_last] = outs[1]
    selects = []
    for t, h in enumerate(layer.hs):
        if h in layer.read:
            sel = Node("select", (outs[0],), (Value(h.type),), {"dim": 0, "index": t},
                       scope=steps[-1].scope, loc=steps[-1].loc)
            selects.append(sel)
            mapping[h] = sel.output
    return fused, selects, mapping
