"""blas.matmul / matmul_into: every operand layout, both float dtypes and the empty
cases, against float64 NumPy products on random data."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit

from codegen.numba_cpu.blas import matmul, matmul_into


def _layouts(m: np.ndarray) -> dict[str, np.ndarray]:
    """The same matrix as a C array, an F array (a transposed view, typed 'F' by Numba)
    and a strided view (typed 'A', which matmul copies)."""
    wide = np.repeat(m, 2, axis=1)
    return {"C": np.ascontiguousarray(m), "F": np.asfortranarray(m), "A": wide[:, ::2]}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("M, K, N", [(5, 7, 3), (1, 784, 256), (64, 3, 1), (1, 1, 1),
                                     (33, 65, 17)])
def test_matmul_every_layout_pair(dtype, M, K, N):
    rng = np.random.default_rng(M * 100 + K + N)
    a = rng.standard_normal((M, K)).astype(dtype)
    b = rng.standard_normal((K, N)).astype(dtype)
    want = a.astype(np.float64) @ b.astype(np.float64)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for la, aa in _layouts(a).items():
        for lb, bb in _layouts(b).items():
            got = matmul(aa, bb)
            assert got.dtype == dtype and got.flags.c_contiguous, (la, lb)
            np.testing.assert_allclose(got, want, rtol=tol, atol=tol * K, err_msg=la + lb)


@pytest.mark.parametrize("M, K, N", [(0, 3, 4), (3, 0, 4), (3, 4, 0)])
def test_matmul_empty_operands(M, K, N):
    a, b = np.ones((M, K), np.float32), np.ones((K, N), np.float32)
    out = np.full((M, N), 7.0, np.float32)      # K == 0: BLAS is not called, out is zeroed
    matmul_into(a, b, out)
    np.testing.assert_array_equal(out, np.zeros((M, N), np.float32))


def test_matmul_into_slices_and_transposed_views_inside_njit():
    # the kernels' uses: a slice of a batch as out, w.T as the right operand
    @njit
    def batched(x, w):
        out = np.empty((x.shape[0], x.shape[1], w.shape[0]), x.dtype)
        for i in range(x.shape[0]):
            matmul_into(x[i], w.T, out[i])
        return out

    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 5, 8)).astype(np.float32)
    w = rng.standard_normal((6, 8)).astype(np.float32)
    np.testing.assert_allclose(batched(x, w), x @ w.T, rtol=1e-5, atol=1e-5)


def test_matmul_into_rejects_mismatched_shapes():
    a, b = np.ones((2, 3), np.float32), np.ones((3, 4), np.float32)
    with pytest.raises(ValueError, match="shapes do not match"):
        matmul_into(a, b, np.empty((2, 5), np.float32))
    with pytest.raises(ValueError, match="shapes do not match"):
        matmul_into(a, np.ones((4, 4), np.float32), np.empty((2, 4), np.float32))
