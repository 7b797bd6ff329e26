"""``tracejit.export_onnx``: names, opsets, the report, dynamic batch or not, clear errors
(extern ops, non-uniform batch, opsets, paths) and atomic files."""

from __future__ import annotations

import inspect
import os
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import codegen.onnx as connx
import tracejit
from ir.errors import LoweringError


class TwoHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Linear(6, 8)
        self.head_a = nn.Linear(8, 3)
        self.head_b = nn.Linear(8, 2)

    def forward(self, features, mask):
        h = torch.relu(self.body(features)) * mask
        return self.head_a(h), self.head_b(h)


class ScalesByBatch(nn.Module):
    """Multiplies by the batch size: a different program at every batch."""

    def forward(self, x):
        return x * x.shape[0]


class DataGuard(nn.Module):
    def forward(self, x):
        return x * 2 if bool(x.sum() > -1e9) else x


def bicubic(x):
    return F.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)


class Upsampler(nn.Module):
    def forward(self, x):
        return bicubic(x) + 1


BICUBIC_LINE = inspect.getsourcelines(bicubic)[1] + 1


def two_heads_args(batch=4):
    return torch.randn(batch, 6), (torch.rand(batch, 8) > 0.3).float()


def session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_names_shapes_and_report(tmp_path):
    torch.manual_seed(0)
    model = TwoHeads().eval()
    path = tmp_path / "heads.onnx"
    report = tracejit.export_onnx(model, two_heads_args(), path)
    onnx_model = onnx.load(str(path))
    assert [i.name for i in onnx_model.graph.input] == ["features", "mask"]
    assert [o.name for o in onnx_model.graph.output] == ["output_0", "output_1"]
    assert {t.name for t in onnx_model.graph.initializer} >= set(model.state_dict())
    assert onnx_model.opset_import[0].version == 20
    assert report.path == str(path) and report.opset == 20 and report.traced_batch == 4
    assert report.inputs == [("features", ("batch", 6), "float"),
                             ("mask", ("batch", 8), "float")]
    assert report.outputs == [("output_0", ("batch", 3), "float"),
                              ("output_1", ("batch", 2), "float")]
    assert report.size_bytes == path.stat().st_size and report.files == [str(path)]
    assert report.warnings == []
    assert "features: float[batch,6]" in str(report)
    for batch in (1, 4, 9):
        args = two_heads_args(batch)
        got = session(path).run(None, {"features": args[0].numpy(), "mask": args[1].numpy()})
        with torch.no_grad():
            want = model(*args)
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w.numpy(), rtol=1e-4, atol=1e-5)


def test_custom_names_and_static_batch(tmp_path):
    model = TwoHeads().eval()
    path = tmp_path / "named.onnx"
    report = tracejit.export_onnx(model, two_heads_args(3), path, dynamic_batch=False,
                                  input_names=["f", "m"], output_names=["a", "b"], opset=17)
    onnx_model = onnx.load(str(path))
    assert [i.name for i in onnx_model.graph.input] == ["f", "m"]
    assert [o.name for o in onnx_model.graph.output] == ["a", "b"]
    assert onnx_model.opset_import[0].version == 17
    assert report.inputs[0] == ("f", (3, 6), "float") and not report.dynamic_batch


def test_single_tensor_argument_and_every_accepted_opset(tmp_path):
    model = nn.Sequential(nn.Linear(5, 4), nn.GELU()).eval()
    x = torch.randn(2, 5)
    with torch.no_grad():
        want = model(x).numpy()
    for opset in (17, 18, 19, 20, 21):
        path = tmp_path / f"m{opset}.onnx"
        tracejit.export_onnx(model, x, path, opset=opset)
        onnx.checker.check_model(onnx.load(str(path)), full_check=True)
        (got,) = session(path).run(None, {"input": x.numpy()})
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("opset", [16, 22, "20", 20.0])
def test_unsupported_opset_is_a_clear_error_and_writes_nothing(opset, tmp_path):
    path = tmp_path / "m.onnx"
    with pytest.raises(connx.UnsupportedOpsetError, match=r"use one of 17\.\.21"):
        tracejit.export_onnx(nn.Linear(3, 2), torch.randn(2, 3), path, opset=opset)
    assert os.listdir(tmp_path) == []


