"""The ``tracejit`` command line (also ``python -m tracejit``).

Errors a user can cause print one line on stderr and exit with status 2: no traceback,
and no output file is left behind.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import inspect
import json
import os
import re
import sys
import tempfile
import warnings
from pathlib import Path

from .errors import InputSpecError, ModelLoadError, TraceJitError

DTYPES = {"float32": "float32", "f32": "float32", "float64": "float64", "f64": "float64",
          "float16": "float16", "f16": "float16", "int64": "int64", "i64": "int64",
          "int32": "int32", "i32": "int32", "bool": "bool"}
INT_HIGH = 10   # integer inputs are drawn from [0, INT_HIGH): valid token ids for any vocab


def parse_input_spec(spec: str):
    """``1x3x32x32`` or ``2x16:int64`` -> (shape, torch dtype name)."""
    m = re.fullmatch(r"\s*(\d+(?:x\d+)*|scalar)\s*(?::\s*(\w+))?\s*", spec)
    if not m:
        raise InputSpecError(f"bad --input {spec!r}: expected sizes joined by 'x' with an "
                             "optional dtype, e.g. 1x784 or 2x16:int64")
    shape = () if m.group(1) == "scalar" else tuple(int(d) for d in m.group(1).split("x"))
    dtype = DTYPES.get((m.group(2) or "float32").lower())
    if dtype is None:
        raise InputSpecError(f"bad --input {spec!r}: unknown dtype {m.group(2)!r}; use one of "
                             f"{', '.join(sorted(set(DTYPES.values())))}")
    return shape, dtype


def make_inputs(specs: list[str], seed: int = 0):
    import torch
    gen = torch.Generator().manual_seed(seed)
    out = []
    for spec in specs:
        shape, dtype = parse_input_spec(spec)
        dt = getattr(torch, dtype)
        if dt.is_floating_point:
            out.append(torch.randn(shape, generator=gen).to(dt))
        elif dt == torch.bool:
            out.append(torch.rand(shape, generator=gen) > 0.5)
        else:
            out.append(torch.randint(0, INT_HIGH, shape, generator=gen, dtype=dt))
    return out


def load_model(ref: str):
    """``path/to/file.py:Name`` or ``package.module:Name`` -> an nn.Module in eval mode."""
    from torch import nn
    target, sep, name = ref.rpartition(":")
    if not sep or not target or not name:
        raise ModelLoadError(f"bad MODEL {ref!r}: expected path/to/file.py:Name or "
                             "package.module:Name")
    try:
        if target.endswith(".py") or os.sep in target:
            path = Path(target)
            if not path.is_file():
                raise ModelLoadError(f"model file {target} does not exist")
            spec = importlib.util.spec_from_file_location(path.stem, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules.setdefault(path.stem, module)
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(target)
    except ModelLoadError:
        raise
    except ImportError as e:
        raise ModelLoadError(f"cannot import {target}: {e}") from e
    except Exception as e:
        raise ModelLoadError(f"importing {target} raised {type(e).__name__}: {e}") from e
    if not hasattr(module, name):
        raise ModelLoadError(f"{target} has no attribute {name!r}")
    factory = getattr(module, name)
    if not callable(factory):
        raise ModelLoadError(f"{target}:{name} is not a class or function")
    try:
        inspect.signature(factory).bind()
    except TypeError:
        raise ModelLoadError(f"{target}:{name} needs constructor arguments; point MODEL at a "
                             "zero-argument factory function instead") from None
    except ValueError:
        pass
    try:
        model = factory()
    except Exception as e:
        raise ModelLoadError(f"building {target}:{name}() raised {type(e).__name__}: {e}") from e
    if not isinstance(model, nn.Module):
        raise ModelLoadError(f"{target}:{name}() returned {type(model).__name__}, "
                             "not an nn.Module")
    return model.eval()


def write_output(text: str, path: str | None) -> None:
    """Print, or write atomically (a temp file then rename), so no half-written file stays."""
    if path is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return
    target = Path(path)
    if not target.parent.exists():
        raise TraceJitError(f"cannot write {path}: folder {target.parent} does not exist")
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text if text.endswith("\n") else text + "\n")
        os.replace(tmp, target)
    except BaseException:
        os.unlink(tmp)
        raise


def format_graph(graph, fmt: str) -> str:
    import ir
    if fmt == "json":
        return json.dumps(ir.to_json(graph), indent=1)
    if fmt == "dot":
        return ir.to_dot(graph)
    return ir.print_graph(graph)


def user_call(args, fn):
    """Run the user's model; an exception from it becomes one line naming the model."""
    try:
        return fn()
    except TraceJitError:
        raise
    except Exception as e:
        raise ModelLoadError(f"running {args.model} on inputs {args.input} raised "
                             f"{type(e).__name__}: {e}") from e


