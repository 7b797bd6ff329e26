"""tracejit's intermediate representation: types, graphs, the op table, text format,
verifier, passes and the NumPy reference interpreter. Imports numpy only."""

from . import ops  # noqa: F401  (registers the op table)
from .graph import Graph, GraphInput, Node, Region, Value
from .interpreter import InterpreterError, run
from .opdef import OPS, Flag, OpDef
from .ops import GuardFailed
from .printer import print_graph
from .types import DType, TensorType, parse_type

__all__ = ["DType", "Flag", "Graph", "GraphInput", "GuardFailed", "InterpreterError", "Node",
           "OPS", "OpDef", "Region", "TensorType", "Value", "parse_type", "print_graph", "run"]
