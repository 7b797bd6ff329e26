"""The benchmark zoo (issue 5): each entry builds a model in eval mode and its input.

Models come from examples/models.py where one fits the issue's sizes; the few that need
other sizes (a two-block ResNet, a transformer layer with ff 128) are built here.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
import models  # noqa: E402


class BasicBlock(nn.Module):
    """ResNet basic block: conv-bn-relu-conv-bn plus the identity, then relu."""

    def __init__(self, c: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(x + self.bn2(self.conv2(y)))


class SmallResNet(nn.Module):
    """3 -> 32 channel stem, two basic blocks, pooled linear head (32x32 input)."""

    def __init__(self, c: int = 32, classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, c, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(c), nn.ReLU())
        self.blocks = nn.Sequential(BasicBlock(c), BasicBlock(c))
        self.head = nn.Linear(c, classes)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


class Chain(nn.Module):
    """models.elementwise_chain as a module, so every system sees the same kind of thing."""

    def forward(self, x):
        return models.elementwise_chain(x)


def _randn(*shape):
    return lambda b: torch.randn(b, *shape)


@dataclass(frozen=True)
class Entry:
    name: str
    build: Callable[[], nn.Module]
    make_input: Callable[[int], torch.Tensor]   # batch -> input tensor
    batches: tuple[int, int]                    # (small, large) defaults from issue 5
    small: bool = False                         # cheap enough for the NumPy interpreter
    quick: bool = False                         # part of --quick


ZOO: dict[str, Entry] = {e.name: e for e in [
    Entry("MLP", lambda: models.SimpleNN(784, 256, 10), _randn(784), (1, 64),
          small=True, quick=True),
    Entry("SimpleNN", lambda: models.SimpleNN(3, 10, 1), _randn(3), (2, 256), small=True),
    Entry("LeNet", models.LeNet, _randn(1, 28, 28), (1, 32), small=True),
    Entry("ResNet", SmallResNet, _randn(3, 32, 32), (1, 16)),
    Entry("Transformer", lambda: nn.TransformerEncoderLayer(64, 4, 128, batch_first=True),
          _randn(32, 64), (1, 8)),
    Entry("GRUClassifier", lambda: models.GRUClassifier(1000, 64, 128, 4),
          lambda b: torch.randint(0, 1000, (b, 32)), (1, 16)),
    Entry("LSTM", lambda: models.LSTMModel(32, 64, 10), _randn(32, 32), (1, 16)),
    Entry("ElementwiseChain", Chain, lambda b: torch.randn(b, 1 << 20), (1, 4),
          small=True, quick=True),
    Entry("PreNormMLP", lambda: models.PreNormMLPBlock(256), _randn(128, 256), (1, 8)),
]}


def build(name: str, seed: int = 0) -> nn.Module:
    """The model, seeded so every process builds the same weights, in eval mode."""
    torch.manual_seed(seed)
    return ZOO[name].build().eval()


def make_input(name: str, batch: int, seed: int = 1) -> torch.Tensor:
    torch.manual_seed(seed + batch)
    return ZOO[name].make_input(batch)
