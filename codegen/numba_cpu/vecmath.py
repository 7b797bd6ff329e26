"""Vectorisable float32 transcendentals for fused loops.

``np.exp``/``np.tanh``/``math.erf`` inside an njit loop become scalar libm calls that stop
LLVM from vectorising (the PyPI llvmlite has no SVML; see shared/notes/vector-math.md).
These versions are branch-free float32 arithmetic: range reduction, a short polynomial and
scaling by 2^n through an int/float bit cast, with inf/nan/-0.0 handled by selects. They
are accurate to a few float32 ulp (tests compare them with float64).
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir as llir
from numba import types
from numba.extending import intrinsic, overload

from .emit import INLINE_OPTIONS, JIT_OPTIONS
from .loading import njit

f32 = np.float32


@intrinsic
def bits_to_f32(typingctx, x):
    """Reinterpret the low 32 bits of an integer as a float32 (LLVM bitcast; vectorises)."""
    if not isinstance(x, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        v = args[0]
        if x.bitwidth != 32:
            v = builder.trunc(v, llir.IntType(32))
        return builder.bitcast(v, llir.FloatType())
    return types.float32(x), codegen


@intrinsic
def f32_to_bits(typingctx, x):
    """Reinterpret a float32's bits as an int32."""
    if x != types.float32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], llir.IntType(32))
    return types.int32(types.float32), codegen


# exp: cephes expf (Cody-Waite reduction by ln2, degree-6 polynomial)
_LOG2E, _LN2_HI, _LN2_LO = f32(1.44269504088896341), f32(0.693359375), f32(-2.12194440e-4)
_EXP_P = (f32(1.9875691500e-4), f32(1.3981999507e-3), f32(8.3334519073e-3),
          f32(4.1665795894e-2), f32(1.6666665459e-1), f32(5.0000001201e-1))
_EXP_HI, _EXP_LO = f32(88.72283905206835), f32(-103.972084)
_INF, _NAN, _ONE, _HALF, _ZERO, _TWO = (f32(np.inf), f32(np.nan), f32(1.0), f32(0.5),
                                        f32(0.0), f32(2.0))


@njit(**INLINE_OPTIONS)
def _exp_reduced(xc):
    """(n, e^(xc - n ln2)) for e^xc = 2^n * y: Cody-Waite reduction, then the polynomial."""
    n = np.floor(xc * _LOG2E + _HALF)
    r = xc - n * _LN2_HI - n * _LN2_LO
    p = _EXP_P[0]
    p = p * r + _EXP_P[1]
    p = p * r + _EXP_P[2]
    p = p * r + _EXP_P[3]
    p = p * r + _EXP_P[4]
    p = p * r + _EXP_P[5]
    y = p * r * r + r + _ONE
    return n, y


@njit(**JIT_OPTIONS)
def exp32(x):
    """e^x for float32; overflows to inf, underflows to 0, keeps nan."""
    xc = min(max(x, _EXP_LO), _EXP_HI)
    n, y = _exp_reduced(xc)
    ni = np.int32(n)
    n1 = ni >> np.int32(1)
    n2 = ni - n1
    y = y * bits_to_f32((n1 + np.int32(127)) << np.int32(23))
    y = y * bits_to_f32((n2 + np.int32(127)) << np.int32(23))
    y = _INF if x > _EXP_HI else y
    return x if x != x else y


_EXP_MIN_NORMAL = f32(-87.33654475)     # log(2^-126)


@njit(**JIT_OPTIONS)
def exp32_ftz(x):
    """e^x for float32 where a result below 2^-126 may be 0 rather than subnormal: 2^n is
    added to y's exponent bits, one integer add instead of exp32's two scalings (valid as
    y >= 1 where n = -126 and y < 1 where n = 128). For the exps inside gelu, sigmoid,
    silu, erf and softmax, whose subnormal parts vanish from the result: a loop of them
    ran 15-22% faster than with exp32."""
    n, y = _exp_reduced(min(x, _EXP_HI))
    y = bits_to_f32(f32_to_bits(y) + (np.int32(n) << np.int32(23)))
    y = _ZERO if x < _EXP_MIN_NORMAL else y
    y = _INF if x > _EXP_HI else y
    return x if x != x else y


