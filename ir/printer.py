"""The text format: deterministic, readable, and parsed back by ``ir.parser``.

Values are named in print order (``%0, %1, ...``, skipping numbers that are input names);
graph inputs keep their names, JSON-quoted when not plain (``%"my layer: w"``).
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

import itertools
import json
import math
import os
import re

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


NAME = re.compile(r"[A-Za-z0-9_.\-]+")
"""Names printed bare; any other name (spaces, colons, ...) is printed as a JSON string."""


def format_name(name: str) -> str:
    return name if NAME.fullmatch(name) else json.dumps(name)


def name_values(graph: Graph) -> dict[Value, str]:
    """Printed names: inputs keep theirs, other values are numbered in print order.

    Numbers that are also input names are skipped, so ``%0`` always means one value.
    """
    names = {inp.value: inp.name for inp in graph.inputs}
    taken = set(names.values())
    counter = itertools.count()

    def define(v: Value) -> None:
        n = next(counter)
        while str(n) in taken:
            n = next(counter)
        names.setdefault(v, str(n))

    def walk(nodes) -> None:
        for node in nodes:
            for v in node.outputs:
                define(v)
            if node.region is not None:
                for p in node.region.params:
                    define(p)
                walk(node.region.nodes)

    walk(graph.nodes)
    return names


def ref(v: Value, names: dict[Value, str]) -> str:
    name = names.get(v)
    return f"%{format_name(name)}" if name is not None else f"%<undefined {v.uid}>"


def format_node(node: Node, names: dict[Value, str], indent: str = "",
                column: int = COMMENT_COLUMN) -> str:
    """One node's line (a fused node's head line, ending in ``{``), comment at ``column``."""
    args = ", ".join(ref(v, names) for v in node.inputs)
    outs = ", ".join(f"{ref(v, names)}: {v.type}" for v in node.outputs)
    head = f"{indent}{outs + ' = ' if outs else ''}{node.op}{format_attrs(node.attrs)}({args})"
    if node.region is not None:
        params = ", ".join(f"{ref(p, names)}: {p.type}" for p in node.region.params)
        head += f" ({params}) {{"
    comment = location(node)
    return f"{head.ljust(column)}  # {comment}" if comment else head


def _print_nodes(nodes, names: dict[Value, str], indent: str, lines: list[str]) -> None:
    for node in nodes:
        lines.append(format_node(node, names, indent))
        if node.region is not None:
            _print_nodes(node.region.nodes, names, indent + "  ", lines)
            results = ", ".join(ref(v, names) for v in node.region.results)
            lines.append(f"{indent}  yield {results}")
            lines.append(f"{indent}}}")


def print_graph(graph: Graph) -> str:
    names = name_values(graph)
    params = []
    for inp in graph.inputs:
        role = "" if inp.role == "input" else f" {inp.role}"
        params.append(f"%{format_name(inp.name)}: {inp.value.type}{role}")
    lines = [f"graph {format_name(graph.name)}({', '.join(params)}) {{"]
    _print_nodes(graph.nodes, names, "  ", lines)
    for name in sorted(graph.writes):
        lines.append(f"  write %{format_name(name)} = {ref(graph.writes[name], names)}")
    lines.append(f"  return {', '.join(ref(v, names) for v in graph.outputs)}".rstrip())
    lines.append("}")
    return "\n".join(lines)
