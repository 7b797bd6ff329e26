"""threads.run_shares: every share runs once, at the same time as the others, errors
reach the caller, and a forked child gets a pool of its own."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

import pytest

from codegen.numba_cpu import threads


def test_every_share_runs_once_and_side_by_side():
    seen, barrier = [], threading.Barrier(3, timeout=10)

    def share(t):
        barrier.wait()              # all three at once, or this times out
        seen.append(t)

    threads.run_shares(share, 3)
    assert sorted(seen) == [0, 1, 2]


@pytest.mark.parametrize("failing", [0, 1])
def test_a_failing_share_raises_in_the_caller(failing):
    def share(t):
        if t == failing:
            raise ValueError(f"share {t}")

    with pytest.raises(ValueError, match=f"share {failing}"):
        threads.run_shares(share, 2)
    threads.run_shares(lambda t: None, 2)      # the pool still works


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_uses_its_own_pool():
    threads.run_shares(lambda t: None, 2)       # the parent's pool exists
    pid = os.fork()
    if pid == 0:                                 # child: the parent's threads are gone
        seen = []
        try:
            threads.run_shares(seen.append, 2)
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


def test_a_larger_share_count_replaces_the_pool():
    threads.run_shares(lambda t: None, 2)
    small = threads._pool
    seen = []
    threads.run_shares(seen.append, 4)
    large = threads._pool
    assert sorted(seen) == [0, 1, 2, 3] and large is not small
    threads.run_shares(seen.append, 2)           # a smaller count reuses the larger pool
    assert threads._pool is large
