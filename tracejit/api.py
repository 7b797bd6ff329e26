"""The public API: ``compile``, ``trace`` and ``explain`` (DESIGN §6, mirroring torch.compile)."""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

import codegen
import ir

from .capture import Capture, capture
from .errors import TraceJitError
from .dispatch import Dispatcher, EagerSpecialization
from .runtime import Specialization, optimize

DEFAULT_BACKEND = "numba-cpu"


class BackendError(TraceJitError, ValueError):
    """An unknown backend name or bad compile option."""


def _check_backend(backend: str) -> None:
    if backend not in codegen.BACKENDS:
        raise BackendError(f"unknown backend {backend!r}; choose one of "
                           f"{', '.join(sorted(codegen.BACKENDS))}")


def compile(model_or_fn=None, *, backend: str = DEFAULT_BACKEND, fullgraph: bool = False,
            dynamic: bool | None = None, options: dict | None = None):
    """Compile a module or function; usable as ``@compile`` or ``@compile(backend=...)``.

    The first call with new guards runs eagerly while tracing (so it returns eager's
    result), then the graph is optimised and compiled; later calls with the same guards
    run the compiled code. Calls that need autograd run eagerly (see ``explain``).
    """
    _check_backend(backend)
    if dynamic not in (None, True, False):
        raise BackendError(f"dynamic must be None, True or False, not {dynamic!r}")
    options = dict(options or {})
    unknown = set(options) - {"passes", "max_specializations", "backend_options"}
    if unknown:
        raise BackendError(f"unknown compile option(s) {sorted(unknown)}; known: passes, "
                           "max_specializations, backend_options")

    def wrap(target):
        if isinstance(target, nn.Module):
            return CompiledModule(target, Dispatcher(target, target, backend, fullgraph, options,
                                                      dynamic))
        if callable(target):
            return CompiledFunction(target, Dispatcher(target, None, backend, fullgraph, options,
                                                        dynamic))
        raise BackendError(f"tracejit.compile expects an nn.Module or a function, "
                           f"not {type(target).__name__}")

    return wrap if model_or_fn is None else wrap(model_or_fn)


class _Calls:
    """The call path of both compiled kinds. Each compiled object has a class of its own
    (made in ``__new__``, as torch.fx's GraphModule does), so that the class's ``__call__``
    can be the fast path (``fastpath``) of the object's last specialisation itself: each
    Python call layer costs 0.3-0.6 µs on the 2-vCPU machine, more than a guard. Calls the
    fast path cannot take, and every call while there is none, go to ``_tj_generic``."""

    def __new__(cls, *args, **kwargs):
        own = type(cls.__name__, (cls,), {"__module__": cls.__module__,
                                          "__qualname__": cls.__qualname__})
        return super().__new__(own)

    def _tj_generic(self, *args, **kwargs):
        """The dispatcher's path; its fast path for the next call becomes ``__call__``."""
        d = self._tj_dispatcher
        out = d(*args, **kwargs)
        call = d.hot or _Calls._tj_generic
        cls = type(self)
        if cls.__dict__.get("__call__") is not call:
            cls.__call__ = call
        return out

    __call__ = _tj_generic


class CompiledFunction(_Calls):
    """A compiled plain function; call it like the original."""

    def __init__(self, fn: Callable, dispatcher: Dispatcher):
        self._tj_dispatcher = dispatcher
        functools.update_wrapper(self, fn)

    def explain(self) -> "Explanation":
        return Explanation.of_dispatcher(self._tj_dispatcher)


class CompiledModule(_Calls, nn.Module):
    """A compiled ``nn.Module`` that still behaves as the module.

    Attribute reads and writes go to the original module, so parameters, ``state_dict``,
    ``train()``/``eval()``, ``load_state_dict`` and optimisers see the same objects;
    only calling it goes through tracejit.
    """

    def __init__(self, module: nn.Module, dispatcher: Dispatcher):
        object.__setattr__(self, "_orig_mod", module)
        object.__setattr__(self, "_tj_dispatcher", dispatcher)

    def __getattr__(self, name):
        return getattr(object.__getattribute__(self, "_orig_mod"), name)

    def __setattr__(self, name, value):
        setattr(self._orig_mod, name, value)

    def __delattr__(self, name):
        delattr(self._orig_mod, name)

    def __dir__(self):
        return dir(self._orig_mod)

    # special methods bypass __getattr__: forward the container ones (nn.Sequential, ...)
    def __getitem__(self, index):
        return self._orig_mod[index]

    def __len__(self):
        return len(self._orig_mod)

    def __iter__(self):
        return iter(self._orig_mod)

    forward = _Calls._tj_generic

    def __repr__(self):
        return f"tracejit.compile(backend={self._tj_dispatcher.backend!r}) of {self._orig_mod!r}"

    def explain(self) -> "Explanation":
        return Explanation.of_dispatcher(self._tj_dispatcher)


