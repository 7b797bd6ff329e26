"""Generic njit kernels for the heavy ops, compiled once per type signature and cached.

Shapes are arguments, never baked in (Numba specialises on dtype, rank and layout only),
so one compiled kernel serves every layer of every model; see
shared/notes/numba-compile-time.md. The emitter reshapes operands to the canonical ranks
used here: reductions and normalisations see ``(outer, reduced, inner)`` C arrays.
Accumulation is in float64 (int64 for integers) where order or precision matters.
"""

from __future__ import annotations

import math

import numpy as np

from . import vecmath as V
from .blas import SCIPY_GEMM, SMALL_GEMM, gemm_in_use, matmul, matmul_into
from .emit import INLINE_OPTIONS, JIT_OPTIONS
from .loading import njit
from .threads import PARALLEL, sharing  # noqa: F401  (generated modules take them here)

jit = njit(**JIT_OPTIONS)
inline = njit(**INLINE_OPTIONS)
sums = njit(**dict(JIT_OPTIONS, fastmath={"contract", "reassoc"}))
"""For sums along a contiguous row (``row_total``, ``row_squares``, ``row_moments``):
reassociation lets LLVM split a floating-point sum into vector lanes of partial sums (as
torch's own reductions do), where a sum in written order is one dependent add per element.
No other fast-math flag, so nan and inf stay as in eager. Not inlined: Numba would inline
at its own IR level, under the caller's flags. LayerNorm over 256x64 float32: 29 -> 15 µs;
128x256: 42 -> 18 µs (torch 26); a sum over 256x1024: 187 -> 47 µs."""

# ---- reductions over the middle axis of (O, R, I) -------------------------------------


@jit
def reduce_sum(x, acc):
    """acc[o, i] += sum_r x[o, r, i] over a C-contiguous x; acc is float64 or int64,
    zero-initialised. Along i the adds vectorise as they are; over the last axis (I == 1),
    under ``sums``."""
    O, R, I = x.shape
    if I == 1:
        rows = x.reshape((O, R))
        for o in range(O):
            acc[o, 0] = row_total(rows[o], acc[o, 0])
        return acc
    for o in range(O):
        for r in range(R):
            for i in range(I):
                acc[o, i] += x[o, r, i]
    return acc


@jit
def reduce_prod(x, acc):
    O, R, I = x.shape
    for o in range(O):
        for r in range(R):
            for i in range(I):
                acc[o, i] *= x[o, r, i]
    return acc


@jit
def reduce_max(x):
    """Max over r, NaN-propagating as torch.amax."""
    O, R, I = x.shape
    out = x[:, 0, :].copy()
    for o in range(O):
        for r in range(1, R):
            for i in range(I):
                v = x[o, r, i]
                m = out[o, i]
                out[o, i] = v if (v > m or v != v) else m
    return out


@jit
def reduce_min(x):
    O, R, I = x.shape
    out = x[:, 0, :].copy()
    for o in range(O):
        for r in range(1, R):
            for i in range(I):
                v = x[o, r, i]
                m = out[o, i]
                out[o, i] = v if (v < m or v != v) else m
    return out


@jit
def reduce_any(x):
    O, R, I = x.shape
    out = np.zeros((O, I), np.bool_)
    for o in range(O):
        for r in range(R):
            for i in range(I):
                out[o, i] |= x[o, r, i] != 0
    return out


@jit
def reduce_all(x):
    O, R, I = x.shape
    out = np.ones((O, I), np.bool_)
    for o in range(O):
        for r in range(R):
            for i in range(I):
                out[o, i] &= x[o, r, i] != 0
    return out


