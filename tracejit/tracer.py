"""Capture: run the model once under a TorchDispatchMode and record every aten op as IR.

The model really runs, so the trace call returns eager results. Each aten op reaching
the mode is, in order of preference: converted by a rule in ``tracejit.aten``,
decomposed with torch's own core decomposition table (its sub-ops are recorded), or
recorded as an ``extern`` node that calls torch at run time.

In-place ops are functionalised by rebinding the mutated tensor to a new SSA value;
other tensors sharing the written elements become stale, and reading a stale tensor
aborts the trace (the call then runs eagerly, saying why). Writes to buffers become
``graph.writes``.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch._decomp import core_aten_decompositions
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

import ir
from ir.graph import Node, Value
from ir.opdef import OPS
from ir.shapes import TypeRuleError
from ir.types import DType, TensorType

from . import aten as rules
from .aten import TORCH_TO_IR, ir_dtype
from .errors import TraceAbort, UnsupportedOpError
from .externs import encode_call
from .provenance import ScopeStack, user_location

MAX_GUARDED_VALUES = 64
_IGNORED_NAMESPACES = ("profiler",)

_IR_TO_TORCH = {v: k for k, v in TORCH_TO_IR.items()}


def torch_dtype(dtype: DType) -> torch.dtype:
    return _IR_TO_TORCH[dtype]


def tensor_type(t: torch.Tensor) -> TensorType:
    return TensorType(ir_dtype(t.dtype), tuple(t.shape))


def _offsets(t: torch.Tensor) -> np.ndarray:
    """Storage element offsets of a tensor, for alias checks after in-place writes."""
    return _view_offsets(t.storage_offset(), tuple(t.shape), t.stride())


def _view_offsets(start: int, shape: tuple, stride: tuple) -> np.ndarray:
    idx = np.array(start, dtype=np.int64)
    for size, step in zip(shape, stride):
        idx = idx[..., None] + np.arange(size, dtype=np.int64) * step
    return idx.ravel()


def _overlap(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether two tensors on one storage share an element."""
    if a.numel() == 0 or b.numel() == 0:
        return False
    return _views_overlap(a.storage_offset(), tuple(a.shape), a.stride(),
                          b.storage_offset(), tuple(b.shape), b.stride())


@functools.lru_cache(maxsize=8192)
def _views_overlap(a_start: int, a_shape: tuple, a_stride: tuple,
                   b_start: int, b_shape: tuple, b_stride: tuple) -> bool:
    """Whether two non-empty views of one storage share an element: extents first, then
    cheap sufficient tests, elements last. Cached: a recurrent model writes the same views
    (chunks of its gates) at every step."""
    a0, a1 = a_start, a_start + sum((n - 1) * s for n, s in zip(a_shape, a_stride))
    b0, b1 = b_start, b_start + sum((n - 1) * s for n, s in zip(b_shape, b_stride))
    if a1 < b0 or b1 < a0:
        return False
    # a dense view holds every element of its extent, and the ends of an extent are
    # elements: one end of the other inside it is a shared element
    if (_dense(a_shape, a_stride) and (a0 <= b0 <= a1 or a0 <= b1 <= a1)) or \
            (_dense(b_shape, b_stride) and (b0 <= a0 <= b1 or b0 <= a1 <= b1)):
        return True
    if a_shape == b_shape and a_stride == b_stride and \
            _disjoint_shift(a_shape, a_stride, abs(b0 - a0)):
        return False
    lo = min(a0, b0)
    marks = np.zeros(max(a1, b1) - lo + 1, dtype=bool)
    marks[_view_offsets(a_start, a_shape, a_stride) - lo] = True
    return bool(marks[_view_offsets(b_start, b_shape, b_stride) - lo].any())


def _dense(shape: tuple, stride: tuple) -> bool:
    """Row-major contiguous (strides of size-1 dims do not matter)."""
    expected = 1
    for n, s in zip(reversed(shape), reversed(stride)):
        if n != 1 and s != expected:
            return False
        expected *= n
    return True


def _disjoint_shift(shape: tuple, stride: tuple, shift: int) -> bool:
    """Whether a view (``shape``, ``stride``) and the same view moved by ``shift`` >= 0
    elements are disjoint (the chunks of a split interleave this way). Sufficient test:
    for some dim, every larger stride is a multiple of its stride s, the smaller dims span
    ``inner`` <= s elements, and the shift modulo s lies in [inner, s - inner], so no
    element can land on another."""
    dims = sorted(((s, n) for s, n in zip(stride, shape) if n > 1), reverse=True)
    for k, (step, _) in enumerate(dims):
        inner = sum((n - 1) * s for s, n in dims[k + 1:]) + 1
        outer_aligned = all(s % step == 0 for s, _ in dims[:k])
        if outer_aligned and inner <= step and inner <= shift % step <= step - inner:
            return True
    return False