@dataclass
class Trace:
    """What one traced call produced: ``.graph`` is the IR; ``print(trace)`` shows it."""

    capture: Capture

    @property
    def graph(self) -> ir.Graph:
        return self.capture.graph

    @property
    def result(self):
        return self.capture.result

    def optimized(self, passes="default") -> ir.Graph:
        return optimize(self.graph, passes)[0]

    def __str__(self) -> str:
        return ir.print_graph(self.graph)


def _target(fn_or_module):
    module = fn_or_module if isinstance(fn_or_module, nn.Module) else None
    name = type(module).__name__ if module is not None else getattr(fn_or_module, "__name__",
                                                                      "fn")
    return module, name


def trace(fn_or_module, *args, fullgraph: bool = False, **kwargs) -> Trace:
    """Run ``fn_or_module(*args, **kwargs)`` once under the tracer and return its trace."""
    if isinstance(fn_or_module, CompiledModule):
        fn_or_module = fn_or_module._orig_mod
    module, name = _target(fn_or_module)
    cap = capture(fn_or_module, args, kwargs, module=module, name=name, fullgraph=fullgraph)
    if cap.aborted is not None:
        raise TraceJitError(f"cannot trace {name}: {cap.aborted}")
    return Trace(cap)


@dataclass
class Explanation:
    """What tracejit did with a callable: graphs, ops, externs, guards, eager runs, times."""

    lines: list[str]

    def __str__(self) -> str:
        return "\n".join(self.lines)

    @staticmethod
    def of_dispatcher(d: Dispatcher) -> "Explanation":
        lines = [f"{d.name}: backend {d.backend}, "
                 f"{len(d.all_specializations())} specialisation(s)",
                 f"  {d.generic_calls} call(s) took the generic path, the others a fast path"]
        for i, spec in enumerate(d.all_specializations()):
            if isinstance(spec, EagerSpecialization):
                lines.append(f"  [{i}] runs eagerly ({spec.calls} calls): {spec.reason}")
                continue
            lines.extend(_describe_spec(i, spec))
        for run in d.eager_runs.values():
            lines.append(f"  eager ({run.count} calls): {run.reason}")
        if d.gave_up:
            lines.append(f"  gave up: {d.gave_up}")
        return Explanation(lines)


def _describe_spec(i: int, spec: Specialization) -> list[str]:
    cap, g = spec.capture, spec.graph
    ops = Counter(n.op for n in g.walk())
    inputs = ", ".join(f"{inp.name}: {inp.value.type}" for inp in g.inputs if inp.role == "input")
    lines = [f"  [{i}] inputs ({inputs}); {spec.calls} compiled calls",
             f"      trace {cap.trace_ms:.1f} ms, optimise+compile {spec.compile_ms:.1f} ms; "
             f"{len(cap.graph.nodes)} traced nodes -> {len(g.nodes)} optimised",
             "      ops: " + ", ".join(f"{k} x{v}" for k, v in sorted(ops.items()))]
    fused = [n for n in g.nodes if n.region is not None]
    if fused:
        lines.append(f"      fused regions: {len(fused)} (" + ", ".join(
            f"{n.attrs.get('kind')}: {'+'.join(b.op for b in n.region.nodes)}" for n in fused)
            + ")")
    for n in cap.externs:
        lines.append(f"      extern {n.attrs['target']} (runs in torch) at "
                     f"{n.scope + '  ' if n.scope else ''}{n.loc}")
    for n in cap.guards:
        lines.append(f"      guard: value == {n.attrs['expected']!r} at "
                     f"{n.scope + '  ' if n.scope else ''}{n.loc}")
    for _, name, value in cap.state_guards:
        lines.append(f"      guard: attribute {name} == {value!r} (read by forward)")
    if any(not inp.value.type.is_static for inp in g.inputs):
        lines.append("      dynamic: symbolic sizes serve every size >= 2")
    return lines


def explain(fn_or_module, *args, backend: str = DEFAULT_BACKEND, **kwargs) -> Explanation:
    """Compile ``fn_or_module``, call it on the example inputs, and explain what happened."""
    compiled = compile(fn_or_module, backend=backend)
    with torch.no_grad():
        compiled(*args, **kwargs)
    return compiled.explain()
