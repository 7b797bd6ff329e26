"""The per-call fast path of one specialisation: straight-line Python made for it.

The generic call path (guard key, tree walk, lookups, list building) costs about 30 µs
per call on a 2-core EPYC, as much as a small model's whole compute. After a call succeeds,
the dispatcher asks the specialisation for a fast path made for that call's guard key: one
generated function (as dataclasses and torch.fx generate code) that checks the same things
unrolled, with the key's values bound as globals, and calls the backend's entry point.
The compiled object makes it its own ``__call__`` (``api._Calls``), so a call runs one
Python frame. At the first check that fails it hands the call to the object's generic
path, which decides everything again (a miss never runs the graph), as it does when an
in-graph guard raises ``ir.GuardFailed`` out of the entry, before any output is made.
Which Python attributes forward read (attribute guards), the module tree (through torch's
module-registration hook: see ``_bump``) and each parameter's identity and storage are
checked at every call.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable

import torch
from torch.nn.modules import module as nn_module

import ir

_MISSING = object()
_epoch = [0]


MAX_BUILDS = 64
"""Fast paths one specialisation makes at most (one per guard key: a symbolic graph
called at many sizes would otherwise pay for a new one, about 0.1 ms, on every call)."""


def _bump(*_):
    """The tree epoch moves whenever any module is assigned as a submodule anywhere: a
    fast path made before the move may read parameters of a module no longer in the tree."""
    _epoch[0] += 1


nn_module.register_module_module_registration_hook(_bump)


@contextmanager
def missing():
    """Every fast path misses inside (while a trace runs, compiled objects called in it
    must run their original code: ``capture``); those made before serve again after,
    unless the tree epoch moved meanwhile. No fast path is renewed inside, as the generic
    path then runs the original code too (``Dispatcher.__call__``)."""
    before = _epoch[0]
    _bump()
    try:
        yield
    finally:
        if _epoch[0] == before + 1:
            _epoch[0] = before


def _missed(obj, args: tuple, rest: tuple, kw: dict):
    """A check failed: ``obj``'s generic path takes the call, with the arguments given."""
    return obj._tj_generic(*[a for a in args if a is not _MISSING], *rest, **kw)


def renew(fast, spec) -> None:
    """Let ``fast`` run again after the generic path ran its specialisation: that path
    checked the module tree (the tree epoch moves up to now) and remade the NumPy view of
    any parameter whose tensor or storage had changed (the fast path checks and passes the
    ones bound here)."""
    glob = fast.__globals__
    glob["E"] = _epoch[0]
    for i, view in enumerate(spec.states):
        glob[f"P{i}"], glob[f"Q{i}"], glob[f"V{i}"] = view.tensor, view.ptr, view.array


def build(spec, tensors, grad: bool) -> Callable | None:
    """The fast path for calls shaped like ``tensors`` (positional tensors only, none
    passed twice), as a method of the compiled object, or None where ``spec`` has no single
    entry point that takes NumPy views as they are (externs, buffer writes, non-contiguous
    parameters, CUDA)."""
    if spec.entry is None or spec.writes or getattr(spec.executable, "device_kind", None) \
            or not all(s.contiguous for s in spec.states):
        return None
    glob = {"_MISSING": _MISSING, "MISSED": _missed, "GuardFailed": ir.GuardFailed,
            "Tensor": torch.Tensor, "numpy": torch.Tensor.numpy, "epoch": _epoch,
            "grad_enabled": torch.is_grad_enabled, "from_numpy": torch.from_numpy,
            "entry": spec.entry, "SPEC": spec, "G": grad}
    names = [f"a{i}" for i in range(len(tensors))]
    # positional-only parameters with a default: fewer arguments, or a keyword argument
    # named like one of them, reach the generic path instead of raising here
    params = [*(f"{n}=_MISSING" for n in names), "/", "*rest", "**kw"]
    # a miss runs the generic path outside any except clause, so that the errors it
    # raises do not come chained to the exception that made the miss
    given = f"({', '.join(names)}{',' if len(names) == 1 else ''})"
    miss = f"        return MISSED(self, {given}, rest, kw)"
    lines = [f"def fast(self, {', '.join(params)}):",
             "    if rest or kw or grad_enabled() is not G or epoch[0] != E:", miss]
    # Each input is checked on its NumPy view, made first: numpy() refuses a tensor that
    # requires grad while grad mode is on, is not on the CPU, or has its negative or
    # conjugate bit set. The view's shape, dtype and strides are plain Python values,
    # where each of the tensor's attributes costs 0.15-0.4 µs to read.
    for i, (name, t) in enumerate(zip(names, tensors)):
        view = t.numpy()
        glob[f"S{i}"], glob[f"D{i}"], glob[f"R{i}"] = view.shape, view.dtype, view.strides
        lines += [f"    if type({name}) is not Tensor:", miss,
                  "    try:",
                  f"        n{i} = numpy({name})",
                  "    except (RuntimeError, TypeError):",
                  f"        n{i} = None",
                  f"    if n{i} is None or n{i}.shape != S{i} or n{i}.dtype is not D{i} or "
                  f"(n{i}.strides != R{i} and not n{i}.flags.c_contiguous):", miss]
    if len(names) > 1:
        lines += [f"    if len({{{', '.join(f'id({n})' for n in names)}}}) != {len(names)}:",
                  miss]
    for i, (table, attr, value) in enumerate(spec.capture.state_guards):
        glob[f"A{i}"], glob[f"N{i}"], glob[f"W{i}"] = table, attr, value
        lines += [f"    if A{i}.get(N{i}, _MISSING) != W{i}:", miss]
    arrays = [f"n{i}" for i in range(len(names))]
    moved = []
    for i, view in enumerate(spec.states):
        glob[f"T{i}"], glob[f"K{i}"] = view.table, view.key
        moved.append(f"T{i}[K{i}] is not P{i} or P{i}.data_ptr() != Q{i}")
        arrays.append(f"V{i}")
    if moved:     # each parameter's identity and storage (a KeyError: one was deleted)
        lines += ["    try:",
                  "        moved = (" + " or\n                 ".join(moved) + ")",
                  "    except KeyError:",
                  "        moved = True",
                  "    if moved:", miss]
    lines += ["    try:",
              f"        outs = entry({', '.join(arrays)})",
              "    except GuardFailed:",
              "        outs = None",
              "    if outs is None:", miss,
              "    SPEC.calls += 1"]
    lines.append("    return from_numpy(outs[0])" if spec.single else
                 "    return SPEC.wrap(outs)")
    exec(compile("\n".join(lines), f"<tracejit fast path of {spec.graph.name}>", "exec"),
         glob)
    return glob["fast"]
