"""Small variants of the example models, traced, optimised and run through numba-cuda on
the CUDA simulator, against ``ir.run`` and eager torch (run by test_cuda_sim.py in a child
process with NUMBA_ENABLE_CUDASIM=1; skipped anywhere else)."""

from __future__ import annotations

import os

import numpy as np
import pytest

if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1":
    pytest.skip("runs in a child process on the CUDA simulator (test_cuda_sim.py)",
                allow_module_level=True)

import torch  # noqa: E402
from torch import nn  # noqa: E402

import ir  # noqa: E402
import tracejit  # noqa: E402
from codegen import compile_graph  # noqa: E402
from ir.passes import optimize  # noqa: E402
from models_zoo import EX  # noqa: E402


def _small_lenet():
    m = EX.LeNet()                  # 12x12 input: 16x1x1 features after the second pool;
    m.fc1, m.fc2, m.fc3 = nn.Linear(16, 12), nn.Linear(12, 8), nn.Linear(8, 10)   # small heads
    return m


MODELS = {
    "SimpleNN": (lambda: EX.SimpleNN(12, 8, 3), (1, 12)),
    "MLP-batch2": (lambda: nn.Sequential(nn.Linear(6, 8), nn.GELU(), nn.Linear(8, 4),
                                         nn.Softmax(-1)), (2, 6)),
    "LeNet": (_small_lenet, (1, 1, 12, 12)),
    "ResBlock": (lambda: EX.ResBlock(channels=4, classes=3), (1, 3, 5, 5)),
    "TransformerLayer": (lambda: EX.TransformerLayer(d_model=8, nhead=2), (1, 3, 8)),
    "PreNormMLPBlock": (lambda: EX.PreNormMLPBlock(dim=8), (1, 3, 8)),
    "LSTMModel": (lambda: EX.LSTMModel(d_in=4, hidden=4, classes=3), (1, 2, 4)),
    "elementwise_chain": (lambda: EX.elementwise_chain, (37,)),
}


def _arrays(capture, args):
    user = iter(a.detach().numpy() for a in args)
    return [next(user) if inp.role == "input" else capture.state[inp.name].detach().numpy()
            for inp in capture.graph.inputs]


@pytest.mark.parametrize("name", list(MODELS))
def test_model_matches_interpreter_and_eager(name):
    build, shape = MODELS[name]
    torch.manual_seed(0)
    model = build()
    if isinstance(model, nn.Module):
        model.eval()
    x = torch.randn(*shape)
    with torch.no_grad():
        want = model(x)
        tr = tracejit.trace(model, x)
    graph, _ = optimize(tr.graph)
    arrays = _arrays(tr.capture, (x,))
    exe = compile_graph(graph, "numba-cuda")
    got, writes = exe(arrays)
    ref, ref_writes = ir.run(graph, arrays)
    assert len(got) == len(ref) and set(writes) == set(ref_writes)
    for g, r in zip(got, ref):
        assert g.dtype == r.dtype and g.shape == r.shape
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got[0].reshape(want.shape), want.numpy(), rtol=1e-4, atol=1e-5)
    if any(n.op == "fused" for n in graph.nodes):
        assert "cuda.jit" in exe.source
