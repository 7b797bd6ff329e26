"""Hand-built multi-op graphs through numba-cpu, compared with the reference interpreter:
symbolic batch, non-contiguous inputs, fused regions (elementwise, epilogue, other kinds),
extern segments, guards, buffer writes and output freshness."""

from __future__ import annotations

import numpy as np
import pytest

import ir
from codegen import compile_graph
from ir import DType, Graph, Node, Region, TensorType, Value

F32 = DType.f32


@pytest.fixture(scope="module", autouse=True)
def numba_cache(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("TRACEJIT_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "tracejit-cache"))
    yield
    mp.undo()


def t(*shape, dtype=F32):
    return TensorType(dtype, shape)


def node(op, inputs, out_type, **attrs):
    out = Value(out_type)
    return Node(op, tuple(inputs), (out,), attrs), out


def rand(rng, *shape):
    return rng.uniform(-2, 2, size=shape).astype(np.float32)


def check(graph, arrays, extern=None, rtol=1e-4, atol=1e-5):
    exe = compile_graph(graph, "numba-cpu")
    got, got_w = exe(arrays, extern=extern)
    want, want_w = ir.run(graph, arrays, extern=extern)
    for g, w in zip(got + list(got_w.values()), want + list(want_w.values())):
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol)
    return exe, got


def mlp():
    g = Graph("mlp")
    x = g.add_input("x", t("B", 16))
    w1, b1 = g.add_input("w1", t(32, 16), "param"), g.add_input("b1", t(32), "param")
    w2, b2 = g.add_input("w2", t(4, 32), "param"), g.add_input("b2", t(4), "param")
    n1, h = node("linear", (x, w1, b1), t("B", 32))
    n2, r = node("relu", (h,), t("B", 32))
    n3, y = node("linear", (r, w2, b2), t("B", 4))
    n4, s = node("softmax", (y,), t("B", 4), dim=-1)
    g.nodes += [n1, n2, n3, n4]
    g.outputs = [y, s]
    return g


def test_mlp_with_symbolic_batch_and_strided_input():
    rng = np.random.default_rng(0)
    g = mlp()
    params = [rand(rng, 32, 16), rand(rng, 32), rand(rng, 4, 32), rand(rng, 4)]
    exe, _ = check(g, [rand(rng, 1, 16)] + params)
    check(g, [rand(rng, 7, 16)] + params)
    strided = rand(rng, 16, 5).T                     # a transposed (non-contiguous) view
    check(g, [strided] + params)
    assert exe.entry is not None and exe.n_outputs == 2
    out = exe.entry(np.ascontiguousarray(strided), *params)
    np.testing.assert_allclose(out[0], ir.run(g, [strided] + params)[0][0], rtol=1e-4,
                               atol=1e-5)


def chain_graph(n=4096):
    """tanh(x*1.5+0.5)*sigmoid(x)+gelu(x)-sqrt(abs(x)) as one fused elementwise region."""
    g = Graph("chain")
    x = g.add_input("x", t(n))
    p = Value(t(n))
    body = []

    def add(op, ins, **attrs):
        nd, v = node(op, ins, t(n) if op != "constant" else t(), **attrs)
        body.append(nd)
        return v
    c15 = add("constant", (), value=1.5)
    c05 = add("constant", (), value=0.5)
    a = add("tanh", (add("add", (add("mul", (p, c15)), c05)),))
    b = add("mul", (a, add("sigmoid", (p,))))
    c = add("add", (b, add("gelu", (p,))))
    r = add("sub", (c, add("sqrt", (add("abs", (p,)),))))
    out = Value(t(n))
    g.nodes.append(Node("fused", (x,), (out,), {"kind": "elementwise"},
                        region=Region((p,), tuple(body), (r,))))
    g.outputs = [out]
    return g


def test_fused_elementwise_chain_matches_and_inlines_unknown_kinds():
    x = np.random.default_rng(1).uniform(-4, 4, 4096).astype(np.float32)
    x[:5] = [0.0, -0.0, np.inf, -np.inf, np.nan]
    exe, _ = check(chain_graph(), [x])
    assert "for " in exe.source and "V.tanh32" in exe.source
    g = chain_graph()
    g.nodes = [g.nodes[0].replace(attrs={"kind": "mystery"})]
    check(g, [x])


def _bias_graph(m, op=None):
    g = Graph("bias")
    a, b = g.add_input("a", t(5, m)), g.add_input("b", t(1, m))
    nd, y = node("add", (a, b), t(5, m))
    g.nodes.append(nd)
    if op is not None:
        nd, y = node(op, (y,), t(5, m))
        g.nodes.append(nd)
    g.outputs = [y]
    return g


def test_large_loops_run_in_parallel_flat_or_over_the_first_axis():
    from codegen.numba_cpu.lower import PARALLEL_MIN
    rng = np.random.default_rng(5)
    n = PARALLEL_MIN[True] + 3                # odd sizes: chunks do not divide evenly
    x = rng.uniform(-4, 4, n).astype(np.float32)
    x[:3] = [np.inf, -0.0, np.nan]
    exe, _ = check(chain_graph(n), [x])       # same-shape operands: one flat prange
    assert "parallel=True" in exe.source and ".reshape(-1)" in exe.source
    # broadcasting: prange over the first axis
    exe, _ = check(_bias_graph(n // 4, "tanh"), [rand(rng, 5, n // 4), rand(rng, 1, n // 4)])
    assert "parallel=True" in exe.source and ".reshape(-1)" not in exe.source
    exe, _ = check(chain_graph(4096), [x[:4096]])  # small: serial
    assert "parallel=True" not in exe.source
    # no transcendental: threads pay only from PARALLEL_MIN[False] elements
    exe, _ = check(_bias_graph(n // 4), [rand(rng, 5, n // 4), rand(rng, 1, n // 4)])
    assert "parallel=True" not in exe.source
    m = PARALLEL_MIN[False] // 5 + 1
    exe, _ = check(_bias_graph(m), [rand(rng, 5, m), rand(rng, 1, m)])
    assert "parallel=True" in exe.source


def test_parallel_kernels_called_from_several_threads_at_once():
    """Numba's workqueue layer ends the process on concurrent parallel launches: the
    generated code serialises them (kernels.PARALLEL)."""
    from concurrent.futures import ThreadPoolExecutor

    from codegen.numba_cpu.lower import PARALLEL_MIN
    n = PARALLEL_MIN[True] * 2
    exe = compile_graph(chain_graph(n), "numba-cpu")
    assert "with K.PARALLEL:" in exe.source
    xs = [np.random.default_rng(k).uniform(-3, 3, n).astype(np.float32) for k in range(4)]
    want = [exe([x])[0][0] for x in xs]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda x: exe([x])[0][0], xs * 5))
    for g, w in zip(got, want * 5):
        np.testing.assert_array_equal(g, w)


def test_epilogue_and_broadcasting_region():
    rng = np.random.default_rng(2)
    g = Graph("epi")
    x, w = g.add_input("x", t(3, 8)), g.add_input("w", t(5, 8), "param")
    b, r = g.add_input("b", t(5), "param"), g.add_input("r", t(1, 5))
    px, pw, pb, pr = (Value(v.type) for v in (x, w, b, r))
    lin, h = node("linear", (px, pw, pb), t(3, 5))
    gel, y = node("gelu", (h,), t(3, 5), approximate="tanh")
    add, z = node("add", (y, pr), t(3, 5))
    out = Value(t(3, 5))
    g.nodes.append(Node("fused", (x, w, b, r), (out,), {"kind": "epilogue"},
                        region=Region((px, pw, pb, pr), (lin, gel, add), (z,))))
    g.outputs = [out]
    check(g, [rand(rng, 3, 8), rand(rng, 5, 8), rand(rng, 5), rand(rng, 1, 5)])


@pytest.mark.parametrize("rows", [3, 130])
def test_large_epilogue_adds_the_bias_in_its_loop(rows):
    """From BIAS_IN_LOOP_MIN output elements the linear's kernel gets no bias and the
    epilogue's loop adds it (one pass over the product fewer); smaller ones keep it in the
    kernel. Both give the interpreter's result."""
    from codegen.numba_cpu.lower import BIAS_IN_LOOP_MIN
    rng = np.random.default_rng(rows)
    n = 1024
    assert (rows * n >= BIAS_IN_LOOP_MIN) == (rows == 130)
    g = Graph("epi_bias")
    x, w = g.add_input("x", t(rows, 24)), g.add_input("w", t(n, 24), "param")
    b = g.add_input("b", t(n), "param")
    px, pw, pb = (Value(v.type) for v in (x, w, b))
    lin, h = node("linear", (px, pw, pb), t(rows, n))
    gel, y = node("gelu", (h,), t(rows, n), approximate="none")
    out = Value(t(rows, n))
    g.nodes.append(Node("fused", (x, w, b), (out,), {"kind": "epilogue"},
                        region=Region((px, pw, pb), (lin, gel), (y,))))
    g.outputs = [out]
    exe, _ = check(g, [rand(rng, rows, 24), rand(rng, n, 24), rand(rng, n)])
    assert ("np.empty(0, np.float32)" in exe.source) == (rows == 130)


def test_extern_splits_into_segments():
    rng = np.random.default_rng(3)
    g = Graph("ext")
    x = g.add_input("x", t(4, 6))
    n1, a = node("exp", (x,), t(4, 6))
    ext = Node("extern", (a, x), (Value(t(4, 6)),), {"target": "aten.hypot", "call": "",
                                                       "types": ("f32[4,6]",)})
    n3, c = node("mul", (ext.output, x), t(4, 6))
    g.nodes += [n1, ext, n3]
    g.outputs = [c, a]
    calls = []

    def extern(nd, arrays):
        calls.append(nd.attrs["target"])
        return [np.hypot(*arrays).astype(np.float32)]
    exe, _ = check(g, [rand(rng, 4, 6)], extern=extern)
    assert exe.entry is None and calls == ["aten.hypot"] * 2


def test_guard_passes_and_fails():
    g = Graph("guarded")
    x = g.add_input("x", t(1))
    flag = g.add_input("flag", TensorType(DType.i64, ()))
    g.nodes.append(Node("guard", (flag,), (), {"expected": 3}))
    n, y = node("neg", (x,), t(1))
    g.nodes.append(n)
    g.outputs = [y]
    exe = compile_graph(g, "numba-cpu")
    x0 = np.array([2.5], np.float32)
    assert exe([x0, np.array(3)])[0][0][0] == -2.5
    with pytest.raises(ir.GuardFailed) as err:
        exe([x0, np.array(4)])
    assert err.value.actual == 4 and err.value.expected == 3


def test_writes_and_outputs_never_alias_inputs():
    rng = np.random.default_rng(4)
    g = Graph("bn")
    x = g.add_input("x", t(4, 3, 5))
    w, b = g.add_input("w", t(3), "param"), g.add_input("b", t(3), "param")
    rm, rv = g.add_input("rm", t(3), "buffer"), g.add_input("rv", t(3), "buffer")
    outs = (Value(t(4, 3, 5)), Value(t(3)), Value(t(3)))
    g.nodes.append(Node("batch_norm_train", (x, w, b, rm, rv), outs, {"momentum": 0.1}))
    n, flat = node("reshape", (x,), t(60), shape=(60,))
    g.nodes.append(n)
    g.outputs = [outs[0], flat, x]
    g.writes = {"rm": outs[1], "rv": outs[2]}
    arrays = [rand(rng, 4, 3, 5), rand(rng, 3), rand(rng, 3), rand(rng, 3),
              np.abs(rand(rng, 3)) + 0.5]
    exe, got = check(g, arrays)
    for o in got:
        assert not np.shares_memory(o, arrays[0]) and o.flags.writeable
    _, writes = exe(arrays)
    assert set(writes) == {"rm", "rv"}


def test_unfused_elementwise_run_shares_one_loop_and_exports_what_is_read_later():
    g = Graph("run")
    x, b = g.add_input("x", t(3, 5)), g.add_input("b", t(5))
    n1, y = node("tanh", (x,), t(3, 5))
    n2, z = node("add", (y, b), t(3, 5))            # broadcast input inside the run
    n3, m = node("gt", (z, x), t(3, 5, dtype=DType.bool))
    n4, s = node("sum", (y,), t(3), dims=(1,), keepdim=False)   # y read after the run
    n5, w = node("where", (m, z, x), t(3, 5))
    g.nodes += [n1, n2, n3, n4, n5]
    g.outputs = [z, s, w]
    rng = np.random.default_rng(3)
    exe, _ = check(g, [rand(rng, 3, 5), rand(rng, 5)])
    # tanh+add+gt in one nest of 2 (b broadcasts along the rows), where in one flat loop
    assert exe.source.count("for ") == 2 + 1


def test_short_rows_loop_over_merged_axes():
    """A BatchNorm folded into a conv weight, (O, C, 3, 3) * (O, 1, 1, 1), runs as one
    (O, C*9) nest; an axis along which one operand broadcasts and another does not stays
    apart; a sliced (non-contiguous) operand keeps its axes."""
    rng = np.random.default_rng(5)
    g = Graph("fold")
    w, s = g.add_input("w", t(8, 4, 3, 3)), g.add_input("s", t(8, 1, 1, 1))
    n1, y = node("mul", (w, s), t(8, 4, 3, 3))
    g.nodes += [n1]
    g.outputs = [y]
    exe, _ = check(g, [rand(rng, 8, 4, 3, 3), rand(rng, 8, 1, 1, 1)])
    assert "reshape((8, 36))" in exe.source and "reshape((8, 1))" in exe.source
    assert exe.source.count("for ") == 2

    g = Graph("mixed")
    x, b = g.add_input("x", t(2, 5, 3, 4)), g.add_input("b", t(5, 1, 1))
    n1, y = node("add", (x, b), t(2, 5, 3, 4))
    g.nodes += [n1]
    g.outputs = [y]
    exe, _ = check(g, [rand(rng, 2, 5, 3, 4), rand(rng, 5, 1, 1)])
    assert "reshape((2, 5, 12))" in exe.source and "reshape((1, 5, 1))" in exe.source

    g = Graph("sliced")
    x, z = g.add_input("x", t(4, 6, 2)), g.add_input("z", t(4, 3, 2))
    n1, p = node("slice", (x,), t(4, 3, 2), dim=1, start=1, end=4, step=1)
    n2, y = node("mul", (p, z), t(4, 3, 2))
    g.nodes += [n1, n2]
    g.outputs = [y]
    exe, _ = check(g, [rand(rng, 4, 6, 2), rand(rng, 4, 3, 2)])
    assert exe.source.count("for ") == 3
