"""The text format parses back: print -> parse -> print is the identity (xDSL roundtrip).

The sample graphs here (``SAMPLES``, ``single_op_graph``) are shared with the JSON/dot and
verifier tests.
"""

from __future__ import annotations

import math
from textwrap import dedent

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ir
from ir.errors import ParseError
from ir.opdef import OPS
from ir.types import TensorType, parse_type


def t(text: str) -> TensorType:
    return parse_type(text)


# ---- sample graphs built with the Graph API ---------------------------------------------


def mlp() -> ir.Graph:
    g = ir.Graph("Net")
    x = g.add_input("x", t("f32[1,784]"))
    w1 = g.add_input("fc1.weight", t("f32[256,784]"), "param")
    b1 = g.add_input("fc1.bias", t("f32[256]"), "param")
    w2 = g.add_input("fc2.weight", t("f32[10,256]"), "param")
    h, a, y = ir.Value(t("f32[1,256]")), ir.Value(t("f32[1,256]")), ir.Value(t("f32[1,10]"))
    g.nodes = [ir.Node("linear", (x, w1, b1), (h,), scope="fc1", loc="/home/u/net.py:12"),
               ir.Node("relu", (h,), (a,), scope="act"),
               ir.Node("linear", (a, w2), (y,), loc="net.py:14")]
    g.outputs = [y]
    return g


def split_and_guard() -> ir.Graph:
    """Multiple outputs, zero outputs, symbolic dims, a const input, an empty return."""
    g = ir.Graph("split_and_guard")
    x = g.add_input("x", t("f32[B,4]"))
    c = g.add_input("c", t("f32[]"), "const")
    lo, hi = ir.Value(t("f32[B,1]")), ir.Value(t("f32[B,3]"))
    g.nodes = [ir.Node("split", (x,), (lo, hi), {"dim": 1, "sizes": (1, 3)},
                       scope="encoder.layers.0.self_attn", loc="model.py:7"),
               ir.Node("guard", (c,), (), {"expected": 1.0}, loc="model.py:8")]
    return g


ODD_ATTRS = {"int": -12345678901234567890, "float": 1.5e+20, "tiny": 1e-05, "neg0": -0.0,
             "inf": math.inf, "ninf": -math.inf, "nan": math.nan, "yes": True, "no": False,
             "none": None, "one": (1,), "empty": (), "nested": ((1, 2.5), ("a", (None,)), ()),
             "s": 'quote " back \\ hash # newline \n uni é'}


def odd_attrs() -> ir.Graph:
    """Every attribute form (on a guard, so the verifier rejects the unknown ones)."""
    g = ir.Graph("attrs")
    x = g.add_input("x", t("f32[2]"))
    y = ir.Value(t("f32[2]"))
    g.nodes = [ir.Node("extern", (x,), (y,), {"target": "aten.foo", "types": ("f32[2]",)}),
               ir.Node("guard", (x,), (), ODD_ATTRS)]
    g.outputs = [y, y]
    return g


def fused_with_writes() -> ir.Graph:
    """A fused region (own params), a nested fused region, and buffer writes."""
    g = ir.Graph("BN")
    x = g.add_input("x", t("f32[2,4]"))
    w = g.add_input("w", t("f32[4,4]"), "param")
    rm = g.add_input("bn.running_mean", t("f32[4]"), "buffer")
    mm = ir.Value(t("f32[2,4]"))
    p0, p1 = ir.Value(t("f32[2,4]")), ir.Value(t("f32[4]"))
    s, r = ir.Value(t("f32[2,4]")), ir.Value(t("f32[2,4]"))
    q, qr = ir.Value(t("f32[2,4]")), ir.Value(t("f32[2,4]"))
    inner = ir.Node("fused", (s,), (r,), {"kind": "elementwise"},
                    region=ir.Region((q,), (ir.Node("relu", (q,), (qr,)),), (qr,)))
    body = (ir.Node("add", (p0, p1), (s,), scope="bn"), inner)
    o1, o2 = ir.Value(t("f32[2,4]")), ir.Value(t("f32[2,4]"))
    fused = ir.Node("fused", (mm, rm), (o1, o2), {"kind": "elementwise"}, scope="blk",
                    loc="n.py:3",
                    region=ir.Region((p0, p1), body, (r, s)))
    mean = ir.Value(t("f32[4]"))
    g.nodes = [ir.Node("matmul", (x, w), (mm,)), fused,
               ir.Node("mean", (o2,), (mean,), {"dims": (0,)})]
    g.outputs = [o1, o2]
    g.writes = {"bn.running_mean": mean}
    return g


