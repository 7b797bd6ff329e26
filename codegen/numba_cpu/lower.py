"""Lowering tables for the numba-cpu backend, keyed by op name.

``SCALAR``: element expressions for ops that run inside explicit loops (every elementwise
op, alone or in a fused region); the loop casts each result to the node's dtype.
``ARRAY``: whole-array lowerings (views, data movement, reductions, contractions, ...)
that write lines into the njit body and return the output operands. ``UNLOWERED`` lists
ops handled outside these tables, with the reason.
"""

from __future__ import annotations

import math
from typing import Callable

from ir.errors import LoweringError
from ir.graph import Node, Value, free_values
from ir.types import DType

from .emit import Body, Operand, ctor, lit

UNLOWERED = {
    "extern": "the graph is split at extern nodes; the runtime calls the host callback",
}


def _dt(n: Node) -> DType:
    return n.inputs[0].type.dtype if n.inputs else n.output.type.dtype


def _is_f32(n: Node) -> bool:
    return _dt(n) == DType.f32


def _fn(vec32: str, other: str):
    """A unary float function: the vectorisable float32 version, else a scalar one."""
    return lambda n, a: f"{vec32 if _is_f32(n) else other}({a[0]})"


def _one(n):
    return lit(1, _dt(n))


def _zero(n):
    return lit(0, _dt(n))


def _relu(n, a):
    if not _dt(n).is_float:
        return f"max({a[0]}, {_zero(n)})"
    return f"{a[0]} if ({a[0]} > {_zero(n)} or {a[0]} != {a[0]}) else {_zero(n)}"


def _sign(n, a):
    x, one, zero = a[0], _one(n), _zero(n)
    if _dt(n) == DType.bool:
        return x
    return f"{one} if {x} > {zero} else (-{one} if {x} < {zero} else {zero})"


def _gelu(n, a):
    tanh = n.attrs.get("approximate", "none") == "tanh"
    name = ("V.gelu_tanh" if tanh else "V.gelu") + ("32" if _is_f32(n) else "64")
    return f"{name}({a[0]})"


def _clamp(n, a):
    y = a[0]
    lo, hi = n.attrs.get("min"), n.attrs.get("max")
    if lo is not None:
        y = f"({lit(lo, _dt(n))} if {y} < {lit(lo, _dt(n))} else {y})"
    if hi is not None:
        y = f"({lit(hi, _dt(n))} if {y} > {lit(hi, _dt(n))} else {y})"
    return y


def _cast(n, a):
    if DType(n.attrs["dtype"]) == DType.bool:
        return f"{a[0]} != 0"
    return a[0]


def _exact_or(expr_float: str, expr_int: str):
    return lambda n, a: (expr_float if _dt(n).is_float else expr_int).format(*a)


