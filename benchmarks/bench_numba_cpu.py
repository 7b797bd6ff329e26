"""numba-cpu backend figures: cold compile, warm start, per-call overhead, fused chain.

Run: .venv/bin/python benchmarks/bench_numba_cpu.py   (2 torch threads; medians of
interleaved repeats; cold/warm times come from fresh subprocesses with their own cache).
The first cold line also compiles the generic kernels (a fresh installation); later cold
lines reuse them from Numba's cache, as every graph after the first does.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

GRAPHS = textwrap.dedent("""
    import numpy as np
    from ir import DType, Graph, Node, TensorType, Value
    F = DType.f32
    def t(*s): return TensorType(F, s)
    def mlp():
        g = Graph("mlp")
        x = g.add_input("x", t(1, 784))
        w1, b1 = g.add_input("w1", t(256, 784), "param"), g.add_input("b1", t(256), "param")
        w2, b2 = g.add_input("w2", t(10, 256), "param"), g.add_input("b2", t(10), "param")
        h, r, y = Value(t(1, 256)), Value(t(1, 256)), Value(t(1, 10))
        g.nodes += [Node("linear", (x, w1, b1), (h,)), Node("relu", (h,), (r,)),
                    Node("linear", (r, w2, b2), (y,))]
        g.outputs = [y]
        rng = np.random.default_rng(0)
        arrays = [rng.standard_normal(i.value.type.shape).astype(np.float32) * 0.05
                  for i in g.inputs]
        return g, arrays
    def chain20():
        g = Graph("chain20")
        x = g.add_input("x", t(64, 64))
        w = g.add_input("w", t(64, 64), "param")
        v = x
        ops = ["linear", "gelu", "layer_norm", "tanh", "add"]
        for k in range(20):
            out = Value(t(64, 64))
            op = ops[k % 5]
            ins = {"linear": (v, w), "add": (v, x), "layer_norm": (v,)}.get(op, (v,))
            attrs = {"normalized_shape": (64,)} if op == "layer_norm" else {}
            g.nodes.append(Node(op, ins, (out,), attrs))
            v = out
        g.outputs = [v]
        rng = np.random.default_rng(0)
        return g, [rng.standard_normal((64, 64)).astype(np.float32) * 0.1 for _ in range(2)]
""")

CHILD = GRAPHS + textwrap.dedent("""
    import resource, sys, time
    t0 = time.perf_counter()
    from codegen import compile_graph
    g, arrays = NAME()
    exe = compile_graph(g, "numba-cpu")
    exe(arrays)
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    print(time.perf_counter() - t0, cpu.ru_utime + cpu.ru_stime)
""")


def child_seconds(name: str, cache_dir: str, numba_dir: str) -> tuple[float, float]:
    """(wall, CPU) seconds of a fresh process: imports, compile (or cache load), one call."""
    env = dict(os.environ, TRACEJIT_CACHE_DIR=cache_dir, NUMBA_CACHE_DIR=numba_dir,
               PYTHONPATH=str(ROOT))
    env.pop("PYTHONDONTWRITEBYTECODE", None)    # with bytecode caches, as systems.cache_env
    out = subprocess.run([sys.executable, "-c", CHILD.replace("NAME", name)], env=env, cwd=ROOT,
                         capture_output=True, text=True, check=True)
    wall, cpu = out.stdout.strip().splitlines()[-1].split()
    return float(wall), float(cpu)


def interleaved(fns: dict, number: int, repeats: int = 15, summary=statistics.median) -> dict:
    """Seconds per call of each function, over ``repeats`` rounds that run each in turn:
    ``summary`` of the rounds, or every round's figure where it is None."""
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t = time.perf_counter()
            for _ in range(number):
                fn()
            times[k].append((time.perf_counter() - t) / number)
    return times if summary is None else {k: summary(v) for k, v in times.items()}


