"""Constant folding: evaluate nodes whose inputs are all constants, with the op's NumPy ref.

Only ``constant``/``full``/``arange`` nodes count as constants; a graph input never does,
whatever its role (parameters and buffers change between calls, and even a ``const``
input is an array the caller passes), so nothing that depends on one is ever folded.
"""

from __future__ import annotations

import numpy as np

from ..graph import Graph, Node, Value
from ..opdef import OPS, Flag
from .patterns import const_value
from .rewriter import CONST_OPS, Rewriter, rewrite

MAX_CONSTANT = 16
"""Largest result folded to an explicit ``constant``; bigger ones fold only when uniform."""


def _literal(arr: np.ndarray):
    return arr.item() if arr.ndim == 0 else tuple(arr.ravel().tolist())


def _as_constant(rw: Rewriter, arr: np.ndarray, out: Value) -> Value | None:
    shape, dtype = out.type.shape, str(out.type.dtype)
    arr = np.asarray(arr).astype(out.type.dtype.np, copy=False)
    if arr.shape != tuple(shape):
        return None
    if arr.size <= MAX_CONSTANT:
        return rw.emit("constant", [], {"value": _literal(arr), "shape": shape, "dtype": dtype})
    flat = arr.ravel()
    if (flat == flat[0]).all() or (np.isnan(flat).all() if arr.dtype.kind == "f" else False):
        return rw.emit("full", [], {"shape": shape, "value": flat[0].item(), "dtype": dtype})
    return None


def _fold(node: Node, rw: Rewriter):
    producers = [rw.producer(v) for v in node.inputs]
    if not producers or any(p is None or p.op not in CONST_OPS for p in producers):
        return None
    op = OPS[node.op]
    if node.region is not None or op.ref is None or op.has_side_effects or op.has(Flag.CREATION):
        return None
    if not all(v.type.is_static for v in node.outputs):
        return None
    args = [const_value(p) for p in producers]
    if any(a is None for a in args):
        return None
    with np.errstate(all="ignore"):
        res = op.ref(*args, **op.full_attrs(node.attrs))
    res = list(res) if isinstance(res, tuple) else [res]
    outs = [_as_constant(rw, r, o) for r, o in zip(res, node.outputs, strict=True)]
    return None if any(o is None for o in outs) else outs


def fold_constants(graph: Graph) -> int:
    """Replace nodes computed from constants alone by ``constant``/``full`` nodes.

    Keeps every output's type and value; returns the number of nodes folded.
    """
    return rewrite(graph, _fold)
