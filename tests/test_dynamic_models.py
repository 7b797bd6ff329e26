"""Issue 8's bar: every dynamic model in the zoo, over a stream of inputs that takes every
path, returns exactly what eager returns, with the expected number of specialisations."""

from __future__ import annotations

import warnings

import pytest
import torch

import tracejit
from dynamic_zoo import BY_NAME, CASES, eager_reference, fresh, run_stream, same
from tracejit.dispatch import EagerSpecialization
from tracejit.runtime import Specialization

# numba-cpu compiles cost about a second each: two cheap models cover it
NUMBA_CASES = ["python_flag", "random_depth"]
PARAMS = [pytest.param(c.name, "interpret", id=f"{c.name}-interpret") for c in CASES] + \
    [pytest.param(n, "numba-cpu", id=f"{n}-numba-cpu") for n in NUMBA_CASES]


def play(name: str, backend: str):
    case = BY_NAME[name]
    model, calls = fresh(case)
    with torch.no_grad():
        want = eager_reference(case, model, calls)
        compiled = tracejit.compile(model, backend=backend)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", tracejit.TraceJitWarning)
            got = run_stream(case, compiled, model, calls)
    return case, model, compiled, got, want


@pytest.mark.parametrize("name, backend", PARAMS)
def test_stream_matches_eager(name, backend):
    case, model, compiled, got, want = play(name, backend)
    errors = [repr(g) for g in got if isinstance(g, Exception)]
    assert not errors, errors
    mismatches = [i for i, (g, w) in enumerate(zip(got, want)) if not same(g, w)]
    assert mismatches == [], f"{name}: calls {mismatches} differ from eager"
    d = compiled._tj_dispatcher
    specs = d.all_specializations()
    if backend == "interpret":
        assert d.count == case.specs, compiled.explain()
    else:
        # numba-cpu may keep a size static where interpret takes a symbol: at most one
        # specialisation per distinct path in the stream
        assert case.specs <= d.count <= len(got)
    if case.eager_reason is None:
        compiled_calls = sum(s.calls for s in specs if isinstance(s, Specialization))
        assert compiled_calls == len(got) - d.count   # every call not traced ran compiled
    else:
        assert all(isinstance(s, EagerSpecialization) for s in specs)
        text = str(compiled.explain())
        assert "runs eagerly" in text and case.eager_reason in text
        assert "dynamic_zoo.py:" in text          # the user's source line


def test_counter_advances_exactly_as_eager():
    case, model, compiled, got, want = play("counter", "interpret")
    assert model.calls == len(got)             # every call ran forward once
    assert [float(g[0, 0] - w[0, 0]) for g, w in zip(got, want)] == [0.0] * len(got)


def test_print_prints_on_every_call(capsys):
    case = BY_NAME["print"]
    model, calls = fresh(case)
    compiled = tracejit.compile(model, backend="interpret")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", tracejit.TraceJitWarning)
        for call in calls:
            compiled(*call.args)
    assert capsys.readouterr().out.count("mean ") == len(calls)


def test_every_path_of_the_tree_is_taken():
    """The streams really take more than one path: each branch has its own graph."""
    _, _, compiled, _, _ = play("early_exit", "interpret")
    guards = {len([n for n in s.capture.graph.nodes if n.op == "guard"])
              for s in compiled._tj_dispatcher.all_specializations()}
    assert guards == {1, 2, 3, 4, 5}           # exits after 1..4 steps, or runs all 5
    _, _, compiled, _, _ = play("random_depth", "interpret")
    depths = {sum(n.op == "linear" for n in s.graph.walk())
              for s in compiled._tj_dispatcher.all_specializations()}
    assert depths == {1, 2, 3}


def test_random_draws_match_eager_even_when_a_guard_fails():
    """A guard failing after an RNG extern ran must not leave torch's generator advanced."""
    case = BY_NAME["random_depth"]
    model, calls = fresh(case)
    compiled = tracejit.compile(model, backend="interpret")
    x = calls[0].args[0]
    with torch.no_grad():
        for seed in range(12):
            torch.manual_seed(seed)
            got = compiled(x)
            after = torch.rand(())
            torch.manual_seed(seed)
            want = model(x)
            assert same(got, want) and torch.equal(after, torch.rand(()))


def test_symbolic_sizes_serve_the_stream():
    _, _, compiled, _, _ = play("batch_sizes", "interpret")
    types = sorted(str(s.graph.inputs[0].value.type)
                   for s in compiled._tj_dispatcher.all_specializations())
    assert types == ["f32[1,20]", "f32[2,20]", "f32[B,20]"]
    _, _, compiled, _, _ = play("encoder_seq_lens", "interpret")
    types = sorted(str(s.graph.inputs[0].value.type)
                   for s in compiled._tj_dispatcher.all_specializations())
    assert types == ["f32[2,5,16]", "f32[2,S,16]"]
