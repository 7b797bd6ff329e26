"""Per-op differential test cases, shared by every backend's test suite.

Each ``OpCase`` is one IR op on concrete NumPy inputs with the torch function that has the
same semantics. ``cases()`` lists them (``small=True``: tiny shapes only, for the CUDA
simulator); ``single_op_graph`` wraps a case in a one-node graph with inputs ``a0, a1, ...``;
``check_case`` runs it through a backend and compares with eager torch.

Tags let backends filter: ``edge`` (inf/nan/-0.0/huge/tiny values), ``noncontig`` (strided,
transposed or reversed views), ``scalar`` (a 0-d input or output), ``empty`` (a size-0
dimension), ``broadcast``, ``int`` (an integer or bool input), ``f64``, ``f16``, ``large``.
Data is random with a fixed seed per op, never all zeros.
"""

from __future__ import annotations

import collections
import math
import zlib
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

import ir
from ir.opdef import OPS
from ir.types import DType, TensorType

F16, F32, F64, I64, I32 = np.float16, np.float32, np.float64, np.int64, np.int32
INF, NAN = math.inf, math.nan

# DESIGN §7 defaults are rtol 1e-4, atol 1e-5. Keys: (op, dtype), op, or dtype, looked up in
# that order. These legitimately differ more: long float32 reductions summed in another order,
# and float16, whose ulp is 1e-3 (torch.testing's own float16 tolerance).
TOLERANCE: dict = {
    "sum": (1e-4, 1e-4), "mean": (1e-4, 1e-4), "cumsum": (1e-4, 1e-4), "var": (1e-4, 1e-4),
    "matmul": (1e-4, 1e-4), "linear": (1e-4, 1e-4), "addmm": (1e-4, 1e-4),
    "conv1d": (1e-4, 1e-4), "conv2d": (1e-4, 1e-4), "scaled_dot_product_attention": (1e-4, 1e-4),
    "layer_norm": (1e-4, 1e-4), "batch_norm": (1e-4, 1e-4), "batch_norm_train": (1e-4, 1e-4),
    "mse_loss": (1e-4, 1e-4),
    "f16": (1e-3, 1e-3), ("matmul", "f16"): (2e-3, 2e-3), ("sum", "f16"): (2e-3, 2e-3),
}


def tolerance(op: str, dtype: str) -> tuple[float, float]:
    return TOLERANCE.get((op, dtype)) or TOLERANCE.get(op) or TOLERANCE.get(dtype) \
        or (1e-4, 1e-5)


SMALL_NUMEL = 128   # small=True keeps cases whose inputs and outputs all have <= this many
SMALL_PER_OP = 4    # elements, at most this many per op (the CUDA simulator is slow)
EXCLUDED = ("extern", "fused", "guard")   # tested by hand in test_ops_interpreter.py


@dataclass
class OpCase:
    op: str
    inputs: list[np.ndarray]
    attrs: dict
    torch_fn: Callable
    id: str
    rtol: float = 1e-4
    atol: float = 1e-5
    tags: frozenset = frozenset()


# ---- data ---------------------------------------------------------------------------------

EDGE = [0.0, -0.0, INF, -INF, NAN, 1e30, -1e30, 1e-38, -1e-38, 1.0, -1.5, 2.5, 0.5, -3.0,
        88.0, -100.0, 1e-7]


class Data:
    """Random inputs from one seeded generator per op, so cases never shift between ops."""

    def __init__(self, op: str):
        self.rng = np.random.default_rng(zlib.crc32(op.encode()))

    def f(self, *shape, dtype=F32, lo=-2.0, hi=2.0):
        x = np.asarray(self.rng.uniform(lo, hi, size=shape), dtype=dtype)
        if x.size and not x.any():
            x.flat[0] = 1
        return x

    def pos(self, *shape, dtype=F32):
        return self.f(*shape, dtype=dtype, lo=0.1, hi=3.0)

    def i(self, *shape, dtype=I64, lo=-5, hi=6):
        x = np.asarray(self.rng.integers(lo, hi, size=shape), dtype=dtype)
        if x.size and not x.any():
            x.flat[0] = 1
        return x

    def nonneg(self, *shape, dtype=I64):
        return self.i(*shape, dtype=dtype, lo=0, hi=4)

    def nonzero(self, *shape, dtype=I64):
        signs = np.where(self.rng.random(size=shape) < 0.5, -1, 1)
        return (self.i(*shape, dtype=dtype, lo=1, hi=6) * signs).astype(dtype)

    def b(self, *shape):
        x = np.asarray(self.rng.random(size=shape) < 0.5)
        if x.size:
            x.flat[0] = True
        return x


def edge(dtype=F32) -> np.ndarray:
    return np.array(EDGE, dtype=dtype)


def transposed(x: np.ndarray) -> np.ndarray:
    """Same values, Fortran order: a non-contiguous view."""
    return np.asfortranarray(x) if x.ndim > 1 else strided(x)


def strided(x: np.ndarray) -> np.ndarray:
    """Same values as a view taking every other element of a larger array (last dim)."""
    big = np.zeros(x.shape[:-1] + (2 * x.shape[-1],), x.dtype)
    big[..., ::2] = x
    return big[..., ::2]


def reversed_(x: np.ndarray) -> np.ndarray:
    """Same values as a negative-stride view (torch.from_numpy refuses these; backends must not)."""
    return np.ascontiguousarray(x[..., ::-1])[..., ::-1]


# ---- the registry -------------------------------------------------------------------------

_GENERATORS: list[Callable[[], Iterator[OpCase]]] = []


def generator(fn):
    _GENERATORS.append(fn)
    return fn


def make(op, label, inputs, torch_fn, attrs=None, tags=(), tol=None) -> OpCase:
    """One case; tags for dtype, layout, 0-d and size-0 are derived from the inputs."""
    inputs = [np.asarray(x) if not isinstance(x, np.ndarray) else x for x in inputs]
    tags = set(tags)
    for x in inputs:
        tags |= {"int"} if x.dtype.kind in "biu" else set()
        tags |= {"f64"} if x.dtype == F64 else {"f16"} if x.dtype == F16 else set()
        tags |= {"scalar"} if x.ndim == 0 else set()
        tags |= {"empty"} if x.size == 0 else set()
        tags |= {"noncontig"} if not x.flags.c_contiguous else set()
    floats = [str(DType.from_numpy(x.dtype)) for x in inputs if x.dtype.kind == "f"]
    rtol, atol = tol or tolerance(op, floats[0] if floats else "")
    return OpCase(op, inputs, dict(attrs or {}), torch_fn, f"{op}-{label}", rtol, atol,
                  frozenset(tags))


def cases(op: str | None = None, *, small: bool = False) -> list[OpCase]:
    """Every case (or those of one op); small=True keeps the first few tiny ones of each op."""
    out = [c for gen in _GENERATORS for c in gen() if op is None or c.op == op]
    if not small:
        return out
    picked, per_op = [], collections.Counter()
    for c in out:
        if per_op[c.op] < SMALL_PER_OP and _is_small(c):
            per_op[c.op] += 1
            picked.append(c)
    return picked


def _is_small(case: OpCase) -> bool:
    if "large" in case.tags:
        return False
    if any(x.size > SMALL_NUMEL for x in case.inputs):
        return False
    types = OPS[case.op].infer_types([_type_of(x) for x in case.inputs], case.attrs)
    return all((t.numel or 0) <= SMALL_NUMEL for t in types)


def _type_of(x: np.ndarray) -> TensorType:
    return TensorType(DType.from_numpy(x.dtype), x.shape)


