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
    import codegen.numba_cpu              # imports Numba, as the first compile would
    t = TensorType(DType.f32, (3, 4))
    g = Graph("cached")
    x = g.add_input("x", t)
    w = g.add_input("w", TensorType(DType.f32, (4, 5)))
    y, z, p = Value(t), Value(t), Value(TensorType(DType.f32, (3, 5)))
    g.nodes += [Node("tanh", (x,), (y,)), Node("mul", (y, x), (z,)),
                Node("matmul", (z, w), (p,))]            # allocates inside Numba code
    g.outputs = [p]
    from numba.core.base import BaseContext
    refresh, refreshes = BaseContext.refresh, []
    BaseContext.refresh = lambda ctx: refreshes.append(1) or refresh(ctx)
    exe = compile_graph(g, "numba-cpu")
    a = np.linspace(-2, 2, 12, dtype=np.float32).reshape(3, 4)
    b = np.linspace(-1, 3, 20, dtype=np.float32).reshape(4, 5)
    (out,), _ = exe([a, b])
    assert np.allclose(out, (np.tanh(a) * a) @ b, atol=1e-5)
    print(len(refreshes), "context refreshes")
    print(sorted({"numba.np.arrayobj", "numpy.ma", "yaml"} & set(sys.modules)), "imported")
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
    # ... and loads Numba's cached code without setting up Numba's compiler, importing
    # the modules of the Numba implementations it inlined, numpy.ma or PyYAML (loading.py)
    assert third.lines[-3:-1] == ["0 context refreshes", "[] imported"]
    assert list((tmp_path / "__pycache__").glob("tracejit_*.nbi"))   # Numba's own cache


NRT_SCRIPT = textwrap.dedent("""
    import numba
    import numpy as np
    from numba.core.registry import cpu_target
    from numba.core.runtime import nrtdynmod, rtsys
    from codegen.numba_cpu import loading
    builds, create = [], nrtdynmod.create_nrt_module
    nrtdynmod.create_nrt_module = lambda ctx: builds.append(1) or create(ctx)
    loading.initialize_runtime(cpu_target.target_context)

    @numba.njit
    def f(n):                     # allocates, and counts references, through NRT
        a = np.arange(n)
        return [a, a][1].sum()

    assert f(5) == 10
    stats = rtsys.get_allocation_stats()
    assert stats.alloc == stats.free and stats.mi_alloc == stats.mi_free, stats
    print(len(builds), "builds")
""")


def nrt_builds(cache_dir) -> str:
    env = dict(os.environ, TRACEJIT_CACHE_DIR=str(cache_dir), PYTHONPATH=str(ROOT),
               NUMBA_NRT_STATS="1")
    proc = subprocess.run([sys.executable, "-c", NRT_SCRIPT], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()[0]


def test_nrt_functions_are_compiled_once_and_a_corrupt_copy_is_rebuilt(tmp_path):
    assert nrt_builds(tmp_path) == "1"
    (path,) = tmp_path.glob("nrt_*.bin")
    assert nrt_builds(tmp_path) == "0"                    # loaded from the cache folder
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0xFF                          # one flipped byte
    path.write_bytes(bytes(blob))
    assert nrt_builds(tmp_path) == "1"                    # detected, compiled, rewritten
    assert nrt_builds(tmp_path) == "0"
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert nrt_builds(blocker / "cache") == "1"           # an unusable folder: compiled


LINK_SCRIPT = textwrap.dedent("""
    import sys

    import numpy as np
    from ir import DType, Graph, Node, TensorType, Value
    from codegen import compile_graph
    from codegen.numba_cpu import loading
    parsed, parse = [], loading._LinkLaterLibrary._parse
    loading._LinkLaterLibrary._parse = lambda lib: (
        lib._bitcode is not None and parsed.append(lib.name)) or parse(lib)
    t = TensorType(DType.f32, (3, 7))
    g = Graph("linked")
    x = g.add_input("x", t)
    y, z = Value(t), Value(t)
    g.nodes += [Node("tanh", (x,), (y,)), Node(sys.argv[1], (y, x), (z,))]
    g.outputs = [z]
    a = np.linspace(-3, 3, 21, dtype=np.float32).reshape(3, 7)
    (out,), _ = compile_graph(g, "numba-cpu")([a])
    want = {"add": np.tanh(a) + a, "mul": np.tanh(a) * a}[sys.argv[1]]
    assert np.allclose(out, want, atol=1e-6)
    print(parsed)
""")


def test_a_loaded_kernel_is_parsed_only_when_a_new_loop_links_it(tmp_path):
    """Process 1 compiles tanh32 (a separately cached vecmath kernel) into its loop; in
    process 2 a new loop links tanh32 loaded from Numba's cache, whose LLVM module is
    parsed then, and only then."""
    env = dict(os.environ, TRACEJIT_CACHE_DIR=str(tmp_path / "tj"), PYTHONPATH=str(ROOT),
               NUMBA_CACHE_DIR=str(tmp_path / "nb"))
    outs = []
    for op in ("mul", "add"):
        proc = subprocess.run([sys.executable, "-c", LINK_SCRIPT, op],
                              env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        outs.append(proc.stdout.strip())
    assert outs == ["[]", "['tanh32']"]


def test_kernel_cache_is_made_on_first_use_and_absent_without_a_source_file():
    from codegen.numba_cpu import loading
    namespace = {}
    exec("def add_one(x):\n    return x + 1\n", namespace)   # no file: Numba cannot cache
    kernel = loading.njit(cache=True)(namespace["add_one"])
    assert isinstance(kernel._cache, loading._FirstUseCache)
    assert kernel(np.int64(1)) == 2                       # compiled in memory
    assert type(kernel._cache).__name__ == "NullCache"


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


def test_arrays_are_typed_as_by_numba_while_numpy_ma_is_not_loaded(monkeypatch):
    import numpy.ma  # noqa: F401  (loaded, so Numba's own typing can run below)
    from numba.core.typing.typeof import Purpose, typeof_impl
    from codegen.numba_cpu import loading
    base = np.arange(24, dtype=np.float32).reshape(4, 6)
    readonly = base.copy()
    readonly.flags.writeable = False
    arrays = [base, base.T, base[:, ::2], base[1], np.float64(2.5) * base, readonly,
              np.zeros((), np.int64), np.ones(3, np.bool_), np.zeros((0, 5), np.int8)]
    expected = [loading._typeof_any_ndarray(a, Purpose.argument) for a in arrays]
    monkeypatch.delitem(sys.modules, "numpy.ma")
    assert typeof_impl.dispatch(np.ndarray) is loading._typeof_ndarray
    assert [typeof_impl(a, Purpose.argument) for a in arrays] == expected
