"""DESIGN §1: ``ir`` and ``codegen`` never import torch. In a fresh interpreter where
importing torch raises, they import, and a small graph runs through ir.run and the
interpret backend."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BACKEND_PACKAGES = [p for p in ("codegen.numba_cpu", "codegen.onnx")
                    if (ROOT / p.replace(".", "/") / "__init__.py").exists()]

SCRIPT = textwrap.dedent('''
    import importlib, sys

    class NoTorch:
        """A meta path finder that makes `import torch` (and submodules) fail."""
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ImportError(f"layering: {name} must not be imported here")

    sys.meta_path.insert(0, NoTorch())
    for mod in [m for m in sys.modules if m == "torch" or m.startswith("torch.")]:
        del sys.modules[mod]

    import numpy as np
    import ir, ir.passes, codegen, codegen.interpret
    for name in sys.argv[1:]:
        importlib.import_module(name)

    graph = ir.parse(TEXT)
    ir.verify(graph)
    x = np.array([[-1.5, 0.5, 2.0]], np.float32)
    w = np.array([[1.0, -2.0, 0.5], [0.25, 1.0, -1.0]], np.float32)
    b = np.array([0.5, -0.5], np.float32)
    want = np.maximum(x @ w.T + b, 0) * 2
    (got,), _ = ir.run(graph, [x, w, b])
    np.testing.assert_allclose(got, want, rtol=1e-6)
    optimised, _ = ir.passes.optimize(graph)
    (got,), _ = codegen.compile_graph(optimised, "interpret")([x, w, b])
    np.testing.assert_allclose(got, want, rtol=1e-6)
    leaked = sorted(m for m in sys.modules if m.split(".")[0] == "torch")
    assert not leaked, leaked
    print("ok", len(ir.OPS), "ops")
''')

GRAPH = '''graph Small(%x: f32[1,3], %w: f32[2,3] param, %b: f32[2] param) {
  %0: f32[1,2] = linear(%x, %w, %b)
  %1: f32[1,2] = relu(%0)
  %2: f32[] = constant[dtype="f32", shape=(), value=2.0]()
  %3: f32[1,2] = mul(%1, %2)
  return %3
}'''


def test_ir_and_codegen_work_without_torch():
    assert importlib.util.find_spec("torch") is not None      # it is installed: really blocked
    code = SCRIPT.replace("TEXT", repr(GRAPH))
    proc = subprocess.run([sys.executable, "-c", code, *BACKEND_PACKAGES], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ok ")


def test_the_blocker_really_blocks_torch():
    code = SCRIPT.split("import numpy as np")[0] + "import tracejit\n"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode != 0 and "layering: torch must not be imported" in proc.stderr


def test_importing_tracejit_loads_neither_onnx_nor_a_backend():
    """A warm start pays only for what it uses: onnx (0.17 s) loads with the exporter, a
    backend with its first compile; the exporter is still ``tracejit.export_onnx``."""
    code = ("import sys, tracejit\n"
            "print(sorted(m for m in ('onnx', 'numba', 'onnxruntime') if m in sys.modules))\n"
            "f = tracejit.export_onnx\n"
            "print(f.__module__, 'onnx' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout.split("\n")
    assert out[0] == "[]"
    assert out[1] == "tracejit.export True"
