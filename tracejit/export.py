"""``export_onnx``: a trained model -> a checked ONNX file that runs without torch.

The model is traced (under ``no_grad``, in whatever train/eval state the user left it),
optimised and lowered by ``codegen.onnx``. With ``dynamic_batch`` it is traced twice, at
batch 2 and batch 3 (copies of the example's rows), and ``ir.symbolic.generalize`` merges
the two traces into one graph whose batch dimension is a symbol; a model whose program
depends on the batch size cannot be exported that way and says so. Weights become
initializers named by their ``state_dict`` keys. The file is written atomically.

``load_weights`` and ``verify_onnx`` serve the ``tracejit export`` command (and users).
"""

from __future__ import annotations

import os
import pickle
import time
import warnings
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.utils._pytree import tree_flatten

import codegen.onnx as connx
import ir
from codegen.onnx.builder import where_of
from ir.errors import LoweringError
from ir.passes import optimize
from ir.passes.manager import MAX_ROUNDS, SIMPLIFYING
from ir.passes.params import fold_parameters
from ir.symbolic import generalize

from .api import CompiledModule, trace
from .errors import TraceJitError

TRACE_BATCHES = (2, 3)      # never 1: a size-1 dimension broadcasts and would specialise
BATCH_SYMBOL = "B"
BATCH_NAME = "batch"        # the ONNX dim_param users see
TRAIN_SENSITIVE = (nn.modules.dropout._DropoutNd, nn.modules.batchnorm._BatchNorm)


class ExportError(TraceJitError, ValueError):
    """The model or its example inputs cannot be exported as asked, or the file not written."""


@dataclass
class ExportReport:
    """What ``export_onnx`` wrote. Shapes hold ints and, for dynamic dims, names."""

    path: str
    opset: int
    inputs: list[tuple[str, tuple, str]]     # (name, shape, ONNX element type)
    outputs: list[tuple[str, tuple, str]]
    size_bytes: int
    nodes: int
    seconds: float
    dynamic_batch: bool
    traced_batch: int | None
    files: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        def sig(items):
            return ", ".join(f"{n}: {t}[{','.join(map(str, s))}]" for n, s, t in items)
        lines = [f"wrote {self.path} ({self.size_bytes:,} bytes, opset {self.opset}, "
                 f"{self.nodes} nodes, {self.seconds:.2f} s)",
                 f"  inputs:  {sig(self.inputs)}",
                 f"  outputs: {sig(self.outputs)}"]
        lines += [f"  warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def export_onnx(model, example_args, path, *, dynamic_batch: bool = True, opset=None,
                input_names=None, output_names=None) -> ExportReport:
    """Trace ``model`` on ``example_args`` (a tensor or tuple of tensors) and write it to
    ``path`` as an ONNX model (default opset 20; 17..21 accepted).

    With ``dynamic_batch``, dim 0 of every input is the batch and becomes the symbolic
    dimension ``batch``. Dropped guards (values ONNX cannot check) are listed in the
    report's ``warnings`` and warned about. A failed export leaves no file behind.
    """
    start = time.perf_counter()
    opset = connx.DEFAULT_OPSET if opset is None else opset
    connx.export.check_opset(opset)
    path = _check_path(path)
    args = _as_args(example_args)
    if isinstance(model, CompiledModule):
        model = model._orig_mod
    notes = []
    if _trains_differently(model):
        notes.append("the model is in training mode, so the export follows training "
                     "behaviour (dropout, batch statistics); call model.eval() first to "
                     "export inference behaviour")
    with torch.no_grad(), _one_thread():
        if dynamic_batch:
            batch = _batch_of(args)
            graph, state = _dynamic_graph(model, args)
        else:
            batch = args[0].shape[0] if args and args[0].dim() else None
            tr = trace(model, *args)
            _check_externs(tr)
            graph, state = tr.graph, tr.capture.state
    weights = {name: t.detach().cpu().numpy() for name, t in state.items()}
    graph, weights = _optimize(graph, weights)
    lowered = connx.lower_graph(graph, opset=opset, weights=weights, input_names=input_names,
                                output_names=output_names,
                                dynamic_dims={BATCH_SYMBOL: BATCH_NAME})
    for w in notes + lowered.warnings:
        warnings.warn(w, connx.ExportWarning, stacklevel=2)
    try:
        files = connx.save(lowered.model, path)
    except OSError as e:
        raise ExportError(f"cannot write {path}: {e.strerror or e}") from e
    return ExportReport(
        path=path, opset=opset, inputs=_signature(lowered.model.graph.input),
        outputs=_signature(lowered.model.graph.output),
        size_bytes=sum(os.path.getsize(f) for f in files), nodes=len(lowered.model.graph.node),
        seconds=time.perf_counter() - start, dynamic_batch=dynamic_batch, traced_batch=batch,
        files=files, warnings=notes + list(lowered.warnings))


