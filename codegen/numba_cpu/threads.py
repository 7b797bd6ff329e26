"""Who uses the cores: the lock around parallel kernels, BLAS's own thread pool, and the
Python threads that share a convolution's images."""

from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager

import numpy as np

from . import blas
from .atomics import fetch_add, load_acquire, relax, spin_while
from .emit import JIT_OPTIONS
from .loading import njit

PARALLEL = threading.Lock()
"""Held around every call of a parallel kernel. The backend runs them on Numba's
workqueue threading layer (see __init__.py), which ends the process when two Python
threads enter parallel code at once."""

_blas_pools = None
_region_depth = 0


def _blas():
    """threadpoolctl's controllers of the loaded BLAS libraries (SciPy's, which the
    kernels' ``blas.matmul`` calls, among them), found once."""
    global _blas_pools
    if _blas_pools is None:
        import scipy.linalg.cython_blas  # noqa: F401  (load it before looking)
        from threadpoolctl import ThreadpoolController
        _blas_pools = ThreadpoolController().select(user_api="blas").lib_controllers
    return _blas_pools


_gate = np.zeros(1, np.int64)
"""1 while a sharing region is open: the pool's threads watch for shares then."""


@contextmanager
def sharing():
    """The region of a segment whose convolutions share their work among threads.

    BLAS runs single-threaded inside: each thread runs its own GEMMs. The large ones stay
    on the GEMM the process chose (``blas.use_gemm``) where its threads can be limited
    per thread (torch's MKL), and go to SciPy's OpenBLAS otherwise, whose process-wide
    thread count is set here. Two threads each running one-thread GEMMs on data in their
    own core's cache measured 52 GFLOP/s here, against 46 when each GEMM also spread over
    both cores (1024x288 by 288x32, float32, OpenBLAS). On one thread MKL ran that
    product at 107-131 GFLOP/s, OpenBLAS at 58-64 (Xeon, AVX-512); in-process A/B with
    MKL kept: LeNet at batch 32 1.90 -> 1.12 ms, ResNet at batch 16 18.9 -> 17.4 ms and
    21.4 -> 19.2 ms, at batch 1 1.62 -> 1.52 ms.
    The pool's threads watch for shares instead of sleeping between them, so a share
    starts at once rather than after a thread's wake-up (40-60 µs on this VM, as long as
    a small convolution's share); the segment's loops are serial (``outline``), so
    nothing else wants the cores meanwhile. Entering costs about 15 µs; a region inside
    another costs nothing. The settings are process-wide, as BLAS's thread count is:
    another Python thread's GEMMs run single-threaded meanwhile (slower, never wrong)."""
    global _region_depth
    if _region_depth:
        yield
        return
    pools = [(p, p.get_num_threads()) for p in _blas()]
    for p, _ in pools:
        p.set_num_threads(1)
    gemm = blas.gemm_in_use()
    limited = blas.limit_threads_here(1)
    if limited is None:
        blas.use_gemm(*blas.SCIPY_GEMM)
    _region_depth += 1
    _gate[0] = 1
    for worker in _workers if _pid == os.getpid() else ():
        worker.wake()
    try:
        yield
    finally:
        _gate[0] = 0
        _region_depth -= 1
        if limited is None:
            blas.use_gemm(*gemm)
        else:
            blas.limit_threads_here(limited)
        for p, n in pools:
            p.set_num_threads(n)


WAIT_READS = 1 << 19
"""How long a caller whose share is done watches for the pool's shares to end before it
polls with sleeps: 10-20 ms of reads here, longer than the zoo's convolutions take. A
waking caller cost 40-60 µs (LeNet's second conv at batch 32: 0.37 ms with a sleeping
wait, 0.30 ms watching)."""

WATCH_READS = 1 << 19
"""Reads of one watching spin (10-20 ms) before a pool thread looks at the gate again."""

LINGER_READS = 1 << 15
"""Reads (about 1 ms) a pool thread goes on watching after the gate closes, as OpenMP's
and onnxruntime's pools spin a while: a model called in a loop opens its next region
before then, and the thread never leaves nogil code between calls. Each time it does,
it takes the GIL for a moment, and a caller that wants it back then waits 40-60 µs for
a wake-up: with 0.2 ms here, ResNet's first split conv at batch 1 started its second
share 90 µs late, against 25 µs with 1 ms."""