@jit
def reduce_var(x, correction):
    """Two-pass variance in float64 of a C-contiguous x (over the last axis, under
    ``sums``)."""
    O, R, I = x.shape
    mean = np.zeros((O, I))
    acc = np.zeros((O, I))
    if I == 1:
        rows = x.reshape((O, R))
        for o in range(O):
            mean[o, 0] = row_total(rows[o], 0.0) / R
            acc[o, 0] = row_squares(rows[o], mean[o, 0], 0.0)
        return acc / max(R - correction, 0)
    for o in range(O):
        for r in range(R):
            for i in range(I):
                mean[o, i] += x[o, r, i]
    mean /= R
    for o in range(O):
        for r in range(R):
            for i in range(I):
                d = x[o, r, i] - mean[o, i]
                acc[o, i] += d * d
    return acc / max(R - correction, 0)


@jit
def argmax(x):
    """First index of the maximum along r; a NaN counts as the maximum (torch, NumPy)."""
    O, R, I = x.shape
    out = np.zeros((O, I), np.int64)
    for o in range(O):
        for i in range(I):
            best = x[o, 0, i]
            k = 0
            if best == best:
                for r in range(1, R):
                    v = x[o, r, i]
                    if v != v:
                        k = r
                        break
                    if v > best:
                        best = v
                        k = r
            out[o, i] = k
    return out


@jit
def cumsum(x, acc_row):
    """Running sum along r with a float64/int64 accumulator row of length I."""
    O, R, I = x.shape
    out = np.empty(x.shape, x.dtype)
    for o in range(O):
        acc_row[:] = 0
        for r in range(R):
            for i in range(I):
                acc_row[i] += x[o, r, i]
                out[o, r, i] = acc_row[i]
    return out


# ---- normalisations -------------------------------------------------------------------


@jit
def softmax(x, log):
    """Softmax (or log-softmax) along r of a C-contiguous (O, R, I) (``arrays.canon``).

    A max or a sum along a row is one dependent step per element, which neither overlaps
    nor vectorises: over the last axis (I == 1) the max runs in 8 chains (``row_max``), the
    sum in vector lanes (``row_total``), and the exps in a loop of their own; over a middle
    axis they run across i, I wide. 64x1000 float32: 242 -> 100 µs; 1000x64 over the
    first axis: 911 -> 65 µs. Exps and sums stay in x's dtype, as torch's softmax."""
    O, R, I = x.shape
    out = np.empty(x.shape, x.dtype)
    zero, one = x.dtype.type(0), x.dtype.type(1)
    if I == 1:
        rows = x.reshape((O, R))
        res = out.reshape((O, R))
        for o in range(O):
            row, dst = rows[o], res[o]
            m = row_max(row)
            for r in range(R):
                dst[r] = V.exp_any(row[r] - m)
            if log:
                shift = x.dtype.type(math.log(row_total(dst, zero))) + m
                for r in range(R):
                    dst[r] = row[r] - shift
            else:
                inv = one / row_total(dst, zero)
                for r in range(R):
                    dst[r] = dst[r] * inv
        return out
    top = np.empty(I, x.dtype)
    tot = np.empty(I, x.dtype)
    for o in range(O):
        xo, dst = x[o], out[o]
        top[:] = -np.inf
        for r in range(R):
            for i in range(I):
                top[i] = max(top[i], xo[r, i])
        tot[:] = 0
        for r in range(R):
            for i in range(I):
                e = V.exp_any(xo[r, i] - top[i])
                dst[r, i] = e
                tot[i] += e
        for i in range(I):
            tot[i] = x.dtype.type(math.log(tot[i])) + top[i] if log else one / tot[i]
        for r in range(R):
            for i in range(I):
                dst[r, i] = xo[r, i] - tot[i] if log else dst[r, i] * tot[i]
    return out


@inline
def row_max(row):
    """The largest of a row's values, in 8 chains (see ``softmax``)."""
    R = row.shape[0]
    m0 = m1 = m2 = m3 = m4 = m5 = m6 = m7 = row.dtype.type(-np.inf)
    r = 0
    while r + 8 <= R:
        m0, m1, m2, m3 = (max(m0, row[r]), max(m1, row[r + 1]), max(m2, row[r + 2]),
                          max(m3, row[r + 3]))
        m4, m5, m6, m7 = (max(m4, row[r + 4]), max(m5, row[r + 5]), max(m6, row[r + 6]),
                          max(m7, row[r + 7]))
        r += 8
    m = max(max(max(m0, m1), max(m2, m3)), max(max(m4, m5), max(m6, m7)))
    for k in range(r, R):
        m = max(m, row[k])
    return m


