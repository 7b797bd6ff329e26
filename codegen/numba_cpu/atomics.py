"""Atomic reads and adds on int64 arrays, for threads that share work outside the GIL.

``fetch_add`` lets the threads of one convolution claim its units (images, or one
image's blocks of output rows) one at a time, so a thread that starts late (a sleeping
core takes tens of µs to wake on a VM) does fewer instead of making the others wait.
``spin_while`` waits for another thread's store without sleeping: waking a sleeping
thread took 40-60 µs here, as long as a small convolution's share.
"""

from __future__ import annotations

import platform

from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from .emit import JIT_OPTIONS
from .loading import njit


def _int64_vector(a) -> bool:
    return isinstance(a, types.Array) and a.ndim == 1 and a.layout == "C" \
        and a.dtype == types.int64


def _slot(context, builder, sig, args):
    """Pointer to a[i] (i: any integer type) for the intrinsics below."""
    arr = context.make_array(sig.args[0])(context, builder, args[0])
    i = context.cast(builder, args[1], sig.args[1], types.intp)
    return builder.gep(arr.data, [i])


@intrinsic
def load_acquire(typingctx, a, i):
    """a[i], read atomically: every loop iteration reads memory anew."""
    if not (_int64_vector(a) and isinstance(i, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        return builder.load_atomic(_slot(context, builder, sig, args), "acquire", 8)

    return types.int64(a, i), codegen


@intrinsic
def fetch_add(typingctx, a, i, v):
    """a[i] += v atomically; returns the value before the add."""
    if not (_int64_vector(a) and isinstance(i, types.Integer) and isinstance(v, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        add = context.cast(builder, args[2], sig.args[2], types.int64)
        return builder.atomic_rmw("add", _slot(context, builder, sig, args), add, "acq_rel")

    return types.int64(a, i, v), codegen


_RELAX = "llvm.x86.sse2.pause" if platform.machine().lower() in ("x86_64", "amd64") else None


@intrinsic
def relax(typingctx):
    """x86's PAUSE, the hint for a spin-wait loop (elsewhere nothing): the spinning thread
    leaves the core's resources to another hardware thread on it, and leaves the loop
    without a memory-order stall."""
    def codegen(context, builder, sig, args):
        if _RELAX is not None:
            fn = builder.module.declare_intrinsic(_RELAX, fnty=ir.FunctionType(ir.VoidType(), []))
            builder.call(fn, [])
        return context.get_dummy_value()

    return types.none(), codegen


@njit(nogil=True, **JIT_OPTIONS)
def spin_while(state, i, value, reads):
    """state[i] once it is not ``value``, or ``value`` after ``reads`` reads."""
    for _ in range(reads):
        relax()
        now = load_acquire(state, i)
        if now != value:
            return now
    return load_acquire(state, i)