def single_op_graph(case: OpCase) -> ir.Graph:
    g = ir.Graph(case.op.replace("_", ""))
    args = [g.add_input(f"a{i}", _type_of(x)) for i, x in enumerate(case.inputs)]
    types = OPS[case.op].infer_types([v.type for v in args], case.attrs)
    outs = [ir.Value(t) for t in types]
    g.nodes.append(ir.Node(case.op, args, outs, case.attrs))
    g.outputs = outs
    return g


def check_case(case: OpCase, run: Callable[[ir.Graph, list[np.ndarray]], list[np.ndarray]]
               ) -> None:
    """Run one case through ``run`` and compare each output with eager torch."""
    graph = single_op_graph(case)
    before = [x.copy() for x in case.inputs]
    got = list(run(graph, list(case.inputs)))
    for x, y in zip(case.inputs, before):
        np.testing.assert_array_equal(x, y, err_msg=f"{case.id}: an input was modified")
    want = case.torch_fn(*[torch.from_numpy(x.copy()) for x in case.inputs])
    want = list(want) if isinstance(want, (tuple, list)) else [want]
    assert len(got) == len(want), f"{case.id}: {len(got)} outputs, torch gives {len(want)}"
    for k, (g, w, v) in enumerate(zip(got, want, graph.outputs)):
        g = np.asarray(g)
        where = f"{case.id} output {k}"
        w_np = w.detach().numpy()
        assert g.dtype == w_np.dtype, f"{where}: dtype {g.dtype}, torch gives {w_np.dtype}"
        assert g.dtype == v.type.dtype.np, f"{where}: dtype {g.dtype}, IR says {v.type}"
        assert g.shape == w_np.shape, f"{where}: shape {g.shape}, torch gives {w_np.shape}"
        assert g.shape == v.type.shape, f"{where}: shape {g.shape}, IR says {v.type}"
        exact = g.dtype.kind in "biu"
        torch.testing.assert_close(
            torch.from_numpy(np.array(g)), w, rtol=0 if exact else case.rtol,
            atol=0 if exact else case.atol, equal_nan=True, msg=lambda m: f"{where}: {m}")



# ---- elementwise --------------------------------------------------------------------------

UNARY_TORCH = {
    "neg": torch.neg, "abs": torch.abs, "exp": torch.exp, "log": torch.log,
    "log1p": torch.log1p, "expm1": torch.expm1, "sqrt": torch.sqrt, "rsqrt": torch.rsqrt,
    "reciprocal": torch.reciprocal, "sin": torch.sin, "cos": torch.cos, "tanh": torch.tanh,
    "sigmoid": torch.sigmoid, "erf": torch.erf, "relu": torch.relu, "silu": F.silu,
    "floor": torch.floor, "ceil": torch.ceil, "round": torch.round, "sign": torch.sign,
    "isnan": torch.isnan, "logical_not": torch.logical_not,
}
POSITIVE_DOMAIN = {"log", "sqrt", "rsqrt", "log1p"}
UNARY_INT = {"neg", "abs", "relu", "sign", "floor", "ceil", "round", "isnan", "logical_not"}


@generator
def _unary() -> Iterator[OpCase]:
    for op, fn in UNARY_TORCH.items():
        d = Data(op)
        rnd = d.pos if op in POSITIVE_DOMAIN else d.f
        yield make(op, "7", [rnd(7)], fn)
        yield make(op, "0d", [rnd()], fn)
        yield make(op, "13x7-T", [transposed(rnd(13, 7))], fn)
        yield make(op, "2x1x5-f64-strided", [strided(rnd(2, 1, 5, dtype=F64))], fn)
        yield make(op, "3x0", [rnd(3, 0)], fn)
        yield make(op, "edge", [edge()], fn, tags={"edge"})
        if op in UNARY_INT:
            yield make(op, "4x5-i64", [d.i(4, 5)], fn)
        if op == "logical_not":
            yield make(op, "4x3-bool", [d.b(4, 3)], fn)
    d = Data("bitwise_not")
    for label, x in [("4x5-i64", d.i(4, 5)), ("7-i32-rev", reversed_(d.i(7, dtype=I32))),
                     ("3x3-bool", d.b(3, 3)), ("0d-i64", d.i())]:
        yield make("bitwise_not", label, [x], torch.bitwise_not)


@generator
def _unary_with_attrs() -> Iterator[OpCase]:
    d = Data("leaky_relu")
    for slope in (0.01, 0.2, -1.5):
        yield make("leaky_relu", f"slope{slope}", [d.f(7, 13)], lambda x, s=slope:
                   F.leaky_relu(x, s), {"negative_slope": slope})
    yield make("leaky_relu", "edge", [edge()], F.leaky_relu, tags={"edge"})
    yield make("leaky_relu", "0d", [d.f()], F.leaky_relu)
    yield make("leaky_relu", "T-f64", [transposed(d.f(5, 4, dtype=F64))], F.leaky_relu)
    d = Data("gelu")
    for approx in ("none", "tanh"):
        def fn(x, a=approx):
            return F.gelu(x, approximate=a)
        yield make("gelu", f"{approx}-7x13", [d.f(7, 13, lo=-5, hi=5)], fn, {"approximate": approx})
        # reference in float64: torch 2.13's AVX-512 float32 GELU gives nan at +inf (Zen 4);
        # its float64 kernel, like its AVX2 float32 one, gives inf
        def fn64(x, a=approx):
            return F.gelu(x.double(), approximate=a).to(x.dtype)
        yield make("gelu", f"{approx}-edge", [edge()], fn64, {"approximate": approx}, {"edge"})
        yield make("gelu", f"{approx}-0d", [d.f()], fn, {"approximate": approx})
        yield make("gelu", f"{approx}-f64-T", [transposed(d.f(3, 5, dtype=F64))], fn,
                   {"approximate": approx})
    yield make("gelu", "default-3x0", [d.f(3, 0)], F.gelu)
    d = Data("clamp")
    bounds = [(-0.5, 0.5), (None, 1.0), (0.0, None), (1.0, -1.0), (None, None)]
    for lo, hi in bounds:
        def fn(x, lo=lo, hi=hi):
            return x.clone() if lo is None and hi is None else torch.clamp(x, lo, hi)
        yield make("clamp", f"{lo}-{hi}", [d.f(7, 5)], fn, {"min": lo, "max": hi})
    yield make("clamp", "edge", [edge()], lambda x: torch.clamp(x, -2.0, 3.0),
               {"min": -2.0, "max": 3.0}, {"edge"})
    yield make("clamp", "i64", [d.i(4, 6)], lambda x: torch.clamp(x, -2, 3), {"min": -2, "max": 3})
    yield make("clamp", "0d-T", [d.f()], lambda x: torch.clamp(x, max=0.1), {"max": 0.1})
    yield make("clamp", "f64-strided", [strided(d.f(3, 4, dtype=F64))],
               lambda x: torch.clamp(x, min=-1.0), {"min": -1.0})


TORCH_DTYPE = {"f32": torch.float32, "f64": torch.float64, "i64": torch.int64,
               "i32": torch.int32, "bool": torch.bool, "f16": torch.float16, "i8": torch.int8,
               "u8": torch.uint8, "i16": torch.int16}


