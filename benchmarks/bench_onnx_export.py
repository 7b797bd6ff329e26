"""ONNX export figures on the benchmark zoo: tracejit.export_onnx vs torch.onnx.export.

Run: .venv/bin/python benchmarks/bench_onnx_export.py [--quick] [--models A,B] [--out DIR]

Per model: export time (median of interleaved repeats, both exporters warmed up first, both
with a dynamic batch dimension), file size, node count, and onnxruntime latency of both
files at batch 1 (medians of interleaved blocks, same session options). torch's dynamo
exporter needs onnxscript; when it is missing the TorchScript exporter (dynamo=False) is
used, and the report says which one ran.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402

import tracejit  # noqa: E402
from benchmarks import zoo  # noqa: E402
from benchmarks.measure import interleaved, summary_us  # noqa: E402

OPSET = 20
THREADS = 2


def export_tracejit(model, x, path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tracejit.export_onnx(model, (x,), path, opset=OPSET)


def export_torch(model, x, path, dynamo: bool) -> None:
    kwargs = dict(input_names=["x"], output_names=["output"], opset_version=OPSET)
    if dynamo:
        kwargs["dynamic_shapes"] = ({0: torch.export.Dim("batch")},)
    else:
        kwargs["dynamic_axes"] = {"x": {0: "batch"}, "output": {0: "batch"}}
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)   # its fused kernel has no ONNX form
    try:
        with warnings.catch_warnings(), redirect_stdout(io.StringIO()), \
                redirect_stderr(io.StringIO()), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (x,), path, dynamo=dynamo, **kwargs)
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)


def pick_torch_exporter(folder: Path) -> tuple[bool, str]:
    """Try the dynamo exporter, then the TorchScript one, on a tiny model (also a warm-up)."""
    tiny, x = torch.nn.Linear(4, 2).eval(), torch.randn(2, 4)
    errors = []
    for dynamo in (True, False):
        try:
            export_torch(tiny, x, folder / "warm_torch.onnx", dynamo)
            return dynamo, f"torch.onnx.export(dynamo={dynamo})" + (
                f" [dynamo=True failed: {errors[0]}]" if errors else "")
        except Exception as e:
            errors.append(f"{type(e).__name__}: {str(e).splitlines()[0][:120]}")
    raise SystemExit("torch.onnx.export failed both ways: " + "; ".join(errors))


def median_export_s(fns: dict, repeats: int) -> dict[str, float]:
    times: dict[str, list[float]] = {k: [] for k in fns}
    for r in range(repeats):
        for name in (list(fns) if r % 2 == 0 else list(fns)[::-1]):
            start = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}


def session(path: Path) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = THREADS
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def bench_model(name: str, folder: Path, dynamo: bool, repeats: int, block_s: float) -> dict:
    model = zoo.build(name)
    x = zoo.make_input(name, 1)
    ours, theirs = folder / f"{name}.tracejit.onnx", folder / f"{name}.torch.onnx"
    try:
        export_torch(model, x, theirs, dynamo)
    except Exception as e:
        return {"model": name, "torch_failed": f"{type(e).__name__}: {str(e)[:200]}"}
    export_s = median_export_s({"tracejit": lambda: export_tracejit(model, x, ours),
                                "torch": lambda: export_torch(model, x, theirs, dynamo)},
                               repeats=3)
    sessions = {"tracejit": session(ours), "torch": session(theirs)}
    feed = x.numpy()
    with torch.no_grad():
        want = model(x).numpy()
    fns = {}
    for key, s in sessions.items():
        in_name = s.get_inputs()[0].name
        got = s.run(None, {in_name: feed})[0]
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4, err_msg=f"{name} {key}")
        fns[key] = (lambda s, n: lambda a: s.run(None, {n: a}))(s, in_name)
    lat = {k: summary_us(v)["median"] for k, v in interleaved(fns, feed, repeats,
                                                                 block_s).items()}
    row = {"model": name}
    for key, path in (("tracejit", ours), ("torch", theirs)):
        row[key] = {"export_s": export_s[key], "bytes": path.stat().st_size,
                    "nodes": len(onnx.load(str(path), load_external_data=False).graph.node),
                    "ort_us": lat[key]}
    row["latency_ratio"] = lat["tracejit"] / lat["torch"]
    return row


def table(rows: list[dict], exporter: str, load: tuple[float, float]) -> str:
    lines = [f"ONNX export on the zoo (batch 1; torch side: {exporter}; onnxruntime "
             f"{ort.__version__}, {THREADS} threads; times are medians; {os.cpu_count()} CPUs, "
             f"1-minute load average {load[0]:.1f} at the start, {load[1]:.1f} at the end)", "",
             "| model | export s (tracejit / torch) | file KB (tracejit / torch) | "
             "nodes (tracejit / torch) | ort latency us (tracejit / torch) | latency ratio |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        if "torch_failed" in r:
            lines.append(f"| {r['model']} | torch.onnx.export failed: {r['torch_failed']} "
                         "| | | | |")
            continue
        a, b = r["tracejit"], r["torch"]
        lines.append(f"| {r['model']} | {a['export_s']:.3f} / {b['export_s']:.3f} | "
                     f"{a['bytes'] / 1024:.0f} / {b['bytes'] / 1024:.0f} | "
                     f"{a['nodes']} / {b['nodes']} | {a['ort_us']:.1f} / {b['ort_us']:.1f} | "
                     f"{r['latency_ratio']:.2f}x |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="the zoo's quick models, fewer repeats")
    p.add_argument("--models", help="comma-separated zoo names (default: all)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = p.parse_args(argv)
    torch.set_num_threads(THREADS)
    names = (args.models.split(",") if args.models else
             [n for n, e in zoo.ZOO.items() if e.quick or not args.quick])
    repeats, block_s = (7, 0.05) if args.quick else (21, 0.1)
    rows = []
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        dynamo, exporter = pick_torch_exporter(folder)
        export_tracejit(torch.nn.Linear(4, 2).eval(), torch.randn(2, 4),
                        folder / "warm_tracejit.onnx")
        for name in names:
            rows.append(bench_model(name, folder, dynamo, repeats, block_s))
            print(f"  {name}: done", file=sys.stderr, flush=True)
    load = (load_start, os.getloadavg()[0])
    text = table(rows, exporter, load)
    print(text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "onnx_export.md").write_text(text + "\n")
    (out / "onnx_export.json").write_text(json.dumps(
        {"exporter": exporter, "onnxruntime": ort.__version__, "torch": torch.__version__,
         "cpu_count": os.cpu_count(), "load_average": load, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