def odd_names() -> ir.Graph:
    """Names the printer must quote, and an input called ``0`` that numbering skips."""
    g = ir.Graph("<lambda>")
    a = g.add_input("0", t("f32[3]"))
    b = g.add_input("my layer: weight", t("f32[3]"), "param")
    c = g.add_input("blocks.0-1.w", t("f32[3]"), "buffer")
    s = ir.Value(t("f32[3]"))
    g.nodes = [ir.Node("add", (a, b), (s,))]
    g.outputs = [s]
    g.writes = {"blocks.0-1.w": s}
    return g


# ---- one graph per op -------------------------------------------------------------------

SAMPLE_OPS: dict[str, tuple[tuple[str, ...], dict]] = {
    "cast": (("f32[2,3]",), {"dtype": "i64"}),
    "where": (("bool[2,3]", "f32[2,3]", "f32[1,3]"), {}),
    "cumsum": (("f32[2,3]",), {"dim": 1}),
    "softmax": (("f32[2,3]",), {"dim": -1}),
    "log_softmax": (("f32[2,3]",), {"dim": -1}),
    "layer_norm": (("f32[2,3]", "f32[3]", "f32[3]"), {"normalized_shape": (3,), "eps": 1e-05}),
    "batch_norm": (("f32[2,3,4]", "f32[3]", "f32[3]", "f32[3]", "f32[3]"), {}),
    "batch_norm_train": (("f32[2,3,4]", "f32[3]", "f32[3]", "f32[3]", "f32[3]"), {}),
    "reshape": (("f32[2,3]",), {"shape": (3, 2)}),
    "permute": (("f32[2,3]",), {"dims": (1, 0)}),
    "transpose": (("f32[2,3]",), {"dim0": 0, "dim1": 1}),
    "expand": (("f32[1,3]",), {"shape": (4, 3)}),
    "slice": (("f32[2,5]",), {"dim": 1, "start": 1, "end": None, "step": 2}),
    "select": (("f32[2,3]",), {"dim": 0, "index": 1}),
    "squeeze": (("f32[1,3]",), {"dims": (0,)}),
    "unsqueeze": (("f32[2,3]",), {"dim": 0}),
    "cat": (("f32[2,3]", "f32[2,1]"), {"dim": 1}),
    "stack": (("f32[2,3]", "f32[2,3]"), {"dim": 0}),
    "split": (("f32[2,3]",), {"dim": 1, "sizes": (1, 2)}),
    "gather": (("f32[2,3]", "i64[2,2]"), {"dim": 1}),
    "index_select": (("f32[2,3]", "i64[4]"), {"dim": 1}),
    "embedding": (("f32[10,4]", "i64[2,3]"), {}),
    "pad": (("f32[2,3]",), {"pads": (1, 2)}),
    "full": ((), {"shape": (2, 3), "value": -math.inf}),
    "arange": ((), {"end": 5}),
    "constant": ((), {"value": (1.0, 2.5), "shape": (2,), "dtype": "f64"}),
    "matmul": (("f32[B,2,3]", "f32[3,4]"), {}),
    "linear": (("f32[B,3]", "f32[4,3]", "f32[4]"), {}),
    "addmm": (("f32[4]", "f32[2,3]", "f32[3,4]"), {"beta": 0.5}),
    "conv1d": (("f32[1,2,8]", "f32[4,2,3]"), {"stride": (1,), "padding": (1,),
                                             "dilation": (1,)}),
    "conv2d": (("f32[1,2,8,8]", "f32[4,1,3,3]", "f32[4]"),
               {"stride": (2, 2), "padding": (1, 1), "dilation": (1, 1), "groups": 2}),
    "max_pool2d": (("f32[1,2,8,8]",), {"kernel_size": (2, 2), "stride": (2, 2)}),
    "avg_pool2d": (("f32[1,2,8,8]",), {"kernel_size": (3, 3), "stride": (1, 1),
                                       "ceil_mode": True}),
    "adaptive_avg_pool2d": (("f32[1,2,8,8]",), {"output_size": (1, 1)}),
    "scaled_dot_product_attention": (("f32[1,2,4,8]",) * 3, {"is_causal": True}),
    "mse_loss": (("f32[2,3]", "f32[2,3]"), {}),
    "nll_loss": (("f32[2,3]", "i64[2]"), {"reduction": "none"}),
    "guard": (("f32[]",), {"expected": 3.0}),
    "extern": (("f32[2,3]", "i64[2]"), {"target": "aten.unique", "call": "(0, dim=1)",
                                         "types": ("f32[2,3]", "i64[B]")}),
    "argmax": (("f32[2,3]",), {"dim": 1, "keepdim": True}),
    "var": (("f32[2,3]",), {"dims": (0, 1), "correction": 0}),
}
"""Input types and attributes for ops whose defaults (f32[2,3] inputs, no attrs) don't fit."""