@generator
def _cast() -> Iterator[OpCase]:
    d = Data("cast")
    finite = np.array([0.0, -0.0, 1.5, -1.5, 2.7, -2.7, 1e9, -1e9, 1e-38, 0.5, -0.5], F32)
    sources = [("f32", d.f(7, 5, lo=-100, hi=100)), ("f64", d.f(13, dtype=F64, lo=-1e3, hi=1e3)),
               ("i64", d.i(6, 4, lo=-1000, hi=1000)), ("i32", d.i(5, dtype=I32)),
               ("bool", d.b(3, 5)), ("f32edge", finite), ("f32-T", transposed(d.f(4, 3)))]
    targets = {"f32": ("f64", "i64", "i32", "bool", "f32"), "f64": ("f32", "i64", "bool"),
               "i64": ("f32", "f64", "i32", "bool"), "i32": ("i64", "f32", "bool"),
               "bool": ("f32", "i64", "i32"), "f32edge": ("i64", "i32", "bool", "f64"),
               "f32-T": ("i64",)}
    for src, x in sources:
        for dst in targets[src]:
            yield make("cast", f"{src}-to-{dst}", [x],
                       lambda x, t=TORCH_DTYPE[dst]: x.to(t), {"dtype": dst})
    yield make("cast", "nonfinite-to-bool", [edge()], lambda x: x.to(torch.bool),
               {"dtype": "bool"}, {"edge"})
    yield make("cast", "huge-f64-to-f32", [np.array([1e300, -1e300, 1e-300, 3.3], F64)],
               lambda x: x.to(torch.float32), {"dtype": "f32"}, {"edge"})
    yield make("cast", "0d-f32-to-i64", [d.f(lo=-9, hi=9)], lambda x: x.to(torch.int64),
               {"dtype": "i64"})
    yield make("cast", "3x0-to-f64", [d.f(3, 0)], lambda x: x.to(torch.float64), {"dtype": "f64"})


BINARY_TORCH = {
    "add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div, "pow": torch.pow,
    "maximum": torch.maximum, "minimum": torch.minimum, "remainder": torch.remainder,
    "floor_divide": torch.floor_divide, "eq": torch.eq, "ne": torch.ne, "lt": torch.lt,
    "le": torch.le, "gt": torch.gt, "ge": torch.ge, "logical_and": torch.logical_and,
    "logical_or": torch.logical_or, "logical_xor": torch.logical_xor,
}
NONZERO_DIVISOR = {"div", "remainder", "floor_divide"}
NO_INT = {"div"}   # IR div keeps the dtype; torch's true division of ints gives floats


@generator
def _binary() -> Iterator[OpCase]:
    for op, fn in BINARY_TORCH.items():
        d = Data(op)
        b_rnd = d.pos if op in NONZERO_DIVISOR | {"pow"} else d.f
        a_rnd = d.pos if op == "pow" else d.f
        yield make(op, "7x13", [a_rnd(7, 13), b_rnd(7, 13)], fn)
        yield make(op, "bcast-7x1x5-3x1", [a_rnd(7, 1, 5), b_rnd(3, 1)], fn, tags={"broadcast"})
        yield make(op, "bcast-0d-5x3", [a_rnd(), b_rnd(5, 3)], fn, tags={"broadcast"})
        yield make(op, "bcast-4x6-0d", [a_rnd(4, 6), b_rnd()], fn, tags={"broadcast"})
        yield make(op, "T-strided", [transposed(a_rnd(5, 6)), strided(b_rnd(5, 6))], fn)
        yield make(op, "0x3-1x3", [a_rnd(0, 3), b_rnd(1, 3)], fn, tags={"broadcast"})
        yield make(op, "f64-rev", [reversed_(a_rnd(3, 7, dtype=F64)), b_rnd(7, dtype=F64)], fn,
                   tags={"broadcast"})
        e = edge()
        # torch's vectorised float32 remainder gives NaN where a/b overflows (its scalar
        # path and NumPy give the exact remainder): no tiny divisors for remainder.
        b = e[np.abs(e) != np.float32(1e-38)] if op == "remainder" else e
        yield make(op, "edge-pairs", [e[:, None], b[None, :]], fn, tags={"edge", "broadcast"})
        if op in NO_INT:
            continue
        a_int = d.i if op != "pow" else d.nonneg
        b_int = d.nonzero if op in NONZERO_DIVISOR else d.nonneg if op == "pow" else d.i
        yield make(op, "i64-bcast", [a_int(4, 5), b_int(5)], fn, tags={"broadcast"})
        if op in NONZERO_DIVISOR | {"pow"}:
            yield make(op, "i32", [a_int(3, 4, dtype=I32), b_int(3, 4, dtype=I32)], fn)
        if op not in NONZERO_DIVISOR | {"pow", "sub"}:
            yield make(op, "bool", [d.b(3, 4), d.b(4)], fn, tags={"broadcast"})
    for op in ("bitwise_and", "bitwise_or", "bitwise_xor"):
        d, fn = Data(op), getattr(torch, op)
        yield make(op, "i64", [d.i(4, 5, lo=-100, hi=100), d.i(4, 5, lo=-100, hi=100)], fn)
        yield make(op, "i32-bcast", [d.i(7, 1, 5, dtype=I32, lo=0, hi=64),
                                     d.i(3, 1, dtype=I32, lo=0, hi=64)], fn, tags={"broadcast"})
        yield make(op, "bool", [d.b(3, 4), d.b(3, 4)], fn)
        yield make(op, "0d-T", [d.i(), transposed(d.i(3, 2))], fn, tags={"broadcast"})


@generator
def _where() -> Iterator[OpCase]:
    d = Data("where")
    fn = torch.where
    yield make("where", "7x13", [d.b(7, 13), d.f(7, 13), d.f(7, 13)], fn)
    yield make("where", "bcast-3x5-7x1x5-0d", [d.b(3, 5), d.f(7, 1, 5), d.f()], fn,
               tags={"broadcast"})
    yield make("where", "bcast-cond-7x1x1", [d.b(7, 1, 1), d.f(3, 1), d.f(1, 4)], fn,
               tags={"broadcast"})
    yield make("where", "0d", [np.array(False), d.f(), d.f()], fn)
    yield make("where", "i64-T", [transposed(d.b(4, 3)), d.i(4, 3), transposed(d.i(4, 3))], fn)
    yield make("where", "edge", [d.b(17), edge(), edge()[::-1].copy()], fn, tags={"edge"})
    yield make("where", "f64-0x2", [d.b(0, 2), d.f(0, 2, dtype=F64), d.f(2, dtype=F64)], fn)
    yield make("where", "bool", [d.b(5), d.b(5), d.b(1)], fn, tags={"broadcast"})


# ---- reductions and normalisations --------------------------------------------------------


def _reduce_fn(fn, dims, keepdim, **kw):
    """torch reduction over a dims tuple (None: all), as the IR's dims attribute means it."""
    def call(x):
        if dims is None:
            out = fn(x, **kw)
            return out.reshape((1,) * x.ndim) if keepdim else out
        return fn(x, dim=dims, keepdim=keepdim, **kw)
    return call


def _prod(x, dim=None, keepdim=False, **kw):
    """torch.prod takes one dim at a time: reduce the highest first."""
    if dim is None:
        return torch.prod(x, **kw)
    for d in sorted((d % x.ndim for d in dim), reverse=True):
        x = torch.prod(x, dim=d, keepdim=keepdim, **kw)
    return x


REDUCE_TORCH = {"sum": torch.sum, "mean": torch.mean, "prod": _prod, "amax": torch.amax,
                "amin": torch.amin, "any": torch.any, "all": torch.all}
REDUCE_INT = {"sum", "prod", "amax", "amin", "any", "all"}
KEEP_DTYPE = {"sum", "prod"}   # the IR keeps the input dtype; torch would widen ints to i64