@njit(nogil=True, **JIT_OPTIONS)
def _await_job(state, counter, gate, reads, finished):
    """Mark the job done when ``finished`` (count it in ``state[1]``), then spin until a
    job is posted (``state[0] != state[1]``) and the caller's own share has claimed work
    (``counter[0] != 0``, stored from code that released the GIL), or until no job is
    posted and the gate has stayed closed for LINGER_READS reads, or the reads run out.
    One kernel for both, as each cached kernel costs a process 5-10 ms to load."""
    if finished:
        fetch_add(state, 1, 1)
    done = load_acquire(state, 1)
    closed = 0
    for _ in range(reads):
        relax()
        if load_acquire(state, 0) != done:
            if load_acquire(counter, 0) != 0:
                return
        elif load_acquire(gate, 0) == 0:
            closed += 1
            if closed > LINGER_READS:
                return
        else:
            closed = 0


class _Worker:
    """One pool thread: between jobs it watches for the next while a sharing region is
    open, and sleeps on a condition otherwise. Posting a job and marking it done count up
    in ``state`` (posted, done), where the caller and the thread watch the counts.

    The thread holds the GIL only to start a share and to read the next job: it marks a
    job done and watches for the next from code that released the GIL. A thread that
    wants the GIL while another holds it sleeps until it is let go, and waking took
    40-60 µs here: a caller that found the pool thread still holding the GIL after its
    share (to mark it done) waited that long, so a small convolution split over two
    threads ran slower than on one."""

    def __init__(self, counter):
        self.state = np.zeros(2, np.int64)
        self.counter = counter
        self.job = None
        self.error: BaseException | None = None
        self.cond = threading.Condition()
        threading.Thread(target=self._serve, name="tracejit-share", daemon=True).start()

    def _serve(self) -> None:
        while True:
            with self.cond:
                while self.state[0] == self.state[1] and not _gate[0]:
                    self.cond.wait()
            _await_job(self.state, self.counter, _gate, WATCH_READS, False)
            while self.state[0] != self.state[1]:
                share, t = self.job
                blas.limit_threads_here(1)      # this thread's GEMMs, as the caller's
                try:
                    share(t, self.counter)
                except BaseException as e:      # raised again in the caller
                    self.error = e
                _await_job(self.state, self.counter, _gate, WATCH_READS, True)

    def wake(self) -> None:
        with self.cond:
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
            while self.state[1] != posted:
                time.sleep(2e-4)
        return self.error


_workers: list[_Worker] = []
_counter = np.zeros(1, np.int64)
_busy = threading.Lock()
_pid = os.getpid()


def _claim(n: int) -> list[_Worker] | None:
    """n pool threads for this caller, or None while another call holds the pool. A
    forked child starts a pool of its own: the parent's threads do not exist there, and
    the parent may have held the pool at the fork."""
    global _workers, _counter, _busy, _pid
    if os.getpid() != _pid:
        _workers, _counter, _busy, _pid = [], np.zeros(1, np.int64), threading.Lock(), \
            os.getpid()
    if not _busy.acquire(blocking=False):
        return None
    while len(_workers) < n:
        _workers.append(_Worker(_counter))
    return _workers[:n]


def run_shares(share, T: int) -> None:
    """``share(t, counter)`` for t in 0..T-1 at once: t = 0 in the calling thread, the
    others on a pool of Python threads. ``share`` should be an ``nogil`` njit kernel that
    claims its work by atomic adds on ``counter`` (an int64 array, ``counter[0]`` zero at
    the start): the pool's threads take their shares once the caller's share has claimed
    something, as the GIL is free then. This splits a convolution without a Numba
    parallel loop, whose compile cost about 3 s more for the same kernel. While another
    call holds the pool (another Python thread, or a share that itself splits) the shares
    run one after another in the calling thread. The first exception a share raised is
    raised here, once all have ended."""
    workers = _claim(T - 1)
    if workers is None:
        counter = np.zeros(1, np.int64)
        for t in range(T):
            share(t, counter)
        return
    try:
        _counter[0] = 0
        for t, worker in enumerate(workers, 1):
            worker.post(share, t)
        try:
            share(0, _counter)
        finally:
            errors = [worker.join() for worker in workers]
    finally:
        _busy.release()
    for error in errors:
        if error is not None:
            raise error
