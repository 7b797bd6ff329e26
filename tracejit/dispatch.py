"""The specialisations of one compiled callable, and how a call finds its own.

A call's guard key (input structure, shapes, dtypes, devices, requires_grad, grad mode,
which inputs are the same tensor) picks a root; ``training`` and other plain attributes
count where forward reads them (attribute guards, ``tracejit.state``). Below a
root, specialisations form a tree keyed by guard outcomes: when a data-dependent guard
in the graph, or a guard on a plain attribute forward read, sees another value, the
call goes to the child made for that value, or is redone eagerly while tracing one.
With ``dynamic`` not False, a key that differs from a known one only in sizes (>= 2) is
merged with it: the traces behind it and this one become one graph in which each changed
size is a symbol (``ir.symbolic.generalize_traces``); a later change of another size adds
a symbol to that graph (``f32[B,S,64]``), rather than one specialisation per size. With
``dynamic=True`` probe traces at other sizes make every dimension the model lets vary
symbolic from the first call.

Invariant (DESIGN §4): a call never silently returns something eager would not.
"""

from __future__ import annotations

import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn
from torch.utils._pytree import tree_flatten, tree_unflatten

import codegen
import ir
from ir.symbolic import generalize_traces

from .capture import Capture, capture, tracing
from .errors import TraceJitError
from .externs import lend_torch_gemm
from .runtime import (Specialization, StateMoved, StateView, TraceJitWarning, gc_paused,
                      optimize, state_source)
from .sizes import env_at, masked, size_changes, size_groups, symbol_name
from .state import describe_guard_failure, guards_hold


@dataclass
class EagerSpecialization:
    """Calls reaching this node run eagerly, for the stated reason."""

    reason: str
    capture: Capture | None = None
    calls: int = 0


@dataclass
class SpecNode:
    spec: Specialization | EagerSpecialization
    children: dict = field(default_factory=dict)   # guard outcome -> SpecNode

    def __post_init__(self):
        # a graph whose RNG externs run before a guard fails has advanced torch's
        # generator: the call saves its state first, to redo the call from the same draw
        cap = self.spec.capture
        self.rng = cap is not None and any(_draws_random(n) for n in cap.externs)


