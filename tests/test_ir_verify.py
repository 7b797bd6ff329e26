"""The verifier: every check has an invalid IR that expects its message (xDSL
``--verify-diagnostics``), and the valid sample graphs pass."""

from __future__ import annotations

from textwrap import dedent

import pytest

import ir
from ir.errors import VerifyError
from ir.verify import HINTS
from test_ir_parser import LITERAL, SAMPLES, TABLE_OPS, single_op_graph, t


def verify_fails(graph: ir.Graph, first_line: str, hint: str) -> str:
    with pytest.raises(VerifyError) as info:
        ir.verify(graph)
    msg = str(info.value)
    assert msg.splitlines()[0] == first_line, msg
    assert msg.splitlines()[-1] == f"Hint: {HINTS[hint]}", msg
    return msg


def text_fails(text: str, first_line: str, hint: str) -> str:
    return verify_fails(ir.parse(dedent(text)), first_line, hint)


# ---- valid graphs -----------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(set(SAMPLES) - {"odd_attrs"}))
def test_samples_verify(name):
    ir.verify(SAMPLES[name]())
    ir.verify(ir.parse(ir.print_graph(SAMPLES[name]())))


@pytest.mark.parametrize("op", TABLE_OPS)
def test_every_op_verifies(op):
    ir.verify(single_op_graph(op))


def test_literal_verifies():
    ir.verify(ir.parse(LITERAL))


def test_extern_types_come_from_its_attrs():
    ir.verify(ir.parse("""graph g(%x: f32[2]) {
  %0: i64[7], %1: bool[] = extern[target="aten.nonzero"](%x)
  return %0, %1
}"""))


# ---- SSA and scoping --------------------------------------------------------------------


def _chain(n: int):
    """x -> relu -> relu -> ... (n nodes)."""
    g = ir.Graph("Chain")
    v = g.add_input("x", t("f32[2]"))
    for i in range(n):
        out = ir.Value(t("f32[2]"))
        g.nodes.append(ir.Node("relu", (v,), (out,), scope=f"act{i}", loc=f"net.py:{10 + i}"))
        v = out
    g.outputs = [v]
    return g


def test_used_before_defined_message_shows_node_and_neighbours():
    g = _chain(9)
    g.nodes[4], g.nodes[5] = g.nodes[5], g.nodes[4]
    msg = verify_fails(g, "%5 is used before it is defined", "before")
    assert msg == dedent("""\
        %5 is used before it is defined
          in graph Chain, node %4: f32[2] = relu(%5)  # act5  net.py:15
          nearby:
            %1: f32[2] = relu(%0)  # act1  net.py:11
            %2: f32[2] = relu(%1)  # act2  net.py:12
            %3: f32[2] = relu(%2)  # act3  net.py:13
          > %4: f32[2] = relu(%5)  # act5  net.py:15
            %5: f32[2] = relu(%3)  # act4  net.py:14
            %6: f32[2] = relu(%4)  # act6  net.py:16
            %7: f32[2] = relu(%6)  # act7  net.py:17
        Hint: """) + HINTS["before"]


def test_node_using_its_own_output():
    g = _chain(1)
    (node,) = g.nodes
    g.nodes = [node.replace(inputs=node.outputs)]
    verify_fails(g, "%0 is used before it is defined", "before")


def test_defined_twice_by_two_nodes():
    g = _chain(2)
    g.nodes[1] = g.nodes[1].replace(outputs=g.nodes[0].outputs)
    msg = verify_fails(g, "%0 is defined twice", "twice")
    assert "  in graph Chain, node %0: f32[2] = relu(%0)  # act1  net.py:11" in msg


def test_region_param_reusing_an_outer_value():
    g = ir.parse(SAMPLE_FUSED)
    fused = g.nodes[1]
    region = fused.region
    g.nodes[1] = fused.replace(region=ir.Region((g.inputs[0].value,), region.nodes,
                                                region.results))
    msg = verify_fails(g, "%x is defined twice", "twice")
    assert "in graph F, region parameters of fused node %1" in msg


