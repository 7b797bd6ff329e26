"""Lean exported files: parameter folding (export only, never the default pipeline), no
Identity per output, transposed weights as initializers, Relu that onnxruntime fuses."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

import codegen.onnx as co
import ir
import tracejit
from graphgen import Builder
from ir.passes import optimize
from ir.passes.params import fold_parameters

RNG = np.random.default_rng(11)


def rand(*shape):
    return RNG.uniform(-2, 2, size=shape).astype(np.float32)


class Block(nn.Module):
    """ResNet basic block with trained-looking batch-norm statistics."""

    def __init__(self, c=8):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        for bn in (self.bn1, self.bn2):
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2)
            bn.weight.data.uniform_(0.5, 1.5)
            bn.bias.data.uniform_(-1, 1)

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(x + self.bn2(self.conv2(y)))


def session(path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_resnet_block_folds_batch_norm_into_conv_and_matches_eager(tmp_path):
    torch.manual_seed(0)
    model = Block().eval()
    path = tmp_path / "block.onnx"
    report = tracejit.export_onnx(model, torch.randn(2, 8, 6, 6), path)
    onnx_model = onnx.load(str(path))
    onnx.checker.check_model(onnx_model, full_check=True)
    ops = sorted(n.op_type for n in onnx_model.graph.node)
    assert ops == ["Add", "Conv", "Conv", "Relu", "Relu"] and report.nodes == 5
    names = {t.name for t in onnx_model.graph.initializer}
    assert "bn1.running_var" not in names and any(n.startswith("conv1.") for n in names)
    s = session(path)
    for batch in (2, 5):
        x = torch.randn(batch, 8, 6, 6)
        (got,) = s.run(None, {s.get_inputs()[0].name: x.numpy()})
        with torch.no_grad():
            want = model(x).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def scaled_linear_graph() -> ir.Graph:
    """y = x @ (w * s)^T + (b + 1): the weight arithmetic folds, the x part stays."""
    b = Builder("scaled")
    x = b.input("x", ("B", 4))
    w = b.input("fc.weight", (3, 4), role="param")
    s = b.input("fc.scale", (3, 1), role="buffer")
    bias = b.input("fc.bias", (3,), role="param")
    one = b.const(1.0)
    return b.ret(b.op("linear", x, b.op("mul", w, s), b.op("add", bias, one)))


def test_fold_parameters_keeps_results_and_drops_dead_weights():
    graph = scaled_linear_graph()
    weights = {"fc.weight": rand(3, 4), "fc.scale": rand(3, 1), "fc.bias": rand(3)}
    before = str(graph)
    folded, new_weights = fold_parameters(graph, weights)
    assert str(graph) == before                       # the caller's graph is untouched
    assert [n.op for n in folded.nodes] == ["linear"]
    assert [(i.name, i.role) for i in folded.inputs] == [
        ("x", "input"), ("fc.weight.folded", "const"), ("fc.bias.folded", "const")]
    x = rand(5, 4)
    want, _ = ir.run(graph, [x, weights["fc.weight"], weights["fc.scale"], weights["fc.bias"]])
    got, _ = ir.run(folded, [x] + [new_weights[i.name] for i in folded.inputs[1:]])
    np.testing.assert_allclose(got[0], want[0], rtol=1e-6, atol=1e-6)


def test_fold_parameters_leaves_broadcasts_that_would_grow_the_file():
    b = Builder("grow")
    x = b.input("x", (256, 64))
    bias = b.input("bias", (64,), role="param")
    big = b.op("expand", b.op("exp", bias), shape=(256, 64))
    graph = b.ret(b.op("add", x, big))
    folded, weights = fold_parameters(graph, {"bias": rand(64)})
    assert [n.op for n in folded.nodes] == ["expand", "add"]
    assert max(w.size for w in weights.values()) == 64


def test_default_pipeline_never_folds_parameters():
    graph = scaled_linear_graph()
    optimised, _ = optimize(graph)
    assert [i.name for i in optimised.inputs] == [i.name for i in graph.inputs]
    assert all(i.role != "const" for i in optimised.inputs)
    x = rand(2, 4)
    for _ in range(2):                                   # new weights are seen at each call
        arrays = [x, rand(3, 4), rand(3, 1), rand(3)]
        want, _ = ir.run(graph, arrays)
        got, _ = ir.run(optimised, arrays)
        np.testing.assert_allclose(got[0], want[0], rtol=1e-5, atol=1e-6)


def test_outputs_need_no_identity_and_linear_weights_are_pre_transposed(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 2)).eval()
    path = tmp_path / "seq.onnx"
    tracejit.export_onnx(model, torch.randn(2, 3, 6), path)
    onnx_model = onnx.load(str(path))
    ops = [n.op_type for n in onnx_model.graph.node]
    assert "Identity" not in ops and "Transpose" not in ops
    assert onnx_model.graph.output[0].name == "output"
    assert {"0.weight.T", "2.weight.T"} <= {t.name for t in onnx_model.graph.initializer}
    x = torch.randn(4, 3, 6)
    s = session(path)
    (got,) = s.run(None, {s.get_inputs()[0].name: x.numpy()})
    np.testing.assert_allclose(got, model(x).detach().numpy(), rtol=1e-4, atol=1e-5)


def test_an_input_returned_twice_keeps_identities():
    b = Builder("twice")
    x = b.input("x", (3,))
    y = b.op("relu", x)
    graph = b.ret(x, y, y)
    model = co.to_model(graph, weights={})
    assert [o.name for o in model.graph.output] == ["output_0", "output_1", "output_2"]
    assert sorted(n.op_type for n in model.graph.node) == ["Identity", "Identity", "Relu"]
    v = np.array([-1.0, np.nan, 2.0], np.float32)
    got = ort.InferenceSession(model.SerializeToString(),
                               providers=["CPUExecutionProvider"]).run(None, {"x": v})
    for g, w in zip(got, [v, np.maximum(v, 0), np.maximum(v, 0)]):
        np.testing.assert_array_equal(g, w)       # NaN stays NaN, as in torch


def test_global_mean_pool_is_one_global_average_pool(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten()).eval()
    path = tmp_path / "pool.onnx"
    tracejit.export_onnx(model, torch.randn(2, 3, 7, 7), path)
    assert "GlobalAveragePool" in [n.op_type for n in onnx.load(str(path)).graph.node]
    x = torch.randn(3, 3, 7, 7)
    s = session(path)
    (got,) = s.run(None, {s.get_inputs()[0].name: x.numpy()})
    np.testing.assert_allclose(got, model(x).detach().numpy(), rtol=1e-4, atol=1e-5)
