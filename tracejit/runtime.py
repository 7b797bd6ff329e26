"""One compiled specialisation and its per-call path: torch <-> NumPy, the executable.

Parameters are read through their modules at every call; their NumPy views are remade
only when the tensor object or its storage changes (../shared/notes/call-overhead.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils._pytree import tree_unflatten

import ir

from .capture import Capture
from .externs import numpy_extern


class TraceJitWarning(UserWarning):
    """A compiled callable ran eagerly, or gave up specialising; the message says why."""


def state_source(module: nn.Module | None, name: str, tensor: torch.Tensor):
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


class StateView:
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
    states: list[StateView]
    detach: list[bool]                   # per user input: needs .detach() before .numpy()
    writes: list[tuple[str, StateView]]
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


def optimize(graph: ir.Graph, passes):
    """Run the pass pipeline when the passes package is present (``passes="none"`` skips)."""
    try:
        from ir.passes import optimize as run_passes
    except ImportError:
        return graph, None
    return run_passes(graph, passes=passes)