class Tracer(TorchDispatchMode):
    """Records aten ops into ``self.graph``. Use through ``tracejit.capture.capture``."""

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        """Never run under dynamo, so torch need not wrap us with dynamo.disable, whose
        first use imports torch._dynamo (about 3 s)."""
        return False

    def __init__(self, graph: ir.Graph, named_state: dict[int, tuple[str, str]],
                 scopes: ScopeStack, user_inputs: list[torch.Tensor], fullgraph: bool = False):
        super().__init__()
        self.graph = graph
        self.named_state = named_state        # id(tensor) -> (state_dict name, role)
        self.scopes = scopes
        self.fullgraph = fullgraph
        self.env: dict[int, Value] = {}
        self.keep: dict[int, torch.Tensor] = {}   # keeps ids stable while tracing
        self.by_storage: dict[int, dict[int, torch.Tensor]] = {}   # storage -> tensors on it
        self.user_inputs = {id(t) for t in user_inputs}
        self.stale: dict[int, str] = {}       # id -> why it can no longer be read
        self.state_inputs: dict[str, torch.Tensor] = {}   # input name -> tensor (params, ...)
        self.n_const = 0
        self.loc = ""
        self.scope = ""
        self.guards: list[Node] = []
        self.externs: list[Node] = []
        self.aborted: TraceAbort | None = None
        self.reused: dict[tuple, Value] = {}    # (op, inputs, attrs) -> value, see `reuse`

    # ---- values ---------------------------------------------------------------------------

    def bind(self, t: torch.Tensor, v: Value) -> None:
        self.env[id(t)] = v
        self.stale.pop(id(t), None)
        self.keep[id(t)] = t
        if t.numel():
            self.by_storage.setdefault(t.untyped_storage().data_ptr(), {})[id(t)] = t

    def value_of(self, t: torch.Tensor) -> Value:
        """The value of ``t``; a tensor from outside the trace (a closure, an unregistered
        attribute) becomes a "const" input read afresh at every call, never a baked
        constant: it may be a parameter or be updated in place between calls."""
        key = id(t)
        if key in self.stale:
            raise TraceAbort(self.stale[key])
        v = self.env.get(key)
        if v is not None:
            return v
        if key in self.named_state:
            name, role = self.named_state[key]
            v = self.graph.add_input(name, tensor_type(t), role)
            self.state_inputs[name] = t
        else:
            name = f"_const{self.n_const}"
            self.n_const += 1
            v = self.graph.add_input(name, tensor_type(t), "const")
            self.state_inputs[name] = t
        self.bind(t, v)
        return v

    def literal(self, t: torch.Tensor) -> Value:
        """A tensor literal made by forward itself (``torch.tensor([...])``): small ones are
        baked as constants, since forward rebuilds them from the same data at every call."""
        if id(t) in self.env or t.numel() > 16 or t.dtype not in TORCH_TO_IR:
            return self.value_of(t)
        v = self.emit("constant", [], value=tuple(t.flatten().tolist()), shape=tuple(t.shape),
                      dtype=str(ir_dtype(t.dtype)))
        self.bind(t, v)
        return v

    def emit(self, op: str, inputs, **attrs) -> Value | tuple[Value, ...]:
        """Append one node; returns its output value (or tuple of values)."""
        in_types = tuple(v.type for v in inputs)
        try:
            try:
                types = _infer(op, in_types, tuple(attrs.items()))
            except TypeError:                   # an unhashable attribute (a list)
                types = OPS[op].infer_types(list(in_types), attrs)
        except (TypeRuleError, ValueError) as e:
            raise TraceAbort(f"internal: cannot type {op}{attrs}: {e}") from e
        outs = tuple(Value(t) for t in types)
        node = Node(op, tuple(inputs), outs, attrs, scope=self.scope, loc=self.loc)
        self.graph.nodes.append(node)
        if op == "guard":
            self.guards.append(node)
        return outs[0] if len(outs) == 1 else outs

    def reuse(self, op: str, inputs, **attrs) -> Value:
        """``emit`` for a pure single-output op, answered by an identical earlier node when
        there is one: an unrolled loop transposes the same weight at every step, and the
        copies would only grow both traces, the merge and CSE's work."""
        key = (op, tuple(inputs), tuple(sorted(attrs.items())))
        v = self.reused.get(key)
        if v is None:
            v = self.reused[key] = self.emit(op, inputs, **attrs)
        return v

    def guard_values(self, t: torch.Tensor) -> None:
        """Python read a whole tensor's values (``tolist``, ``numpy``): guard on all of them."""
        if id(t) not in self.env and id(t) not in self.named_state:
            return                              # not traced data: nothing depends on it
        self.loc, self.scope = user_location(), self.scopes.current
        if t.numel() > MAX_GUARDED_VALUES:
            raise TraceAbort(f"forward reads the values of a {t.numel()}-element tensor into "
                             f"Python (at {self.where}); only up to {MAX_GUARDED_VALUES} are "
                             "guarded")
        v = self.value_of(t)
        seen = self.emit("constant", [], value=tuple(t.detach().flatten().tolist()),
                         shape=tuple(t.shape), dtype=str(v.type.dtype))
        same = self.emit("all", [self.emit("eq", [v, seen])])
        self.emit("guard", [same], expected=True)

    def constant(self, value, dtype: DType) -> Value:
        if dtype == DType.bool:
            value = bool(value)
        elif dtype.is_int:
            value = int(value)
        else:
            value = float(value)
        return self.emit("constant", [], value=value, shape=(), dtype=str(dtype))

    def operand(self, x, dtype: DType) -> Value:
        """A tensor or Python number as a value of ``dtype`` (cast or constant)."""
        if isinstance(x, torch.Tensor):
            v = self.value_of(x)
            return v if v.type.dtype == dtype else self.emit("cast", [v], dtype=str(dtype))
        return self.constant(x, dtype)

    # ---- dispatch -------------------------------------------------------------------------

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self.aborted is not None or func.namespace in _IGNORED_NAMESPACES:
            return func(*args, **kwargs)
        self.loc = user_location()
        self.scope = self.scopes.current
        rule, mutated, decomposition = _plan(func)
        if decomposition is not None:
            with self:
                return decomposition(*args, **kwargs)
        if rule is None and self.fullgraph:
            raise UnsupportedOpError(
                f"op {func} has no IR rule or decomposition (at {self.where}); use "
                "fullgraph=False to run it in torch, or add it to ir/ops.py and "
                "tracejit/aten.py")
        n_nodes = len(self.graph.nodes)
        out = func(*args, **kwargs)             # the real op runs exactly once
        try:
            try:
                if rule is None:
                    raise rules.UseExtern()
                result = rule(self, out, *args, **kwargs)
                self.bind_results(func, out, result)
            except rules.UseExtern:
                del self.graph.nodes[n_nodes:]
                self.extern(func, args, kwargs, mutated, out)
            for i in mutated:
                self.written(args[i], out)
        except TraceAbort as e:
            self.aborted = e                    # the call goes on eagerly, unrecorded
        return out

    @property
    def where(self) -> str:
        return "  ".join(p for p in (self.scope, self.loc) if p) or "unknown location"

    def bind_results(self, func, out, result) -> None:
        outs = out if isinstance(out, (tuple, list)) else (out,)
        vals = result if isinstance(result, (tuple, list)) else (result,)
        for t, v in zip(outs, vals):
            if not isinstance(t, torch.Tensor):
                continue
            if v is None:
                self.mark_stale(t, f"{func} output is not representable in the IR")
                continue
            if v.type.shape != t.shape or v.type.dtype is not ir_dtype(t.dtype):
                raise TraceAbort(f"internal: {func} traced as {v.type}, eager gave "
                                 f"{tensor_type(t)}")
            self.bind(t, v)

    def mark_stale(self, t: torch.Tensor, why: str) -> None:
        self.stale[id(t)] = why
        self.keep[id(t)] = t

    def written(self, t: torch.Tensor, out) -> None:
        """After an in-place write to ``t``: other tensors sharing its elements go stale,
        and a write to a buffer becomes a graph write."""
        if isinstance(out, torch.Tensor) and out is not t and id(out) in self.env:
            self.bind(t, self.env[id(out)])
        sharing = self.by_storage.get(t.untyped_storage().data_ptr(), {}) if t.numel() else {}
        for other in list(sharing.values()):
            if other is t or id(other) not in self.env or id(other) in self.stale:
                continue
            if _overlap(t, other):
                self.mark_stale(other, f"a tensor was modified in place through an alias "
                                       f"(at {self.loc or 'unknown line'}); the static graph "
                                       "cannot replay writes through views")
        ref = self.named_state.get(id(t))
        if ref is not None:
            name, role = ref
            if role != "buffer":
                raise TraceAbort(f"forward modifies {role} {name!r} in place at {self.loc}")
            if t._is_view():
                raise TraceAbort(f"forward writes buffer {name!r} through a view at {self.loc}")
            if name not in self.state_inputs:     # written before it was ever read
                self.graph.add_input(name, tensor_type(t), role)
                self.state_inputs[name] = t
            self.graph.writes[name] = self.env[id(t)]
        elif id(t) in self.user_inputs:
            raise TraceAbort(f"forward modifies an input tensor in place at {self.loc}")

    # ---- externs --------------------------------------------------------------------------

    def hidden_write(self, t: torch.Tensor, v: Value) -> None:
        """An op updated buffer ``t`` without its schema saying so (batch norm)."""
        name, role = self.named_state[id(t)]
        self.bind(t, v)
        self.graph.writes[name] = v

    def extern(self, func, args, kwargs, mutated, out) -> None:
        if self.fullgraph:
            raise UnsupportedOpError(f"op {func} has no IR rule for these arguments (at "
                                     f"{self.where}); use fullgraph=False to run it in torch")
        if torch.Tag.data_dependent_output in func.tags and not _returns_tensors(func):
            raise TraceAbort(f"{func} returns Python data computed from tensor values "
                             f"(at {self.where}); this data dependence is not captured yet")
        outs = out if isinstance(out, (tuple, list)) else (out,)
        if not all(isinstance(o, torch.Tensor) for o in outs):
            raise TraceAbort(f"{func} returns non-tensor values (at {self.where})")
        flat, _ = tree_flatten((args, kwargs))
        tensors = [x for x in flat if isinstance(x, torch.Tensor)]
        inputs = [self.value_of(t) for t in tensors]
        types = tuple(str(tensor_type(o)) for o in outs)
        call = encode_call(args, kwargs, tensors, mutated)
        vals = self.emit("extern", inputs, target=func.name(), call=call, types=types)
        vals = vals if isinstance(vals, tuple) else (vals,)
        self.externs.append(self.graph.nodes[-1])
        for o, v in zip(outs, vals):
            self.bind(o, v)
        for i in mutated:                       # the extern's first output is the written tensor
            if isinstance(args[i], torch.Tensor) and args[i] is not outs[0]:
                self.bind(args[i], vals[0])


