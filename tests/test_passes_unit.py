"""Each pass on small hand-built graphs, including what it must never do."""

import numpy as np
import pytest

import ir
from graphgen import Builder, random_arrays
from ir.opdef import OPS, Flag, defop
from ir.passes import optimize
from ir.passes.cse import eliminate_common_subexpressions as cse
from ir.passes.dce import eliminate_dead_code as dce
from ir.passes.fold import fold_constants as fold
from ir.verify import verify


def ops_of(graph):
    return [n.op for n in graph.nodes]


def check_same(before, after, seed=0):
    arrays = random_arrays(before, seed)
    want, _ = ir.run(before, arrays)
    got, _ = ir.run(after, arrays)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)


@pytest.fixture
def random_op():
    """A RANDOM op for the duration of a test (the table has none of its own yet)."""
    defop("_test_rand", attrs={}, flags={Flag.ELEMENTWISE, Flag.RANDOM},
          infer=lambda ts: ts[0], ref=lambda x: x * np.float32(0.5))
    yield "_test_rand"
    del OPS["_test_rand"]


# ---- DCE ------------------------------------------------------------------------------


def test_dce_drops_dead_keeps_guards_externs_and_random(random_op):
    b = Builder()
    x = b.input("x", (3,))
    b.op("exp", x)                                             # dead
    b.op("guard", b.op("sum", x), expected=1.0)
    b.op("extern", x, target="aten::foo", types=("f32[3]",))   # result unused
    b.op(random_op, x)                                         # result unused
    g = b.ret(b.op("neg", x))
    assert dce(g) == 1
    assert ops_of(g) == ["sum", "guard", "extern", random_op, "neg"]
    verify(g)


def test_dce_keeps_what_feeds_writes():
    b = Builder()
    x = b.input("x", (3,))
    buf = b.input("buf", (3,), role="buffer")
    g = b.ret(b.op("neg", x), writes={"buf": b.op("add", buf, x)})
    assert dce(g) == 0 and ops_of(g) == ["neg", "add"]


# ---- CSE ------------------------------------------------------------------------------


def test_cse_merges_twins_and_swapped_commutative_inputs():
    b = Builder()
    x, y = b.input("x", (3,)), b.input("y", (3,))
    a1, a2 = b.op("add", x, y), b.op("add", y, x)
    s1, s2 = b.op("sub", x, y), b.op("sub", y, x)
    g = b.ret(b.op("mul", a1, a2), s1, s2)
    assert cse(g) == 1
    dce(g)
    assert ops_of(g) == ["add", "sub", "sub", "mul"]
    mul = g.nodes[-1]
    assert mul.inputs[0] is mul.inputs[1]


def test_cse_never_merges_side_effects_or_random(random_op):
    b = Builder()
    x = b.input("x", (3,))
    e1 = b.op("extern", x, target="aten::foo", types=("f32[3]",))
    e2 = b.op("extern", x, target="aten::foo", types=("f32[3]",))
    r1, r2 = b.op(random_op, x), b.op(random_op, x)
    g = b.ret(e1, e2, r1, r2)
    out, _ = optimize(g)
    assert sum(n.op == "extern" for n in out.walk()) == 2
    assert sum(n.op == random_op for n in out.walk()) == 2


# ---- constant folding -------------------------------------------------------------------


def test_fold_small_result_becomes_constant_and_big_uniform_becomes_full():
    b = Builder()
    x = b.input("x", (4, 8))
    small = b.op("mul", b.const(2.0), b.const((1.0, 2.0, 3.0), shape=(3,)))
    big = b.op("add", b.op("full", shape=(4, 8), value=1.5), b.const(0.5))
    g = b.ret(b.op("add", x, big), small)
    assert fold(g) == 2
    dce(g)
    consts = {n.op: n.attrs for n in g.nodes if n.op in ("constant", "full")}
    assert consts["constant"]["value"] == (2.0, 4.0, 6.0)
    assert consts["full"] == {"shape": (4, 8), "value": 2.0, "dtype": "f32"}


