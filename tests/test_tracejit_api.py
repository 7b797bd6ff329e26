"""The public API: compile as a decorator, CompiledModule behaving as the module, weight
updates without retracing, autograd calls, fullgraph errors and externs."""

from __future__ import annotations

import copy
import inspect
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import codegen
import ir
import tracejit
from models_zoo import EX, mlp
from tracejit.runtime import Specialization


def n_specs(compiled) -> int:
    return len(compiled._tj_dispatcher.all_specializations())


def compiled_calls(compiled) -> int:
    return sum(s.calls for s in compiled._tj_dispatcher.all_specializations()
               if isinstance(s, Specialization))


@pytest.fixture
def model():
    torch.manual_seed(0)
    return mlp().eval()


@pytest.fixture
def x():
    torch.manual_seed(1)
    return torch.randn(3, 10)


# ---- compile as a decorator ----------------------------------------------------------------

def test_decorator_without_arguments_uses_the_default_backend(monkeypatch, assert_matches):
    # the default backend's own tests live elsewhere: run it through the interpreter here
    monkeypatch.setitem(codegen.BACKENDS, tracejit.DEFAULT_BACKEND, "codegen.interpret:compile")

    @tracejit.compile
    def f(x, y):
        return torch.relu(x) * y + 1

    assert isinstance(f, tracejit.CompiledFunction)
    assert f.__name__ == "f" and f._tj_dispatcher.backend == tracejit.DEFAULT_BACKEND
    a, b = torch.randn(4), torch.randn(4)
    with torch.no_grad():
        for _ in range(2):
            assert_matches(f(a, b), torch.relu(a) * b + 1)
    assert compiled_calls(f) == 1


def test_decorator_with_arguments_on_function_and_module(model, x, assert_matches):
    @tracejit.compile(backend="interpret", fullgraph=True)
    def g(x):
        return torch.sigmoid(x).sum(dim=1)

    cm = tracejit.compile(backend="interpret")(model)
    assert isinstance(cm, tracejit.CompiledModule)
    with torch.no_grad():
        for _ in range(2):
            assert_matches(g(x), torch.sigmoid(x).sum(dim=1))
            assert_matches(cm(x), model(x))
    assert compiled_calls(g) == 1 and compiled_calls(cm) == 1


@pytest.mark.parametrize("kwargs, words", [
    ({"backend": "no-such-backend"}, ["no-such-backend", "interpret"]),
    ({"backend": "interpret", "options": {"max_specialisations": 3}}, ["max_specialisations"]),
    ({"backend": "interpret", "dynamic": "yes"}, ["dynamic"]),
])
def test_bad_compile_arguments_raise_backend_error(model, kwargs, words):
    with pytest.raises(tracejit.BackendError) as info:
        tracejit.compile(model, **kwargs)
    assert isinstance(info.value, tracejit.TraceJitError)
    assert all(w in str(info.value) for w in words)
    with pytest.raises(tracejit.BackendError):
        tracejit.compile(**kwargs)            # checked before any target is given


def test_trace_and_explain_functions(model, x):
    tr = tracejit.trace(model, x)
    assert isinstance(tr.graph, ir.Graph)
    assert str(tr) == ir.print_graph(tr.graph)
    assert [i.name for i in tr.graph.inputs[1:]] == list(model.state_dict())
    assert [i.role for i in tr.graph.inputs] == ["input"] + ["param"] * len(model.state_dict())
    text = str(tracejit.explain(model, x, backend="interpret"))
    assert "Sequential: backend interpret, 1 specialisation(s)" in text
    assert "linear" in text


# ---- a compiled module still behaves as the module --------------------------------------------