@sums
def row_total(row, start):
    """start plus the sum of a row, in start's type (see ``sums``)."""
    s = start
    for r in range(row.shape[0]):
        s += row[r]
    return s


@sums
def row_squares(row, mean, start):
    """start plus the sum of (row - mean)^2, in start's type (see ``sums``)."""
    s = start
    for r in range(row.shape[0]):
        d = row[r] - mean
        s += d * d
    return s


@sums
def row_moments(row):
    """(sum, sum of squares) of a row in float64 (see ``sums``)."""
    s = q = 0.0
    for k in range(row.shape[0]):
        a = np.float64(row[k])
        s += a
        q += a * a
    return s, q


@jit
def layer_norm(x, weight, bias, eps):
    """Rows of (N, D); weight/bias of length D, or length 0 when absent.

    One pass for the moments in float64 (E[x^2] - mean^2 loses twice the digits that
    separate mean and spread, which float32 data cannot hold anyway); the mean goes to x's
    dtype as a rounded part and a residual, so rows far from zero keep their precision."""
    N, D = x.shape
    out = np.empty(x.shape, x.dtype)
    w = weight if weight.size > 0 else np.ones(D, x.dtype)
    b = bias if bias.size > 0 else np.zeros(D, x.dtype)
    for n in range(N):
        row, dst = x[n], out[n]
        s, q = row_moments(row)
        mean = s / D
        inv = x.dtype.type(1.0 / math.sqrt(max(q / D - mean * mean, 0.0) + eps))
        hi = x.dtype.type(mean)
        lo = x.dtype.type(mean - hi)
        for d in range(D):
            dst[d] = ((row[d] - hi) - lo) * inv * w[d] + b[d]
    return out


@jit
def batch_norm(x, weight, bias, mean, var, eps):
    """Inference batch norm of (N, C, S) with per-channel statistics."""
    N, C, S = x.shape
    out = np.empty(x.shape, x.dtype)
    for c in range(C):
        scale = weight[c] / math.sqrt(var[c] + eps)
        shift = bias[c] - mean[c] * scale
        for n in range(N):
            for s in range(S):
                out[n, c, s] = x[n, c, s] * scale + shift
    return out


@jit
def channel_stats(x):
    """Per-channel mean and biased variance of a C-contiguous (N, C, S), float64."""
    N, C, S = x.shape
    mean = np.zeros(C)
    var = np.zeros(C)
    for c in range(C):
        for n in range(N):
            mean[c] = row_total(x[n, c], mean[c])
        mean[c] /= N * S
        for n in range(N):
            var[c] = row_squares(x[n, c], mean[c], var[c])
        var[c] /= N * S
    return mean, var


# ---- contractions -----------------------------------------------------------------------


@jit
def mm(a, b):
    """(M, K) @ (K, N) through the kernels' GEMM (``blas.use_gemm``), not NumPy's own
    BLAS: a second BLAS thread pool in the process spins against the first."""
    return matmul(a, b)


@jit
def bmm(a, b):
    """Batched matrix product of (B, M, K) and (B, K, N) through BLAS."""
    out = np.empty((a.shape[0], a.shape[1], b.shape[2]), a.dtype)
    for i in range(a.shape[0]):
        matmul_into(a[i], b[i], out[i])     # into the slice: array setitem is slow to compile
    return out


@jit
def bmm_loop(a, b):
    """Integer batched matrix product (BLAS has none)."""
    B, M, K = a.shape
    N = b.shape[2]
    out = np.zeros((B, M, N), a.dtype)
    for i in range(B):
        for m in range(M):
            for k in range(K):
                av = a[i, m, k]
                for n in range(N):
                    out[i, m, n] += av * b[i, k, n]
    return out