def cmd_explain(args) -> None:
    import warnings as _w

    import tracejit
    from .runtime import TraceJitWarning

    model = load_model(args.model)
    inputs = make_inputs(args.input)
    with _w.catch_warnings():           # explain reports the same reasons itself
        _w.simplefilter("ignore", TraceJitWarning)
        report = user_call(args, lambda: tracejit.explain(model, *inputs, backend=args.backend))
    print(report)


def cmd_bench(args) -> int:
    """Run benchmarks/run.py of this source checkout with the remaining arguments."""
    import runpy
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "run.py"
    if not script.is_file():
        raise TraceJitError("tracejit bench runs benchmarks/run.py from a source checkout of "
                            f"tracejit; {script} is missing")
    rest = list(args.bench_args)
    sys.argv = [str(script), *(rest[1:] if rest[:1] == ["--"] else rest)]
    sys.path.insert(0, str(script.parent))
    runpy.run_path(str(script), run_name="__main__")
    return 0


def cmd_warmup(args) -> int:
    """Compile the numba-cpu kernel library into Numba's cache (``tracejit.warmup``)."""
    from rich.progress import Progress

    from .warmup import MODELS, kernel_cache, warm_up

    with Progress(transient=True) as progress:
        task = progress.add_task("compiling the numba-cpu kernels", total=len(MODELS))

        def done(name: str, seconds: float) -> None:
            progress.console.print(f"  {name}: {seconds:.1f} s")
            progress.advance(task)

        total = warm_up(done)
    print(f"numba-cpu kernels ready in {total:.1f} s, cached in {kernel_cache()}")
    return 0


def _model_arguments(p: argparse.ArgumentParser, input_help: str) -> None:
    p.add_argument("model", metavar="MODEL",
                   help="path/to/file.py:Name or package.module:Name; Name is an nn.Module "
                        "class built with no arguments, or a zero-argument factory")
    p.add_argument("--input", action="append", required=True, metavar="SHAPE[:DTYPE]",
                   help=input_help)


def cmd_dump(args) -> None:
    import torch

    import tracejit
    from ir.passes import optimize

    model = load_model(args.model)
    inputs = make_inputs(args.input)
    with torch.no_grad():
        tr = user_call(args, lambda: tracejit.trace(model, *inputs))
    chunks = []
    if args.passes == "each":
        chunks.append(f"// after: trace (raw)\n{format_graph(tr.graph, args.format)}")
        optimize(tr.graph, passes="each", on_pass=lambda name, g: chunks.append(
            f"// after: {name}\n{format_graph(g, args.format)}"))
        text = "\n\n".join(chunks)
    else:
        graph, _ = optimize(tr.graph, passes=args.passes)
        text = format_graph(graph, args.format)
    write_output(text, args.output)


def cmd_export(args) -> int:
    """Trace MODEL (with --weights), write ONNX to -o, and with --verify compare it to eager
    in onnxruntime at the traced batch and, when dynamic, another one (exit 1 if off)."""
    from codegen.onnx import ExportWarning

    from .export import export_onnx, load_weights, verify_onnx

    model = load_model(args.model)
    if args.weights:
        load_weights(model, args.weights)
    inputs = make_inputs(args.input)
    with warnings.catch_warnings():     # the report below lists them
        warnings.simplefilter("ignore", ExportWarning)
        report = user_call(args, lambda: export_onnx(
            model, tuple(inputs), args.output, opset=args.opset,
            dynamic_batch=not args.no_dynamic_batch))
    print(report)
    if not args.verify:
        return 0
    batches = [report.traced_batch]
    if report.dynamic_batch:
        batches.append(report.traced_batch + 3)
    cases = [tuple(make_inputs([_with_batch(s, b) for s in args.input], seed=1 + b))
             for b in batches]
    ok = True
    for d in verify_onnx(model, args.output, cases):
        ok &= d.ok
        print(f"verify batch {d.batch} {d.output}: max abs diff {d.max_abs:.3g}, max rel diff "
              f"{d.max_rel:.3g} (to max |eager|) {'ok' if d.ok else 'MISMATCH'}")
    return 0 if ok else 1


