"""Fusion on hand-built graphs: what joins a group, what ends one, and the region contract."""

import numpy as np

import ir
from graphgen import Builder, random_arrays
from ir.passes import optimize
from ir.passes.fusion import fuse
from ir.verify import verify


def fused_nodes(graph):
    return [n for n in graph.nodes if n.op == "fused"]


def check(graph, passes="default"):
    out, stats = optimize(graph, passes)
    verify(out)
    arrays = random_arrays(graph, 1)
    for got, want in zip(ir.run(out, arrays)[0], ir.run(graph, arrays)[0]):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    return out


def test_elementwise_chain_is_one_region_with_scalars_inside():
    b = Builder()
    x = b.input("x", (4, 8))
    t = b.op("tanh", b.op("add", b.op("mul", x, b.const(1.5)), b.const(0.5)))
    y = b.op("add", b.op("mul", t, b.op("sigmoid", x)), b.op("gelu", x))
    y = b.op("sub", y, b.op("sqrt", b.op("abs", x)))
    out = check(b.ret(y))
    (f,) = out.nodes
    assert f.attrs == {"kind": "elementwise"} and f.inputs == (x,)
    assert [n.op for n in f.region.nodes].count("constant") == 2


def test_layer_norm_spelled_out_is_one_reduction_region():
    b = Builder()
    x = b.input("x", (3, 16))
    w, bias = b.input("w", (16,), role="param"), b.input("b", (16,), role="param")
    d = b.op("sub", x, b.op("mean", x, dims=(1,), keepdim=True))
    var = b.op("mean", b.op("mul", d, d), dims=(1,), keepdim=True)
    y = b.op("mul", d, b.op("rsqrt", b.op("add", var, b.const(1e-5))))
    out = check(b.ret(b.op("add", b.op("mul", y, w), bias)))
    (f,) = out.nodes
    assert f.attrs["kind"] == "reduction" and len(f.region.nodes) == 10


def test_softmax_and_layer_norm_ops_take_their_neighbours():
    b = Builder()
    x = b.input("x", (3, 16))
    ln = b.op("layer_norm", b.op("add", x, x), normalized_shape=(16,))
    out = check(b.ret(b.op("relu", b.op("softmax", b.op("mul", ln, b.const(2.0)), dim=1))))
    (f,) = out.nodes
    assert f.attrs["kind"] == "reduction"


def test_epilogue_starts_with_the_contraction():
    b = Builder()
    x = b.input("x", (2, 8))
    w, bias = b.input("w", (8, 8), role="param"), b.input("b", (8,), role="param")
    y = b.op("relu", b.op("add", b.op("linear", x, w, bias), x))         # residual, relu
    z = b.op("sum", y, dims=(1,))                                         # not in epilogue
    out = check(b.ret(z))
    f = fused_nodes(out)[0]
    assert f.attrs["kind"] == "epilogue"
    assert [n.op for n in f.region.nodes] == ["linear", "add", "relu"]
    assert [n.op for n in out.nodes] == ["fused", "sum"]


def test_group_that_would_be_cyclic_is_split():
    b = Builder()
    x = b.input("x", (2, 6))
    a = b.op("exp", x)
    v = b.op("reshape", b.op("permute", b.op("reshape", a, shape=(3, 4)), dims=(1, 0)),
             shape=(2, 6))
    c = b.op("add", b.op("neg", a), v)            # joining a's group would need the view
    g = b.ret(c)
    out = check(g, ["fuse"])
    assert len(fused_nodes(out)) == 1             # exp+neg fused, add stays outside
    assert out.nodes[-1].op == "add"


def test_views_side_effects_and_lone_ops_are_not_wrapped():
    b = Builder()
    x = b.input("x", (3,))
    e = b.op("extern", b.op("exp", x), target="aten::foo", types=("f32[3]",))
    y = b.op("relu", b.op("reshape", e, shape=(3, 1)))
    g = b.ret(y)
    assert fuse(g) == 0
    assert [n.op for n in g.nodes] == ["exp", "extern", "reshape", "relu"]


def test_values_used_outside_become_results():
    b = Builder()
    x = b.input("x", (4,))
    a = b.op("exp", x)
    c = b.op("mul", a, a)
    v = b.op("reshape", a, shape=(2, 2))
    out = check(b.ret(c, v, a))
    (f,) = fused_nodes(out)
    assert len(f.outputs) == 2 and out.outputs[2] is f.outputs[0]