SCALAR: dict[str, Callable[[Node, list[str]], str]] = {
    "neg": lambda n, a: f"-{a[0]}",
    "abs": lambda n, a: f"abs({a[0]})",
    "exp": _fn("V.exp32", "np.exp"),
    "log": _fn("V.log32", "np.log"),
    "log1p": _fn("np.log1p", "np.log1p"),
    "expm1": _fn("np.expm1", "np.expm1"),
    "sqrt": _fn("np.sqrt", "np.sqrt"),
    "rsqrt": lambda n, a: f"{_one(n)} / np.sqrt({a[0]})",
    "reciprocal": lambda n, a: f"{_one(n)} / {a[0]}",
    "sin": _fn("np.sin", "np.sin"),
    "cos": _fn("np.cos", "np.cos"),
    "tanh": _fn("V.tanh32", "np.tanh"),
    "sigmoid": _fn("V.sigmoid32", "V.sigmoid64"),
    "erf": _fn("V.erf32", "math.erf"),
    "relu": _relu,
    "silu": _fn("V.silu32", "V.silu64"),
    "floor": _exact_or("np.floor({0})", "{0}"),
    "ceil": _exact_or("np.ceil({0})", "{0}"),
    "round": _exact_or("np.rint({0})", "{0}"),
    "sign": _sign,
    "bitwise_not": lambda n, a: f"not {a[0]}" if _dt(n) == DType.bool else f"~{a[0]}",
    "logical_not": lambda n, a: f"{a[0]} == 0",
    "isnan": lambda n, a: f"{a[0]} != {a[0]}",
    "leaky_relu": lambda n, a: (f"{a[0]} if {a[0]} > {_zero(n)} else "
                                f"{a[0]} * {lit(n.attrs.get('negative_slope', 0.01), _dt(n))}"),
    "gelu": _gelu,
    "clamp": _clamp,
    "cast": _cast,
    "add": lambda n, a: f"{a[0]} + {a[1]}",
    "sub": lambda n, a: f"{a[0]} - {a[1]}",
    "mul": lambda n, a: f"{a[0]} * {a[1]}",
    "div": lambda n, a: f"{a[0]} / {a[1]}",
    "pow": lambda n, a: f"{a[0]} ** {a[1]}",
    "maximum": lambda n, a: f"{a[0]} if ({a[0]} > {a[1]} or {a[0]} != {a[0]}) else {a[1]}",
    "minimum": lambda n, a: f"{a[0]} if ({a[0]} < {a[1]} or {a[0]} != {a[0]}) else {a[1]}",
    "remainder": lambda n, a: f"{a[0]} % {a[1]}",
    "floor_divide": lambda n, a: f"{a[0]} // {a[1]}",
    "bitwise_and": lambda n, a: f"{a[0]} & {a[1]}",
    "bitwise_or": lambda n, a: f"{a[0]} | {a[1]}",
    "bitwise_xor": lambda n, a: f"{a[0]} ^ {a[1]}",
    "eq": lambda n, a: f"{a[0]} == {a[1]}",
    "ne": lambda n, a: f"{a[0]} != {a[1]}",
    "lt": lambda n, a: f"{a[0]} < {a[1]}",
    "le": lambda n, a: f"{a[0]} <= {a[1]}",
    "gt": lambda n, a: f"{a[0]} > {a[1]}",
    "ge": lambda n, a: f"{a[0]} >= {a[1]}",
    "logical_and": lambda n, a: f"({a[0]} != 0) & ({a[1]} != 0)",
    "logical_or": lambda n, a: f"({a[0]} != 0) | ({a[1]} != 0)",
    "logical_xor": lambda n, a: f"({a[0]} != 0) != ({a[1]} != 0)",
    "where": lambda n, a: f"{a[1]} if {a[0]} else {a[2]}",
}


# ---- loops --------------------------------------------------------------------------------


PARALLEL_MIN = {True: 1 << 18, False: 1 << 20}
"""Loops over at least this many elements run on every core (``prange``), by whether an
element costs a transcendental (a vecmath or libm call). A parallel launch costs about
60-80 µs here: a 256k-element add takes 62 µs on one core and 114 µs on two, a 1M one
825 against 323 µs; a GELU loop alone gained 1.15x at 128k elements and 1.8x at 256k
(2-core Zen 1). Between GEMMs, 128k lost: the PreNorm block at batch 1 (a 128x1024
GELU) ran in 1.9-2.6 ms with it threaded and 1.4-1.9 ms serial (same process, 2-core
Zen 4), so threads start at 256k. A parallel kernel also takes ~0.4 s longer to compile."""

COSTLY = frozenset({"exp", "log", "log1p", "expm1", "sqrt", "rsqrt", "sin", "cos", "tanh",
                    "sigmoid", "erf", "silu", "gelu", "pow"})
"""Elementwise ops whose scalar lowering calls a transcendental."""


def _parallel(shape, loads: list[Operand], costly: bool) -> str | None:
    """How a loop over ``shape`` runs: "flat" is one ``prange`` over the elements (every
    array operand has the output's shape and is C-contiguous), "outer" a ``prange`` over
    the first axis, None serial."""
    if not all(isinstance(d, int) for d in shape) or math.prod(shape) < PARALLEL_MIN[costly]:
        return None
    if all(op.scalar is not None or (tuple(op.type.shape) == tuple(shape) and op.contiguous)
           for op in loads):
        return "flat"
    return "outer" if shape[0] > 1 else None


