"""Shared fixtures for the tracejit tests: comparing with eager (DESIGN §7 tolerances)."""

from __future__ import annotations

import pytest

RTOL, ATOL = 1e-4, 1e-5


def _assert_matches(actual, expected):
    """Same structure; floats within rtol 1e-4 / atol 1e-5, integers and bools exactly."""
    import torch
    from torch.utils._pytree import tree_flatten

    got, got_spec = tree_flatten(actual)
    want, want_spec = tree_flatten(expected)
    assert got_spec == want_spec, f"output structure {got_spec} != eager {want_spec}"
    for i, (a, b) in enumerate(zip(got, want)):
        if not isinstance(b, torch.Tensor):
            assert a == b, f"leaf {i}: {a!r} != eager {b!r}"
            continue
        assert isinstance(a, torch.Tensor), f"leaf {i} is {type(a).__name__}, not a tensor"
        assert a.dtype == b.dtype and a.shape == b.shape, \
            f"leaf {i}: {a.dtype}{list(a.shape)} != eager {b.dtype}{list(b.shape)}"
        if b.dtype.is_floating_point:
            torch.testing.assert_close(a, b, rtol=RTOL, atol=ATOL, msg=lambda m: f"leaf {i}: {m}")
        else:
            assert torch.equal(a, b), f"leaf {i} differs from eager"


@pytest.fixture
def assert_matches():
    return _assert_matches
