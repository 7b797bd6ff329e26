"""tracejit: a tracing JIT compiler for PyTorch.

``@tracejit.compile`` runs a model once eagerly, records the aten ops it executes into a
small SSA IR, optimises that graph and hands it to a backend (Numba CPU by default, the
NumPy interpreter, onnxruntime). Guards keep the compiled code equal to eager PyTorch.
"""

from ir.errors import TraceJitError

from .api import (DEFAULT_BACKEND, BackendError, CompiledFunction, CompiledModule, Explanation,
                  Trace, compile, explain, trace)
from .errors import InputSpecError, ModelLoadError, TraceAbort, UnsupportedOpError
from .export import ExportError, ExportReport, export_onnx
from .runtime import TraceJitWarning

__version__ = "0.1.0"

__all__ = ["BackendError", "CompiledFunction", "CompiledModule", "DEFAULT_BACKEND",
           "ExportError", "ExportReport", "Explanation", "InputSpecError", "ModelLoadError",
           "Trace", "TraceAbort", "TraceJitError", "TraceJitWarning", "UnsupportedOpError",
           "compile", "explain", "export_onnx", "trace", "__version__"]
