"""Every op in the table has reference semantics and differential cases (tests/opcases.py)."""

from __future__ import annotations

import collections

import numpy as np
import pytest

import ir
from ir.opdef import OPS
from opcases import EXCLUDED, cases, single_op_graph

ALL = cases()
SMALL = cases(small=True)
TABLE_OPS = sorted(OPS)


@pytest.mark.parametrize("op", TABLE_OPS)
def test_op_has_reference_semantics(op):
    if op in ("extern", "fused"):
        assert OPS[op].ref is None   # the interpreter runs these itself
    else:
        assert callable(OPS[op].ref), f"{op} has no NumPy reference (ref=) in ir/ops.py"


@pytest.mark.parametrize("op", TABLE_OPS)
def test_op_has_cases(op):
    n = sum(c.op == op for c in ALL)
    if op in EXCLUDED:
        assert n == 0, f"{op} is tested by hand in test_ops_interpreter.py"
    else:
        assert n >= 3, f"{op} has {n} cases in tests/opcases.py; add shapes and dtypes"


@pytest.mark.parametrize("op", [op for op in TABLE_OPS if op not in EXCLUDED])
def test_op_has_small_cases(op):
    assert any(c.op == op for c in SMALL), f"{op} has no case with small=True"


def test_case_ids_are_unique_and_ops_known():
    dup = [i for i, n in collections.Counter(c.id for c in ALL).items() if n > 1]
    assert not dup, f"duplicate case ids {dup}"
    assert {c.op for c in ALL} <= set(OPS)


def test_small_is_a_subset_with_tiny_shapes():
    ids = {c.id for c in ALL}
    assert {c.id for c in SMALL} <= ids
    assert all(x.size <= 128 for c in SMALL for x in c.inputs)
    assert len(SMALL) < len(ALL)


def test_cases_are_deterministic_and_never_all_zero():
    again = {c.id: c for c in cases()}
    for c in ALL:
        for x, y in zip(c.inputs, again[c.id].inputs):
            np.testing.assert_array_equal(x, y)
        if c.inputs and sum(x.size for x in c.inputs):
            assert any(np.any(x != 0) for x in c.inputs), f"{c.id} has all-zero inputs"


def test_table_covers_the_promised_variety():
    tags = collections.Counter(t for c in ALL for t in c.tags)
    for tag in ("edge", "noncontig", "scalar", "empty", "broadcast", "int", "f64", "f16",
                "large"):
        assert tags[tag] >= 5, f"only {tags[tag]} cases tagged {tag!r}"


@pytest.mark.parametrize("case", SMALL[::25], ids=lambda c: c.id)
def test_single_op_graph_prints(case):
    text = ir.print_graph(single_op_graph(case))
    assert f"= {case.op}" in text and "%a0" in text or not case.inputs
