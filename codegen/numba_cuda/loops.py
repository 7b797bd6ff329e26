"""Per-element lowerings that loop: reductions over arbitrary dims, scans, normalisations
along any dim, batch norm, convolutions, pools, attention and losses.

Each thread owns one output element and loops over what it reduces (float accumulation in
float64). They are the general path; rows.py has the block-per-row kernels that the
common trailing-dim cases take instead.
"""

from __future__ import annotations

import numpy as np

from ir.shapes import norm_dim, norm_dims
from ir.types import DType

from .elements import ELEMENT, element
from .kernel import Kernel


def _acc_init(dt: DType, value) -> str:
    return f"np.float64({value!r})" if dt.is_float else f"np.int64({int(value)})"


def _full_index(k: Kernel, in_shape, dims, keepdim, o):
    """Input index with a loop variable at each reduced dim; opens the loops."""
    idx, it = [], iter(o)
    for d in range(len(in_shape)):
        if d in dims:
            if keepdim:
                next(it)
            var = k.tmp("j")
            idx.append(var)
        else:
            idx.append(next(it))
    return idx


def _loops(k: Kernel, in_shape, dims, idx):
    for d in dims:
        k.loop(idx[d], in_shape[d])
    return len(dims)


def _reduce(update, init, finish=lambda k, acc, node, n: acc):
    def lower(k: Kernel, node, a, o, j):
        x = node.inputs[0]
        shape = k.shape(x)
        dims = norm_dims(a["dims"], len(shape))
        idx = _full_index(k, shape, dims, a["keepdim"], o)
        acc = k.tmp("acc")
        k.line(f"{acc} = {init(x.type.dtype)}")
        depth = _loops(k, shape, dims, idx)
        k.line(update(acc, k.load(x, idx), x.type.dtype))
        k.indent -= depth
        return finish(k, acc, node, int(np.prod([shape[d] for d in dims])))
    return lower


def _extreme(sign):
    def init(dt):
        if dt.is_float:
            return f"np.float64({'-' if sign > 0 else ''}np.inf)"
        if dt == DType.bool:
            return "False" if sign > 0 else "True"
        info = np.iinfo(dt.np)
        return f"np.int64({info.min if sign > 0 else info.max})"
    cmp = ">" if sign > 0 else "<"
    return _reduce(lambda acc, v, dt: f"{acc} = {v} if ({v} != {v} or {v} {cmp} {acc}) "
                                      f"else {acc}", init)


def _mean_finish(k, acc, node, n):
    dt = node.inputs[0].type.dtype
    c = "np.float32" if dt == DType.f16 else f"np.{dt.np.name}"
    return f"{c}({acc}) / {c}({n})"


ELEMENT.update({
    "sum": _reduce(lambda acc, v, dt: f"{acc} += {v}", lambda dt: _acc_init(dt, 0)),
    "mean": _reduce(lambda acc, v, dt: f"{acc} += {v}", lambda dt: _acc_init(dt, 0.0),
                    _mean_finish),
    "prod": _reduce(lambda acc, v, dt: f"{acc} *= {v}", lambda dt: _acc_init(dt, 1)),
    "amax": _extreme(1),
    "amin": _extreme(-1),
    "any": _reduce(lambda acc, v, dt: f"{acc} = {acc} or ({v} != 0)", lambda dt: "False"),
    "all": _reduce(lambda acc, v, dt: f"{acc} = {acc} and ({v} != 0)", lambda dt: "True"),
})


