"""Dynamic behaviour (DESIGN §4): data-dependent guards form a tree, Python state read by
forward is guarded, state changed by forward runs eagerly, RNG ops stay on torch's
generator, and sizes become symbolic when they change. Every answer is eager's."""

import sys
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

import tracejit
from tracejit.dispatch import EagerSpecialization

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
import models  # noqa: E402

BACKEND = "interpret"


def dispatcher(compiled):
    return compiled._tj_dispatcher


def compiled_calls(compiled) -> int:
    return sum(getattr(s, "calls", 0) for s in dispatcher(compiled).all_specializations()
               if not isinstance(s, EagerSpecialization))


def test_branches_form_a_tree_and_known_branches_run_compiled():
    @tracejit.compile(backend=BACKEND)
    def f(x):
        if x.sum() > 0:
            return x * 2
        return x - 1

    pos, neg = torch.rand(5) + 0.1, -torch.rand(5) - 0.1
    with torch.no_grad():
        for x in (pos, neg, pos, neg, pos):
            torch.testing.assert_close(f(x), x * 2 if x.sum() > 0 else x - 1)
    d = dispatcher(f)
    assert d.count == 2                       # one trace per branch, then only compiled calls
    (root,) = d.roots.values()
    assert len(root.children) == 1            # the other branch hangs under the guard outcome
    assert compiled_calls(f) == 3


@pytest.mark.parametrize("read", [lambda t: t.item(), lambda t: int(t), lambda t: float(t),
                                  lambda t: bool(t > 0), lambda t: t.tolist()[0]])
def test_python_reads_of_tensor_data_are_guarded(read):
    @tracejit.compile(backend=BACKEND)
    def f(x, n):
        return x * read(n)

    x = torch.randn(4)
    with torch.no_grad():
        for v in (3.0, 3.0, -2.0, 3.0, 7.5):
            n = torch.tensor([v])
            torch.testing.assert_close(f(x, n), x * read(n))


def test_tolist_of_a_large_tensor_runs_eagerly_with_a_reason():
    @tracejit.compile(backend=BACKEND)
    def f(x):
        return x * sum(x.tolist())

    x = torch.randn(100)
    with torch.no_grad(), pytest.warns(tracejit.TraceJitWarning, match="100-element"):
        torch.testing.assert_close(f(x), x * sum(x.tolist()))


class Counter(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 3)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.fc(x)


def test_forward_that_changes_an_attribute_runs_eagerly_naming_it():
    model = Counter().eval()
    compiled = tracejit.compile(model, backend=BACKEND)
    x = torch.randn(2, 3)
    with torch.no_grad():
        with pytest.warns(tracejit.TraceJitWarning, match=r"self\.calls at .*test_dynamic\.py"):
            compiled(x)
        for _ in range(3):
            compiled(x)
    assert model.calls == 4                   # every call ran forward, as eager would
    assert "runs eagerly" in str(compiled.explain())


class Appender(nn.Module):
    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x):
        self.seen.append(x.shape[0])
        return x + 1


def test_forward_that_appends_to_a_list_runs_eagerly():
    model = Appender()
    compiled = tracejit.compile(model, backend=BACKEND)
    with torch.no_grad(), pytest.warns(tracejit.TraceJitWarning, match=r"self\.seen"):
        compiled(torch.randn(2))
        compiled(torch.randn(2))
    assert model.seen == [2, 2]


class Printer(nn.Module):
    def forward(self, x):
        print("forward sees", x.shape)
        return x * 3


def test_forward_that_prints_runs_eagerly_and_prints_every_time(capsys):
    compiled = tracejit.compile(Printer(), backend=BACKEND)
    with torch.no_grad(), pytest.warns(tracejit.TraceJitWarning, match="prints"):
        compiled(torch.randn(2))
        compiled(torch.randn(2))
    assert capsys.readouterr().out.count("forward sees") == 2


