"""Every small op case through numba-cuda on the CUDA simulator (run by test_cuda_sim.py in
a child process with NUMBA_ENABLE_CUDASIM=1; skipped anywhere else)."""

from __future__ import annotations

import os

import pytest

if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1":
    pytest.skip("runs in a child process on the CUDA simulator (test_cuda_sim.py)",
                allow_module_level=True)

import codegen.numba_cuda as nc  # noqa: E402
from opcases import cases, check_case  # noqa: E402

KNOWN_GAPS: dict[str, str] = {}


def _run(graph, arrays):
    outputs, writes = nc.compile(graph, {})(arrays)
    assert writes == {}
    return outputs


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=[
    pytest.mark.xfail(reason=KNOWN_GAPS[c.id], strict=True)] if c.id in KNOWN_GAPS else [])
    for c in cases(small=True)])
def test_op_case(case):
    check_case(case, _run)
