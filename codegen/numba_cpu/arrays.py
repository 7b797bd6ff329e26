"""Whole-array lowerings (``ARRAY``), keyed by op name, and the helpers they share.

Each lowering writes lines into the njit body and returns the node's output operands;
heavy work goes to the generic kernels (``K.*``). The lowerings live by topic in
``arrays_views`` (views, data movement, creation), ``arrays_reduce`` (reductions,
normalisations, losses, guards) and ``arrays_contract`` (contractions, pooling, attention),
imported at the end of this module so that they register themselves."""

from __future__ import annotations

from ir.graph import Node
from ir.shapes import norm_dims
from ir.types import DType

from .emit import Body, Operand, ctor

ARRAY = {}


def lowers(*names):
    def register(fn):
        for name in names:
            ARRAY[name] = fn
        return fn
    return register


def out_operand(body: Body, node: Node, expr: str, k: int = 0, contiguous=True, alias=None):
    var = body.tmp("v")
    body.line(f"{var} = {expr}")
    return Operand(var, node.outputs[k].type, contiguous, alias)


def reshaped(body: Body, x: Operand, shape) -> str:
    return body.reshape(body.contig(x), x.type.shape, shape)


def acc_ctor(dt: DType) -> str:
    return "np.float64" if dt.is_float else "np.int64"


def empty_of(dt: DType) -> str:
    return f"np.empty(0, {ctor(dt)})"


def flat_or_empty(body, op: Operand | None, dt: DType) -> str:
    return empty_of(dt) if op is None else reshaped(body, op, (-1,))


def canon(body: Body, x: Operand, dims):
    """x as (outer, reduced, inner) C array; transposes (a copy) when dims are not adjacent."""
    s = x.type.shape
    dims = norm_dims(dims, x.type.rank)
    if not dims:
        return f"{body.contig(x)}.reshape((1, 1, {body.prod(s)}))"
    if list(dims) == list(range(dims[0], dims[-1] + 1)):
        return (f"{body.contig(x)}.reshape(({body.prod(s[:dims[0]])}, "
                f"{body.prod(s[dims[0]:dims[-1] + 1])}, {body.prod(s[dims[-1] + 1:])}))")
    keep = [d for d in range(x.type.rank) if d not in dims]
    perm = tuple(keep + list(dims))
    return (f"{permuted_copy(body, x, perm)}"
            f".reshape(({body.prod([s[d] for d in keep])}, {body.prod([s[d] for d in dims])}, 1))")


def permuted_copy(body: Body, x: Operand, perm) -> str:
    """A C-contiguous copy of x with its axes permuted (NumPy: no loop kernel to compile)."""
    out = body.tmp("o")
    body.line(f"{out} = np.ascontiguousarray({body.materialise(x)}.transpose({tuple(perm)}))")
    return out


def broadcast_copy(body: Body, x: Operand, shape) -> str:
    """A C-contiguous copy of x broadcast to ``shape`` (NumPy's right-aligned rules)."""
    out = body.tmp("o")
    body.line(f"{out} = np.ascontiguousarray(np.broadcast_to({body.materialise(x)}, "
              f"{body.shape(shape)}))")
    return out


# the lowerings register themselves in ARRAY when imported
from . import arrays_contract, arrays_reduce, arrays_views  # noqa: E402,F401