@contextmanager
def _one_thread():
    """Trace with one intra-op thread: the traces run at batch 2 and 3, where each op is
    tiny and a thread pool only adds its wake-ups (on a busy machine, where the second
    thread is not scheduled, each small matmul waits milliseconds for it)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _optimize(graph: ir.Graph, weights: dict) -> tuple[ir.Graph, dict]:
    """One round of the simplifying passes, parameter folding (the weights are constants in
    the file), then the simplifying passes until nothing changes (the round after folding
    also finishes what the first round enabled). No fusion: ONNX has no fused nodes,
    onnxruntime fuses by itself, and the lowering would only inline the regions again."""
    graph = _simplify(graph, rounds=1)
    graph, weights = fold_parameters(graph, weights)
    return _simplify(graph), weights


def _simplify(graph: ir.Graph, rounds: int = MAX_ROUNDS) -> ir.Graph:
    for _ in range(rounds):
        graph, stats = optimize(graph, SIMPLIFYING)
        if not any(p.changes for p in stats.passes):
            break
    return graph


def _trains_differently(model) -> bool:
    """In training mode with a module that behaves differently there (dropout, batch norm)."""
    return isinstance(model, nn.Module) and model.training and any(
        m.training and isinstance(m, TRAIN_SENSITIVE) for m in model.modules())


def _check_externs(traced) -> None:
    """An op left to torch has no ONNX form: name it, its module scope and the user's line."""
    for node in traced.capture.externs:
        raise LoweringError(
            f"op {node.attrs.get('target', 'extern')} at {where_of(node)} has no tracejit "
            "lowering and would run in torch, so it cannot be exported to ONNX; rewrite that "
            "line with supported ops, or add a rule for it to tracejit/aten.py")


def _check_path(path) -> str:
    """Fail before tracing on a path that cannot be written."""
    path = os.path.abspath(os.fspath(path))
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        raise ExportError(f"cannot write {path}: folder {folder} does not exist")
    if os.path.isdir(path):
        raise ExportError(f"cannot write {path}: it is a folder; give a file name such as "
                          f"{os.path.join(path, 'model.onnx')}")
    if not os.access(folder, os.W_OK):
        raise ExportError(f"cannot write {path}: folder {folder} is not writable")
    return path


def _as_args(example_args) -> tuple:
    args = (example_args,) if isinstance(example_args, torch.Tensor) else tuple(example_args)
    for i, a in enumerate(args):
        if not isinstance(a, torch.Tensor):
            raise ExportError(f"example_args[{i}] is {type(a).__name__}; export_onnx takes a "
                              "tensor or a tuple of tensors")
    if not args:
        raise ExportError("export_onnx needs at least one example input tensor")
    return args


def _batch_of(args: tuple) -> int:
    sizes = {a.shape[0] if a.dim() else None for a in args}
    if None in sizes or len(sizes) != 1:
        shapes = ", ".join(str(tuple(a.shape)) for a in args)
        raise ExportError(f"dynamic_batch needs dim 0 of every input to be the batch, but the "
                          f"example inputs have shapes {shapes}; pass dynamic_batch=False to "
                          "export these shapes as they are")
    return sizes.pop()


def with_batch(t: torch.Tensor, n: int) -> torch.Tensor:
    """``t`` with ``n`` rows along dim 0, repeating its rows cyclically."""
    return t[torch.arange(n) % t.shape[0]]


