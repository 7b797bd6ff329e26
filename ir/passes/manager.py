"""The pass manager: a registry of named passes, the default pipeline and per-pass stats."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from ..graph import Graph
from .cse import eliminate_common_subexpressions
from .dce import eliminate_dead_code
from .fold import fold_constants
from .fusion import fuse
from .recurrent import wrap_recurrent
from .rewrites import rewrite_patterns
from .simplify import simplify

PASSES: dict[str, Callable[[Graph], int]] = {
    "dce": eliminate_dead_code,
    "cse": eliminate_common_subexpressions,
    "fold": fold_constants,
    "simplify": simplify,
    "rewrite": rewrite_patterns,
    "recurrent": wrap_recurrent,
    "fuse": fuse,
}

SIMPLIFYING = ["simplify", "fold", "rewrite", "cse", "dce"]
ROUND = SIMPLIFYING + ["recurrent"]
"""Run in a loop until none of them changes anything (bounded by MAX_ROUNDS). Recurrent
layers are wrapped in the loop, as soon as the first round has shaped them: their unrolled
steps (800 of the zoo's LSTM's 860 nodes) then go through one round, not two."""
MAX_ROUNDS = 8
DEFAULT_PIPELINE = ROUND + ["fuse", "dce"]


@dataclass
class PassStat:
    name: str
    nodes_before: int
    nodes_after: int
    changes: int
    fused_groups: int
    ms: float


@dataclass
class Stats:
    passes: list[PassStat]

    @property
    def total_ms(self) -> float:
        return sum(p.ms for p in self.passes)

    @property
    def fused_groups(self) -> int:
        return self.passes[-1].fused_groups if self.passes else 0

    def table(self) -> str:
        rows = [f"{'pass':<10} {'before':>6} {'after':>6} {'changes':>7} {'fused':>5} {'ms':>7}"]
        rows += [f"{p.name:<10} {p.nodes_before:>6} {p.nodes_after:>6} {p.changes:>7} "
                 f"{p.fused_groups:>5} {p.ms:>7.2f}" for p in self.passes]
        return "\n".join(rows)


def count_fused(graph: Graph) -> int:
    return sum(1 for n in graph.nodes if n.region is not None)


def _run(name: str, graph: Graph, stats: list[PassStat]) -> int:
    before = len(graph.nodes)
    t0 = time.perf_counter()
    changes = PASSES[name](graph)
    ms = (time.perf_counter() - t0) * 1e3
    stats.append(PassStat(name, before, len(graph.nodes), changes, count_fused(graph), ms))
    return changes


def optimize(graph: Graph, passes="default", on_pass=None) -> tuple[Graph, Stats]:
    """Optimise a copy of ``graph``; the caller's graph is never changed.

    ``passes``: "none" (the graph as is), "default", "each" (the default pipeline calling
    ``on_pass(name, graph)`` after every pass that runs, all of the first simplifying round
    and later ones only when they changed something), or a list of pass names run once
    each in order (``on_pass`` is called after each when given).
    """
    stats: list[PassStat] = []
    if passes == "none":
        return graph, Stats(stats)
    graph = graph.copy()
    if passes in ("default", "each"):
        _pipeline(graph, stats, on_pass if passes == "each" else None)
        return graph, Stats(stats)
    unknown = [p for p in passes if p not in PASSES]
    if isinstance(passes, str) or unknown:
        raise ValueError(f"unknown pass(es) {unknown or passes!r}; expected 'none', "
                         f"'default', 'each' or a list of {sorted(PASSES)}")
    for name in passes:
        _run(name, graph, stats)
        if on_pass is not None:
            on_pass(name, graph)
    return graph, Stats(stats)


def _pipeline(graph: Graph, stats: list[PassStat], on_pass) -> None:
    for round_ in range(MAX_ROUNDS):
        changed = 0
        for name in ROUND:
            n = _run(name, graph, stats)
            changed += n
            if on_pass is not None and (round_ == 0 or n):
                on_pass(name, graph)
        if not changed:
            break
    for name in DEFAULT_PIPELINE[len(ROUND):]:
        _run(name, graph, stats)
        if on_pass is not None:
            on_pass(name, graph)
