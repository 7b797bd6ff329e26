"""The kernels' GEMM can be switched at run time (``blas.use_gemm``): SciPy's OpenBLAS by
default, torch's own BLAS once the torch runtime compiles a numba-cpu graph, SciPy's again
inside a sharing region. Every choice gives the same products."""

import numpy as np
import pytest
import torch

import tracejit
from codegen.numba_cpu import blas, kernels, threads
from tracejit.externs import lend_torch_gemm


@pytest.fixture
def restore_gemm():
    before = blas.gemm_in_use()
    yield
    blas.use_gemm(*before)


def _torch_gemm():
    saved = blas.gemm_in_use()
    lend_torch_gemm()
    chosen = blas.gemm_in_use()
    blas.use_gemm(*saved)
    return chosen


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 7, 5), (33, 64, 17), (128, 256, 96), (4, 0, 3)])
def test_every_gemm_gives_the_products(restore_gemm, dtype, shape):
    rng = np.random.default_rng(sum(shape))
    M, K, N = shape
    x = rng.standard_normal((M, K)).astype(dtype)
    w = rng.standard_normal((N, K)).astype(dtype)
    b = rng.standard_normal(N).astype(dtype)
    want = x.astype(np.float64) @ w.T.astype(np.float64) + b
    tol = 1e-4 * max(1, K) if dtype == np.float32 else 1e-10 * max(1, K)
    for gemm in (blas.SCIPY_GEMM, _torch_gemm()):
        blas.use_gemm(*gemm)
        np.testing.assert_allclose(kernels.linear(x, w, b), want, atol=tol, rtol=0)
        np.testing.assert_allclose(kernels.mm(x, np.ascontiguousarray(w.T)), want - b,
                                   atol=tol, rtol=0)


def test_compiling_lends_torch_gemm_and_sharing_keeps_scipy(restore_gemm):
    blas.use_gemm(*blas.SCIPY_GEMM)
    model = torch.nn.Sequential(torch.nn.Linear(16, 8), torch.nn.ReLU()).eval()
    x = torch.randn(3, 16)
    with torch.no_grad():
        fast = tracejit.compile(model)
        fast(x)
        torch.testing.assert_close(fast(x), model(x))
    lent = blas.gemm_in_use()
    assert lent == _torch_gemm()
    assert lent != blas.SCIPY_GEMM          # torch's CPU wheel exports sgemm_ and dgemm_
    with threads.sharing():
        assert blas.gemm_in_use() == blas.SCIPY_GEMM
    assert blas.gemm_in_use() == lent
