"""Specialisations and the per-call path: guards, torch <-> NumPy, the compiled executable.

A ``Dispatcher`` owns the specialisations of one compiled callable, keyed by the guard
key of a call (input structure, shapes, dtypes, devices, requires_grad, grad mode,
``training`` of every submodule). Data-dependent guards live inside the graphs; when
one fails the call is redone eagerly while tracing, adding a specialisation.
Invariant (DESIGN §4): a call never silently returns something eager would not.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.utils._pytree import tree_flatten, tree_unflatten

import codegen
import ir

from .capture import Capture, capture
from .errors import TraceJitError
from .externs import numpy_extern


class TraceJitWarning(UserWarning):
    """A compiled callable ran eagerly, or gave up specialising; the message says why."""


def _state_source(module: nn.Module | None, name: str, tensor: torch.Tensor):
    """A zero-argument function returning the current tensor behind a graph input."""
    if module is None:
        return lambda: tensor
    prefix, _, attr = name.rpartition(".")
    try:
        owner = module.get_submodule(prefix) if prefix else module
    except AttributeError:
        return lambda: tensor
    for table in (owner._parameters, owner._buffers):
        if attr in table:
            return lambda table=table, attr=attr: table[attr]
    return lambda: tensor


class _StateView:
    """The NumPy view of a parameter, remade only when the tensor or its storage changes."""

    __slots__ = ("source", "tensor", "ptr", "array")

    def __init__(self, source):
        self.source = source
        self.tensor = None
        self.ptr = None
        self.array = None

    def get(self) -> np.ndarray:
        t = self.source()
        if t is not self.tensor or t.data_ptr() != self.ptr:
            self.tensor, self.ptr = t, t.data_ptr()
            self.array = t.detach().numpy()
        return self.array


@dataclass
class Specialization:
    """One traced and compiled graph, valid for calls with the guard key it was made for."""

    capture: Capture
    graph: ir.Graph                      # the optimised graph the backend compiled
    executable: Any
    states: list[_StateView]
    detach: list[bool]                   # per user input: needs .detach() before .numpy()
    writes: list[tuple[str, _StateView]]
    compile_ms: float = 0.0
    pass_stats: Any = None
    calls: int = 0

    def run(self, tensors: list[torch.Tensor]):
        arrays = [t.detach().numpy() if d else t.numpy() for t, d in zip(tensors, self.detach)]
        arrays += [s.get() for s in self.states]
        outs, writes = self.executable(arrays, extern=numpy_extern)
        for name, view in self.writes:
            view.get()[...] = writes[name]
        self.calls += 1
        cap = self.capture
        results = [torch.from_numpy(o) for o in outs]
        if len(cap.out_leaves) == 1 and cap.out_leaves[0] == 0 and cap.out_spec.num_leaves == 1:
            return tree_unflatten(results, cap.out_spec)
        leaves = [results[x] if isinstance(x, int) and not isinstance(x, bool) else x
                  for x in cap.out_leaves]
        return tree_unflatten(leaves, cap.out_spec)


@dataclass
class EagerSpecialization:
    """Calls with this guard key run eagerly, for the stated reason."""

    reason: str
    calls: int = 0


@dataclass
class EagerRun:
    reason: str
    count: int = 0


@dataclass
class Dispatcher:
    fn: Callable
    module: nn.Module | None
    backend: str
    fullgraph: bool = False
    options: dict = field(default_factory=dict)
    specs: dict = field(default_factory=dict)       # guard key -> list of specialisations
    eager_runs: dict = field(default_factory=dict)  # reason -> EagerRun
    gave_up: str | None = None
    last_key: Any = None

    def __post_init__(self):
        self.limit = int(self.options.get("max_specializations", 8))
        self.passes = self.options.get("passes", "default")
        self._bind_modules()
        self.name = type(self.module).__name__ if self.module is not None else \
            getattr(self.fn, "__name__", "fn")

    def _bind_modules(self) -> None:
        """Remember the module tree: graphs read parameters through the modules in it."""
        root = self.module
        self.modules = list(root.modules()) if root is not None else []
        self.params = list(root.parameters()) if root is not None else []
        self.children = [(m._modules, name, child) for m in self.modules
                         for name, child in m._modules.items()]

    def _tree_changed(self) -> bool:
        return any(table.get(name) is not child for table, name, child in self.children)

    # ---- the call path ------------------------------------------------------------------

    def __call__(self, *args, **kwargs):
        if self.children and self._tree_changed():
            self._bind_modules()        # a submodule was replaced: the graphs read the old one
            self.specs.clear()
        fast = not kwargs and all(type(a) is torch.Tensor for a in args)
        leaves = args if fast else tree_flatten((args, kwargs))[0]
        grad = torch.is_grad_enabled()
        if grad and (any(isinstance(t, torch.Tensor) and t.requires_grad for t in leaves)
                     or any(p.requires_grad for p in self.params)):
            return self._eager("autograd: the call needs gradients, and compiled backward is "
                               "not supported yet; it runs eagerly (wrap inference in "
                               "torch.no_grad() or torch.inference_mode())", args, kwargs)
        tensors = leaves if fast else [t for t in leaves if isinstance(t, torch.Tensor)]
        key = self._key(leaves, tensors, fast, grad)
        failed = None
        for spec in self.specs.get(key, ()):
            if isinstance(spec, EagerSpecialization):
                spec.calls += 1
                return self.fn(*args, **kwargs)
            try:
                return spec.run(tensors)
            except ir.GuardFailed as e:
                failed = failed or describe_guard(spec, e)
                continue
        return self._specialize(key, args, kwargs, failed)

    def _key(self, leaves, tensors, fast: bool, grad: bool):
        meta = tuple((t.shape, t.dtype, t.device, t.requires_grad)
                     if isinstance(t, torch.Tensor) else (type(t), t) for t in leaves)
        training = tuple(m.training for m in self.modules)
        return (fast, meta, training, grad, _aliasing(tensors))

    def _eager(self, reason: str, args, kwargs, stacklevel: int = 4):
        """Run eagerly; the first time for ``reason``, warn at the user's call (the
        stacklevel counts this frame and tracejit's ones above it)."""
        run = self.eager_runs.get(reason)
        if run is None:
            run = self.eager_runs[reason] = EagerRun(reason)
            warnings.warn(f"tracejit: {self.name} runs eagerly: {reason}", TraceJitWarning,
                          stacklevel=stacklevel)
        run.count += 1
        return self.fn(*args, **kwargs)

    # ---- making specialisations -------------------------------------------------------------

    def _specialize(self, key, args, kwargs, failed_guard: str | None = None):
        if self.gave_up is not None:
            return self._eager(self.gave_up, args, kwargs, stacklevel=5)
        n = sum(len(v) for v in self.specs.values())
        if n >= self.limit:
            self.gave_up = (f"gave up after {n} specialisations (limit max_specializations="
                            f"{self.limit}); the guard that kept failing: "
                            f"{describe_change(self.last_key, key, failed_guard)}")
            return self._eager(self.gave_up, args, kwargs, stacklevel=5)
        self.last_key = key
        cap = capture(self.fn, args, kwargs, module=self.module, name=self.name,
                      fullgraph=self.fullgraph)
        if cap.aborted is not None:
            self.specs.setdefault(key, []).append(EagerSpecialization(cap.aborted))
            warnings.warn(f"tracejit: {self.name} runs eagerly: {cap.aborted}", TraceJitWarning,
                          stacklevel=4)
            return cap.result
        leaves = tree_flatten((args, kwargs))[0]
        tensors = [t for t in leaves if isinstance(t, torch.Tensor)]
        self.specs.setdefault(key, []).insert(0, self._compile(cap, tensors))
        return cap.result

    def _compile(self, cap: Capture, tensors) -> Specialization:
        start = time.perf_counter()
        graph, stats = optimize(cap.graph, self.passes)
        exe = codegen.compile_graph(graph, self.backend, self.options.get("backend_options"))
        sources = {i.name: _StateView(_state_source(self.module, i.name, cap.state[i.name]))
                   for i in graph.inputs if i.role != "input"}
        n_inputs = sum(1 for i in graph.inputs if i.role == "input")
        if n_inputs != len(tensors):
            raise TraceJitError(f"internal: graph has {n_inputs} inputs for {len(tensors)} "
                                "tensors")
        states = [sources[i.name] for i in graph.inputs if i.role != "input"]
        writes = [(name, sources[name]) for name in graph.writes]
        return Specialization(cap, graph, exe, states, [t.requires_grad for t in tensors],
                              writes, compile_ms=(time.perf_counter() - start) * 1e3,
                              pass_stats=stats)

    def all_specializations(self) -> list:
        return [s for specs in self.specs.values() for s in specs]


