"""The recurrent pass: unrolled LSTM/GRU layers become fused regions of kind "lstm"/"gru"
that compute exactly what the unrolled steps did (interpreter: the body; numba-cpu: one
kernel per layer), and layers it must not wrap stay unrolled."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import ir
import tracejit
from ir.passes import optimize
from ir.passes.recurrent import wrap_recurrent
from ir.verify import verify


class Seq(nn.Module):
    """A recurrent layer whose full output and final states are all returned."""

    def __init__(self, kind, hidden, layers, bias, batch_first):
        super().__init__()
        cls = nn.LSTM if kind == "lstm" else nn.GRU
        self.rnn = cls(5, hidden, num_layers=layers, bias=bias, batch_first=batch_first)

    def forward(self, x):
        out, state = self.rnn(x)
        return (out, *state) if isinstance(state, tuple) else (out, state)


def _kinds(graph):
    return [n.attrs["kind"] for n in graph.nodes
            if n.op == "fused" and n.attrs["kind"] in ("lstm", "gru")]


def _eager(model, x):
    with torch.no_grad():
        return [t.numpy() for t in model(x)]


def _traced(model, x):
    with torch.no_grad():
        return tracejit.trace(model, x)


def _arrays(trace, x):
    state = trace.capture.state
    return [x.numpy() if inp.role == "input" else state[inp.name].detach().numpy()
            for inp in trace.graph.inputs]


@settings(max_examples=8, deadline=None)
@given(kind=st.sampled_from(["lstm", "gru"]), steps=st.integers(1, 5),
       batch=st.integers(1, 3), hidden=st.integers(1, 6), layers=st.integers(1, 2),
       bias=st.booleans(), batch_first=st.booleans())
def test_wrapped_layers_mean_what_the_unrolled_steps_did(kind, steps, batch, hidden, layers,
                                                         bias, batch_first):
    torch.manual_seed(steps * 7 + hidden)
    model = Seq(kind, hidden, layers, bias, batch_first).eval()
    shape = (batch, steps, 5) if batch_first else (steps, batch, 5)
    x = torch.randn(*shape)
    trace = _traced(model, x)
    graph, _ = optimize(trace.graph)
    verify(graph)
    assert _kinds(graph) == [kind] * layers
    arrays = _arrays(trace, x)
    for got, want in zip(ir.run(graph, arrays)[0], ir.run(trace.graph, arrays)[0]):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("batch", [1, 4])
def test_numba_runs_each_layer_as_one_kernel_and_matches_eager(kind, batch):
    torch.manual_seed(batch)
    model = Seq(kind, 16, 2, True, True).eval()
    x = torch.randn(batch, 9, 5)
    compiled = tracejit.compile(model)
    with torch.no_grad():
        got = [t.numpy() for t in compiled(x)]
    for g, w in zip(got, _eager(model, x)):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=2e-6)
    (spec,) = compiled._tj_dispatcher.all_specializations()
    assert spec.executable.source.count(f"K.{kind}_layer(") == 2


def test_unused_cell_state_keeps_the_region_signature():
    class LastHidden(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.LSTM(5, 8)

        def forward(self, x):
            return self.rnn(x)[0][-1]

    model = LastHidden().eval()
    x = torch.randn(6, 2, 5)
    graph, _ = optimize(_traced(model, x).graph)
    (node,) = [n for n in graph.nodes if n.op == "fused" and n.attrs["kind"] == "lstm"]
    assert len(node.inputs) == 5 and len(node.outputs) == 2     # xp, w, b, h0, c0 -> H, c_T
    compiled = tracejit.compile(model)
    with torch.no_grad():
        np.testing.assert_allclose(compiled(x).numpy(), model(x).numpy(), rtol=1e-4, atol=2e-6)


def test_float64_layers_stay_unrolled():
    model = Seq("gru", 4, 1, True, False).double().eval()
    x = torch.randn(3, 2, 5, dtype=torch.float64)
    graph = _traced(model, x).graph.copy()
    assert wrap_recurrent(graph) == 0


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_layers_are_wrapped_in_the_first_simplifying_round(kind):
    """The default pipeline wraps layers as soon as one simplifying round has shaped them,
    so the unrolled steps are not simplified a second time: every pass after the first
    round sees only the few nodes around the fused layers."""
    model = Seq(kind, 8, 2, True, False).eval()
    trace = _traced(model, torch.randn(12, 2, 5))
    graph, stats = optimize(trace.graph)
    assert _kinds(graph) == [kind] * 2
    names = [p.name for p in stats.passes]
    first_round = names.index("recurrent") + 1
    assert names[:first_round] == ["simplify", "fold", "rewrite", "cse", "dce", "recurrent"]
    assert stats.passes[first_round - 1].nodes_before > 100
    assert all(p.nodes_before < 20 for p in stats.passes[first_round:])