@element("var")
def _var(k, node, a, o, j):
    x = node.inputs[0]
    shape = k.shape(x)
    dims = norm_dims(a["dims"], len(shape))
    n = int(np.prod([shape[d] for d in dims]))
    idx = _full_index(k, shape, dims, a["keepdim"], o)
    s, q = k.tmp("sum"), k.tmp("sq")
    k.line(f"{s} = np.float64(0.0)")
    depth = _loops(k, shape, dims, idx)
    k.line(f"{s} += {k.load(x, idx)}")
    k.indent -= depth
    k.line(f"{s} = {s} / np.float64({n})")
    k.line(f"{q} = np.float64(0.0)")
    depth = _loops(k, shape, dims, idx)
    k.line(f"{q} += ({k.load(x, idx)} - {s}) * ({k.load(x, idx)} - {s})")
    k.indent -= depth
    return f"{q} / np.float64({n - a['correction']})"


@element("argmax")
def _argmax(k, node, a, o, j):
    x = node.inputs[0]
    shape = k.shape(x)
    if a["dim"] is None:
        dims, keep, o = tuple(range(len(shape))), True, ["0"] * len(shape)
    else:
        dims, keep = (norm_dim(a["dim"], len(shape)),), a["keepdim"]
    idx = _full_index(k, shape, dims, keep, o)
    best, at, n = k.tmp("best"), k.tmp("at"), k.tmp("n")
    k.line(f"{best} = {k.load(x, ['0' if d in dims else i for d, i in enumerate(idx)])}")
    k.line(f"{at} = 0")
    k.line(f"{n} = 0")
    depth = _loops(k, shape, dims, idx)
    v = k.tmp("v")
    k.line(f"{v} = {k.load(x, idx)}")
    k.line(f"if ({v} > {best} or ({v} != {v} and {best} == {best})):")
    k.line(f"    {best} = {v}")
    k.line(f"    {at} = {n}")
    k.line(f"{n} += 1")
    k.indent -= depth
    return at


@element("cumsum")
def _cumsum(k, node, a, o, j):
    x = node.inputs[0]
    d = norm_dim(a["dim"], len(o))
    acc, t = k.tmp("acc"), k.tmp("t")
    k.line(f"{acc} = {_acc_init(x.type.dtype, 0)}")
    k.loop(t, f"{o[d]} + 1")
    k.line(f"{acc} += {k.load(x, list(o[:d]) + [t] + list(o[d + 1:]))}")
    k.indent -= 1
    return acc


def _row_stats(k, x, d, o, size):
    """Max and sum of exp(x - max) along dim ``d`` through the element ``o``."""
    t, m, s = k.tmp("t"), k.tmp("m"), k.tmp("s")
    at = list(o[:d]) + [t] + list(o[d + 1:])
    k.line(f"{m} = np.float64(-np.inf)")
    k.loop(t, size)
    v = k.load(x, at)
    k.line(f"{m} = {v} if ({v} != {v} or {v} > {m}) else {m}")
    k.indent -= 1
    k.line(f"{s} = np.float64(0.0)")
    k.loop(t, size)
    k.line(f"{s} += M.exp(np.float64({v}) - {m})")
    k.indent -= 1
    return m, s


@element("softmax")
def _softmax(k, node, a, o, j):
    x = node.inputs[0]
    d = norm_dim(a["dim"], len(o))
    m, s = _row_stats(k, x, d, o, k.shape(x)[d])
    return f"M.exp(np.float64({k.load(x, o)}) - {m}) / {s}"


@element("log_softmax")
def _log_softmax(k, node, a, o, j):
    x = node.inputs[0]
    d = norm_dim(a["dim"], len(o))
    m, s = _row_stats(k, x, d, o, k.shape(x)[d])
    return f"np.float64({k.load(x, o)}) - {m} - M.log({s})"


