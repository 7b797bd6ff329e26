"""Convolution kernels: im2row or im2col, and one BLAS GEMM per image and group.

im2row (kernel rows of CG*KW >= COLS_BELOW values): each image is first copied into a
zero-padded (H, W, C) buffer, so every row of the im2row matrix (one output pixel,
K = C/groups*KH*KW wide) is a few contiguous runs with no bounds test. The GEMM is rows
(M, K) @ weights (K, O/groups), the orientation OpenBLAS runs fastest for convolution
shapes (many pixels, few channels); the result is transposed back to (N, O, OH*OW) with
the bias; rows are made and multiplied a block of output rows at a time
(ROWS_BLOCK_BYTES). im2col (short kernel rows: few channels, dilation): the padded image
stays (C, H, W), each column row is one run of OW per output row, and weights
(O/groups, K) @ columns (K, OH*OW) is already out[n]'s layout. Indices are unsigned:
Numba then drops its negative-index wraparound test, which otherwise stops the copy
loops vectorising (measured 9x slower).

Threads: a convolution of at least SPLIT_MIN multiply-adds shares its images (a single
image: its blocks of output rows) among Python threads (threads.run_shares; the kernel
releases the GIL and each thread claims the next unit with an atomic add), each running
its own im2row and single-threaded GEMMs (threads.sharing), so each core multiplies rows
it has just written into its own cache. When one BLAS call per chunk of images spread each
GEMM over both cores, the other core read its half from the first core's cache: ResNet's
32-channel 3x3 conv at batch 16 took 10.7-11.1 ms that way and 7.0-7.6 ms split by images
(torch: 4.6 ms, on a 2-core Zen 1). The split ran as a Numba parallel loop before: its
compile took about 3 s more, and LeNet at batch 32 ran in 3.0-3.2 ms with it against
1.8-1.9 ms on Python threads (runs alternated between the two versions, Zen 4). A single
image's row blocks split this way: ResNet's 32-channel convs at batch 1 took 260-300 µs
unsplit (on BLAS's two threads, or on one) and 165-180 µs split, once the pool's threads
stopped sleeping between shares (threads.py); split on threads that slept between shares
(a Numba parallel loop, then a ThreadPoolExecutor) they had measured 1.3x slower.
"""
from __future__ import annotations

import numpy as np
from numba import get_num_threads

from . import threads
from .atomics import fetch_add
from .blas import matmul_into
from .emit import INLINE_OPTIONS, JIT_OPTIONS
from .loading import njit
from .runs import copy_run

jit = njit(**JIT_OPTIONS)
inline = njit(**INLINE_OPTIONS)

SPLIT_MIN = 3 << 20
"""Multiply-adds from which a convolution is split over threads. Measured: LeNet's
first conv at batch 32 (3.8M) gains 2x; a 3-channel 3x3 conv of two 32x32 images (1.8M)
loses 20%."""


COLS_BELOW = 16
"""im2row from this many values per kernel row (CG*KW), im2col below it. On a 2-core
Zen 4: LeNet's 1-channel 5x5 conv took 41 µs per image by im2row (25 runs of 5 values
per pixel) and 10-15 µs by im2col; ResNet's 3-channel 3x3 stem 60 and 33-41 µs; at 30
values and more (6 channels, 5x5) both layouts measured the same."""


ROWS_BLOCK_BYTES = 1 << 17
"""im2row fills and multiplies an image's rows in blocks of output rows of about this many
bytes, so a block stays in the core's L2 cache between its copy and its GEMM. ResNet's
32-channel 3x3 convs (1.2 MB of rows per 32x32 image): the model at batch 16 took
20.6-23.3 ms with whole images and 16.5-18.9 ms in 128 KB blocks, at batch 1 1.8-2.7
against 1.7 ms (same process, 2-core Zen 4: 1 MB of L2 per core); 64 KB measured the
same as 128 KB, 256 KB little better than whole images."""


def by_columns(CG: int, KW: int, dw: int) -> bool:
    """Whether a convolution goes through im2col rather than im2row: when a kernel row of
    the (H, W, C) image, CG*KW values, is a short run (im2row copies one run per kernel
    row and output pixel, im2col one run of OW per kernel tap and output row)."""
    return dw != 1 or CG * KW < COLS_BELOW


@inline
def _pad_hwc(x, n, ph, pw, xp):
    """xp[h + ph, w + pw, c] = x[n, c, h, w]; xp's zero border is left as it is. Row by
    row, so the strided writes stay in one padded row (ResNet's 32x32x32 image: 80 µs
    channel by channel, 23 µs row by row)."""
    C, H, W = x.shape[1], x.shape[2], x.shape[3]
    Wp = np.uint64(xp.shape[1])
    xf = xp.reshape(-1)
    for h in range(np.uint64(H)):
        row = ((h + np.uint64(ph)) * Wp + np.uint64(pw)) * np.uint64(C)
        for c in range(np.uint64(C)):
            src = x[n, c, h]
            at = row + c
            for j in range(np.uint64(W)):
                xf[at + j * np.uint64(C)] = src[j]


