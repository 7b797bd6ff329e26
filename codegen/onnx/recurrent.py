"""Unrolled LSTM and GRU layers -> one ONNX ``LSTM``/``GRU`` node each (export only).

The tracer unrolls torch's recurrent layers into a dozen nodes per time step; onnxruntime
runs its native kernels far faster. A layer is recognised from its input projection
``linear(X[T,B,I], W_ih, b_ih)`` (read by one ``select`` per step), then step by step
along the cell's exact arithmetic, every operand checked. Only when the weights are known
(initializers) and no value inside the layer is read from outside (except the step
outputs h_t, a ``stack`` of all of them, and the last cell state, all read after the
layer) is it replaced; anything else stays unrolled, which is always correct.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ir.graph import Graph, Node, Value
from ir.shapes import norm_dim
from ir.types import DType

_I64 = DType.i64

TORCH_TO_ONNX_GATES = {"lstm": (0, 3, 1, 2),   # (i, f, g, o) -> (i, o, f, c)
                       "gru": (1, 0, 2)}       # (r, z, n) -> (z, r, h)


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


def find_layers(graph: Graph, weights: dict[str, np.ndarray], names: dict[Value, str]
                ) -> list[Layer]:
    """Recurrent layers in ``graph`` that can become one ONNX node each (see the module)."""
    if not weights:
        return []
    g = _Graph(graph)
    order = {id(n): k for k, n in enumerate(graph.nodes)}
    layers = []
    for node in graph.nodes:
        if node.op != "linear" or node.inputs[0].type.rank != 3:
            continue
        for match in MATCHERS.values():
            try:
                layer = match(g, node)
                _finish(g, layer, order, weights, names)
            except _NoMatch:
                continue
            layers.append(layer)
            break
    return layers


def _finish(g: _Graph, layer: Layer, order, weights, names) -> None:
    """Check the weights are known and nothing reads the layer's insides from outside."""
    params = [layer.xp.inputs[1], layer.w_hh] + [v for v in (
        layer.xp.inputs[2] if len(layer.xp.inputs) > 2 else None, layer.b_hh) if v is not None]
    _need(all(names.get(v) in weights for v in params))
    _need(layer.xp.output.type.dtype == DType.f32)   # onnxruntime's CPU kernels: float only
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


def _gates(array: np.ndarray, kind: str) -> np.ndarray:
    parts = np.split(array, len(TORCH_TO_ONNX_GATES[kind]), axis=0)
    return np.concatenate([parts[k] for k in TORCH_TO_ONNX_GATES[kind]], axis=0)


def lower_layer(b, layer: Layer, env: dict, names: dict[Value, str]) -> dict[Value, str]:
    """Emit the ONNX node; returns ONNX names for the layer's values read from outside."""
    w_ih = b.weights[names[layer.xp.inputs[1]]]
    w_hh = b.weights[names[layer.w_hh]]
    dt, hidden = w_ih.dtype, w_hh.shape[1]
    b_ih = (b.weights[names[layer.xp.inputs[2]]] if len(layer.xp.inputs) > 2
            else np.zeros(w_ih.shape[0], dt))
    b_hh = b.weights[names[layer.b_hh]] if layer.b_hh is not None else np.zeros_like(b_ih)
    inputs = [env[layer.xp.inputs[0]],
              b.const(_gates(w_ih, layer.kind)[None]), b.const(_gates(w_hh, layer.kind)[None]),
              b.const(np.concatenate([_gates(b_ih, layer.kind), _gates(b_hh, layer.kind)])[None]),
              None, b.op("Unsqueeze", [env[layer.h0], b.ints([0])])]
    extra = {"linear_before_reset": 1} if layer.kind == "gru" else {}
    if layer.c0 is not None:
        inputs.append(b.op("Unsqueeze", [env[layer.c0], b.ints([0])]))
    outs = b.op(layer.kind.upper(), inputs, n_out=3 if layer.c0 is not None else 2,
                hidden_size=hidden, **extra)
    seq = b.op("Squeeze", [outs[0], b.ints([1])]) if layer.stack or layer.read else None
    got = {layer.stack.output: seq} if layer.stack is not None else {}
    if layer.hs[-1] in layer.read:
        got[layer.hs[-1]] = b.op("Squeeze", [outs[1], b.ints([0])])
    if layer.c_last in layer.read:
        got[layer.c_last] = b.op("Squeeze", [outs[2], b.ints([0])])
    for t, h in enumerate(layer.hs[:-1]):
        if h in layer.read:
            got[h] = b.op("Gather", [seq, b.scalar(t, _I64)], axis=0)
    return got