def emit_loop(body: Body, shape, loads: list[Operand], compute, out_types, into=None,
              costly=False):
    """One loop nest over ``shape``; ``compute(scalars)`` returns one expression per output
    (it may add lines inside the loop). Inputs broadcast by index arithmetic. Large loops
    run in parallel (see ``_parallel``; ``costly``: the body calls a transcendental)."""
    outs = []
    for t in out_types:
        if into is not None:
            outs.append(into)
            continue
        var = body.tmp("o")
        body.line(f"{var} = np.empty({body.shape(shape)}, {ctor(t)})")
        outs.append(var)
    mode = _parallel(shape, loads, costly)
    if mode != "flat" and (merged := _coalesced(shape, loads)) is not None:
        views: dict[str, str] = {}
        loads = [op if op.scalar is not None else
                 Operand(_view(body, op.var, str(shape_of), views), op.type.with_shape(shape_of))
                 for op, shape_of in zip(loads, merged[1])]
        targets = [_view(body, var, str(merged[0]), views) for var in outs]
        shape = merged[0]
    elif mode == "flat":
        views: dict[str, str] = {}     # one flat view per array (an in-place loop reads
        flat = (math.prod(shape),)     # and writes the same one)
        loads = [op if op.scalar is not None else
                 Operand(_flat_view(body, op.var, views), op.type.with_shape(flat))
                 for op in loads]
        targets = [_flat_view(body, var, views) for var in outs]
        shape = flat
    else:
        targets = outs
    rank = len(shape)
    idx = [body.tmp("i") for _ in range(rank)]
    for k, d in enumerate(shape):
        loop = "prange" if mode is not None and k == 0 else "range"
        body.line(f"for {idx[k]} in {loop}({body.dim(d)}):")
        body.indent += 1
    scalars = []
    for op in loads:
        if op.scalar is not None:
            scalars.append(op.scalar)
            continue
        s = op.type.shape
        ix = ["0" if d == 1 else idx[rank - len(s) + j] for j, d in enumerate(s)]
        name = body.tmp("x")
        body.line(f"{name} = {op.var}[{', '.join(ix) if ix else '()'}]")
        scalars.append(name)
    exprs = compute(scalars)
    # a size-1 axis is indexed by 0 in stores as in loads: an in-place loop then reads and
    # writes the same address, which LLVM can prove; with i0 there it could not, and left
    # the loop scalar (PreNorm's 1x128x1024 GELU: 1.08 ms, 8 ns per element)
    where = ", ".join("0" if d == 1 else i for d, i in zip(shape, idx)) if idx else "()"
    for var, e, t in zip(targets, exprs, out_types):
        body.line(f"{var}[{where}] = {ctor(t)}({e})")
    body.indent -= rank
    return outs


def _flat_view(body: Body, var: str, views: dict[str, str]) -> str:
    return _view(body, var, "-1", views)


def _view(body: Body, var: str, shape: str, views: dict[str, str]) -> str:
    """One reshaped view per array: an in-place loop reads and writes the same one."""
    if var not in views:
        views[var] = body.tmp("f")
        body.line(f"{views[var]} = {var}.reshape({shape})")
    return views[var]


COALESCE_BELOW = 64
"""A loop nest whose innermost axis is shorter than this many elements has its axes
merged where every operand allows (``_coalesced``): a 3-long row does not vectorise, and
each row pays the inner loop's set-up. A BatchNorm folded into a 32x32x3x3 conv weight
took 20 µs as four nested loops (ResNet at batch 1: 5 of them per call)."""


