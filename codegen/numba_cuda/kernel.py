"""One generated CUDA kernel: its arguments (flat arrays), body lines and index helpers.

Every array crosses into a kernel as a flat, C-contiguous 1-D array; shapes are concrete
(symbols are bound before generation), so index arithmetic is written with literal sizes
and strides, and a dimension of size 1 simply drops out of the flat index (broadcasting).
``SCALAR`` is the numba-cpu element table with the math routed through ``devmath``.
"""

from __future__ import annotations

import math

from codegen.numba_cpu.lower import SCALAR as CPU_SCALAR
from ir.errors import LoweringError
from ir.graph import Node, Value
from ir.types import DType, TensorType

CTOR = {DType.f16: "np.float16", DType.f32: "np.float32", DType.f64: "np.float64",
        DType.i8: "np.int8", DType.u8: "np.uint8", DType.i16: "np.int16",
        DType.i32: "np.int32", DType.i64: "np.int64", DType.bool: "np.bool_"}


def ctor(dt: DType) -> str:
    return CTOR[dt]


def lit(value, dt: DType) -> str:
    if dt == DType.bool:
        return "True" if value else "False"
    if isinstance(value, float) and not math.isfinite(value):
        text = "np.nan" if math.isnan(value) else ("np.inf" if value > 0 else "-np.inf")
    else:
        text = repr(int(value) if dt.is_int else float(value))
    return f"{ctor(dt)}({text})"


def _m(name):
    return lambda n, a: f"M.{name}({a[0]})"


def _float_or_same(name):
    return lambda n, a: f"M.{name}({a[0]})" if n.inputs[0].type.dtype.is_float else a[0]


SCALAR = dict(CPU_SCALAR)
SCALAR.update({k: _m(k) for k in ("exp", "log", "log1p", "expm1", "sqrt", "sin", "cos",
                                  "tanh", "sigmoid", "erf", "silu")})
SCALAR.update({
    "rsqrt": lambda n, a: f"{lit(1, n.inputs[0].type.dtype)} / M.sqrt({a[0]})",
    "floor": _float_or_same("floor"),
    "ceil": _float_or_same("ceil"),
    "round": _float_or_same("rint"),
    "gelu": lambda n, a: ("M.gelu_tanh" if n.attrs.get("approximate", "none") == "tanh"
                          else "M.gelu") + f"({a[0]})",
})


def _as_f32(node: Node) -> Node:
    """float16 computes in float32 and rounds at each op's output, as torch does."""
    def f(v):
        return Value(v.type.with_dtype(DType.f32)) if v.type.dtype == DType.f16 else v
    return node.replace(inputs=tuple(map(f, node.inputs)), outputs=tuple(map(f, node.outputs)))


class Kernel:
    """Lines of one ``@cuda.jit`` function. Outputs are the first parameters, then inputs."""

    def __init__(self, gen, name: str, outs: list[Value]):
        self.gen = gen
        self.name = name
        self.outs = list(outs)
        self.ins: list[Value] = []
        self.lines: list[str] = []
        self.indent = 1
        self.counter = 0

    # ---- writing
    def line(self, text: str) -> None:
        self.lines.append("    " * self.indent + text)

    def tmp(self, hint: str = "t") -> str:
        self.counter += 1
        return f"{hint}{self.counter}"

    def shape(self, v: Value) -> tuple[int, ...]:
        return self.gen.shape(v)

    def out(self, k: int) -> str:
        return f"r{k}"

    def arg(self, v: Value) -> str:
        if v not in self.ins:
            self.ins.append(v)
        return f"a{self.ins.index(v)}"

    # ---- indexing
    @staticmethod
    def flat(shape, idx) -> str:
        """Row-major flat offset of ``idx`` (expressions) in ``shape``."""
        terms, stride = [], 1
        for d, i in zip(reversed(shape), reversed(list(idx))):
            if d != 1:
                terms.append(str(i) if stride == 1 else f"({i}) * {stride}")
            stride *= d
        return " + ".join(reversed(terms)) or "0"

    def load(self, v: Value, idx) -> str:
        lit_ = self.gen.literal(v)
        if lit_ is not None:
            return lit_
        expr = f"{self.arg(v)}[{self.flat(self.shape(v), idx)}]"
        return f"np.float32({expr})" if v.type.dtype == DType.f16 else expr

    def bload(self, v: Value, out_idx) -> str:
        """Load ``v`` broadcast against an output indexed by ``out_idx`` (right-aligned)."""
        s = self.shape(v)
        return self.load(v, list(out_idx)[len(out_idx) - len(s):] if s else [])

    def unravel(self, flat: str, shape, prefix: str = "o") -> list[str]:
        names = [self.tmp(prefix) for _ in shape]
        q = self.tmp("q")
        self.line(f"{q} = {flat}")
        for k in range(len(shape) - 1, -1, -1):
            if k == 0:
                self.line(f"{names[k]} = {q}")
            else:
                self.line(f"{names[k]} = {q} % {shape[k]}")
                self.line(f"{q} = {q} // {shape[k]}")
        return names

    def loop(self, var: str, n) -> None:
        self.line(f"for {var} in range({n}):")
        self.indent += 1

    def store(self, k: int, flat: str, expr: str, t: TensorType) -> None:
        self.line(f"{self.out(k)}[{flat}] = {ctor(t.dtype)}({expr})")

    def scalar_nodes(self, nodes, env: dict) -> dict:
        """Lines computing each elementwise node from scalar expressions in ``env``."""
        for n in nodes:
            if n.op == "constant":
                env[n.output] = lit(n.attrs["value"], n.output.type.dtype)
                continue
            if n.op not in SCALAR:
                raise LoweringError(f"numba-cuda: {n.op} is not elementwise")
            m = _as_f32(n) if n.output.type.dtype == DType.f16 or any(
                v.type.dtype == DType.f16 for v in n.inputs) else n
            name = self.tmp("s")
            out_t = m.outputs[0].type.dtype
            self.line(f"{name} = {ctor(out_t)}({SCALAR[m.op](m, [env[v] for v in n.inputs])})")
            env[n.output] = name
        return env

    def source(self, params_extra: str = "") -> str:
        params = [self.out(k) for k in range(len(self.outs))] + \
            [f"a{i}" for i in range(len(self.ins))]
        head = f"@cuda.jit(cache=True)\ndef {self.name}({', '.join(params)}):"
        return "\n" + head + "\n" + "\n".join(self.lines) + "\n"


def grid_stride(k: Kernel, n: int) -> str:
    """Open a grid-stride loop over ``n`` elements; returns the flat index variable."""
    k.line("i = cuda.grid(1)")
    k.line(f"while i < {n}:")
    k.indent += 1
    return "i"


def close_grid_stride(k: Kernel) -> None:
    k.line("i += cuda.gridsize(1)")
    k.indent -= 1
