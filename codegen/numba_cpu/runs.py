"""Copies of short contiguous runs as one ``memcpy``, for the convolutions' im2row/im2col.

A loop copying a run of ~30 floats does not vectorise on this target: LLVM's vector loop
takes 32 floats per iteration (16-wide AVX-512, interleaved twice, see __init__.py), so
a shorter run goes element by element through the scalar remainder. LeNet's second
convolution copies 500 runs of 30 floats per image: 6 µs per image that way, more than
its GEMM (4.7 µs). LLVM lowers a ``memcpy`` of a run-time size to the C library's, which
copies 120 bytes in a few overlapping vector moves.
"""

from __future__ import annotations

from numba import types
from numba.core import cgutils
from numba.extending import intrinsic


@intrinsic
def copy_run(typingctx, dst, d, src, s, n):
    """dst[d:d + n] = src[s:s + n] for 1-D C arrays of one dtype, runs that do not
    overlap, and offsets and count that are in bounds (not checked, as Numba's indexing)."""
    ints = (d, s, n)
    if not (isinstance(dst, types.Array) and isinstance(src, types.Array)
            and dst.ndim == src.ndim == 1 and dst.layout == src.layout == "C"
            and dst.dtype == src.dtype and all(isinstance(t, types.Integer) for t in ints)):
        return None

    def codegen(context, builder, sig, args):
        adst, td, asrc, ts, tn = sig.args
        vdst, vd, vsrc, vs, vn = args
        d, s, n = (context.cast(builder, v, t, types.intp)
                   for v, t in ((vd, td), (vs, ts), (vn, tn)))
        xd = context.make_array(adst)(context, builder, vdst)
        xs = context.make_array(asrc)(context, builder, vsrc)
        size = context.get_abi_sizeof(context.get_data_type(adst.dtype))
        cgutils.raw_memcpy(builder, builder.gep(xd.data, [d]), builder.gep(xs.data, [s]), n,
                           size)
        return context.get_dummy_value()

    return types.none(dst, d, src, s, n), codegen
