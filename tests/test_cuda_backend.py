"""numba-cuda checks that need no simulator: every op has a lowering or a stated reason,
and selecting the backend without a GPU (and without the simulator) says what to do."""

from __future__ import annotations

import pytest

import ir
from codegen import compile_graph
from codegen.numba_cuda.elements import ELEMENT
from codegen.numba_cuda.kernel import SCALAR
from codegen.numba_cuda.loops import ELEMENT as _LOOPS  # noqa: F401  (registers them)
from codegen.numba_cuda.matmul import CONTRACTIONS
from codegen.numba_cuda.plan import HOST, ROWMAJOR
from codegen.numba_cuda.rows import ROW
from ir import DType, TensorType
from ir.errors import LoweringError
from ir.opdef import OPS

NOT_TABLE_OPS = {
    "fused": "lowered as one kernel per region (elementwise, epilogue) or node by node",
    "constant": "uploaded once per specialisation; 0-d ones are literals inside kernels",
}


def test_every_op_has_a_cuda_lowering_or_a_reason():
    lowered = set(SCALAR) | set(ELEMENT) | set(CONTRACTIONS) | set(ROWMAJOR) | set(HOST)
    missing = [op for op in OPS if op not in lowered and op not in NOT_TABLE_OPS]
    assert missing == [], f"ops without a numba-cuda lowering or a stated reason: {missing}"
    assert set(ROW) <= set(ELEMENT)   # every row kernel has the general fallback too


def test_no_gpu_and_no_simulator_is_a_clear_error():
    from numba import config, cuda
    if config.ENABLE_CUDASIM or cuda.is_available():
        pytest.skip("checks the error raised when neither a GPU nor the CUDA simulator "
                    "is available; this machine has one of them")
    g = ir.Graph("g")
    x = g.add_input("x", TensorType(DType.f32, (3,)))
    y = ir.Value(x.type)
    g.nodes.append(ir.Node("relu", (x,), (y,)))
    g.outputs = [y]
    with pytest.raises(LoweringError, match="NUMBA_ENABLE_CUDASIM=1"):
        compile_graph(g, "numba-cuda")


def test_compiled_model_without_gpu_or_simulator_says_what_to_do():
    from numba import config, cuda
    if config.ENABLE_CUDASIM or cuda.is_available():
        pytest.skip("checks the error raised when neither a GPU nor the CUDA simulator "
                    "is available; this machine has one of them")
    import torch

    import tracejit
    compiled = tracejit.compile(torch.nn.Linear(3, 2), backend="numba-cuda")
    with torch.no_grad(), pytest.raises(tracejit.TraceJitError) as info:
        compiled(torch.randn(1, 3))
    message = str(info.value)
    assert "no usable NVIDIA GPU" in message and "NUMBA_ENABLE_CUDASIM=1" in message
    assert "backend='numba-cpu'" in message