@generator
def _reductions() -> Iterator[OpCase]:
    for op, fn in REDUCE_TORCH.items():
        d = Data(op)
        rnd = d.b if op in ("any", "all") else d.f
        variants = [("all", rnd(7, 13), None, False), ("dim1", rnd(7, 13), (1,), False),
                    ("dims0-2-keep", rnd(3, 5, 4), (0, 2), True),
                    ("neg-dim", rnd(4, 6), (-1,), True),
                    ("all-keep", rnd(2, 3), None, True), ("0d", rnd(), None, False),
                    ("T", transposed(rnd(6, 5)), (0,), False),
                    ("size0-kept", rnd(0, 4), (1,), False)]
        if op in ("sum", "mean", "prod", "any", "all"):
            variants.append(("size0-reduced", rnd(3, 0), (1,), False))
        if op in ("any", "all"):
            variants.append(("f32", d.f(5, 4) * d.b(5, 4), (1,), False))
        else:
            variants += [("edge", edge(), None, False), ("edge-rows", edge()[:16].reshape(4, 4),
                                                        (1,), False),
                         ("f64", d.f(5, 7, dtype=F64), (0,), True)]
        if op in REDUCE_INT:
            variants += [("i64", d.i(6, 5), (1,), False),
                         ("i32", d.i(4, 3, dtype=I32), None, False)]
        if op == "sum":
            variants.append(("large", d.f(4, 50000), (1,), False))
        if op in ("sum", "mean"):   # float32 accumulation overflows past 3.4e38, as in torch
            huge = np.full((3, 64), 1e37, F32)
            huge[1] *= -1
            huge[2, ::2] *= -1
            variants.append(("overflow", huge, (1,), False))
            variants.append(("f16-overflow", np.full((2, 4), 6e4, F16), (1,), False))
        for label, x, dims, keep in variants:
            kw = {"dtype": TORCH_DTYPE[str(DType.from_numpy(x.dtype))]} if op in KEEP_DTYPE else {}
            yield make(op, label, [x], _reduce_fn(fn, dims, keep, **kw),
                       {"dims": dims, "keepdim": keep}, {"large"} if label == "large" else ())
    d = Data("var")
    for label, x, dims, corr, keep in [
            ("all", d.f(7, 13), None, 1, False), ("dim1-c0", d.f(7, 13), (1,), 0, False),
            ("dims-keep-c2", d.f(3, 5, 4), (0, 2), 2, True),
            ("T", transposed(d.f(6, 5)), (0,), 1, False),
            ("one-elem", d.f(3, 1), (1,), 1, False), ("edge", edge(), None, 1, False),
            ("f64", d.f(5, 6, dtype=F64, lo=1e3, hi=1e3 + 1), (1,), 1, True),
            ("offset-mean", d.f(4, 64, lo=1e4, hi=1e4 + 1), (1,), 1, False)]:
        yield make("var", label, [x], lambda x, d_=dims, c=corr, k=keep:
                   torch.var(x, dim=d_, correction=c, keepdim=k),
                   {"dims": dims, "correction": corr, "keepdim": keep})
    d = Data("argmax")
    ties = np.array([[1, 3, 3, 0], [2, 2, 2, 2], [-1, 5, 0, 5]], I64)
    for label, x, dim, keep in [("none", d.f(7, 13), None, False), ("dim1", d.f(7, 13), 1, False),
                                ("dim0-keep", d.f(5, 3), 0, True),
                                ("none-keep", d.f(2, 3), None, True),
                                ("neg", transposed(d.f(4, 6)), -1, False),
                                ("0d", d.f(), None, False),
                                ("ties-i64", ties, 1, False),
                                ("i32-none", d.i(13, dtype=I32), None, False),
                                ("edge", edge(), 0, False),
                                ("nan-rows", edge()[2:14].reshape(3, 4), 1, False),
                                ("f64", d.f(3, 4, dtype=F64), 0, False),
                                ("size0-kept", d.f(0, 3), 1, False)]:
        yield make("argmax", label, [x],
                   lambda x, d_=dim, k=keep: torch.argmax(x, dim=d_, keepdim=k),
                   {"dim": dim, "keepdim": keep})
    d = Data("cumsum")
    for label, x, dim in [("dim0", d.f(7, 13), 0),
                          ("dim1", d.f(7, 13), 1),
                          ("neg", d.f(2, 3, 4), -1),
                          ("T", transposed(d.f(5, 6)), 1),
                          ("edge", edge(), 0),
                          ("i64", d.i(4, 9), 1),
                          ("i32", d.i(11, dtype=I32), 0), ("f64", d.f(6, dtype=F64), 0),
                          ("size0", d.f(3, 0), 1), ("large", d.f(20000), 0)]:
        dt = TORCH_DTYPE[str(DType.from_numpy(x.dtype))]
        yield make("cumsum", label, [x], lambda x, dim=dim, dt=dt: torch.cumsum(x, dim, dtype=dt),
                   {"dim": dim}, {"large"} if label == "large" else ())


@generator
def _softmaxes() -> Iterator[OpCase]:
    for op, fn in {"softmax": torch.softmax, "log_softmax": torch.log_softmax}.items():
        d = Data(op)
        big = d.f(3, 5, lo=-1e4, hi=1e4)
        for label, x, dim in [("dim1", d.f(7, 13), 1), ("dim0", d.f(7, 13), 0),
                              ("neg-3d", d.f(2, 3, 5), -1), ("T", transposed(d.f(4, 6)), 1),
                              ("huge-logits", big, 1), ("edge-rows", edge()[:16].reshape(4, 4), 1),
                              ("all-neginf-row", np.array([[-INF, -INF], [0.5, -INF]], F32), 1),
                              ("f64", d.f(3, 7, dtype=F64), 1), ("1d", d.f(13), 0),
                              ("size0", d.f(0, 4), 1), ("large", d.f(8, 4096, lo=-8, hi=8), 1)]:
            yield make(op, label, [x], lambda x, dim=dim, fn=fn: fn(x, dim), {"dim": dim},
                       {"large"} if label == "large" else ())


@generator
def _layer_norm() -> Iterator[OpCase]:
    d = Data("layer_norm")
    for label, shape, norm, affine in [("7x13-w-b", (7, 13), (13,), 2),
                                       ("3d-last2", (2, 3, 5), (3, 5), 2),
                                       ("no-affine", (4, 6), (6,), 0),
                                       ("weight-only", (5, 7), (7,), 1),
                                       ("1d", (13,), (13,), 2), ("rows1", (1, 4, 9), (9,), 2)]:
        x = d.f(*shape, lo=-3, hi=5)
        params = [d.f(*norm, lo=0.5, hi=1.5), d.f(*norm)][:affine]
        yield make("layer_norm", label, [x] + params,
                   lambda x, *p, n=norm: F.layer_norm(x, n, *p, eps=1e-5),
                   {"normalized_shape": norm})
    yield make("layer_norm", "T-eps", [transposed(d.f(6, 5)), d.f(5), d.f(5)],
               lambda x, w, b: F.layer_norm(x, (5,), w, b, eps=1e-3),
               {"normalized_shape": (5,), "eps": 1e-3})
    yield make("layer_norm", "f64-offset", [d.f(3, 8, dtype=F64, lo=1e3, hi=1e3 + 1)],
               lambda x: F.layer_norm(x, (8,)), {"normalized_shape": (8,)})
    yield make("layer_norm", "edge-row", [edge()[:16].reshape(2, 8)],
               lambda x: F.layer_norm(x, (8,)), {"normalized_shape": (8,)}, {"edge"})


def _bn_inputs(d: Data, x: np.ndarray, dtype=F32):
    c = x.shape[1]
    return [x, d.f(c, dtype=dtype, lo=0.5, hi=1.5), d.f(c, dtype=dtype),
            d.f(c, dtype=dtype), d.pos(c, dtype=dtype)]