REGION_OPS = {"fused"}


def single_op_graph(op: str) -> ir.Graph:
    in_types, attrs = SAMPLE_OPS.get(op, (("f32[2,3]",) * OPS[op].arity[0], {}))
    g = ir.Graph(f"single_{op}")
    inputs = [g.add_input(f"a{i}", t(s)) for i, s in enumerate(in_types)]
    out_types = OPS[op].infer_types([v.type for v in inputs], attrs)
    outputs = [ir.Value(ty) for ty in out_types]
    g.nodes = [ir.Node(op, inputs, outputs, attrs, scope="m", loc="f.py:1")]
    g.outputs = outputs
    return g


TABLE_OPS = sorted(set(OPS) - REGION_OPS)
SAMPLES = {"mlp": mlp, "split_and_guard": split_and_guard, "odd_attrs": odd_attrs,
           "fused_with_writes": fused_with_writes, "odd_names": odd_names}


def all_graphs():
    return [f() for f in SAMPLES.values()] + [single_op_graph(op) for op in TABLE_OPS]


# ---- round trips ------------------------------------------------------------------------


@pytest.mark.parametrize("name", SAMPLES)
def test_roundtrip_samples(name):
    text = ir.print_graph(SAMPLES[name]())
    assert ir.print_graph(ir.parse(text)) == text


@pytest.mark.parametrize("op", TABLE_OPS)
def test_roundtrip_every_op(op):
    g = single_op_graph(op)
    text = ir.print_graph(g)
    back = ir.parse(text)
    assert ir.print_graph(back) == text
    node = back.nodes[0]
    assert node.op == op and node.attrs == g.nodes[0].attrs
    assert [v.type for v in node.outputs] == [v.type for v in g.nodes[0].outputs]


def test_table_covers_every_op():
    assert len(TABLE_OPS) == len(OPS) - 1 and "fused" not in TABLE_OPS
    assert set(SAMPLE_OPS) <= set(OPS)


def test_parse_rebuilds_structure():
    g = ir.parse(ir.print_graph(fused_with_writes()))
    assert [(i.name, i.role) for i in g.inputs] == [
        ("x", "input"), ("w", "param"), ("bn.running_mean", "buffer")]
    assert all(i.value.name == i.name for i in g.inputs)
    mm, fused, mean = g.nodes
    assert fused.inputs == (mm.output, g.inputs[2].value)
    assert fused.attrs == {"kind": "elementwise"} and (fused.scope, fused.loc) == ("blk", "n.py:3")
    add, inner = fused.region.nodes
    assert add.inputs == fused.region.params and add.scope == "bn" and add.loc == ""
    assert fused.region.results == (inner.output, add.output)
    assert inner.region.results == (inner.region.nodes[0].output,)
    assert g.outputs == list(fused.outputs)
    assert g.writes == {"bn.running_mean": mean.output}