@pytest.mark.parametrize("role", ["param", "buffer", "const", "input"])
def test_fold_never_looks_through_graph_inputs(role):
    b = Builder()
    w = b.input("w", (3,), role=role)
    g = b.ret(b.op("mul", b.op("exp", w), b.op("add", b.const(1.0), b.const(2.0))))
    before = len(g.nodes)
    out, _ = optimize(g, ["fold", "dce"])
    assert [n for n in out.walk() if n.op == "exp"]
    assert len(out.nodes) == before - 2          # only the constant add folded
    w_new = np.array([0.5, -1.0, 2.0], np.float32)
    np.testing.assert_allclose(ir.run(out, [w_new])[0][0], np.exp(w_new) * 3, rtol=1e-6)


# ---- algebraic and view simplification ---------------------------------------------------


def test_identities_removed():
    b = Builder()
    x = b.input("x", (2, 3))
    y = b.op("mul", b.op("add", x, b.const(0.0)), b.const(1.0))
    y = b.op("div", b.op("sub", y, b.op("full", shape=(2, 3), value=0.0)), b.const(1.0))
    y = b.op("neg", b.op("neg", b.op("cast", y, dtype="f32")))
    g = b.ret(y)
    out, _ = optimize(g, ["simplify", "dce"])
    assert out.nodes == [] and out.outputs == [x]


def test_broadcasting_zero_is_not_a_noop():
    b = Builder()
    x = b.input("x", (3,))
    g = b.ret(b.op("add", x, b.op("full", shape=(2, 3), value=0.0)))
    out, _ = optimize(g, ["simplify", "dce"])
    assert ops_of(out) == ["full", "add"]
    check_same(g, out)


def test_views_composed_cancelled_and_canonicalised():
    b = Builder()
    x = b.input("x", (2, 3, 4))
    t = b.op("transpose", b.op("transpose", x, dim0=0, dim1=2), dim0=2, dim1=0)   # cancels
    p = b.op("permute", b.op("permute", t, dims=(1, 2, 0)), dims=(0, 2, 1))       # composes
    r = b.op("reshape", b.op("flatten", b.op("unsqueeze", p, dim=0)), shape=(4, 6))
    s = b.op("slice", r, dim=1, start=0, end=None)
    e = b.op("expand", s, shape=(4, 6))
    sq = b.op("squeeze", b.op("unsqueeze", x, dim=1), dims=(1,))
    g = b.ret(e, sq)
    out, _ = optimize(g, ["simplify", "simplify", "dce"])
    assert ops_of(out) == ["permute", "reshape"]
    assert out.nodes[0].attrs["dims"] == (1, 0, 2)
    assert out.outputs[1] is x
    check_same(g, out)


# ---- pattern rewrites ---------------------------------------------------------------


def test_addmm_and_matmul_add_become_linear():
    b = Builder()
    x = b.input("x", (2, 8))
    w, bias = b.input("w", (4, 8), role="param"), b.input("b", (4,), role="param")
    y1 = b.op("addmm", bias, x, b.op("permute", w, dims=(1, 0)))
    y2 = b.op("add", b.op("matmul", x, b.op("transpose", w, dim0=0, dim1=1)), bias)
    g = b.ret(y1, y2)
    out, _ = optimize(g, ["simplify", "rewrite", "cse", "dce"])
    assert ops_of(out) == ["linear"] and len(out.nodes[0].inputs) == 3
    check_same(g, out)


def test_matmul_add_with_broadcasting_bias_is_kept():
    b = Builder()
    x = b.input("x", (2, 8))
    w, bias = b.input("w", (4, 8), role="param"), b.input("b", (3, 2, 4), role="param")
    g = b.ret(b.op("add", b.op("matmul", x, b.op("permute", w, dims=(1, 0))), bias))
    out, _ = optimize(g, ["rewrite", "dce"])
    assert ops_of(out) == ["linear", "add"]
    check_same(g, out)


