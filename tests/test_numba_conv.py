"""numba-cpu convolution against torch: the conv2d kernel on odd shapes (stride, padding,
dilation, groups, bias or none, batch 1 and more, float32 and float64), and conv1d/conv2d
modules compiled end to end through the lowering."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import tracejit
from codegen.numba_cpu import kernels as K
from codegen.numba_cpu import kernels_conv as KC

TOL = {torch.float32: dict(rtol=1e-4, atol=1e-5), torch.float64: dict(rtol=1e-10, atol=1e-12)}

CASES = [  # (N, C, H, W), (O, KH, KW), stride, padding, dilation, groups, bias
    ((1, 3, 32, 32), (32, 3, 3), (1, 1), (1, 1), (1, 1), 1, False),     # ResNet stem
    ((2, 32, 8, 8), (32, 3, 3), (1, 1), (1, 1), (1, 1), 1, True),       # ResNet body
    ((3, 1, 28, 28), (6, 5, 5), (1, 1), (2, 2), (1, 1), 1, True),       # LeNet conv1
    ((2, 2, 7, 9), (5, 3, 4), (1, 1), (1, 2), (1, 1), 1, False),        # asymmetric kernel and padding, no bias
    ((2, 6, 14, 14), (16, 5, 5), (1, 1), (0, 0), (1, 1), 1, True),      # LeNet conv2
    ((2, 5, 11, 9), (7, 3, 2), (2, 3), (1, 2), (1, 1), 1, True),        # odd sizes, strides
    ((1, 4, 13, 10), (6, 3, 3), (1, 2), (2, 1), (2, 3), 1, False),      # dilation
    ((3, 6, 9, 7), (9, 3, 3), (2, 1), (1, 0), (1, 1), 3, True),         # groups
    ((2, 8, 7, 7), (8, 3, 3), (1, 1), (1, 1), (1, 1), 8, True),         # depthwise
    ((5, 16, 6, 5), (12, 1, 1), (1, 1), (0, 0), (1, 1), 2, False),      # 1x1, grouped
    ((2, 3, 5, 5), (4, 5, 5), (1, 1), (3, 3), (1, 1), 1, True),         # padding > kernel/2
    ((1, 2, 4, 6), (3, 4, 6), (1, 1), (0, 0), (1, 1), 1, True),         # kernel = input
    ((40, 3, 9, 9), (8, 3, 3), (1, 1), (1, 1), (1, 1), 1, True),        # many small images
    ((5, 16, 24, 24), (4, 3, 3), (1, 1), (1, 1), (1, 1), 1, True),      # a few larger ones
    # from SPLIT_MIN multiply-adds the images are dealt to threads (threads.run_shares)
    ((3, 16, 20, 20), (32, 3, 3), (1, 1), (1, 1), (1, 1), 1, True),     # odd count per thread
    ((4, 16, 31, 29), (32, 3, 3), (2, 1), (2, 1), (1, 2), 2, False),    # groups, strides
    # ... and one image's blocks of output rows (im2row)
    ((1, 32, 32, 32), (32, 3, 3), (1, 1), (1, 1), (1, 1), 1, False),    # ResNet body, batch 1
    ((1, 32, 30, 26), (40, 3, 3), (1, 1), (1, 1), (1, 1), 2, True),     # groups, short last block
]


def _out_size(case):
    xs, (o, kh, kw), stride, pad, dil, groups, _ = case
    return ((xs[2] + 2 * pad[0] - dil[0] * (kh - 1) - 1) // stride[0] + 1,
            (xs[3] + 2 * pad[1] - dil[1] * (kw - 1) - 1) // stride[1] + 1)


def _units(case):
    """(units, by_block) that conv2d deals to two threads for ``case``."""
    xs, (o, kh, kw), _, _, dil, groups, _ = case
    return KC.units(xs[0], o, xs[1] // groups, kh, kw, *_out_size(case), dil[1], 4, 2)


SPLIT = [c for c in CASES if _units(c)[0] > 1]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "x".join(map(str, c[0] + c[1])))
def test_conv2d_kernel_matches_torch(case, dtype):
    _check_against_torch(case, dtype)


@pytest.mark.parametrize("block_bytes", [1, 20000])
def test_im2row_in_blocks_of_output_rows(block_bytes, monkeypatch):
    """Blocks of one output row, and blocks that leave a shorter last one."""
    monkeypatch.setattr(KC, "ROWS_BLOCK_BYTES", block_bytes)
    for case in CASES:
        _check_against_torch(case, torch.float32)


def _check_against_torch(case, dtype):
    xs, (o, kh, kw), stride, pad, dil, groups, has_bias = case
    gen = torch.Generator().manual_seed(sum(xs) + o)
    x = torch.randn(*xs, generator=gen, dtype=dtype)
    w = torch.randn(o, xs[1] // groups, kh, kw, generator=gen, dtype=dtype)
    b = torch.randn(o, generator=gen, dtype=dtype) if has_bias else None
    want = F.conv2d(x, w, b, stride, pad, dil, groups).numpy()
    bias = b.numpy() if has_bias else np.zeros(0, x.numpy().dtype)
    got = K.conv2d(x.numpy(), w.numpy(), bias, *stride, *pad, *dil, *want.shape[2:])
    assert got.dtype == want.dtype and got.shape == want.shape
    assert np.abs(want).max() > 0.1
    np.testing.assert_allclose(got, want, **TOL[dtype])


def test_cases_cover_both_layouts():
    """im2col (short kernel rows, dilation) and im2row both serve some case above."""
    layouts = {KC.by_columns(c[0][1] // c[5], c[1][2], c[4][1]) for c in CASES}
    assert layouts == {True, False}


def test_large_batches_are_split_over_threads(monkeypatch):
    """The threaded path serves the cases above that reach SPLIT_MIN, and only those:
    batches by images, single images by blocks of output rows."""
    assert {_units(c)[1] for c in SPLIT} == {True, False}
    assert all(math.prod((c[0][0], c[1][0], c[0][1] // c[5], c[1][1], c[1][2]) +
                         _out_size(c)) >= KC.SPLIT_MIN for c in SPLIT)
    monkeypatch.setattr(KC, "get_num_threads", lambda: 2)
    from codegen.numba_cpu import threads
    split, shares = [], []
    real = threads.run_shares
    monkeypatch.setattr(threads, "run_shares", lambda share, T: shares.append(T) or real(share, T))
    for case in CASES:
        xs, (o, kh, kw), stride, pad, dil, groups, _ = case
        x = np.random.default_rng(0).standard_normal(xs).astype(np.float32)
        w = np.ones((o, xs[1] // groups, kh, kw), np.float32)
        calls = len(shares)
        K.conv2d(x, w, np.zeros(0, np.float32), *stride, *pad, *dil, *_out_size(case))
        if len(shares) > calls:
            split.append(xs)
    assert split == [c[0] for c in SPLIT]
    assert all(T >= 2 for T in shares)


@pytest.mark.parametrize("module, shape", [
    (torch.nn.Conv2d(4, 6, 3, stride=2, padding=1, dilation=1, groups=2), (3, 4, 9, 11)),
    (torch.nn.Conv2d(3, 5, (2, 3), padding=(0, 2), bias=False), (1, 3, 7, 6)),
    (torch.nn.Conv1d(4, 6, 3, stride=2, padding=1), (2, 4, 15)),
    (torch.nn.Conv1d(6, 6, 5, padding=4, dilation=2, groups=3, bias=False), (1, 6, 9)),
], ids=["conv2d", "conv2d-nobias", "conv1d", "conv1d-dilated-groups"])
def test_conv_module_compiles_and_matches_eager(module, shape):
    torch.manual_seed(0)
    module = module.eval()
    x = torch.randn(*shape)
    with torch.no_grad():
        want = module(x)
        got = tracejit.compile(module, backend="numba-cpu")(x)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_a_batch_split_over_threads_runs_in_one_sharing_region():
    """A segment whose conv deals images to threads runs inside one
    ``K.sharing()`` region (BLAS on one thread throughout, restored after); at batch 1
    the conv is one GEMM on BLAS's threads and there is no region."""
    from codegen.numba_cpu import threads
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(16, 16, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.Flatten(), torch.nn.Linear(16 * 16 * 16, 10)).eval()
    before = [p.get_num_threads() for p in threads._blas()]
    for batch, region in ((8, True), (1, False)):     # 8 images: 4.7M multiply-adds
        x = torch.randn(batch, 16, 16, 16)
        compiled = tracejit.compile(net)
        with torch.no_grad():
            want, got = net(x), compiled(x)
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
        (spec,) = compiled._tj_dispatcher.all_specializations()
        assert ("K.sharing()" in spec.executable.source) is region
        assert [p.get_num_threads() for p in threads._blas()] == before