def _dynamic_graph(model, args: tuple) -> tuple[ir.Graph, dict]:
    traces = [trace(model, *(with_batch(a, n) for a in args)) for n in TRACE_BATCHES]
    _check_externs(traces[0])
    graph = generalize(traces[0].graph, traces[1].graph, TRACE_BATCHES, symbol=BATCH_SYMBOL)
    name = type(model).__name__ if isinstance(model, nn.Module) else \
        getattr(model, "__name__", "the function")
    why = None
    if graph is None:
        why = "its traces at batch 2 and batch 3 differ by more than the batch size"
    else:
        baked = [i.name for i in graph.inputs
                 if i.role != "input" and not i.value.type.is_static]
        if baked:
            why = f"tensors captured during the trace depend on the batch ({', '.join(baked)})"
    if why is not None:
        raise ExportError(f"cannot export {name} with a dynamic batch: {why}, so it is not "
                          "uniform in the batch (dim 0 of every input). Use "
                          "dynamic_batch=False (--no-dynamic-batch) to export it for the "
                          "example's batch size only")
    return graph, traces[0].capture.state


def _signature(values) -> list[tuple[str, tuple, str]]:
    import onnx
    out = []
    for v in values:
        tt = v.type.tensor_type
        shape = tuple(d.dim_param or d.dim_value for d in tt.shape.dim)
        out.append((v.name, shape, onnx.TensorProto.DataType.Name(tt.elem_type).lower()))
    return out


# ---- helpers for the CLI (and for users checking an export) ---------------------------------

def load_weights(model: nn.Module, path) -> None:
    """Load a state_dict saved with ``torch.save`` into ``model`` without unpickling
    arbitrary objects (``weights_only=True``); a key or shape mismatch is one clear error."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ExportError(f"weights file {path} does not exist")
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as e:
        if not zipfile.is_zipfile(path):      # torch.save writes zip archives
            raise ExportError(f"cannot load weights {path}: not a state_dict written by "
                              "torch.save") from e
        raise ExportError(f"cannot load weights {path}: it holds Python objects besides "
                          "tensors (a pickled model?), which weights_only=True refuses to "
                          "unpickle; save model.state_dict() instead") from e
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ExportError(f"cannot load weights {path}: not a state_dict written by "
                          f"torch.save ({first})") from e
    if not isinstance(state, dict) or \
            not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise ExportError(f"weights {path} hold a {type(state).__name__}, not a state_dict "
                          "(save one with torch.save(model.state_dict(), path))")
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    bad_shape = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
                 if k in state and state[k].shape != v.shape]
    problems = [f"{label} {_some(keys)}" for label, keys in (
        ("missing keys", missing), ("unexpected keys", unexpected),
        ("shape mismatch (file vs model)", bad_shape)) if keys]
    if problems:
        raise ExportError(f"weights {path} do not fit {type(model).__name__}: "
                          + "; ".join(problems))
    model.load_state_dict(state)


def _some(items: list[str], limit: int = 5) -> str:
    more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


@dataclass
class Difference:
    batch: int
    output: str
    max_abs: float
    max_rel: float     # max |onnx - eager| / max |eager|
    ok: bool


def verify_onnx(model, path, inputs: list[tuple], *, rtol=1e-3, atol=1e-4) -> list[Difference]:
    """Run the ONNX file in onnxruntime and ``model`` eagerly on each tuple of inputs."""
    import onnxruntime as ort
    session = ort.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    out_names = [o.name for o in session.get_outputs()]
    diffs = []
    for args in inputs:
        with torch.no_grad():
            eager = [t for t in tree_flatten(model(*args))[0] if isinstance(t, torch.Tensor)]
        got = session.run(None, {n: a.numpy() for n, a in zip(names, args)})
        for name, g, e in zip(out_names, got, eager):
            e = e.numpy()
            if g.shape != e.shape:
                raise ExportError(f"output {name} has shape {g.shape} in onnxruntime but "
                                  f"{e.shape} in eager torch")
            err = np.abs(g.astype(np.float64) - e.astype(np.float64))
            scale = float(np.abs(e).max()) if e.size else 0.0
            max_abs = float(err.max()) if err.size else 0.0
            diffs.append(Difference(int(args[0].shape[0]) if args[0].dim() else 1, name,
                                    max_abs, max_abs / scale if scale else max_abs,
                                    bool(np.allclose(g, e, rtol=rtol, atol=atol))))
    return diffs
