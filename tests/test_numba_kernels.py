"""Generic numba-cpu kernels on the paths their shape picks, against float64 references."""

from __future__ import annotations

import numpy as np
import pytest

from codegen.numba_cpu import kernels as K

EMPTY = np.empty(0, np.float32)


@pytest.mark.parametrize("M", [1, 9, 64, 65, 300])
@pytest.mark.parametrize("N", [10, 64, 200])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_orientations(M, N, bias):
    rng = np.random.default_rng(M * 1000 + N)
    x = rng.standard_normal((M, 37)).astype(np.float32)
    w = rng.standard_normal((N, 37)).astype(np.float32)
    b = rng.standard_normal(N).astype(np.float32) if bias else EMPTY
    want = x.astype(np.float64) @ w.T.astype(np.float64) + (b if bias else 0)
    got = K.linear(x, w, b)
    assert got.shape == (M, N) and got.dtype == np.float32 and got.flags.c_contiguous
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("D", [1, 3, 256, 301])
def test_layer_norm_rows_far_from_zero(D):
    # mean 1000, spread 0.01: float32 rounding of the mean alone would cost 3e-3
    rng = np.random.default_rng(D)
    x = (rng.standard_normal((17, D)) * 0.01 + 1000).astype(np.float32)
    w, b = rng.standard_normal(D).astype(np.float32), rng.standard_normal(D).astype(np.float32)
    x64 = x.astype(np.float64)
    mean, var = x64.mean(1, keepdims=True), x64.var(1, keepdims=True)
    want = (x64 - mean) / np.sqrt(var + 1e-5) * w + b
    np.testing.assert_allclose(K.layer_norm(x, w, b, 1e-5), want, rtol=1e-4, atol=1e-4)
    plain = K.layer_norm(x, EMPTY, EMPTY, 1e-5)
    np.testing.assert_allclose(plain, (x64 - mean) / np.sqrt(var + 1e-5), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("shape", [(3, 1000, 1), (2, 7, 5)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("log", [False, True])
def test_softmax_rows_with_edge_values(shape, dtype, log):
    rng = np.random.default_rng(len(shape) + shape[1])
    x = (rng.standard_normal(shape) * 8).astype(dtype)
    x[0, 1, 0] = -np.inf                    # one hidden entry
    x[1, 2, 0] = np.nan                     # a nan row stays nan
    x64 = x.astype(np.float64)
    with np.errstate(invalid="ignore"):
        m = x64.max(1, keepdims=True)
        e = np.exp(x64 - m)
        s = e.sum(1, keepdims=True)
        want = x64 - m - np.log(s) if log else e / s
    got = K.softmax(x, log)
    assert got.dtype == dtype
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)   # nan where want is nan


@pytest.mark.parametrize("shape", [(3, 1, 1), (4, 1023, 1), (2, 6, 5)])
@pytest.mark.parametrize("dtype", [np.float32, np.int32])
def test_reduce_sum_last_axis_chains_and_middle_axis(shape, dtype):
    rng = np.random.default_rng(shape[1])
    x = (rng.standard_normal(shape) * 100).astype(dtype)
    acc_dtype = np.float64 if dtype == np.float32 else np.int64
    got = K.reduce_sum(x, np.zeros((shape[0], shape[2]), acc_dtype))
    want = x.astype(acc_dtype).sum(1)
    if dtype == np.int32:
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.mark.parametrize("x_type, kernel", [("f32[1,37]", "K.linear_rows("),
                                            ("f32[16,37]", "K.linear_transposed("),
                                            ("f32[B,37]", "K.linear(")])
def test_generated_code_names_the_linear_orientation_when_sizes_are_static(x_type, kernel):
    """Static sizes: the orientation is chosen once, in the generated code; a symbolic
    size: ``K.linear`` chooses per call."""
    import ir
    from codegen.numba_cpu.emit import generate
    graph = ir.parse(f'''graph L(%x: {x_type}, %w: f32[200,37] param, %b: f32[200] param) {{
  %0: {x_type.replace("37", "200")} = linear(%x, %w, %b)
  return %0
}}''')
    source, _ = generate(graph)
    assert kernel in source
    assert source.count("K.linear") == 1
