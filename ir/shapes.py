"""Type rules shared by many ops. Dimensions may be symbols (``"B"``) as well as ints."""

from __future__ import annotations

from .types import DType, Dim, TensorType


class TypeRuleError(ValueError):
    """An op's inputs or attributes do not fit its type rule."""


def norm_dim(d: int, rank: int) -> int:
    if not -max(rank, 1) <= d < max(rank, 1):
        raise TypeRuleError(f"dimension {d} out of range for rank {rank}")
    return d % max(rank, 1)


def norm_dims(dims, rank: int) -> tuple[int, ...]:
    if dims is None:
        return tuple(range(rank))
    if isinstance(dims, int):
        dims = (dims,)
    return tuple(sorted(norm_dim(d, rank) for d in dims))


def broadcast_shapes(*shapes) -> tuple[Dim, ...]:
    rank = max((len(s) for s in shapes), default=0)
    out = []
    for i in range(rank):
        dims = {s[i - rank + len(s)] for s in shapes if i - rank + len(s) >= 0}
        dims.discard(1)
        if not dims:
            out.append(1)
        elif len(dims) == 1:
            out.append(dims.pop())
        else:
            ints = {d for d in dims if isinstance(d, int)}
            if len(ints) > 1:
                raise TypeRuleError(f"shapes {list(shapes)} do not broadcast")
            # a symbol meeting a size: the size wins (the guard on shapes checks it)
            out.append(ints.pop() if ints else sorted(dims)[0])
    return tuple(out)


def same_as(index: int = 0):
    def rule(ts, **_):
        return ts[index]
    return rule


def same_dtypes(ts) -> DType:
    dts = {t.dtype for t in ts}
    if len(dts) != 1:
        raise TypeRuleError(f"operands have different dtypes {sorted(map(str, dts))}; "
                            "insert a cast")
    return dts.pop()


def broadcast(ts, **_):
    return TensorType(same_dtypes(ts), broadcast_shapes(*(t.shape for t in ts)))


def broadcast_to_bool(ts, **_):
    same_dtypes(ts)
    return TensorType(DType.bool, broadcast_shapes(*(t.shape for t in ts)))


def reduce_shape(shape, dims, keepdim: bool) -> tuple[Dim, ...]:
    dims = norm_dims(dims, len(shape))
    if keepdim:
        return tuple(1 if i in dims else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in dims)


def reduction(dtype: DType | None = None):
    def rule(ts, dims=None, keepdim=False, **_):
        return TensorType(dtype or ts[0].dtype, reduce_shape(ts[0].shape, dims, keepdim))
    return rule


def numel(shape) -> int | None:
    n = 1
    for d in shape:
        if not isinstance(d, int):
            return None
        n *= d
    return n


def pool_out(size: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    """Output length of a pooling/conv window, as torch computes it."""
    eff = d * (k - 1) + 1
    if not isinstance(size, int):
        # a symbolic size passes unchanged through a "same" window and nothing else
        if s == 1 and 2 * p == eff - 1:
            return size
        raise TypeRuleError(f"window (kernel {k}, stride {s}, padding {p}) over symbolic "
                            f"size {size}: the output size is not a product of symbols")
    span = size + 2 * p - eff
    out = (-(-span // s) if ceil_mode else span // s) + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


def product_dim(k: int, symbols) -> str:
    """The dimension ``k * s1 * s2 ...`` as text (``"6*B"``, ``"B*S"``): flattening symbolic
    dimensions together makes these. Symbols sort; a factor of 1 is left out."""
    return "*".join(([str(k)] if k != 1 else []) + sorted(symbols))


def dim_factors(d: str) -> tuple[int, tuple[str, ...]]:
    """Inverse of ``product_dim``: ``"6*B*S"`` -> (6, ("B", "S"))."""
    k, syms = 1, []
    for part in d.split("*"):
        if part.isdigit():
            k *= int(part)
        else:
            syms.append(part)
    return k, tuple(syms)


def eval_dim(d, symbols: dict[str, int]):
    """A dimension's size given the bound symbols; unbound symbols stay as they are."""
    if not isinstance(d, str):
        return d
    k, syms = dim_factors(d)
    if not all(sym in symbols for sym in syms):
        return d
    for sym in syms:
        k *= symbols[sym]
    return k
