"""Who uses the cores: the lock around parallel kernels, BLAS's own thread pool, and the
Python threads that share a convolution's images."""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager

PARALLEL = threading.Lock()
"""Held around every call of a parallel kernel. The backend runs them on Numba's
workqueue threading layer (see __init__.py), which ends the process when two Python
threads enter parallel code at once."""

_blas_pools = None
_serial_depth = 0


def _blas():
    """threadpoolctl's controllers of the loaded BLAS libraries (SciPy's, which the
    kernels' ``blas.matmul`` calls, among them), found once."""
    global _blas_pools
    if _blas_pools is None:
        import scipy.linalg.cython_blas  # noqa: F401  (load it before looking)
        from threadpoolctl import ThreadpoolController
        _blas_pools = ThreadpoolController().select(user_api="blas").lib_controllers
    return _blas_pools


@contextmanager
def serial_blas():
    """BLAS runs single-threaded inside: for kernels that give each of their own threads a
    share of the GEMMs. Two threads each running one-thread GEMMs on data in their own
    core's cache measured 52 GFLOP/s here, against 46 when each GEMM also spread over both
    cores (1024x288 by 288x32, float32). Entering costs about 15 µs; a region inside
    another costs nothing. The setting is process-wide, as BLAS's thread count is: another
    Python thread's GEMMs run single-threaded meanwhile (slower, never wrong)."""
    global _serial_depth
    if _serial_depth:
        yield
        return
    pools = [(p, p.get_num_threads()) for p in _blas()]
    for p, _ in pools:
        p.set_num_threads(1)
    _serial_depth += 1
    try:
        yield
    finally:
        _serial_depth -= 1
        for p, n in pools:
            p.set_num_threads(n)


_pool = None
_pool_key = (0, 0)


def run_shares(share, T: int) -> None:
    """``share(t)`` for t in 0..T-1 at once: t = 0 in the calling thread, the others on a
    pool of Python threads (``share`` must release the GIL: an ``nogil`` njit kernel).
    This splits a convolution's images without a Numba parallel loop, whose compile cost
    about 3 s more for the same kernel. A forked child makes its own pool (the parent's
    threads do not exist there)."""
    global _pool, _pool_key
    key = (os.getpid(), T - 1)
    if _pool_key[0] != key[0] or _pool_key[1] < key[1]:
        from concurrent.futures import ThreadPoolExecutor
        # a pool too small is shut down; a forked child leaves the parent's one alone
        # (a parent thread may have held its locks at the fork)
        if _pool is not None and _pool_key[0] == key[0]:
            _pool.shutdown(wait=False)
        _pool, _pool_key = ThreadPoolExecutor(T - 1, thread_name_prefix="tracejit"), key
    rest = [_pool.submit(share, t) for t in range(1, T)]
    try:
        share(0)
    finally:
        for f in rest:
            f.result()
