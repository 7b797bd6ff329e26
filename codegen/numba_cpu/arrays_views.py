"""Lowerings of views, data movement and creation ops (``ARRAY`` entries)."""

from __future__ import annotations

from ir.shapes import norm_dim

from .arrays import broadcast_copy, lowers, out_operand, permuted_copy, reshaped
from .emit import Body, Operand, ctor, lit


# ---- views and data movement ----------------------------------------------------------


@lowers("reshape", "flatten", "squeeze", "unsqueeze")
def _view_reshape(body, node, ins):
    return [out_operand(body, node, reshaped(body, ins[0], node.output.type.shape),
                        alias=ins[0].alias)]


@lowers("permute", "transpose")
def _permute(body, node, ins):
    rank = ins[0].type.rank
    if node.op == "permute":
        perm = tuple(d % rank for d in node.attrs["dims"])
    else:
        perm = list(range(rank))
        a, b = norm_dim(node.attrs["dim0"], rank), norm_dim(node.attrs["dim1"], rank)
        perm[a], perm[b] = perm[b], perm[a]
        perm = tuple(perm)
    if perm == tuple(range(rank)):
        return [ins[0]]
    if rank == 2:                # a zero-copy view
        return [out_operand(body, node, f"{body.materialise(ins[0])}.T",
                            contiguous=False, alias=ins[0].alias)]
    return [Operand(permuted_copy(body, ins[0], perm), node.output.type)]


@lowers("expand")
def _expand(body, node, ins):
    return [Operand(broadcast_copy(body, ins[0], node.output.type.shape), node.output.type)]


def _index(rank, dim, item):
    return ", ".join(item if i == dim else ":" for i in range(rank))


@lowers("slice")
def _slice(body, node, ins):
    x = ins[0]
    d = norm_dim(node.attrs.get("dim", 0), x.type.rank)
    start, end, step = (node.attrs.get("start", 0), node.attrs.get("end"),
                        node.attrs.get("step", 1))
    size = x.type.shape[d]
    end = size if end is None else end
    if isinstance(size, int):
        start, end, _ = slice(start, end, step).indices(size)
        item = f"{start}:{end}:{step}"
    else:
        item = f"{start}:{body.dim(size) if end >= 2 ** 62 else end}:{step}"
    return [out_operand(body, node, f"{body.materialise(x)}[{_index(x.type.rank, d, item)}]",
                        contiguous=x.contiguous and d == 0 and step == 1, alias=x.alias)]


@lowers("select")
def _select(body, node, ins):
    x = ins[0]
    d = norm_dim(node.attrs["dim"], x.type.rank)
    i = node.attrs["index"]
    item = str(i) if i >= 0 else f"{body.dim(x.type.shape[d])} - {-i}"
    if x.type.rank == 1:         # a NumPy scalar; made a 0-d array only where one is needed
        var = body.tmp("v")
        body.line(f"{var} = {body.materialise(x)}[{item}]")
        return [Operand(None, node.output.type, scalar=var)]
    return [out_operand(body, node, f"{body.materialise(x)}[{_index(x.type.rank, d, item)}]",
                        contiguous=x.contiguous and d == 0, alias=x.alias)]


@lowers("split")
def _split(body, node, ins):
    x = ins[0]
    d = norm_dim(node.attrs.get("dim", 0), x.type.rank)
    outs, start = [], 0
    for k, size in enumerate(node.attrs["sizes"]):
        item = f"{start}:{start + size}"
        view = f"{body.materialise(x)}[{_index(x.type.rank, d, item)}]"
        outs.append(out_operand(body, node, view,
                                k, contiguous=False, alias=x.alias))
        start += size
    return outs


@lowers("cat", "stack")
def _cat(body, node, ins):
    rank = node.output.type.rank
    d = norm_dim(node.attrs.get("dim", 0), rank)
    parts = "".join(body.contig(x) + ", " for x in ins)
    fn = "np.concatenate" if node.op == "cat" else "np.stack"
    return [out_operand(body, node, f"{fn}(({parts}), axis={d})")]