@dataclass
class DynamicEntry:
    """A symbolic specialisation: serves keys equal to ``masked`` outside its symbols'
    positions where each symbol's positions share one size >= 2. ``traces`` are the raw
    graphs it was merged from, each with its sizes: when another size changes later, they
    are merged again with the new trace into a graph with one more symbol."""

    masked: tuple
    symbols: dict               # symbol -> ((leaf index, axis), ...) that share it
    traces: list                # (raw graph, {symbol: size}) pairs
    node: SpecNode

    @property
    def positions(self) -> tuple:
        return tuple(p for ps in self.symbols.values() for p in ps)


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
    dynamic: bool | None = None
    roots: dict = field(default_factory=dict)         # guard key -> SpecNode
    dynamic_entries: list = field(default_factory=list)
    eager_runs: dict = field(default_factory=dict)     # reason -> EagerRun
    failures: Counter = field(default_factory=Counter)  # described guard failures
    gave_up: str | None = None
    probes: int = 0             # extra traces dynamic=True took to find its symbols
    probe_ms: float = 0.0       # time those probes and their merges took
    unprobed: set = field(default_factory=set)   # keys, sizes blanked, probes gave up on
    hot: Callable | None = None   # the fast path of the last call, where it has one
    generic_calls: int = 0      # calls the generic path took (the fast path missed or had none)

    def __post_init__(self):
        self.limit = int(self.options.get("max_specializations", 8))
        self.passes = self.options.get("passes", "default")
        self.count = 0
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

    def _forget(self) -> None:
        """Drop every specialisation: the module tree or its state moved under them."""
        self._bind_modules()
        self.roots.clear()
        self.dynamic_entries.clear()

    def _tree_changed(self) -> bool:
        return any(table.get(name) is not child for table, name, child in self.children)

    # ---- the call path ------------------------------------------------------------------

    def __call__(self, *args, **kwargs):
        """The generic path, taken where the fast path in ``hot`` (the compiled object's
        ``__call__``: ``api._Calls``) is missing or missed."""
        self.generic_calls += 1
        if tracing():       # called inside another compiled callable's trace: its fast
            return self.fn(*args, **kwargs)     # path (kept in hot) serves again after
        self.hot = None
        return self._call(args, kwargs)

    def _call(self, args, kwargs):
        """The generic path: the guard key picks a specialisation (or makes one); a
        successful fast call (positional tensors) leaves its fast path in ``self.hot``."""
        if self.children and self._tree_changed():
            self._forget()              # a submodule was replaced: the graphs read the old one
        fast = not kwargs and all(type(a) is torch.Tensor for a in args)
        leaves = args if fast else tree_flatten((args, kwargs))[0]
        grad = torch.is_grad_enabled()
        if grad and (any(isinstance(t, torch.Tensor) and t.requires_grad for t in leaves)
                     or any(p.requires_grad for p in self.params)):
            return self._eager("autograd: the call needs gradients, and compiled backward is "
                               "not supported yet; it runs eagerly (wrap inference in "
                               "torch.no_grad() or torch.inference_mode())", args, kwargs)
        tensors = leaves if fast else [t for t in leaves if isinstance(t, torch.Tensor)]
        key = (fast, tuple((t.shape, t.dtype, t.get_device(), t.requires_grad)
                           if isinstance(t, torch.Tensor) else (type(t), t) for t in leaves),
               grad, _aliasing(tensors))
        node = self.roots.get(key) or self._match_dynamic(key)
        if node is None:
            return self._specialize(key, args, kwargs, None)
        while True:
            spec = node.spec
            if isinstance(spec, EagerSpecialization):
                spec.calls += 1
                return self.fn(*args, **kwargs)
            guards = spec.capture.state_guards
            if not guards or guards_hold(guards):
                rng = _rng_state() if node.rng else None
                try:
                    if spec.calls:
                        out = spec.run(tensors)
                    else:
                        with gc_paused():       # the first run loads the compiled code
                            out = spec.run(tensors)
                    if fast and key[3] is None and not node.rng and not (grad and self.params):
                        fn = spec.fast_path(key, tensors, grad)
                        self.hot = fn
                    return out
                except StateMoved:
                    self._forget()
                    return self._call(args, kwargs)
                except ir.GuardFailed as e:
                    if rng is not None:
                        _set_rng_state(rng)
                    outcome = ("guard", repr(e.expected), repr(e.actual))
                    why = describe_guard(spec, e)
            else:
                outcome = ("attrs", tuple(repr(d.get(n)) for d, n, _ in guards))
                why = describe_guard_failure(guards)
            child = node.children.get(outcome)
            if child is None:
                self.failures[why] += 1
                return self._specialize(key, args, kwargs, (node, outcome))
            node = child

    def _eager(self, reason: str, args, kwargs, stacklevel: int = 5):
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

    def _specialize(self, key, args, kwargs, parent):
        if self.gave_up is not None:
            return self._eager(self.gave_up, args, kwargs, stacklevel=6)
        if self.count >= self.limit:
            why = self.failures.most_common(1)[0][0] if parent else self._key_change(key)
            self.gave_up = (f"gave up after {self.count} specialisations (limit "
                            f"max_specializations={self.limit}); the guard that kept failing: "
                            f"{why}")
            return self._eager(self.gave_up, args, kwargs, stacklevel=6)
        with gc_paused():
            cap = capture(self.fn, args, kwargs, module=self.module, name=self.name,
                          fullgraph=self.fullgraph)
            self.count += 1
            if cap.aborted is not None:
                node = SpecNode(EagerSpecialization(cap.aborted, cap))
                warnings.warn(f"tracejit: {self.name} runs eagerly: {cap.aborted}",
                              TraceJitWarning, stacklevel=5)
            else:
                tensors = [t for t in tree_flatten((args, kwargs))[0]
                           if isinstance(t, torch.Tensor)]
                node = (parent is None and (self._generalize(key, cap, tensors) or
                                            self._probe(key, cap, args, kwargs, tensors))) \
                    or SpecNode(self._compile(cap, cap.graph, tensors))
        if parent is None:
            self.roots[key] = node
        else:
            parent[0].children[parent[1]] = node
        return cap.result

    def _compile(self, cap: Capture, raw: ir.Graph, tensors) -> Specialization:
        start = time.perf_counter()
        graph, stats = optimize(raw, self.passes)
        if self.backend == "numba-cpu":
            lend_torch_gemm()           # products run on eager's own BLAS (before codegen,
                                        # which picks their orientation for it)
        exe = codegen.compile_graph(graph, self.backend, self.options.get("backend_options"))
        sources = {i.name: StateView(state_source(self.module, i.name, cap.state[i.name]))
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

    # ---- dynamic sizes ----------------------------------------------------------------------

    def _match_dynamic(self, key) -> SpecNode | None:
        for entry in self.dynamic_entries:
            if env_at(key, entry.symbols) is not None and \
                    masked(key, entry.positions) == entry.masked:
                return entry.node
        return None

    def _generalize(self, key, cap: Capture, tensors) -> SpecNode | None:
        """Merge this trace with the traces behind a symbolic entry, or with a static one,
        where the keys differ only in sizes: each newly changed size becomes a symbol."""
        if self.dynamic is False:
            return None
        bases = [(e.symbols, e.traces, e.masked, e) for e in self.dynamic_entries]
        bases += [({}, [(old.spec.capture.graph, {})], old_key, None)
                  for old_key, old in self.roots.items()
                  if isinstance(old.spec, Specialization) and not _has_symbols(old.spec.graph)]
        for symbols, traces, base_key, entry in bases:
            env = env_at(key, symbols)
            changes = env is not None and size_changes(
                base_key, masked(key, tuple(p for ps in symbols.values() for p in ps)))
            if not changes:
                continue
            symbols, before = dict(symbols), {}
            for (old_size, new_size), positions in changes.items():
                name = symbol_name(key, positions, symbols)
                symbols[name], before[name], env[name] = positions, old_size, new_size
            graphs = [g for g, _ in traces] + [cap.graph]
            envs = [{**e, **before} for _, e in traces] + [env]
            node = self._merge(key, cap, tensors, graphs, envs, symbols)
            if node is not None:
                if entry is not None:
                    self.dynamic_entries.remove(entry)      # the new entry covers its keys
                return node
        return None

    def _merge(self, key, cap: Capture, tensors, graphs, envs, symbols) -> SpecNode | None:
        """Generalize ``graphs`` over ``symbols`` and compile; None where the traces are
        not uniform or the backend cannot take the symbols (the caller stays static)."""
        merged = generalize_traces(graphs, envs)
        if merged is None:
            return None
        try:
            node = SpecNode(self._compile(cap, merged, tensors))
        except TraceJitError:
            return None
        positions = tuple(p for ps in symbols.values() for p in ps)
        self.dynamic_entries.insert(0, DynamicEntry(masked(key, positions), symbols,
                                                    list(zip(graphs, envs)), node))
        return node

    def _probe(self, key, cap: Capture, args, kwargs, tensors) -> SpecNode | None:
        """dynamic=True: every dimension the model lets vary is symbolic from the first
        call. One probe trace grows every size group at once (by its own step, so that the
        symbols stay apart); where that does not merge, one probe per group finds those
        that can vary, and only they become symbols. Only for graphs without side effects
        (buffer writes, externs such as RNG ops), since the probes run them."""
        if self.dynamic is not True or cap.graph.writes or cap.externs or not tensors:
            return None
        sizeless = masked(key, tuple(p for g in size_groups(key) for p in g))
        if sizeless in self.unprobed:
            return None             # probes found no symbol at other sizes of these inputs
        start = time.perf_counter()
        try:
            node = self._probe_groups(key, cap, args, kwargs, tensors)
        finally:
            self.probe_ms += (time.perf_counter() - start) * 1e3
        if node is None:
            self.unprobed.add(sizeless)
        return node

    def _probe_groups(self, key, cap, args, kwargs, tensors) -> SpecNode | None:
        symbols: dict = {}
        for group in size_groups(key):
            symbols[symbol_name(key, group, symbols)] = group
        base = env_at(key, symbols)
        if not symbols or base is None:
            return None
        steps = {sym: 8 * (k + 1) for k, sym in enumerate(symbols)}

        def probe(grown):
            env = {s: n + steps[s] if s in grown else n for s, n in base.items()}
            return self._probe_trace(args, kwargs, symbols, env), env

        everything = probe(symbols)
        if everything[0] is not None:
            node = self._merge(key, cap, tensors, [cap.graph, everything[0]],
                               [base, everything[1]], symbols)
            if node is not None or len(symbols) == 1:
                return node
        singles = {s: probe({s}) for s in symbols}
        ok = [s for s, (g, env) in singles.items() if g is not None and
              generalize_traces([cap.graph, g], [{s: base[s]}, {s: env[s]}]) is not None]
        if not ok:
            return None
        for chosen in [ok] + ([[s] for s in ok] if len(ok) > 1 else []):
            graphs = [cap.graph] + [singles[s][0] for s in chosen]
            envs = [{s: base[s] for s in chosen}] + \
                [{c: singles[s][1][c] for c in chosen} for s in chosen]
            node = self._merge(key, cap, tensors, graphs, envs,
                               {s: symbols[s] for s in chosen})
            if node is not None:
                return node
        return None

    def _probe_trace(self, args, kwargs, symbols, env) -> ir.Graph | None:
        """The raw graph of a call at the sizes ``env``, its inputs grown by repeating
        their own elements; None if the model rejects those sizes."""
        leaves, spec = tree_flatten((args, kwargs))
        grown = {}
        for sym, positions in symbols.items():
            for leaf, axis in positions:
                grown.setdefault(leaf, {})[axis] = env[sym]
        for leaf, axes in grown.items():
            x = leaves[leaf]
            for axis, n in axes.items():
                if n != x.shape[axis]:
                    x = x.index_select(axis, torch.arange(n) % x.shape[axis])
            leaves[leaf] = x
        probe_args, probe_kwargs = tree_unflatten(leaves, spec)
        self.probes += 1
        try:
            probe = capture(self.fn, probe_args, probe_kwargs, module=self.module,
                            name=self.name)
        except Exception:       # noqa: BLE001 - the model refuses the size: it stays static
            return None
        return probe.graph if probe.aborted is None else None

    # ---- reporting --------------------------------------------------------------------------

    def _key_change(self, key) -> str:
        old = next(reversed(self.roots), None) if self.roots else None
        return describe_change(old, key)

    def all_specializations(self) -> list:
        out = []

        def walk(node):
            out.append(node.spec)
            for child in node.children.values():
                walk(child)
        seen = set()
        for node in list(self.roots.values()) + [e.node for e in self.dynamic_entries]:
            if id(node) not in seen:
                seen.add(id(node))
                walk(node)
        return out


def _draws_random(node: ir.Node) -> bool:
    """Whether an extern node calls an aten op that reads torch's generator."""
    name, _, overload = node.attrs["target"].removeprefix("aten::").partition(".")
    try:
        func = getattr(getattr(torch.ops.aten, name), overload or "default")
    except AttributeError:
        return True                 # unknown: assume it does
    return torch.Tag.nondeterministic_seeded in func.tags


def _rng_state():
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    return torch.get_rng_state(), cuda


def _set_rng_state(state) -> None:
    cpu, cuda = state
    torch.set_rng_state(cpu)
    if cuda is not None:
        torch.cuda.set_rng_state_all(cuda)


def _has_symbols(graph: ir.Graph) -> bool:
    return any(not i.value.type.is_static for i in graph.inputs)


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


def describe_change(old, new) -> str:
    """Which part of the guard key differs between two calls, in words."""
    if old is None:
        return "first call"
    _, old_meta, old_grad, old_alias = old
    _, new_meta, new_grad, new_alias = new
    if old_alias != new_alias:
        return f"which inputs are the same tensor changed {old_alias} -> {new_alias}"
    if old_grad != new_grad:
        return f"grad mode changed {old_grad} -> {new_grad}"
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
    return "an input changed"
