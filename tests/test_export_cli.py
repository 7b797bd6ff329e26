"""``tracejit export``: the real command once end to end (--weights, --verify), and every kind
of bad input in-process: exit 2, one line on stderr, no traceback, no file."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from tracejit import cli

ROOT = Path(__file__).resolve().parents[1]

MODELS = '''
import torch
import torch.nn.functional as F
from torch import nn

class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.norm = nn.LayerNorm(3)

    def forward(self, x):
        return self.norm(torch.relu(self.fc(x)))

class ScalesByBatch(nn.Module):
    def forward(self, x):
        return x * x.shape[0]

class Upsample(nn.Module):
    def forward(self, x):
        return F.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)

class Guarded(nn.Module):
    def forward(self, x):
        return x * 2 if bool(x.sum() > -1e9) else x

class Raises(nn.Module):
    def forward(self, x):
        raise RuntimeError("boom in forward")
'''


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A model file and weight files: trained-looking, wrong keys, wrong shape, pickled."""
    d = tmp_path_factory.mktemp("export_cli")
    (d / "models.py").write_text(MODELS)
    # by path and under its own name: another test may have imported examples/models.py
    spec = importlib.util.spec_from_file_location("export_cli_models", d / "models.py")
    user_models = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(user_models)
    torch.manual_seed(3)
    tiny = user_models.Tiny()
    with torch.no_grad():
        tiny.fc.bias.add_(0.5)
    good = tiny.state_dict()
    torch.save(good, d / "good.pt")
    torch.save({**{k: v for k, v in good.items() if k != "fc.bias"}, "fc.extra": torch.ones(3)},
               d / "keys.pt")
    torch.save({**good, "fc.weight": torch.ones(5, 4)}, d / "shape.pt")
    torch.save(tiny, d / "pickled.pt")
    (d / "junk.pt").write_bytes(b"not a checkpoint")
    return d, tiny


def test_export_with_weights_and_verify_in_a_real_process(files, tmp_path):
    d, tiny = files
    out = tmp_path / "tiny.onnx"
    run = subprocess.run(
        [sys.executable, "-m", "tracejit", "export", f"{d}/models.py:Tiny", "--input", "2x4",
         "-o", str(out), "--weights", str(d / "good.pt"), "--verify"],
        capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "x: float[batch,4]" in run.stdout
    verified = [line for line in run.stdout.splitlines() if line.startswith("verify")]
    assert len(verified) == 2 and all(line.endswith(" ok") for line in verified)
    assert {"verify batch 2", "verify batch 5"} == {line[:14] for line in verified}
    model = onnx.load(str(out))
    onnx.checker.check_model(model, full_check=True)
    x = np.random.default_rng(0).standard_normal((6, 4)).astype(np.float32)
    (got,) = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(
        None, {"x": x})
    with torch.no_grad():       # the trained weights, not the freshly built ones
        np.testing.assert_allclose(got, tiny(torch.from_numpy(x)).numpy(), rtol=1e-4,
                                   atol=1e-5)


def test_static_export_with_opset(files, tmp_path, capsys):
    d, _ = files
    out = tmp_path / "s.onnx"
    rc = cli.main(["export", f"{d}/models.py:ScalesByBatch", "--input", "3x2", "-o", str(out),
                   "--opset", "18", "--no-dynamic-batch", "--verify"])
    assert rc == 0
    stdout = capsys.readouterr().out
    assert "opset 18" in stdout and "x: float[3,2]" in stdout
    assert stdout.count("verify batch") == 1
    assert onnx.load(str(out)).opset_import[0].version == 18


def test_dropped_guard_is_listed_in_the_report_not_warned(files, tmp_path, capsys):
    d, _ = files
    rc = cli.main(["export", f"{d}/models.py:Guarded", "--input", "2x3", "-o",
                   str(tmp_path / "g.onnx")])
    out, err = capsys.readouterr()
    assert rc == 0 and err == ""
    assert "warning: guard at" in out and "traced value True" in out


# name -> (arguments after `export`, words the one stderr line must contain)
BAD = {
    "missing-model-file": (["{d}/nope.py:Net", "--input", "1x4"], ["nope.py", "does not exist"]),
    "missing-weights": (["{d}/models.py:Tiny", "--input", "1x4", "--weights", "{d}/none.pt"],
                        ["none.pt", "does not exist"]),
    "wrong-keys": (["{d}/models.py:Tiny", "--input", "1x4", "--weights", "{d}/keys.pt"],
                   ["missing keys fc.bias", "unexpected keys fc.extra"]),
    "wrong-shape": (["{d}/models.py:Tiny", "--input", "1x4", "--weights", "{d}/shape.pt"],
                    ["fc.weight (5, 4) vs (3, 4)"]),
    "pickled-model": (["{d}/models.py:Tiny", "--input", "1x4", "--weights", "{d}/pickled.pt"],
                      ["weights_only=True", "state_dict"]),
    "not-a-checkpoint": (["{d}/models.py:Tiny", "--input", "1x4", "--weights", "{d}/junk.pt"],
                         ["junk.pt", "torch.save"]),
    "bad-shape-spec": (["{d}/models.py:Tiny", "--input", "1xq4"], ["bad --input '1xq4'"]),
    "bad-dtype": (["{d}/models.py:Tiny", "--input", "1x4:complex"], ["unknown dtype"]),
    "wrong-input-size": (["{d}/models.py:Tiny", "--input", "1x5"], ["RuntimeError"]),
    "opset-too-old": (["{d}/models.py:Tiny", "--input", "1x4", "--opset", "16"],
                      ["opset 16", "17..21"]),
    "opset-too-new": (["{d}/models.py:Tiny", "--input", "1x4", "--opset", "22"],
                      ["opset 22", "17..21"]),
    "no-output-folder": (["{d}/models.py:Tiny", "--input", "1x4", "-o", "{out}/no/m.onnx"],
                         ["folder", "does not exist"]),
    "output-is-folder": (["{d}/models.py:Tiny", "--input", "1x4", "-o", "{out}"],
                         ["it is a folder"]),
    "not-uniform-in-batch": (["{d}/models.py:ScalesByBatch", "--input", "2x3"],
                             ["not uniform in the batch", "--no-dynamic-batch"]),
    "extern-op": (["{d}/models.py:Upsample", "--input", "1x1x3x3"],
                  ["upsample_bicubic2d", "models.py:", "cannot be exported"]),
    "forward-raises": (["{d}/models.py:Raises", "--input", "1x4"], ["boom in forward"]),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_input_is_one_line_exit_2_and_no_file(name, files, tmp_path, capsys):
    d, _ = files
    args, words = BAD[name]
    out = tmp_path / "out"
    out.mkdir()
    argv = ["export"] + [a.format(d=d, out=out) for a in args]
    if "-o" not in argv:
        argv += ["-o", str(out / "model.onnx")]
    rc = cli.main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tracejit export: error: "), err
    for word in words:
        assert word in lines[0]
    assert os.listdir(out) == []
