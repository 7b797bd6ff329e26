"""Convolution kernels: im2row of a chunk of images and one BLAS GEMM per chunk and group.

Layout: each image is first copied into a zero-padded (H, W, C) buffer, so every row of the
im2row matrix (one output pixel, K = C/groups*KH*KW wide) is a few contiguous runs with no
bounds test. The GEMM is rows (M, K) @ weights (K, O/groups), the orientation OpenBLAS runs
fastest for convolution shapes (many pixels, few channels); the result is transposed back to
(N, O, OH*OW) with the bias. Indices are unsigned: Numba then drops its negative-index
wraparound test, which otherwise stops the copy loops vectorising (measured 9x slower).
"""

from __future__ import annotations

import numpy as np
from numba import njit

jit = njit(cache=True, error_model="numpy", fastmath={"contract"})   # as kernels.jit

ROWS_BUDGET = 1 << 18
"""Elements of the im2row buffer per chunk (1 MiB of float32): big enough for BLAS to use
both cores on one GEMM, small enough to stay in cache while it runs."""


@jit
def _pad_hwc(x, n, ph, pw, xp):
    """xp[h + ph, w + pw, c] = x[n, c, h, w]; xp's zero border is left as it is."""
    C, H, W = x.shape[1], x.shape[2], x.shape[3]
    Wp = np.uint64(xp.shape[1])
    xf = xp.reshape(-1)
    for c in range(np.uint64(C)):
        for h in range(np.uint64(H)):
            src = x[n, c, h]
            at = ((h + np.uint64(ph)) * Wp + np.uint64(pw)) * np.uint64(C) + c
            for j in range(np.uint64(W)):
                xf[at + j * np.uint64(C)] = src[j]


@jit
def _im2row(xp, c0, CG, KH, KW, sh, sw, dh, dw, OH, OW, rows, r0):
    """rows[r0 + oh*OW + ow] = the (kh, kw, c) patch under output pixel (oh, ow), channels
    c0..c0+CG of the padded image xp; with stride-1 columns a kernel row is one run."""
    Wp, C = xp.shape[1], xp.shape[2]
    xf = xp.reshape(-1)
    rf = rows.reshape(-1)
    u = np.uint64
    KK = u(CG * KH * KW)
    whole = dw == 1 and CG == C
    run = u(CG * KW) if whole else u(CG)
    runs = 1 if whole else KW
    for oh in range(OH):
        for ow in range(OW):
            d = u(r0 + oh * OW + ow) * KK
            for kh in range(KH):
                for kw in range(runs):
                    s = u(((oh * sh + kh * dh) * Wp + ow * sw + kw * dw) * C + c0)
                    for c in range(run):
                        rf[d + c] = xf[s + c]
                    d += run


@jit
def _unrow(res, bias, out, n0, m, o0):
    """out[n0 + i, o0 + o, p] = res[i*P + p, o] + bias[o0 + o] for the chunk's m images."""
    P = out.shape[2]
    OG = res.shape[1]
    for i in range(m):
        for o in range(OG):
            bo = bias[o0 + o]
            dst = out[n0 + i, o0 + o]
            src = res[i * P:(i + 1) * P, o]
            for p in range(np.uint64(P)):
                dst[p] = src[p] + bo


@jit
def _weights_rows(w, groups):
    """w (O, CG, KH, KW) as per-group GEMM operands (groups, KH*KW*CG, O/groups)."""
    O, CG, KH, KW = w.shape
    OG = O // groups
    wt = np.empty((groups, KH * KW * CG, OG), w.dtype)
    for o in range(O):
        for c in range(CG):
            for kh in range(KH):
                for kw in range(KW):
                    wt[o // OG, (kh * KW + kw) * CG + c, o % OG] = w[o, c, kh, kw]
    return wt


@jit
def conv2d(x, w, b, sh, sw, ph, pw, dh, dw, groups, OH, OW):
    """Convolution of (N, C, H, W) by (O, C/groups, KH, KW), bias b (O,) or empty."""
    N, C, H, W = x.shape
    O, CG, KH, KW = w.shape
    OG, P, KK = O // groups, OH * OW, CG * KH * KW
    out = np.empty((N, O, P), x.dtype)
    nb = max(1, min(N, ROWS_BUDGET // max(1, KK * P)))
    rows = np.empty((nb * P, KK), x.dtype)
    res = np.empty((nb * P, OG), x.dtype)
    xp = np.zeros((nb, H + 2 * ph, W + 2 * pw, C), x.dtype)
    bias = b if b.size > 0 else np.zeros(O, x.dtype)
    wt = _weights_rows(w, groups)
    for n0 in range(0, N, nb):
        m = min(nb, N - n0)
        for i in range(m):
            _pad_hwc(x, n0 + i, ph, pw, xp[i])
        for g in range(groups):
            for i in range(m):
                _im2row(xp[i], g * CG, CG, KH, KW, sh, sw, dh, dw, OH, OW, rows, i * P)
            np.dot(rows[:m * P], wt[g], res[:m * P])
            _unrow(res, bias, out, n0, m, g * OG)
    return out.reshape((N, O, OH, OW))
