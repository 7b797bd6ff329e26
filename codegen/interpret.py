"""The ``interpret`` backend: the NumPy reference interpreter behind the executable protocol."""

from __future__ import annotations

import numpy as np

import ir


class Interpreted:
    def __init__(self, graph: ir.Graph):
        self.graph = graph

    def __call__(self, arrays, extern=None):
        outs, writes = ir.run(self.graph, arrays, extern=extern)
        # the protocol promises fresh, writable outputs (the interpreter may return views)
        return [np.array(o) for o in outs], writes


def compile(graph: ir.Graph, options: dict) -> Interpreted:
    return Interpreted(graph)
