"""The per-call fast path of one specialisation: straight-line Python made for it.

The generic call path (guard key, tree walk, lookups, list building) costs about 30 µs
per call on a 2-core EPYC, as much as a small model's whole compute. After a call succeeds,
the dispatcher asks the specialisation for a fast path made for that call's guard key: one
generated function (as dataclasses and torch.fx generate code) that checks the same things
unrolled, with the key's values bound as globals, and calls the backend's entry point.
It returns ``MISS`` at the first check that fails; the caller then takes the generic path,
which decides everything again (a miss never runs the graph). An in-graph guard that
fails raises ``ir.GuardFailed`` out of the entry, before any output is made, and the
caller takes the generic path too. Which Python attributes forward read (attribute
guards), the module tree (through torch's module-registration hook: see ``_bump``)
and each parameter's identity and storage are checked at every call.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch.nn.modules import module as nn_module

MISS = object()
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


def renew(fast) -> None:
    """Let ``fast`` run again after the tree epoch moved, once the generic path has
    checked the module tree its specialisation reads."""
    fast.__globals__["E"] = _epoch[0]


def build(spec, tensors, grad: bool) -> Callable | None:
    """The fast path for calls shaped like ``tensors`` (positional tensors only, none
    passed twice), or None where ``spec`` has no single entry point that takes NumPy
    views as they are (externs, buffer writes, non-contiguous parameters, CUDA)."""
    if spec.entry is None or spec.writes or getattr(spec.executable, "device_kind", None) \
            or not all(s.contiguous for s in spec.states):
        return None
    glob = {"MISS": MISS, "_MISSING": _MISSING, "Tensor": torch.Tensor, "epoch": _epoch,
            "grad_enabled": torch.is_grad_enabled, "from_numpy": torch.from_numpy,
            "entry": spec.entry, "SPEC": spec, "E": _epoch[0], "G": grad}
    names = [f"a{i}" for i in range(len(tensors))]
    lines = [f"def fast({', '.join(names)}):",
             "    if grad_enabled() is not G or epoch[0] != E:",
             "        return MISS"]
    # Each input is checked on its NumPy view, made first: numpy() refuses a tensor that
    # requires grad while grad mode is on, is not on the CPU, or has its negative or
    # conjugate bit set. The view's shape, dtype and strides are plain Python values,
    # where each of the tensor's attributes costs 0.15-0.4 µs to read.
    for i, (name, t) in enumerate(zip(names, tensors)):
        view = t.numpy()
        glob[f"S{i}"], glob[f"D{i}"], glob[f"R{i}"] = view.shape, view.dtype, view.strides
        lines += [f"    if type({name}) is not Tensor:",
                  "        return MISS",
                  "    try:",
                  f"        n{i} = {name}.numpy()",
                  "    except (RuntimeError, TypeError):",
                  "        return MISS",
                  f"    if n{i}.shape != S{i} or n{i}.dtype is not D{i} or "
                  f"(n{i}.strides != R{i} and not n{i}.flags.c_contiguous):",
                  "        return MISS"]
    if len(names) > 1:
        lines += [f"    if len({{{', '.join(f'id({n})' for n in names)}}}) != {len(names)}:",
                  "        return MISS"]
    for i, (table, attr, value) in enumerate(spec.capture.state_guards):
        glob[f"A{i}"], glob[f"N{i}"], glob[f"W{i}"] = table, attr, value
        lines += [f"    if A{i}.get(N{i}, _MISSING) != W{i}:", "        return MISS"]
    arrays = [f"n{i}" for i in range(len(names))]
    for i, view in enumerate(spec.states):
        glob[f"T{i}"], glob[f"K{i}"], glob[f"V{i}"] = view.table, view.key, view
        lines += [f"    p{i} = T{i}.get(K{i})",
                  f"    if p{i} is not V{i}.tensor or p{i}.data_ptr() != V{i}.ptr:",
                  "        return MISS"]
        arrays.append(f"V{i}.array")
    lines += [f"    outs = entry({', '.join(arrays)})",
              "    SPEC.calls += 1"]
    lines.append("    return from_numpy(outs[0])" if spec.single else
                 "    return SPEC.wrap(outs)")
    exec(compile("\n".join(lines), f"<tracejit fast path of {spec.graph.name}>", "exec"),
         glob)
    return glob["fast"]