def test_parse_attribute_values():
    g = ir.parse(ir.print_graph(odd_attrs()))
    attrs = g.nodes[1].attrs
    assert set(attrs) == set(ODD_ATTRS) and math.isnan(attrs["nan"])
    assert {k: v for k, v in attrs.items() if k != "nan"} == {
        k: v for k, v in ODD_ATTRS.items() if k != "nan"}
    assert str(attrs["neg0"]) == "-0.0" and attrs["int"] == -12345678901234567890
    g = ir.parse(dedent("""
        graph g(%x: f32[2]) {
          guard[a=1, b=1.0, c=true, d=(1,), e=(), f=-inf, g=2E+3, h=-7, i="x\\u00e9"](%x)
          return
        }"""))
    attrs = g.nodes[0].attrs
    assert attrs == {"a": 1, "b": 1.0, "c": True, "d": (1,), "e": (), "f": -math.inf,
                     "g": 2000.0, "h": -7, "i": "x\u00e9"}
    assert [type(attrs[k]) for k in "abch"] == [int, float, bool, int]
    assert g.outputs == []


def test_provenance_parts():
    text = ir.print_graph(mlp())
    assert "# fc1  net.py:12" in text and "# act" in text and "# net.py:14" in text
    g = ir.parse(text)
    assert [(n.scope, n.loc) for n in g.nodes] == [
        ("fc1", "net.py:12"), ("act", ""), ("", "net.py:14")]


def test_odd_names_are_quoted_and_numbering_skips_input_names():
    text = ir.print_graph(odd_names())
    assert text.splitlines()[0] == ('graph "<lambda>"(%0: f32[3], %"my layer: weight": f32[3]'
                                    ' param, %blocks.0-1.w: f32[3] buffer) {')
    assert "  %1: f32[3] = add(%0, %\"my layer: weight\")" in text
    g = ir.parse(text)
    assert g.name == "<lambda>" and g.inputs[1].name == "my layer: weight"


LITERAL = """\
graph Net(%x: f32[B,784], %fc1.weight: f32[256,784] param, %fc1.bias: f32[256] param) {
  %0: f32[B,256] = linear(%x, %fc1.weight, %fc1.bias)          # encoder.layers.0.fc1  net.py:12
  %1: f32[B,128], %2: f32[B,128] = split[dim=1, sizes=(128, 128)](%0)
  %3: f32[B,128] = fused[kind="elementwise"](%1, %2) (%4: f32[B,128], %5: f32[B,128]) {  # act
    %6: f32[B,128] = mul(%4, %5)                              # net.py:13
    %7: f32[B,128] = tanh(%6)
    yield %7
  }
  %8: f32[] = sum(%3)
  guard[expected=1.0](%8)                                     # net.py:20
  return %3, %8
}"""


def test_literal_text_roundtrip():
    g = ir.parse(LITERAL)
    ir.verify(g)
    # the printer aligns comments itself; apart from spacing the text is unchanged
    squash = [" ".join(line.split()) for line in LITERAL.splitlines()]
    assert [" ".join(line.split()) for line in ir.print_graph(g).splitlines()] == squash
    assert ir.print_graph(ir.parse(ir.print_graph(g))) == ir.print_graph(g)


def test_wrapped_header_and_comment_lines_are_accepted():
    text = dedent("""
        # a comment before the graph
        graph Net(%x: f32[2],
                  %w: f32[2] param) {
          # a comment line
          %0: f32[2] = add(%x, %w)

          return %0
        }
        """)
    g = ir.parse(text)
    assert ir.print_graph(g) == "graph Net(%x: f32[2], %w: f32[2] param) {\n" \
        "  %0: f32[2] = add(%x, %w)\n  return %0\n}"