def optimize(graph: ir.Graph, passes):
    """Run the pass pipeline when the passes package is present (``passes="none"`` skips)."""
    try:
        from ir.passes import optimize as run_passes
    except ImportError:
        return graph, None
    return run_passes(graph, passes=passes)


def _aliasing(tensors) -> tuple | None:
    """None when all input tensors are distinct objects, else each one's first position:
    a graph traced with one tensor passed twice reads it once."""
    if len(tensors) < 2:
        return None
    ids = [id(t) for t in tensors]
    if len(set(ids)) == len(ids):
        return None
    return tuple(ids.index(i) for i in ids)


def describe_guard(spec: Specialization, err: ir.GuardFailed) -> str:
    """The in-graph guard behind ``err``, by source line, with the values seen."""
    def same(a, b):
        return a == b or (a != a and b != b)
    for node in spec.capture.guards:
        if same(node.attrs["expected"], err.expected):
            where = "  ".join(p for p in (node.scope, node.loc) if p) or "unknown location"
            return (f"the data-dependent guard at {where} (value {err.expected!r} when "
                    f"traced, now {err.actual!r})")
    return f"a data-dependent guard inside the graph ({err})"


def describe_change(old, new, failed_guard: str | None = None) -> str:
    """Which part of the guard key differs between two calls, in words."""
    if old is None:
        return "first call"
    _, old_meta, old_train, old_grad, old_alias = old
    _, new_meta, new_train, new_grad, new_alias = new
    if old_alias != new_alias:
        return f"which inputs are the same tensor changed {old_alias} -> {new_alias}"
    if old_grad != new_grad:
        return f"grad mode changed {old_grad} -> {new_grad}"
    if old_train != new_train:
        return "module.training changed"
    if len(old_meta) != len(new_meta):
        return f"number of inputs changed {len(old_meta)} -> {len(new_meta)}"
    for i, (a, b) in enumerate(zip(old_meta, new_meta)):
        if a != b:
            if len(a) == 4 and len(b) == 4:
                what = ("shape", "dtype", "device", "requires_grad")
                for name, x, y in zip(what, a, b):
                    if x != y:
                        return f"input {i} {name} changed {tuple(x) if name == 'shape' else x}" \
                               f" -> {tuple(y) if name == 'shape' else y}"
            return f"input {i} changed {a[-1]!r} -> {b[-1]!r}"
    return failed_guard or "a data-dependent guard inside the graph"
