"""Guards and specialisations (DESIGN §4): a call whose guards differ gets a new
specialisation or runs eagerly; it never returns what eager would not."""

from __future__ import annotations

import copy
import inspect
import warnings

import pytest
import torch
from torch import nn

import tracejit
from models_zoo import Generator
from tracejit.runtime import Specialization


def specs(compiled) -> list:
    return compiled._tj_dispatcher.all_specializations()


def calls(compiled) -> list[int]:
    """Compiled calls per specialisation, oldest first."""
    return sorted(s.calls for s in specs(compiled) if isinstance(s, Specialization))


def guard_nodes(compiled) -> list:
    return [n for s in specs(compiled) for n in s.capture.graph.nodes if n.op == "guard"]


def tracejit_warnings(caught) -> list[str]:
    """The messages of the TraceJitWarnings caught: exactly one, pointing at this file."""
    ours = [w for w in caught if issubclass(w.category, tracejit.TraceJitWarning)]
    assert len(ours) == 1, [str(w.message) for w in ours]
    assert ours[0].filename == __file__       # reported at the user's call, not in tracejit
    return [str(w.message) for w in ours]


def test_new_shape_gets_a_new_specialisation(assert_matches):
    @tracejit.compile(backend="interpret")
    def f(x, y):
        return torch.tanh(x @ y).sum(dim=-1)

    shapes = [((2, 3), (3, 4)), ((5, 3), (3, 1)), ((2, 3), (3, 4)), ((5, 3), (3, 1))]
    with torch.no_grad():
        for a, b in shapes:
            x, y = torch.randn(a), torch.randn(b)
            assert_matches(f(x, y), torch.tanh(x @ y).sum(dim=-1))
    assert len(specs(f)) == 2 and calls(f) == [1, 1]


@pytest.mark.parametrize("other", [torch.float64, torch.int64], ids=["f64", "i64"])
def test_new_dtype_gets_a_new_specialisation(other, assert_matches):
    @tracejit.compile(backend="interpret")
    def f(x):
        return x * 3 + 1

    with torch.no_grad():
        for x in (torch.randn(4), (torch.randn(4) * 10).to(other)) * 2:
            assert_matches(f(x), x * 3 + 1)
    assert len(specs(f)) == 2 and calls(f) == [1, 1]


def test_python_scalar_argument_is_guarded(assert_matches):
    @tracejit.compile(backend="interpret")
    def f(x, k):
        return x * k

    x = torch.randn(3)
    with torch.no_grad():
        for k in (2, 3, 2.5, 2):
            assert_matches(f(x, k), x * k)
    assert len(specs(f)) == 3


def test_same_tensor_twice_is_guarded(assert_matches):
    @tracejit.compile(backend="interpret")
    def f(x, y):
        return x * 2 - y

    x, y = torch.randn(4), torch.randn(4)
    with torch.no_grad():
        for a, b in ((x, x), (x, y), (y, y), (x, y)):
            assert_matches(f(a, b), a * 2 - b)
    assert len(specs(f)) == 2 and calls(f) == [1, 1]


def test_grad_mode_is_guarded(assert_matches):
    @tracejit.compile(backend="interpret")
    def f(x):
        return torch.relu(x) - 1

    x = torch.randn(6)
    for ctx in (torch.no_grad, torch.enable_grad, torch.no_grad, torch.enable_grad):
        with ctx():
            assert_matches(f(x), torch.relu(x) - 1)
    assert len(specs(f)) == 2 and calls(f) == [1, 1]


def test_train_eval_switch_specialises_and_stays_correct(assert_matches):
    torch.manual_seed(0)
    model = Generator().eval()
    reference = copy.deepcopy(model)
    compiled = tracejit.compile(model, backend="interpret")
    with torch.no_grad():
        for training in (False, True, False, True, False):
            compiled.train(training)
            reference.train(training)
            z = torch.randn(6, 8) * 3
            assert_matches(compiled(z), reference(z))
            assert_matches(model.state_dict(), reference.state_dict())
    assert len(specs(compiled)) == 2 and calls(compiled) == [1, 2]
    assert int(model.net[1].num_batches_tracked) == 2


