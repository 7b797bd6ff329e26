"""The vectorisable float32 transcendentals against float64 references: a few ulp over
the whole range, and inf/nan/-0.0/denormals handled as float32 libm does."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numba import njit

from codegen.numba_cpu import vecmath as V

SPECIAL = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -1e-45, 1e-40, 1.17e-38, 1e-7, -1e-7,
           0.5, -0.5, 0.625, -0.625, 1.0, -1.0, 3.99, 4.0, -4.0, 88.7, 89.0, -87.0, -104.0,
           1e30, -1e30]
REFS = {
    "exp": np.exp,
    "exp_ftz": np.exp,        # below 2^-126 it may give 0: the absolute check covers that
    "tanh": np.tanh,
    "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "log": np.log,
    "erf": np.vectorize(math.erf, otypes=[np.float64]),
}
MAX_ULP = {"exp": 2, "exp_ftz": 2, "tanh": 5, "sigmoid": 3, "log": 2, "erf": 4}


@njit(error_model="numpy")
def _apply_all(x, out):
    for i in range(x.size):
        v = x[i]
        out[0, i] = V.exp32(v)
        out[1, i] = V.exp32_ftz(v)
        out[2, i] = V.tanh32(v)
        out[3, i] = V.sigmoid32(v)
        out[4, i] = V.log32(v)
        out[5, i] = V.erf32(v)


@pytest.fixture(scope="module")
def results():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(-20, 20, 20000), rng.uniform(-2, 2, 20000),
                        10.0 ** rng.uniform(-40, 38, 20000), SPECIAL]).astype(np.float32)
    out = np.empty((len(REFS), x.size), np.float32)
    _apply_all(x, out)
    return x, dict(zip(REFS, out))


@pytest.mark.parametrize("name", list(REFS))
def test_accuracy_and_special_values(results, name):
    x, got = results[0], results[1][name]
    with np.errstate(all="ignore"):
        want64 = REFS[name](x.astype(np.float64))
        want = want64.astype(np.float32)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=f"{name}: nan")
    np.testing.assert_array_equal(np.isinf(got), np.isinf(want), err_msg=f"{name}: inf")
    ok = np.isfinite(want) & np.isfinite(got)
    ulp = np.abs(got[ok] - want64[ok]) / np.spacing(np.abs(want[ok])).astype(np.float64)
    small = np.abs(want[ok]) < 1e-37          # denormal results: absolute error instead
    assert ulp[~small].max() <= MAX_ULP[name], (name, x[ok][~small][ulp[~small].argmax()])
    assert np.abs(got[ok][small] - want64[ok][small]).max(initial=0) < 1e-37


@pytest.mark.parametrize("name", ["tanh", "erf"])
def test_odd_functions_keep_negative_zero(results, name):
    x, got = results[0], results[1][name]
    neg_zero = (x == 0) & np.signbit(x)
    assert np.all(np.signbit(got[neg_zero]))


@njit(error_model="numpy")
def _tanh_loop(x, out):
    for i in range(x.size):
        out[i] = V.tanh32(x[i]) * V.sigmoid32(x[i])


def test_loop_vectorises():
    x = np.linspace(-3, 3, 64, dtype=np.float32)
    out = np.empty_like(x)
    _tanh_loop(x, out)
    np.testing.assert_allclose(out, np.tanh(x) / (1 + np.exp(-x)), rtol=1e-6)
    ir = next(iter(_tanh_loop.inspect_llvm().values()))
    assert "x float>" in ir, "the float32 loop did not vectorise"


@njit(error_model="numpy")
def _gelu_loop(x, out):
    for i in range(x.size):
        out[i] = V.gelu32(x[i])


def test_gelu_as_accurate_as_eager_float32():
    # eager's vectorised GELU has a worst absolute error of about 3.7e-7 on this input
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.standard_normal(100000) * 3, rng.uniform(-12, 12, 20000),
                        [0.0, 1e-30, -1e-30, 1e-7, 40.0, -40.0]]).astype(np.float32)
    out = np.empty_like(x)
    _gelu_loop(x, out)
    x64 = x.astype(np.float64)
    want = 0.5 * x64 * (1 + np.vectorize(math.erf)(x64 / math.sqrt(2)))
    err = np.abs(out - want)
    assert err.max() < 6e-7
    tail = (x < -1) & (x > -8)              # no cancellation where gelu is tiny
    assert (err[tail] / np.abs(want[tail])).max() < 0.1
    special = np.array([np.inf, -np.inf, np.nan], np.float32)
    out = np.empty_like(special)
    _gelu_loop(special, out)
    assert out[0] == np.inf and np.isnan(out[1]) and np.isnan(out[2])   # as eager
