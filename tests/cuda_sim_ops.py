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


def test_intermediates_are_released_after_their_last_use():
    """A chain of separate kernels holds at most its current input and output: each
    buffer goes back to the allocator once no later kernel reads it."""
    import weakref

    import numpy as np
    from numba import cuda

    import ir
    from ir import DType, TensorType

    g = ir.Graph("chain")
    v = g.add_input("x", TensorType(DType.f32, (5,)))
    for op in ("relu", "exp", "neg", "tanh", "sigmoid"):
        out = ir.Value(v.type)
        g.nodes.append(ir.Node(op, (v,), (out,)))
        v = out
    g.outputs = [v]
    made, live_at_alloc = [], []

    def alloc(shape, dtype):
        live_at_alloc.append(sum(r() is not None for r in made))
        host = np.empty(shape, dtype)
        made.append(weakref.ref(host))
        return cuda.simulator.cudadrv.devicearray.FakeCUDAArray(host)

    x = np.linspace(-2, 2, 5, dtype=np.float32)
    (y,), _ = nc.compile(g, {"alloc": alloc})([x])
    want = 1 / (1 + np.exp(-np.tanh(-np.exp(np.maximum(x, 0)))))
    np.testing.assert_allclose(y, want, rtol=1e-5)
    assert len(made) == 5 and max(live_at_alloc) == 1