def test_model_not_uniform_in_batch_suggests_static_export(tmp_path):
    path = tmp_path / "m.onnx"
    with pytest.raises(tracejit.ExportError, match="dynamic_batch=False") as info:
        tracejit.export_onnx(ScalesByBatch(), torch.randn(4, 3), path)
    assert "not uniform in the batch" in str(info.value)
    assert os.listdir(tmp_path) == []
    tracejit.export_onnx(ScalesByBatch(), torch.randn(4, 3), path, dynamic_batch=False)
    x = torch.randn(4, 3)
    (got,) = session(path).run(None, {"x": x.numpy()})
    np.testing.assert_allclose(got, (x * 4).numpy(), rtol=1e-6)


def test_inputs_without_a_common_batch_dim_are_rejected(tmp_path):
    with pytest.raises(tracejit.ExportError, match="dim 0 of every input"):
        tracejit.export_onnx(TwoHeads(), (torch.randn(4, 6), torch.ones(3, 8)),
                             tmp_path / "m.onnx")
    with pytest.raises(tracejit.ExportError, match="tensor or a tuple of tensors"):
        tracejit.export_onnx(TwoHeads(), (torch.randn(4, 6), 1.0), tmp_path / "m.onnx")
    assert os.listdir(tmp_path) == []


def test_extern_op_names_op_scope_and_line_and_leaves_old_file_intact(tmp_path):
    path = tmp_path / "up.onnx"
    path.write_bytes(b"previous export")
    with pytest.raises(LoweringError) as info:
        tracejit.export_onnx(Upsampler(), torch.randn(1, 2, 3, 3), path)
    message = str(info.value)
    assert "upsample_bicubic2d" in message
    assert f"test_export_api.py:{BICUBIC_LINE}" in message
    assert path.read_bytes() == b"previous export"
    assert os.listdir(tmp_path) == ["up.onnx"]


def test_dropped_guard_is_reported_and_warned(tmp_path):
    with pytest.warns(connx.ExportWarning, match="dropped"):
        report = tracejit.export_onnx(DataGuard().eval(), torch.randn(2, 3),
                                      tmp_path / "g.onnx")
    (warning,) = report.warnings
    assert "test_export_api.py" in warning and "traced value True" in warning


def test_training_mode_is_kept_and_reported(tmp_path):
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4)).train()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = tracejit.export_onnx(model, torch.randn(8, 4), tmp_path / "t.onnx",
                                      dynamic_batch=False)
    assert model.training
    assert any("training mode" in w for w in report.warnings)


def test_bad_paths_fail_before_tracing(tmp_path):
    with pytest.raises(tracejit.ExportError, match="does not exist"):
        tracejit.export_onnx(nn.Linear(3, 2), torch.randn(2, 3), tmp_path / "no" / "m.onnx")
    with pytest.raises(tracejit.ExportError, match="it is a folder"):
        tracejit.export_onnx(nn.Linear(3, 2), torch.randn(2, 3), tmp_path)
    assert os.listdir(tmp_path) == []


def test_failed_write_leaves_no_file(tmp_path, monkeypatch):
    def fail(model, path, *a, **k):
        raise OSError(28, "No space left on device")
    path = tmp_path / "m.onnx"
    monkeypatch.setattr(connx, "save", fail)
    with pytest.raises(tracejit.ExportError, match="No space left"):
        tracejit.export_onnx(nn.Linear(3, 2), torch.randn(2, 3), path)
    assert os.listdir(tmp_path) == []


def test_load_weights_reports_keys_and_shapes(tmp_path):
    from tracejit.export import load_weights
    model = TwoHeads()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    del state["head_b.bias"]
    state["head_c.weight"] = torch.randn(2)
    state["body.weight"] = torch.randn(9, 6)
    torch.save(state, tmp_path / "w.pt")
    with pytest.raises(tracejit.ExportError) as info:
        load_weights(model, tmp_path / "w.pt")
    message = str(info.value)
    assert "missing keys head_b.bias" in message and "unexpected keys head_c.weight" in message
    assert "body.weight (9, 6) vs (8, 6)" in message and "\n" not in message