def transposed_pays(M, K, N) -> bool:
    """Whether an (M, K) by (K, N) product is formed faster as its transpose, counting the
    pass that transposes it back; it depends on the BLAS that runs the product (blas.py):
    - SciPy's OpenBLAS (small products, or where torch lends no BLAS): up to 2x faster
      for a few rows and at least 4 times as many columns (64x784 by 784x256: 1.3 against
      2.2 ms on one EPYC core; 16x64 by 64x256: 19 against 49 µs), up to 2x slower for
      about as many (256x64 by 64x192), and from 128 rows the transposing pass costs what
      it saves.
    - torch's MKL (large products when lent; Xeon, 2 threads): only for 16-32 rows by
      K >= 256 and N >= 512 (16x256 by 256x1024: 1.5x faster), else it was slower, by up
      to 4.5x for a few rows (2x784 by 784x256) and 1.2x at 64 rows (64x784 by 784x256)."""
    if M * K * N > SMALL_GEMM and gemm_in_use() != SCIPY_GEMM:
        return 16 <= M <= 32 and K >= 256 and N >= 512
    return 1 < M <= 64 and N >= 64 and N >= 4 * M


def linear(x, w, b):
    """x (M, K) @ w.T (N, K) + b (N,), or no bias when b has length 0. Each orientation is
    its own kernel, so a process compiles only those its shapes use (each about 0.5 s on
    first use): generated code names one itself where the sizes are static
    (arrays_contract), and calls this choice in Python where one is symbolic."""
    if transposed_pays(x.shape[0], x.shape[1], w.shape[0]):
        return linear_transposed(x, w, b)
    return linear_rows(x, w, b)


@jit
def linear_rows(x, w, b):
    """``linear`` as x @ w.T, the bias added in place."""
    out = matmul(x, w.T)
    if b.size > 0:
        for m in range(out.shape[0]):
            for n in range(out.shape[1]):
                out[m, n] += b[n]
    return out


@jit
def linear_transposed(x, w, b):
    """``linear`` formed as w @ x.T and transposed back while the bias is added."""
    res = matmul(w, x.T)
    M, N = x.shape[0], w.shape[0]
    out = np.empty((M, N), res.dtype)
    bias = b if b.size > 0 else np.zeros(N, res.dtype)
    for m in range(M):
        for n in range(N):
            out[m, n] = res[n, m] + bias[n]
    return out


@jit
def attention(q, k, v, mask, mode, causal, scale):
    """softmax(q k^T * scale + mask) v over (B, L, E), (B, S, E), (B, S, Ev).

    mode: 0 no mask, 1 boolean mask (False hides), 2 additive mask; mask is (B, L, S).
    A fully hidden row gives zeros. Each head's scores are formed transposed, (S, L), so
    the softmax's row maxima and sums run across the rows at once, L wide, and vectorise:
    along a row they were a dependent max and add per element (32 heads of 32x32x16:
    286 -> 120 µs). Scores, exps and sums stay in q's dtype, as torch's softmax; the rows
    are normalised after the product with v, on L x Ev values rather than L x S.
    """
    B, L, _ = q.shape
    S = k.shape[1]
    Ev = v.shape[2]
    out = np.empty((B, L, Ev), q.dtype)
    edge = np.array([-np.inf, 0.0, 1.0, scale]).astype(q.dtype)   # constants in q's dtype
    neg_inf, zero, one, sc = edge[0], edge[1], edge[2], edge[3]
    top = np.empty(L, q.dtype)
    tot = np.empty(L, q.dtype)
    for b in range(B):
        st = matmul(k[b], q[b].T)
        top[:] = neg_inf
        for j in range(S):
            for i in range(L):
                if mode == 0 and not causal:
                    t = st[j, i] * sc
                else:
                    hide = (causal and j > i) or (mode == 1 and not mask[b, i, j])
                    t = neg_inf if hide else st[j, i] * sc + (
                        mask[b, i, j] if mode == 2 else zero)
                st[j, i] = t
                top[i] = max(top[i], t)
        for i in range(L):
            top[i] = zero if top[i] == neg_inf else top[i]    # a hidden row: exps are 0
        tot[:] = zero
        for j in range(S):
            for i in range(L):
                e = V.exp_any(st[j, i] - top[i])
                st[j, i] = e
                tot[i] += e
        ob = out[b]
        matmul_into(st.T, v[b], ob)
        for i in range(L):
            r = zero if tot[i] == zero else one / tot[i]
            for e in range(Ev):
                ob[i, e] = ob[i, e] * r
    return out


