"""The NumPy reference interpreter: the ground truth every pass and backend is tested against.

One loop over nodes (as JAX's ``eval_jaxpr``): ``OPS[node.op].ref(*args, **attrs)``.
Symbolic dimensions are bound from the actual inputs and substituted into attributes.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from . import ops as _ops  # noqa: F401  (registers the table)
from .graph import Graph, Node, Value
from .opdef import OPS
from .shapes import eval_dim
from .types import TensorType

ExternFn = Callable[[Node, Sequence[np.ndarray]], Sequence[np.ndarray]]


class InterpreterError(RuntimeError):
    """A node failed while running; the message names it and its source line."""


def bind_symbols(graph: Graph, arrays: Sequence[np.ndarray]) -> dict[str, int]:
    env: dict[str, int] = {}
    for inp, arr in zip(graph.inputs, arrays):
        for d, n in zip(inp.value.type.shape, np.shape(arr)):
            if isinstance(d, str):
                env.setdefault(d, n)
    return env


def resolve_attr(v, symbols: dict[str, int]):
    """Replace symbols (in shapes, slice bounds, ...) by their bound sizes."""
    if isinstance(v, str):
        return eval_dim(v, symbols)
    if isinstance(v, tuple):
        return tuple(resolve_attr(x, symbols) for x in v)
    return v


def check_type(arr: np.ndarray, t: TensorType, symbols: dict[str, int]) -> np.ndarray:
    """Coerce a reference result to its declared dtype; fail loudly on a shape mismatch."""
    arr = np.asarray(arr)
    want = tuple(eval_dim(d, symbols) for d in t.shape)
    if all(isinstance(d, int) for d in want) and arr.shape != want:
        raise InterpreterError(f"result shape {arr.shape} differs from declared {t}")
    return arr.astype(t.dtype.np, copy=False)


def _run_nodes(nodes, env: dict[Value, np.ndarray], symbols, extern: ExternFn | None):
    for node in nodes:
        args = [env[v] for v in node.inputs]
        try:
            if node.region is not None:
                inner = dict(zip(node.region.params, args))
                _run_nodes(node.region.nodes, inner, symbols, extern)
                results = [inner[v] for v in node.region.results]
            elif node.op == "extern":
                if extern is None:
                    raise InterpreterError(f"extern op {node.attrs['target']} needs a host "
                                           "callback (run it through tracejit)")
                results = list(extern(node, args))
            else:
                attrs = {k: resolve_attr(v, symbols) for k, v in node.attrs.items()}
                out = OPS[node.op].ref(*args, **OPS[node.op].full_attrs(attrs))
                results = list(out) if isinstance(out, tuple) else [out]
            if len(results) != len(node.outputs):
                raise InterpreterError(f"{len(results)} results for {len(node.outputs)} outputs")
            for v, r in zip(node.outputs, results):
                env[v] = check_type(r, v.type, symbols)
        except _ops.GuardFailed:
            raise
        except Exception as e:
            if str(e).startswith("While executing"):
                raise
            raise InterpreterError(f"While executing {_describe(node)}: "
                                   f"{type(e).__name__}: {e}") from e


def _describe(node: Node) -> str:
    where = "  ".join(p for p in (node.scope, node.loc) if p)
    return f"{node.op} ({where})" if where else node.op


def run(graph: Graph, arrays: Sequence[np.ndarray], extern: ExternFn | None = None
        ) -> tuple[list[np.ndarray], dict[str, np.ndarray]]:
    """Run ``graph`` on arrays given in ``graph.inputs`` order.

    Returns the outputs and the buffer writes (name -> new value). Raises ``GuardFailed``
    when a guard sees a value other than the traced one.
    """
    if len(arrays) != len(graph.inputs):
        raise InterpreterError(f"graph {graph.name} takes {len(graph.inputs)} inputs, "
                               f"got {len(arrays)}")
    symbols = bind_symbols(graph, arrays)
    env = {inp.value: np.asarray(a) for inp, a in zip(graph.inputs, arrays)}
    with np.errstate(all="ignore"):
        _run_nodes(graph.nodes, env, symbols, extern)
    return [env[v] for v in graph.outputs], {k: env[v] for k, v in graph.writes.items()}
