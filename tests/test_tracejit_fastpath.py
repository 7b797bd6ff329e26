"""The per-call fast path (tracejit/fastpath.py): taken once a call has succeeded, and
left, with the same result as eager, whenever anything its specialisation depends on moves."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import tracejit
from tracejit import fastpath
from tracejit.runtime import Specialization


class Net(nn.Module):
    def __init__(self, scale=1.0):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(6, 8), nn.Linear(8, 3)
        self.scale = scale

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x))) * self.scale


def calls(cm) -> int:
    return sum(s.calls for s in cm._tj_dispatcher.all_specializations()
               if isinstance(s, Specialization))


def served_fast(cm, *args) -> bool:
    """Whether ``cm(*args)`` ran on the fast path alone (the generic path never entered)."""
    before = cm._tj_dispatcher.generic_calls
    cm(*args)
    return cm._tj_dispatcher.generic_calls == before


def warm(cm, x):
    """Three calls: the first traces, the second leaves its fast path, the third takes it."""
    for _ in range(2):
        cm(x)
    assert served_fast(cm, x)
    assert type(cm).__call__ is cm._tj_dispatcher.hot


@pytest.fixture
def net():
    torch.manual_seed(0)
    return Net().eval()


@pytest.fixture
def x():
    torch.manual_seed(1)
    return torch.randn(2, 6)


def check(cm, model, x, assert_matches):
    assert_matches(cm(x), model(x))


@torch.no_grad()
def test_fast_path_matches_eager_and_counts_calls(net, x, assert_matches):
    cm = tracejit.compile(net)
    warm(cm, x)
    before = calls(cm)
    for _ in range(3):
        y = torch.randn(2, 6)
        check(cm, net, y, assert_matches)
    assert calls(cm) == before + 3
    assert "2 call(s) took the generic path" in str(cm.explain())


@torch.no_grad()
def test_fast_path_left_when_a_parameter_changes(net, x, assert_matches):
    cm = tracejit.compile(net)
    warm(cm, x)
    net.fc1.weight.add_(0.5)                                    # in place: same storage
    check(cm, net, x, assert_matches)
    net.fc1.weight.data = torch.randn(8, 6)                     # new storage, same object
    check(cm, net, x, assert_matches)
    assert served_fast(cm, x)                       # again, on the new storage's view
    check(cm, net, x, assert_matches)
    net.fc2.bias = nn.Parameter(torch.randn(3))                 # new object
    check(cm, net, x, assert_matches)
    net.fc2 = nn.Linear(8, 3)                                   # new submodule
    check(cm, net, x, assert_matches)


@torch.no_grad()
def test_a_deleted_parameter_makes_the_model_traced_again(net, x, assert_matches):
    cm = tracejit.compile(net)
    warm(cm, x)
    weight = net.fc1.weight.detach() * 2
    del net.fc1.weight
    net.fc1.weight = weight                                     # now a plain attribute
    for _ in range(3):
        check(cm, net, x, assert_matches)
    del net.fc2.bias
    net.fc2.register_buffer("bias", torch.ones(3))              # now a buffer
    for _ in range(3):
        check(cm, net, x, assert_matches)


@torch.no_grad()
def test_fast_path_taken_again_after_an_unrelated_module_is_made(net, x, assert_matches):
    cm = tracejit.compile(net)
    warm(cm, x)
    nn.Sequential(nn.Linear(2, 2))                  # moves the module-tree epoch
    assert not served_fast(cm, x)                   # the generic path checks the tree
    check(cm, net, x, assert_matches)
    assert served_fast(cm, x)


@torch.no_grad()
def test_fast_path_left_when_an_attribute_forward_reads_changes(net, x, assert_matches):
    cm = tracejit.compile(net)
    warm(cm, x)
    net.scale = 3.0
    check(cm, net, x, assert_matches)
    assert len(cm._tj_dispatcher.all_specializations()) == 2


@torch.no_grad()
def test_fast_path_left_for_other_inputs(net, x, assert_matches):
    cm = tracejit.compile(net, dynamic=False)
    warm(cm, x)
    check(cm, net, torch.randn(5, 6), assert_matches)                       # other shape
    check(cm, net, torch.randn(6, 2).t(), assert_matches)                   # not contiguous
    check(cm, net, torch._neg_view(torch.randn(2, 6)), assert_matches)     # negative bit
    check(cm, net, torch.randn(2, 6, requires_grad=True), assert_matches)  # wants grad
    check(cm, net, nn.Parameter(torch.randn(2, 6)), assert_matches)        # a subclass
    warm(cm, x)                                                             # and back
    with pytest.raises(TypeError):
        cm(x, x)                                                            # other arity


def test_fast_path_left_when_gradients_are_needed(net, x, assert_matches):
    cm = tracejit.compile(net)
    with torch.no_grad():
        warm(cm, x)
    with pytest.warns(tracejit.TraceJitWarning, match="autograd"):
        out = cm(x)
    assert out.requires_grad
    assert_matches(out, net(x))


@torch.no_grad()
def test_other_argument_lists_reach_the_generic_path(assert_matches):
    @tracejit.compile
    def f(x, scale=2.0, *more, **named):
        return x * scale + sum(more) + sum(named.values())

    x = torch.randn(3, 4)
    for _ in range(2):
        f(x)
    assert served_fast(f, x)
    assert_matches(f(x, 3.0), x * 3.0)
    assert_matches(f(x, 3.0, 1.0), x * 3.0 + 1.0)
    assert_matches(f(x, a0=1.5), x * 2.0 + 1.5)         # named like the fast path's argument
    assert_matches(f(x=x, scale=0.5), x * 0.5)
    with pytest.raises(TypeError):
        f()
    assert_matches(f(x), x * 2.0)


@torch.no_grad()
def test_compiled_objects_keep_fast_paths_of_their_own(assert_matches):
    torch.manual_seed(0)
    nets = [Net().eval(), Net(scale=2.0).eval()]
    compiled = [tracejit.compile(n) for n in nets]
    x, y = torch.randn(2, 6), torch.randn(3, 6)
    for cm in compiled:
        warm(cm, x)
    assert type(compiled[0]) is not type(compiled[1])
    assert isinstance(compiled[0], tracejit.CompiledModule)
    for _ in range(2):
        for cm, n in zip(compiled, nets):
            assert served_fast(cm, x)
            check(cm, n, x, assert_matches)
    check(compiled[0], nets[0], y, assert_matches)      # a new shape: its own fast path
    assert served_fast(compiled[1], x)


@torch.no_grad()
def test_fast_path_takes_two_distinct_inputs_but_not_one_twice(assert_matches):
    @tracejit.compile
    def f(a, b):
        return a * 2 + b * b

    a, b = torch.randn(4), torch.randn(5, 4)
    for _ in range(3):
        assert_matches(f(a, b), a * 2 + b * b)
    assert served_fast(f, a, b)
    a64, b64 = a.double(), b.double()                       # other dtype
    assert_matches(f(a64, b64), a64 * 2 + b64 * b64)
    same = torch.randn(4)
    for _ in range(3):
        assert_matches(f(same, same), same * 2 + same * same)
        assert_matches(f(same, same.clone()), same * 2 + same * same)


@torch.no_grad()
def test_fast_path_follows_data_dependent_guards(assert_matches):
    @tracejit.compile
    def f(x):
        return x * 2 if x.sum() > 0 else x - 1

    pos = torch.rand(5) + 0.5
    for _ in range(3):
        assert_matches(f(pos), pos * 2)
    neg = -pos
    for _ in range(3):
        assert_matches(f(neg), neg - 1)
        assert_matches(f(pos), pos * 2)


@torch.no_grad()
def test_a_symbolic_graph_makes_a_bounded_number_of_fast_paths(monkeypatch, assert_matches):
    monkeypatch.setattr(fastpath, "MAX_BUILDS", 3)

    @tracejit.compile(dynamic=True)
    def f(x):
        return torch.tanh(x) * 2 + 1

    for _ in range(2):
        for n in range(2, 10):
            x = torch.randn(n, 3)
            for _ in range(2):
                assert_matches(f(x), torch.tanh(x) * 2 + 1)
    (spec,) = f._tj_dispatcher.all_specializations()
    assert len(spec.fast_paths) == 3 and spec.calls > 20