def test_silu_and_softmax_recognised():
    b = Builder()
    x = b.input("x", (3, 5))
    silu = b.op("mul", b.op("sigmoid", x), x)
    e = b.op("exp", b.op("sub", x, b.op("amax", x, dims=(1,), keepdim=True)))
    sm = b.op("div", e, b.op("sum", e, dims=(1,), keepdim=True))
    e2 = b.op("exp", x)
    sm2 = b.op("div", e2, b.op("sum", e2, dims=(0,), keepdim=True))
    g = b.ret(silu, sm, sm2)
    out, _ = optimize(g, ["rewrite", "dce"])
    assert ops_of(out) == ["silu", "softmax", "softmax"]
    assert [n.attrs.get("dim") for n in out.nodes[1:]] == [1, 0]
    check_same(g, out)


def conv_bn_graph(conv_bias: bool):
    b = Builder("convbn")
    x = b.input("x", (2, 3, 6, 6))
    w = b.input("conv.weight", (4, 3, 3, 3), role="param")
    args = [x, w] + ([b.input("conv.bias", (4,), role="param")] if conv_bias else [])
    bn = [b.input(f"bn.{n}", (4,), role=r) for n, r in
          [("weight", "param"), ("bias", "param"), ("running_mean", "buffer"),
           ("running_var", "buffer")]]
    y = b.op("conv2d", *args, stride=(1, 1), padding=(1, 1), dilation=(1, 1))
    return b.ret(b.op("relu", b.op("batch_norm", y, *bn, eps=1e-5)))


@pytest.mark.parametrize("conv_bias", [False, True])
def test_conv_bn_folded_over_inputs_stays_right_when_params_change(conv_bias):
    g = conv_bn_graph(conv_bias)
    out, _ = optimize(g)
    verify(out)
    assert not [n for n in out.walk() if n.op == "batch_norm"]
    assert [n.op for n in out.walk()].count("conv2d") == 1
    for seed in range(3):            # fresh weights and statistics each time
        arrays = random_arrays(g, seed)
        arrays[-1] = np.abs(arrays[-1])                     # variances are positive
        want, _ = ir.run(g, arrays)
        got, _ = ir.run(out, arrays)
        np.testing.assert_allclose(got[0], want[0], rtol=1e-4, atol=1e-5)


# ---- pass manager -------------------------------------------------------------------


def test_manager_none_list_each_and_errors():
    g = conv_bn_graph(True)
    text = str(g)
    same, stats = optimize(g, "none")
    assert same is g and stats.passes == []
    out, stats = optimize(g, ["dce", "cse"])
    assert [p.name for p in stats.passes] == ["dce", "cse"] and str(g) == text
    headers = []
    out, stats = optimize(g, "each", on_pass=lambda name, gr: headers.append((name, str(gr))))
    assert headers[-1] == ("dce", str(out)) and "fuse" in [h[0] for h in headers]
    assert stats.fused_groups == 2 and stats.total_ms > 0   # scale/shift, conv+relu
    assert "fuse" in stats.table()
    with pytest.raises(ValueError, match="unknown pass"):
        optimize(g, ["nope"])
    with pytest.raises(ValueError, match="unknown pass"):
        optimize(g, "fast")


def test_cse_keeps_negative_zero_apart_from_zero():
    """0.0 == -0.0 in Python, but x / -0.0 is -inf: CSE must not merge the two constants."""
    g = ir.parse('''graph g(%x: f32[3]) {
  %0: f32[] = constant[dtype="f32", shape=(), value=0.0]()
  %1: f32[] = constant[dtype="f32", shape=(), value=-0.5]()
  %2: f32[] = mul(%0, %1)
  %3: f32[3] = div(%x, %2)
  return %3
}''')
    x = np.array([1.0, 2.0, 3.0], np.float32)
    optimised, _ = optimize(g)
    np.testing.assert_array_equal(ir.run(optimised, [x])[0], ir.run(g, [x])[0])
    assert np.all(np.isneginf(ir.run(optimised, [x])[0]))
