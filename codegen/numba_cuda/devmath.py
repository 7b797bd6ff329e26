"""Scalar math for generated CUDA kernels, as ``M.<name>`` (one module, two builds).

On a GPU these are ``math`` functions and small device functions, which numba-cuda
compiles to libdevice calls. On the simulator a kernel runs as Python, where ``math.exp``
raises on overflow instead of returning inf, so the same names bind NumPy's IEEE functions.
"""

from __future__ import annotations

import math

import numpy as np
from numba import config

SIMULATOR = bool(config.ENABLE_CUDASIM)
_BIG = 4503599627370496.0   # 2**52: every float at least this large is already integral
_S2 = 0.7071067811865476
_C = 0.7978845608028654

if SIMULATOR:
    exp, log, log1p, expm1, sqrt = np.exp, np.log, np.log1p, np.expm1, np.sqrt
    sin, cos, tanh, floor, ceil, rint = np.sin, np.cos, np.tanh, np.floor, np.ceil, np.rint
    _erf = np.frompyfunc(math.erf, 1, 1)

    def erf(x):
        return np.float64(_erf(np.float64(x)))

    def device(fn):
        return fn
else:   # pragma: no cover - needs a GPU
    from numba import cuda

    exp, log, log1p, expm1, sqrt = math.exp, math.log, math.log1p, math.expm1, math.sqrt
    sin, cos, tanh, erf = math.sin, math.cos, math.tanh, math.erf

    def device(fn):
        return cuda.jit(device=True, inline=True)(fn)

    @device
    def floor(x):
        return x if not abs(x) < _BIG else float(math.floor(x))

    @device
    def ceil(x):
        return x if not abs(x) < _BIG else float(math.ceil(x))

    @device
    def rint(x):
        return x if not abs(x) < _BIG else float(round(x))


@device
def sigmoid(x):
    return 1.0 / (1.0 + exp(-np.float64(x)))


@device
def silu(x):
    return np.float64(x) / (1.0 + exp(-np.float64(x)))


@device
def gelu(x):
    return 0.5 * np.float64(x) * (1.0 + erf(np.float64(x) * _S2))


@device
def gelu_tanh(x):
    y = np.float64(x)
    return 0.5 * y * (1.0 + tanh(_C * (y + 0.044715 * y * y * y)))
