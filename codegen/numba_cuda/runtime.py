"""The executable returned by ``codegen.numba_cuda.compile``.

``exe(arrays, extern=None) -> (outputs, writes)``. Arrays are device arrays (anything
``numba.cuda.as_cuda_array`` takes: torch CUDA tensors via ``__cuda_array_interface__``,
C-contiguous) or NumPy arrays; NumPy in means NumPy out (uploaded, run, copied back), which
is how the simulator is driven. Intermediates and outputs come from ``options["alloc"]``
(``alloc(shape, dtype) -> device array``, default ``cuda.device_array``); kernels launch
on ``options["stream"]`` (default 0). Each new binding of symbolic dimensions generates and
caches one more module: launch configurations are fixed per specialisation.
"""

from __future__ import annotations

import math

import numpy as np

from codegen.numba_cpu import cache
from ir.errors import TraceJitError
from ir.graph import Graph
from ir.opdef import OPS
from ir.printer import print_graph

from .plan import generate


class InputError(TraceJitError, TypeError):
    """Arrays that do not fit the graph's inputs (count, dtype or layout)."""


class Specialisation:
    def __init__(self, graph, symbols, simulator, fingerprint):
        gen = generate(graph, symbols, simulator)
        self.source, self.steps, self.ids, self.types = gen.source, gen.steps, gen.ids, gen.types
        key_text = f"{fingerprint}|{sorted(symbols.items())}|{print_graph(graph)}"
        self.module = cache.load(cache.module_key(key_text), self.source)
        self.path = getattr(self.module, "__file__", None)


class CudaExecutable:
    def __init__(self, graph: Graph, options: dict, cuda, simulator: bool, fingerprint: str):
        self.graph = graph
        self.cuda = cuda
        self.simulator = simulator
        self.alloc = options.get("alloc") or cuda.device_array
        self.stream = options.get("stream", 0)
        self.fingerprint = fingerprint
        self.dtypes = tuple(i.value.type.dtype.np for i in graph.inputs)
        self.specs: dict[tuple, Specialisation] = {}
        if not any(isinstance(d, str) for i in graph.inputs for d in i.value.type.shape):
            self.specialise({})

    def specialise(self, symbols: dict) -> Specialisation:
        key = tuple(sorted(symbols.items()))
        if key not in self.specs:
            self.specs[key] = Specialisation(self.graph, symbols, self.simulator,
                                             self.fingerprint)
        return self.specs[key]

    @property
    def source(self) -> str:
        return next(iter(self.specs.values())).source

    # ---- arrays
    def _device(self, a, dt):
        if isinstance(a, np.ndarray) or np.isscalar(a):
            a = np.ascontiguousarray(a, dtype=None)
            if a.dtype != dt:
                raise InputError(f"graph {self.graph.name}: expected {dt}, got {a.dtype}")
            return self.cuda.to_device(a.reshape(-1), stream=self.stream), a.shape
        if not self.simulator and not hasattr(a, "copy_to_host"):
            a = self.cuda.as_cuda_array(a)
        if np.dtype(a.dtype) != dt:
            raise InputError(f"graph {self.graph.name}: expected {dt}, got {a.dtype}")
        if not self.simulator and not a.is_c_contiguous():
            raise InputError(f"graph {self.graph.name}: device inputs must be C-contiguous "
                             "(call .contiguous() first)")
        return a.reshape(math.prod(a.shape)), tuple(a.shape)

    def _new(self, shape, dtype):
        buf = self.alloc(tuple(shape), np.dtype(dtype))
        return buf.reshape(math.prod(shape))

    def __call__(self, arrays, extern=None):
        if len(arrays) != len(self.dtypes):
            raise InputError(f"graph {self.graph.name} takes {len(self.dtypes)} arrays, "
                             f"got {len(arrays)}")
        host = any(isinstance(a, np.ndarray) for a in arrays)
        pairs = [self._device(a, dt) for a, dt in zip(arrays, self.dtypes)]
        spec = self.specialise(_symbols(self.graph, [s for _, s in pairs]))
        env = {i: buf for i, (buf, _) in enumerate(pairs)}
        for step in spec.steps:
            STEP[step[0]](self, spec, env, step, extern)
        results, taken = [], [buf for buf, _ in pairs]
        for v in self.graph.result_values():     # inputs and repeated results are copied
            i = spec.ids[v]
            buf = env[i]
            if any(buf is t for t in taken):
                fresh = self._new(*spec.types[i])
                fresh.copy_to_device(buf, stream=self.stream)
                buf = fresh
            taken.append(buf)
            results.append(self._finish(buf, spec.types[i][0], host))
        n = len(self.graph.outputs)
        return results[:n], dict(zip(self.graph.writes, results[n:]))

    def _finish(self, buf, shape, host):
        if host:
            return buf.copy_to_host(stream=self.stream).reshape(shape)
        return buf.reshape(shape) if shape else buf.reshape(())

    # ---- steps
    def _launch(self, spec, env, step, extern):
        _, name, grid, block, outs, ins = step
        for i in outs:
            env[i] = self._new(*spec.types[i])
        getattr(spec.module, name)[grid, block, self.stream](*[env[i] for i in outs + ins])

    def _alias(self, spec, env, step, extern):
        env[step[1]] = env[step[2]]

    def _const(self, spec, env, step, extern):
        env[step[1]] = self.cuda.to_device(step[2], stream=self.stream)

    def _alloc(self, spec, env, step, extern):
        for i in step[1]:
            env[i] = self._new(*spec.types[i])

    def _guard(self, spec, env, step, extern):
        value = env[step[1]].copy_to_host(stream=self.stream)
        OPS["guard"].ref(value.reshape(()), expected=step[2])

    def _extern(self, spec, env, step, extern):
        _, node, ins, outs = step
        if extern is None:
            raise TraceJitError(f"graph {self.graph.name} calls extern "
                                f"{node.attrs['target']}: pass an extern callback")
        args = [env[i].copy_to_host(stream=self.stream).reshape(spec.types[i][0])
                for i in ins]
        for i, r in zip(outs, extern(node, args)):
            env[i] = self.cuda.to_device(np.ascontiguousarray(r).reshape(-1),
                                         stream=self.stream)


def _symbols(graph: Graph, shapes) -> dict:
    out: dict = {}
    for inp, shape in zip(graph.inputs, shapes):
        for d, n in zip(inp.value.type.shape, shape):
            if isinstance(d, str):
                out.setdefault(d, n)
    return out


STEP = {"launch": CudaExecutable._launch, "alias": CudaExecutable._alias,
        "const": CudaExecutable._const, "alloc": CudaExecutable._alloc,
        "guard": CudaExecutable._guard, "extern": CudaExecutable._extern}
