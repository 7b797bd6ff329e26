"""The ``interpret`` backend: the NumPy reference interpreter behind the executable protocol."""

from __future__ import annotations

import ir


class Interpreted:
    def __init__(self, graph: ir.Graph):
        self.graph = graph

    def __call__(self, arrays, extern=None):
        return ir.run(self.graph, arrays, extern=extern)


def compile(graph: ir.Graph, options: dict) -> Interpreted:
    return Interpreted(graph)