@inline
def _im2row(xp, c0, CG, KH, KW, sh, sw, dh, dw, oh0, oh1, OW, rows):
    """rows[(oh - oh0)*OW + ow] = the (kh, kw, c) patch under output pixel (oh, ow) for
    output rows oh0..oh1-1, channels c0..c0+CG of the padded image xp; with stride-1
    columns a kernel row is one run."""
    Wp, C = xp.shape[1], xp.shape[2]
    xf = xp.reshape(-1)
    rf = rows.reshape(-1)
    u = np.uint64
    KK = u(CG * KH * KW)
    whole = dw == 1 and CG == C
    run = u(CG * KW) if whole else u(CG)
    runs = 1 if whole else KW
    for oh in range(oh0, oh1):
        for ow in range(OW):
            d = u((oh - oh0) * OW + ow) * KK
            for kh in range(KH):
                for kw in range(runs):
                    s = u(((oh * sh + kh * dh) * Wp + ow * sw + kw * dw) * C + c0)
                    copy_run(rf, d, xf, s, run)
                    d += run


@inline
def _unrow(res, P, bias, out, n, o0, p0):
    """out[n, o0 + o, p0 + p] = res[p, o] + bias[o0 + o] for the first P rows of res."""
    for o in range(res.shape[1]):
        bo = bias[o0 + o]
        dst = out[n, o0 + o]
        for p in range(np.uint64(P)):
            dst[p0 + p] = res[p, o] + bo


@inline
def _weights_rows(w, groups):
    """w (O, CG, KH, KW) as per-group GEMM operands (groups, KH*KW*CG, O/groups). Made by
    each thread of ``_conv_images`` (as many values as a few im2row rows), which spares a
    process one more cached kernel to load (5-10 ms)."""
    O, CG, KH, KW = w.shape
    OG = O // groups
    wt = np.empty((groups, KH * KW * CG, OG), w.dtype)
    for g in range(groups):
        for kh in range(KH):
            for kw in range(KW):
                for c in range(CG):
                    dst = wt[g, (kh * KW + kw) * CG + c]
                    for o in range(OG):
                        dst[o] = w[g * OG + o, c, kh, kw]
    return wt


@inline
def _conv_block(x, n, wt, bias, out, xp, rows, res, KH, KW, sh, sw, dh, dw, OH, OW, oh0, RB):
    """out[n]'s output rows oh0..oh0+RB-1 from the padded image xp: per group its im2row
    rows, one GEMM and the transpose back with the bias; xp, rows and res are the
    caller's scratch (RB*OW rows)."""
    KK, OG = wt.shape[1], wt.shape[2]
    CG = KK // (KH * KW)
    oh1 = min(OH, oh0 + RB)
    P = (oh1 - oh0) * OW
    for g in range(wt.shape[0]):
        _im2row(xp, g * CG, CG, KH, KW, sh, sw, dh, dw, oh0, oh1, OW, rows)
        matmul_into(rows[:P], wt[g], res[:P])
        _unrow(res, P, bias, out, n, g * OG, oh0 * OW)


@inline
def _scratch(x, wt, ph, pw, RB, OW):
    """Padded image, im2row rows and GEMM result buffers for one thread."""
    C, H, W = x.shape[1], x.shape[2], x.shape[3]
    return (np.zeros((H + 2 * ph, W + 2 * pw, C), x.dtype),
            np.empty((RB * OW, wt.shape[1]), x.dtype), np.empty((RB * OW, wt.shape[2]), x.dtype))


@inline
def _pad_chw(x, n, ph, pw, xp):
    """xp[c, h + ph, w + pw] = x[n, c, h, w]; xp's zero border is left as it is."""
    C, H, W = x.shape[1], x.shape[2], x.shape[3]
    for c in range(C):
        for h in range(H):
            src = x[n, c, h]
            dst = xp[c, h + ph]
            for j in range(np.uint64(W)):
                dst[j + np.uint64(pw)] = src[j]


@inline
def _im2col(xp, c0, CG, KH, KW, sh, sw, dh, dw, OH, OW, cols):
    """cols[(c*KH + kh)*KW + kw, oh*OW + ow] = the padded image xp's (c0 + c) channel
    under kernel tap (kh, kw) of output pixel (oh, ow): one run of OW per output row."""
    Hp, Wp = xp.shape[1], xp.shape[2]
    xf = xp.reshape(-1)
    cf = cols.reshape(-1)
    u = np.uint64
    P = OH * OW
    for c in range(CG):
        for kh in range(KH):
            for kw in range(KW):
                r = (c * KH + kh) * KW + kw
                for oh in range(OH):
                    s = u(((c0 + c) * Hp + oh * sh + kh * dh) * Wp + kw * dw)
                    d = u(r * P + oh * OW)
                    if sw == 1:
                        copy_run(cf, d, xf, s, u(OW))
                    else:
                        for ow in range(u(OW)):
                            cf[d + ow] = xf[s + ow * u(sw)]


