"""Per-element lowerings: one thread computes one output element from its index.

``ELEMENT[op](k, node, attrs, o, j) -> expression`` for output ``j`` of ``node`` at the
multi-index ``o`` (variable names); it may write lines (and loops) into the kernel ``k``
first. Views are index remaps, gathers are loads at loaded indices, creation ops are
formulas of the index. Loop-shaped ops (reductions, convolutions, pools) are in loops.py.
"""

from __future__ import annotations

from ir.shapes import norm_dim
from ir.types import DType

from .kernel import Kernel, lit

ELEMENT: dict = {}


def element(*names):
    def register(fn):
        for n in names:
            ELEMENT[n] = fn
        return fn
    return register


def _in(node, i=0):
    return node.inputs[i]


@element("reshape", "flatten", "squeeze", "unsqueeze")
def _rowmajor(k: Kernel, node, a, o, j):
    flat = k.flat(k.shape(node.outputs[0]), o)
    return f"{k.arg(_in(node))}[{flat}]" if k.gen.literal(_in(node)) is None \
        else k.gen.literal(_in(node))


@element("expand")
def _expand(k, node, a, o, j):
    return k.bload(_in(node), o)


@element("permute")
def _permute(k, node, a, o, j):
    idx = [None] * len(o)
    for out_axis, d in enumerate(a["dims"]):
        idx[norm_dim(d, len(o))] = o[out_axis]
    return k.load(_in(node), idx)


@element("transpose")
def _transpose(k, node, a, o, j):
    idx = list(o)
    d0, d1 = norm_dim(a["dim0"], len(o)), norm_dim(a["dim1"], len(o))
    idx[d0], idx[d1] = idx[d1], idx[d0]
    return k.load(_in(node), idx)


@element("slice")
def _slice(k, node, a, o, j):
    shape = k.shape(_in(node))
    d = norm_dim(a["dim"], len(shape))
    start, _, step = slice(a["start"], a["end"], a["step"]).indices(shape[d])
    idx = list(o)
    idx[d] = f"{start} + {o[d]} * {step}"
    return k.load(_in(node), idx)


@element("select")
def _select(k, node, a, o, j):
    shape = k.shape(_in(node))
    d = norm_dim(a["dim"], len(shape))
    return k.load(_in(node), list(o[:d]) + [str(a["index"] % shape[d])] + list(o[d:]))


@element("split")
def _split(k, node, a, o, j):
    shape = k.shape(_in(node))
    d = norm_dim(a["dim"], len(shape))
    idx = list(o)
    idx[d] = f"{o[d]} + {sum(a['sizes'][:j])}"
    return k.load(_in(node), idx)


def _choose(k, pieces, _unused):
    """Lines choosing among ``pieces`` (condition, expression) into one variable."""
    var = k.tmp("c")
    if not pieces:
        return "0"
    for n, (cond, expr) in enumerate(pieces):
        if n == len(pieces) - 1:
            k.line("else:" if n else "if True:")
        else:
            k.line(f"{'elif' if n else 'if'} {cond}:")
        k.line(f"    {var} = {expr}")
    return var


@element("cat")
def _cat(k, node, a, o, j):
    rank = len(o)
    d = norm_dim(a["dim"], rank)
    pieces, off = [], 0
    for v in node.inputs:
        size = k.shape(v)[d]
        if size == 0:
            continue
        idx = list(o)
        idx[d] = f"{o[d]} - {off}"
        off += size
        pieces.append((f"{o[d]} < {off}", k.load(v, idx)))
    return _choose(k, pieces, None)


@element("stack")
def _stack(k, node, a, o, j):
    d = a["dim"] % len(o)
    rest = list(o[:d]) + list(o[d + 1:])
    pieces = [(f"{o[d]} == {n}", k.load(v, rest)) for n, v in enumerate(node.inputs)]
    return _choose(k, pieces, None)


def _index(k, v, o, size):
    """An index loaded from ``v`` at ``o``, negative ones counted from the end."""
    var = k.tmp("ix")
    k.line(f"{var} = {k.load(v, o)}")
    k.line(f"if {var} < 0:")
    k.line(f"    {var} += {size}")
    return var


@element("gather")
def _gather(k, node, a, o, j):
    x, index = node.inputs
    d = norm_dim(a["dim"], len(o))
    idx = list(o)
    idx[d] = _index(k, index, o, k.shape(x)[d])
    return k.load(x, idx)


@element("index_select")
def _index_select(k, node, a, o, j):
    x, index = node.inputs
    d = norm_dim(a["dim"], len(o))
    idx = list(o)
    idx[d] = _index(k, index, [o[d]], k.shape(x)[d])
    return k.load(x, idx)


@element("embedding")
def _embedding(k, node, a, o, j):
    weight, indices = node.inputs
    r = len(k.shape(indices))
    row = _index(k, indices, o[:r], k.shape(weight)[0])
    return k.load(weight, [row] + list(o[r:]))


def _tri(keep):
    def lower(k, node, a, o, j):
        x = _in(node)
        zero = lit(0, x.type.dtype)
        return f"({k.load(x, o)} if {keep(o[-1] + ' - ' + o[-2], a['diagonal'])} else {zero})"
    return lower


ELEMENT["tril"] = _tri(lambda diff, dg: f"{diff} <= {dg}")
ELEMENT["triu"] = _tri(lambda diff, dg: f"{diff} >= {dg}")


@element("pad")
def _pad(k, node, a, o, j):
    x = _in(node)
    shape = k.shape(x)
    pads = a["pads"]
    idx, conds = list(o), []
    for i in range(len(pads) // 2):
        d = len(shape) - 1 - i
        idx[d] = f"({o[d]} - {pads[2 * i]})"
        conds.append(f"0 <= {idx[d]} < {shape[d]}")
    fill = lit(a["value"], x.type.dtype)
    var = k.tmp("p")
    k.line(f"{var} = {fill}")
    k.line(f"if {' and '.join(conds) or 'True'}:")
    k.line(f"    {var} = {k.load(x, idx)}")
    return var


@element("full")
def _full(k, node, a, o, j):
    return lit(a["value"], DType(a["dtype"]))


@element("arange")
def _arange(k, node, a, o, j):
    return f"np.float64({float(a['start'])!r}) + {o[0]} * np.float64({float(a['step'])!r})" \
        if DType(a["dtype"]).is_float else f"{int(a['start'])} + {o[0]} * {int(a['step'])}"