def test_compiled_module_behaves_as_the_module(model):
    cm = tracejit.compile(model, backend="interpret")
    assert isinstance(cm, nn.Module)
    assert [id(p) for p in cm.parameters()] == [id(p) for p in model.parameters()]
    assert [n for n, _ in cm.named_parameters()] == [n for n, _ in model.named_parameters()]
    assert list(cm.state_dict()) == list(model.state_dict())
    assert cm[0] is model[0] and len(cm) == len(model) and list(cm) == list(model)
    assert cm.training is False
    cm.train()
    assert model.training and all(m.training for m in model.modules())
    cm.eval()
    assert not model.training and not any(m.training for m in model.modules())
    cm.threshold = 0.5
    assert model.threshold == 0.5 and cm.threshold == 0.5
    assert "threshold" in dir(cm)
    assert repr(model) in repr(cm) and "interpret" in repr(cm)


def test_load_state_dict_is_seen_without_retrace(model, x, assert_matches):
    cm = tracejit.compile(model, backend="interpret")
    with torch.no_grad():
        cm(x)
        torch.manual_seed(5)
        new = {k: torch.randn_like(v) for k, v in model.state_dict().items()}
        cm.load_state_dict(new)
        fresh = mlp().eval()
        fresh.load_state_dict(new)
        assert_matches(cm(x), fresh(x))
        model[0].weight = nn.Parameter(torch.randn_like(model[0].weight))   # a new tensor
        assert_matches(cm(x), model(x))
    assert n_specs(cm) == 1 and compiled_calls(cm) == 2


def test_optimizer_step_is_seen_without_retrace(model, x, assert_matches):
    cm = tracejit.compile(model, backend="interpret")
    with torch.no_grad():
        before = cm(x)
        cm(x)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    with pytest.warns(tracejit.TraceJitWarning, match="autograd"):
        loss = (cm(x) - 1).pow(2).mean()
    loss.backward()
    opt.step()
    with torch.no_grad():
        after = cm(x)
        assert_matches(after, model(x))
    assert not torch.allclose(after, before)
    assert n_specs(cm) == 1 and compiled_calls(cm) == 2


def test_replaced_submodule_is_seen(model, x, assert_matches):
    cm = tracejit.compile(model, backend="interpret")
    with torch.no_grad():
        cm(x)
        cm(x)
        model[2] = nn.Sequential(nn.Linear(16, 16), nn.Tanh())   # a new module object
        assert_matches(cm(x), model(x))
        assert_matches(cm(x), model(x))
    assert compiled_calls(cm) == 1


# ---- autograd ---------------------------------------------------------------------------------

def test_call_needing_gradients_runs_eagerly_with_correct_grads(model, x, assert_matches):
    reference = copy.deepcopy(model)
    cm = tracejit.compile(model, backend="interpret")
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    with pytest.warns(tracejit.TraceJitWarning, match="autograd") as caught:
        out = cm(xa)
    assert caught[0].filename == __file__
    expected = reference(xb)
    assert_matches(out, expected)
    out.square().sum().backward()
    expected.square().sum().backward()
    assert_matches(xa.grad, xb.grad)
    for (name, p), q in zip(model.named_parameters(), reference.parameters()):
        assert p.grad is not None, name
        assert_matches(p.grad, q.grad)
    text = str(cm.explain())
    assert "0 specialisation(s)" in text and "eager (1 calls): autograd" in text
    assert "runs eagerly" in text


def test_function_input_requiring_grad(assert_matches):
    @tracejit.compile(backend="interpret")
    def f(x):
        return torch.tanh(x) * x

    x = torch.randn(5, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tracejit.TraceJitWarning)
        f(x).sum().backward()
    assert_matches(x.grad, (1 - torch.tanh(x) ** 2) * x + torch.tanh(x))
    with torch.no_grad():                    # no backward needed: compiled, same result
        for _ in range(2):
            assert_matches(f(x), torch.tanh(x) * x)
    assert compiled_calls(f) == 1


# ---- ops without a rule: fullgraph errors, externs otherwise -------------------------------------

def bicubic(x):
    return F.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)


BICUBIC_LINE = inspect.getsourcelines(bicubic)[1] + 1


