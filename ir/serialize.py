"""Graphs as JSON (for tools; round-trips like the text form) and as Graphviz dot (to look at).

JSON names values as the printer does, so a JSON dump and a text dump of one graph agree.
Non-finite floats are tagged (``{"float": "inf"}``) so the JSON stays standard.
"""

from __future__ import annotations

import itertools
import math

from .errors import ParseError
from .graph import Graph, Node, Region, Value
from .printer import format_attr, format_attrs, location, name_values
from .types import parse_type

FORMAT = "tracejit-ir"
VERSION = 1


# ---- JSON -------------------------------------------------------------------------------


def _attr_to_json(v):
    if isinstance(v, tuple):
        return [_attr_to_json(x) for x in v]
    if isinstance(v, float) and not math.isfinite(v):
        return {"float": format_attr(v)}
    return v


def _attr_from_json(v):
    if isinstance(v, list):
        return tuple(_attr_from_json(x) for x in v)
    if isinstance(v, dict):
        return float(v["float"])
    return v


def to_json(graph: Graph) -> dict:
    """A JSON-ready dict (``json.dumps(..., allow_nan=False)`` accepts it)."""
    printed = name_values(graph)

    def name(v: Value) -> str:
        return printed.get(v, f"<undefined {v.uid}>")

    def value(v: Value) -> dict:
        return {"name": name(v), "type": str(v.type)}

    def nodes(ns) -> list[dict]:
        out = []
        for n in ns:
            d = {"op": n.op, "inputs": [name(v) for v in n.inputs],
                 "outputs": [value(v) for v in n.outputs],
                 "attrs": {k: _attr_to_json(n.attrs[k]) for k in sorted(n.attrs)},
                 "scope": n.scope, "loc": n.loc}
            if n.region is not None:
                d["region"] = {"params": [value(p) for p in n.region.params],
                               "nodes": nodes(n.region.nodes),
                               "results": [name(v) for v in n.region.results]}
            out.append(d)
        return out

    return {"format": FORMAT, "version": VERSION, "name": graph.name,
            "inputs": [dict(value(i.value), role=i.role) for i in graph.inputs],
            "nodes": nodes(graph.nodes),
            "outputs": [name(v) for v in graph.outputs],
            "writes": {k: name(v) for k, v in sorted(graph.writes.items())}}


def from_json(data: dict) -> Graph:
    """Inverse of ``to_json``; raises ``ParseError`` on another format or version."""
    if data.get("format") != FORMAT or data.get("version") != VERSION:
        raise ParseError(f"not {FORMAT} version {VERSION} JSON (format={data.get('format')!r}, "
                         f"version={data.get('version')!r})\n"
                         "Hint: write it with ir.to_json of this tracejit version.")
    try:
        return _JsonReader().graph(data)
    except (KeyError, TypeError, ValueError) as e:
        raise ParseError(f"malformed graph JSON: {type(e).__name__}: {e}\n"
                         "Hint: the JSON must be what ir.to_json writes.") from None


class _JsonReader:
    def __init__(self):
        self.values: dict[str, Value] = {}

    def bind(self, name: str, v: Value) -> Value:
        if name in self.values:
            raise ValueError(f"%{name} is defined twice")
        self.values[name] = v
        return v

    def define(self, d: dict) -> Value:
        return self.bind(d["name"], Value(parse_type(d["type"])))

    def use(self, name: str) -> Value:
        if name not in self.values:
            raise KeyError(f"%{name} is used before it is defined")
        return self.values[name]

    def graph(self, data: dict) -> Graph:
        g = Graph(data["name"])
        for d in data["inputs"]:
            self.bind(d["name"], g.add_input(d["name"], parse_type(d["type"]), d["role"]))
        g.nodes = self.nodes(data["nodes"])
        g.outputs = [self.use(n) for n in data["outputs"]]
        g.writes = {k: self.use(n) for k, n in data["writes"].items()}
        return g

    def nodes(self, items: list) -> list[Node]:
        out = []
        for d in items:
            inputs = [self.use(n) for n in d["inputs"]]
            outputs = [self.define(o) for o in d["outputs"]]
            region = None
            if "region" in d:
                r = d["region"]
                params = tuple(self.define(p) for p in r["params"])
                body = tuple(self.nodes(r["nodes"]))
                region = Region(params, body, tuple(self.use(n) for n in r["results"]))
            attrs = {k: _attr_from_json(v) for k, v in d["attrs"].items()}
            out.append(Node(d["op"], inputs, outputs, attrs, d.get("scope", ""),
                            d.get("loc", ""), region))
        return out


# ---- Graphviz dot -----------------------------------------------------------------------


def _quote(text: str) -> str:
    """A dot string literal; newlines become centred line breaks."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def to_dot(graph: Graph) -> str:
    """Graphviz source: inputs as ellipses, nodes as boxes, fused regions as clusters."""
    names = name_values(graph)
    lines = [f"digraph {_quote(graph.name)} {{", "  rankdir=TB;",
             '  node [fontname="monospace", fontsize=10];',
             '  edge [fontname="monospace", fontsize=9];']
    source: dict[Value, str] = {}   # value -> dot id of what produces it
    edges: list[str] = []

    def edge(v: Value, dst: str) -> None:
        if v in source:
            edges.append(f"  {source[v]} -> {dst} [label={_quote(str(v.type))}];")

    for k, inp in enumerate(graph.inputs):
        source[inp.value] = f"in{k}"
        label = f"%{inp.name}\n{inp.value.type}\n{inp.role}"
        lines.append(f"  in{k} [shape=ellipse, label={_quote(label)}];")
    counter = itertools.count()

    def emit(nodes, indent: str) -> None:
        for node in nodes:
            nid = f"n{next(counter)}"
            if node.region is None:
                outs = ", ".join(f"%{names[v]}" for v in node.outputs)
                types = "\n".join(str(v.type) for v in node.outputs)
                head = f"{outs} = {node.op}" if outs else node.op
                text = "\n".join(p for p in (head, format_attrs(node.attrs), types,
                                             location(node)) if p)
                lines.append(f"{indent}{nid} [shape=box, label={_quote(text)}];")
                for v in node.inputs:
                    edge(v, nid)
                for v in node.outputs:
                    source[v] = nid
                continue
            lines.append(f"{indent}subgraph cluster_{nid} {{")
            title = f"{node.op}{format_attrs(node.attrs)}  {location(node)}".strip()
            lines.append(f"{indent}  label={_quote(title)}; style=rounded;")
            for j, (a, p) in enumerate(zip(node.inputs, node.region.params)):
                pid = f"{nid}_p{j}"
                label = f"%{names[p]}\n{p.type}"
                lines.append(f"{indent}  {pid} [shape=ellipse, style=dashed, "
                             f"label={_quote(label)}];")
                edge(a, pid)
                source[p] = pid
            emit(node.region.nodes, indent + "  ")
            lines.append(f"{indent}}}")
            for out, res in zip(node.outputs, node.region.results):
                if res in source:
                    source[out] = source[res]

    emit(graph.nodes, "  ")
    lines.append('  out [shape=plaintext, label="return"];')
    for v in graph.outputs:
        edge(v, "out")
    for k, (name, v) in enumerate(sorted(graph.writes.items())):
        lines.append(f"  w{k} [shape=cds, label={_quote('write %' + name)}];")
        edge(v, f"w{k}")
    lines.extend(edges)
    lines.append("}")
    return "\n".join(lines)