@generator
def _batch_norms() -> Iterator[OpCase]:
    d = Data("batch_norm")
    xs = [("4d", d.f(2, 3, 5, 4)), ("2d", d.f(7, 13)), ("3d-T", transposed(d.f(4, 5, 6))),
          ("f64", d.f(3, 2, 4, dtype=F64)), ("n1", d.f(1, 4, 3, 3))]
    for label, x in xs:
        ins = _bn_inputs(d, x, x.dtype.type)
        yield make("batch_norm", label, ins, lambda x, w, b, m, v: F.batch_norm(
            x, m, v, w, b, training=False, eps=1e-5))
    yield make("batch_norm", "eps", _bn_inputs(d, d.f(4, 3)), lambda x, w, b, m, v: F.batch_norm(
        x, m, v, w, b, training=False, eps=0.1), {"eps": 0.1})

    def train(momentum, eps):
        def fn(x, w, b, m, v):
            m, v = m.clone(), v.clone()
            out = F.batch_norm(x, m, v, w, b, training=True, momentum=momentum, eps=eps)
            return out, m, v
        return fn
    d = Data("batch_norm_train")
    for label, x in xs[:4]:
        yield make("batch_norm_train", label, _bn_inputs(d, x, x.dtype.type), train(0.1, 1e-5))
    yield make("batch_norm_train", "momentum-eps", _bn_inputs(d, d.f(5, 3, 2)), train(0.3, 1e-3),
               {"momentum": 0.3, "eps": 1e-3})
    yield make("batch_norm_train", "offset", _bn_inputs(d, d.f(8, 2, 3, lo=100, hi=101)),
               train(0.1, 1e-5))


# ---- views and data movement --------------------------------------------------------------


def _slice_fn(dim, start, end, step):
    def fn(x):
        return x[(slice(None),) * (dim % x.ndim) + (slice(start, end, step),)]
    return fn


@generator
def _views() -> Iterator[OpCase]:
    d = Data("views")
    x3, xt = d.f(2, 3, 4), transposed(d.f(6, 4))
    for label, x, shape in [("3d-to-2d", x3, (6, 4)),
                            ("to-1d", xt, (24,)),
                            ("0d-to-1x1", d.f(), (1, 1)),
                            ("1-to-0d", d.f(1), ()), ("size0", d.f(0, 3), (3, 0, 1)),
                            ("i64", d.i(12), (3, 2, 2)),
                            ("bool-rev", reversed_(d.b(2, 6)), (4, 3))]:
        yield make("reshape", label, [x], lambda x, s=shape: x.reshape(s), {"shape": shape})
    for label, x, s, e in [("default", x3, 0, -1),
                           ("1-2", d.f(2, 3, 4, 5), 1, 2),
                           ("0d", d.f(), 0, -1),
                           ("T-neg", xt, -2, -1),
                           ("same", x3, 1, 1),
                           ("i32", d.i(3, 2, 2, dtype=I32), 1, -1)]:
        yield make("flatten", label, [x], lambda x, s=s, e=e: torch.flatten(x, s, e),
                   {"start_dim": s, "end_dim": e})
    for label, x, dims in [("3d", x3, (2, 0, 1)),
                           ("2d-T", xt, (1, 0)),
                           ("neg", d.f(2, 3, 4, 5), (-1, 0, 2, 1)),
                           ("0d", d.f(), ()), ("i64-size0", d.i(0, 3, 2), (1, 2, 0))]:
        yield make("permute", label, [x], lambda x, p=dims: x.permute(p), {"dims": dims})
    for label, x, a, b in [("3d", x3, 0, 2), ("T", xt, 0, 1), ("neg", d.f(2, 3, 4, 5), -1, 1),
                           ("same", d.f(3, 2), 1, 1), ("bool", d.b(3, 2), 0, 1)]:
        yield make("transpose", label, [x], lambda x, a=a, b=b: x.transpose(a, b),
                   {"dim0": a, "dim1": b})
    for label, x, shape in [("1-to-5", d.f(3, 1), (3, 5)), ("new-dims", d.f(4), (2, 3, 4)),
                            ("0d", d.f(), (3, 2)),
                            ("same", xt, (6, 4)),
                            ("size0", d.f(1, 3), (0, 3)),
                            ("i64", d.i(1, 1, 2), (4, 3, 2))]:
        yield make("expand", label, [x], lambda x, s=shape: x.expand(s), {"shape": shape})
    for label, x, attrs in [("dim0", d.f(7, 13), {"dim": 0, "start": 2, "end": 5}),
                            ("step", d.f(7, 13), {"dim": 1, "start": 1, "end": 12, "step": 3}),
                            ("neg-start", d.f(7, 13), {"dim": -1, "start": -4}),
                            ("end-past", xt, {"dim": 0, "start": 3, "end": 100}),
                            ("neg-end", x3, {"dim": 2, "start": 0, "end": -1, "step": 2}),
                            ("empty", d.f(5, 3), {"dim": 0, "start": 4, "end": 2}),
                            ("i64", d.i(9), {"start": 1, "end": 8, "step": 2})]:
        a = {"dim": 0, "start": 0, "end": None, "step": 1} | attrs
        yield make("slice", label, [x], _slice_fn(a["dim"], a["start"], a["end"], a["step"]), attrs)
    for label, x, dim, i in [("dim0", d.f(7, 13), 0, 3), ("dim1-neg-index", d.f(7, 13), 1, -1),
                             ("to-0d", d.f(5), 0, 2),
                             ("T", xt, -1, 2),
                             ("i64", d.i(3, 4, 2), 1, 0)]:
        yield make("select", label, [x], lambda x, dim=dim, i=i: x.select(dim, i),
                   {"dim": dim, "index": i})
    for label, x, dims in [("all", d.f(1, 3, 1, 4), None), ("one", d.f(1, 3, 1, 4), (2,)),
                           ("mixed-neg", d.f(1, 3, 1), (-1, 0)),
                           ("to-0d", d.f(1, 1), None),
                           ("0d", d.f(), None),
                           ("T", transposed(d.f(3, 1)), (1,))]:
        yield make("squeeze", label, [x],
                   lambda x, p=dims: x.squeeze() if p is None else x.squeeze(p),
                   {"dims": dims})
    for label, x, dim in [("front", x3, 0), ("end-neg", x3, -1), ("mid", xt, 1), ("0d", d.f(), 0),
                          ("neg2", d.i(3, 4), -2)]:
        yield make("unsqueeze", label, [x], lambda x, dim=dim: x.unsqueeze(dim), {"dim": dim})
    for label, dim in [("tril", 0), ("tril-neg", -2), ("tril-pos", 3)]:
        for op, fn in (("tril", torch.tril), ("triu", torch.triu)):
            label = label.replace("tril", op)
            yield make(op, label, [d.f(5, 7)], lambda x, fn=fn, k=dim: fn(x, k), {"diagonal": dim})
    for op, fn in (("tril", torch.tril), ("triu", torch.triu)):
        yield make(op, "batched-T", [transposed(d.f(2, 4, 3))], fn)
        yield make(op, "i64-tall", [d.i(6, 3)], lambda x, fn=fn: fn(x, -1), {"diagonal": -1})
        yield make(op, "bool", [d.b(3, 3)], fn)