def _with_batch(spec: str, batch: int) -> str:
    shape, dtype = parse_input_spec(spec)
    return "x".join(map(str, (batch,) + tuple(shape[1:]))) + f":{dtype}"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tracejit", description="A tracing JIT compiler for PyTorch models.")
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("dump", help="trace a model and print its IR",
                       description="Trace MODEL on random inputs and print its IR graph.")
    _model_arguments(d, "one per model input, e.g. 1x784 or 2x16:int64 (repeatable); floats "
                        f"are standard normal, integers uniform in [0, {INT_HIGH})")
    d.add_argument("--passes", choices=("none", "default", "each"), default="default",
                   help="none: the raw trace; default: the optimised graph; each: the graph "
                        "after every pass, each under a header naming the pass")
    d.add_argument("--format", choices=("text", "json", "dot"), default="text")
    d.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    d.set_defaults(run=cmd_dump)
    e = sub.add_parser("export", help="export a model to ONNX",
                       description="Trace MODEL and write it as a checked ONNX model.")
    _model_arguments(e, "one per model input, e.g. 1x3x32x32; dim 0 is the batch")
    e.add_argument("-o", "--output", required=True, metavar="FILE", help="the .onnx file")
    e.add_argument("--weights", metavar="FILE",
                   help="a state_dict saved by torch.save (loaded with weights_only=True)")
    e.add_argument("--opset", type=int, default=None, metavar="N",
                   help="ONNX opset, 17..21 (default 20)")
    e.add_argument("--no-dynamic-batch", action="store_true",
                   help="export the given batch size only (default: symbolic batch dim)")
    e.add_argument("--verify", action="store_true",
                   help="compare onnxruntime with eager on random inputs at the traced batch "
                        "and, if dynamic, another; exit 1 beyond rtol 1e-3 / atol 1e-4")
    e.set_defaults(run=cmd_export)
    x = sub.add_parser("explain", help="compile a model, call it, and explain what happened",
                       description="Compile MODEL, call it once on random inputs under "
                                   "torch.no_grad(), and print its graphs, ops, fused regions, "
                                   "externs, guards (with source lines), specialisations, eager "
                                   "fallbacks and compile times.")
    _model_arguments(x, "one per model input, e.g. 1x784 or 2x16:int64 (repeatable)")
    x.add_argument("--backend", default="numba-cpu",
                   help="numba-cpu (default), onnxruntime, interpret or numba-cuda")
    x.set_defaults(run=cmd_explain)
    b = sub.add_parser("bench", help="benchmark eager against compiled (benchmarks/run.py)",
                       description="Run benchmarks/run.py; every argument after 'bench' goes "
                                   "to it (try: tracejit bench --help).")
    b.add_argument("bench_args", nargs=argparse.REMAINDER)
    b.set_defaults(run=cmd_bench)
    w = sub.add_parser("warmup", help="compile the numba-cpu kernel library ahead of use",
                       description="Compile small built-in models with numba-cpu so that "
                                   "Numba's on-disk cache holds every float32 kernel the "
                                   "backend uses: a model's first compile then builds only "
                                   "its own loops. Run it once per installation (make "
                                   "install does), with the NUMBA_CACHE_DIR your programs "
                                   "use.")
    w.set_defaults(run=cmd_warmup)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:           # everything after "bench" belongs to benchmarks/run.py
        args = argparse.Namespace(command="bench", bench_args=argv[1:], run=cmd_bench)
    else:
        args = parser.parse_args(argv)
    try:
        for spec in getattr(args, "input", None) or ():
            parse_input_spec(spec)
        rc = args.run(args)
    except TraceJitError as e:
        print(f"tracejit {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return rc or 0


if __name__ == "__main__":
    sys.exit(main())
