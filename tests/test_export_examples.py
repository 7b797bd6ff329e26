"""The deployment story end to end: examples/onnx_export_train.py trains and exports with
``tracejit export --weights``; examples/onnx_serve_no_torch.py serves the file in a process
where ``import torch`` fails, and its predictions match the trained model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

NO_TORCH = """
import runpy, sys
sys.modules["torch"] = None          # any import of torch now raises ImportError
try:
    import torch
except ImportError:
    pass
else:
    raise SystemExit("torch is importable")
script = sys.argv[1]
sys.argv = sys.argv[1:]
runpy.run_path(script, run_name="__main__")
"""


def test_train_export_then_serve_without_torch(tmp_path):
    train = subprocess.run([sys.executable, "examples/onnx_export_train.py", "--quick",
                            "--out", str(tmp_path)],
                           capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert train.returncode == 0, train.stdout + train.stderr
    assert "--weights" in train.stdout and train.stdout.count(" ok") == 2
    files = {p.name for p in tmp_path.iterdir()}
    assert {"classifier.pt", "classifier.onnx", "inputs.npy", "expected.npy"} <= files

    serve = subprocess.run(
        [sys.executable, "-c", NO_TORCH, "examples/onnx_serve_no_torch.py",
         str(tmp_path / "classifier.onnx"), str(tmp_path / "inputs.npy"),
         "--expected", str(tmp_path / "expected.npy"), "--batch", "5"],
        capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert serve.returncode == 0, serve.stdout + serve.stderr
    rows = len(np.load(tmp_path / "inputs.npy"))
    assert f"served {rows} rows in batches of 5" in serve.stdout
    assert "same predicted classes: True" in serve.stdout
