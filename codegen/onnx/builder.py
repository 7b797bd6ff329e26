"""The state of one IR -> ONNX lowering: emitted nodes, constants, names and symbol sizes.

Lowering rules (``lower.py``, ``lower_nn.py``) are functions registered with ``@lowers``;
each receives the builder, the IR node, the ONNX names of its inputs (``None`` for an
absent optional input) and its attributes with defaults filled in, and returns the ONNX
name(s) of its outputs. They call ``b.op(...)`` and the helpers here, never onnx directly.
"""

from __future__ import annotations

import itertools
from typing import Callable

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from ir.errors import LoweringError
from ir.graph import Node
from ir.types import DType

INT64_MAX = 2 ** 63 - 1

ONNX_DTYPE = {
    DType.f16: TensorProto.FLOAT16, DType.f32: TensorProto.FLOAT,
    DType.f64: TensorProto.DOUBLE, DType.i8: TensorProto.INT8, DType.u8: TensorProto.UINT8,
    DType.i16: TensorProto.INT16, DType.i32: TensorProto.INT32, DType.i64: TensorProto.INT64,
    DType.bool: TensorProto.BOOL,
}

Rule = Callable[..., "str | tuple[str, ...] | list[str]"]
LOWERINGS: dict[str, Rule] = {}


def lowers(*names: str):
    """Register one rule for the named IR ops (the table backends are keyed by)."""
    def register(fn: Rule) -> Rule:
        for name in names:
            if name in LOWERINGS:
                raise ValueError(f"op {name!r} has two ONNX lowerings")
            LOWERINGS[name] = fn
        return fn
    return register


def where_of(node: Node) -> str:
    """`scope (file:line)` for messages; empty parts are left out."""
    parts = [p for p in (node.scope and f"module {node.scope}", node.loc) if p]
    return ", ".join(parts) if parts else "unknown location"


class Builder:
    def __init__(self, opset: int, symbols: dict[str, tuple[str, int]]):
        self.opset = opset
        self.symbols = symbols           # symbol -> (graph input name, axis) that binds it
        self.nodes: list = []
        self.initializers: list = []
        self.used: set[str] = set()
        self.node: Node | None = None    # the IR node being lowered, for provenance
        self._count = itertools.count()
        self._consts: dict[tuple, str] = {}
        self._dims: dict[str, str] = {}
        self.weights: dict[str, np.ndarray] = {}   # initializer name -> array (export only)

    # ---- names and nodes ----------------------------------------------------------------

    def reserve(self, name: str) -> str:
        if name in self.used:
            raise LoweringError(f"two graph values are both named {name!r}")
        self.used.add(name)
        return name

    def fresh(self, hint: str) -> str:
        while True:
            name = f"{hint}_{next(self._count)}"
            if name not in self.used:
                self.used.add(name)
                return name

    def op(self, op_type: str, inputs, n_out: int = 1, **attrs):
        """Emit one ONNX node; returns its output name (or list of names when n_out != 1)."""
        outs = [self.fresh(op_type) for _ in range(n_out)]
        inputs = ["" if i is None else i for i in inputs]
        while inputs and inputs[-1] == "":
            inputs.pop()
        doc = where_of(self.node) if self.node is not None else ""
        name = f"{self.node.op}/{outs[0]}" if self.node is not None else outs[0]
        attrs = {k: v for k, v in attrs.items() if v is not None}
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=name, doc_string=doc,
                                           **attrs))
        return outs[0] if n_out == 1 else outs

    # ---- constants ----------------------------------------------------------------------

    def const(self, array, dtype=None, name: str | None = None) -> str:
        """An initializer holding ``array`` (deduplicated by content), named ``name`` when
        that is free."""
        arr = np.array(array, dtype=dtype, order="C")   # keeps 0-d (ascontiguousarray does not)
        key = (arr.dtype.str, arr.shape, arr.tobytes())
        if key not in self._consts:
            name = self.reserve(name) if name and name not in self.used else self.fresh("const")
            self.initializers.append(numpy_helper.from_array(arr, name))
            self._consts[key] = name
        return self._consts[key]

    def transposed(self, matrix: str) -> str:
        """``matrix`` transposed: a transposed initializer when it is a known weight."""
        if matrix in self.weights:
            return self.const(self.weights[matrix].T, name=f"{matrix}.T")
        return self.op("Transpose", [matrix], perm=[1, 0])

    def scalar(self, value, dtype: DType) -> str:
        return self.const(np.array(value, dtype=dtype.np))

    def ints(self, values) -> str:
        return self.const(np.array(list(values), dtype=np.int64).reshape(-1))

    # ---- shapes with symbolic dimensions --------------------------------------------------

    def dim(self, symbol: str) -> str:
        """A 1-element int64 tensor holding the run-time size of ``symbol``."""
        if symbol not in self._dims:
            if symbol not in self.symbols:
                raise LoweringError(f"dimension {symbol!r} is not bound by any graph input "
                                    f"({where_of(self.node)})")
            src, axis = self.symbols[symbol]
            self._dims[symbol] = self.op("Shape", [src], start=axis, end=axis + 1)
        return self._dims[symbol]

    def shape(self, dims) -> str:
        """An int64 1-D tensor for a shape that may hold symbols (Concat of static runs)."""
        dims = tuple(dims)
        if all(isinstance(d, int) for d in dims):
            return self.ints(dims)
        parts, run = [], []
        for d in dims:
            if isinstance(d, int):
                run.append(d)
                continue
            if run:
                parts.append(self.ints(run))
                run = []
            parts.append(self.dim(d))
        if run:
            parts.append(self.ints(run))
        return parts[0] if len(parts) == 1 else self.op("Concat", parts, axis=0)

    def reshape(self, x: str, src, dst) -> str:
        """Reshape to ``dst``; symbols are copied with 0 or inferred with -1 where ONNX allows,
        otherwise read from the input shapes."""
        src, dst = tuple(src), tuple(dst)
        if src == dst:
            return x
        if 0 in dst:
            return self.op("Reshape", [x, self.shape(dst)], allowzero=1)
        spec = [d if isinstance(d, int) else 0 if i < len(src) and src[i] == d else None
                for i, d in enumerate(dst)]
        if spec.count(None) <= 1:
            return self.op("Reshape", [x, self.ints(-1 if d is None else d for d in spec)])
        return self.op("Reshape", [x, self.shape(dst)])

    def numel(self, shape, dtype: DType) -> str:
        """Product of ``shape`` as a 0-d tensor of ``dtype`` (static, or from input shapes)."""
        if all(isinstance(d, int) for d in shape):
            return self.scalar(int(np.prod(shape, dtype=np.int64)), dtype)
        n = self.reduce("ReduceProd", self.shape(shape), None, keepdims=False)
        return self.op("Cast", [n], to=ONNX_DTYPE[dtype])

    # ---- reductions across opsets ---------------------------------------------------------

    def reduce(self, op_type: str, x: str, axes, keepdims: bool) -> str:
        """``axes`` None reduces everything; ReduceSum takes axes as an input from opset 13,
        the other reductions from opset 18 (attribute before)."""
        kd = int(bool(keepdims))
        if axes is None:
            return self.op(op_type, [x], keepdims=kd)
        axes = [int(a) for a in axes]
        if op_type == "ReduceSum" or self.opset >= 18:
            return self.op(op_type, [x, self.ints(axes)], keepdims=kd)
        return self.op(op_type, [x], axes=axes, keepdims=kd)
