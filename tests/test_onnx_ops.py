"""Every op case of tests/opcases.py through the onnxruntime backend, against eager torch.

Each exported model also passes onnx.checker (full) and strict shape inference. A case that
fails must be listed in KNOWN_GAPS with its reason; a listed case that starts passing fails
too (strict xfail), so the table stays true.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import codegen.onnx as co
from ir.errors import LoweringError
from ir.opdef import OPS
from opcases import cases, check_case, single_op_graph

KNOWN_GAPS = {
    "conv2d-f64": "onnxruntime has no float64 Conv kernel (the ONNX model itself is valid; "
                  "backend='onnxruntime' raises a LoweringError naming the missing kernel)",
    "avg_pool2d-f64": "onnxruntime has no float64 AveragePool kernel (as above)",
    "max_pool2d-edge": "onnxruntime's MaxPool skips NaN inside a window where torch "
                       "propagates it; patching it would double the cost of every max pool",
    "max_pool2d-edge-3x3": "as max_pool2d-edge",
}
NOT_TABLE_OPS = {
    "extern": "calls torch at run time: export raises (test_onnx_export.py)",
    "guard": "ONNX cannot raise: dropped with a warning on export, checked by the backend",
    "fused": "lowered by inlining its region body (test_onnx_export.py)",
}
# ops whose lowering differs between opsets: their cases run again at opset 17
OPSET_SENSITIVE = ("gelu", "bitwise_not", "mean", "amax", "var", "any", "argmax", "sum")


def _run(opset=co.DEFAULT_OPSET):
    def run(graph, arrays):
        exe = co.compile(graph, {"opset": opset})
        onnx.shape_inference.infer_shapes(exe.lowered.model, check_type=True, strict_mode=True)
        outputs, writes = exe(arrays)
        assert writes == {}
        return outputs
    return run


def _params(ops=None):
    out = []
    for case in cases():
        if ops is not None and case.op not in ops:
            continue
        marks = [pytest.mark.xfail(reason=KNOWN_GAPS[case.id], strict=True)] \
            if case.id in KNOWN_GAPS else []
        out.append(pytest.param(case, id=case.id, marks=marks))
    return out


def test_every_op_has_a_lowering_or_a_reason():
    missing = [op for op in OPS if op not in co.LOWERINGS and op not in NOT_TABLE_OPS]
    assert missing == [], f"ops without an ONNX lowering or a stated reason: {missing}"


def test_known_gaps_name_real_cases():
    ids = {c.id for c in cases()}
    assert set(KNOWN_GAPS) <= ids


def test_every_table_op_has_cases():
    covered = {c.op for c in cases()}
    assert set(co.LOWERINGS) - covered == set()


@pytest.mark.parametrize("case", _params())
def test_op_case(case):
    check_case(case, _run())


@pytest.mark.parametrize("case", _params(OPSET_SENSITIVE))
def test_op_case_opset17(case):
    if case.op in ("bitwise_and", "bitwise_or", "bitwise_xor") and "bool" not in case.id:
        with pytest.raises(LoweringError, match="opset 18"):
            co.compile(single_op_graph(case), {"opset": 17})
        return
    check_case(case, _run(17))


def test_integer_bitwise_ops_at_opset18():
    case = next(c for c in cases("bitwise_xor") if c.id == "bitwise_xor-i64")
    check_case(case, _run(18))
    assert np.any(case.inputs[0] < 0)   # the case covers negative operands