@element("layer_norm")
def _layer_norm(k, node, a, o, j):
    x = node.inputs[0]
    shape = k.shape(x)
    nd = len(a["normalized_shape"])
    dims = tuple(range(len(shape) - nd, len(shape)))
    n = int(np.prod(shape[len(shape) - nd:]))
    idx = list(o[:len(shape) - nd]) + [k.tmp("j") for _ in dims]
    mean, var = k.tmp("mean"), k.tmp("var")
    k.line(f"{mean} = np.float64(0.0)")
    depth = _loops(k, shape, dims, idx)
    k.line(f"{mean} += {k.load(x, idx)}")
    k.indent -= depth
    k.line(f"{mean} = {mean} / np.float64({n})")
    k.line(f"{var} = np.float64(0.0)")
    depth = _loops(k, shape, dims, idx)
    k.line(f"{var} += ({k.load(x, idx)} - {mean}) * ({k.load(x, idx)} - {mean})")
    k.indent -= depth
    y = f"(np.float64({k.load(x, o)}) - {mean}) / M.sqrt({var} / np.float64({n}) + " \
        f"np.float64({a['eps']!r}))"
    tail = list(o[len(shape) - nd:])
    for v, op in zip(node.inputs[1:], ("*", "+")):
        y = f"({y}) {op} {k.load(v, tail)}"
    return y


@element("batch_norm")
def _batch_norm(k, node, a, o, j):
    x, w, b, mean, var = node.inputs
    c = [o[1]]
    inv = f"np.float64({k.load(w, c)}) / M.sqrt(np.float64({k.load(var, c)}) + {a['eps']!r})"
    return f"(np.float64({k.load(x, o)}) - {k.load(mean, c)}) * {inv} + {k.load(b, c)}"


@element("batch_norm_train")
def _batch_norm_train(k, node, a, o, j):
    """Naive: each thread recomputes its channel's statistics (training mode is rare)."""
    x, w, b, rm, rv = node.inputs
    shape = k.shape(x)
    c = o[1] if j == 0 else o[0]
    dims = (0,) + tuple(range(2, len(shape)))
    n = int(np.prod([shape[d] for d in dims]))
    idx = [k.tmp("j") if d != 1 else c for d in range(len(shape))]
    mean, var = k.tmp("mean"), k.tmp("var")
    k.line(f"{mean} = np.float64(0.0)")
    depth = _loops(k, shape, dims, idx)
    k.line(f"{mean} += {k.load(x, idx)}")
    k.indent -= depth
    k.line(f"{mean} = {mean} / np.float64({n})")
    k.line(f"{var} = np.float64(0.0)")
    depth = _loops(k, shape, dims, idx)
    k.line(f"{var} += ({k.load(x, idx)} - {mean}) * ({k.load(x, idx)} - {mean})")
    k.indent -= depth
    k.line(f"{var} = {var} / np.float64({n})")
    mom = repr(float(a["momentum"]))
    if j == 1:
        return f"(1.0 - {mom}) * {k.load(rm, [c])} + {mom} * {mean}"
    if j == 2:
        return f"(1.0 - {mom}) * {k.load(rv, [c])} + {mom} * {var} * {n} / {max(n - 1, 1)}"
    inv = f"np.float64({k.load(w, [c])}) / M.sqrt({var} + {a['eps']!r})"
    return f"(np.float64({k.load(x, o)}) - {mean}) * {inv} + {k.load(b, [c])}"


def _window(k, o_sp, in_sp, kernel, stride, padding, dilation):
    """Open loops over a window; returns input positions, the in-bounds test and the
    window offsets."""
    idx, conds, offs = [], [], []
    for oi, size, kk, s, p, d in zip(o_sp, in_sp, kernel, stride, padding, dilation):
        t, pos = k.tmp("w"), k.tmp("p")
        k.loop(t, kk)
        k.line(f"{pos} = {oi} * {s} - {p} + {t} * {d}")
        idx.append(pos)
        offs.append(t)
        conds.append(f"0 <= {pos} < {size}")
    return idx, " and ".join(conds), offs