@generator
def _joins() -> Iterator[OpCase]:
    d = Data("joins")
    for label, xs, dim in [("dim0", [d.f(2, 3), d.f(5, 3), d.f(1, 3)], 0),
                           ("dim-neg", [d.f(4, 2), transposed(d.f(4, 3))], -1),
                           ("size0", [d.f(0, 3), d.f(2, 3)], 0), ("one", [d.f(3)], 0),
                           ("i64-3d", [d.i(2, 2, 2), d.i(2, 1, 2)], 1),
                           ("bool", [d.b(2), d.b(3)], 0)]:
        yield make("cat", label, xs, lambda *xs, dim=dim: torch.cat(xs, dim), {"dim": dim})
    for label, xs, dim in [("dim0", [d.f(2, 3), d.f(2, 3), d.f(2, 3)], 0),
                           ("dim-end", [d.f(4, 2), transposed(d.f(4, 2))], 2),
                           ("neg", [d.f(3, 5), d.f(3, 5)], -1), ("0d", [d.f(), d.f()], 0),
                           ("i64", [d.i(3), d.i(3)], 1)]:
        yield make("stack", label, xs, lambda *xs, dim=dim: torch.stack(xs, dim), {"dim": dim})
    for label, x, dim, sizes in [("dim0", d.f(7, 3), 0, (2, 5)),
                                 ("dim1-3way", d.f(4, 13), 1, (6, 4, 3)),
                                 ("neg-T", transposed(d.f(5, 4)), -1, (1, 3)),
                                 ("with-0", d.f(6), 0, (0, 6)),
                                 ("i64", d.i(3, 4), 0, (1, 1, 1))]:
        yield make("split", label, [x], lambda x, dim=dim, s=sizes: torch.split(x, list(s), dim),
                   {"dim": dim, "sizes": sizes})


@generator
def _indexing() -> Iterator[OpCase]:
    d = Data("indexing")
    x = d.f(5, 7)
    for label, x, idx, dim in [("dim1", x, d.i(5, 4, lo=0, hi=7), 1),
                               ("dim0", x, d.i(3, 7, lo=0, hi=5), 0),
                               ("smaller", x, d.i(2, 3, lo=0, hi=5), 0),
                               ("neg-dim-T", transposed(d.f(4, 6)),
                                                                        d.i(4, 2, lo=0, hi=6), -1),
                               ("3d-i64", d.i(2, 3, 4), d.i(2, 3, 5, lo=0, hi=4), 2),
                               ("i32-index", d.f(6), d.i(9, dtype=I32, lo=0, hi=6), 0)]:
        if idx.dtype == I32:
            continue   # torch.gather wants int64 indices; the tracer casts
        yield make("gather", label, [x, idx], lambda x, i, dim=dim: torch.gather(x, dim, i),
                   {"dim": dim})
    for label, x, idx, dim in [("dim0", d.f(7, 3), np.array([0, 6, 2, 2], I64), 0),
                               ("dim1-T", transposed(d.f(4, 9)), d.i(5, lo=0, hi=9), 1),
                               ("neg", d.f(2, 3, 4), np.array([3, 0], I64), -1),
                               ("empty", d.f(4, 2), np.zeros(0, I64), 0),
                               ("i64", d.i(6, 2), np.array([5, 1], I64), 0)]:
        yield make("index_select", label, [x, idx],
                   lambda x, i, dim=dim: torch.index_select(x, dim, i), {"dim": dim})
    w = d.f(11, 4)
    for label, w_, idx, pad in [("2d", w, d.i(3, 5, lo=0, hi=11), -1),
                                ("1d", w, d.i(7, lo=0, hi=11), -1),
                                ("0d", w, np.array(4, I64), -1),
                                ("padding-idx", w, d.i(6, lo=0, hi=11), 2),
                                ("T-weight", transposed(d.f(9, 3)), d.i(2, 2, lo=0, hi=9), -1)]:
        yield make("embedding", label, [w_, idx], lambda w, i, p=pad: F.embedding(
            i, w, padding_idx=None if p == -1 else p), {"padding_idx": pad})


@generator
def _pad() -> Iterator[OpCase]:
    d = Data("pad")
    for label, x, pads, value in [("last", d.f(3, 5), (1, 2), 0.0),
                                  ("two-dims", d.f(3, 5), (1, 0, 2, 3), 0.0),
                                  ("value", d.f(2, 3, 4), (0, 1, 1, 1, 2, 0), -1.5),
                                  ("negative", d.f(4, 7), (-2, 1, 1, -3), 0.0),
                                  ("crop-all", d.f(3, 4), (-1, -1), 0.0),
                                  ("T", transposed(d.f(5, 3)), (2, 2, 2, 2), 3.0),
                                  ("i64", d.i(3, 4), (1, 1), 7),
                                  ("size0", d.f(0, 3), (1, 1, 1, 1), 1.0)]:
        yield make("pad", label, [x], lambda x, p=pads, v=value: F.pad(x, p, value=v),
                   {"pads": pads, "value": value})


# ---- creation -----------------------------------------------------------------------------


@generator
def _creation() -> Iterator[OpCase]:
    for label, shape, value, dt in [("f32", (7, 13), 1.5, "f32"), ("0d", (), -2.0, "f32"),
                                    ("i64", (3, 4), 7, "i64"), ("bool", (2, 3), True, "bool"),
                                    ("inf", (4,), INF, "f32"), ("size0", (0, 3), 1.0, "f64"),
                                    ("i32", (5,), -3, "i32")]:
        yield make("full", label, [], lambda s=shape, v=value, t=TORCH_DTYPE[dt]: torch.full(
            s, v, dtype=t), {"shape": shape, "value": value, "dtype": dt})
    for label, a in [("end", {"end": 7}), ("start-step", {"start": 2, "end": 20, "step": 3}),
                     ("neg-step", {"start": 5, "end": -4, "step": -2}),
                     ("float", {"start": 0.0, "end": 1.0, "step": 0.1, "dtype": "f32"}),
                     ("f64", {"start": -1.5, "end": 2.0, "step": 0.25, "dtype": "f64"}),
                     ("i32", {"end": 13, "dtype": "i32"}), ("empty", {"start": 3, "end": 3})]:
        full = {"start": 0, "step": 1, "dtype": "i64"} | a
        yield make("arange", label, [], lambda f=full: torch.arange(
            f["start"], f["end"], f["step"], dtype=TORCH_DTYPE[f["dtype"]]), a)
    for label, value, shape, dt in [("scalar", 2.0, (), "f32"),
                                    ("tuple", (1.0, -2.0, 3.5, 0.25), (2, 2), "f32"),
                                    ("i64", (3, -1, 4), (3,), "i64"), ("bool", True, (), "bool"),
                                    ("f64-1", 0.1, (1,), "f64"), ("neg-inf", -INF, (), "f32"),
                                    ("nan", NAN, (), "f32")]:
        yield make("constant", label, [], lambda v=value, s=shape, t=TORCH_DTYPE[dt]: torch.tensor(
            v, dtype=t).reshape(s), {"value": value, "shape": shape, "dtype": dt})


# ---- contractions, pooling, attention -----------------------------------------------------


