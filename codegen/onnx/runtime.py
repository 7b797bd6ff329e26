"""The ``onnxruntime`` backend: one InferenceSession per graph, created at compile time.

Parameters and buffers stay ONNX inputs and are fed at every call, so weight updates are
seen. NumPy inputs go to onnxruntime as they are: it wraps C-contiguous arrays of the right
dtype without copying and makes other layouts contiguous itself. Guards come back as extra
outputs and are compared here after the call (the graph is functional, so nothing changed).
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

from ir.errors import LoweringError
from ir.graph import Graph
from ir.ops import GuardFailed, guard_holds

from .export import DEFAULT_OPSET, lower_graph

DEFAULT_THREADS = 1   # measured: at batch 1 a second intra-op thread only adds overhead


def session_options(threads: int) -> ort.SessionOptions:
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3   # onnxruntime's warnings are not the user's concern
    return so


class OrtExecutable:
    """``exe(arrays, extern=None) -> (outputs, writes)``, arrays in ``graph.inputs`` order."""

    def __init__(self, graph: Graph, options: dict):
        self.lowered = lower_graph(graph, opset=options.get("opset", DEFAULT_OPSET),
                                   guards="check", check=options.get("check", True))
        low = self.lowered
        try:
            self.session = ort.InferenceSession(
                low.model.SerializeToString(), session_options(options.get("threads",
                                                                           DEFAULT_THREADS)),
                providers=["CPUExecutionProvider"])
        except Exception as e:   # a kernel onnxruntime lacks for some dtype, typically
            raise LoweringError(f"onnxruntime cannot run graph {graph.name}: {e}") from e
        self.input_names = low.input_names
        self.dtypes = [i.value.type.dtype.np for i in graph.inputs]
        self.fetch = low.output_names + list(low.write_names.values()) + [
            name for name, _ in low.guards]
        self.n_out = len(low.output_names)
        self.write_keys = list(low.write_names)
        self.expected = [e for _, e in low.guards]
        self.simple = not low.write_names and not low.guards

    def __call__(self, arrays, extern=None):
        if len(arrays) != len(self.input_names):
            raise ValueError(f"expected {len(self.input_names)} arrays, got {len(arrays)}")
        try:   # the hot path: NumPy arrays of the right dtypes, handed over as they are
            res = self.session.run(self.fetch, dict(zip(self.input_names, arrays)))
        except Exception:
            res = self.session.run(self.fetch, self._coerced(arrays))
        if self.simple:
            return res, {}
        n, w = self.n_out, self.n_out + len(self.write_keys)
        for got, expected in zip(res[w:], self.expected):
            actual = got.item()
            if not guard_holds(actual, expected):
                raise GuardFailed(expected, actual)
        return res[:n], dict(zip(self.write_keys, res[n:w]))

    def _coerced(self, arrays) -> dict:
        """Scalars, lists and other dtypes: converted as ``ir.run`` would take them."""
        return {name: np.asarray(a, dtype=dt)
                for name, a, dt in zip(self.input_names, arrays, self.dtypes)}


def compile(graph: Graph, options: dict) -> OrtExecutable:
    """Backend factory. Graphs with ``extern`` nodes raise LoweringError (tracejit then
    picks another backend); options: ``threads`` (intra-op, default 1), ``opset``."""
    return OrtExecutable(graph, options)
