"""ONNX: lower IR graphs to checked ONNX models, write them atomically, and run them with
onnxruntime (the ``onnxruntime`` backend). Imports onnx and onnxruntime, never torch."""

from .builder import LOWERINGS
from .export import (DEFAULT_OPSET, OPSETS, ExportWarning, Lowered, UnsupportedOpsetError,
                     check_model, lower_graph, save, to_model)
from .runtime import OrtExecutable, compile

__all__ = ["DEFAULT_OPSET", "ExportWarning", "LOWERINGS", "Lowered", "OPSETS",
           "OrtExecutable", "UnsupportedOpsetError", "check_model", "compile", "lower_graph",
           "save", "to_model"]
