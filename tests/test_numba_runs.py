"""runs.copy_run: one memcpy of a run, against NumPy slice assignment on random data,
for each dtype the kernels use and each integer type their offsets come in."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit
from numba.core.errors import TypingError

from codegen.numba_cpu.runs import copy_run


@njit
def _copy(dst, d, src, s, n):
    copy_run(dst, d, src, s, n)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.int8, np.bool_])
@pytest.mark.parametrize("offsets", [np.uint64, np.int64, np.int32])
def test_copy_run_matches_slice_assignment(dtype, offsets):
    rng = np.random.default_rng(7)
    src = (rng.standard_normal(97) * 50).astype(dtype)
    for d, s, n in [(0, 0, 97), (3, 11, 30), (96, 0, 1), (40, 60, 37), (5, 5, 0)]:
        dst = (rng.standard_normal(101) * 50).astype(dtype)
        want = dst.copy()
        want[d:d + n] = src[s:s + n]
        _copy(dst, offsets(d), src, offsets(s), offsets(n))
        np.testing.assert_array_equal(dst, want, err_msg=f"{d}, {s}, {n}")


def test_copy_run_rejects_what_it_cannot_copy():
    a32, a64 = np.zeros(4, np.float32), np.zeros(4, np.float64)
    with pytest.raises(TypingError):
        _copy(a32, 0, a64, 0, 4)             # dtypes differ
    with pytest.raises(TypingError):
        _copy(np.zeros((2, 2), np.float32), 0, np.zeros((2, 2), np.float32), 0, 4)  # 2-D
    with pytest.raises(TypingError):
        _copy(a32, 0, np.zeros(8, np.float32)[::2], 0, 4)    # not contiguous