@generator
def _matmuls() -> Iterator[OpCase]:
    d = Data("matmul")
    for label, a, b in [("2d", d.f(7, 13), d.f(13, 5)), ("1d-2d", d.f(6), d.f(6, 4)),
                        ("2d-1d", d.f(3, 6), d.f(6)), ("1d-1d", d.f(13), d.f(13)),
                        ("batch-bcast", d.f(2, 1, 3, 4), d.f(5, 4, 6)),
                        ("3d-2d", d.f(3, 5, 7), d.f(7, 2)),
                        ("T", transposed(d.f(5, 4)), transposed(d.f(4, 3))),
                        ("k0", d.f(3, 0), d.f(0, 4)), ("m0", d.f(0, 3), d.f(3, 2)),
                        ("f64", d.f(4, 6, dtype=F64), d.f(6, 3, dtype=F64)),
                        ("i64", d.i(3, 4), d.i(4, 2)),
                        ("large", d.f(64, 128), d.f(128, 96))]:
        yield make("matmul", label, [a, b], torch.matmul,
                   tags={"large"} if label == "large" else ())
    d = Data("linear")
    for label, x, w, b in [("2d-bias", d.f(7, 13), d.f(5, 13), d.f(5)),
                           ("no-bias", d.f(4, 6), d.f(3, 6), None),
                           ("3d", d.f(2, 3, 5), d.f(4, 5), d.f(4)),
                           ("1d", d.f(6), d.f(2, 6), d.f(2)),
                           ("T-weight", d.f(3, 4), transposed(d.f(5, 4)), d.f(5)),
                           ("f64", d.f(3, 4, dtype=F64), d.f(2, 4, dtype=F64), d.f(2, dtype=F64)),
                           ("in0", d.f(3, 0), d.f(2, 0), d.f(2)),
                           # a few rows into many columns: numba-cpu forms w @ x.T
                           ("rows", d.f(40, 13), d.f(70, 13), d.f(70)),
                           ("rows-T-no-bias", transposed(d.f(9, 33)), d.f(100, 33), None)]:
        yield make("linear", label, [x, w] + ([] if b is None else [b]), F.linear)
    d = Data("addmm")
    for label, bias, a, b, attrs in [("row-bias", d.f(5), d.f(7, 13), d.f(13, 5), {}),
                                     ("full-bias", d.f(3, 4), d.f(3, 6), d.f(6, 4), {}),
                                     ("beta-alpha", d.f(1, 4), d.f(2, 3), d.f(3, 4),
                                      {"beta": 0.5, "alpha": 2.0}),
                                     ("T", d.f(4), transposed(d.f(3, 5)), transposed(d.f(5, 4)),
                                      {}),
                                     ("0d-bias-f64", d.f(dtype=F64), d.f(2, 3, dtype=F64),
                                      d.f(3, 2, dtype=F64), {"beta": 0.0})]:
        yield make("addmm", label, [bias, a, b], lambda c, a, b, k=attrs: torch.addmm(
            c, a, b, beta=k.get("beta", 1.0), alpha=k.get("alpha", 1.0)), attrs)


@generator
def _convs() -> Iterator[OpCase]:
    d = Data("conv")
    for label, x, w, bias, s, p, dil, g in [
            ("basic", d.f(2, 3, 7, 7), d.f(4, 3, 3, 3), True, 1, 0, 1, 1),
            ("stride-pad", d.f(1, 2, 13, 7), d.f(3, 2, 3, 2), True, (2, 1), (1, 2), 1, 1),
            ("dilation", d.f(1, 2, 9, 9), d.f(2, 2, 3, 3), False, 1, 1, 2, 1),
            ("groups", d.f(2, 4, 6, 5), d.f(6, 2, 3, 3), True, 1, 1, 1, 2),
            ("depthwise", d.f(1, 3, 5, 5), d.f(3, 1, 3, 3), True, 2, 1, 1, 3),
            ("1x1-T", transposed(d.f(2, 3, 4, 5)), d.f(5, 3, 1, 1), True, 1, 0, 1, 1),
            ("f64", d.f(1, 2, 5, 6, dtype=F64), d.f(2, 2, 2, 3, dtype=F64), True, 1, 0, 1, 1),
            ("large", d.f(2, 16, 32, 32), d.f(32, 16, 3, 3), True, 1, 1, 1, 1)]:
        pair = [v if isinstance(v, tuple) else (v, v) for v in (s, p, dil)]
        attrs = dict(zip(("stride", "padding", "dilation"), pair), groups=g)
        ins = [x, w] + ([d.f(w.shape[0], dtype=x.dtype.type)] if bias else [])
        yield make("conv2d", label, ins, lambda x, w, b=None, a=attrs: F.conv2d(
            x, w, b, a["stride"], a["padding"], a["dilation"], a["groups"]), attrs,
            {"large"} if label == "large" else ())
    for label, x, w, bias, s, p, dil, g in [
            ("basic", d.f(2, 3, 13), d.f(4, 3, 3), True, 1, 0, 1, 1),
            ("stride-pad-dil", d.f(1, 2, 13), d.f(3, 2, 3), False, 2, 2, 2, 1),
            ("groups-T", transposed(d.f(2, 4, 7)), d.f(4, 2, 2), True, 1, 1, 1, 2)]:
        attrs = {"stride": (s,), "padding": (p,), "dilation": (dil,), "groups": g}
        ins = [x, w] + ([d.f(w.shape[0])] if bias else [])
        yield make("conv1d", label, ins, lambda x, w, b=None, a=attrs: F.conv1d(
            x, w, b, a["stride"], a["padding"], a["dilation"], a["groups"]), attrs)


@generator
def _pools() -> Iterator[OpCase]:
    d = Data("pool")
    for label, x, k, s, p, dil, ceil in [
            ("2x2", d.f(2, 3, 8, 8), (2, 2), (2, 2), (0, 0), (1, 1), False),
            ("3x3-s2-p1", d.f(1, 2, 7, 13), (3, 3), (2, 2), (1, 1), (1, 1), False),
            ("ceil", d.f(1, 2, 7, 7), (2, 2), (2, 2), (0, 0), (1, 1), True),
            ("ceil-pad", d.f(1, 1, 6, 9), (3, 2), (2, 3), (1, 1), (1, 1), True),
            ("dilation", d.f(1, 2, 9, 9), (3, 3), (1, 1), (1, 1), (2, 2), False),
            ("3d-input-T", transposed(d.f(3, 6, 5)), (2, 2), (1, 2), (0, 1), (1, 1), False),
            ("edge", edge()[:16].reshape(1, 1, 4, 4), (2, 2), (2, 2), (0, 0), (1, 1), False),
            # windows all inside, without padding: numba-cpu's row-at-a-time paths
            ("2x2-odd-sizes", d.f(2, 3, 7, 9), (2, 2), (2, 2), (0, 0), (1, 1), False),
            ("3x2-s2-inside", d.f(1, 2, 9, 7), (3, 2), (2, 2), (0, 0), (1, 1), False),
            ("3x3-s1-inside", d.f(2, 2, 6, 11), (3, 3), (1, 1), (0, 0), (1, 1), False),
            ("edge-3x3", edge()[:16].reshape(1, 1, 4, 4), (3, 3), (1, 1), (0, 0), (1, 1), False),
            ("all-neg-pad", -d.pos(1, 1, 3, 3), (2, 2), (2, 2), (1, 1), (1, 1), False),
            ("f64", d.f(1, 1, 5, 5, dtype=F64), (3, 3), (2, 2), (1, 1), (1, 1), True)]:
        attrs = {"kernel_size": k, "stride": s, "padding": p, "dilation": dil, "ceil_mode": ceil}
        yield make("max_pool2d", label, [x], lambda x, k=k, s=s, p=p, dl=dil, c=ceil: F.max_pool2d(
            x, k, s, p, dl, ceil_mode=c), attrs, {"edge"} if label.startswith("edge") else ())
    for label, x, k, s, p, ceil, cip, div in [
            ("2x2", d.f(2, 3, 8, 8), (2, 2), (2, 2), (0, 0), False, True, None),
            ("3x3-pad", d.f(1, 2, 7, 13), (3, 3), (2, 2), (1, 1), False, True, None),
            ("pad-exclude", d.f(1, 2, 7, 7), (3, 3), (2, 2), (1, 1), False, False, None),
            ("ceil", d.f(1, 1, 7, 7), (2, 2), (2, 2), (0, 0), True, True, None),
            ("ceil-pad", d.f(1, 1, 6, 9), (3, 2), (2, 3), (1, 1), True, True, None),
            ("ceil-pad-exclude", d.f(1, 1, 6, 9), (3, 2), (2, 3), (1, 1), True, False, None),
            ("divisor", d.f(1, 2, 6, 6), (3, 3), (3, 3), (1, 1), False, True, 4),
            ("3d-input-T", transposed(d.f(3, 6, 5)), (2, 3), (1, 2), (1, 1), False, True, None),
            ("f64", d.f(1, 1, 5, 5, dtype=F64), (2, 2), (1, 1), (0, 0), False, True, None)]:
        attrs = {"kernel_size": k, "stride": s, "padding": p, "ceil_mode": ceil,
                 "count_include_pad": cip, "divisor_override": div}
        yield make("avg_pool2d", label, [x], lambda x, k=k, s=s, p=p, c=ceil, i=cip, v=div:
                   F.avg_pool2d(x, k, s, p, c, i, v), attrs)
    for label, x, out in [("7-to-3", d.f(2, 3, 7, 7), (3, 3)), ("global", d.f(2, 4, 5, 6), (1, 1)),
                          ("5x13-to-2x4", d.f(1, 2, 5, 13), (2, 4)),
                          ("identity", d.f(1, 1, 4, 4), (4, 4)),
                          ("upsample-T", transposed(d.f(3, 2, 3)), (4, 5)),
                          ("f64", d.f(1, 1, 6, 6, dtype=F64), (4, 4))]:
        yield make("adaptive_avg_pool2d", label, [x], lambda x, o=out: F.adaptive_avg_pool2d(x, o),
                   {"output_size": out})