def main():
    import numpy as np
    import torch
    torch.set_num_threads(2)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; seconds as "
          f"wall / CPU, each a fresh process including imports (no torch)")
    with tempfile.TemporaryDirectory() as kernels:     # the generic kernels' Numba cache
        for name in ("mlp", "chain20", "mlp"):
            with tempfile.TemporaryDirectory() as d:
                cold = child_seconds(name, d, kernels)
                warm = child_seconds(name, d, kernels)
            print(f"{name}: cold (empty graph cache) {cold[0]:.2f} / {cold[1]:.2f} s; "
                  f"warm (populated) {warm[0]:.2f} / {warm[1]:.2f} s")

    ns: dict = {}
    exec(GRAPHS, ns)
    from codegen import compile_graph
    g, arrays = ns["mlp"]()
    exe = compile_graph(g, "numba-cpu")
    entry = exe.entry
    r = interleaved({"exe(arrays)": lambda: exe(arrays), "raw entry": lambda: entry(*arrays)},
                    number=2000)
    base = r["raw entry"]
    for k, v in r.items():
        print(f"MLP 1x784 per call: {k:16s} {v * 1e6:7.2f} us  (+{(v - base) * 1e6:.2f} us)")
    _through_tracejit()

    from test_numba_graphs import chain_graph
    n = 1 << 20
    chain = compile_graph(chain_graph(n), "numba-cpu")
    x = np.random.default_rng(0).uniform(-3, 3, n).astype(np.float32)
    xt = torch.from_numpy(x)
    F = torch.nn.functional

    def eager():
        with torch.no_grad():
            return torch.tanh(xt * 1.5 + 0.5) * torch.sigmoid(xt) + F.gelu(xt) \
                - torch.sqrt(torch.abs(xt))
    got = chain([x])[0][0]
    np.testing.assert_allclose(got, eager().numpy(), rtol=1e-4, atol=1e-5)
    r = interleaved({"eager torch": eager, "numba-cpu fused": lambda: chain.entry(x)}, number=5)
    print(f"chain on 1M f32: eager {r['eager torch'] * 1e3:.2f} ms, numba-cpu "
          f"{r['numba-cpu fused'] * 1e3:.2f} ms, speed-up "
          f"{r['eager torch'] / r['numba-cpu fused']:.2f}x")


def _through_tracejit():
    """The torch-facing path: compiled(x) against the generated entry called with prepared
    NumPy arrays (the same work without guards, conversions and bookkeeping) and against
    the least any torch-facing call does (view in, wrap out). Eager runs in rounds of its
    own: between the others it evicts their caches and adds microseconds of noise."""
    import torch
    from torch import nn

    import tracejit
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10)).eval()
    x = torch.randn(1, 784)
    with torch.no_grad():
        fast = tracejit.compile(model)
        fast(x), fast(x)
        (spec,) = fast._tj_dispatcher.all_specializations()
        arrays = [x.numpy()] + [s.get() for s in spec.states]
        entry, weights = spec.entry, arrays[1:]
        eager = interleaved({"eager": lambda: model(x)}, number=2000)["eager"]
        rounds = interleaved({"generated entry": lambda: entry(*arrays),
                              "entry+x.numpy+from_numpy":
                                  lambda: torch.from_numpy(entry(x.numpy(), *weights)[0]),
                              "tracejit.compile": lambda: fast(x)},
                             number=2000, summary=None)
    print(f"MLP 1x784 via torch: eager {eager * 1e6:.2f} us; per call, median (least) of "
          f"{len(rounds['generated entry'])} rounds:")
    for k, v in rounds.items():
        over = [(a - b) * 1e6 for a, b in zip(v, rounds["generated entry"])]
        print(f"  {k:24s} {statistics.median(v) * 1e6:6.2f} us ({min(v) * 1e6:6.2f})"
              f"  +{statistics.median(over):.2f} us over the entry")


if __name__ == "__main__":
    main()
