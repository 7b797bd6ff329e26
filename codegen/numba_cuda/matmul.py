"""Tiled shared-memory matrix products (matmul, linear, addmm) with an optional epilogue.

Every product is normalised to ``out[batch, m, n] = sum_k A(batch, m, k) * B(batch, k, n)``
with loaders for A and B written as index expressions (linear reads its weight transposed,
1-D operands drop their missing dim, batch dims broadcast). A block computes one T x T
tile, striding over tiles; the epilogue's elementwise ops run on the accumulator before
the single store, so bias, activation and residual cost no extra pass over memory.
"""

from __future__ import annotations

import numpy as np

from .kernel import Kernel, ctor

CONTRACTIONS = ("matmul", "linear", "addmm")


def _geometry(k: Kernel, node, attrs):
    """(batch shape, M, N, K, load_a(b, m, kk), load_b(b, kk, n), finish(acc, b, m, n))."""
    out = k.shape(node.outputs[0])
    if node.op == "matmul":
        a, b = node.inputs
        sa, sb = k.shape(a), k.shape(b)
        M = 1 if len(sa) == 1 else sa[-2]
        N = 1 if len(sb) == 1 else sb[-1]
        K = sa[-1]
        batch = tuple(out[:len(out) - (len(sa) > 1) - (len(sb) > 1)])

        def la(bi, m, kk):
            return k.load(a, [kk]) if len(sa) == 1 else k.bload(a, bi + [m, kk])

        def lb(bi, kk, n):
            return k.load(b, [kk]) if len(sb) == 1 else k.bload(b, bi + [kk, n])
        return batch, M, N, K, la, lb, lambda acc, bi, m, n: acc
    if node.op == "linear":
        x, w = node.inputs[:2]
        sx = k.shape(x)
        M, K, N = int(np.prod(sx[:-1])), sx[-1], k.shape(w)[0]
        bias = node.inputs[2] if len(node.inputs) > 2 else None

        def fin(acc, bi, m, n):
            return f"{acc} + {k.load(bias, [n])}" if bias is not None else acc
        return ((), M, N, K, lambda bi, m, kk: f"{k.arg(x)}[({m}) * {K} + {kk}]",
                lambda bi, kk, n: k.load(w, [n, kk]), fin)
    bias, a, b = node.inputs
    M, K = k.shape(a)
    N = k.shape(b)[1]
    alpha, beta = float(attrs["alpha"]), float(attrs["beta"])

    def fin(acc, bi, m, n):
        return f"{beta!r} * {k.bload(bias, [m, n])} + {alpha!r} * {acc}"
    return ((), M, N, K, lambda bi, m, kk: k.load(a, [m, kk]),
            lambda bi, kk, n: k.load(b, [kk, n]), fin)


def matmul_kernel(k: Kernel, node, attrs, tile: int, epilogue=None) -> int:
    """Write the kernel; ``epilogue(k, value, out_index) -> expression`` maps the product.
    Returns the number of tiles (the grid-stride extent)."""
    batch, M, N, K, la, lb, fin = _geometry(k, node, attrs)
    T = tile
    mt, nt, kt = -(-M // T), -(-N // T), -(-K // T)
    nb = int(np.prod(batch)) if batch else 1
    k.line(f"sa = cuda.shared.array(({T}, {T}), np.float64)")
    k.line(f"sb = cuda.shared.array(({T}, {T}), np.float64)")
    k.line("tx = cuda.threadIdx.x")
    k.line("ty = cuda.threadIdx.y")
    k.line("tile = cuda.blockIdx.x")
    k.line(f"while tile < {nb * mt * nt}:")
    k.indent += 1
    k.line(f"bt = tile // {mt * nt}")
    k.line(f"rem = tile % {mt * nt}")
    k.line(f"m = (rem // {nt}) * {T} + ty")
    k.line(f"n = (rem % {nt}) * {T} + tx")
    bi = k.unravel("bt", batch, "b") if batch else []
    k.line("acc = np.float64(0.0)")
    k.line(f"for kt in range({kt}):")
    k.line(f"    kk = kt * {T} + tx")
    k.line(f"    sa[ty, tx] = {la(bi, 'm', 'kk')} if (m < {M} and kk < {K}) else 0.0")
    k.line(f"    kk = kt * {T} + ty")
    k.line(f"    sb[ty, tx] = {lb(bi, 'kk', 'n')} if (kk < {K} and n < {N}) else 0.0")
    k.line("    cuda.syncthreads()")
    k.line(f"    for e in range({T}):")
    k.line("        acc += sa[ty, e] * sb[e, tx]")
    k.line("    cuda.syncthreads()")
    k.line(f"if m < {M} and n < {N}:")
    k.indent += 1
    k.line(f"flat = (bt * {M} + m) * {N} + n")
    value = fin("acc", bi, "m", "n")
    if epilogue is not None:
        o = k.unravel("flat", k.shape(k.outs[0]))
        value = epilogue(k, value, o)
    k.line(f"r0[flat] = {ctor(k.outs[0].type.dtype)}({value})")
    k.indent -= 1
    k.line("tile += cuda.gridDim.x")
    k.indent -= 1
    return nb * mt * nt
