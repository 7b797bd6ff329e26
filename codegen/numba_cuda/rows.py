"""Block-per-row kernels: softmax, log_softmax, layer_norm and float sum/mean/amax/amin over
trailing dims. A block strides over rows; its threads stride over a row's columns and
combine partial results with a shared-memory tree reduction (float64 accumulation).
"""

from __future__ import annotations

import numpy as np

from ir.shapes import norm_dim, norm_dims

from .kernel import Kernel, ctor

MAX = "{a} if ({a} != {a} or {a} > {b}) else {b}"
MIN = "{a} if ({a} != {a} or {a} < {b}) else {b}"
ADD = "{a} + {b}"


def _trailing(node, attrs, shape):
    """Columns per row when the op reduces a trailing block of dims, else None."""
    if not node.inputs[0].type.dtype.is_float or not shape:
        return None
    if node.op in ("softmax", "log_softmax"):
        return shape[-1] if norm_dim(attrs["dim"], len(shape)) == len(shape) - 1 else None
    if node.op == "layer_norm":
        return int(np.prod(shape[len(shape) - len(attrs["normalized_shape"]):]))
    dims = norm_dims(attrs["dims"], len(shape))
    if dims != tuple(range(len(shape) - len(dims), len(shape))) or not dims:
        return None
    return int(np.prod([shape[d] for d in dims]))


def row_plan(node, attrs, shape):
    """(rows, columns) when ``node`` takes a row kernel."""
    if node.op not in ROW or len(node.outputs) != 1:
        return None
    cols = _trailing(node, attrs, shape)
    if not cols:
        return None
    return int(np.prod(shape)) // cols, cols


def _reduce(k: Kernel, threads: int, cols: int, value, combine: str, init: str) -> str:
    """Lines reducing ``value(j)`` over the row's columns; returns the block-wide result."""
    acc, j, s, res = k.tmp("acc"), k.tmp("j"), k.tmp("s"), k.tmp("red")
    k.line(f"{acc} = np.float64({init})")
    k.line(f"{j} = t")
    k.line(f"while {j} < {cols}:")
    k.line(f"    {acc} = {combine.format(a=value(j), b=acc)}")
    k.line(f"    {j} += {threads}")
    k.line(f"sh[t] = {acc}")
    k.line("cuda.syncthreads()")
    k.line(f"{s} = {threads // 2}")
    k.line(f"while {s} > 0:")
    k.line(f"    if t < {s}:")
    k.line(f"        sh[t] = {combine.format(a='sh[t + ' + s + ']', b='sh[t]')}")
    k.line("    cuda.syncthreads()")
    k.line(f"    {s} //= 2")
    k.line(f"{res} = sh[0]")
    k.line("cuda.syncthreads()")
    return res


def _write_each(k, threads, cols, expr):
    j = k.tmp("j")
    k.line(f"{j} = t")
    k.line(f"while {j} < {cols}:")
    k.line(f"    r0[base + {j}] = {ctor(k.outs[0].type.dtype)}({expr(j)})")
    k.line(f"    {j} += {threads}")


def _x(k, node):
    a0 = k.arg(node.inputs[0])
    return lambda j: f"np.float64({a0}[base + {j}])"


def _softmax(k, node, attrs, threads, cols, log=False):
    x = _x(k, node)
    m = _reduce(k, threads, cols, x, MAX, "-np.inf")
    s = _reduce(k, threads, cols, lambda j: f"M.exp({x(j)} - {m})", ADD, "0.0")
    if log:
        _write_each(k, threads, cols, lambda j: f"{x(j)} - {m} - M.log({s})")
    else:
        _write_each(k, threads, cols, lambda j: f"M.exp({x(j)} - {m}) / {s}")


def _layer_norm(k, node, attrs, threads, cols):
    x = _x(k, node)
    mean = _reduce(k, threads, cols, x, ADD, "0.0") + f" / np.float64({cols})"
    var = _reduce(k, threads, cols, lambda j: f"({x(j)} - {mean}) * ({x(j)} - {mean})",
                  ADD, "0.0")
    extra = [(k.arg(v), op) for v, op in zip(node.inputs[1:], ("*", "+"))]

    def y(j):
        e = f"({x(j)} - {mean}) / M.sqrt({var} / np.float64({cols}) + {attrs['eps']!r})"
        for a, op in extra:
            e = f"({e}) {op} {a}[{j}]"
        return e
    _write_each(k, threads, cols, y)


def _total(combine, init, mean=False):
    def lower(k, node, attrs, threads, cols):
        r = _reduce(k, threads, cols, _x(k, node), combine, init)
        dt = node.inputs[0].type.dtype
        c = "np.float32" if dt.np.itemsize < 4 else f"np.{dt.np.name}"
        value = f"{c}({r}) / {c}({cols})" if mean else r
        k.line("if t == 0:")
        k.line(f"    r0[row] = {ctor(k.outs[0].type.dtype)}({value})")
    return lower


ROW = {
    "softmax": _softmax,
    "log_softmax": lambda k, n, a, t, c: _softmax(k, n, a, t, c, log=True),
    "layer_norm": _layer_norm,
    "sum": _total(ADD, "0.0"),
    "mean": _total(ADD, "0.0", mean=True),
    "amax": _total(MAX, "-np.inf"),
    "amin": _total(MIN, "np.inf"),
}


def row_kernel(k: Kernel, node, attrs, rows: int, cols: int, threads: int) -> None:
    k.line(f"sh = cuda.shared.array({threads}, np.float64)")
    k.line("t = cuda.threadIdx.x")
    k.line("row = cuda.blockIdx.x")
    k.line(f"while row < {rows}:")
    k.indent += 1
    k.line(f"base = row * {cols}")
    ROW[node.op](k, node, attrs, threads, cols)
    k.line("row += cuda.gridDim.x")
    k.indent -= 1
