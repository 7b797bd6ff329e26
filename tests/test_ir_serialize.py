"""JSON round trips, and Graphviz dot output that a dot reader accepts."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

import ir
from ir.errors import ParseError
from ir.printer import format_attrs
from ir.serialize import FORMAT, VERSION
from test_ir_parser import SAMPLES, TABLE_OPS, fused_with_writes, mlp, single_op_graph, t

GRAPHS = {**{k: f for k, f in SAMPLES.items()},
          **{f"op_{op}": (lambda op=op: single_op_graph(op)) for op in TABLE_OPS}}


# ---- JSON -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", GRAPHS)
def test_json_roundtrip(name):
    g = GRAPHS[name]()
    data = to_plain_json(ir.to_json(g))
    back = ir.from_json(data)
    assert ir.print_graph(back) == ir.print_graph(g)
    assert to_plain_json(ir.to_json(back)) == data


def to_plain_json(data: dict) -> dict:
    """Through text, as a file would go; standard JSON only (no NaN/Infinity)."""
    return json.loads(json.dumps(data, allow_nan=False))


def test_json_layout_names_values_as_printed():
    data = ir.to_json(fused_with_writes())
    assert (data["format"], data["version"], data["name"]) == (FORMAT, VERSION, "BN")
    assert data["inputs"][2] == {"name": "bn.running_mean", "type": "f32[4]", "role": "buffer"}
    fused = data["nodes"][1]
    assert fused["inputs"] == ["0", "bn.running_mean"]
    assert fused["outputs"] == [{"name": "1", "type": "f32[2,4]"},
                                {"name": "2", "type": "f32[2,4]"}]
    assert fused["region"]["params"][0] == {"name": "3", "type": "f32[2,4]"}
    assert fused["region"]["results"] == ["6", "5"]
    assert data["outputs"] == ["1", "2"] and data["writes"] == {"bn.running_mean": "9"}
    assert "%9: f32[4] = mean[dims=(0,)](%2)" in ir.print_graph(fused_with_writes())


def test_json_keeps_full_source_path_and_special_floats():
    data = ir.to_json(mlp())
    assert data["nodes"][0]["loc"] == "/home/u/net.py:12"
    assert ir.from_json(data).nodes[0].loc == "/home/u/net.py:12"
    data = ir.to_json(single_op_graph("full"))
    assert data["nodes"][0]["attrs"] == {"shape": [2, 3], "value": {"float": "-inf"}}
    assert ir.from_json(data).nodes[0].attrs["value"] == float("-inf")


@pytest.mark.parametrize("change, what", [
    ({"version": VERSION + 1}, "version"),
    ({"format": "onnx"}, "format"),
    ({"outputs": ["nope"]}, "%nope is used before it is defined"),
    ({"inputs": [{"name": "x", "type": "f32[2]"}]}, "KeyError"),
    ({"inputs": [{"name": "x", "type": "f32[2", "role": "input"}]}, "not a tensor type"),
])
def test_json_errors(change, what):
    data = {**ir.to_json(mlp()), **change}
    with pytest.raises(ParseError) as info:
        ir.from_json(data)
    assert what in str(info.value) and "Hint:" in str(info.value)


# ---- dot --------------------------------------------------------------------------------

_TOKEN = re.compile(r'\s*(?:(?P<str>"(?:[^"\\\n]|\\.)*")|(?P<id>[A-Za-z_][A-Za-z0-9_]*|-?\d+)'
                    r'|(?P<op>->|[{}\[\];=,]))')


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while text[pos:].strip():
        m = _TOKEN.match(text, pos)
        assert m, f"not dot at {text[pos:pos + 30]!r}"
        kind = m.lastgroup
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


class DotReader:
    """Reads the dot subset to_dot writes (graphs, clusters, node/edge/attribute
    statements), checking it as Graphviz's grammar does. Quoted ids are decoded as JSON
    strings, whose escapes (\\" \\\\ \\n) are the ones to_dot writes."""

    def __init__(self, text: str):
        self.toks, self.i = _tokens(text), 0
        self.nodes: dict[str, dict[str, str]] = {}
        self.edges: list[tuple[str, str, dict[str, str]]] = []
        self.clusters: list[str] = []

    def next(self, kind=None, value=None) -> str:
        k, v = self.toks[self.i]
        assert kind is None or k == kind, (kind, k, v)
        assert value is None or v == value, (value, v)
        self.i += 1
        return v

    def peek(self) -> str:
        return self.toks[self.i][1] if self.i < len(self.toks) else ""

    def graph(self) -> "DotReader":
        self.next("id", "digraph")
        self.id()
        self.body()
        assert self.i == len(self.toks), "text after the graph"
        return self

    def id(self) -> str:
        k, v = self.toks[self.i]
        assert k in ("id", "str"), v
        self.i += 1
        return json.loads(v) if k == "str" else v

    def body(self) -> None:
        self.next("op", "{")
        while self.peek() != "}":
            self.stmt()
        self.next("op", "}")

    def attrs(self) -> dict[str, str]:
        out = {}
        if self.peek() != "[":
            return out
        self.next()
        while self.peek() != "]":
            key = self.id()
            self.next("op", "=")
            out[key] = self.id()
            if self.peek() in (",", ";"):
                self.next()
        self.next()
        return out

    def stmt(self) -> None:
        if self.peek() == "subgraph":
            self.next()
            self.clusters.append(self.id())
            self.body()
            return
        first = self.id()
        if self.peek() == "=":
            self.next()
            self.id()
        elif self.peek() == "->":
            self.next()
            self.edges.append((first, self.id(), self.attrs()))
        elif first not in ("node", "edge", "graph"):
            self.nodes[first] = self.attrs()
        else:
            self.attrs()
        if self.peek() == ";":
            self.next()


@pytest.mark.parametrize("name", GRAPHS)
def test_dot_is_well_formed(name):
    g = GRAPHS[name]()
    dot = DotReader(ir.to_dot(g)).graph()
    assert all(a in dot.nodes and b in dot.nodes for a, b, _ in dot.edges)
    fused = [n for n in g.walk() if n.region is not None]
    assert len(dot.clusters) == len(fused) and all(c.startswith("cluster_") for c in dot.clusters)
    boxes = [a["label"] for a in dot.nodes.values() if a.get("shape") == "box"]
    assert len(boxes) == sum(1 for n in g.walk() if n.region is None)
    ellipses = [a for a in dot.nodes.values() if a.get("shape") == "ellipse"]
    assert len(ellipses) == len(g.inputs) + sum(len(n.region.params) for n in fused)


def test_dot_content():
    dot = DotReader(ir.to_dot(fused_with_writes())).graph()
    labels = {k: a["label"] for k, a in dot.nodes.items()}
    assert labels["in2"] == "%bn.running_mean\nf32[4]\nbuffer"
    assert labels["n0"] == "%0 = matmul\nf32[2,4]"
    assert labels["n2"] == "%5 = add\nf32[2,4]\nbn"
    assert labels["n5"] == "%9 = mean\n[dims=(0,)]\nf32[4]"
    assert labels["w0"] == "write %bn.running_mean" and labels["out"] == "return"
    edges = {(a, b): attrs.get("label", "") for a, b, attrs in dot.edges}
    # outside values enter the cluster through its parameters; results leave from the body
    assert edges[("n0", "n1_p0")] == "f32[2,4]" and edges[("in2", "n1_p1")] == "f32[4]"
    assert ("n4", "out") in edges and ("n2", "out") in edges and ("n2", "n5") in edges
    assert ("n5", "w0") in edges


def test_dot_escapes_quotes_backslashes_and_newlines():
    g = ir.Graph('my "net"\\')
    x = g.add_input('a "quoted" \\ name', t("f32[2]"))
    attrs = {"expected": 'say "hi"\\\n'}
    g.nodes = [ir.Node("guard", (x,), (), attrs)]
    text = ir.to_dot(g)
    dot = DotReader(text).graph()   # reads labels back as JSON strings: same escapes
    assert dot.nodes["n0"]["label"] == "guard\n" + format_attrs(attrs)
    assert dot.nodes["in0"]["label"] == '%a "quoted" \\ name\nf32[2]\ninput'
    assert text.startswith('digraph "my \\"net\\"\\\\" {')


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz dot is not installed")
def test_graphviz_accepts_dot():
    for name in ("mlp", "fused_with_writes", "odd_names"):
        out = subprocess.run(["dot", "-Tsvg"], input=ir.to_dot(SAMPLES[name]()), text=True,
                             capture_output=True, timeout=60)
        assert out.returncode == 0 and "<svg" in out.stdout, out.stderr
