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

import os

import llvmlite.binding as llvm
import numba

from ir.graph import Graph
from ir.printer import print_graph

from . import cache
from .emit import generate
from .runtime import NumbaExecutable

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


def compile(graph: Graph, options: dict | None = None) -> NumbaExecutable:
    source, plan = generate(graph)
    key = cache.module_key(print_graph(graph))
    module = cache.load(key, source)
    exe = NumbaExecutable(graph, module, plan, source, getattr(module, "__file__", None))
    return exe