def _coalesced(shape, loads: list[Operand]):
    """(loop shape, each operand's shape) with adjacent axes merged where every operand is
    either broadcast along both or C-contiguous and full along both (outputs are fresh C
    arrays), or None where that changes nothing or is not needed. Operand shapes are
    given at the loop's full rank, right-aligned as broadcasting aligns them."""
    if not all(isinstance(d, int) for d in shape) or sum(d > 1 for d in shape) < 2 \
            or shape[-1] >= COALESCE_BELOW:
        return None
    aligned = [None if op.scalar is not None else
               (1,) * (len(shape) - len(op.type.shape)) + tuple(op.type.shape)
               for op in loads]

    def kinds(j):
        """Per operand along axis j: None (the loop's extent is 1), "b" broadcast, "f"."""
        if shape[j] == 1:
            return [None] * len(loads)
        return [None if a is None else ("b" if a[j] == 1 else "f") for a in aligned]

    groups = [[0]]
    group_kinds = kinds(0)
    for j in range(1, len(shape)):
        here = kinds(j)
        fits = all(a is None or g is None or h is None or
                   (g == h and (h == "b" or op.contiguous))
                   for op, a, g, h in zip(loads, aligned, group_kinds, here))
        if fits:
            groups[-1].append(j)
            group_kinds = [g if h is None else h for g, h in zip(group_kinds, here)]
        else:
            groups.append([j])
            group_kinds = here
    if len(groups) == len(shape):
        return None
    merged = tuple(math.prod(shape[j] for j in g) for g in groups)
    shapes = [None if a is None else tuple(math.prod(a[j] for j in g) for g in groups)
              for a in aligned]
    return merged, shapes


def scalar_nodes(body: Body, nodes, binds: dict[Value, str]) -> dict[Value, str]:
    """Lines computing each node's element inside a loop; returns value -> scalar name."""
    env = dict(binds)
    for n in nodes:
        if n.op == "constant":
            env[n.output] = lit(n.attrs["value"], n.output.type.dtype)
            continue
        expr = SCALAR[n.op](n, [env[v] for v in n.inputs])
        name = body.tmp("s")
        body.line(f"{name} = {ctor(n.output.type)}({expr})")
        env[n.output] = name
    return env


def loopable(nodes) -> bool:
    return all(n.op in SCALAR or (n.op == "constant" and n.output.type.shape == ())
               for n in nodes)


def lower_elementwise(body: Body, nodes, params, args: list[Operand], results, into=None):
    shape = results[0].type.shape
    used = [(p, a) for p, a in zip(params, args)]
    if shape == () and into is None and all(a.scalar is not None for _, a in used):
        # scalars all the way (a data-dependent guard's index and compare): plain NumPy
        # scalar lines, no 0-d arrays and no kernel call
        env = scalar_nodes(body, nodes, {p: a.scalar for p, a in used})
        return [Operand(None, r.type, scalar=env[r]) for r in results]

    def compute(scalars):
        env = scalar_nodes(body, nodes, {p: s for (p, _), s in zip(used, scalars)})
        return [env[r] for r in results]
    outs = emit_loop(body, shape, [a for _, a in used], compute, [r.type for r in results],
                     into=into, costly=any(n.op in COSTLY for n in nodes))
    return [Operand(o, r.type) for o, r in zip(outs, results)]


# ---- node dispatch ------------------------------------------------------------------------


def lower_nodes(body: Body, nodes, env: dict[Value, Operand], keep) -> None:
    """Lower ``nodes`` in order; consecutive elementwise nodes of one output shape share one
    loop (each loop nest costs compile time), exporting only the values used after the run
    or listed in ``keep``. 0-d constants emit no code and do not break a run."""
    users: dict[Value, list[int]] = {}
    for k, n in enumerate(nodes):
        for v in n.inputs:
            users.setdefault(v, []).append(k)
    run: list[int] = []

    def flush():
        if not run:
            return
        members = [nodes[k] for k in run]
        last = run[-1]
        outs = [o for n in members for o in n.outputs
                if o in keep or any(u > last for u in users.get(o, ()))]
        free = free_values(members)
        if outs:                 # a run whose values nobody reads emits nothing
            res = lower_elementwise(body, members, free, [env[v] for v in free], outs)
            env.update(zip(outs, res))
        run.clear()

    for k, n in enumerate(nodes):
        if n.op == "constant" and n.output.type.shape == ():
            lower_node(body, n, env)
        elif n.op in SCALAR and (not run or
                                 n.output.type.shape == nodes[run[0]].output.type.shape):
            run.append(k)
        else:
            flush()
            if n.op in SCALAR:
                run.append(k)
            else:
                lower_node(body, n, env)
    flush()



