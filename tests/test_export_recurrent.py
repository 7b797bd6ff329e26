"""Unrolled LSTM/GRU layers exported as native ONNX LSTM/GRU nodes; look-alikes stay
unrolled; both match eager at the traced batch and another one."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn
from torch.utils._pytree import tree_flatten

import tracejit


def export_and_run(model, args, path, batches=(2, 5)) -> list[str]:
    """Export, compare with eager at each batch size; returns the ONNX op types."""
    tracejit.export_onnx(model, args, path)
    onnx_model = onnx.load(str(path))
    onnx.checker.check_model(onnx_model, full_check=True)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in batches:
        feed = [torch.randn((batch,) + tuple(a.shape[1:])) for a in args]
        got = session.run(None, {i.name: a.numpy() for i, a in
                                 zip(session.get_inputs(), feed)})
        with torch.no_grad():
            want = [t.numpy() for t in tree_flatten(model(*feed))[0]]
        assert len(got) == len(want)
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)
    return [n.op_type for n in onnx_model.graph.node]


def test_two_layer_lstm_becomes_two_lstm_nodes_with_all_outputs(tmp_path):
    torch.manual_seed(0)
    model = nn.LSTM(5, 7, num_layers=2, batch_first=True).eval()
    ops = export_and_run(model, (torch.randn(2, 6, 5),), tmp_path / "lstm.onnx")
    assert ops.count("LSTM") == 2 and "Sigmoid" not in ops and len(ops) < 30


class GRUWithState(nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(4, 6, batch_first=True)

    def forward(self, x, h0):
        return self.gru(x, h0.unsqueeze(0))


def test_gru_with_an_initial_state_becomes_one_gru_node(tmp_path):
    torch.manual_seed(0)
    model = GRUWithState().eval()
    args = (torch.randn(2, 5, 4), torch.randn(2, 6))
    ops = export_and_run(model, args, tmp_path / "gru.onnx")
    assert ops.count("GRU") == 1 and "Sigmoid" not in ops and "Tanh" not in ops


class LookAlike(nn.Module):
    """An LSTM-shaped loop whose cell uses relu where LSTM has tanh: not an LSTM."""

    def __init__(self, i=4, h=6):
        super().__init__()
        self.ih, self.hh, self.h = nn.Linear(i, 4 * h), nn.Linear(h, 4 * h), h

    def forward(self, x):
        xp = self.ih(x.transpose(0, 1))
        h = c = torch.zeros(x.shape[0], self.h)
        for t in range(xp.shape[0]):
            i, f, g, o = (xp[t] + self.hh(h)).chunk(4, 1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.relu(g)
            h = torch.sigmoid(o) * torch.tanh(c)
        return h


@pytest.mark.parametrize("model", [LookAlike()], ids=["relu-cell"])
def test_look_alike_cells_stay_unrolled(model, tmp_path):
    ops = export_and_run(model.eval(), (torch.randn(2, 3, 4),), tmp_path / "cell.onnx")
    assert "LSTM" not in ops and ops.count("Sigmoid") == 9
