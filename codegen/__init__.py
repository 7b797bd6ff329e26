"""Backends: turn an ``ir.Graph`` into something runnable or a file. Never imports torch.

Every backend registers a factory ``compile(graph, options) -> Executable``. An executable
is called like ``ir.run``: ``exe(arrays, extern=None) -> (outputs, writes)`` with arrays in
``graph.inputs`` order, outputs in ``graph.outputs`` order and writes keyed by buffer name.
"""

from __future__ import annotations

import importlib
from typing import Callable

from ir.errors import TraceJitError

# name -> "module:function"; modules are imported on first use so that, say, the ONNX
# backend does not pay for importing numba.
BACKENDS: dict[str, str] = {
    "interpret": "codegen.interpret:compile",
    "numba-cpu": "codegen.numba_cpu:compile",
    "numba-cuda": "codegen.numba_cuda:compile",
    "onnxruntime": "codegen.onnx:compile",
}


class UnknownBackendError(TraceJitError, ValueError):
    pass


def get_backend(name: str) -> Callable:
    try:
        target = BACKENDS[name]
    except KeyError:
        raise UnknownBackendError(
            f"unknown backend {name!r}; choose one of {', '.join(sorted(BACKENDS))}") from None
    module, _, fn = target.partition(":")
    return getattr(importlib.import_module(module), fn)


def compile_graph(graph, backend: str = "interpret", options: dict | None = None):
    return get_backend(backend)(graph, dict(options or {}))
