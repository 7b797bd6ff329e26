"""The numba-cpu module cache: reuse across processes, corrupt files, concurrent compiles,
an unwritable folder, and no torch needed (layering)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from codegen.numba_cpu import cache

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent("""
    import sys
    sys.modules["torch"] = None          # layering: codegen must not need torch
    import numpy as np
    import ir
    from ir import DType, Graph, Node, TensorType, Value
    from codegen import compile_graph
    t = TensorType(DType.f32, (3, 4))
    g = Graph("cached")
    x = g.add_input("x", t)
    y, z = Value(t), Value(t)
    g.nodes += [Node("tanh", (x,), (y,)), Node("mul", (y, x), (z,))]
    g.outputs = [z]
    from numba.core.base import BaseContext
    refresh, refreshes = BaseContext.refresh, []
    BaseContext.refresh = lambda ctx: refreshes.append(1) or refresh(ctx)
    exe = compile_graph(g, "numba-cpu")
    a = np.linspace(-2, 2, 12, dtype=np.float32).reshape(3, 4)
    (out,), _ = exe([a])
    assert np.allclose(out, np.tanh(a) * a, atol=1e-6)
    print(len(refreshes), "context refreshes")
    print(exe.path)
""")


def run_script(cache_dir, extra_env=None):
    env = dict(os.environ, TRACEJIT_CACHE_DIR=str(cache_dir), PYTHONPATH=str(ROOT))
    env.update(extra_env or {})
    return subprocess.Popen([sys.executable, "-c", SCRIPT], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc):
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    proc.lines = out.strip().splitlines()
    return proc.lines[-1]


def test_two_processes_at_once_then_reuse_without_torch(tmp_path):
    procs = [run_script(tmp_path), run_script(tmp_path)]
    paths = {finish(p) for p in procs}
    assert len(paths) == 1
    path = Path(paths.pop())
    assert path.parent == tmp_path and path.name.startswith("tracejit_")
    assert not list(tmp_path.glob("*.tmp"))
    stamp = path.stat().st_mtime_ns
    third = run_script(tmp_path)                          # a third process reuses the file
    assert finish(third) == str(path)
    assert path.stat().st_mtime_ns == stamp               # ... without rewriting it
    # ... and loads Numba's cached code without setting up Numba's compiler (loading.py)
    assert third.lines[-2] == "0 context refreshes"
    assert list((tmp_path / "__pycache__").glob("tracejit_*.nbi"))   # Numba's own cache


def test_corrupt_file_is_rebuilt_with_a_warning(tmp_path, monkeypatch):
    monkeypatch.setenv("TRACEJIT_CACHE_DIR", str(tmp_path))
    source = '"""generated"""\nVALUE = 41 + 1\n'
    mod = cache.load("unit_corrupt", source)
    path = Path(mod.__file__)
    assert mod.VALUE == 42 and path.read_text() == source
    path.write_text(source[:10])                          # truncated by a crash
    cache._LOADED.clear()
    with pytest.warns(cache.CacheWarning, match="corrupt or truncated"):
        mod = cache.load("unit_corrupt", source)
    assert mod.VALUE == 42 and path.read_text() == source


def test_unwritable_folder_compiles_in_memory(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("TRACEJIT_CACHE_DIR", str(blocker / "cache"))
    cache._LOADED.pop("unit_memory", None)
    mod = cache.load("unit_memory", "from numba import njit\n"
                                    "@njit(cache=True)\ndef f(x):\n    return x + 1\n")
    assert mod.f(np.int64(1)) == 2 and mod.__name__.startswith("tracejit_mem_")


def test_cache_dir_default_and_override(monkeypatch):
    monkeypatch.delenv("TRACEJIT_CACHE_DIR", raising=False)
    assert cache.cache_dir() == Path.home() / ".cache" / "tracejit"
    monkeypatch.setenv("TRACEJIT_CACHE_DIR", "/some/where")
    assert cache.cache_dir() == Path("/some/where")
