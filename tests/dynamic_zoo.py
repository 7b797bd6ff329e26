"""Dynamic models with input streams that take every path (issue 8's test bar).

Each ``Case`` builds a fresh model and a stream of calls (inputs from a fixed seed, plus
plain attributes to set on the model before the call). ``run_stream`` plays a stream
through any callable, so the tests and ``benchmarks/bench_dynamic.py`` compare tracejit,
``torch.jit.trace`` and eager on exactly the same calls.
"""

from __future__ import annotations

import contextlib
import copy
import io
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn
from torch.utils._pytree import tree_flatten

RTOL, ATOL = 1e-4, 1e-5      # DESIGN §7


@dataclass
class Call:
    args: tuple
    attrs: dict = field(default_factory=dict)     # set on the model before this call


@dataclass
class Case:
    name: str
    make: Callable[[], nn.Module]
    stream: Callable[[], list[Call]]
    specs: int                   # specialisations after the stream (interpret backend)
    why: str = ""                # what the model does that is dynamic
    eager_reason: str | None = None   # substring explain() shows when it runs eagerly
    seeded: bool = False         # forward draws random numbers: seed before every call
    quiet: bool = False          # forward prints: swallow stdout while playing the stream
    train: bool = False          # the model's mode (the others run in eval mode)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _randn(g, *shape) -> torch.Tensor:
    return torch.randn(*shape, generator=g)


# ---- the models ------------------------------------------------------------------------


class SignBranch(nn.Module):
    def __init__(self, dim=16):
        super().__init__()
        self.pos, self.neg = nn.Linear(dim, dim), nn.Linear(dim, dim)

    def forward(self, x):
        if x.sum() > 0:
            return torch.relu(self.pos(x))
        return torch.tanh(self.neg(x)) - 1


class ItemLoop(nn.Module):
    """The loop count comes from a tensor (``steps.item()``)."""

    def __init__(self, dim=16):
        super().__init__()
        self.fc = nn.Linear(dim, dim)

    def forward(self, x, steps):
        for _ in range(int(steps.item())):
            x = torch.tanh(self.fc(x))
        return x


class EarlyExit(nn.Module):
    """Halves the state each step and returns as soon as its norm drops below 1."""

    def __init__(self, dim=8, max_steps=5):
        super().__init__()
        self.fc = nn.Linear(dim, dim)
        self.max_steps = max_steps
        self.threshold = 1.0

    def forward(self, x):
        for _ in range(self.max_steps):
            x = 0.5 * x + 0.01 * torch.tanh(self.fc(x))
            if x.norm() < self.threshold:
                return x
        return x * 2


class ResidualFlag(nn.Module):
    """Reads a Python flag that the stream flips between calls."""

    def __init__(self, dim=16):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.use_residual = True

    def forward(self, x):
        h = self.fc2(torch.relu(self.fc1(x)))
        return h + x if self.use_residual else h


class CallCounter(nn.Module):
    """Changes Python state: a static graph cannot replay ``self.calls += 1``."""

    def __init__(self, dim=8):
        super().__init__()
        self.fc = nn.Linear(dim, dim)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.fc(x) + self.calls


class Printing(nn.Module):
    def __init__(self, dim=8):
        super().__init__()
        self.fc = nn.Linear(dim, dim)

    def forward(self, x):
        y = self.fc(x)
        print("mean", float(y.mean()))
        return torch.relu(y)


class DropoutNet(nn.Module):
    def __init__(self, dim=32):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, dim), nn.Linear(dim, 4)
        self.drop = nn.Dropout(0.3)

    def forward(self, x):
        return self.fc2(self.drop(torch.relu(self.fc1(x))))


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(20, 32), nn.GELU(), nn.Linear(32, 5))

    def forward(self, x):
        return self.net(x)


class GRUTagger(nn.Module):
    """Embedding + GRU over token sequences of varying length."""

    def __init__(self, vocab=50, dim=12):
        super().__init__()
        self.emb = nn.Embedding(vocab, dim)
        self.gru = nn.GRU(dim, dim, batch_first=True)
        self.head = nn.Linear(dim, 3)

    def forward(self, tokens):
        out, h = self.gru(self.emb(tokens))
        return self.head(out), h


class EncoderLayer(nn.Module):
    """One transformer encoder layer over sequences of varying length."""

    def __init__(self, dim=16):
        super().__init__()
        self.layer = nn.TransformerEncoderLayer(dim, 2, 32, dropout=0.0, batch_first=True)

    def forward(self, x):
        return self.layer(x)


class RandomDepth(nn.Module):
    """The seed example: the number of layers is drawn at random on every call."""

    def __init__(self, dim=16):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(dim, dim) for _ in range(3))

    def forward(self, x):
        depth = int(torch.randint(1, 4, ()))
        for layer in self.layers[:depth]:
            x = torch.tanh(layer(x))
        return x


# ---- the streams -----------------------------------------------------------------------


