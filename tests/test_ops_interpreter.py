"""Every op-table case through the NumPy reference interpreter, against eager torch.

Also the three ops the shared table leaves out: guard, extern and fused.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import ir
from ir.types import DType, TensorType
from opcases import OpCase, cases, check_case

# NumPy and torch both warn on the empty-mean and zero-dof-variance cases; the values are checked.
pytestmark = [pytest.mark.filterwarnings("ignore:Mean of empty slice:RuntimeWarning"),
              pytest.mark.filterwarnings("ignore:Degrees of freedom:RuntimeWarning"),
              pytest.mark.filterwarnings("ignore:var\\(\\):UserWarning")]
CASES = cases()


def _interpret(graph: ir.Graph, arrays: list[np.ndarray]) -> list[np.ndarray]:
    outputs, writes = ir.run(graph, arrays)
    assert writes == {}
    return outputs


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_op_matches_torch(case: OpCase):
    check_case(case, _interpret)


def _one_node_graph(op, in_types, attrs, out_types):
    g = ir.Graph(op)
    args = [g.add_input(f"a{i}", t) for i, t in enumerate(in_types)]
    outs = [ir.Value(t) for t in out_types]
    g.nodes.append(ir.Node(op, args, outs, attrs))
    g.outputs = outs
    return g


I64_0D = TensorType(DType.i64, ())


@pytest.mark.parametrize("expected, seen", [(3, 3), (2.5, 2.5), (True, True),
                                            (float("nan"), float("nan"))])
def test_guard_passes_on_the_traced_value(expected, seen):
    arr = np.array(seen)
    g = _one_node_graph("guard", [TensorType(DType.from_numpy(arr.dtype), ())],
                        {"expected": expected}, [])
    assert ir.run(g, [arr]) == ([], {})


@pytest.mark.parametrize("expected, seen", [(3, 4), (2.5, 2.0), (True, False), (1.0, float("nan"))])
def test_guard_fails_on_another_value(expected, seen):
    arr = np.array(seen)
    g = _one_node_graph("guard", [TensorType(DType.from_numpy(arr.dtype), ())],
                        {"expected": expected}, [])
    with pytest.raises(ir.GuardFailed) as info:
        ir.run(g, [arr])
    assert info.value.expected == expected


def test_guard_on_one_element_tensor_among_other_nodes():
    g = ir.Graph("g")
    x = g.add_input("x", TensorType(DType.f32, (1, 1)))
    y = ir.Value(TensorType(DType.f32, (1, 1)))
    g.nodes += [ir.Node("guard", [x], [], {"expected": 0.5}), ir.Node("neg", [x], [y])]
    g.outputs = [y]
    out, _ = ir.run(g, [np.array([[0.5]], np.float32)])
    np.testing.assert_array_equal(out[0], [[-0.5]])
    with pytest.raises(ir.GuardFailed):
        ir.run(g, [np.array([[0.25]], np.float32)])


def test_extern_calls_the_host_callback():
    t = TensorType(DType.f32, (3, 4))
    g = _one_node_graph("extern", [t, t], {"target": "aten::hypot", "types": (str(t),)}, [t])
    calls = []

    def host(node, arrays):
        calls.append(node.attrs["target"])
        a, b = (torch.from_numpy(x) for x in arrays)
        return [torch.hypot(a, b).numpy()]
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((3, 4)).astype(np.float32) for _ in range(2))
    out, _ = ir.run(g, [a, b], extern=host)
    assert calls == ["aten::hypot"]
    np.testing.assert_allclose(out[0], np.hypot(a, b), rtol=1e-6)


def test_extern_without_a_callback_says_so():
    t = TensorType(DType.f32, (2,))
    g = _one_node_graph("extern", [t], {"target": "aten::foo", "types": (str(t),)}, [t])
    with pytest.raises(ir.InterpreterError, match="aten::foo"):
        ir.run(g, [np.ones(2, np.float32)])


def _fused_graph(kind: str) -> ir.Graph:
    """linear -> add(residual) -> relu as one fused node, built by hand."""
    g = ir.Graph("fused")
    x = g.add_input("x", TensorType(DType.f32, (5, 7)))
    w = g.add_input("w", TensorType(DType.f32, (3, 7)), "param")
    r = g.add_input("r", TensorType(DType.f32, (5, 3)))
    out_t = TensorType(DType.f32, (5, 3))
    px, pw, pr = (ir.Value(v.type) for v in (x, w, r))
    h, s, y = (ir.Value(out_t) for _ in range(3))
    body = (ir.Node("linear", [px, pw], [h]), ir.Node("add", [h, pr], [s]),
            ir.Node("relu", [s], [y]))
    out = ir.Value(out_t)
    node = ir.Node("fused", [x, w, r], [out], {"kind": kind},
                   region=ir.Region((px, pw, pr), body, (y,)))
    g.nodes.append(node)
    g.outputs = [out]
    return g


@pytest.mark.parametrize("kind", ["epilogue", "elementwise"])
def test_fused_region_means_its_body(kind):
    rng = np.random.default_rng(1)
    x, w, r = (rng.standard_normal(s).astype(np.float32) for s in [(5, 7), (3, 7), (5, 3)])
    out, _ = ir.run(_fused_graph(kind), [x, w, r])
    want = torch.relu(torch.nn.functional.linear(torch.from_numpy(x), torch.from_numpy(w))
                      + torch.from_numpy(r))
    torch.testing.assert_close(torch.from_numpy(out[0]), want, rtol=1e-4, atol=1e-5)
    assert (out[0] == 0).any() and (out[0] > 0).any()


# ---- check_case itself must catch wrong answers -------------------------------------------

def _case(op_id: str) -> OpCase:
    return next(c for c in CASES if c.id == op_id)


@pytest.mark.parametrize("corrupt, message", [
    (lambda outs: [outs[0] * np.float32(1.01)], "not close"),
    (lambda outs: [outs[0].astype(np.float64)], "dtype"),
    (lambda outs: [outs[0][:-1]], "shape"),
    (lambda outs: outs + outs, "outputs"),
    (lambda outs: [np.where(np.isnan(outs[0]), 0, outs[0])], "not close"),
])
def test_check_case_rejects_wrong_results(corrupt, message):
    case = _case("exp-edge")
    with pytest.raises(AssertionError, match=message):
        check_case(case, lambda g, xs: corrupt(_interpret(g, xs)))


def test_check_case_is_exact_for_integers():
    case = _case("add-i64-bcast")
    with pytest.raises(AssertionError):
        check_case(case, lambda g, xs: [_interpret(g, xs)[0] + 1])


def test_check_case_catches_a_backend_writing_its_inputs():
    def clobber(g, xs):
        outs = _interpret(g, xs)
        xs[0][...] = 1
        return outs
    case = _case("neg-7")
    with pytest.raises(AssertionError, match="modified"):
        check_case(case, clobber)