class DataReads(TorchFunctionMode):
    """Sees what the dispatch mode cannot: Python reading tensor data in bulk."""

    READS = (torch.Tensor.tolist, torch.Tensor.numpy, torch.Tensor.__array__)

    def __init__(self, tracer: Tracer):
        super().__init__()
        self.tracer = tracer

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in self.READS and self.tracer.aborted is None:
            try:
                self.tracer.guard_values(args[0])
            except TraceAbort as e:
                self.tracer.aborted = e
        return func(*args, **(kwargs or {}))


@functools.lru_cache(maxsize=4096)
def _infer(op: str, in_types: tuple, attrs: tuple) -> tuple:
    """Output types of ``op``, cached: an unrolled loop types the same ops at every step."""
    return tuple(OPS[op].infer_types(list(in_types), dict(attrs)))


_PLANS: dict = {}


@functools.cache
def _decompositions() -> dict:
    """torch's core decomposition table, built on the first op that has no rule: building
    it takes 0.23 s, a fifth of a warm start, and models whose ops all have rules never
    need it."""
    return core_aten_decompositions()


def _plan(func) -> tuple:
    """(rule, mutated argument indices, decomposition) for an aten overload, looked up once
    per overload: a rule wins, then torch's decomposition (for out-of-place ops only)."""
    plan = _PLANS.get(func)
    if plan is None:
        name = func.overloadpacket.__name__
        mutated = _mutated_args(func)
        # keys are "packet.overload" ("max.default", "add.Tensor") or the packet alone;
        # func.name() drops ".default", so build the overload key ourselves
        rule = rules.RULES.get(f"{name}.{func._overloadname}") or rules.RULES.get(name)
        if rule is None and mutated and name.endswith("_"):
            rule = rules.RULES.get(name[:-1])
        table = _decompositions() if rule is None and not mutated else {}
        plan = _PLANS[func] = (rule, mutated, table.get(func))
    return plan


def _mutated_args(func) -> tuple[int, ...]:
    return tuple(i for i, a in enumerate(func._schema.arguments)
                 if a.alias_info is not None and a.alias_info.is_write and not a.kwarg_only)


def _returns_tensors(func) -> bool:
    return all(str(r.type).startswith("Tensor") for r in func._schema.returns)