# ---- attribute values, generated --------------------------------------------------------

SCALARS = (st.none() | st.booleans() | st.integers() | st.text(max_size=8)
           | st.floats(allow_nan=True, allow_infinity=True))
ATTRS = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3).map(tuple),
                     max_leaves=8)


def _same(a, b) -> bool:
    if isinstance(a, tuple):
        return isinstance(b, tuple) and len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return type(a) is type(b) and a == b and str(a) == str(b)   # str tells -0.0 from 0.0


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.from_regex(r"[a-z_][a-z0-9_]{0,5}", fullmatch=True), ATTRS,
                       max_size=4))
def test_attribute_roundtrip_generated(attrs):
    g = ir.Graph("g")
    x = g.add_input("x", t("f32[]"))
    g.nodes = [ir.Node("guard", (x,), (), attrs)]
    text = ir.print_graph(g)
    back = ir.parse(text)
    assert ir.print_graph(back) == text
    got = back.nodes[0].attrs
    assert set(got) == set(attrs) and all(_same(attrs[k], got[k]) for k in attrs)


# ---- errors -----------------------------------------------------------------------------

ERRORS = [
    ("graph g(%x: f32[2]) {\n  %0: f32[2] = relu(%x\n  return %0\n}", 2, 23, "expected ',' or ')'"),
    ("graph g(%x: f32[2]) {\n  %0: f32[2] = relu(%y)\n  return %0\n}", 2, 22,
     "%y is used before it is defined"),
    ("graph g(%x: f32[2]) {\n  %x: f32[2] = relu(%x)\n  return %x\n}", 2, 4,
     "%x is defined twice"),
    ("graph g(%x: q32[2]) {\n  return %x\n}", 1, 13, "unknown dtype 'q32'"),
    ("graph g(%x: f32[2] weight) {\n  return %x\n}", 1, 20, "unknown role 'weight'"),
    ("graph g(%x: f32[2]) {\n  guard[expected=maybe](%x)\n  return\n}", 2, 18,
     "unknown attribute value 'maybe'"),
    ("graph g(%x: f32[2]) {\n  guard[e=1, e=2](%x)\n  return\n}", 2, 14,
     "attribute 'e' given twice"),
    ("graph g(%x: f32[2]) {\n  %0: f32[2] = relu(%x) junk\n  return %0\n}", 2, 25,
     "expected the end of the line"),
    ("graph g(%x: f32[2]) {\n  %0: f32[2] = relu(%x)\n}", 3, 1, "expected 'return' before"),
    ("graph g(%x: f32[2]) {\n  return %x\n", 3, 1, "expected '}', found the end of the text"),
    ("graph g(%x: f32[2]) {\n  return %x\n}\nextra", 4, 1, "unexpected text after the graph"),
    ("graph g(%x: f32[2]) {\n  %0: f32[2] = fused(%x) (%1: f32[2]) {\n    return %1\n  }\n"
     "  return %0\n}", 3, 5, "'return' is not allowed here"),
    ('graph g(%x: f32[2]) {\n  guard[s="\\q"](%x)\n  return\n}', 2, 11, "bad string literal"),
]


@pytest.mark.parametrize("text, line, column, what", ERRORS, ids=[e[3] for e in ERRORS])
def test_parse_errors(text, line, column, what):
    with pytest.raises(ParseError) as info:
        ir.parse(text)
    err = info.value
    assert (err.line, err.column) == (line, column), str(err)
    assert what in str(err)
    assert f"at line {line}, column {column}:" in str(err)
    assert err.text == text.splitlines()[line - 1] if line <= len(text.splitlines()) else True
    assert err.text in str(err) and "Hint:" in str(err)


def test_parse_error_points_at_the_column():
    with pytest.raises(ParseError) as info:
        ir.parse("graph g(%x: f32[2]) {\n  %0: f32[2] = relu(%x) junk\n  return %0\n}")
    lines = str(info.value).splitlines()
    assert lines[1:3] == ["    %0: f32[2] = relu(%x) junk", "                          ^"]
