"""``tracejit.export_onnx`` on every model of the test zoo (examples/models.py and issue 3's
extras) and a tiny Hugging Face GPT-2: each file passes the ONNX checker and strict shape
inference, and onnxruntime matches eager at the traced batch and at another batch."""

from __future__ import annotations

import re

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch.utils._pytree import tree_flatten

import tracejit
from models_zoo import CASES, HF_MODELS, TOKENS, VOCAB

RTOL, ATOL = 1e-4, 1e-5
OTHER_BATCH = 5       # a batch size neither traced (2, 3) nor in the examples


def check_file(path: str) -> onnx.ModelProto:
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    return model


def eager_outputs(model, args) -> list[np.ndarray]:
    with torch.no_grad():
        return [t.numpy() for t in tree_flatten(model(*args))[0] if isinstance(t, torch.Tensor)]


def assert_runs_like_eager(model, path: str, args: tuple) -> None:
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    feed = {i.name: a.numpy() for i, a in zip(session.get_inputs(), args)}
    got = session.run(None, feed)
    want = eager_outputs(model, args)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == w.dtype
        np.testing.assert_allclose(g, w, rtol=RTOL, atol=ATOL)


def resize(args: tuple, batch: int) -> tuple:
    """Fresh inputs like ``args`` with another batch size (integers keep their range)."""
    out = []
    for a in args:
        shape = (batch,) + tuple(a.shape[1:])
        if a.dtype.is_floating_point:
            out.append(torch.randn(shape, dtype=a.dtype))
        else:
            out.append(torch.randint(0, int(a.max()) + 1, shape, dtype=a.dtype))
    return tuple(out)


def export_and_compare(model, args, path) -> tracejit.ExportReport:
    report = tracejit.export_onnx(model, args, path)
    assert report.dynamic_batch
    onnx_model = check_file(str(path))
    for inp in onnx_model.graph.input:
        assert inp.type.tensor_type.shape.dim[0].dim_param == "batch"
    keys = set(model.state_dict())
    for t in onnx_model.graph.initializer:   # state_dict keys, or named after the weight
        base = re.sub(r"\.(folded\d*|T)$", "", t.name)      # they were folded from
        assert base in keys or re.fullmatch(r"const_\d+", t.name), t.name
    assert_runs_like_eager(model, str(path), args)
    assert_runs_like_eager(model, str(path), resize(args, OTHER_BATCH))
    return report


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_zoo_model_exports_and_matches_eager_at_two_batches(case, tmp_path):
    torch.manual_seed(0)
    model = case.build().eval()
    args = case.inputs()
    report = export_and_compare(model, args, tmp_path / f"{case.name}.onnx")
    assert report.traced_batch == args[0].shape[0]
    assert report.size_bytes == (tmp_path / f"{case.name}.onnx").stat().st_size
    assert [name for name, _, _ in report.outputs][0].startswith("output")


def test_tiny_gpt2_exports_with_a_dynamic_batch(tmp_path):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    model = HF_MODELS["GPT2LMHeadModel"](transformers).eval()
    tokens = torch.randint(0, VOCAB, TOKENS)
    report = export_and_compare(model, (tokens,), tmp_path / "gpt2.onnx")
    assert report.inputs[0][:2] == ("input_ids", ("batch", TOKENS[1]))
    assert report.outputs[0][1] == ("batch", TOKENS[1], VOCAB)
    # the attention-mask helper looks at data once; ONNX cannot check that, so it says so
    assert all("dropped" in w for w in report.warnings)
