"""One compiled specialisation and its per-call path: torch <-> NumPy, the executable.

Parameters are read through their modules at every call; their NumPy views are remade
only when the tensor object or its storage changes (../shared/notes/call-overhead.md).
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils._pytree import tree_unflatten

import ir

from . import fastpath
from .capture import Capture
from .externs import numpy_extern


@contextmanager
def gc_paused():
    """Python's cyclic collector paused while tracejit traces, compiles, or loads compiled
    code (a specialisation's first run). Those steps allocate objects by the hundred
    thousand (Numba's registries, IR, LLVM wrappers), which set off full collections
    that walk every object torch has made: one took 110-137 ms of a 0.53-0.65 s warm
    start. Cycles made meanwhile wait for the next collection after it; a collector the
    caller had turned off stays off."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class TraceJitWarning(UserWarning):
    """A compiled callable ran eagerly, or gave up specialising; the message says why."""


def state_source(module: nn.Module | None, name: str, tensor: torch.Tensor):
    """(table, key) such that ``table[key]`` is the current tensor behind a graph input:
    a module's parameter or buffer dict, or a one-entry dict holding a captured tensor."""
    if module is not None:
        prefix, _, attr = name.rpartition(".")
        try:
            owner = module.get_submodule(prefix) if prefix else module
        except AttributeError:
            owner = None
        for table in (owner._parameters, owner._buffers) if owner is not None else ():
            if attr in table:
                return table, attr
    return {name: tensor}, name


class StateMoved(Exception):
    """A parameter or buffer a graph reads is gone from where the graph finds it (deleted,
    or replaced by a plain attribute): the specialisations of that module are stale."""


class StateView:
    """The NumPy view of a parameter, remade only when the tensor or its storage changes.

    ``contiguous`` says whether the view can go to a backend's entry point as it is."""

    __slots__ = ("table", "key", "tensor", "ptr", "array", "contiguous")

    def __init__(self, source):
        self.table, self.key = source
        self.tensor = self.ptr = self.array = None
        self.contiguous = False

    def get(self) -> np.ndarray:
        t = self.table.get(self.key)
        if t is None:
            raise StateMoved(self.key)
        if t is not self.tensor or t.data_ptr() != self.ptr:
            self.tensor, self.ptr = t, t.data_ptr()
            self.array = t.detach().numpy()
            self.contiguous = self.array.flags.c_contiguous
        return self.array


@dataclass
class Specialization:
    """One traced and compiled graph, valid for calls with the guard key it was made for."""

    capture: Capture
    graph: ir.Graph                      # the optimised graph the backend compiled
    executable: Any
    states: list[StateView]
    detach: list[bool]                   # per user input: needs .detach() before .numpy()
    writes: list[tuple[str, StateView]]
    compile_ms: float = 0.0
    pass_stats: Any = None
    calls: int = 0
    fast_paths: dict = field(default_factory=dict)   # guard key -> fast path or None

    def __post_init__(self):
        exe = self.executable
        # the lean path: the backend's compiled entry point, called with NumPy views
        self.entry = getattr(exe, "entry", None)
        self.n_outputs = len(self.graph.outputs)
        cap = self.capture
        self.single = cap.out_spec.is_leaf()
        self.leaf_pos = [x if isinstance(x, int) and not isinstance(x, bool) else None
                         for x in cap.out_leaves]
        if getattr(exe, "device_kind", None) == "cuda":
            from .cuda_interop import device_runner   # CUDA tensors stay on the device
            self.run = device_runner(self)

    def fast_path(self, key, tensors, grad: bool):
        """The fast path (``tracejit.fastpath``) for calls with guard key ``key``, made
        once per key; None where the specialisation has none. Called after the generic
        path has run this specialisation, which checked the module tree: the fast path's
        tree epoch moves up to now (any module assigned anywhere moves it)."""
        if key not in self.fast_paths:
            if len(self.fast_paths) >= fastpath.MAX_BUILDS:
                return None
            self.fast_paths[key] = fastpath.build(self, tensors, grad)
        fn = self.fast_paths[key]
        if fn is not None:
            fastpath.renew(fn, self)
        return fn

    def run(self, tensors: list[torch.Tensor]):
        # resolve_neg: a lazily negated view (torch._neg_view, x.conj().imag) has no NumPy view
        arrays = [(t.detach() if d else t).resolve_neg().numpy()
                  for t, d in zip(tensors, self.detach)]
        arrays += [s.get() for s in self.states]
        entry = self.entry
        if entry is not None and all(t.is_contiguous() for t in tensors) and \
                all(s.contiguous for s in self.states):
            outs = entry(*arrays)
            if self.writes:
                n = self.n_outputs
                outs, written = outs[:n], outs[n:]
                for (_, view), value in zip(self.writes, written):
                    view.get()[...] = value
        else:
            outs, writes = self.executable(arrays, extern=numpy_extern)
            for name, view in self.writes:
                view.get()[...] = writes[name]
        self.calls += 1
        if self.single:
            return torch.from_numpy(outs[0])
        return self.wrap(outs)

    def wrap(self, outs):
        """The call's result: the graph's output arrays as tensors, in forward's structure."""
        results = [torch.from_numpy(o) for o in outs]
        leaves = [x if i is None else results[i]
                  for x, i in zip(self.capture.out_leaves, self.leaf_pos)]
        return tree_unflatten(leaves, self.capture.out_spec)


def optimize(graph: ir.Graph, passes):
    """Run the pass pipeline when the passes package is present (``passes="none"`` skips)."""
    try:
        from ir.passes import optimize as run_passes
    except ImportError:
        return graph, None
    return run_passes(graph, passes=passes)