@lowers("gather")
def _gather(body, node, ins):
    x, index = ins
    rank = x.type.rank
    d = norm_dim(node.attrs["dim"], rank)

    # explicit loops: out[i...] = x[i... with dim d replaced by index[i...]]
    out = body.tmp("o")
    t = node.output.type
    body.line(f"{out} = np.empty({body.shape(t.shape)}, {ctor(t)})")
    xi, ii = body.materialise(x), body.materialise(index)
    idx = [body.tmp("i") for _ in range(rank)]
    for k, dim in enumerate(t.shape):
        body.line(f"for {idx[k]} in range({body.dim(dim)}):")
        body.indent += 1
    j = body.tmp("j")
    where = ", ".join(idx)
    body.line(f"{j} = {ii}[{where}]")
    body.line(f"{j} = {j} + {xi}.shape[{d}] if {j} < 0 else {j}")
    src = ", ".join(j if k == d else idx[k] for k in range(rank))
    body.line(f"{out}[{where}] = {xi}[{src}]")
    body.indent -= rank
    return [Operand(out, t)]


def _three(body: Body, x: Operand, d: int) -> str:
    """x as (outer, x.shape[d], inner), C-contiguous."""
    s = x.type.shape
    return (f"{body.contig(x)}.reshape(({body.prod(s[:d])}, {body.dim(s[d])}, "
            f"{body.prod(s[d + 1:])}))")


@lowers("index_select")
def _index_select(body, node, ins):
    x, index = ins
    d = norm_dim(node.attrs["dim"], x.type.rank)
    res = f"K.index_select({_three(body, x, d)}, {reshaped(body, index, (-1,))})"
    return [out_operand(body, node, f"{res}.reshape({body.shape(node.output.type.shape)})")]


@lowers("embedding")
def _embedding(body, node, ins):
    w, idx = ins
    w3 = reshaped(body, w, (1,) + tuple(w.type.shape))
    res = f"K.index_select({w3}, {reshaped(body, idx, (-1,))})"
    return [out_operand(body, node, f"{res}.reshape({body.shape(node.output.type.shape)})")]


@lowers("tril", "triu")
def _tri(body, node, ins):
    x = ins[0]
    s = x.type.shape
    x3 = (f"{body.contig(x)}.reshape(({body.prod(s[:-2])}, {body.dim(s[-2])}, "
          f"{body.dim(s[-1])}))")
    upper = node.op == "triu"
    res = f"K.tri({x3}, {node.attrs.get('diagonal', 0)}, {upper})"
    return [out_operand(body, node, f"{res}.reshape({body.shape(s)})")]


@lowers("pad")
def _pad(body, node, ins):
    x = ins[0]
    t = node.output.type
    pads = node.attrs["pads"]
    out = body.tmp("o")
    fill = lit(node.attrs.get("value", 0.0), t.dtype)
    body.line(f"{out} = np.full({body.shape(t.shape)}, {fill})")
    if not x.type.rank:
        body.line(f"{out}[()] = {body.materialise(x)}[()]")
        return [Operand(out, t)]
    # copy the kept part of x with a loop nest (slice assignment is slow to compile)
    src, rank = body.materialise(x), x.type.rank
    idx = [body.tmp("i") for _ in range(rank)]
    shift = []
    for d in range(rank):
        k = rank - 1 - d
        lo, hi = (pads[2 * k], pads[2 * k + 1]) if 2 * k + 1 < len(pads) else (0, 0)
        body.line(f"for {idx[d]} in range({max(-lo, 0)}, {body.dim(x.type.shape[d])} - "
                  f"{max(-hi, 0)}):")
        body.indent += 1
        shift.append(f"{idx[d]} + {lo}" if lo else idx[d])
    body.line(f"{out}[{', '.join(shift)}] = {src}[{', '.join(idx)}]")
    body.indent -= rank
    return [Operand(out, t)]


# ---- creation -----------------------------------------------------------------------------


@lowers("full")
def _full(body, node, ins):
    t = node.output.type
    fill = lit(node.attrs["value"], t.dtype)
    return [out_operand(body, node, f"np.full({body.shape(t.shape)}, {fill})")]


@lowers("arange")
def _arange(body, node, ins):
    a = node.attrs
    t = node.output.type
    return [out_operand(body, node, f"np.arange({a.get('start', 0)!r}, {a['end']!r}, "
                        f"{a.get('step', 1)!r}).astype({ctor(t)})")]


@lowers("constant")
def _constant(body, node, ins):
    t = node.output.type
    value = node.attrs["value"]
    if t.shape == () and not isinstance(value, tuple):
        return [Operand(None, t, True, None, lit(value, t.dtype))]
    vals = value if isinstance(value, tuple) else (value,) * (t.numel or 0)
    items = ", ".join(lit(v, t.dtype) for v in vals)
    arr = f"np.array([{items}], {ctor(t)})" if vals else f"np.empty(0, {ctor(t)})"
    return [out_operand(body, node, f"{arr}.reshape({body.shape(t.shape)})")]
