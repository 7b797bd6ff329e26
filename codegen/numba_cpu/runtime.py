"""The executable returned by ``codegen.numba_cpu.compile``."""

from __future__ import annotations

import numpy as np

from ir.errors import TraceJitError
from ir.graph import Graph


class InputError(TraceJitError, TypeError):
    """Arrays that do not fit the graph's inputs (count or dtype)."""


class NumbaExecutable:
    """``exe(arrays, extern=None) -> (outputs, writes)``, like ``ir.run``.

    Hot path: when the graph has no extern node, ``entry`` is the generated entry function
    and ``entry(*arrays)`` returns the tuple ``outputs + writes`` (``n_outputs`` outputs, then
    one array per name in ``write_names``). It wants C-contiguous, writable arrays of the
    declared dtypes in ``graph.inputs`` order; ``__call__`` makes copies where needed.
    """

    def __init__(self, graph: Graph, module, plan, source: str, path: str | None):
        self.graph = graph
        self.module = module
        self.source = source
        self.path = path
        self.n_outputs = len(graph.outputs)
        self.write_names = tuple(graph.writes)
        self.dtypes = tuple(i.value.type.dtype.np for i in graph.inputs)
        *steps, (_, _, self._result_ids, _) = plan
        self._plan = [(s[0], getattr(module, s[1]) if s[0] == "seg" else s[1], s[2], s[3])
                      for s in steps]
        self.entry = self._plan[0][1] if len(self._plan) == 1 else None

    def _prepare(self, arrays):
        if len(arrays) != len(self.dtypes):
            raise InputError(f"graph {self.graph.name} takes {len(self.dtypes)} arrays, "
                             f"got {len(arrays)}")
        out = list(arrays)
        for k, dt in enumerate(self.dtypes):
            a = out[k]
            if type(a) is np.ndarray and a.dtype == dt and a.flags.c_contiguous \
                    and a.flags.writeable:
                continue
            a = np.asarray(a)
            if a.dtype != dt:
                raise InputError(f"graph {self.graph.name}: input {k} should be {dt}, "
                                 f"got {a.dtype}")
            out[k] = np.array(a, order="C")    # a contiguous, writable copy
        return out

    def __call__(self, arrays, extern=None):
        args = self._prepare(arrays)
        if self.entry is not None:
            res = self.entry(*args)
        else:
            res = self._run_steps(args, extern)
        n = self.n_outputs
        return list(res[:n]), dict(zip(self.write_names, res[n:]))

    def _run_steps(self, args, extern):
        env = dict(enumerate(args))
        for kind, fn, ins, outs in self._plan:
            vals = [env[i] for i in ins]
            if kind == "seg":
                res = fn(*vals)
            else:
                if extern is None:
                    raise TraceJitError(f"graph {self.graph.name} calls extern "
                                        f"{fn.attrs['target']}: pass an extern callback")
                # np.require keeps 0-d results 0-d (ascontiguousarray makes them 1-d)
                res = [np.require(r, requirements="C") for r in extern(fn, vals)]
            env.update(zip(outs, res))
        fresh, seen = [], set()
        for i in self._result_ids:     # results that are inputs, or repeated, are copied
            a = env[i]
            fresh.append(a.copy() if i < len(args) or id(a) in seen else a)
            seen.add(id(a))
        return fresh
