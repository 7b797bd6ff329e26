"""Lowerings of contractions, pooling and attention (``ARRAY`` entries): BLAS
through the generic kernels."""

from __future__ import annotations

import math

from numba import get_num_threads

from ir.errors import LoweringError
from ir.shapes import broadcast_shapes
from ir.types import DType

from .arrays import broadcast_copy, flat_or_empty, lowers, out_operand, reshaped
from .emit import Operand, lit
from .kernels import transposed_pays
from .kernels_conv import units
from .lower import emit_loop


# ---- contractions -----------------------------------------------------------------------


def _batched(body, x: Operand, batch, mat):
    """x broadcast to batch + mat and reshaped to (prod(batch), *mat), C-contiguous."""
    t = x.type
    full = tuple(batch) + tuple(mat)
    if tuple(t.shape) != full:
        src = x
        if t.rank < 2:
            src = Operand(reshaped(body, x, mat), t.with_shape(mat))
        x = Operand(broadcast_copy(body, src, full), t.with_shape(full))
    return (f"{body.contig(x)}.reshape(({body.prod(batch)}, {body.dim(mat[0])}, "
            f"{body.dim(mat[1])}))")


def _mm(dtype: DType) -> str:
    """The 2-D product's function: the kernels' GEMM; float16, which Numba cannot type,
    through NumPy (with its own BLAS pool)."""
    return "np.dot" if dtype == DType.f16 else "K.mm"


@lowers("matmul")
def _matmul(body, node, ins):
    a, b = ins
    t = node.output.type
    sa, sb = a.type.shape, b.type.shape
    ma = (1, sa[0]) if len(sa) == 1 else tuple(sa[-2:])
    mb = (sb[0], 1) if len(sb) == 1 else tuple(sb[-2:])
    batch = broadcast_shapes(tuple(sa[:-2]), tuple(sb[:-2]))
    fn = "K.bmm" if t.dtype.is_float else "K.bmm_loop"
    if not batch and t.dtype.is_float and len(sa) == 2 and len(sb) == 2:
        return [out_operand(body, node, f"{_mm(t.dtype)}({body.contig(a)}, {body.contig(b)})")]
    res = f"{fn}({_batched(body, a, batch, ma)}, {_batched(body, b, batch, mb)})"
    return [out_operand(body, node, f"{res}.reshape({body.shape(t.shape)})")]


@lowers("linear")
def _linear(body, node, ins):
    x, w = ins[:2]
    t = node.output.type
    if not t.dtype.is_float:
        raise LoweringError(f"numba-cpu: linear on {t.dtype} (BLAS is float only)")
    s = x.type.shape
    bias = flat_or_empty(body, ins[2] if len(ins) > 2 else None, t.dtype)
    fn = _linear_kernel(s[:-1], s[-1], w.type.shape[0])
    if len(s) == 2:
        return [out_operand(body, node, f"{fn}({body.contig(x)}, {body.contig(w)}, {bias})")]
    x2 = f"{body.contig(x)}.reshape(({body.prod(s[:-1])}, {body.dim(s[-1])}))"
    res = f"{fn}({x2}, {body.contig(w)}, {bias})"
    return [out_operand(body, node, f"{res}.reshape({body.shape(t.shape)})")]


def _linear_kernel(rows, k, n) -> str:
    """The linear kernel for these sizes: its orientation picked here where they are
    known (no Python choice per call), by ``K.linear`` at run time where one is symbolic.
    The pick depends on the BLAS this process runs products on; the module's cache key is
    a hash of the generated text, so processes on different BLAS keep separate files."""
    if not all(isinstance(d, int) for d in (*rows, k, n)):
        return "K.linear"
    m = math.prod(rows)
    return "K.linear_transposed" if transposed_pays(m, k, n) else "K.linear_rows"


@lowers("addmm")
def _addmm(body, node, ins):
    bias, a, b = ins
    t = node.output.type
    prod = body.tmp("p")
    if t.dtype.is_float:
        body.line(f"{prod} = {_mm(t.dtype)}({body.contig(a)}, {body.contig(b)})")
    else:
        body.line(f"{prod} = K.bmm_loop({reshaped(body, a, (1,) + tuple(a.type.shape))}, "
                  f"{reshaped(body, b, (1,) + tuple(b.type.shape))})[0]")
    beta = lit(node.attrs.get("beta", 1.0), t.dtype)
    alpha = lit(node.attrs.get("alpha", 1.0), t.dtype)
    (o,) = emit_loop(body, t.shape, [bias, Operand(prod, t)],
                     lambda s: [f"{beta} * {s[0]} + {alpha} * {s[1]}"], [t])
    return [Operand(o, t)]


