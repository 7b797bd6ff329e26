"""threads.run_shares: every share runs once, at the same time as the others, errors
reach the caller, a forked child gets a pool of its own, and callers that meet at the
pool (two Python threads, a share that splits again) still get every share run; the
atomics the shares use."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time

import numpy as np
import pytest
from numba import njit

from codegen.numba_cpu import threads
from codegen.numba_cpu.atomics import fetch_add, spin_while


def test_every_share_runs_once_and_side_by_side():
    seen, barrier = [], threading.Barrier(3, timeout=10)

    def share(t, counter):
        barrier.wait()              # all three at once, or this times out
        seen.append(t)

    threads.run_shares(share, 3)
    assert sorted(seen) == [0, 1, 2]


@pytest.mark.parametrize("failing", [0, 1])
def test_a_failing_share_raises_in_the_caller(failing):
    def share(t, counter):
        if t == failing:
            raise ValueError(f"share {t}")

    with pytest.raises(ValueError, match=f"share {failing}"):
        threads.run_shares(share, 2)
    threads.run_shares(lambda t, c: None, 2)      # the pool still works


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_uses_its_own_pool():
    threads.run_shares(lambda t, c: None, 2)       # the parent's pool exists
    pid = os.fork()
    if pid == 0:                                 # child: the parent's threads are gone
        seen = []
        try:
            threads.run_shares(lambda t, c: seen.append(t), 2)
            code = 0 if sorted(seen) == [0, 1] else 1
        except BaseException:
            code = 2
        sys.stdout.flush()
        os._exit(code)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail("the forked child's run_shares hung (it waited on the parent's pool)")


def test_a_larger_share_count_grows_the_pool():
    threads.run_shares(lambda t, c: None, 2)
    small = list(threads._workers)
    seen = []
    threads.run_shares(lambda t, c: seen.append(t), 4)
    assert sorted(seen) == [0, 1, 2, 3]
    assert len(threads._workers) >= 3 and threads._workers[:len(small)] == small
    threads.run_shares(lambda t, c: seen.append(t), 2)   # a smaller count reuses the first
    assert threads._workers[:len(small)] == small


def test_callers_in_two_threads_both_get_every_share():
    """The pool serves one call at a time: the other caller runs its shares itself."""
    results, errors = {}, []

    def caller(k):
        try:
            for _ in range(50):
                seen = []
                threads.run_shares(lambda t, c: seen.append(t) or time.sleep(1e-4), 2)
                assert sorted(seen) == [0, 1]
            results[k] = True
        except BaseException as e:
            errors.append(e)

    pair = [threading.Thread(target=caller, args=(k,)) for k in range(2)]
    for t in pair:
        t.start()
    for t in pair:
        t.join(60)
    assert not errors and results == {0: True, 1: True}


def test_a_share_that_splits_again_runs_its_shares_itself():
    seen = []

    def outer(t, counter):
        threads.run_shares(lambda u, c: seen.append((t, u)), 2)

    threads.run_shares(outer, 2)
    assert sorted(seen) == [(0, 0), (0, 1), (1, 0), (1, 1)]


@njit(nogil=True)
def _claim_units(counter, hits, t, owner):
    k = fetch_add(counter, 0, 1)
    while k < hits.size:
        hits[k] += 1
        owner[k] = t
        k = fetch_add(counter, 0, 1)


@pytest.mark.parametrize("region", [False, True])
def test_shares_claim_every_unit_once_through_the_counter(region):
    """The caller's share claims from nogil code, which lets the pool's threads start;
    inside a sharing region they watch for it instead of sleeping."""
    hits, owner = np.zeros(200_000, np.int64), np.full(200_000, -1, np.int64)
    with threads.sharing() if region else contextlib.nullcontext():
        for _ in range(3):
            hits[:] = 0
            threads.run_shares(lambda t, c: _claim_units(c, hits, t, owner), 2)
            assert (hits == 1).all()
    assert set(np.unique(owner)) <= {0, 1}


@njit(nogil=True)
def _count_up(claim, times):
    for _ in range(times):
        fetch_add(claim, 0, 1)


def test_fetch_add_from_two_threads_loses_no_add():
    claim = np.zeros(1, np.int64)
    _count_up(claim, 1)                          # compiled before the threads start
    claim[0] = 0
    pair = [threading.Thread(target=_count_up, args=(claim, 200_000)) for _ in range(2)]
    for t in pair:
        t.start()
    for t in pair:
        t.join(60)
    assert claim[0] == 400_000


def test_spin_while_returns_the_new_value_or_gives_up():
    state = np.array([0, 5], np.int64)
    assert spin_while(state, 1, 0, 10) == 5          # already different
    assert spin_while(state, 0, 0, 1000) == 0        # never changes: gives up
    done = threading.Timer(0.05, lambda: state.__setitem__(0, 7))
    done.start()
    assert spin_while(state, 0, 0, 1 << 28) == 7     # seen within the ~7 s of reads
    done.join()