@element("conv1d", "conv2d")
def _conv(k, node, a, o, j):
    x, w = node.inputs[:2]
    xs, ws = k.shape(x), k.shape(w)
    g = a["groups"]
    cg, og = xs[1] // g, ws[0] // g
    acc, ci = k.tmp("acc"), k.tmp("ci")
    k.line(f"{acc} = np.float64(0.0)")
    k.loop(ci, cg)
    cin = f"({o[1]} // {og}) * {cg} + {ci}"
    idx, cond, offs = _window(k, o[2:], xs[2:], ws[2:], a["stride"], a["padding"],
                              a["dilation"])
    k.line(f"if {cond}:")
    k.line(f"    {acc} += {k.load(x, [o[0], cin] + idx)} * "
           f"{k.load(w, [o[1], ci] + offs)}")
    k.indent -= 1 + len(idx)
    if len(node.inputs) > 2:
        return f"{acc} + {k.load(node.inputs[2], [o[1]])}"
    return acc


@element("max_pool2d")
def _max_pool(k, node, a, o, j):
    x = node.inputs[0]
    xs = k.shape(x)
    m = k.tmp("m")
    low = "-np.inf" if x.type.dtype.is_float else int(np.iinfo(x.type.dtype.np).min)
    k.line(f"{m} = np.{'float64' if x.type.dtype.is_float else 'int64'}({low})")
    idx, cond, _ = _window(k, o[-2:], xs[-2:], a["kernel_size"], a["stride"], a["padding"],
                        a["dilation"])
    v = k.load(x, list(o[:-2]) + idx)
    k.line(f"if {cond}:")
    k.line(f"    {m} = {v} if ({v} != {v} or {v} > {m}) else {m}")
    k.indent -= 2
    return m


@element("avg_pool2d")
def _avg_pool(k, node, a, o, j):
    x = node.inputs[0]
    xs = k.shape(x)
    s, cnt, full = k.tmp("s"), k.tmp("n"), []
    for oi, size, kk, st, p in zip(o[-2:], xs[-2:], a["kernel_size"], a["stride"],
                                   a["padding"]):
        lo, hi = k.tmp("lo"), k.tmp("hi")
        k.line(f"{lo} = {oi} * {st} - {p}")
        k.line(f"{hi} = min({lo} + {kk}, {size + p})")
        full.append(f"({hi} - {lo})")
    k.line(f"{s} = np.float64(0.0)")
    k.line(f"{cnt} = 0")
    idx, cond, _ = _window(k, o[-2:], xs[-2:], a["kernel_size"], a["stride"], a["padding"],
                           (1, 1))
    k.line(f"if {cond}:")
    k.line(f"    {s} += {k.load(x, list(o[:-2]) + idx)}")
    k.line(f"    {cnt} += 1")
    k.indent -= 2
    if a["divisor_override"]:
        return f"{s} / np.float64({a['divisor_override']})"
    if a["count_include_pad"]:
        return f"{s} / np.float64({' * '.join(full)})"
    return f"{s} / np.float64({cnt})"


@element("adaptive_avg_pool2d")
def _adaptive(k, node, a, o, j):
    x = node.inputs[0]
    xs = k.shape(x)
    s, bounds = k.tmp("s"), []
    for oi, size, out in zip(o[-2:], xs[-2:], a["output_size"]):
        lo, hi = k.tmp("lo"), k.tmp("hi")
        k.line(f"{lo} = ({oi} * {size}) // {out}")
        k.line(f"{hi} = -(-(({oi} + 1) * {size}) // {out})")
        bounds.append((lo, hi))
    k.line(f"{s} = np.float64(0.0)")
    idx = [k.tmp("h"), k.tmp("w")]
    for v, (lo, hi) in zip(idx, bounds):
        k.loop(v, f"{lo}, {hi}")
    k.line(f"{s} += {k.load(x, list(o[:-2]) + idx)}")
    k.indent -= 2
    (h0, h1), (w0, w1) = bounds
    return f"{s} / np.float64(({h1} - {h0}) * ({w1} - {w0}))"


