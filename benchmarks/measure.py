"""Timing and probing: interleaved blocks in this process, compile/memory in fresh ones."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

from . import systems

PROBE = Path(__file__).resolve().parent / "probe.py"


def per_call_s(f: Callable, x, calls: int) -> float:
    t = time.perf_counter()
    for _ in range(calls):
        f(x)
    return (time.perf_counter() - t) / calls


def calls_per_block(f: Callable, x, block_s: float) -> int:
    """How many calls make one timed block of about ``block_s`` seconds."""
    return max(1, int(block_s / max(per_call_s(f, x, 1), 1e-7)))


SETTLE_S = 0.1
"""Pause before each timed block. Thread pools spin-wait after their last task (torch's
OpenMP, OpenBLAS in NumPy and in SciPy, onnxruntime): on 2 cores, the previous system's
spinning threads made the next one's multi-threaded kernels wait, e.g. numba-cpu's MLP
at batch 64 measured 28.7 ms right after the other systems and 0.85 ms alone."""


def interleaved(fns: dict[str, Callable], x, repeats: int, block_s: float,
                tick: Callable[[], None] = lambda: None) -> dict[str, list[float]]:
    """Per-call seconds from ``repeats`` round-robin blocks over every system.

    Each round visits the systems in a rotated order, so a slow drift of the machine
    (other load, frequency) spreads over all systems instead of favouring one. Before a
    block the other systems' thread pools get ``SETTLE_S`` to go idle and the system makes
    one untimed call.
    """
    names = list(fns)
    sizes = {}
    for n in names:
        time.sleep(SETTLE_S)
        sizes[n] = calls_per_block(fns[n], x, block_s)
    samples: dict[str, list[float]] = {n: [] for n in names}
    for r in range(repeats):
        for n in names[r % len(names):] + names[:r % len(names)]:
            time.sleep(SETTLE_S)
            fns[n](x)
            samples[n].append(per_call_s(fns[n], x, sizes[n]))
        tick()
    return samples


def summary_us(samples: list[float]) -> dict:
    """Median and spread (p10/p25/p75/p90) in microseconds."""
    us = np.asarray(samples) * 1e6
    p10, p25, p75, p90 = np.percentile(us, [10, 25, 75, 90])
    return {"median": float(statistics.median(us)), "p10": float(p10), "p25": float(p25),
            "p75": float(p75), "p90": float(p90), "n": len(us)}


def run_probe(model: str, system: str, batch: int, workdir: Path, timeout: float) -> dict:
    """Run probe.py in a new process with the system's caches in ``workdir``."""
    env = systems.cache_env(system, workdir)
    cmd = [sys.executable, str(PROBE), model, system, str(batch), str(workdir)]
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    for line in proc.stdout.splitlines():
        if line.startswith("PROBE "):
            return json.loads(line[len("PROBE "):])
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return {"error": f"probe exited {proc.returncode}: {tail}"}
