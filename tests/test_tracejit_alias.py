"""The tracer's alias check after in-place writes: dense views, cached view pairs, chunks."""

import random

import pytest
import torch

import tracejit
from tracejit.tracer import _offsets, _overlap


def _shared(a, b) -> bool:
    return bool(set(_offsets(a).tolist()) & set(_offsets(b).tolist()))


def test_dense_views_agree_with_brute_force():
    """Contiguous blocks (the fast path) against strided views of every kind, both orders."""
    rng = random.Random(7)
    base = torch.arange(4000.0)
    for _ in range(1500):
        rows, cols = rng.randint(1, 5), rng.randint(1, 6)
        dense = base.as_strided([rows, cols], [cols, 1], rng.randint(0, 60))
        shape = [rng.randint(1, 4) for _ in range(rng.randint(1, 3))]
        strides = [rng.randint(1, 15) for _ in shape]
        other = base.as_strided(shape, strides, rng.randint(0, 80))
        assert _overlap(dense, other) == _shared(dense, other)
        assert _overlap(other, dense) == _shared(other, dense)


def test_repeated_view_pairs_give_the_same_answer_on_fresh_storage():
    """Answers are cached by (offset, shape, stride): a new storage with the same views
    (a recurrent model's gates at the next step) is judged like the first one."""
    for _ in range(3):
        gates = torch.randn(3, 8)
        chunks = gates.chunk(4, dim=1)
        assert not _overlap(chunks[0], chunks[1])
        assert not _overlap(chunks[3], chunks[1])
        assert all(_overlap(gates, c) for c in chunks)
        assert _overlap(gates[:, 1:3], chunks[0]) and _overlap(gates[:, 1:3], chunks[1])


def _chunk_writes(x):
    gates = x * 2.0
    i, f = gates.chunk(2, dim=1)
    i.sigmoid_()
    f.tanh_()
    return i + f


def _chunk_then_base(x):
    gates = x * 2.0
    i, _ = gates.chunk(2, dim=1)
    i.sigmoid_()
    return gates.sum()


def test_in_place_writes_to_chunks_trace_and_match_eager():
    x = torch.randn(3, 6)
    graph = tracejit.trace(_chunk_writes, x).graph
    assert [n.op for n in graph.nodes].count("sigmoid") == 1
    compiled = tracejit.compile(_chunk_writes, backend="interpret")
    torch.testing.assert_close(compiled(x), _chunk_writes(x))


def test_reading_the_base_after_a_write_to_a_chunk_aborts_the_trace():
    with pytest.raises(tracejit.TraceJitError, match="modified in place through an alias"):
        tracejit.trace(_chunk_then_base, torch.randn(3, 6))
