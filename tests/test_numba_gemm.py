"""The kernels' GEMM can be switched at run time (``blas.use_gemm``): SciPy's OpenBLAS by
default, torch's own BLAS once the torch runtime compiles a numba-cpu graph; inside a sharing
region torch's MKL on one thread per caller, or SciPy's where a GEMM has no per-thread
limit. Every choice gives the same products."""

import ctypes
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

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


def _mkl_threads() -> int:
    """The threads MKL (in libtorch_cpu) would use for a product called from this thread."""
    lib = ctypes.CDLL(str(Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"))
    return lib.MKL_Get_Max_Threads()


def test_compiling_lends_torch_gemm_and_sharing_keeps_it_on_one_thread(restore_gemm,
                                                                       monkeypatch):
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
    threads_before = _mkl_threads()
    seen = {}

    def share(t, counter):
        counter[0] += 1                     # claims: the pool's thread may start its share
        seen[t] = _mkl_threads()

    with threads.sharing():
        assert blas.gemm_in_use() == lent
        threads.run_shares(share, 2)
    assert seen == {0: 1, 1: 1}             # the caller's and the pool thread's products
    assert _mkl_threads() == threads_before and blas.gemm_in_use() == lent
    monkeypatch.setattr(blas, "_limits", {})    # a lent GEMM without a per-thread limit
    with threads.sharing():
        assert blas.gemm_in_use() == blas.SCIPY_GEMM
    assert blas.gemm_in_use() == lent


@pytest.mark.parametrize("rows, k, n, scipy_kernel, torch_kernel", [
    (64, 784, 256, "K.linear_transposed(", "K.linear_rows("),     # the MLP at batch 64
    (16, 256, 1024, "K.linear_transposed(", "K.linear_transposed("),
    (4, 784, 256, "K.linear_transposed(", "K.linear_rows("),
    (16, 37, 200, "K.linear_transposed(", "K.linear_transposed("),  # small: always SciPy's
])
def test_linear_orientation_follows_the_gemm_that_runs_the_product(
        restore_gemm, rows, k, n, scipy_kernel, torch_kernel):
    """The generated code picks each product's orientation for the BLAS in use, and the
    module's cache key covers that pick, so processes with different BLAS never share a
    file with different text."""
    import ir
    from codegen.numba_cpu import cache
    from codegen.numba_cpu.emit import generate
    head = f"%x: f32[{rows},{k}], %w: f32[{n},{k}] param, %b: f32[{n}] param"
    graph = ir.parse(f'''graph L({head}) {{
  %0: f32[{rows},{n}] = linear(%x, %w, %b)
  return %0
}}''')
    keys = set()
    for gemm, kernel in ((blas.SCIPY_GEMM, scipy_kernel), (_torch_gemm(), torch_kernel)):
        blas.use_gemm(*gemm)
        source, _ = generate(graph)
        assert kernel in source
        keys.add(cache.module_key(source))
    assert len(keys) == (1 if scipy_kernel == torch_kernel else 2)
    x = np.random.default_rng(k).standard_normal((rows, k)).astype(np.float32)
    w = np.random.default_rng(n).standard_normal((n, k)).astype(np.float32)
    b = np.random.default_rng(rows).standard_normal(n).astype(np.float32)
    want = x.astype(np.float64) @ w.T.astype(np.float64) + b
    np.testing.assert_allclose(kernels.linear(x, w, b), want, atol=1e-4 * k, rtol=0)


def test_split_convolutions_called_from_two_threads_match_eager(restore_gemm):
    """Two Python threads each running a compiled CNN whose convolutions split over the
    pool: the second caller's regions nest in the first's process-wide settings (MKL's
    per-thread limit on one thread, OpenBLAS's count for both) and must stay correct."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(),
                                torch.nn.Conv2d(16, 16, 3, padding=1), torch.nn.ReLU(),
                                torch.nn.Flatten(), torch.nn.Linear(16 * 32 * 32, 10)).eval()
    inputs = [torch.randn(2, 3, 32, 32) for _ in range(8)]
    fast = tracejit.compile(model)
    with torch.no_grad():
        for _ in range(2):
            fast(inputs[0])
        spec = fast._tj_dispatcher.all_specializations()[0]
        assert "K.sharing()" in open(spec.executable.module.__file__).read()
        want = [model(x) for x in inputs]

    def call(x):
        with torch.no_grad():                   # grad mode is per thread
            return fast(x)

    with ThreadPoolExecutor(2) as pool:
        got = list(pool.map(call, inputs * 3))
    for y, w in zip(got, want * 3):
        torch.testing.assert_close(y, w, rtol=1e-4, atol=1e-4)
    assert _mkl_threads() == torch.get_num_threads()
