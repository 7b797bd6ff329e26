"""Property tests: every pass alone and the whole pipeline keep the interpreter's results,
keep the verifier happy, and the pipeline is idempotent."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

import ir
from ir.passes import DEFAULT_PIPELINE, PASSES, optimize
from ir.printer import print_graph
from ir.verify import verify
from graphgen import graphs

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def assert_same_results(before, after, arrays):
    want_out, want_writes = ir.run(before, arrays)
    got_out, got_writes = ir.run(after, arrays)
    assert len(got_out) == len(want_out)
    for g, w in zip(got_out + list(got_writes.values()), want_out + list(want_writes.values())):
        assert g.shape == w.shape and g.dtype == w.dtype
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5, equal_nan=True)


@pytest.mark.parametrize("name", sorted(PASSES))
@SETTINGS
@given(case=graphs())
def test_each_pass_preserves_results(name, case):
    graph, arrays = case
    verify(graph)
    text = print_graph(graph)
    out, _ = optimize(graph, [name])
    assert print_graph(graph) == text, "optimize changed the caller's graph"
    verify(out)
    assert_same_results(graph, out, arrays)


@SETTINGS
@given(case=graphs(max_ops=14))
def test_pipeline_preserves_results_and_is_idempotent(case):
    graph, arrays = case
    seen = []
    out, stats = optimize(graph, "each", on_pass=lambda name, g: (verify(g), seen.append(name)))
    assert set(seen) == set(DEFAULT_PIPELINE)
    verify(out)
    assert_same_results(graph, out, arrays)
    again, _ = optimize(out)
    assert print_graph(again) == print_graph(out)
    assert len(out.nodes) <= len(graph.nodes)
