"""Eager vs compiled timing, done fairly: warm up, interleave, take medians.

    python examples/timing.py [--quick]

benchmarks/run.py is the full comparison; this shows the method in a few lines.
"""

import argparse
import statistics
import time

import torch
from torch import nn

import tracejit

ap = argparse.ArgumentParser()
ap.add_argument("--quick", action="store_true", help="smoke mode: few repeats")
args = ap.parse_args()
torch.manual_seed(0)
torch.set_num_threads(2)

model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10)).eval()
systems = {"eager": model,
           "numba-cpu": tracejit.compile(model),
           "onnxruntime": tracejit.compile(model, backend="onnxruntime")}


def block_us(fn, x, calls=20):
    """Mean µs per call over one block of calls (one sample)."""
    start = time.perf_counter()
    for _ in range(calls):
        fn(x)
    return (time.perf_counter() - start) / calls * 1e6


with torch.no_grad():
    for batch in (1, 64):
        x = torch.randn(batch, 784)
        for fn in systems.values():                 # warm-up: trace, compile, caches
            for _ in range(3):
                fn(x)
        samples = {name: [] for name in systems}
        for _ in range(3 if args.quick else 30):    # round-robin: drift hits all alike
            for name, fn in systems.items():
                samples[name].append(block_us(fn, x))
        eager = statistics.median(samples["eager"])
        for name, s in samples.items():
            med = statistics.median(s)
            err = float((systems[name](x) - model(x)).abs().max())
            print(f"batch {batch:3d}  {name:12s} {med:9.1f} µs  {eager / med:5.2f}x eager"
                  f"  max|err| {err:.1e}")
