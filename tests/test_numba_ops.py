"""Every op case of tests/opcases.py through numba-cpu, compared with eager torch.

Compilation dominates, so cases are compiled in groups: one graph holds every case of a
group of ops (each case its own node with its own inputs and outputs), compiled once;
each case is then checked with ``check_case`` against the results of that one run. A
case that fails must be listed in KNOWN_GAPS with its reason (strict xfail).
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

import ir
from codegen.numba_cpu import compile as numba_compile
from codegen.numba_cpu.lower import SCALAR, UNLOWERED
from codegen.numba_cpu.arrays import ARRAY
from ir.opdef import OPS
from opcases import EXCLUDED, cases, check_case, single_op_graph

KNOWN_GAPS: dict[str, str] = {}
F16_REASON = "float16 is not lowered: Numba has no float16 arithmetic on CPU"
ALL = [c for c in cases()]
GAPS = {c.id: F16_REASON for c in ALL
        if any(x.dtype == np.float16 for x in c.inputs) or c.attrs.get("dtype") == "f16"}
GAPS.pop("matmul-f16")     # contractions run as whole-array NumPy, which has float16
GAPS.update(KNOWN_GAPS)
# The default run checks the first case of each op (all compiled as a few graphs); the
# rest are marked slow, which pyproject's addopts excludes: `pytest -m slow` runs the sweep
# (each njit compilation costs ~0.1-1 s).
FIRST = {}
for _c in ALL:
    if _c.id not in GAPS:
        FIRST.setdefault(_c.op, _c.id)
QUICK = set(FIRST.values())
GROUP_SIZE = 12


def _group_of(case) -> tuple:
    """Quick cases share graphs of GROUP_SIZE; slow ones are grouped by op."""
    if case.id in QUICK:
        return ("quick", sorted(QUICK).index(case.id) // GROUP_SIZE)
    return ("op", case.op)


def _grouped_graph(group: list):
    g = ir.Graph("cases")
    for k, case in enumerate(group):
        one = single_op_graph(case)
        mapping = {}
        for i, inp in enumerate(one.inputs):
            mapping[inp.value] = g.add_input(f"c{k}_{i}", inp.value.type)
        (node,) = one.nodes
        g.nodes.append(node.replace(inputs=tuple(mapping[v] for v in node.inputs)))
        g.outputs.extend(one.outputs)
    return g


@functools.lru_cache(maxsize=None)
def _group_results(key: tuple) -> dict:
    group = [c for c in ALL if _group_of(c) == key and c.id not in GAPS]
    graph = _grouped_graph(group)
    exe = numba_compile(graph, {})
    outs, _ = exe([x for c in group for x in c.inputs])
    results, pos = {}, 0
    for case, in_graph in zip(group, graph.nodes):
        n = len(in_graph.outputs)
        results[case.id] = outs[pos:pos + n]
        pos += n
    return results


@pytest.fixture(scope="module", autouse=True)
def numba_cache(tmp_path_factory):
    """Generated modules go to a temp folder shared by this session's numba tests."""
    mp = pytest.MonkeyPatch()
    mp.setenv("TRACEJIT_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "tracejit-cache"))
    yield
    mp.undo()


def _params():
    for case in ALL:
        marks = [pytest.mark.xfail(reason=GAPS[case.id], strict=True)] if case.id in GAPS else []
        marks += [] if case.id in QUICK else [pytest.mark.slow]
        yield pytest.param(case, id=case.id, marks=marks)


def test_every_op_is_lowered_or_has_a_reason():
    missing = set(OPS) - set(SCALAR) - set(ARRAY) - set(UNLOWERED) - {"fused"}
    assert not missing, f"ops without a numba-cpu lowering: {sorted(missing)}"


@pytest.mark.parametrize("case", list(_params()))
def test_op_case(case, numba_cache):
    if case.id in GAPS:
        check_case(case, lambda graph, arrays: numba_compile(graph, {})(arrays)[0])
        return
    got = _group_results(_group_of(case))[case.id]
    check_case(case, lambda graph, arrays: got)


def test_excluded_ops_are_tested_elsewhere():
    assert set(EXCLUDED) == {"extern", "fused", "guard"}
