"""tracejit: a tracing JIT compiler for PyTorch.

``@tracejit.compile`` runs a model once eagerly, records the aten ops it executes into a
small SSA IR, optimises that graph and hands it to a backend (Numba CPU by default, the
NumPy interpreter, onnxruntime). Guards keep the compiled code equal to eager PyTorch.
"""

from ir.errors import TraceJitError

from .api import (DEFAULT_BACKEND, BackendError, CompiledFunction, CompiledModule, Explanation,
                  Trace, compile, explain, trace)
from .errors import InputSpecError, ModelLoadError, TraceAbort, UnsupportedOpError
from .runtime import TraceJitWarning

__version__ = "0.1.0"

__all__ = ["BackendError", "CompiledFunction", "CompiledModule", "DEFAULT_BACKEND",
           "ExportError", "ExportReport", "Explanation", "InputSpecError", "ModelLoadError",
           "Trace", "TraceAbort", "TraceJitError", "TraceJitWarning", "UnsupportedOpError",
           "compile", "explain", "export_onnx", "trace", "__version__"]

_EXPORT = ("ExportError", "ExportReport", "export_onnx")


def __getattr__(name: str):
    """The ONNX exporter loads on first use: importing onnx costs 0.17 s, about a sixth of
    a numba-cpu warm start, and a model compiled for Numba never needs it."""
    if name in _EXPORT:
        from . import export
        return getattr(export, name)
    raise AttributeError(f"module 'tracejit' has no attribute {name!r}")
