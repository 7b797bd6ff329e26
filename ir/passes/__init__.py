"""Optimisation passes: dead code, common subexpressions, constant folding, algebraic and
view simplification, pattern rewrites and fusion, run by ``optimize``."""

from .manager import DEFAULT_PIPELINE, PASSES, PassStat, Stats, optimize

__all__ = ["DEFAULT_PIPELINE", "PASSES", "PassStat", "Stats", "optimize"]
