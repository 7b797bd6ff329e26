"""The numba-cpu backend (the default): one generated module per graph.

``compile(graph, options) -> NumbaExecutable``; ``exe(arrays, extern=None)`` returns
``(outputs, writes)`` as ``ir.run`` does, with fresh, writable output arrays.

Hot path for the torch runtime: when ``exe.entry`` is not None (the graph has no extern
node), call ``exe.entry(*arrays)`` directly with C-contiguous, writable NumPy arrays of
the declared dtypes in ``graph.inputs`` order; it returns a tuple of ``exe.n_outputs``
outputs followed by one array per name in ``exe.write_names``, and raises
``ir.GuardFailed`` when a guard fails. The entry is plain Python: whole-array NumPy lines
and calls of njit code (the generic kernels of ``kernels.py`` and the module's loop
kernels, see ``outline.py``), so a graph costs only its distinct loop bodies to compile.
Generated modules live in ``TRACEJIT_CACHE_DIR`` (default ``~/.cache/tracejit``), see
``cache.py``.
"""

from __future__ import annotations

import importlib.util
import os
import sys


class _YamlOnFirstUse:
    """Stands in for the ``yaml`` module in ``numba.core.config`` until it is used."""

    def __getattr__(self, name):
        import yaml
        return getattr(yaml, name)


def _import_numba_without_yaml() -> None:
    """Import Numba without loading PyYAML when no Numba config file asks for it.

    ``numba.core.config`` imports ``yaml`` only to read a ``.numba_config.yaml`` in the
    current folder (at import, and again before each compile): 18-23 ms of a warm start
    whose budget is 0.5 s. Without such a file at import, Numba is imported with ``yaml``
    hidden, then given a stand-in that imports the real module if a file appears later.
    (An import statement loads a module registered with importlib's ``LazyLoader``
    straight away, so that does not help.)"""
    if "numba" in sys.modules or "yaml" in sys.modules or os.path.exists(".numba_config.yaml"):
        return
    if importlib.util.find_spec("yaml") is None:
        return
    sys.modules["yaml"] = None                  # `import yaml` raises ImportError
    try:
        from numba.core import config
    finally:
        del sys.modules["yaml"]
    if hasattr(config, "_HAVE_YAML"):
        config.yaml, config._HAVE_YAML = _YamlOnFirstUse(), True


_import_numba_without_yaml()

import llvmlite.binding as llvm  # noqa: E402
import numba  # noqa: E402

from ir.graph import Graph  # noqa: E402

from . import cache  # noqa: E402
from .emit import generate  # noqa: E402
from .runtime import NumbaExecutable  # noqa: E402

if not os.environ.get("NUMBA_THREADING_LAYER"):
    # Parallel loop kernels on Numba's default OpenMP layer spin-wait between tasks and
    # then fight OpenBLAS's threads (the GEMMs next to them) for the cores: the PreNorm
    # MLP block took 8.0 ms instead of 2.8 ms on 2 cores. workqueue threads sleep; calls
    # are serialised by kernels.PARALLEL because workqueue is not reentrant.
    numba.config.THREADING_LAYER = "workqueue"

# LLVM vectorises the loops 8 floats wide but, on this target, one vector per iteration:
# a transcendental is a long dependency chain, and the core waits on it. Two vectors per
# iteration made exp32/tanh32/gelu32 loops 13-16% faster and the elementwise chain on 1M
# floats 4.9-5.2 -> 4.2-4.4 ms. The option is LLVM's and process-wide, so it also applies
# to other Numba code compiled here; results do not change (a floating-point reduction is
# interleaved only under fast-math reassociation, which these loops do not allow).
llvm.set_option("tracejit", "-force-vector-interleave=2")


def _prefer_512_bit_vectors() -> None:
    """On AVX-512 CPUs, let LLVM vectorise 16 floats wide instead of 8.

    LLVM's tuning for Intel's AVX-512 cores prefers 256-bit vectors (``prefer-256-bit``,
    against the clock drop wide vectors caused on early Skylake servers), so the fused
    loops ran 8 floats wide where torch's kernels run 16: GELU over 1M floats took 1.5-1.8
    ns per element against torch's 0.7 on one thread, and 1.06-1.09 with the preference
    lifted (Xeon, family 6 model 167). Lifted through Numba's ``CPU_FEATURES`` (the host's
    own features plus ``-prefer-256-bit``), read once, when the process first compiles or
    loads Numba code; it is part of Numba's cache key, so cached code is never mixed. Left
    alone where the user set ``NUMBA_CPU_NAME`` or ``NUMBA_CPU_FEATURES``, or where Numba
    compiled something before this import."""
    from numba.core import codegen, registry
    if numba.config.CPU_NAME is not None or numba.config.CPU_FEATURES is not None:
        return
    if "_toplevel_target_context" in vars(registry.cpu_target):
        return          # the target machine exists: a changed setting would not apply
    features = codegen.get_host_cpu_features()
    if "+avx512f" in features.split(","):
        numba.config.CPU_FEATURES = features + ",-prefer-256-bit"


_prefer_512_bit_vectors()


def compile(graph: Graph, options: dict | None = None) -> NumbaExecutable:
    source, plan = generate(graph)
    key = cache.module_key(source)     # the module's text: printing the graph as well took
                                       # 14 ms of the LSTM's warm start (its layers' bodies)
    module = cache.load(key, source)
    exe = NumbaExecutable(graph, module, plan, source, getattr(module, "__file__", None))
    return exe