def test_specialisation_limit_warns_once_naming_the_guard(assert_matches):
    @tracejit.compile(backend="interpret", options={"max_specializations": 2})
    def f(x):
        return torch.sigmoid(x) * 2

    with torch.no_grad(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for n in (1, 2, 3, 4, 5, 1, 2, 3):
            x = torch.randn(n)
            assert_matches(f(x), torch.sigmoid(x) * 2)
    messages = tracejit_warnings(caught)
    assert "max_specializations=2" in messages[0]
    assert "input 0 shape changed (2,) -> (3,)" in messages[0]
    assert len(specs(f)) == 2 and calls(f) == [1, 1]
    assert "gave up" in str(f.explain())


# ---- data-dependent Python: guards inside the graph ---------------------------------------------

def branchy(x):
    if x.sum() > 0:
        return x * 2
    return x - 1


BRANCH_LINE = inspect.getsourcelines(branchy)[1] + 1


def test_data_dependent_branch_records_a_guard_and_falls_back(assert_matches):
    f = tracejit.compile(branchy, backend="interpret")
    pos = torch.rand(4) + 0.1
    neg = -pos
    with torch.no_grad():
        assert_matches(f(pos), pos * 2)
        (guard,) = guard_nodes(f)
        assert guard.attrs["expected"] is True
        assert guard.loc.endswith(f"test_tracejit_guards.py:{BRANCH_LINE}")
        assert_matches(f(neg), neg - 1)        # the other branch: eager's result, not x * 2
        assert len(specs(f)) == 2 and calls(f) == [0, 0]
        for x in (pos, neg, pos * 3, neg * 3):
            assert_matches(f(x), branchy(x))
    assert calls(f) == [2, 2]
    assert "guard: value == False at " in str(f.explain())


def test_item_in_arithmetic_is_guarded(assert_matches):
    @tracejit.compile(backend="interpret")
    def f(x):
        return x / x.abs().max().item() + x.sum().item()

    x = torch.randn(5)
    with torch.no_grad():
        for y in (x, x, x * 2, x * 2, x):
            assert_matches(f(y), y / y.abs().max() + y.sum())
    assert len(specs(f)) == 2 and calls(f) == [1, 2]
    assert len(guard_nodes(f)) == 4


def item_times(x):
    return x * x.sum().item()


ITEM_LINE = inspect.getsourcelines(item_times)[1] + 1


def test_data_dependent_limit_warns_once_naming_the_guard(assert_matches):
    f = tracejit.compile(item_times, backend="interpret", options={"max_specializations": 2})
    x = torch.rand(3) + 0.1
    with torch.no_grad(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for y in (x, x * 2, x * 3, x * 4, x * 2):
            assert_matches(f(y), y * y.sum())
    messages = tracejit_warnings(caught)
    assert f"the data-dependent guard at test_tracejit_guards.py:{ITEM_LINE}" in messages[0] \
        or f"tests/test_tracejit_guards.py:{ITEM_LINE}" in messages[0], messages[0]
    assert calls(f) == [0, 1]               # x*2 still runs its specialisation


class Scaled(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 3)
        self.scale = 2.0

    def forward(self, x):
        return self.fc(x) * self.scale


def test_plain_python_attribute_is_guarded(assert_matches):
    model = Scaled().eval()
    compiled = tracejit.compile(model, backend="interpret")
    x = torch.randn(2, 3)
    with torch.no_grad():
        compiled(x)
        model.scale = 5.0
        assert_matches(compiled(x), model(x))


def test_alias_check_agrees_with_brute_force_on_random_views():
    """The tracer's overlap test (used after in-place writes) never misses a shared element."""
    import random

    from tracejit.tracer import _offsets, _overlap

    rng = random.Random(1)
    base = torch.arange(2000.0)
    for _ in range(2000):
        shape = [rng.randint(1, 4) for _ in range(rng.randint(1, 3))]
        strides = [rng.randint(1, 12) for _ in shape]
        off = rng.randint(0, 30)
        a = base.as_strided(shape, strides, off)
        b = base.as_strided(shape, strides, off + rng.randint(0, 20)) if rng.random() < 0.5 \
            else base.as_strided([rng.randint(1, 4)], [rng.randint(1, 5)], rng.randint(0, 40))
        shared = bool(set(_offsets(a).tolist()) & set(_offsets(b).tolist()))
        assert _overlap(a, b) == shared