def test_sharing_nests_and_restores():
    from codegen.numba_cpu import threads
    before = [p.get_num_threads() for p in threads._blas()]
    with threads.sharing():
        assert all(p.get_num_threads() == 1 for p in threads._blas())
        with threads.sharing():
            assert all(p.get_num_threads() == 1 for p in threads._blas())
        assert all(p.get_num_threads() == 1 for p in threads._blas())
    assert [p.get_num_threads() for p in threads._blas()] == before


def test_loops_in_a_sharing_region_are_serial():
    """A segment whose conv shares its work runs its loops serially, even those big enough
    for prange elsewhere: the pool thread spins on the other core meanwhile."""
    from codegen.numba_cpu.lower import PARALLEL_MIN
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(16, 16, 3, padding=1), torch.nn.Tanh()).eval()
    x = torch.randn(8, 16, 64, 64)
    assert x.numel() >= PARALLEL_MIN[True]              # tanh alone would get a prange loop
    compiled = tracejit.compile(net)
    with torch.no_grad():
        want, got = net(x), compiled(x)
        alone = tracejit.compile(torch.nn.Tanh())
        alone(x)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    (spec,) = compiled._tj_dispatcher.all_specializations()
    assert "K.sharing()" in spec.executable.source
    assert "prange(" not in spec.executable.source and "K.PARALLEL" not in spec.executable.source
    (lone,) = alone._tj_dispatcher.all_specializations()
    assert "prange(" in lone.executable.source
