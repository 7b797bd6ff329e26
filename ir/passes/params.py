"""Parameter folding for exported models: weights frozen into a file are constants.

Never part of the default pipeline: compiled models read their weights afresh at every call,
so only an export (where the weights become initializers) may evaluate code over them.
"""

from __future__ import annotations

import numpy as np

from ..graph import Graph, GraphInput, Node, Value, walk_nodes
from ..interpreter import run
from ..opdef import OPS, Flag
from .dce import eliminate_dead_code

MIN_GROWTH_BYTES = 4096
"""A folded result may exceed its inputs' bytes by this much (broadcast scalars, masks);
beyond that (an ``expand`` of a weight) the small inputs are the better thing to ship."""

WEIGHT_ROLES = ("param", "buffer", "const")


def _foldable(node: Node) -> bool:
    if not node.inputs or node.op in ("guard", "extern"):
        return False
    if not all(v.type.is_static for v in node.outputs):
        return False
    ops = [OPS.get(n.op) for n in walk_nodes([node]) if n.op != "fused"]
    return all(op is not None and op.ref is not None and not op.has_side_effects
               and not op.has(Flag.RANDOM) for op in ops)


def _evaluate(node: Node, args: list[np.ndarray]) -> list[np.ndarray]:
    single = Graph("fold", [GraphInput(v, "const") for v in node.inputs], [node],
                   list(node.outputs))
    outs, _ = run(single, args)
    return outs


def fold_parameters(graph: Graph, weights: dict[str, np.ndarray]
                    ) -> tuple[Graph, dict[str, np.ndarray]]:
    """Evaluate, once, every node whose inputs are weights (params, buffers, captured
    constants) or results of such nodes, and make its used results new ``const`` inputs.

    Returns a new graph and its weights (the caller's graph and dict are not changed).
    Weights no node uses any more are dropped; a folded weight is named after the largest
    weight it came from plus ``.folded``. Outputs keep their values for any input.
    """
    known: dict[Value, np.ndarray] = {}
    origin: dict[Value, str] = {}
    for inp in graph.inputs:
        if inp.role in WEIGHT_ROLES:
            known[inp.value] = np.asarray(weights[inp.name])
            origin[inp.value] = inp.name
    for node in graph.nodes:
        if not node.inputs and _foldable_creation(node):
            known.update(zip(node.outputs, _evaluate(node, [])))
    kept: list[Node] = []
    produced: set[Value] = set()
    for node in graph.nodes:
        if _foldable(node) and all(v in known for v in node.inputs):
            args = [known[v] for v in node.inputs]
            outs = _evaluate(node, args)
            limit = sum(a.nbytes for a in args) + MIN_GROWTH_BYTES
            if all(o.nbytes <= limit for o in outs):
                big = max((v for v in node.inputs if v in origin),
                          key=lambda v: known[v].size, default=None)
                for v, o in zip(node.outputs, outs):
                    known[v] = o
                    origin[v] = origin[big] if big is not None else "constant"
                    produced.add(v)
                continue
        kept.append(node)

    used = {v for n in kept for v in n.inputs} | set(graph.result_values())
    new = Graph(graph.name, [], [], list(graph.outputs), dict(graph.writes))
    new.inputs = [i for i in graph.inputs if i.role == "input" or i.value in used]
    taken = {i.name for i in new.inputs}
    swap: dict[Value, Value] = {}
    out_weights = {i.name: weights[i.name] for i in new.inputs if i.role != "input"}
    for v in sorted(produced & used, key=lambda v: v.uid):
        name = _fresh(f"{origin[v]}.folded", taken)
        swap[v] = new.add_input(name, v.type, "const")
        out_weights[name] = known[v]
    swapped = swap.keys()
    new.nodes = [n if swapped.isdisjoint(n.inputs) else
                 n.replace(inputs=tuple(swap.get(v, v) for v in n.inputs)) for n in kept]
    new.outputs = [swap.get(v, v) for v in graph.outputs]
    new.writes = {k: swap.get(v, v) for k, v in graph.writes.items()}
    eliminate_dead_code(new)
    live = {v for n in new.walk() for v in n.inputs} | set(new.result_values())
    new.inputs = [i for i in new.inputs if i.role == "input" or i.value in live]
    return new, {i.name: out_weights[i.name] for i in new.inputs if i.role != "input"}


def _foldable_creation(node: Node) -> bool:
    op = OPS.get(node.op)
    return (op is not None and op.has(Flag.CREATION) and not op.has(Flag.RANDOM)
            and op.ref is not None and all(v.type.is_static for v in node.outputs))


def _fresh(name: str, taken: set[str]) -> str:
    k, out = 1, name
    while out in taken:
        k += 1
        out = f"{name}{k}"
    taken.add(out)
    return out