def test_fullgraph_names_the_unsupported_op_and_user_line():
    compiled = tracejit.compile(bicubic, backend="interpret", fullgraph=True)
    with torch.no_grad(), pytest.raises(tracejit.UnsupportedOpError) as info:
        compiled(torch.randn(1, 2, 3, 3))
    message = str(info.value)
    assert "upsample_bicubic2d" in message
    assert f"test_tracejit_api.py:{BICUBIC_LINE}" in message
    assert "fullgraph=False" in message


def test_op_without_rule_becomes_an_extern(assert_matches):
    compiled = tracejit.compile(bicubic, backend="interpret")
    x = torch.randn(1, 2, 3, 3)
    with torch.no_grad():
        for _ in range(2):
            assert_matches(compiled(x), bicubic(x))
    (spec,) = compiled._tj_dispatcher.all_specializations()
    assert spec.calls == 1
    assert [n.attrs["target"] for n in spec.capture.externs] == ["aten::upsample_bicubic2d"]
    assert "extern aten::upsample_bicubic2d (runs in torch) at " in str(compiled.explain())


def test_extern_inside_a_module_keeps_params_live(assert_matches):
    net = EX.SimpleNN(d_in=4 * 6 * 6, hidden=8).eval()

    def forward(x):
        return net(torch.flatten(bicubic(x), 1))

    compiled = tracejit.compile(forward, backend="interpret")
    x = torch.randn(2, 4, 3, 3)
    with torch.no_grad():
        compiled(x)
        net.fc2.bias.add_(1.0)
        assert_matches(compiled(x), forward(x))
    assert compiled_calls(compiled) == 1


def test_captured_tensors_are_read_afresh_and_literals_are_constants(assert_matches):
    scale = torch.tensor([2.0, 3.0])          # from outside the trace: may change

    @tracejit.compile(backend="interpret")
    def f(x):
        return x * scale + torch.tensor([1.0, -1.0])   # a literal forward rebuilds each call

    x = torch.randn(4, 2)
    with torch.no_grad():
        f(x)
        scale.mul_(-1)
        assert_matches(f(x), x * scale + torch.tensor([1.0, -1.0]))
    (spec,) = f._tj_dispatcher.all_specializations()
    assert spec.calls == 1
    assert [i.role for i in spec.capture.graph.inputs] == ["input", "const"]
    assert any(n.op == "constant" and n.attrs["value"] == (1.0, -1.0)
               for n in spec.capture.graph.nodes)


class _Outer(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner, self.head = inner, nn.Linear(4, 2)

    def forward(self, x):
        return self.head(self.inner(x) * 2)


@torch.no_grad()
def test_a_compiled_module_called_inside_a_trace_is_traced_through(assert_matches):
    torch.manual_seed(0)
    inner = nn.Sequential(nn.Linear(4, 4), nn.ReLU()).eval()
    compiled_inner = tracejit.compile(inner)
    x = torch.randn(3, 4)
    for _ in range(3):
        compiled_inner(x)                       # its own fast path is in place
    outer = _Outer(compiled_inner).eval()
    compiled = tracejit.compile(outer)
    for _ in range(4):                          # new inputs: no retrace, eager's results
        y = torch.randn(3, 4)
        assert_matches(compiled(y), outer(y))
    (spec,) = compiled._tj_dispatcher.all_specializations()
    graph = spec.capture.graph
    ops = [n.op for n in graph.nodes]
    assert ops.count("addmm") == 2 and "relu" in ops     # the inner module's ops, too
    assert {"inner.0.weight", "inner.0.bias"} <= {i.value.name for i in graph.inputs}
    assert "relu" in str(tracejit.trace(outer, x))
    assert len(compiled_inner._tj_dispatcher.all_specializations()) == 1
    generic = compiled_inner._tj_dispatcher.generic_calls
    assert_matches(compiled_inner(x), inner(x))
    assert compiled_inner._tj_dispatcher.generic_calls == generic  # its fast path, again