# tanh: Eigen's rational approximation (odd degree-13 over even degree-6 polynomial on
# |x| <= 7.905, +-1 beyond, x itself below 4e-4). At most 4.3 ulp from float64 (the
# numerics contract allows rtol 1e-4, about 800 ulp), half the cost of the cephes form it
# replaced (0.43-0.46 against 0.82 ns per element on 1M floats), which took an exp, a
# division and a polynomial for every element, whichever of its two branches it kept.
_TANH_A = (f32(-2.76076847742355e-16), f32(2.00018790482477e-13), f32(-8.60467152213735e-11),
           f32(5.12229709037114e-08), f32(1.48572235717979e-05), f32(6.37261928875436e-04),
           f32(4.89352455891786e-03))
_TANH_B = (f32(1.19825839466702e-06), f32(1.18534705686654e-04), f32(2.26843463243900e-03),
           f32(4.89352518554385e-03))
_TANH_CLAMP, _TANH_TINY = f32(7.90531110763549805), f32(0.0004)


@njit(**JIT_OPTIONS)
def tanh32(x):
    ax = abs(x)
    c = min(ax, _TANH_CLAMP)
    z = c * c
    p = _TANH_A[0]
    p = p * z + _TANH_A[1]
    p = p * z + _TANH_A[2]
    p = p * z + _TANH_A[3]
    p = p * z + _TANH_A[4]
    p = p * z + _TANH_A[5]
    p = p * z + _TANH_A[6]
    q = _TANH_B[0]
    q = q * z + _TANH_B[1]
    q = q * z + _TANH_B[2]
    q = q * z + _TANH_B[3]
    r = _ONE if ax > _TANH_CLAMP else c * p / q
    r = math.copysign(r, x)
    r = x if ax < _TANH_TINY else r      # keeps -0.0
    return x if x != x else r


@njit(**JIT_OPTIONS)
def sigmoid32(x):
    return _ONE / (_ONE + exp32_ftz(-x))


# log: cephes logf (mantissa in [sqrt(1/2), sqrt(2)), degree-8 polynomial)
_LOG_P = (f32(7.0376836292e-2), f32(-1.1514610310e-1), f32(1.1676998740e-1),
          f32(-1.2420140846e-1), f32(1.4249322787e-1), f32(-1.6668057665e-1),
          f32(2.0000714765e-1), f32(-2.4999993993e-1), f32(3.3333331174e-1))
_SQRTHF, _MIN_NORMAL, _TWO23 = f32(0.707106781186547524), f32(1.17549435e-38), f32(8388608.0)


@njit(**JIT_OPTIONS)
def log32(x):
    """Natural log for float32: log(0) = -inf, log(<0) = nan, log(inf) = inf."""
    sub = x < _MIN_NORMAL
    xs = x * _TWO23 if sub else x
    i = f32_to_bits(xs)
    e = ((i >> np.int32(23)) & np.int32(0xFF)) - np.int32(126)
    e = e - np.int32(23) if sub else e
    m = bits_to_f32((i & np.int32(0x807FFFFF)) | np.int32(0x3F000000))
    lo = m < _SQRTHF
    ef = f32(e - np.int32(1)) if lo else f32(e)
    m = (m + m - _ONE) if lo else (m - _ONE)
    z = m * m
    y = _LOG_P[0]
    y = y * m + _LOG_P[1]
    y = y * m + _LOG_P[2]
    y = y * m + _LOG_P[3]
    y = y * m + _LOG_P[4]
    y = y * m + _LOG_P[5]
    y = y * m + _LOG_P[6]
    y = y * m + _LOG_P[7]
    y = y * m + _LOG_P[8]
    y = y * m * z
    y = y + ef * _LN2_LO
    y = y - _HALF * z
    r = m + y + ef * _LN2_HI
    r = -_INF if x == _ZERO else r
    r = _NAN if x < _ZERO else r
    r = _INF if x == _INF else r
    return x if x != x else r


# erf: x*P(x^2) on |x| < 1; 1 - exp(-x^2)*Q(1/|x|) on 1 <= |x| < 4 (fitted, float64 error
# below 3e-8 relative); 1 beyond.
_ERF_P = (f32(7.882503721052247e-05), f32(-0.0008018863010991765), f32(0.00518931367866502),
          f32(-0.026854330277875024), f32(0.11283597519547203), f32(-0.3761262691219276),
          f32(1.1283791658851527))