def _signs():
    g = _gen(1)
    return [Call((_randn(g, 4, 16).abs() * s,)) for s in (1, -1, 1, 1, -1, -1, 1, -1)]


def _steps():
    g = _gen(2)
    return [Call((_randn(g, 2, 16), torch.tensor(n))) for n in (2, 2, 1, 3, 1, 2, 3, 3)]


def _norms():
    g = _gen(3)
    out = []
    for norm in (1.5, 3.0, 1.5, 6.0, 12.0, 40.0, 3.0, 0.8, 40.0):  # exits at steps 1..5
        x = _randn(g, 8)
        out.append(Call((x / x.norm() * norm,)))
    return out


def _flags():
    g = _gen(4)
    return [Call((_randn(g, 3, 16),), {"use_residual": f})
            for f in (True, False, True, False, False, True)]


def _same_shape(seed, *shape, n=6):
    g = _gen(seed)
    return lambda: [Call((_randn(g, *shape),)) for _ in range(n)]


def _batches():
    g = _gen(6)
    return [Call((_randn(g, b, 20),)) for b in (2, 3, 5, 2, 1, 8, 1, 4)]


def _tokens():
    g = _gen(7)
    return [Call((torch.randint(0, 50, (2, n), generator=g),)) for n in (5, 7, 5, 9, 7, 9)]


def _seqs():
    g = _gen(8)
    return [Call((_randn(g, 2, n, 16),)) for n in (5, 7, 5, 9, 7, 3)]


CASES = [
    Case("sign_branch", SignBranch, _signs, 2, "if x.sum() > 0"),
    Case("item_loop", ItemLoop, _steps, 3, "range(int(steps.item()))"),
    Case("early_exit", EarlyExit, _norms, 5, "return when x.norm() < 1"),
    Case("python_flag", ResidualFlag, _flags, 2, "self.use_residual flipped"),
    Case("counter", CallCounter, _same_shape(5, 2, 8, n=5), 1, "self.calls += 1",
         eager_reason="self.calls"),
    Case("print", Printing, _same_shape(9, 2, 8, n=5), 1, "print in forward",
         eager_reason="prints", quiet=True),
    Case("dropout_train", DropoutNet, _same_shape(10, 4, 32), 1,
         "nn.Dropout(0.3) in train mode", seeded=True, train=True),
    Case("batch_sizes", MLP, _batches, 3, "batch 2,3,5,2,1,8,1,4"),
    Case("gru_seq_lens", GRUTagger, _tokens, 3, "Embedding+GRU, seq 5,7,5,9,7,9"),
    Case("encoder_seq_lens", EncoderLayer, _seqs, 2, "TransformerEncoderLayer, seq 5,7,5,9,7,3"),
    Case("random_depth", RandomDepth, _same_shape(11, 2, 16, n=10), 3,
         "depth = int(torch.randint(1, 4, ()))", seeded=True),
]
BY_NAME = {c.name: c for c in CASES}


# ---- playing a stream ------------------------------------------------------------------


def run_stream(case: Case, fn: Callable, model: nn.Module, calls: list[Call],
               stdout: io.StringIO | None = None) -> list:
    """Outputs of ``fn`` over ``calls`` (``model`` is what the attributes are set on);
    an exception becomes that call's output, so one failure does not hide the rest.
    What a printing forward prints goes to ``stdout`` (or nowhere)."""
    outs = []
    for i, call in enumerate(calls):
        for name, value in call.attrs.items():
            setattr(model, name, value)
        if case.seeded:
            torch.manual_seed(1000 + i)
        sink = contextlib.redirect_stdout(stdout or io.StringIO()) if case.quiet else \
            contextlib.nullcontext()
        try:
            with sink:
                outs.append(fn(*call.args))
        except Exception as e:   # noqa: BLE001 - recorded and reported as "error"
            outs.append(e)
    return outs


def same(actual, expected) -> bool:
    """Same structure, floats within DESIGN §7 tolerances, the rest exactly."""
    if isinstance(actual, Exception):
        return False
    got, got_spec = tree_flatten(actual)
    want, want_spec = tree_flatten(expected)
    if got_spec != want_spec:
        return False
    for a, b in zip(got, want):
        if not isinstance(b, torch.Tensor):
            if a != b:
                return False
        elif not isinstance(a, torch.Tensor) or a.shape != b.shape or a.dtype != b.dtype:
            return False
        elif not torch.allclose(a, b, rtol=RTOL, atol=ATOL, equal_nan=True):
            return False
    return True


def eager_reference(case: Case, model: nn.Module, calls: list[Call]) -> list:
    """Eager outputs from a deep copy made before any call (the model may keep state)."""
    ref = copy.deepcopy(model)
    return run_stream(case, ref, ref, calls)


def fresh(case: Case) -> tuple[nn.Module, list[Call]]:
    torch.manual_seed(0)                     # weights
    model = case.make().train(case.train)
    return model, case.stream()