@element("scaled_dot_product_attention")
def _sdpa(k, node, a, o, j):
    q, kk, v = node.inputs[:3]
    mask = node.inputs[3] if len(node.inputs) > 3 else None
    L, E = k.shape(q)[-2:]
    S = k.shape(kk)[-2]
    scale = a["scale"] if a["scale"] is not None else 1.0 / float(np.sqrt(E))
    b, i, dv = list(o[:-2]), o[-2], o[-1]
    t, e, sc = k.tmp("t"), k.tmp("e"), k.tmp("sc")

    def score():
        k.line(f"{sc} = np.float64(0.0)")
        k.loop(e, E)
        k.line(f"{sc} += np.float64({k.bload(q, b + [i, e])}) * {k.bload(kk, b + [t, e])}")
        k.indent -= 1
        k.line(f"{sc} = {sc} * {scale!r}")
        if a["is_causal"]:
            k.line(f"if {t} > {i}:")
            k.line(f"    {sc} = -np.inf")
        if mask is not None:
            mv = k.bload(mask, b + [i, t])
            if mask.type.dtype == DType.bool:
                k.line(f"if not {mv}:")
                k.line(f"    {sc} = -np.inf")
            else:
                k.line(f"{sc} = {sc} + {mv}")
    m, den, num = k.tmp("m"), k.tmp("den"), k.tmp("num")
    k.line(f"{m} = np.float64(-np.inf)")
    k.loop(t, S)
    score()
    k.line(f"{m} = max({m}, {sc})")
    k.indent -= 1
    k.line(f"if not ({m} > -np.inf and {m} < np.inf):")
    k.line(f"    {m} = np.float64(0.0)")
    k.line(f"{den} = np.float64(0.0)")
    k.line(f"{num} = np.float64(0.0)")
    k.loop(t, S)
    score()
    k.line(f"{den} += M.exp({sc} - {m})")
    k.line(f"{num} += M.exp({sc} - {m}) * {k.bload(v, b + [t, dv])}")
    k.indent -= 1
    return f"({num} / {den} if {den} > 0 else np.float64(0.0))"


@element("mse_loss")
def _mse(k, node, a, o, j):
    x, y = node.inputs
    if a["reduction"] == "none":
        d = f"({k.load(x, o)} - {k.load(y, o)})"
        return f"{d} * {d}"
    shape = k.shape(x)
    idx = [k.tmp("j") for _ in shape]
    acc = k.tmp("acc")
    k.line(f"{acc} = np.float64(0.0)")
    depth = _loops(k, shape, tuple(range(len(shape))), idx)
    d = k.tmp("d")
    k.line(f"{d} = {k.load(x, idx)} - {k.load(y, idx)}")
    k.line(f"{acc} += np.float64({d} * {d})")
    k.indent -= depth
    n = int(np.prod(shape))
    return f"{acc} / np.float64({n})" if a["reduction"] == "mean" else acc


@element("nll_loss")
def _nll(k, node, a, o, j):
    logp, target = node.inputs
    ls, ts = k.shape(logp), k.shape(target)
    ign = a["ignore_index"]

    def picked(n_idx):
        t = k.tmp("tg")
        k.line(f"{t} = {k.load(target, n_idx)}")
        at = [t] if len(ls) == 1 else n_idx[:1] + [t] + n_idx[1:]
        return t, f"(-np.float64({k.load(logp, at)}) if {t} != {ign} else np.float64(0.0))"
    if a["reduction"] == "none":
        return picked(list(o))[1]
    idx = [k.tmp("j") for _ in ts]
    acc, cnt = k.tmp("acc"), k.tmp("cnt")
    k.line(f"{acc} = np.float64(0.0)")
    k.line(f"{cnt} = np.float64(0.0)")
    depth = _loops(k, ts, tuple(range(len(ts))), idx)
    t, val = picked(idx)
    k.line(f"{acc} += {val}")
    k.line(f"{cnt} += 1.0 if {t} != {ign} else 0.0")
    k.indent -= depth
    if a["reduction"] == "mean":
        c = f"np.{logp.type.dtype.np.name}"
        return f"{c}({acc}) / {c}({cnt})"
    return acc

