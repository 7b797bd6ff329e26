"""Unrolled LSTM and GRU layers -> one ONNX ``LSTM``/``GRU`` node each (export only).

The tracer unrolls torch's recurrent layers into a dozen nodes per time step; onnxruntime
runs its native kernels far faster. Layers are recognised by ir/passes/recurrent.py's
matchers (the input projection, then every step's exact arithmetic). Only when the weights
are known (initializers) and no value inside the layer is read from outside (except the
step outputs h_t, a ``stack`` of all of them, and the last cell state, all read after the
layer) is it replaced; anything else stays unrolled, which is always correct.
"""

from __future__ import annotations

import numpy as np

from ir.graph import Graph, Value
from ir.passes.recurrent import Layer, layers
from ir.types import DType

_I64 = DType.i64

TORCH_TO_ONNX_GATES = {"lstm": (0, 3, 1, 2),   # (i, f, g, o) -> (i, o, f, c)
                       "gru": (1, 0, 2)}       # (r, z, n) -> (z, r, h)


def find_layers(graph: Graph, weights: dict[str, np.ndarray], names: dict[Value, str]
                ) -> list[Layer]:
    """Recurrent layers in ``graph`` that can become one ONNX node each (see the module)."""
    return [layer for layer in (layers(graph) if weights else [])
            if _weights_known(layer, weights, names)]


def _weights_known(layer: Layer, weights, names) -> bool:
    params = [layer.xp.inputs[1], layer.w_hh] + [v for v in (
        layer.xp.inputs[2] if len(layer.xp.inputs) > 2 else None, layer.b_hh) if v is not None]
    return all(names.get(v) in weights for v in params)


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
