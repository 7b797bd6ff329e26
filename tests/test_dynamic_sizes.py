"""Symbolic sizes (issue 8): dynamic=True makes every dimension the model lets vary a
symbol from the first call; automatic dynamic adds one symbol per size that changes.
Every answer is compared with eager over a stream of shapes; specialisations are counted."""

import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

import tracejit
from codegen.onnx.export import to_model
from ir.printer import print_graph
from tracejit.runtime import Specialization

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
import models  # noqa: E402

BACKENDS = ["interpret", "numba-cpu", "onnxruntime"]


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(20, 32), nn.Linear(32, 4)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


class SmallConv(nn.Module):
    """Same-size convolutions and a global pool: batch, H and W may all vary."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 1)
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        x = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        return self.fc(x.mean(dim=(2, 3)))


def play(model, shapes, backend, dynamic, make=torch.randn):
    """Compile ``model``, play the shapes through it against eager; the dispatcher."""
    torch.manual_seed(0)
    if isinstance(model, nn.Module):
        model = model.eval()
    compiled = tracejit.compile(model, backend=backend, dynamic=dynamic)
    with torch.no_grad():
        for shape in shapes:
            x = make(*shape)
            torch.testing.assert_close(compiled(x), model(x), rtol=1e-4, atol=1e-5)
    return compiled._tj_dispatcher


def input_types(d) -> list[str]:
    return sorted(str(s.graph.inputs[0].value.type) for s in d.all_specializations())


def compiled_calls(d) -> int:
    return sum(s.calls for s in d.all_specializations() if isinstance(s, Specialization))


@pytest.mark.parametrize("backend", BACKENDS)
def test_dynamic_true_mlp_batch_varies(backend):
    shapes = [(3, 20), (7, 20), (2, 20), (16, 20)]
    d = play(MLP(), shapes, backend, True)
    assert d.count == 1 and input_types(d) == ["f32[B,20]"]
    # one probe with every size grown fails (fc1 needs 20 features), then one per size
    assert d.probes == 3
    assert compiled_calls(d) == len(shapes) - 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_dynamic_true_sequence_model_batch_and_seq_vary(backend):
    shapes = [(2, 5, 64), (3, 9, 64), (6, 2, 64), (2, 13, 64)]
    d = play(models.PreNormMLPBlock(), shapes, backend, True)
    assert d.count == 1 and input_types(d) == ["f32[B,S,64]"]
    assert d.probes == 4                  # everything, then B, S and the feature dim


@pytest.mark.parametrize("backend", BACKENDS)
def test_dynamic_true_conv_net_batch_and_image_size_vary(backend):
    shapes = [(2, 3, 8, 8), (3, 3, 12, 10), (4, 3, 5, 17)]
    d = play(SmallConv(), shapes, backend, True)
    assert d.count == 1 and input_types(d) == ["f32[B,3,H,W]"]   # a square first image
    assert compiled_calls(d) == len(shapes) - 1                  # keeps H and W apart


def test_dynamic_true_keeps_the_sizes_a_model_forces_static():
    """LeNet's pooling halves H and W and fc1 wants 16*5*5 features: only B varies."""
    shapes = [(2, 1, 28, 28), (5, 1, 28, 28), (3, 1, 28, 28)]
    d = play(models.LeNet(), shapes, "interpret", True)
    assert d.count == 1 and input_types(d) == ["f32[B,1,28,28]"]
    assert d.probes == 4                  # everything, then B, H and W


def test_dynamic_true_recurrent_model_keeps_seq_static_and_stays_right():
    """An unrolled GRU has one step per token: the sequence length stays static, and a
    new length is a new specialisation (symbolic in the batch again)."""
    shapes = [(2, 5), (4, 5), (3, 7), (5, 7)]
    d = play(models.GRUClassifier(), shapes, "interpret", True,
             make=lambda *s: torch.randint(0, 100, s))
    assert d.count == 2 and input_types(d) == ["i64[B,5]", "i64[B,7]"]


def test_dynamic_true_probes_once_where_nothing_can_vary():
    """Probes that find no symbol are not repeated for every new size."""
    def f(x):
        return x * x.shape[0] ** 0.5      # a size read as a float: no symbol fits it
    d = play(f, [(3,), (5,), (6,), (5,)], "interpret", True)
    assert d.count == 3 and input_types(d) == ["f32[3]", "f32[5]", "f32[6]"]
    assert d.probes == 1


def test_automatic_dynamic_batch_then_seq_gives_two_symbols():
    shapes = [(2, 5, 64), (3, 5, 64), (4, 5, 64), (3, 7, 64), (5, 9, 64), (2, 3, 64),
              (2, 5, 64)]
    d = play(models.PreNormMLPBlock(), shapes, "interpret", None)
    assert d.count == 3                   # static 2x5, then B (3x5), then B and S (3x7)
    assert input_types(d) == ["f32[2,5,64]", "f32[B,5,64]", "f32[B,S,64]"]
    assert len(d.dynamic_entries) == 1    # the B,S graph took over the keys of the B one
    assert compiled_calls(d) == len(shapes) - 3


def test_automatic_dynamic_two_symbols_on_numba_cpu():
    shapes = [(2, 5, 64), (3, 5, 64), (3, 7, 64), (6, 4, 64)]
    d = play(models.PreNormMLPBlock(), shapes, "numba-cpu", None)
    assert d.count == 3 and "f32[B,S,64]" in input_types(d)
    assert compiled_calls(d) == 1


def test_automatic_dynamic_never_shares_a_symbol_it_cannot_tell_apart():
    """Batch and length both go 2 -> 4: one trace cannot tell B from S, so the merge is
    refused where they would differ, and every answer is still eager's."""
    shapes = [(2, 2, 64), (4, 4, 64), (4, 3, 64), (3, 5, 64)]
    d = play(models.PreNormMLPBlock(), shapes, "interpret", None)
    assert d.count <= len(shapes)


def test_two_symbol_graph_exports_to_onnx_and_runs_at_other_sizes():
    model = models.PreNormMLPBlock().eval()
    d = play(model, [(2, 5, 64)], "interpret", True)
    spec = d.all_specializations()[0]
    weights = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    onnx_model = to_model(spec.graph, weights=weights)
    dims = [d.dim_param or d.dim_value
            for d in onnx_model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["B", "S", 64]
    session = ort.InferenceSession(onnx_model.SerializeToString())
    for b, s in ((3, 4), (1, 11)):
        x = torch.randn(b, s, 64)
        with torch.no_grad():
            want = model(x).numpy()
        (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_product_dims_compile_on_numba_cpu():
    """Attention heads flatten batch and heads into 4*B: numba-cpu binds B from the input
    and computes the product, so one compiled graph serves every batch and length."""
    layer = nn.TransformerEncoderLayer(16, 4, 32, batch_first=True, dropout=0.0)
    d = play(layer, [(2, 5, 16), (3, 7, 16), (5, 6, 16)], "numba-cpu", True)
    (spec,) = d.all_specializations()
    assert "4*B" in print_graph(spec.graph) or "B*4" in print_graph(spec.graph)
    assert type(spec.executable).__name__ == "NumbaExecutable"
    assert compiled_calls(d) == 2