_ERF_Q = (f32(0.02602572319213818), f32(-0.1535019043616062), f32(0.37459802540129006),
          f32(-0.4490048281813392), f32(0.16223747973764352), f32(0.2730871096650838),
          f32(-0.3913706320928957), f32(0.024048670281446718), f32(0.5613180419337189),
          f32(0.00014589363935181243))


# erf and gelu are too big for LLVM's inliner; left as calls they stop a loop from
# vectorising, so they are inlined at the Numba IR level (costs compile time: used sparingly)
@njit(**INLINE_OPTIONS)
def erf32(x):
    ax = abs(x)
    t = x * x
    p = _ERF_P[0]
    p = p * t + _ERF_P[1]
    p = p * t + _ERF_P[2]
    p = p * t + _ERF_P[3]
    p = p * t + _ERF_P[4]
    p = p * t + _ERF_P[5]
    p = p * t + _ERF_P[6]
    small = x * p
    ac = min(ax, f32(4.0))
    u = _ONE / max(ac, _ONE)
    q = _ERF_Q[0]
    q = q * u + _ERF_Q[1]
    q = q * u + _ERF_Q[2]
    q = q * u + _ERF_Q[3]
    q = q * u + _ERF_Q[4]
    q = q * u + _ERF_Q[5]
    q = q * u + _ERF_Q[6]
    q = q * u + _ERF_Q[7]
    q = q * u + _ERF_Q[8]
    q = q * u + _ERF_Q[9]
    tail = _ONE - exp32_ftz(-(ac * ac)) * q
    big = math.copysign(_ONE if ax >= f32(4.0) else tail, x)
    r = small if ax < _ONE else big
    return x if x != x else r


_RSQRT2, _SQRT_2_PI, _GELU_C = f32(0.7071067811865476), f32(0.7978845608028654), f32(0.044715)
# gelu: x/2 * (1 + erf(x/sqrt2)) with 1 + erf(z) = 2 - erfc(|z|) or erfc(|z|) by sign, and
# erfc(a) ~ t*P(t)*exp(-a^2), t = 1/(1 + p*a) (Abramowitz-Stegun 7.1.26, error < 1.5e-7):
# the form eager torch's vectorised GELU uses, so as accurate as eager, about 20% cheaper
# than going through erf32, and without cancellation in the negative tail
_AS_P = f32(0.3275911)
_AS_A = (f32(1.061405429), f32(-1.453152027), f32(1.421413741), f32(-0.284496736),
         f32(0.254829592))


@njit(**INLINE_OPTIONS)
def gelu32(x):
    z = x * _RSQRT2
    t = _ONE / (_AS_P * abs(z) + _ONE)
    p = _AS_A[0]
    p = p * t + _AS_A[1]
    p = p * t + _AS_A[2]
    p = p * t + _AS_A[3]
    p = p * t + _AS_A[4]
    erfc = p * t * exp32_ftz(-(z * z))
    return _HALF * x * (_TWO - erfc if z >= _ZERO else erfc)


@njit(**JIT_OPTIONS)
def gelu_tanh32(x):
    return _HALF * x * (_ONE + tanh32(_SQRT_2_PI * (x + _GELU_C * x * x * x)))


@njit(**JIT_OPTIONS)
def silu32(x):
    return x / (_ONE + exp32_ftz(-x))


# float64 (and other) fallbacks: scalar libm, exact enough, not vectorised
@njit(**JIT_OPTIONS)
def sigmoid64(x):
    return 1.0 / (1.0 + math.exp(-x))


@njit(**JIT_OPTIONS)
def gelu64(x):
    return 0.5 * x * (1.0 + math.erf(x * 0.7071067811865476))


@njit(**JIT_OPTIONS)
def gelu_tanh64(x):
    return 0.5 * x * (1.0 + math.tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)))


@njit(**JIT_OPTIONS)
def silu64(x):
    return x / (1.0 + math.exp(-x))


def exp_any(x):
    """exp for kernels generic over the float type: ``exp32_ftz`` on float32 (vectorises;
    softmax's exps below 2^-126 may be 0), libm's exp otherwise. Callable from njit code
    only."""
    raise NotImplementedError("exp_any is for njit code")


@overload(exp_any)
def _exp_any(x):
    if x == types.float32:
        return lambda x: exp32_ftz(x)
    return lambda x: math.exp(x)
