"""The text format: deterministic, readable, and parsed back by ``ir.parser``.

Values are named in print order (``%0, %1, ...``); graph inputs keep their names.
Attributes sort by key in brackets after the op; provenance is a trailing comment::

    graph Net(%x: f32[1,784], %fc1.weight: f32[256,784] param) {
      %0: f32[1,256] = linear(%x, %fc1.weight)                    # fc1  net.py:12
      %1: f32[1,256] = fused[kind="elementwise"](%0) (%2: f32[1,256]) {
        %3: f32[1,256] = relu(%2)
        yield %3
      }
      return %1
    }
"""

from __future__ import annotations

import json
import math
import os

from .graph import Graph, Node, Value

COMMENT_COLUMN = 60


def format_attr(v) -> str:
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, tuple):
        inner = ", ".join(format_attr(x) for x in v)
        return f"({inner},)" if len(v) == 1 else f"({inner})"
    raise TypeError(f"cannot print attribute {v!r}")


def format_attrs(attrs: dict) -> str:
    if not attrs:
        return ""
    return "[" + ", ".join(f"{k}={format_attr(attrs[k])}" for k in sorted(attrs)) + "]"


def location(node: Node) -> str:
    """The provenance comment: module scope and the source file's base name and line."""
    loc = node.loc
    if loc:
        path, _, line = loc.rpartition(":")
        loc = f"{os.path.basename(path)}:{line}"
    return "  ".join(p for p in (node.scope, loc) if p)


class _Namer:
    def __init__(self):
        self.names: dict[Value, str] = {}
        self.counter = 0

    def define(self, v: Value) -> str:
        self.names[v] = str(self.counter)
        self.counter += 1
        return f"%{self.names[v]}"

    def __call__(self, v: Value) -> str:
        name = self.names.get(v)
        return f"%{name}" if name is not None else f"%<undefined {v.uid}>"


def _print_nodes(nodes, namer: _Namer, indent: str, lines: list[str]) -> None:
    for node in nodes:
        args = ", ".join(namer(v) for v in node.inputs)
        outs = ", ".join(f"{namer.define(v)}: {v.type}" for v in node.outputs)
        head = f"{indent}{outs + ' = ' if outs else ''}{node.op}{format_attrs(node.attrs)}({args})"
        if node.region is not None:
            params = ", ".join(f"{namer.define(p)}: {p.type}" for p in node.region.params)
            head += f" ({params}) {{"
        comment = location(node)
        if comment:
            head = f"{head.ljust(COMMENT_COLUMN)}  # {comment}"
        lines.append(head)
        if node.region is not None:
            _print_nodes(node.region.nodes, namer, indent + "  ", lines)
            lines.append(f"{indent}  yield {', '.join(namer(v) for v in node.region.results)}")
            lines.append(f"{indent}}}")


def print_graph(graph: Graph) -> str:
    namer = _Namer()
    params = []
    for inp in graph.inputs:
        namer.names[inp.value] = inp.name
        role = "" if inp.role == "input" else f" {inp.role}"
        params.append(f"%{inp.name}: {inp.value.type}{role}")
    lines = [f"graph {graph.name}({', '.join(params)}) {{"]
    _print_nodes(graph.nodes, namer, "  ", lines)
    for name in sorted(graph.writes):
        lines.append(f"  write %{name} = {namer(graph.writes[name])}")
    lines.append(f"  return {', '.join(namer(v) for v in graph.outputs)}".rstrip())
    lines.append("}")
    return "\n".join(lines)