def test_input_defined_twice():
    g = ir.Graph("G")
    x = g.add_input("x", t("f32[2]"))
    g.inputs.append(ir.GraphInput(x, "param"))
    verify_fails(g, "input name %x is used twice", "inputs")


def test_never_defined():
    g = _chain(2)
    stray = ir.Value(t("f32[2]"))
    g.nodes[1] = g.nodes[1].replace(inputs=(stray,))
    verify_fails(g, f"%<undefined {stray.uid}> is used but never defined", "never")


SAMPLE_FUSED = """\
graph F(%x: f32[2], %y: f32[2]) {
  %0: f32[2] = relu(%x)
  %1: f32[2] = fused[kind="elementwise"](%0) (%2: f32[2]) {
    %3: f32[2] = neg(%2)
    yield %3
  }
  return %1
}"""


def test_sample_fused_is_valid():
    ir.verify(ir.parse(SAMPLE_FUSED))


def test_region_captures_outer_value():
    msg = text_fails(SAMPLE_FUSED.replace("neg(%2)", "add(%2, %y)"),
                     "%y is defined outside the region of fused node %1 that uses it",
                     "capture")
    assert "  > %3: f32[2] = add(%2, %y)" in msg


def test_region_yields_outer_value():
    text_fails(SAMPLE_FUSED.replace("yield %3", "yield %0"),
               "%0 is defined outside the region of fused node %1 that uses it", "capture")


def test_region_value_used_outside():
    msg = text_fails(SAMPLE_FUSED.replace("return %1", "%4: f32[2] = exp(%3)\n  return %4"),
                     "%3 is defined inside the region of fused node %1 and is not visible here",
                     "inside")
    assert "  in graph F, node %4: f32[2] = exp(%3)" in msg


def test_return_of_region_value():
    msg = text_fails(SAMPLE_FUSED.replace("return %1", "return %1, %3"),
                     "%3 is defined inside the region of fused node %1 and is not visible here",
                     "inside")
    assert "  in graph F, return %1, %3" in msg


def test_return_of_undefined_value():
    g = _chain(1)
    stray = ir.Value(t("f32[2]"))
    g.outputs.append(stray)
    verify_fails(g, f"%<undefined {stray.uid}> is used but never defined", "never")


# ---- ops, arity, attributes, types ------------------------------------------------------

NODE_CASES = [
    ("%0: f32[2] = frobnicate(%x)", "unknown op 'frobnicate'", "op"),
    ("%0: f32[2] = relu(%x, %x)", "relu takes 1 inputs, got 2", "arity"),
    ("%0: f32[2] = add(%x)", "add takes 2 inputs, got 1", "arity"),
    ("%0: f32[2] = linear(%x)", "linear takes 2 to 3 inputs, got 1", "arity"),
    ("%0: f32[2] = leaky_relu[slope=0.1](%x)", "leaky_relu: unknown attribute(s) ['slope']",
     "attrs"),
    ("%0: f32[2] = softmax(%x)", "softmax: missing attribute 'dim'", "attrs"),
    ("%0: f64[2] = relu(%x)", "%0 has type f64[2], but relu gives f32[2]", "types"),
    ("%0: f32[B] = relu(%x)", "%0 has type f32[B], but relu gives f32[2]", "types"),
    ("%0: f32[2], %1: f32[2] = relu(%x)", "relu gives 1 outputs, the node has 2", "types"),
    ("%0: f32[2] = add(%x, %i)", "add: the type rule rejects the node: operands have different "
     "dtypes ['f32', 'i64']; insert a cast", "types"),
    ("%0: f32[2] = relu(%x) (%1: f32[2]) {\n    yield %1\n  }", "relu node has a region",
     "region"),
    ('%0: f32[2] = fused[kind="elementwise"](%x)', "fused node has no region", "region"),
]


