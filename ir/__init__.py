"""tracejit's intermediate representation: types, graphs, the op table, text format,
verifier, passes and the NumPy reference interpreter. Imports numpy only."""

from . import ops  # noqa: F401  (registers the op table)
from .graph import Graph, GraphInput, Node, Region, Value
from .interpreter import InterpreterError, run
from .opdef import OPS, Flag, OpDef
from .ops import GuardFailed
from .parser import parse
from .printer import print_graph
from .serialize import from_json, to_dot, to_json
from .types import DType, TensorType, parse_type
from .verify import verify

__all__ = ["DType", "Flag", "Graph", "GraphInput", "GuardFailed", "InterpreterError", "Node",
           "OPS", "OpDef", "Region", "TensorType", "Value", "from_json", "parse", "parse_type",
           "print_graph", "run", "to_dot", "to_json", "verify"]