def lower_node(body: Body, node: Node, env: dict[Value, Operand]) -> None:
    ins = [env[v] for v in node.inputs]
    if node.op == "fused":
        outs = _lower_fused(body, node, ins)
    elif node.op in SCALAR:
        outs = lower_elementwise(body, [node], list(node.inputs), ins, list(node.outputs))
    elif node.op in ARRAY:
        outs = ARRAY[node.op](body, node, ins)
    else:
        raise LoweringError(f"numba-cpu has no lowering for op {node.op!r} "
                            f"({node.scope or 'graph'}); add one in codegen/numba_cpu/lower.py")
    for v, o in zip(node.outputs, outs):
        env[v] = o


def _lower_fused(body: Body, node: Node, ins):
    region = node.region
    kind = node.attrs.get("kind")
    if kind in RECURRENT_KINDS:
        return lower_recurrent(body, node, ins)
    results = list(region.results)
    same = len({r.type.shape for r in results}) == 1
    body_vals = {o for n in region.nodes for o in n.outputs}
    if kind == "elementwise" and same and loopable(region.nodes) and \
            all(r in body_vals for r in results):
        return lower_elementwise(body, region.nodes, list(region.params), ins, results)
    if kind == "epilogue" and region.nodes and loopable(region.nodes[1:]) and same \
            and region.nodes[0].op in ARRAY and len(results) == 1 and results[0] in body_vals:
        head, rest = _bias_in_loop(region.nodes[0], list(region.nodes[1:]))
        env = dict(zip(region.params, ins))
        (t,) = ARRAY[head.op](body, head, [env[v] for v in head.inputs])
        env[head.output] = t
        used = [v for v in free_values(rest) if v in env]
        into = t.var if (results[0].type == t.type and head.output not in results
                         and t.alias is None and t.contiguous) else None
        return lower_elementwise(body, rest, used, [env[v] for v in used], results, into=into)
    env = dict(zip(region.params, ins))
    for n in region.nodes:
        lower_node(body, n, env)
    return [env[r] for r in results]


BIAS_IN_LOOP_MIN = 1 << 17
"""Output elements from which an epilogue's ``linear`` leaves its bias to the loop (see
``_bias_in_loop``). In-process A/B: the PreNorm block 1.03-1.04x faster at batch 1
(128x1024 products) and 1.04-1.10x at batch 8 (1024x1024); products in the cache lost by
it (MLP at batch 64, 64x256: 0.96-0.99x; SimpleNN at batch 256, 256x10: 0.87-0.95x)."""


def _bias_in_loop(head: Node, rest: list[Node]) -> tuple[Node, list[Node]]:
    """An epilogue's large ``linear`` without its bias, and the bias added as the loop's
    first op: the kernel would otherwise add it in a pass of its own over the product,
    before the loop passes over it again."""
    size = head.output.type.shape
    if head.op != "linear" or len(head.inputs) != 3 or \
            not all(isinstance(d, int) for d in size) or math.prod(size) < BIAS_IN_LOOP_MIN:
        return head, rest
    x, w, b = head.inputs
    bare = head.replace(inputs=(x, w), outputs=(Value(head.output.type),))
    add = Node("add", (bare.output, b), head.outputs, scope=head.scope, loc=head.loc)
    return bare, [add] + rest


from .arrays import ARRAY  # noqa: E402  (ARRAY lowerings use emit_loop from this module)
from .recurrent import RECURRENT_KINDS, lower_recurrent  # noqa: E402