@njit(nogil=True, **JIT_OPTIONS)
def _conv_images_cols(x, w2, bias, out, KH, KW, sh, sw, ph, pw, dh, dw, OH, OW, claim):
    """The images this thread claims (as ``_conv_images``) through im2col: per group, weights
    (O/groups, K) @ columns (K, OH*OW) lands in out[n]'s own (channel, pixel) layout."""
    C, H, W = x.shape[1], x.shape[2], x.shape[3]
    O, K = w2.shape
    CG = K // (KH * KW)
    groups = C // CG
    OG = O // groups
    P = OH * OW
    xp = np.zeros((C, H + 2 * ph, W + 2 * pw), x.dtype)
    cols = np.empty((K, P), x.dtype)
    n = fetch_add(claim, 0, 1)
    while n < x.shape[0]:
        _pad_chw(x, n, ph, pw, xp)
        for g in range(groups):
            _im2col(xp, g * CG, CG, KH, KW, sh, sw, dh, dw, OH, OW, cols)
            matmul_into(w2[g * OG:(g + 1) * OG], cols, out[n, g * OG:(g + 1) * OG])
        for o in range(O):
            dst = out[n, o]
            bo = bias[o]
            for p in range(np.uint64(P)):
                dst[p] += bo
        n = fetch_add(claim, 0, 1)


@njit(nogil=True, **JIT_OPTIONS)
def _conv_images(x, w, bias, out, KH, KW, sh, sw, ph, pw, dh, dw, OH, OW, RB, by_block,
                 claim):
    """The units this thread claims, through im2row with one set of scratch buffers: whole
    images, or single blocks of RB output rows when ``by_block`` (fewer images than
    threads). ``claim[0]`` is the next unit no thread has taken, so a thread that starts
    late takes fewer; the kernel releases the GIL, so threads.run_shares can run several
    at once."""
    wt = _weights_rows(w, x.shape[1] // w.shape[1])
    xp, rows, res = _scratch(x, wt, ph, pw, RB, OW)
    blocks = (OH + RB - 1) // RB
    per_image = blocks if by_block else 1
    padded = -1
    k = fetch_add(claim, 0, 1)
    while k < x.shape[0] * per_image:
        n = k // per_image
        if n != padded:
            _pad_hwc(x, n, ph, pw, xp)
            padded = n
        first = k % per_image if by_block else 0
        for blk in range(first, first + blocks // per_image):
            _conv_block(x, n, wt, bias, out, xp, rows, res, KH, KW, sh, sw, dh, dw, OH, OW,
                        blk * RB, RB)
        k = fetch_add(claim, 0, 1)


def _row_block(OH, OW, K, itemsize) -> int:
    """Output rows per im2row block (ROWS_BLOCK_BYTES of rows, at least one)."""
    return max(1, min(OH, ROWS_BLOCK_BYTES // max(1, OW * K * itemsize)))


def units(N, O, CG, KH, KW, OH, OW, dw, itemsize, threads) -> tuple[int, bool]:
    """(how many units conv2d deals to ``threads`` threads, whether a unit is one block of
    output rows rather than an image); 1 unit: one serial run, whose GEMMs use BLAS's
    threads outside a sharing region. Fewer images than threads (batch 1) are split by
    row blocks, im2row only."""
    macs = N * O * CG * KH * KW * OH * OW
    if threads < 2 or macs < SPLIT_MIN:
        return 1, False
    if N >= threads or by_columns(CG, KW, dw):
        return N, False
    blocks = -(-OH // _row_block(OH, OW, CG * KH * KW, itemsize))
    return (N * blocks, True) if blocks > 1 else (N, False)


def conv2d(x, w, b, sh, sw, ph, pw, dh, dw, OH, OW):
    """Convolution of (N, C, H, W) by (O, C/groups, KH, KW), bias b (O,) or empty; the
    groups are C / w.shape[1]."""
    N = x.shape[0]
    O, CG, KH, KW = w.shape
    bias = b if b.size > 0 else np.zeros(O, x.dtype)
    out = np.empty((N, O, OH * OW), x.dtype)
    T = get_num_threads()
    count, by_block = units(N, O, CG, KH, KW, OH, OW, dw, x.itemsize, T)
    if by_columns(CG, KW, dw):
        kernel, weights, extra = _conv_images_cols, w.reshape(O, CG * KH * KW), ()
    else:
        RB = _row_block(OH, OW, CG * KH * KW, x.itemsize)
        kernel, weights, extra = _conv_images, w, (RB, by_block)
    args = (x, weights, bias, out, KH, KW, sh, sw, ph, pw, dh, dw, OH, OW) + extra
    T = min(count, T)
    if T < 2:
        kernel(*args, np.zeros(1, np.int64))
    else:
        with threads.sharing():
            threads.run_shares(lambda t, claim: kernel(*args, claim), T)
    return out.reshape((N, O, OH, OW))
