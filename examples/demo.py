"""A short tour of tracejit: trace a model, read its IR before and after the passes,
check that compiled results equal eager ones, time eager against compiled, and export
the model to ONNX and run the file in onnxruntime.

    python examples/demo.py            # the tour
    python examples/demo.py --quick    # fewer timing repeats (used by the tests)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import onnxruntime
import torch
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
import models  # noqa: E402

import codegen  # noqa: E402
import tracejit  # noqa: E402

console = Console()


def median_us(fn, x, repeats: int) -> float:
    """Median time of one call, from `repeats` timed blocks of 10 calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(10):
            fn(x)
        times.append((time.perf_counter() - start) / 10 * 1e6)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer timing repeats")
    args = ap.parse_args()
    repeats = 5 if args.quick else 50
    torch.manual_seed(0)

    model = models.SimpleNN().eval()
    x = torch.randn(1, 784)
    with torch.no_grad():
        tr = tracejit.trace(model, x)
    console.rule("1. The raw trace of SimpleNN (every aten op it ran)")
    print(tr)
    console.rule("2. After the default passes (linear recovered, epilogue fused)")
    print(tr.optimized())

    backends = [b for b in (tracejit.DEFAULT_BACKEND, "onnxruntime") if b in codegen.BACKENDS]
    zoo = {
        "SimpleNN 1x784": (models.SimpleNN(), torch.randn(1, 784)),
        "LeNet 1x1x28x28": (models.LeNet(), torch.randn(1, 1, 28, 28)),
        "PreNormMLP 1x16x64": (models.PreNormMLPBlock(), torch.randn(1, 16, 64)),
    }
    console.rule("3. Compiled equals eager, and how long a call takes (batch 1)")
    short = {"numba-cpu": "numba", "onnxruntime": "ort"}
    table = Table("model", "eager µs", *(f"{short.get(b, b)} µs" for b in backends),
                  *(f"{short.get(b, b)} ×" for b in backends), "max |diff|")
    for name, (m, inp) in zoo.items():
        m.eval()
        compiled = {b: tracejit.compile(m, backend=b) for b in backends}
        with torch.no_grad():
            ref = m(inp)
            diffs = []
            for c in compiled.values():
                c(inp)                                  # trace + compile
                diffs.append(float((c(inp) - ref).abs().max()))
            eager = median_us(m, inp, repeats)
            times = [median_us(c, inp, repeats) for c in compiled.values()]
        table.add_row(name, f"{eager:.1f}", *(f"{t:.1f}" for t in times),
                      *(f"{eager / t:.2f}x" for t in times), f"{max(diffs):.1e}")
    console.print(table)
    console.print("Timings are medians of short runs on this machine; "
                  "benchmarks/ has the careful comparison.")

    console.rule("4. Export to ONNX and run the file in onnxruntime")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "simplenn.onnx"
        report = tracejit.export_onnx(model, (x,), path)
        print(report)
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        batch = torch.randn(5, 784)                       # the batch dimension is symbolic
        (got,) = session.run(None, {session.get_inputs()[0].name: batch.numpy()})
        with torch.no_grad():
            diff = float((torch.from_numpy(got) - model(batch)).abs().max())
        console.print(f"onnxruntime at batch 5 vs eager: max |diff| {diff:.1e}")


if __name__ == "__main__":
    main()
