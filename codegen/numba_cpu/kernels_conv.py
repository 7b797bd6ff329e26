"""Convolution kernels: im2row and one BLAS GEMM per image and group.

Layout: each image is first copied into a zero-padded (H, W, C) buffer, so every row of the
im2row matrix (one output pixel, K = C/groups*KH*KW wide) is a few contiguous runs with no
bounds test. The GEMM is rows (M, K) @ weights (K, O/groups), the orientation OpenBLAS runs
fastest for convolution shapes (many pixels, few channels); the result is transposed back to
(N, O, OH*OW) with the bias. Indices are unsigned: Numba then drops its negative-index
wraparound test, which otherwise stops the copy loops vectorising (measured 9x slower).

Threads: a batch with at least SPLIT_MIN multiply-adds deals its images to Numba's
threads, each running its own im2row and single-threaded GEMMs (threads.serial_blas), so
each core multiplies rows it has just written into its own cache. When one BLAS call per
chunk of images spread each GEMM over both cores, the other core read its half from the
first core's cache: ResNet's 32-channel 3x3 conv at batch 16 took 10.7-11.1 ms that way and
7.0-7.6 ms split by images (torch: 4.6 ms); LeNet's convs at batch 32 went from 1.4-2.0 to
0.7 ms and from 0.9 to 0.6 ms. A single image is one GEMM on BLAS's threads: splitting its
rows over the threads measured 1.3x slower (32 channels, 32x32).
"""

from __future__ import annotations

import numpy as np
from numba import get_num_threads, njit, prange

from . import threads
from .emit import JIT_OPTIONS

jit = njit(**JIT_OPTIONS)

SPLIT_MIN = 3 << 20
"""Multiply-adds from which a batch of images is split over threads. Measured: LeNet's
first conv at batch 32 (3.8M) gains 2x; a 3-channel 3x3 conv of two 32x32 images (1.8M)
loses 20%."""


def splits(n: int, macs: int) -> bool:
    """Whether a convolution of ``n`` images and ``macs`` multiply-adds deals its images to
    Numba's threads (given two or more): the lowering asks to emit its serial_blas region."""
    return n > 1 and macs >= SPLIT_MIN


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
def _im2row(xp, c0, CG, KH, KW, sh, sw, dh, dw, OH, OW, rows):
    """rows[oh*OW + ow] = the (kh, kw, c) patch under output pixel (oh, ow), channels
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
            d = u(oh * OW + ow) * KK
            for kh in range(KH):
                for kw in range(runs):
                    s = u(((oh * sh + kh * dh) * Wp + ow * sw + kw * dw) * C + c0)
                    for c in range(run):
                        rf[d + c] = xf[s + c]
                    d += run


@jit
def _unrow(res, bias, out, n, o0):
    """out[n, o0 + o, p] = res[p, o] + bias[o0 + o]."""
    for o in range(res.shape[1]):
        bo = bias[o0 + o]
        dst = out[n, o0 + o]
        for p in range(np.uint64(res.shape[0])):
            dst[p] = res[p, o] + bo


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
def _conv_image(x, n, wt, bias, out, xp, rows, res, KH, KW, sh, sw, ph, pw, dh, dw, OH, OW):
    """out[n]: image n padded into xp, then per group its im2row rows, one GEMM and the
    transpose back with the bias; xp, rows and res are the caller's scratch."""
    KK, OG = wt.shape[1], wt.shape[2]
    CG = KK // (KH * KW)
    _pad_hwc(x, n, ph, pw, xp)
    for g in range(wt.shape[0]):
        _im2row(xp, g * CG, CG, KH, KW, sh, sw, dh, dw, OH, OW, rows)
        np.dot(rows, wt[g], res)
        _unrow(res, bias, out, n, g * OG)


@jit
def _scratch(x, wt, ph, pw, OH, OW):
    """Padded image, im2row rows and GEMM result buffers for one thread."""
    C, H, W = x.shape[1], x.shape[2], x.shape[3]
    return (np.zeros((H + 2 * ph, W + 2 * pw, C), x.dtype),
            np.empty((OH * OW, wt.shape[1]), x.dtype), np.empty((OH * OW, wt.shape[2]), x.dtype))


@jit
def _conv_serial(x, wt, bias, out, KH, KW, sh, sw, ph, pw, dh, dw, OH, OW):
    xp, rows, res = _scratch(x, wt, ph, pw, OH, OW)
    for n in range(x.shape[0]):
        _conv_image(x, n, wt, bias, out, xp, rows, res, KH, KW, sh, sw, ph, pw, dh, dw, OH, OW)


@njit(parallel=True, **JIT_OPTIONS)
def _conv_split(x, wt, bias, out, KH, KW, sh, sw, ph, pw, dh, dw, OH, OW, T):
    """Images dealt round-robin to T threads, each with its own scratch."""
    for t in prange(T):
        xp, rows, res = _scratch(x, wt, ph, pw, OH, OW)
        for n in range(t, x.shape[0], T):
            _conv_image(x, n, wt, bias, out, xp, rows, res, KH, KW, sh, sw, ph, pw, dh, dw,
                        OH, OW)


def conv2d(x, w, b, sh, sw, ph, pw, dh, dw, groups, OH, OW):
    """Convolution of (N, C, H, W) by (O, C/groups, KH, KW), bias b (O,) or empty."""
    N = x.shape[0]
    O, CG, KH, KW = w.shape
    wt = _weights_rows(w, groups)
    bias = b if b.size > 0 else np.zeros(O, x.dtype)
    out = np.empty((N, O, OH * OW), x.dtype)
    T = min(N, get_num_threads())
    if T < 2 or not splits(N, N * OH * OW * O * CG * KH * KW):
        _conv_serial(x, wt, bias, out, KH, KW, sh, sw, ph, pw, dh, dw, OH, OW)
    else:
        with threads.PARALLEL, threads.serial_blas():
            _conv_split(x, wt, bias, out, KH, KW, sh, sw, ph, pw, dh, dw, OH, OW, T)
    return out.reshape((N, O, OH, OW))