@pytest.mark.parametrize("line, first, hint", NODE_CASES, ids=[c[1] for c in NODE_CASES])
def test_node_checks(line, first, hint):
    text = f"graph G(%x: f32[2], %i: i64[2]) {{\n  {line}\n  return %0\n}}"
    msg = text_fails(text, first, hint)
    assert msg.splitlines()[1].startswith("  in graph G, node %0: ")


def test_bad_node_inside_a_region_is_found():
    msg = text_fails(SAMPLE_FUSED.replace("neg(%2)", "neg[x=1](%2)"),
                     "neg: unknown attribute(s) ['x']", "attrs")
    assert "  in graph F, node %3: f32[2] = neg[x=1](%2)" in msg


# ---- fused nodes ------------------------------------------------------------------------

FUSED_CASES = [
    ('fused[kind="elementwise"](%0) (%2: f32[2]', 'fused[kind="magic"](%0) (%2: f32[2]',
     "fused kind 'magic' is not one of ('elementwise', 'reduction', 'epilogue', 'lstm', 'gru')", "attrs"),
    ("(%0) (%2: f32[2])", "(%0, %x) (%2: f32[2])",
     "fused node has 2 inputs but its region has 1 parameters", "fused"),
    ("%1: f32[2] = fused", "%1: f32[2], %9: f32[2] = fused",
     "fused node has 2 outputs but its region has 1 results", "fused"),
    ("(%2: f32[2])", "(%2: f64[2])", "region parameter %2: f64[2] is bound to %0: f32[2]",
     "fused"),
    ("%1: f32[2] = fused", "%1: f32[1,2] = fused",
     "%1 has type f32[1,2], but the region yields %3: f32[2]", "fused"),
]


@pytest.mark.parametrize("old, new, first, hint", FUSED_CASES, ids=[c[2] for c in FUSED_CASES])
def test_fused_checks(old, new, first, hint):
    text = SAMPLE_FUSED.replace(old, new)
    if "%2: f64" in new:
        text = text.replace("neg(%2)", "cast[dtype=\"f32\"](%2)")
    assert text != SAMPLE_FUSED
    msg = text_fails(text, first, hint)
    assert "  in graph F, node %1: " in msg


# ---- inputs and writes ------------------------------------------------------------------


def test_unknown_role():
    g = ir.Graph("G")
    g.inputs.append(ir.GraphInput(ir.Value(t("f32[2]"), "x"), "weight"))
    msg = verify_fails(g, "input %x has unknown role 'weight'", "inputs")
    assert "  in graph G, input %x: f32[2] weight" in msg


WRITE_CASES = [
    ("write %w = %0", "write to %w, which is a 'param' input, not a buffer"),
    ("write %nope = %0", "write to %nope, which is no input, not a buffer"),
    ("write %b = %1", "write of f32[1,2] to buffer %b of type f32[2]"),
]


@pytest.mark.parametrize("write, first", WRITE_CASES, ids=[c[1] for c in WRITE_CASES])
def test_write_checks(write, first):
    text = f"""\
        graph G(%x: f32[2], %w: f32[2] param, %b: f32[2] buffer) {{
          %0: f32[2] = add(%x, %w)
          %1: f32[1,2] = unsqueeze[dim=0](%0)
          {write}
          return %0
        }}"""
    msg = text_fails(text, first, "write")
    assert f"  in graph G, {write}" in msg


def test_write_of_undefined_value():
    g = ir.parse("graph G(%b: f32[2] buffer) {\n  return\n}")
    stray = ir.Value(t("f32[2]"))
    g.writes["b"] = stray
    verify_fails(g, f"%<undefined {stray.uid}> is used but never defined", "never")


def test_valid_write():
    ir.verify(ir.parse("graph G(%b: f32[2] buffer) {\n  %0: f32[2] = neg(%b)\n"
                       "  write %b = %0\n  return\n}"))
