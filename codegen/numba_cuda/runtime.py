"""The executable returned by ``codegen.numba_cuda.compile``.

``exe(arrays, extern=None, *, stream=None, alloc=None, extern_on_device=False) ->
(outputs, writes)``. Arrays are device arrays (anything ``numba.cuda.as_cuda_array`` takes:
torch CUDA tensors via ``__cuda_array_interface__``, C-contiguous) or NumPy arrays; NumPy
in means NumPy out (uploaded, run, copied back), which is how the simulator is driven.
Intermediates and outputs come from ``alloc(shape, dtype) -> device array`` and kernels
launch on ``stream``: per call, so a caller can follow its framework's current stream and
caching allocator; the defaults are ``options["alloc"]`` (else ``cuda.device_array``) and
``options["stream"]`` (else 0). Externs get host copies, or with ``extern_on_device`` the
device arrays themselves (and return device arrays). Constants are uploaded once per
specialisation. Each new binding of symbolic dimensions generates and caches one more
module: launch configurations are fixed per specialisation.
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
        self.consts: dict[int, object] = {}      # value id -> device array, made once
        keep = {self.ids[v] for v in graph.result_values()}
        self.drops = _drops(self.steps, keep)


def _drops(steps, keep) -> list[tuple[int, ...]]:
    """Per step, the buffers no later step reads: released then, so the allocator can
    reuse their memory within the call (stream order makes that safe)."""
    last: dict[int, int] = {}
    for k, step in enumerate(steps):
        for i in READS[step[0]](step):
            last[i] = k
    out: list[list[int]] = [[] for _ in steps]
    for i, k in last.items():
        if i not in keep:
            out[k].append(i)
    return [tuple(d) for d in out]


class Call:
    """One call's state: the value buffers and where they come from and run."""

    __slots__ = ("spec", "env", "stream", "alloc", "extern", "on_device")

    def __init__(self, spec, env, stream, alloc, extern, on_device):
        self.spec, self.env, self.stream, self.alloc = spec, env, stream, alloc
        self.extern, self.on_device = extern, on_device

    def new(self, i: int):
        shape, dtype = self.spec.types[i]
        return self.alloc(tuple(shape), np.dtype(dtype)).reshape(math.prod(shape))


class CudaExecutable:
    device_kind = "cuda"          # callers may pass device arrays (and a stream, an allocator)

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
    def _device(self, a, dt, stream):
        if isinstance(a, np.ndarray) or np.isscalar(a):
            a = np.ascontiguousarray(a, dtype=None)
            if a.dtype != dt:
                raise InputError(f"graph {self.graph.name}: expected {dt}, got {a.dtype}")
            return self.cuda.to_device(a.reshape(-1), stream=stream), a.shape
        if not self.simulator and not hasattr(a, "copy_to_host"):
            a = self.cuda.as_cuda_array(a)
        if np.dtype(a.dtype) != dt:
            raise InputError(f"graph {self.graph.name}: expected {dt}, got {a.dtype}")
        if not self.simulator and not a.is_c_contiguous():
            raise InputError(f"graph {self.graph.name}: device inputs must be C-contiguous "
                             "(call .contiguous() first)")
        return a.reshape(math.prod(a.shape)), tuple(a.shape)

    def __call__(self, arrays, extern=None, *, stream=None, alloc=None,
                 extern_on_device=False):
        if len(arrays) != len(self.dtypes):
            raise InputError(f"graph {self.graph.name} takes {len(self.dtypes)} arrays, "
                             f"got {len(arrays)}")
        stream = self.stream if stream is None else stream
        host = any(isinstance(a, np.ndarray) for a in arrays)
        pairs = [self._device(a, dt, stream) for a, dt in zip(arrays, self.dtypes)]
        spec = self.specialise(_symbols(self.graph, [s for _, s in pairs]))
        call = Call(spec, {i: buf for i, (buf, _) in enumerate(pairs)}, stream,
                    alloc or self.alloc, extern, extern_on_device)
        env = call.env
        for step, drop in zip(spec.steps, spec.drops):
            STEP[step[0]](self, call, step)
            for i in drop:
                del env[i]
        # inputs, kept constants and repeated results are copied: an output is always fresh
        results, taken = [], [buf for buf, _ in pairs] + list(spec.consts.values())
        for v in self.graph.result_values():
            i = spec.ids[v]
            buf = env[i]
            if any(buf is t for t in taken):
                fresh = call.new(i)
                fresh.copy_to_device(buf, stream=stream)
                buf = fresh
            taken.append(buf)
            results.append(self._finish(buf, spec.types[i][0], host, stream))
        n = len(self.graph.outputs)
        return results[:n], dict(zip(self.graph.writes, results[n:]))

    @staticmethod
    def _finish(buf, shape, host, stream):
        if host:
            return buf.copy_to_host(stream=stream).reshape(shape)
        return buf.reshape(shape) if shape else buf.reshape(())

    # ---- steps
    def _launch(self, call, step):
        _, name, grid, block, outs, ins = step
        env = call.env
        for i in outs:
            env[i] = call.new(i)
        getattr(call.spec.module, name)[grid, block, call.stream](*[env[i] for i in outs + ins])

    def _alias(self, call, step):
        call.env[step[1]] = call.env[step[2]]

    def _const(self, call, step):
        consts = call.spec.consts
        buf = consts.get(step[1])
        if buf is None:            # uploaded once, synchronously: any later stream may read it
            buf = consts[step[1]] = self.cuda.to_device(step[2])
            self.cuda.synchronize()
        call.env[step[1]] = buf

    def _alloc(self, call, step):
        for i in step[1]:
            call.env[i] = call.new(i)

    def _guard(self, call, step):
        value = call.env[step[1]].copy_to_host(stream=call.stream)
        OPS["guard"].ref(value.reshape(()), expected=step[2])

    def _extern(self, call, step):
        _, node, ins, outs = step
        if call.extern is None:
            raise TraceJitError(f"graph {self.graph.name} calls extern "
                                f"{node.attrs['target']}: pass an extern callback")
        env, types = call.env, call.spec.types
        if call.on_device:
            args = [env[i].reshape(types[i][0]) for i in ins]
            for i, r in zip(outs, call.extern(node, args)):
                env[i] = r.reshape(math.prod(r.shape))
            return
        args = [env[i].copy_to_host(stream=call.stream).reshape(types[i][0]) for i in ins]
        for i, r in zip(outs, call.extern(node, args)):
            env[i] = self.cuda.to_device(np.ascontiguousarray(r).reshape(-1),
                                         stream=call.stream)


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
READS = {"launch": lambda s: s[4] + s[5], "alias": lambda s: (s[1], s[2]),
         "const": lambda s: (s[1],), "alloc": lambda s: s[1], "guard": lambda s: (s[1],),
         "extern": lambda s: s[2] + s[3]}
