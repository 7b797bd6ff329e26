"""One traced call: run a function or module under the tracer and package the result.

A ``Capture`` holds the graph, how to rebuild the output structure, and where each
non-input graph input (parameters, buffers, captured constants) is read from at every call.
"""

from __future__ import annotations

import inspect
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn
from torch.utils._pytree import TreeSpec, tree_flatten, tree_flatten_with_path, keystr

import ir

from . import fastpath
from .errors import TraceAbort
from .provenance import ScopeStack
from .state import StateRecord, watch
from .tracer import DataReads, Tracer, tensor_type


@dataclass
class Capture:
    graph: ir.Graph
    in_spec: TreeSpec
    out_spec: TreeSpec
    out_leaves: list[Any]          # per output leaf: an int (graph output index) or a constant
    state: dict[str, torch.Tensor]  # non-input graph inputs by name, at trace time
    result: Any                    # what the traced (eager) call returned
    trace_ms: float = 0.0
    aborted: str | None = None
    guards: list[ir.Node] = field(default_factory=list)
    externs: list[ir.Node] = field(default_factory=list)
    state_guards: tuple = ()       # (module.__dict__, name, value) read by forward


def named_state(module: nn.Module | None) -> dict[int, tuple[str, str]]:
    """id(tensor) -> (state_dict name, role) for parameters and buffers, persistent or not."""
    if module is None:
        return {}
    out: dict[int, tuple[str, str]] = {}
    for name, p in module.named_parameters(remove_duplicate=False):
        out.setdefault(id(p), (name, "param"))
    for name, b in module.named_buffers(remove_duplicate=False):
        out.setdefault(id(b), (name, "buffer"))
    return out


def input_names(fn: Callable, args, kwargs) -> list[str]:
    """Readable names for the tensor leaves of (args, kwargs): parameter names and paths."""
    try:
        bound = inspect.signature(fn).bind(*args, **kwargs)
        items = list(bound.arguments.items())
    except (TypeError, ValueError):
        items = [(f"arg{i}", a) for i, a in enumerate(args)] + list(kwargs.items())
    names = []
    for pname, value in items:
        for path, leaf in tree_flatten_with_path(value)[0]:
            if isinstance(leaf, torch.Tensor):
                names.append(_clean(pname + keystr(path)))
    return _dedupe(names)


def _clean(name: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_.]+", "_", name).strip("_")
    return name if re.match(r"[A-Za-z_]", name) else f"x_{name}"


def _dedupe(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for n in names:
        k = seen.get(n, 0)
        seen[n] = k + 1
        out.append(n if k == 0 else f"{n}_{k}")
    return out


@contextmanager
def fast_paths_off():
    """oneDNN RNN and the MHA fast path hide the composite form: switch both off."""
    mha = torch.backends.mha.get_fastpath_enabled()
    mkldnn = torch._C._get_mkldnn_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    torch._C._set_mkldnn_enabled(False)     # (mkldnn.flags() would also touch TF32 and warn)
    try:
        yield
    finally:
        torch._C._set_mkldnn_enabled(mkldnn)
        torch.backends.mha.set_fastpath_enabled(mha)


_depth = [0]


def tracing() -> bool:
    """Whether a capture is running. A compiled object called inside one runs its original
    code eagerly (``Dispatcher.__call__``), so that the capture records its ops, as
    torch.compile inlines a compiled module called inside another: its own compiled code
    would hand the capture outputs made outside it, which it could only take as constants."""
    return _depth[0] > 0


@contextmanager
def _tracing():
    _depth[0] += 1
    try:
        with fastpath.missing():    # the fast paths, which do not look at _depth
            yield
    finally:
        _depth[0] -= 1


def capture(fn: Callable, args: tuple, kwargs: dict, *, module: nn.Module | None = None,
            name: str | None = None, fullgraph: bool = False) -> Capture:
    """Run ``fn(*args, **kwargs)`` once, eagerly, recording it. Never runs it twice."""
    start = time.perf_counter()
    flat, in_spec = tree_flatten((args, kwargs))
    tensors = [x for x in flat if isinstance(x, torch.Tensor)]
    graph = ir.Graph(name or getattr(fn, "__name__", "graph"))
    scopes = ScopeStack(module)
    tracer = Tracer(graph, named_state(module), scopes, tensors, fullgraph=fullgraph)
    names = input_names(module.forward if module is not None else fn, args, kwargs)
    if len(names) != len(tensors):
        names = [f"arg{i}" for i in range(len(tensors))]
    for t, n in zip(tensors, names):
        v = graph.add_input(n, tensor_type(t), "input")   # one per tensor leaf, even repeats
        if id(t) not in tracer.env:
            tracer.bind(t, v)
    record = StateRecord()
    with _tracing(), fast_paths_off(), scopes.active(), watch(module, record), \
            DataReads(tracer), tracer:
        result = fn(*args, **kwargs)
    out_flat, out_spec = tree_flatten(result)
    leaves: list[Any] = []
    aborted = tracer.aborted or record.problem()
    if aborted is None:
        try:
            for leaf in out_flat:
                if isinstance(leaf, torch.Tensor):
                    leaves.append(len(graph.outputs))
                    graph.outputs.append(tracer.value_of(leaf))
                else:
                    leaves.append(leaf)
        except TraceAbort as e:
            aborted = e
    return Capture(graph=graph, in_spec=in_spec, out_spec=out_spec, out_leaves=leaves,
                   state=dict(tracer.state_inputs), result=result,
                   trace_ms=(time.perf_counter() - start) * 1e3,
                   aborted=None if aborted is None else str(aborted),
                   guards=list(tracer.guards), externs=list(tracer.externs),
                   state_guards=record.guard())