# ---- pooling (x is (B, H, W)) -----------------------------------------------------------


@inline
def _bigger(v, m):
    """max(m, v) where a nan wins and stays (torch's max pooling)."""
    return v if (v > m or v != v) and m == m else m


@jit
def _max_pool_2x2(x, out):
    """2x2 windows at stride 2, all inside: one pass reading both input rows."""
    B, OH, OW = out.shape
    for b in range(B):
        for oh in range(OH):
            top, bottom, dst = x[b, 2 * oh], x[b, 2 * oh + 1], out[b, oh]
            for ow in range(np.uint64(OW)):
                c = 2 * ow
                dst[ow] = _bigger(bottom[c + 1], _bigger(bottom[c], _bigger(top[c + 1], top[c])))


@jit
def _max_pool_inside(x, kh, kw, sh, sw, out):
    """Windows without padding or dilation, all inside: each output row's kh input rows
    are reduced into one row, then each window along it."""
    B, OH, OW = out.shape
    W = x.shape[2]
    row = np.empty(W, x.dtype)
    for b in range(B):
        for oh in range(OH):
            first = x[b, oh * sh]
            for w in range(np.uint64(W)):      # not row[:] = ...: its shape check's error
                row[w] = first[w]              # message compiled in 2.8 s
            for i in range(1, kh):
                src = x[b, oh * sh + i]
                for w in range(np.uint64(W)):
                    row[w] = _bigger(src[w], row[w])
            dst = out[b, oh]
            for ow in range(OW):
                m = row[ow * sw]
                for j in range(1, kw):
                    m = _bigger(row[ow * sw + j], m)
                dst[ow] = m