@lowers("conv1d", "conv2d")
def _conv(body, node, ins):
    x, w = ins[:2]
    t = node.output.type
    a = node.attrs
    stride, pad, dil = a["stride"], a["padding"], a["dilation"]
    xs, ws = x.type.shape, w.type.shape
    if node.op == "conv1d":
        x4 = reshaped(body, x, (xs[0], xs[1], 1, xs[2]))
        w4 = reshaped(body, w, (ws[0], ws[1], 1, ws[2]))
        stride, pad, dil = (1,) + tuple(stride), (0,) + tuple(pad), (1,) + tuple(dil)
        oh, ow = 1, t.shape[2]
    else:
        x4, w4 = body.contig(x), body.contig(w)
        oh, ow = t.shape[2], t.shape[3]
    bias = flat_or_empty(body, ins[2] if len(ins) > 2 else None, t.dtype)
    kh, kw = (1, ws[2]) if node.op == "conv1d" else ws[2:]
    work = (xs[0], t.shape[1], ws[1], kh, kw, oh, ow)
    if all(isinstance(d, int) for d in work) and \
            units(*work, dil[1], t.dtype.np.itemsize, get_num_threads())[0] > 1:
        body.threaded = True          # conv2d deals images or row blocks to threads
    res = (f"K.conv2d({x4}, {w4}, {bias}, {stride[0]}, {stride[1]}, {pad[0]}, {pad[1]}, "
           f"{dil[0]}, {dil[1]}, {body.dim(oh)}, {body.dim(ow)})")
    return [out_operand(body, node, f"{res}.reshape({body.shape(t.shape)})")]


def _planes(body, x: Operand) -> str:
    s = x.type.shape
    return (f"{body.contig(x)}.reshape(({body.prod(s[:-2])}, {body.dim(s[-2])}, "
            f"{body.dim(s[-1])}))")


@lowers("max_pool2d")
def _max_pool(body, node, ins):
    a, t = node.attrs, node.output.type
    k, s, p = a["kernel_size"], a["stride"], a.get("padding", (0, 0))
    d = a.get("dilation", (1, 1))
    res = (f"K.max_pool2d({_planes(body, ins[0])}, {k[0]}, {k[1]}, {s[0]}, {s[1]}, {p[0]}, "
           f"{p[1]}, {d[0]}, {d[1]}, {body.dim(t.shape[-2])}, {body.dim(t.shape[-1])})")
    return [out_operand(body, node, f"{res}.reshape({body.shape(t.shape)})")]


@lowers("avg_pool2d")
def _avg_pool(body, node, ins):
    a, t = node.attrs, node.output.type
    k, s, p = a["kernel_size"], a["stride"], a.get("padding", (0, 0))
    div = a.get("divisor_override") or 0
    res = (f"K.avg_pool2d({_planes(body, ins[0])}, {k[0]}, {k[1]}, {s[0]}, {s[1]}, {p[0]}, "
           f"{p[1]}, {body.dim(t.shape[-2])}, {body.dim(t.shape[-1])}, "
           f"{bool(a.get('count_include_pad', True))}, {div})")
    return [out_operand(body, node, f"{res}.reshape({body.shape(t.shape)})")]


@lowers("adaptive_avg_pool2d")
def _adaptive(body, node, ins):
    t = node.output.type
    oh, ow = node.attrs["output_size"]
    res = f"K.adaptive_avg_pool2d({_planes(body, ins[0])}, {oh}, {ow})"
    return [out_operand(body, node, f"{res}.reshape({body.shape(t.shape)})")]


@lowers("scaled_dot_product_attention")
def _sdpa(body, node, ins):
    q, k, v = ins[:3]
    mask = ins[3] if len(ins) > 3 else None
    t = node.output.type
    batch = tuple(t.shape[:-2])
    L, S = q.type.shape[-2], k.type.shape[-2]
    q3 = _batched(body, q, batch, q.type.shape[-2:])
    k3 = _batched(body, k, batch, k.type.shape[-2:])
    v3 = _batched(body, v, batch, v.type.shape[-2:])
    scale = node.attrs.get("scale")
    scale = 1.0 / math.sqrt(q.type.shape[-1]) if scale is None else float(scale)
    if mask is None:
        m3, mode = "np.zeros((1, 1, 1), np.bool_)", 0
    else:
        mfull = batch + (L, S)
        mv = broadcast_copy(body, mask, mfull)
        m3 = f"{mv}.reshape(({body.prod(batch)}, {body.dim(L)}, {body.dim(S)}))"
        mode = 1 if mask.type.dtype == DType.bool else 2
    causal = bool(node.attrs.get("is_causal", False))
    res = f"K.attention({q3}, {k3}, {v3}, {m3}, {mode}, {causal}, {scale!r})"
    return [out_operand(body, node, f"{res}.reshape({body.shape(t.shape)})")]
