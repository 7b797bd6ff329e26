"""Compile the numba-cpu kernel library before a model needs it (``tracejit warmup``).

The generic kernels (``codegen/numba_cpu/kernels*.py``) compile once per type signature
and are then loaded from Numba's on-disk cache by every later process. On an
installation whose cache is empty, the first model to use a kernel pays for it: LeNet's
first compile took 5.2 s, of which its two convolution kernels took 1.6 s each. Warming
up compiles small models that reach every float32 kernel path the lowering takes (both
linear orientations, im2row and im2col convolutions, the three max-pooling paths,
attention, recurrent layers, normalisations, reductions, matrix products, the vector
math), at batch 1 and at a batch of 4, so that later a model compiles only its own
generated loops.

Where the kernels' cache lives is Numba's choice: ``NUMBA_CACHE_DIR`` when set, else a
``__pycache__`` folder beside the kernels. A process with another ``NUMBA_CACHE_DIR`` does
not see this one's work.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

BATCHES = (1, 4)


class _Heads(nn.Module):
    """Reductions and activations that models end in."""

    def forward(self, x):
        y = torch.tanh(x) + torch.sigmoid(x) * nn.functional.gelu(x)
        return (torch.log_softmax(y, -1), y.softmax(-1), y.mean(-1), y.amax(-1),
                y.argmax(-1), y.sum(), y @ y.t())


class _Conv(nn.Module):
    """One image channel through im2col, eight through im2row (split between threads at
    batch 4), every max-pooling path, batch norm, average and adaptive pooling."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 8, 5)
        self.c2 = nn.Conv2d(8, 16, 3, padding=1)
        self.bn = nn.BatchNorm2d(16)
        self.head = nn.Linear(16, 3)

    def forward(self, x):
        x = torch.relu(self.bn(self.c2(torch.relu(self.c1(x)))))
        x = nn.functional.max_pool2d(x, 2)                                  # 2x2 path
        x = nn.functional.max_pool2d(x, 3, stride=1)                       # rows inside
        x = nn.functional.max_pool2d(x, 3, stride=2, padding=1)            # any window
        x = nn.functional.avg_pool2d(x, 2)
        return self.head(nn.functional.adaptive_avg_pool2d(x, 1).flatten(1))


class _Recurrent(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(50, 16)
        self.gru = nn.GRU(16, 32, batch_first=True)
        self.lstm = nn.LSTM(32, 32, num_layers=2, batch_first=True)
        self.head = nn.Linear(32, 4)

    def forward(self, tokens):
        out, _ = self.lstm(self.gru(self.embed(tokens))[0])
        return self.head(out[:, -1])


@dataclass(frozen=True)
class WarmupModel:
    name: str
    build: Callable[[], nn.Module]
    make_input: Callable[[int], torch.Tensor]


MODELS = (
    # one row takes linear's direct orientation, 4 rows by 64 columns the transposed one
    WarmupModel("mlp", lambda: nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 64),
                                             _Heads()),
                lambda b: torch.randn(b, 32)),
    WarmupModel("conv", _Conv, lambda b: torch.randn(b, 1, 36, 36)),
    WarmupModel("transformer", lambda: nn.TransformerEncoderLayer(32, 4, 64, batch_first=True),
                lambda b: torch.randn(b, 8, 32)),
    WarmupModel("recurrent", _Recurrent, lambda b: torch.randint(0, 50, (b, 6))),
)


def warm_up(on_model: Callable[[str, float], None] | None = None) -> float:
    """Compile every model of ``MODELS`` at each of ``BATCHES`` with numba-cpu and call it;
    ``on_model(name, seconds)`` after each. Returns the seconds taken in all."""
    import tracejit

    torch.manual_seed(0)
    start = time.perf_counter()
    with torch.no_grad():
        for spec in MODELS:
            t = time.perf_counter()
            model = spec.build().eval()
            compiled = tracejit.compile(model, backend="numba-cpu")
            for batch in BATCHES:
                x = spec.make_input(batch)
                compiled(x)
                compiled(x)         # the first call traces; the second runs the kernels
            if on_model is not None:
                on_model(spec.name, time.perf_counter() - t)
    return time.perf_counter() - start


def kernel_cache() -> str:
    """The folder Numba keeps the kernel library's compiled code in."""
    from codegen.numba_cpu import kernels
    return str(kernels.linear_rows._cache.cache_path)