@jit
def _max_pool_any(x, kh, kw, sh, sw, ph, pw, dh, dw, out):
    """Any windows: each window's rows and columns inside the image are found once per
    output pixel, not tested per element, and indices are unsigned (no wraparound test):
    4x faster than per-element bounds tests (LeNet's 192 planes of 28x28: 988 -> 233 µs,
    torch 760 µs, Zen 1)."""
    B, H, W = x.shape
    OH, OW = out.shape[1], out.shape[2]
    for oh in range(OH):
        top = oh * sh - ph
        i0 = 0 if top >= 0 else (dh - 1 - top) // dh      # first kernel row inside
        i1 = min(kh, (H - top + dh - 1) // dh)            # one past the last
        for ow in range(OW):
            left = ow * sw - pw
            j0 = 0 if left >= 0 else (dw - 1 - left) // dw
            j1 = min(kw, (W - left + dw - 1) // dw)
            r0, c0 = np.uint64(top + i0 * dh), np.uint64(left + j0 * dw)
            for b in range(B):
                m = x[b, r0, c0]
                for i in range(i0, i1):
                    r = np.uint64(top + i * dh)
                    for j in range(j0, j1):
                        m = _bigger(x[b, r, np.uint64(left + j * dw)], m)
                out[b, oh, ow] = m


def max_pool2d(x, kh, kw, sh, sw, ph, pw, dh, dw, OH, OW):
    """Max over each window of the (B, H, W) planes; a nan in a window wins (as torch).
    Windows without padding or dilation that all lie inside take the faster paths
    (LeNet's pools at batch 32, 2x2 at stride 2 on 192 planes of 28x28 and 512 of 10x10:
    0.295 and 0.106 ms by ``_max_pool_any``, 0.166 and 0.074 by ``_max_pool_inside``'s
    loops, 0.05 and 0.03 by ``_max_pool_2x2``; torch 0.44-0.50 and 0.10-0.12, Zen 4).
    The path is chosen here, in Python, so only the paths a process uses are compiled: the
    three inside one kernel compiled in 1.7 s."""
    B, H, W = x.shape
    out = np.empty((B, OH, OW), x.dtype)
    inside = ph == 0 and pw == 0 and dh == 1 and dw == 1 and OH > 0 and OW > 0 and \
        (OH - 1) * sh + kh <= H and (OW - 1) * sw + kw <= W
    if inside and kh == kw == sh == sw == 2:
        _max_pool_2x2(x, out)
    elif inside:
        _max_pool_inside(x, kh, kw, sh, sw, out)
    else:
        _max_pool_any(x, kh, kw, sh, sw, ph, pw, dh, dw, out)
    return out


@jit
def avg_pool2d(x, kh, kw, sh, sw, ph, pw, OH, OW, count_pad, divisor):
    """torch's avg_pool2d: the divisor counts padding (not the ceil-mode overhang) when
    count_pad, only real elements otherwise; divisor > 0 overrides both."""
    B, H, W = x.shape
    out = np.empty((B, OH, OW), x.dtype)
    for b in range(B):
        for oh in range(OH):
            h0 = oh * sh - ph
            h1 = min(h0 + kh, H + ph)
            for ow in range(OW):
                w0 = ow * sw - pw
                w1 = min(w0 + kw, W + pw)
                pool = (h1 - h0) * (w1 - w0)
                hs, he, ws, we = max(h0, 0), min(h1, H), max(w0, 0), min(w1, W)
                tot = 0.0
                for i in range(hs, he):
                    for j in range(ws, we):
                        tot += x[b, i, j]
                d = divisor if divisor > 0 else (pool if count_pad else (he - hs) * (we - ws))
                out[b, oh, ow] = tot / d
    return out


@jit
def adaptive_avg_pool2d(x, OH, OW):
    B, H, W = x.shape
    out = np.empty((B, OH, OW), x.dtype)
    for b in range(B):
        for i in range(OH):
            h0, h1 = (i * H) // OH, -(-((i + 1) * H) // OH)
            for j in range(OW):
                w0, w1 = (j * W) // OW, -(-((j + 1) * W) // OW)
                tot = 0.0
                for p in range(h0, h1):
                    for q in range(w0, w1):
                        tot += x[b, p, q]
                out[b, i, j] = tot / ((h1 - h0) * (w1 - w0))
    return out


# ---- indexing -----------------------------------------------------------------------------


@jit
def index_select(x, idx):
    """x (O, N, I) at positions idx along the middle axis (negative wraps)."""
    O, N, I = x.shape
    out = np.empty((O, idx.size, I), x.dtype)
    for o in range(O):
        for k in range(idx.size):
            j = idx[k]
            j = j + N if j < 0 else j
            for i in range(I):
                out[o, k, i] = x[o, j, i]
    return out


@jit
def tri(x, diagonal, upper):
    """tril/triu of (B, R, C)."""
    B, R, C = x.shape
    out = np.empty(x.shape, x.dtype)
    for b in range(B):
        for r in range(R):
            for c in range(C):
                keep = (c - r >= diagonal) if upper else (c - r <= diagonal)
                out[b, r, c] = x[b, r, c] if keep else 0
    return out


@jit
def nll_loss(logp, target, ignore_index):
    """Per-sample -logp[n, target[n]] (0 where ignored) of (N, C), and the count kept."""
    N = logp.shape[0]
    loss = np.zeros(N, logp.dtype)
    kept = 0
    for n in range(N):
        t = target[n]
        if t != ignore_index:
            loss[n] = -logp[n, t]
            kept += 1
    return loss, kept


@jit
def sum_all(x):
    """Sum of every element of a C array, in float64."""
    return row_total(x.ravel(), 0.0)


# ---- recurrent layers (fused regions of kind "lstm"/"gru", float32) ---------------------


@inline
def _layer_start(xp, b_hh, h0, H):
    """A recurrent layer's output (T, B, H), its recurrent bias (zeros when it has none)
    and the first hidden state as a C array."""
    T, B, G = xp.shape
    bias = b_hh if b_hh.size > 0 else np.zeros(G, xp.dtype)
    return np.empty((T, B, H), xp.dtype), bias, np.ascontiguousarray(h0)


@inline
def _recurrent(h, w_hh, w_t, no_bias):
    """h @ w_hh.T (no_bias: an empty bias). A batch of rows multiplies w_hh.T copied once
    per layer into C order (w_t), the operand layout OpenBLAS runs fastest: 16x64 by
    64x256 took 5.6 µs per step that way, 8 µs as w_hh @ h.T and 14.6 µs with w_hh.T as
    it is (Zen 4). A single row takes linear's choice for one row."""
    if h.shape[0] == 1:
        return linear_rows(h, w_hh, no_bias)
    return matmul(h, w_t)


@inline
def _transposed_for_batch(xp, w_hh):
    """w_hh.T in C order when the layer runs a batch of rows (see _recurrent)."""
    if xp.shape[1] == 1:
        return np.empty((0, 0), w_hh.dtype)
    return np.ascontiguousarray(w_hh.T)


@jit
def lstm_layer(xp, w_hh, b_hh, h0, c0):
    """A whole LSTM layer over time, as the unrolled graph computes it step by step:
    gates = xp[t] + (h @ w_hh.T + b_hh), torch's gate order (i, f, g, o),
    c = f * c + i * g, h = o * tanh(c). xp is the input projection (T, B, 4H)."""
    T, B, G = xp.shape
    H = G // 4
    hs, bias, h = _layer_start(xp, b_hh, h0, H)
    c = c0.copy()
    w_t = _transposed_for_batch(xp, w_hh)
    no_bias = np.empty(0, xp.dtype)
    for t in range(T):
        rec = _recurrent(h, w_hh, w_t, no_bias)
        for b in range(B):
            for j in range(H):
                i = V.sigmoid32(xp[t, b, j] + (rec[b, j] + bias[j]))
                f = V.sigmoid32(xp[t, b, H + j] + (rec[b, H + j] + bias[H + j]))
                g = V.tanh32(xp[t, b, 2 * H + j] + (rec[b, 2 * H + j] + bias[2 * H + j]))
                o = V.sigmoid32(xp[t, b, 3 * H + j] + (rec[b, 3 * H + j] + bias[3 * H + j]))
                cell = i * g + f * c[b, j]
                c[b, j] = cell
                hs[t, b, j] = o * V.tanh32(cell)
        h = hs[t]
    return hs, c


@jit
def gru_layer(xp, w_hh, b_hh, h0):
    """A whole GRU layer over time, as the unrolled graph computes it: with
    x = xp[t] and r = h @ w_hh.T + b_hh split as (r, z, n) in torch's order,
    r = sigmoid(x_r + h_r), z = sigmoid(x_z + h_z), n = tanh(x_n + r * h_n),
    h = n + (h - n) * z."""
    T, B, G = xp.shape
    H = G // 3
    hs, bias, h = _layer_start(xp, b_hh, h0, H)
    w_t = _transposed_for_batch(xp, w_hh)
    no_bias = np.empty(0, xp.dtype)
    for t in range(T):
        rec = _recurrent(h, w_hh, w_t, no_bias)
        for b in range(B):
            for j in range(H):
                r = V.sigmoid32(xp[t, b, j] + (rec[b, j] + bias[j]))
                z = V.sigmoid32(xp[t, b, H + j] + (rec[b, H + j] + bias[H + j]))
                n = V.tanh32(xp[t, b, 2 * H + j] + r * (rec[b, 2 * H + j] + bias[2 * H + j]))
                hs[t, b, j] = n + (h[b, j] - n) * z
        h = hs[t]
    return hs


from .kernels_conv import conv2d  # noqa: E402,F401  (kept in its own module for size)
