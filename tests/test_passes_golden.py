"""Golden IR: the optimised text of the model zoo (examples/models.py) and of hand-built
graphs, checked in under tests/golden/. Each optimised graph also runs in the interpreter
and matches eager torch, parses back to the same text, and re-optimises to itself.

Update after an intended change with ``TRACEJIT_UPDATE_GOLDENS=1 pytest
tests/test_passes_golden.py`` and review the diff (``git diff tests/golden``).
"""

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import ir
from graphgen import Builder
from ir.parser import parse
from ir.passes import optimize
from ir.verify import verify

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("TRACEJIT_UPDATE_GOLDENS") == "1"
sys.path.insert(0, str(Path(__file__).parent.parent / "examples"))


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / f"{name}.ir"
    if UPDATE or not path.exists():
        path.write_text(text + "\n")
        if not UPDATE:
            pytest.fail(f"wrote new golden {path.name}; review it and commit")
        return
    assert text == path.read_text().rstrip("\n"), (
        f"{path.name} changed; rerun with TRACEJIT_UPDATE_GOLDENS=1 and review git diff")


def check_optimised(name: str, graph: ir.Graph) -> ir.Graph:
    out, stats = optimize(graph)
    verify(out)
    text = ir.print_graph(out)
    assert ir.print_graph(parse(text)) == text
    assert ir.print_graph(optimize(out)[0]) == text          # idempotent
    check_golden(name, text)
    return out


# ---- the model zoo, traced ----------------------------------------------------------------

def _zoo():
    import models as m
    torch.manual_seed(0)
    return {
        "mlp": (m.SimpleNN(), [torch.randn(2, 784)]),
        "lenet": (m.LeNet(), [torch.randn(1, 1, 28, 28)]),
        "resnet_block": (m.ResBlock(), [torch.randn(1, 3, 16, 16)]),
        "transformer_layer": (m.TransformerLayer(), [torch.randn(2, 10, 64)]),
        "lstm": (m.LSTMModel(), [torch.randn(2, 6, 32)]),
        "gru_classifier": (m.GRUClassifier(), [torch.randint(0, 100, (2, 7))]),
        "prenorm_mlp_block": (m.PreNormMLPBlock(), [torch.randn(2, 10, 64)]),
        "elementwise_chain": (m.elementwise_chain, [torch.randn(16, 64)]),
    }


ZOO = ["mlp", "lenet", "resnet_block", "transformer_layer", "lstm", "gru_classifier",
       "prenorm_mlp_block", "elementwise_chain"]


def _randomise_batch_norm(model):
    """Non-trivial running statistics, so folding BatchNorm into the conv is really tested."""
    g = torch.Generator().manual_seed(1)
    for mod in model.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.copy_(torch.randn(mod.num_features, generator=g) * 0.1)
            mod.running_var.copy_(torch.rand(mod.num_features, generator=g) + 0.5)
            mod.weight.data.copy_(torch.rand(mod.num_features, generator=g) + 0.5)


@pytest.mark.parametrize("name", ZOO)
def test_zoo_golden_and_matches_eager(name):
    tracejit = pytest.importorskip("tracejit")
    model, args = _zoo()[name]
    if isinstance(model, torch.nn.Module):
        model.eval()
        _randomise_batch_norm(model)
    with torch.no_grad():
        tr = tracejit.trace(model, *args)
        want = model(*args)
    out = check_optimised(name, tr.graph)
    user = iter(args)
    arrays = [next(user).numpy() if i.role == "input" else tr.capture.state[i.name].detach().numpy()
              for i in tr.graph.inputs]
    got, _ = ir.run(out, arrays)
    np.testing.assert_allclose(got[0], want.numpy(), rtol=1e-4, atol=1e-5)


# ---- hand-built graphs (no tracer needed) ------------------------------------------------

def _linear_block():
    """x @ w.T + b via permute/addmm as traced, relu, then a residual and a layer norm."""
    b = Builder("linear_block")
    x = b.input("x", (4, 16))
    w, bias = b.input("fc.weight", (16, 16), role="param"), b.input("fc.bias", (16,), "f32",
                                                                      role="param")
    y = b.op("relu", b.op("addmm", bias, x, b.op("permute", w, dims=(1, 0))))
    y = b.op("mul", b.op("add", y, x), b.const(1.0))
    d = b.op("sub", y, b.op("mean", y, dims=(1,), keepdim=True))
    var = b.op("mean", b.op("mul", d, d), dims=(1,), keepdim=True)
    return b.ret(b.op("mul", d, b.op("rsqrt", b.op("add", var, b.const(1e-5)))))


def _attention_scores():
    """Softmax spelled out, then a matmul: softmax is recognised and fused with its scale."""
    b = Builder("attention")
    q, k = b.input("q", (2, 5, 8)), b.input("k", (2, 5, 8))
    s = b.op("mul", b.op("matmul", q, b.op("transpose", k, dim0=1, dim1=2)), b.const(0.25))
    e = b.op("exp", b.op("sub", s, b.op("amax", s, dims=(2,), keepdim=True)))
    return b.ret(b.op("div", e, b.op("sum", e, dims=(2,), keepdim=True)))


@pytest.mark.parametrize("name,build", [("hand_linear_block", _linear_block),
                                        ("hand_attention", _attention_scores)])
def test_hand_built_golden(name, build):
    graph = build()
    out = check_optimised(name, graph)
    rng = np.random.default_rng(0)
    arrays = [rng.uniform(0.5, 2, i.value.type.shape).astype(np.float32) for i in graph.inputs]
    for got, want in zip(ir.run(out, arrays)[0], ir.run(graph, arrays)[0]):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
