"""Who uses the cores: the lock around parallel kernels, BLAS's own thread pool, and the
Python threads that share a convolution's images."""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager

import numpy as np

from .atomics import spin_while

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


WAIT_READS = 1 << 22
"""How long a caller whose share is done watches for the pool's shares to end before it
sleeps: 2-4 ms of reads here. A share ends within a convolution's time, so the
caller rarely sleeps, and a waking caller cost 40-60 µs (LeNet's second conv at batch 32:
0.37 ms with a sleeping wait, 0.30 ms watching)."""


class _Worker:
    """One pool thread: it sleeps between jobs on a condition. Posting a job and marking it
    done count up in ``state`` (posted, done), where the caller can watch the count."""

    def __init__(self):
        self.state = np.zeros(2, np.int64)
        self.job = None
        self.error: BaseException | None = None
        self.cond = threading.Condition()
        threading.Thread(target=self._serve, name="tracejit-share", daemon=True).start()

    def _serve(self) -> None:
        while True:
            with self.cond:
                while self.state[0] == self.state[1]:
                    self.cond.wait()
            share, t = self.job
            try:
                share(t)
            except BaseException as e:          # raised again in the caller
                self.error = e
            with self.cond:
                self.state[1] += 1
                self.cond.notify_all()

    def post(self, share, t: int) -> None:
        self.job, self.error = (share, t), None
        with self.cond:
            self.state[0] += 1
            self.cond.notify_all()

    def join(self) -> BaseException | None:
        """Wait for the posted job; its exception, if it raised one."""
        posted = self.state[0]
        if spin_while(self.state, 1, posted - 1, WAIT_READS) != posted:
            with self.cond:
                while self.state[1] != posted:
                    self.cond.wait()
        return self.error


_workers: list[_Worker] = []
_busy = threading.Lock()
_pid = os.getpid()


def _claim(n: int) -> list[_Worker] | None:
    """n pool threads for this caller, or None while another call holds the pool. A
    forked child starts a pool of its own: the parent's threads do not exist there, and
    the parent may have held the pool at the fork."""
    global _workers, _busy, _pid
    if os.getpid() != _pid:
        _workers, _busy, _pid = [], threading.Lock(), os.getpid()
    if not _busy.acquire(blocking=False):
        return None
    while len(_workers) < n:
        _workers.append(_Worker())
    return _workers[:n]


def run_shares(share, T: int) -> None:
    """``share(t)`` for t in 0..T-1 at once: t = 0 in the calling thread, the others on a
    pool of Python threads (``share`` must release the GIL: an ``nogil`` njit kernel).
    This splits a convolution's images without a Numba parallel loop, whose compile cost
    about 3 s more for the same kernel. While another call holds the pool (another
    Python thread, or a share that itself splits) the shares run one after another in
    the calling thread. The first exception a share raised is raised here, once all have
    ended."""
    workers = _claim(T - 1)
    if workers is None:
        for t in range(T):
            share(t)
        return
    try:
        for t, worker in enumerate(workers, 1):
            worker.post(share, t)
        try:
            share(0)
        finally:
            errors = [worker.join() for worker in workers]
    finally:
        _busy.release()
    for error in errors:
        if error is not None:
            raise error
