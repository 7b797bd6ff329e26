"""ONNX export and the onnxruntime backend on whole graphs: initializer names, symbolic
batch, opsets, extern and guard handling, fused regions, buffer writes, atomic files."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from hypothesis import HealthCheck, given, settings

import codegen
import codegen.onnx as co
import ir
from graphgen import Builder, graphs
from ir.errors import LoweringError
from ir.graph import Node
from ir.passes import optimize

RNG = np.random.default_rng(7)


def checked(model: onnx.ModelProto) -> onnx.ModelProto:
    onnx.checker.check_model(model, full_check=True)
    onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    return model


def ort_run(model_or_path, feed: dict) -> list[np.ndarray]:
    src = model_or_path if isinstance(model_or_path, str) else model_or_path.SerializeToString()
    return ort.InferenceSession(src, providers=["CPUExecutionProvider"]).run(None, feed)


def rand(*shape, dtype=np.float32):
    return RNG.uniform(-2, 2, size=shape).astype(dtype)


# ---- an MLP exported with its trained weights --------------------------------------------------

def mlp_graph(net: torch.nn.Sequential) -> ir.Graph:
    b = Builder("MLP")
    x = b.input("x", ("B", 20))
    p = {k: b.input(k, tuple(v.shape), role="param") for k, v in net.state_dict().items()}
    h = b.op("relu", b.op("linear", x, p["0.weight"], p["0.bias"]))
    return b.ret(b.op("linear", h, p["2.weight"], p["2.bias"]))


@pytest.fixture(scope="module")
def mlp():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(20, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    weights = {k: v.detach().numpy() for k, v in net.state_dict().items()}
    return net, mlp_graph(net), weights


def test_export_names_initializers_by_state_dict_and_runs_at_two_batches(mlp):
    net, graph, weights = mlp
    model = checked(co.to_model(graph, weights=weights, input_names=["features"],
                                output_names=["logits"], dynamic_dims={"B": "batch"}))
    assert {t.name for t in model.graph.initializer} >= set(weights)
    (inp,) = model.graph.input
    assert inp.name == "features"
    assert inp.type.tensor_type.shape.dim[0].dim_param == "batch"
    assert [o.name for o in model.graph.output] == ["logits"]
    assert model.opset_import[0].version == 20
    for batch in (1, 7):
        x = rand(batch, 20)
        (got,) = ort_run(model, {"features": x})
        want = net(torch.from_numpy(x)).detach().numpy()
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_missing_weights_are_named(mlp):
    _, graph, weights = mlp
    partial = {k: v for k, v in weights.items() if k != "2.bias"}
    with pytest.raises(LoweringError, match=r"2\.bias"):
        co.to_model(graph, weights=partial)


def test_backend_sees_weight_updates(mlp):
    net, graph, weights = mlp
    exe = codegen.compile_graph(graph, "onnxruntime")
    x = rand(2, 20)
    arrays = [x] + [weights[i.name] for i in graph.inputs[1:]]
    (y1,), _ = exe(arrays)
    arrays[-1] = weights["2.bias"] + 1.0
    (y2,), _ = exe(arrays)
    np.testing.assert_allclose(y2 - y1, np.ones_like(y1), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("opset", [17, 18, 19, 20, 21])
def test_supported_opsets(opset):
    b = Builder("Block")
    x = b.input("x", ("B", 6))
    w = b.input("norm.weight", (6,), role="param")
    h = b.op("layer_norm", x, w, normalized_shape=(6,))
    h = b.op("gelu", h)
    graph = b.ret(b.op("mean", h, dims=(1,), keepdim=True), b.op("amax", h, dims=(1,)))
    arrays = [rand(3, 6), rand(6)]
    model = checked(co.to_model(graph, opset=opset, weights={"norm.weight": arrays[1]}))
    assert model.opset_import[0].version == opset
    got = ort_run(model, {"x": arrays[0]})
    want, _ = ir.run(graph, arrays)
    for g, w_ in zip(got, want):
        np.testing.assert_allclose(g, w_, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("opset", [16, 22, "20"])
def test_unsupported_opsets_are_rejected(mlp, opset):
    with pytest.raises(co.UnsupportedOpsetError, match=r"opset .* not supported.*17\.\.21"):
        co.to_model(mlp[1], opset=opset)
    assert issubclass(co.UnsupportedOpsetError, LoweringError)


# ---- symbolic dimensions -----------------------------------------------------------------------

def test_symbolic_batch_through_views_and_creation():
    b = Builder("Dyn")
    x = b.input("x", ("B", 3, 8, 8))
    w = b.input("conv.weight", (4, 3, 3, 3), role="param")
    h = b.op("relu", b.op("conv2d", x, w, stride=(1, 1), padding=(1, 1), dilation=(1, 1)))
    h = b.op("flatten", h, start_dim=1)                                # B, 256
    h = b.op("softmax", b.op("reshape", h, shape=("B", 16, 16)), dim=-1)
    h = b.op("reshape", h, shape=(16, "B", 16))                        # symbol moves
    two = b.op("full", shape=(16, "B", 1), value=2.0)
    h = b.op("mul", h, b.op("expand", two, shape=(16, "B", 16)))
    out = b.op("sum", b.op("permute", h, dims=(1, 0, 2)), dims=(2,))  # B, 16
    graph = b.ret(out)
    weights = {"conv.weight": rand(4, 3, 3, 3)}
    model = checked(co.to_model(graph, weights=weights))
    exe = co.compile(graph, {})
    for batch in (2, 5):
        xs = rand(batch, 3, 8, 8)
        (want,), _ = ir.run(graph, [xs, weights["conv.weight"]])
        (got,) = ort_run(model, {"x": xs})
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
        (got,), _ = exe([xs, weights["conv.weight"]])
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
        assert got.shape == (batch, 16)


def test_reshape_with_two_moving_symbols_reads_input_shapes():
    b = Builder("Swap")
    x = b.input("x", ("B", "T", 4))
    graph = b.ret(b.op("reshape", x, shape=("T", "B", 4)))
    model = checked(co.to_model(graph))
    assert "Shape" in {n.op_type for n in model.graph.node}
    xs = rand(3, 5, 4)
    (got,) = ort_run(model, {"x": xs})
    np.testing.assert_array_equal(got, xs.reshape(5, 3, 4))


def test_batch_norm_training_writes_running_stats_at_two_batches():
    b = Builder("BN")
    x = b.input("x", ("B", 3, 4))
    names = ["bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"]
    ps = [b.input(n, (3,), role="param" if i < 2 else "buffer") for i, n in enumerate(names)]
    y, mean, var = b.op("batch_norm_train", x, *ps, momentum=0.1)
    graph = b.ret(y, writes={"bn.running_mean": mean, "bn.running_var": var})
    bn = torch.nn.BatchNorm1d(3).train()
    with torch.no_grad():
        bn.weight.uniform_(0.5, 2)
        bn.bias.uniform_(-1, 1)
    exe = co.compile(graph, {})
    for batch in (2, 6):
        xs = rand(batch, 3, 4)
        state = [t.detach().numpy().copy() for t in (bn.weight, bn.bias, bn.running_mean,
                                                      bn.running_var)]
        (got,), writes = exe([xs] + state)
        want = bn(torch.from_numpy(xs)).detach().numpy()
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
        assert set(writes) == {"bn.running_mean", "bn.running_var"}
        np.testing.assert_allclose(writes["bn.running_mean"], bn.running_mean.numpy(),
                                   rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(writes["bn.running_var"], bn.running_var.numpy(),
                                   rtol=1e-5, atol=1e-6)
    model = checked(co.to_model(graph, weights=dict(zip(names, state[:4]))))
    assert [o.name for o in model.graph.output] == ["output", "bn.running_mean.updated",
                                                     "bn.running_var.updated"]


# ---- extern, guards, fused regions -------------------------------------------------------------

def extern_graph() -> ir.Graph:
    b = Builder("Ext")
    x = b.input("x", (4,))
    out = ir.Value(ir.parse_type("f32[4]"))
    b.graph.nodes.append(Node("extern", (x,), (out,), {"target": "aten::special_zeta",
                                                       "types": ("f32[4]",)},
                              scope="encoder.layers.0", loc="/home/u/model.py:42"))
    return b.ret(b.op("relu", out))


@pytest.mark.parametrize("how", ["export", "backend"])
def test_extern_is_rejected_with_scope_and_line(how):
    graph = extern_graph()
    with pytest.raises(LoweringError) as info:
        co.to_model(graph) if how == "export" else codegen.compile_graph(graph, "onnxruntime")
    msg = str(info.value)
    for part in ("aten::special_zeta", "encoder.layers.0", "model.py:42", "numba-cpu"):
        assert part in msg


def guard_graph() -> ir.Graph:
    b = Builder("Guarded")
    x = b.input("x", (3,))
    s = b.op("sum", x)
    b.graph.nodes.append(Node("guard", (b.op("gt", s, b.const(0.0)),), (),
                              {"expected": True}, scope="head", loc="net.py:7"))
    return b.ret(b.op("relu", x))


def test_export_drops_guards_with_a_listed_warning():
    with pytest.warns(co.ExportWarning, match=r"guard at module head, net.py:7"):
        model = checked(co.to_model(guard_graph()))
    props = {p.key: p.value for p in model.metadata_props}
    assert "net.py:7" in props["tracejit.warnings"]
    assert "guard" not in {n.op_type for n in model.graph.node}


def test_backend_checks_guards():
    exe = co.compile(guard_graph(), {})
    x = np.array([1.0, -0.5, 2.0], np.float32)
    (y,), _ = exe([x])
    np.testing.assert_array_equal(y, np.maximum(x, 0))
    with pytest.raises(ir.GuardFailed):
        exe([-x])


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(graphs())
def test_optimised_random_graphs_match_the_interpreter(case):
    graph, arrays = case
    fused, _ = optimize(graph)
    exe = co.compile(fused, {})
    checked(exe.lowered.model)
    got, _ = exe(arrays)
    want, _ = ir.run(fused, arrays)   # the backend runs the graph it is given
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)


def test_fused_epilogue_region_is_inlined():
    b = Builder("Epi")
    x, w = b.input("x", (2, 5)), b.input("w", (3, 5), role="param")
    graph = b.ret(b.op("tanh", b.op("add", b.op("linear", x, w), b.const(0.5))))
    fused, _ = optimize(graph)
    assert any(n.op == "fused" for n in fused.nodes)
    arrays = [rand(2, 5), rand(3, 5)]
    (got,), _ = co.compile(fused, {})(arrays)
    (want,), _ = ir.run(graph, arrays)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


# ---- files -------------------------------------------------------------------------------------

def test_save_writes_a_loadable_model(tmp_path, mlp):
    net, graph, weights = mlp
    path = tmp_path / "mlp.onnx"
    assert co.save(co.to_model(graph, weights=weights), path) == [str(path)]
    assert os.listdir(tmp_path) == ["mlp.onnx"]
    onnx.checker.check_model(str(path), full_check=True)
    x = rand(4, 20)
    (got,) = ort_run(str(path), {"x": x})
    np.testing.assert_allclose(got, net(torch.from_numpy(x)).detach().numpy(), rtol=1e-4,
                               atol=1e-5)


def test_large_models_use_external_data(tmp_path, mlp):
    net, graph, weights = mlp
    model = co.to_model(graph, weights=weights)
    before = model.SerializeToString()
    path = tmp_path / "big.onnx"
    files = co.save(model, path, external_threshold=1000)
    assert files == [str(path), str(path) + ".data"]
    assert sorted(os.listdir(tmp_path)) == ["big.onnx", "big.onnx.data"]
    assert model.SerializeToString() == before          # the caller's proto is untouched
    assert os.path.getsize(str(path) + ".data") >= weights["0.weight"].nbytes
    assert os.path.getsize(path) < sum(w.nbytes for w in weights.values())
    onnx.checker.check_model(str(path), full_check=True)
    x = rand(3, 20)
    (got,) = ort_run(str(path), {"x": x})
    np.testing.assert_allclose(got, net(torch.from_numpy(x)).detach().numpy(), rtol=1e-4,
                               atol=1e-5)


@pytest.mark.parametrize("threshold", [co.export.EXTERNAL_THRESHOLD, 1000])
def test_failed_write_leaves_no_file(tmp_path, monkeypatch, mlp, threshold):
    model = co.to_model(mlp[1], weights=mlp[2])
    old = tmp_path / "keep.onnx"
    old.write_bytes(b"previous export")

    def failing_save(proto, f, **kw):
        with open(f, "wb") as fh:
            fh.write(proto.SerializeToString()[:100])   # half a file, then the disk fills
        raise OSError("No space left on device")

    monkeypatch.setattr(onnx, "save_model", failing_save)
    for target in ("new.onnx", "keep.onnx"):
        with pytest.raises(OSError, match="No space"):
            co.save(model, tmp_path / target, external_threshold=threshold)
    assert os.listdir(tmp_path) == ["keep.onnx"]
    assert old.read_bytes() == b"previous export"


def test_codegen_onnx_needs_no_torch():
    code = textwrap.dedent("""
        import sys
        sys.modules["torch"] = None          # any import of torch now fails
        import numpy as np
        import codegen.onnx as co
        from ir.graph import Graph, Node, Value
        from ir.types import parse_type
        g = Graph("t")
        x = g.add_input("x", parse_type("f32[B,3]"))
        y = Value(parse_type("f32[B,3]"))
        g.nodes.append(Node("tanh", (x,), (y,)))
        g.outputs = [y]
        (out,), _ = co.compile(g, {})([np.ones((2, 3), np.float32)])
        assert abs(out[0, 0] - np.tanh(1.0)) < 1e-6
        print("ok")
    """)
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr
