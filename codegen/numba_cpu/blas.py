"""Matrix products for the generic kernels: one direct call into a BLAS ``gemm``.

``np.dot`` inside njit ends in one C call (Numba's ``numba_xxgemm``, which finds
``sgemm``/``dgemm`` in ``scipy.linalg.cython_blas``), but its lowering first compiles
nested helpers at every call site: shape checks, copies of non-contiguous operands, the
1-D cases: a small function compiled in 0.64-0.74 s with np.dot and 0.18-0.20 s with
the intrinsic below (per call site and signature; inside the whole generic kernels the
saving was within the noise of their compile). ``matmul_into`` calls the gemm from an
intrinsic that knows each operand's layout when it is typed; a C-layout operand is passed
as it is, an F-layout one (a transposed view, ``w.T``) as BLAS's transpose, anything else
is copied.

Which gemm is chosen at run time (``use_gemm``): SciPy's OpenBLAS by default, torch's own
BLAS where the torch runtime lends it (tracejit/externs.py). Two BLAS thread pools in one
process spin against each other on the cores: with the kernels on SciPy's OpenBLAS and
eager torch on MKL in the same process (the benchmark's interleaved rounds, or a program
that also runs torch ops), eager LSTM and GRU layers at batch 16 took 27 ms instead of
2-3 ms. On an Intel Xeon, MKL also ran the PreNorm block's products 1.2-1.6x faster.
"""

from __future__ import annotations

import ctypes
import importlib.machinery
import importlib.util
import sys
from pathlib import Path

import llvmlite.binding as llvm
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import get_cython_function_address, intrinsic, overload

from .emit import INLINE_OPTIONS
from .loading import njit

inline = njit(**INLINE_OPTIONS)


def _load_cython_blas() -> None:
    """Load ``scipy.linalg.cython_blas`` by itself, before Numba asks for it.

    Numba imports that module when it loads its registries (the first compile or cache
    load of a process) only to find the BLAS functions in its ``__pyx_capi__``. Imported
    by name, it first runs ``scipy.linalg``'s ``__init__``: 0.15-0.25 s of a warm start
    whose budget is 0.5 s. The extension alone loads in 4 ms. Once in ``sys.modules``,
    Numba's import and its C helper's lookup take it from there, and a later
    ``import scipy.linalg`` loads the rest as usual (``from scipy.linalg import
    cython_blas`` still works; only the attribute ``scipy.linalg.cython_blas`` stays
    unset). Where SciPy is missing or laid out otherwise, nothing is done and Numba's own
    import reports it."""
    name = "scipy.linalg.cython_blas"
    if name in sys.modules or "scipy.linalg" in sys.modules:
        return
    try:
        import scipy
    except ImportError:
        return
    spec = importlib.machinery.PathFinder.find_spec(
        name, [str(Path(scipy.__file__).parent / "linalg")])
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except ImportError:
        del sys.modules[name]


_load_cython_blas()

_SLOT = {types.float32: 0, types.float64: 2}     # the first of each dtype's two slots
_CHAR = ir.IntType(8)
_VOID_P = _CHAR.as_pointer()
_INT_MAX = 2**31 - 1     # SciPy's BLAS takes 32-bit sizes


GEMM_SYMBOL = "tracejit_gemm"
"""The gemm entry points (Fortran BLAS sgemm/dgemm: 32-bit sizes, every argument by
pointer) as a symbol the compiled kernels load at each product, so the cached machine
code serves whichever BLAS ``use_gemm`` picks in a process. Four slots: sgemm for small
and for large products, then dgemm for small and large."""

SMALL_GEMM = 1 << 18
"""Multiply-adds up to which a product always goes to SciPy's OpenBLAS, which runs these
on the calling thread (its own limit for threads), where MKL's per-call cost was higher:
an LSTM at batch 1 (32 steps of 1x64 by 64x256 per layer) took 507 µs per call with
MKL, 227-249 µs with OpenBLAS."""

_slots = (ctypes.c_void_p * 4)()
llvm.add_symbol(GEMM_SYMBOL, ctypes.addressof(_slots))

SCIPY_GEMM = tuple(get_cython_function_address("scipy.linalg.cython_blas", name)
                   for name in ("sgemm", "dgemm"))
"""SciPy's sgemm and dgemm (its bundled OpenBLAS): the kernels' GEMM unless another is
chosen, and always for small products; inside a sharing region (``threads.sharing``)
also for large ones, unless the chosen GEMM's threads can be limited per thread."""

_limits: dict[int, ctypes._CFuncPtr] = {}    # sgemm address -> its per-thread limit


def use_gemm(sgemm: int, dgemm: int, limit: int | None = None) -> None:
    """Run the kernels' large products through these sgemm/dgemm addresses,
    process-wide. ``limit``: the address of the library's ``int f(int n)`` that makes its
    products use n threads when called from the calling thread (0: its process-wide
    setting again) and returns the previous value, as MKL's mkl_set_num_threads_local;
    a sharing region then keeps this GEMM, on one thread per caller."""
    _slots[0], _slots[1], _slots[2], _slots[3] = SCIPY_GEMM[0], sgemm, SCIPY_GEMM[1], dgemm
    if limit is not None:
        _limits[sgemm] = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int)(limit)


def gemm_in_use() -> tuple[int, int]:
    """The (sgemm, dgemm) addresses large products go to."""
    return _slots[1], _slots[3]


def limit_threads_here(n: int) -> int | None:
    """Have the large products' GEMM use n threads for calls from this thread (0: the
    library's process-wide setting); the previous value, or None where that GEMM takes no
    per-thread limit (``use_gemm``)."""
    limit = _limits.get(_slots[1])
    return None if limit is None else limit(n)


use_gemm(*SCIPY_GEMM)


@intrinsic
def _xxgemm(typingctx, a, b, out):
    """out = a @ b through the gemm in ``GEMM_SYMBOL``; a, b C or F layout, out C."""
    arrays = (a, b, out)
    if not all(isinstance(t, types.Array) and t.ndim == 2 for t in arrays) \
            or len({t.dtype for t in arrays}) != 1 or a.dtype not in _SLOT \
            or a.layout not in "CF" or b.layout not in "CF" or out.layout != "C":
        return None

    def codegen(context, builder, sig, args):
        dtype = sig.args[0].dtype
        i32 = ir.IntType(32)
        real_p = context.get_value_type(dtype).as_pointer()
        fnty = ir.FunctionType(ir.VoidType(), [_VOID_P, _VOID_P] + [i32.as_pointer()] * 3 +
                               [real_p, real_p, i32.as_pointer(), real_p, i32.as_pointer(),
                                real_p, real_p, i32.as_pointer()])
        slots = builder.module.globals.get(GEMM_SYMBOL)
        if slots is None:
            slots = ir.GlobalVariable(builder.module, ir.ArrayType(_VOID_P, 4), GEMM_SYMBOL)
        ta, tb, _ = sig.args
        xa, xb, xo = (context.make_array(t)(context, builder, v) for t, v in zip(sig.args, args))
        m, k = cgutils.unpack_tuple(builder, xa.shape)
        n = cgutils.unpack_tuple(builder, xb.shape)[1]
        large = builder.icmp_signed(">", builder.mul(builder.mul(m, n), k),
                                    ir.Constant(m.type, SMALL_GEMM))
        index = builder.add(ir.Constant(i32, _SLOT[dtype]), builder.zext(large, i32))
        slot = builder.gep(slots, [ir.Constant(i32, 0), index])
        fn = builder.bitcast(builder.load(slot), fnty.as_pointer())

        def by_ref(size):
            return cgutils.alloca_once_value(builder, builder.trunc(size, i32))

        def operand(ty, arr):
            # BLAS is column-major: a C (rows, cols) array is its transpose there, so
            # out^T = b^T a^T is formed with b first; an F array enters transposed.
            rows, cols = cgutils.unpack_tuple(builder, arr.shape)
            trans = cgutils.alloca_once_value(
                builder, ir.Constant(_CHAR, ord("N" if ty.layout == "C" else "T")))
            return trans, by_ref(cols if ty.layout == "C" else rows), \
                builder.bitcast(arr.data, real_p)

        trans_b, ld_b, data_b = operand(tb, xb)
        trans_a, ld_a, data_a = operand(ta, xa)
        one, zero = (cgutils.alloca_once_value(builder, context.get_constant(dtype, v))
                     for v in (1.0, 0.0))
        builder.call(fn, (trans_b, trans_a, by_ref(n), by_ref(m), by_ref(k), one, data_b,
                          ld_b, data_a, ld_a, zero, builder.bitcast(xo.data, real_p),
                          by_ref(n)))
        return context.get_dummy_value()

    return types.void(a, b, out), codegen


def _operand(a):
    """a itself where BLAS can take it (C or F layout), else a C copy."""


@overload(_operand, inline="always")
def _operand_impl(a):
    if a.layout in "CF":
        return lambda a: a
    return lambda a: np.ascontiguousarray(a)


@inline
def matmul_into(a, b, out):
    """out (M, N), C-contiguous, = a (M, K) @ b (K, N)."""
    M, K = a.shape
    N = b.shape[1]
    if b.shape[0] != K or out.shape[0] != M or out.shape[1] != N:
        raise ValueError("matmul_into: operand shapes do not match")
    if max(M, N, K) > _INT_MAX:
        raise ValueError("matmul_into: a dimension exceeds BLAS's 32-bit sizes")
    if M == 0 or N == 0:
        return
    if K == 0:
        out[:] = 0
    else:
        _xxgemm(_operand(a), _operand(b), out)


@inline
def matmul(a, b):
    """a (M, K) @ b (K, N) as a new C-contiguous array."""
    out = np.empty((a.shape[0], b.shape[1]), a.dtype)
    matmul_into(a, b, out)
    return out