@generator
def _attention() -> Iterator[OpCase]:
    d = Data("sdpa")

    def sdpa(causal=False, scale=None):
        def fn(q, k, v, mask=None):
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal,
                                                  scale=scale)
        return fn
    bool_mask = d.b(1, 5, 7)
    bool_mask[0, 0] = False   # a fully masked row gives zeros (torch's _safe_softmax)
    neginf_mask = np.where(d.b(3, 5), 0.0, -INF).astype(F32)
    neginf_mask[1] = -INF
    for label, ins, attrs in [
            ("basic", [d.f(2, 3, 5, 4), d.f(2, 3, 7, 4), d.f(2, 3, 7, 6)], {}),
            ("causal", [d.f(2, 4, 6, 8), d.f(2, 4, 6, 8), d.f(2, 4, 6, 8)], {"is_causal": True}),
            ("causal-L<S", [d.f(1, 3, 5), d.f(1, 7, 5), d.f(1, 7, 5)], {"is_causal": True}),
            ("scale", [d.f(2, 5, 4), d.f(2, 5, 4), d.f(2, 5, 4)], {"scale": 0.3}),
            ("bool-mask", [d.f(2, 5, 4), d.f(2, 7, 4), d.f(2, 7, 3), bool_mask[0]], {}),
            ("float-mask", [d.f(2, 2, 5, 4), d.f(2, 2, 7, 4), d.f(2, 2, 7, 4), d.f(5, 7)], {}),
            ("neginf-mask", [d.f(3, 4), d.f(5, 4), d.f(5, 2), neginf_mask], {}),
            ("T-f64", [transposed(d.f(3, 4, dtype=F64)), d.f(6, 4, dtype=F64),
                       transposed(d.f(6, 2, dtype=F64))], {"scale": 1.0}),
            ("big-logits", [d.f(1, 4, 8, lo=-30, hi=30), d.f(1, 4, 8, lo=-30, hi=30),
                            d.f(1, 4, 8)], {})]:
        yield make("scaled_dot_product_attention", label, ins,
                   sdpa(attrs.get("is_causal", False), attrs.get("scale")), attrs)


# ---- losses -------------------------------------------------------------------------------


@generator
def _losses() -> Iterator[OpCase]:
    d = Data("mse_loss")
    for red in ("mean", "sum", "none"):
        for label, x, t in [("7x13", d.f(7, 13), d.f(7, 13)), ("0d", d.f(), d.f()),
                            ("T-3d", transposed(d.f(2, 3, 4)), d.f(2, 3, 4)),
                            ("f64", d.f(5, dtype=F64), d.f(5, dtype=F64))]:
            yield make("mse_loss", f"{red}-{label}", [x, t], lambda x, t, r=red: F.mse_loss(
                x, t, reduction=r), {"reduction": red})
    yield make("mse_loss", "edge", [edge(), np.ones(17, F32)], F.mse_loss, tags={"edge"})
    d = Data("nll_loss")
    logp = np.log(torch.softmax(torch.from_numpy(d.f(7, 5)), 1).numpy())
    tgt = d.i(7, lo=0, hi=5)
    ignored = tgt.copy()
    ignored[[1, 4]] = -100
    custom = tgt.copy()
    custom[[0, 2]] = 3
    img = np.log(torch.softmax(torch.from_numpy(d.f(2, 4, 3, 5)), 1).numpy())
    for red in ("mean", "sum", "none"):
        for label, lp, t, ign in [("2d", logp, tgt, -100), ("ignore", logp, ignored, -100),
                                  ("ignore-3", logp, custom, 3), ("1d", logp[0], tgt[0], -100),
                                  ("4d-T", transposed(img), d.i(2, 3, 5, lo=0, hi=4), -100)]:
            yield make("nll_loss", f"{red}-{label}", [lp, t], lambda lp, t, r=red, i=ign:
                       F.nll_loss(lp, t, reduction=r, ignore_index=i),
                       {"reduction": red, "ignore_index": ign})
    all_ignored = np.full(3, -100, I64)
    yield make("nll_loss", "all-ignored", [logp[:3], all_ignored], F.nll_loss, tags={"edge"})


@generator
def _half() -> Iterator[OpCase]:
    """float16 through the common ops: torch computes in float32 inside, NumPy mostly too."""
    d = Data("f16")
    x, y = d.f(7, 13, dtype=F16), d.f(7, 13, dtype=F16)
    for op in ("exp", "tanh", "sigmoid", "relu", "neg"):
        yield make(op, "f16", [x], UNARY_TORCH.get(op, torch.neg))
    for op in ("add", "mul", "div", "maximum", "lt"):
        yield make(op, "f16", [x, y], BINARY_TORCH[op])
    yield make("gelu", "f16", [x], F.gelu)
    yield make("sum", "f16-long", [d.f(3, 5000, dtype=F16)], lambda x: x.sum(1), {"dims": (1,)})
    yield make("mean", "f16", [x], lambda x: x.mean(0), {"dims": (0,)})
    yield make("cumsum", "f16-long", [d.pos(2, 3000, dtype=F16)], lambda x: x.cumsum(1),
               {"dim": 1})
    yield make("softmax", "f16", [x], lambda x: x.softmax(1), {"dim": 1})
    yield make("layer_norm", "f16", [x], lambda x: F.layer_norm(x, (13,)),
               {"normalized_shape": (13,)})
    yield make("matmul", "f16", [x, d.f(13, 5, dtype=F16)], torch.matmul)
    yield make("cast", "f32-to-f16", [d.f(13, lo=-7e4, hi=7e4)], lambda x: x.half(),
               {"dtype": "f16"}, {"edge"})
    yield make("cast", "f16-to-f32", [x], lambda x: x.float(), {"dtype": "f32"})
