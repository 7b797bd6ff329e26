"""Issue 3's models traced with the interpret backend: eager-identical results, the second
call really runs the compiled graph, graphs verify and round-trip, known externs only."""

from __future__ import annotations

import copy

import pytest
import torch

import ir
import tracejit
from ir.verify import verify
from models_zoo import CASES, EX, HF_EXTERNS, HF_MODELS, TOKENS, VOCAB, Discriminator, Generator
from tracejit.runtime import Specialization


def _no_eager(*args, **kwargs):
    raise AssertionError("the compiled call ran the Python forward")


def only_spec(compiled) -> Specialization:
    specs = compiled._tj_dispatcher.all_specializations()
    assert len(specs) == 1, compiled.explain()
    assert isinstance(specs[0], Specialization), compiled.explain()
    return specs[0]


def check_graphs(spec: Specialization) -> None:
    """Traced and optimised graphs verify, and print -> parse -> print is the identity."""
    for graph in (spec.capture.graph, spec.graph):
        verify(graph)
        text = ir.print_graph(graph)
        again = ir.parse(text)
        verify(again)
        assert ir.print_graph(again) == text


def extern_targets(spec: Specialization) -> set[str]:
    return {n.attrs["target"] for n in spec.capture.externs}


def run_twice(model, args, assert_matches):
    """Eager, then a tracing call and a compiled call (with forward disabled) under no_grad."""
    compiled = tracejit.compile(model, backend="interpret")
    with torch.no_grad():
        expected = model(*args)
        assert_matches(compiled(*args), expected)
        model.forward = _no_eager             # the second call must not need Python forward
        try:
            assert_matches(compiled(*args), expected)
        finally:
            del model.forward
    spec = only_spec(compiled)
    assert spec.calls == 1
    assert "1 compiled calls" in str(compiled.explain())
    return compiled, spec


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_model_matches_eager(case, assert_matches):
    torch.manual_seed(0)
    model = case.build().eval()
    args = case.inputs()
    _, spec = run_twice(model, args, assert_matches)
    check_graphs(spec)
    assert extern_targets(spec) == case.externs


@pytest.mark.parametrize("build, shape", [(EX.ResBlock, (4, 3, 6, 6)), (Generator, (6, 8))],
                         ids=["ResBlock", "GAN-Generator"])
def test_batchnorm_train_mode_matches_eager_and_updates_running_stats(build, shape,
                                                                      assert_matches):
    torch.manual_seed(0)
    model = build().train()
    reference = copy.deepcopy(model)
    compiled = tracejit.compile(model, backend="interpret")
    for _ in range(2):                        # the first call traces, the second is compiled
        x = torch.randn(shape) * 2 + 0.5
        with torch.no_grad():
            assert_matches(compiled(x), reference(x))
        state, want = model.state_dict(), reference.state_dict()
        assert list(state) == list(want)
        for name in want:
            assert_matches(state[name], want[name])
    spec = only_spec(compiled)
    assert spec.calls == 1
    assert set(spec.graph.writes) >= {k for k in want if k.endswith("running_mean")}
    assert all(int(v) == 2 for k, v in model.state_dict().items()
               if k.endswith("num_batches_tracked"))
    check_graphs(spec)


def test_gan_generator_feeds_discriminator(assert_matches):
    torch.manual_seed(0)
    gen, disc = Generator().eval(), Discriminator().eval()
    cgen = tracejit.compile(gen, backend="interpret")
    cdisc = tracejit.compile(disc, backend="interpret")
    z = torch.randn(5, 8)
    with torch.no_grad():
        for _ in range(2):
            assert_matches(cdisc(cgen(z)), disc(gen(z)))
    assert only_spec(cgen).calls == 1 and only_spec(cdisc).calls == 1


# ---- Hugging Face transformers from tiny configs --------------------------------------------

@pytest.fixture(scope="module")
def transformers():
    module = pytest.importorskip("transformers")
    module.logging.set_verbosity_error()
    return module


@pytest.mark.parametrize("name", sorted(HF_MODELS))
def test_hugging_face_model_matches_eager(name, transformers, assert_matches):
    torch.manual_seed(0)
    model = HF_MODELS[name](transformers).eval()
    tokens = torch.randint(0, VOCAB, TOKENS)
    _, spec = run_twice(model, (tokens,), assert_matches)
    check_graphs(spec)
    assert extern_targets(spec) == HF_EXTERNS[name]


def test_gpt2_with_mask_and_labels_as_keywords(transformers, assert_matches):
    """Keyword inputs, a padding mask, the loss, and one tensor passed twice."""
    torch.manual_seed(0)
    model = HF_MODELS["GPT2LMHeadModel"](transformers).eval()
    ids = torch.randint(0, VOCAB, TOKENS)
    mask = torch.ones(TOKENS, dtype=torch.int64)
    mask[1, -3:] = 0
    kwargs = dict(input_ids=ids, attention_mask=mask, labels=ids)
    compiled = tracejit.compile(model, backend="interpret")
    with torch.no_grad():
        expected = model(**kwargs)
        for _ in range(2):
            assert_matches(compiled(**kwargs), expected)
    spec = only_spec(compiled)
    assert spec.calls == 1
    check_graphs(spec)
    assert extern_targets(spec) == HF_EXTERNS["GPT2LMHeadModel-masked"]


# ---- plain functions ------------------------------------------------------------------------

@tracejit.compile(backend="interpret")
def attention_scores(x, y):
    scores = torch.softmax(x @ y.transpose(-1, -2) / 4.0, dim=-1)
    return scores, torch.where(scores > 0.3, scores, -x.mean(dim=-1, keepdim=True))


@tracejit.compile(backend="interpret")
def default_overloads(x, y):
    """Ops whose rules are keyed by their ``.default`` overload."""
    values, index = y.min(dim=1)
    return (torch.round(x.squeeze() * 3), y.min(), y.max(), values, index,
            torch.arange(4) * 2)


@pytest.mark.parametrize("fn, shapes", [
    (attention_scores, [(2, 3, 4), (2, 5, 4)]),
    (default_overloads, [(1, 5), (3, 4)]),
    (tracejit.compile(EX.elementwise_chain, backend="interpret"), [(3, 7)]),
], ids=["attention_scores", "default_overloads", "elementwise_chain"])
def test_plain_function_matches_eager(fn, shapes, assert_matches):
    torch.manual_seed(0)
    args = [torch.randn(s) for s in shapes]
    expected = fn.__wrapped__(*args)
    for _ in range(2):
        assert_matches(fn(*args), expected)
    spec = only_spec(fn)
    assert spec.calls == 1
    check_graphs(spec)
    assert extern_targets(spec) == set()
