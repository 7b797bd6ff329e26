"""NumPy reference semantics too long for a lambda in the op table.

Each function follows the matching PyTorch op exactly (torch's argument conventions);
the interpreter and constant folding call them through ``OPS[name].ref``.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .shapes import pool_out

_erf64 = np.frompyfunc(math.erf, 1, 1)


def erf(x):
    return np.asarray(_erf64(x.astype(np.float64)), dtype=np.float64).astype(x.dtype)


def gelu(x, approximate="none"):
    x64 = x.astype(np.float64)
    if approximate == "tanh":
        inner = math.sqrt(2 / math.pi) * (x64 + 0.044715 * x64 ** 3)
        y = 0.5 * x64 * (1 + np.tanh(inner))
    else:
        y = 0.5 * x64 * (1 + np.asarray(_erf64(x64 / math.sqrt(2)), dtype=np.float64))
    return y.astype(x.dtype)


def sigmoid(x):
    return (1 / (1 + np.exp(-x.astype(np.float64)))).astype(x.dtype)


def _bcast_channel(v, ndim):
    return v.reshape((-1,) + (1,) * (ndim - 2))


def conv(x, w, b=None, *, stride, padding, dilation, groups):
    """N-d convolution (torch.nn.functional.conv{1,2,3}d)."""
    nsp = x.ndim - 2
    xp = np.pad(x, [(0, 0), (0, 0)] + [(p, p) for p in padding])
    ks = w.shape[2:]
    eff = [d * (k - 1) + 1 for k, d in zip(ks, dilation)]
    win = sliding_window_view(xp, eff, axis=tuple(range(2, 2 + nsp)))
    win = win[(slice(None), slice(None))
              + tuple(slice(None, None, s) for s in stride)
              + tuple(slice(None, None, d) for d in dilation)]
    cg, og = x.shape[1] // groups, w.shape[0] // groups
    outs = []
    for g in range(groups):
        wg = win[:, g * cg:(g + 1) * cg]                     # N, cg, out..., k...
        kg = w[g * og:(g + 1) * og]                           # og, cg, k...
        axes_w = list(range(1, kg.ndim))
        axes_x = [1] + list(range(2 + nsp, 2 + 2 * nsp))
        y = np.tensordot(wg, kg, axes=(axes_x, axes_w))       # N, out..., og
        outs.append(np.moveaxis(y, -1, 1))
    out = np.concatenate(outs, axis=1) if groups > 1 else outs[0]
    if b is not None:
        out = out + _bcast_channel(b, out.ndim)
    return np.ascontiguousarray(out.astype(x.dtype, copy=False))


def _pool_windows(x, kernel_size, stride, padding, dilation, ceil_mode, fill):
    """Windows of the last two dims, padded as torch pads (ceil mode adds right padding)."""
    pads = []
    for size, k, s, p, d in zip(x.shape[-2:], kernel_size, stride, padding, dilation):
        out = pool_out(size, k, s, p, d, ceil_mode)
        need = (out - 1) * s + d * (k - 1) + 1
        pads.append((p, max(0, need - size - p)))
    xp = np.pad(x, [(0, 0)] * (x.ndim - 2) + pads, constant_values=fill)
    eff = [d * (k - 1) + 1 for k, d in zip(kernel_size, dilation)]
    win = sliding_window_view(xp, eff, axis=(-2, -1))
    nb = x.ndim - 2
    win = win[(slice(None),) * nb + (slice(None, None, stride[0]), slice(None, None, stride[1]),
                                     slice(None, None, dilation[0]), slice(None, None, dilation[1]))]
    outs = [pool_out(sz, k, s, p, d, ceil_mode)
            for sz, k, s, p, d in zip(x.shape[-2:], kernel_size, stride, padding, dilation)]
    return win[..., :outs[0], :outs[1], :, :], pads


def max_pool2d(x, *, kernel_size, stride, padding, dilation, ceil_mode):
    fill = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
    win, _ = _pool_windows(x, kernel_size, stride, padding, dilation, ceil_mode, fill)
    flat = win.reshape(win.shape[:-2] + (-1,))
    out = flat.max(axis=-1)
    nan = np.isnan(flat).any(axis=-1) if x.dtype.kind == "f" else None
    return np.where(nan, np.nan, out).astype(x.dtype) if nan is not None else out


def avg_pool2d(x, *, kernel_size, stride, padding, ceil_mode, count_include_pad,
               divisor_override):
    dil = (1, 1)
    win, pads = _pool_windows(x.astype(np.float64), kernel_size, stride, padding, dil,
                              ceil_mode, 0.0)
    total = win.sum(axis=(-2, -1))
    if divisor_override:
        return (total / divisor_override).astype(x.dtype)
    h, w = x.shape[-2:]
    ones = np.ones((h, w))
    if count_include_pad:     # padding counts, the extra ceil-mode margin does not
        ones = np.pad(ones, [(p, p) for p in padding], constant_values=1.0)
        mask = np.pad(ones, [(0, r - p) for (p, r) in pads])
    else:
        mask = np.pad(ones, pads)
    mwin = sliding_window_view(mask, kernel_size)[::stride[0], ::stride[1]]
    div = mwin.sum(axis=(-2, -1))[:total.shape[-2], :total.shape[-1]]
    return (total / div).astype(x.dtype)


def adaptive_avg_pool2d(x, *, output_size):
    h, w = x.shape[-2:]
    oh, ow = output_size
    out = np.empty(x.shape[:-2] + (oh, ow), dtype=np.float64)
    for i in range(oh):
        h0, h1 = (i * h) // oh, -(-((i + 1) * h) // oh)
        for j in range(ow):
            w0, w1 = (j * w) // ow, -(-((j + 1) * w) // ow)
            out[..., i, j] = x[..., h0:h1, w0:w1].astype(np.float64).mean(axis=(-2, -1))
    return out.astype(x.dtype)


def batch_norm(x, weight, bias, mean, var, *, eps):
    inv = 1.0 / np.sqrt(var.astype(np.float64) + eps)
    y = (x - _bcast_channel(mean, x.ndim)) * _bcast_channel(inv * weight, x.ndim)
    return (y + _bcast_channel(bias, x.ndim)).astype(x.dtype)


def batch_norm_train(x, weight, bias, running_mean, running_var, *, momentum, eps):
    axes = (0,) + tuple(range(2, x.ndim))
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=axes)
    var = x64.var(axis=axes)
    n = x.size // x.shape[1]
    out = batch_norm(x64, weight, bias, mean, var, eps=eps).astype(x.dtype)
    new_mean = (1 - momentum) * running_mean + momentum * mean
    new_var = (1 - momentum) * running_var + momentum * var * n / max(n - 1, 1)
    return out, new_mean.astype(running_mean.dtype), new_var.astype(running_var.dtype)


def layer_norm(x, weight=None, bias=None, *, normalized_shape, eps):
    axes = tuple(range(x.ndim - len(normalized_shape), x.ndim))
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=axes, keepdims=True)
    var = x64.var(axis=axes, keepdims=True)
    y = (x64 - mean) / np.sqrt(var + eps)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y.astype(x.dtype)


def softmax(x, *, dim):
    x64 = x.astype(np.float64)
    e = np.exp(x64 - x64.max(axis=dim, keepdims=True))
    return (e / e.sum(axis=dim, keepdims=True)).astype(x.dtype)


def log_softmax(x, *, dim):
    x64 = x.astype(np.float64)
    s = x64 - x64.max(axis=dim, keepdims=True)
    return (s - np.log(np.exp(s).sum(axis=dim, keepdims=True))).astype(x.dtype)


def scaled_dot_product_attention(q, k, v, mask=None, *, is_causal, scale):
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    s = np.matmul(q.astype(np.float64), np.swapaxes(k, -1, -2).astype(np.float64)) * scale
    if is_causal:
        L, S = s.shape[-2:]
        s = np.where(np.tril(np.ones((L, S), dtype=bool)), s, -np.inf)
    if mask is not None:
        s = np.where(mask, s, -np.inf) if mask.dtype == np.bool_ else s + mask
    m = s.max(axis=-1, keepdims=True)
    e = np.exp(s - np.where(np.isfinite(m), m, 0.0))
    den = e.sum(axis=-1, keepdims=True)
    p = np.divide(e, den, out=np.zeros_like(e), where=den > 0)   # fully masked rows -> 0
    return np.matmul(p, v.astype(np.float64)).astype(q.dtype)


def mean(x, axis, keepdims):
    """torch.mean: an accurate sum rounded to the accumulator (f32 for f16, else the input
    dtype, so a float32 sum past 3.4e38 is inf as in torch), then divided by the count."""
    axes = range(x.ndim) if axis is None else np.atleast_1d(axis) % max(x.ndim, 1)
    count = math.prod(x.shape[a] for a in set(int(a) for a in axes)) if x.ndim else 1
    acc = np.dtype(np.float32 if x.dtype == np.float16 else x.dtype)
    total = np.sum(x, axis=axis, keepdims=keepdims, dtype=np.float64).astype(acc)
    return np.asarray(total / acc.type(count)).astype(x.dtype)


def _reduce(loss, reduction):
    if reduction == "mean":
        return np.asarray(loss.mean(), dtype=loss.dtype)
    if reduction == "sum":
        return np.asarray(loss.sum(), dtype=loss.dtype)
    return loss


def mse_loss(x, y, *, reduction):
    return _reduce(((x - y) ** 2).astype(x.dtype), reduction)


def nll_loss(logp, target, *, reduction, ignore_index):
    cls_axis = 0 if logp.ndim == 1 else 1
    valid = target != ignore_index
    safe = np.where(valid, target, 0)
    picked = np.take_along_axis(logp, np.expand_dims(safe, cls_axis), axis=cls_axis)
    loss = np.where(valid, -np.squeeze(picked, axis=cls_axis), 0).astype(logp.dtype)
    if reduction == "mean":
        return np.asarray(loss.sum() / valid.sum(), dtype=logp.dtype)
    return _reduce(loss, reduction)


def gather(x, index, *, dim):
    """torch.gather: index may be smaller than x in the other dims."""
    sl = tuple(slice(None) if i == dim % x.ndim else slice(0, n)
               for i, n in enumerate(index.shape))
    return np.take_along_axis(x[sl], index, axis=dim)


def pad(x, *, pads, value):
    """torch.nn.functional.pad, constant mode: pads list the last dim first; negative crops."""
    widths = [(0, 0)] * x.ndim
    for i in range(len(pads) // 2):
        widths[x.ndim - 1 - i] = (pads[2 * i], pads[2 * i + 1])
    crop = tuple(slice(max(-lo, 0), x.shape[d] - max(-hi, 0)) for d, (lo, hi) in enumerate(widths))
    x = x[crop]
    return np.pad(x, [(max(lo, 0), max(hi, 0)) for lo, hi in widths], constant_values=value)


def split(x, *, dim, sizes):
    return tuple(np.split(x, np.cumsum(sizes)[:-1], axis=dim))


def sign(x):
    return np.where(np.isnan(x), 0, np.sign(x)).astype(x.dtype) if x.dtype.kind == "f" \
        else np.sign(x)