class Deep(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.depth = 1

    def forward(self, x):
        for _ in range(self.depth):
            x = torch.tanh(self.fc(x))
        return x


def test_attribute_read_by_forward_is_a_guard():
    model = Deep().eval()
    compiled = tracejit.compile(model, backend=BACKEND)
    x = torch.randn(2, 4)
    with torch.no_grad():
        for depth in (1, 3, 1, 3):
            model.depth = depth
            torch.testing.assert_close(compiled(x), model(x))
    assert dispatcher(compiled).count == 2
    assert "attribute depth == 1" in str(compiled.explain())


def test_dropout_in_training_follows_torchs_generator():
    model = nn.Sequential(nn.Linear(8, 8), nn.Dropout(0.5)).train()
    compiled = tracejit.compile(model, backend=BACKEND)
    x = torch.randn(4, 8)
    with torch.no_grad():
        compiled(x)                                          # trace
        for seed in (1, 2):
            torch.manual_seed(seed)
            got = compiled(x)
            torch.manual_seed(seed)
            want = model(x)
            torch.testing.assert_close(got, want)
    assert compiled_calls(compiled) == 2                     # not an eager fallback
    node = dispatcher(compiled).all_specializations()[0]
    assert any("bernoulli" in n.attrs["target"] for n in node.capture.externs)


@pytest.mark.parametrize("backend", ["interpret", "numba-cpu", "onnxruntime"])
def test_automatic_dynamic_batch(backend):
    model = models.SimpleNN().eval()
    compiled = tracejit.compile(model, backend=backend)
    with torch.no_grad():
        for b in (2, 3, 5, 9, 1, 6):
            x = torch.randn(b, 784)
            torch.testing.assert_close(compiled(x), model(x), rtol=1e-4, atol=1e-5)
    d = dispatcher(compiled)
    assert d.count == 3                       # batch 2, the merged B (from 3), batch 1
    types = sorted(str(s.graph.inputs[0].value.type) for s in d.all_specializations())
    assert types == ["f32[1,784]", "f32[2,784]", "f32[B,784]"]


def test_dynamic_false_specialises_every_size():
    model = models.SimpleNN().eval()
    compiled = tracejit.compile(model, backend=BACKEND, dynamic=False)
    with torch.no_grad():
        for b in (2, 3, 4):
            compiled(torch.randn(b, 784))
    assert dispatcher(compiled).count == 3
    assert all(s.graph.inputs[0].value.type.is_static
               for s in dispatcher(compiled).all_specializations())


def test_dynamic_true_is_symbolic_from_the_first_call():
    model = models.PreNormMLPBlock().eval()
    compiled = tracejit.compile(model, backend=BACKEND, dynamic=True)
    with torch.no_grad():
        for b, s in ((4, 5), (7, 5), (2, 9), (3, 2)):
            x = torch.randn(b, s, 64)
            torch.testing.assert_close(compiled(x), model(x), rtol=1e-4, atol=1e-5)
    d = dispatcher(compiled)
    assert d.count == 1
    assert str(d.all_specializations()[0].graph.inputs[0].value.type) == "f32[B,S,64]"


def test_limit_warns_once_naming_the_failing_guard():
    @tracejit.compile(backend=BACKEND, options={"max_specializations": 3})
    def f(x, n):
        return x * n.item()

    x = torch.randn(3)
    with torch.no_grad(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for v in range(6):
            torch.testing.assert_close(f(x, torch.tensor(float(v))), x * float(v))
    gave_up = [w for w in caught if "gave up" in str(w.message)]
    assert len(gave_up) == 1
    assert "data-dependent guard at" in str(gave_up[0].message)
    assert "test_dynamic.py" in str(gave_up[0].message)


@pytest.mark.parametrize("backend", ["interpret", "numba-cpu", "onnxruntime"])
def test_float_guards_allow_reduction_order_but_not_real_changes(backend):
    """A backend may sum in another order than eager (a few ulps apart): the guard on a
    float Python read still holds; a real change of the value still retraces."""
    @tracejit.compile(backend=backend)
    def f(x):
        return x / x.sum().item()

    x = torch.rand(1000) + 0.5
    with torch.no_grad():
        for y in (x, x, x, x * 1.5, x * 1.5):
            torch.testing.assert_close(f(y), y / y.sum())
    assert dispatcher(f).count == 2
    assert compiled_calls(f) == 3


def test_batchnorm_training_writes_back_through_numba_entry():
    """Buffer writes come back from the compiled entry point and land in the buffers."""
    import copy
    torch.manual_seed(0)
    model = models.ResBlock().train()
    ref = copy.deepcopy(model)
    compiled = tracejit.compile(model, backend="numba-cpu")
    with torch.no_grad():
        for _ in range(3):
            x = torch.randn(4, 3, 8, 8)
            torch.testing.assert_close(compiled(x), ref(x), rtol=1e-4, atol=1e-5)
    for name, buf in model.named_buffers():
        torch.testing.assert_close(buf, dict(ref.named_buffers())[name], rtol=1e-5, atol=1e-6)
    assert compiled_calls(compiled) == 2
