"""ir.symbolic.generalize: traces at several sizes -> one graph with symbolic sizes."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import ir
import tracejit
from ir.passes import optimize
from ir.types import parse_type
from ir.shapes import TypeRuleError, eval_dim, pool_out, product_dim
from ir.symbolic import generalize, generalize_traces
from ir.verify import verify

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
import models  # noqa: E402

ZOO = {
    "SimpleNN": (models.SimpleNN, lambda b: (torch.randn(b, 784),)),
    "LeNet": (models.LeNet, lambda b: (torch.randn(b, 1, 28, 28),)),
    "ResBlock": (models.ResBlock, lambda b: (torch.randn(b, 3, 8, 8),)),
    "LSTMModel": (models.LSTMModel, lambda b: (torch.randn(b, 6, 32),)),
    "GRUClassifier": (models.GRUClassifier, lambda b: (torch.randint(0, 100, (b, 7)),)),
    "TransformerLayer": (models.TransformerLayer, lambda b: (torch.randn(b, 5, 64),)),
    "PreNormMLPBlock": (models.PreNormMLPBlock, lambda b: (torch.randn(b, 5, 64),)),
}


def _arrays(graph, inputs, state):
    return [x.numpy() for x in inputs] + [state[i.name].detach().numpy()
                                          for i in graph.inputs if i.role != "input"]


@pytest.mark.parametrize("name", sorted(ZOO))
def test_zoo_generalizes_and_runs_at_other_batches(name):
    make, inputs = ZOO[name]
    torch.manual_seed(0)
    model = make().eval()
    with torch.no_grad():
        t2, t3 = tracejit.trace(model, *inputs(2)), tracejit.trace(model, *inputs(3))
    g = generalize(t2.graph, t3.graph, (2, 3))
    assert g is not None
    verify(g)
    assert g.inputs[0].value.type.shape[0] == "B"
    optimised, _ = optimize(g)
    verify(optimised)
    for batch in (4, 5):      # symbolic sizes assume >= 2, as torch.compile's do
        x = inputs(batch)
        with torch.no_grad():
            want = model(*x).numpy()
        for graph in (g, optimised):
            got = ir.run(graph, _arrays(graph, x, t2.capture.state))[0][0]
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_flattened_batch_becomes_a_multiple_of_the_symbol():
    model = models.PreNormMLPBlock().eval()
    with torch.no_grad():
        a = tracejit.trace(model, torch.randn(2, 5, 64)).graph
        b = tracejit.trace(model, torch.randn(3, 5, 64)).graph
    text = ir.print_graph(generalize(a, b, (2, 3)))
    assert "f32[5*B,64]" in text
    assert ir.print_graph(ir.parse(text)) == text


def test_data_dependent_branch_is_not_uniform():
    def f(x):
        return x * 2 if x.shape[0] > 2 else x + 1      # Python branch on the size
    a = tracejit.trace(f, torch.randn(2, 4)).graph
    b = tracejit.trace(f, torch.randn(3, 4)).graph
    assert generalize(a, b, (2, 3)) is None


def test_size_not_proportional_to_the_batch_is_not_uniform():
    def f(x):
        return torch.cat([x, x[:1]], dim=0)             # B + 1 rows
    a = tracejit.trace(f, torch.randn(2, 4)).graph
    b = tracejit.trace(f, torch.randn(3, 4)).graph
    assert generalize(a, b, (2, 3)) is None


def test_equal_sizes_are_rejected():
    g = tracejit.trace(lambda x: x + 1, torch.randn(2, 3)).graph
    with pytest.raises(ValueError):
        generalize(g, g, (2, 2))


def _traces(model, shapes):
    with torch.no_grad():
        return [tracejit.trace(model, torch.randn(*s)).graph for s in shapes]


def test_three_traces_give_two_symbols_and_their_product():
    model = models.TransformerLayer().eval()
    graphs = _traces(model, [(2, 5, 64), (3, 5, 64), (3, 7, 64)])
    g = generalize_traces(graphs, [{"B": 2, "S": 5}, {"B": 3, "S": 5}, {"B": 3, "S": 7}])
    assert g is not None
    text = ir.print_graph(g)
    assert "%x: f32[B,S,64]" in text and "f32[B*S,64]" in text and "f32[4*B,S,16]" in text
    assert ir.print_graph(ir.parse(text)) == text
    x = torch.randn(4, 6, 64)
    with torch.no_grad():
        want = model(x).numpy()
        state = tracejit.trace(model, x).capture.state
    got = ir.run(g, _arrays(g, [x], state))[0][0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_symbols_that_scale_alike_are_not_told_apart():
    graphs = _traces(models.PreNormMLPBlock().eval(), [(2, 2, 64), (3, 3, 64)])
    assert generalize_traces(graphs, [{"B": 2, "S": 2}, {"B": 3, "S": 3}]) is None


def test_a_product_that_looks_constant_is_refused():
    graphs = _traces(models.PreNormMLPBlock().eval(), [(2, 6, 64), (3, 4, 64)])
    assert generalize_traces(graphs, [{"B": 2, "S": 6}, {"B": 3, "S": 4}]) is None


def test_strided_window_over_a_symbol_is_not_uniform():
    """A pool halves H: H/2 is no product of symbols, so H stays static."""
    def f(x):
        return torch.max_pool2d(x, 2).mean(dim=(2, 3))
    same = [tracejit.trace(f, torch.randn(2, 3, n, 8)).graph for n in (8, 16)]
    assert generalize_traces(same, [{"H": 8}, {"H": 16}]) is None


def test_product_dims_evaluate_and_parse():
    assert eval_dim("4*B*S", {"B": 3, "S": 5}) == 60
    assert eval_dim("B*S", {"B": 3}) == "B*S"
    assert product_dim(1, ("S", "B")) == "B*S" and product_dim(6, ("B",)) == "6*B"
    assert parse_type("f32[4*B*S,64]").shape == ("4*B*S", 64)
    assert pool_out("H", 3, 1, 1, 1, False) == "H"
    with pytest.raises(TypeRuleError):
        pool_out("H", 2, 2, 0, 1, False)
